package actor

import (
	"errors"
	"fmt"

	"github.com/actord/actord/loop"
)

// Errors a call, send or ask can fail with. Test for them with errors.Is; the
// error returned may wrap one of these with more detail.
var (
	// ErrDead means the target actor does not exist: it stopped, or the ref
	// was never valid. A dead ref stays dead forever; no later actor that
	// reuses its slot receives its messages.
	ErrDead = errors.New("actor: no such actor")
	// ErrInvalidRef means the zero Ref was used.
	ErrInvalidRef = errors.New("actor: invalid (zero) ref")
	// ErrNotLocal means a synchronous Call (or a synchronous Spawn/Restart)
	// named an actor on another loop. Use Ask instead.
	ErrNotLocal = errors.New("actor: target is on another loop")
	// ErrCycle means a synchronous Call would re-enter an actor whose handler
	// is already on the call stack (A calls B calls A).
	ErrCycle = errors.New("actor: call cycle")
	// ErrCrashed means the handler panicked. The error is a *CrashError
	// carrying the panic value and stack.
	ErrCrashed = errors.New("actor: crashed")
	// ErrTimeout means an ask's deadline passed before its reply arrived.
	ErrTimeout = errors.New("actor: ask timed out")
	// ErrQueueFull means the target loop's inbound queue was full: the
	// message was not accepted (backpressure). Retry later or shed load.
	ErrQueueFull = fmt.Errorf("actor: target queue full: %w", loop.ErrFull)
	// ErrPoolFull means the blocking-work pool had no free worker and no
	// room in its queue; the job was not run.
	ErrPoolFull = fmt.Errorf("actor: %w", loop.ErrPoolFull)
	// ErrShutdown means the system is shutting down or has shut down.
	ErrShutdown = errors.New("actor: system shut down")
	// ErrUnknownMessage is what a handler returns (through Unhandled) for a
	// message type it does not know.
	ErrUnknownMessage = errors.New("actor: unknown message type")
	// ErrStalePromise means Then was called on a promise that already
	// settled in an earlier turn with no continuation attached, or on a
	// promise of another loop.
	ErrStalePromise = errors.New("actor: stale promise")
	// ErrDeferredCall means a handler called Defer while serving a
	// synchronous Call, which cannot wait for a later reply.
	ErrDeferredCall = errors.New("actor: Defer inside a synchronous Call")
	// ErrNotForwardable means Forward was called where there is no message
	// to hand on: in a Call, a timer, a continuation or a lifecycle method,
	// or after the handler already deferred or forwarded this one.
	ErrNotForwardable = errors.New("actor: nothing to forward here")
)

// CrashError is the error a caller gets when the handler serving its message
// panicked. It matches ErrCrashed with errors.Is.
type CrashError struct {
	Actor Ref    // the actor that crashed
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine (nil with Config.LazyStacks: see StackText)
	// PCs are the program counters of that stack, with Config.LazyStacks.
	PCs []uintptr
}

// StackText returns the stack of the panic as text: Stack, or, with
// Config.LazyStacks, PCs formatted now.
func (e *CrashError) StackText() []byte { return stackText(e.Stack, e.PCs) }

func (e *CrashError) Error() string {
	return fmt.Sprintf("actor %v crashed: %v", e.Actor, e.Value)
}

// Is reports whether target is ErrCrashed.
func (e *CrashError) Is(target error) bool { return target == ErrCrashed }

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a crash caused by panic(err).
func (e *CrashError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// Unhandled returns an error wrapping ErrUnknownMessage that names the type of
// msg. Handlers return it for messages they do not understand.
func Unhandled(msg any) error {
	return fmt.Errorf("%w: %T", ErrUnknownMessage, msg)
}

func postErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, loop.ErrFull):
		return ErrQueueFull
	case errors.Is(err, loop.ErrClosed):
		return ErrShutdown
	case errors.Is(err, loop.ErrPoolFull):
		return ErrPoolFull
	}
	return err
}
