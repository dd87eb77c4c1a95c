package actor

import (
	"errors"
	"runtime/debug"
)

// Actor is a Go value with a receive method. The runtime calls Receive on the
// actor's loop, one message at a time, each to completion, so the actor's
// fields need no locks.
//
// The reply is returned to the caller of Call or Ask; for a one-way message
// it is discarded (an error is reported to the event hook). A panic in
// Receive is a crash: the runtime recovers it, fails the pending caller with
// a *CrashError, reports it, and stops the actor (or, if supervised, lets its
// supervisor restart it). The loop keeps running.
type Actor interface {
	Receive(c *Context, msg any) (reply any, err error)
}

// Factory makes a fresh actor. The runtime calls it at spawn and again at
// every restart, so a restart starts from clean state.
type Factory func() Actor

// Starter is implemented by actors that need to initialise when started or
// restarted (as Erlang's init). An error or panic from Start fails the spawn
// (or the restart, which then stops the actor).
type Starter interface {
	Start(c *Context) error
}

// Terminator is implemented by actors that need to clean up when they stop
// (as Erlang's terminate). reason is nil for a normal stop, ErrRestart before
// a restart of a live actor, ErrShutdown at system shutdown, or the error
// that stopped it. When stopping, Terminate may stop its own actor
// (c.Stop(c.Self(), other)) to end with another reason: its monitors and
// links then see that one.
type Terminator interface {
	Terminate(c *Context, reason error)
}

// Down is delivered to monitors of an actor when it stops. Reason is nil for
// a normal stop, a *CrashError if it crashed, ErrShutdown at shutdown,
// ErrDead if it was already gone when monitored, or the reason given to Stop.
type Down struct {
	Ref    Ref
	Reason error
}

// Crashed is delivered to the parent of a supervised actor (see Supervised)
// when the actor crashes. The child is suspended: messages to it are held
// until the parent calls Restart (they are then delivered to the new
// instance) or Stop (they then fail with ErrDead).
type Crashed struct {
	Child Ref
	Crash *Crash
}

// More errors of the actor lifecycle.
var (
	// ErrNilActor means a Factory was nil or returned nil.
	ErrNilActor = errors.New("actor: nil factory or actor")
	// ErrRestart is the Terminate reason of a live actor being restarted.
	ErrRestart = errors.New("actor: restarting")
	// ErrNoReply answers an ask whose handler deferred it (Context.Defer)
	// and then dropped the Reply without answering: the actor stopped or
	// crashed holding it, or lost it. It is delivered once the garbage
	// collector finds the Reply unreachable.
	ErrNoReply = errors.New("actor: deferred ask dropped without a reply")
)

// SpawnOption adjusts a spawn.
type SpawnOption func(*spawnOpts)

type spawnOpts struct {
	loop       int // -1: least loaded
	name       string
	supervised bool
	// parent, for an actor spawned at the request of a remote actor
	// that links to it in the same step (wire.SpawnLinked): linkEpoch
	// gives the half's epoch, or false (the request no longer counts:
	// nothing is made, the spawn fails with linkLost).
	parent    Ref
	linkEpoch func() (uint64, bool)
	linkLost  error
	// spawned, if set, runs on the loop right after the spawn (made and
	// started, or failed), in the same step: the actor's exit signal
	// cannot come before what it does. It returns whether the link made
	// with the actor stays (false: nobody learns of the actor, whose
	// half goes without a signal).
	spawned func(Ref, error) bool
}

// after runs o.spawned, if set, with the spawn's outcome, on l.
func (o *spawnOpts) after(l *loopState, r Ref, err error) {
	if o.spawned == nil {
		return
	}
	if !o.spawned(r, err) && err == nil {
		if s := l.lookup(r); s != nil {
			s.removeLink(o.parent)
		}
	}
}

// OnLoop places the actor on loop i (taken modulo the number of loops).
func OnLoop(i int) SpawnOption {
	return func(o *spawnOpts) {
		if i < 0 {
			i = -i
		}
		o.loop = i
	}
}

// LeastLoaded places the actor on the loop with the fewest actors and queued
// messages.
func LeastLoaded() SpawnOption { return func(o *spawnOpts) { o.loop = -1 } }

// Name gives the actor a name for logs, crash reports and the debugger.
// Names need not be unique and confer no authority.
func Name(name string) SpawnOption { return func(o *spawnOpts) { o.name = name } }

// Supervised makes a crash of the actor suspend it and send Crashed to its
// parent, which decides to Restart or Stop it. Without it a crash stops the
// actor. Supervisor actors spawn their children with it.
func Supervised() SpawnOption { return func(o *spawnOpts) { o.supervised = true } }

// applyOpts folds opts over the defaults. It is a function of its own so
// that the options struct escapes to the heap only when options are given.
func applyOpts(def spawnOpts, opts []SpawnOption) spawnOpts {
	if len(opts) == 0 {
		return def
	}
	o := new(spawnOpts)
	*o = def
	for _, opt := range opts {
		opt(o)
	}
	return *o
}

func stack() []byte { return debug.Stack() }
