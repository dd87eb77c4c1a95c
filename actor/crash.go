package actor

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"unsafe"
)

// Crashes: what a panic in an actor records (its stack, as text or as
// program counters) and the crash policy (suspend a supervised actor and
// tell its parent, stop any other).

// lazyDepth is how many frames Config.LazyStacks records: enough for the
// panicking function and the handler that called it, cheap to take.
const lazyDepth = 16

// crashStack records the stack of a panic being recovered, whose value
// is v: as text, or as program counters with Config.LazyStacks (in buf, if
// it has room for lazyDepth+panicFrames of them). top, when
// not nil, is the address of a local variable of the runtime function that
// called the panicking handler (receive, start), or &handlerTop for the
// handler invokeTop called: the stack is then taken by
// walking frame pointers up to there (about a tenth of a microsecond,
// where runtime.Callers, which reads unwinding tables for every frame,
// takes more than a microsecond). Not for a runtime error (a fault, an index out of range):
// a function that faults without a frame of its own would hide its caller
// from the walk, so those take runtime.Callers. Either way the stack starts
// at the function that panicked. It must not be inlined: the walk starts at
// its frame.
//
//go:noinline
func (s *System) crashStack(v any, top unsafe.Pointer, buf []uintptr) ([]byte, []uintptr) {
	if !s.cfg.LazyStacks {
		return debug.Stack(), nil
	}
	pcs := buf
	if len(pcs) < lazyDepth+panicFrames {
		pcs = make([]uintptr, lazyDepth+panicFrames)
	}
	if _, fault := v.(runtime.Error); haveFPWalk && top != nil && !fault {
		if top == unsafe.Pointer(&handlerTop) {
			ret := handlerRet.Load()
			n := fpWalkTo(pcs, ret)
			return nil, skipPanic(toHandler(pcs[:n:n], ret))
		}
		n := fpWalk(pcs, top)
		return nil, skipPanic(pcs[:n:n])
	}
	n := runtime.Callers(2, pcs) // from crashStack's caller
	return nil, skipPanic(pcs[:n])
}

// panicFrames bounds the frames a walk may record before the panicking
// function: crash, the deferred recover (and Recovered, for the loop's),
// runtime.gopanic.
const panicFrames = 4

// handlerTop stands, as crashStack's top, for the frame of invokeTop,
// which calls the handler without a recover frame of its own: the loop
// recovers the panic and calls Recovered on top of it, so no local of
// invokeTop's frame can be handed down. The walk stops at the return
// address of invokeTop's call of the handler instead.
var handlerTop byte

// handlerRet caches the return address, inside invokeTop, of its call of
// the handler.
var handlerRet atomic.Uintptr

// toHandler cuts a stack walked with fpWalkTo(pcs, ret) after invokeTop's
// call of the handler (included, as a walk up to receive's local
// includes receive's call). ret is handlerRet: 0 until the first crash
// found it, when the walk went on past invokeTop.
func toHandler(pcs []uintptr, ret uintptr) []uintptr {
	if ret != 0 {
		return pcs
	}
	for i, pc := range pcs { // first time: find invokeTop's frame
		if f := runtime.FuncForPC(pc - 1); f != nil && f.Name() == "github.com/actord/actord/actor.(*loopState).invokeTop" {
			handlerRet.Store(pc)
			return pcs[: i+1 : i+1]
		}
	}
	return pcs
}

// gopanicRet caches the return address, inside runtime.gopanic, of its
// call to a deferred function: the frames up to it are the recovery's.
var gopanicRet atomic.Uintptr

// skipPanic drops the frames of the recovery (up to and including
// runtime.gopanic's) from a walked stack, so it starts at the function
// that panicked, and caps it at lazyDepth frames. If gopanic is not found
// the stack is kept whole.
func skipPanic(pcs []uintptr) []uintptr {
	if ret := gopanicRet.Load(); ret != 0 {
		for i := 0; i < len(pcs) && i < panicFrames; i++ {
			if pcs[i] == ret {
				return capDepth(pcs[i+1:])
			}
		}
	}
	for i := 0; i < len(pcs) && i < panicFrames; i++ {
		if f := runtime.FuncForPC(pcs[i] - 1); f != nil && f.Name() == "runtime.gopanic" {
			gopanicRet.Store(pcs[i])
			return capDepth(pcs[i+1:])
		}
	}
	return capDepth(pcs)
}

func capDepth(pcs []uintptr) []uintptr {
	if len(pcs) > lazyDepth {
		pcs = pcs[:lazyDepth]
	}
	return pcs[:len(pcs):len(pcs)]
}

// StackText returns the stack of the crash as text: Stack, or, with
// Config.LazyStacks, PCs formatted now.
func (c *Crash) StackText() []byte { return stackText(c.Stack, c.PCs) }

func stackText(stack []byte, pcs []uintptr) []byte {
	if stack != nil || len(pcs) == 0 {
		return stack
	}
	// A fault (nil dereference, ...) enters runtime.sigpanic as if the
	// faulting instruction had called it: that frame's pc is not a return
	// address, and CallersFrames would back it up into the instruction
	// before. Step it forward so that the faulting line is shown.
	pcs = append([]uintptr(nil), pcs...)
	for i := 0; i+1 < len(pcs); i++ {
		if f := runtime.FuncForPC(pcs[i] - 1); f != nil && f.Name() == "runtime.sigpanic" {
			pcs[i+1]++
		}
	}
	var b bytes.Buffer
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return b.Bytes()
}

// crashRecord is what a crash allocates, in one piece: its CrashError,
// its Crash and the program counters of its lazy stack.
type crashRecord struct {
	ce  CrashError
	cr  Crash
	pcs [lazyDepth + panicFrames]uintptr
}

// crash records a panic of the actor in s and applies the crash policy: a
// supervised actor is suspended and its parent told; any other actor stops
// with the crash as its reason.
func (ls *loopState) crash(s *slot, self Ref, value any, msg any, from Ref) error {
	return ls.crashAt(s, self, value, msg, from, nil)
}

// crashAt is crash for a panic recovered by a function with a local at top
// (see System.crashStack).
func (ls *loopState) crashAt(s *slot, self Ref, value any, msg any, from Ref, top unsafe.Pointer) error {
	rec := new(crashRecord)
	ce, cr := &rec.ce, &rec.cr
	*ce = CrashError{Actor: self, Value: value}
	ce.Stack, ce.PCs = ls.sys.crashStack(value, top, rec.pcs[:])
	*cr = Crash{Actor: self, Name: s.name, Loop: ls.id, Incarnation: s.inc, Value: value,
		Stack: ce.Stack, PCs: ce.PCs, Msg: msg, From: from, Time: ls.loop.Now(), Supervised: s.sup}
	s.inc++ // continuations of the crashed incarnation never run
	if s.upg != nil {
		ls.abortSwap(s, errCrashedDraining)
	}
	if ls.watching {
		ls.report(EventCrash, from, self, msg, cr.Time, 0, ce, cr)
	}
	ls.sys.onCrash(cr)
	ls.tellCrashWatch(self, cr)
	if s.sup && !s.parent.IsZero() && (!s.parent.on(ls) || ls.lookup(s.parent) != nil) {
		s.state = slotSuspended
		if err := s.parent.box().send(ls.origin(), s.parent, Ref{}, Crashed{Child: self, Crash: cr}); err == nil {
			return ce
		}
		s.state = slotAlive // parent unreachable: nobody can restart it
	}
	s.stopReq, s.reason = true, ce
	if !s.running {
		ls.stop(s, self, ce)
	}
	return ce
}
