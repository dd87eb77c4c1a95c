package actor

import (
	"context"
	"fmt"
	"time"

	"github.com/actord/actord/internal/seam"
)

// This file is the seam between the runtime and a debugger (package debug):
// listing the actors of a loop (debugView, which package debug reaches
// through internal/seam) and running a function inside an actor, on its
// loop (System.Inspect, which tests and applications may call too).
// Holding the *System already gives full authority over its actors, so
// these grant nothing new.

// reportHandler reports a handler or continuation event, with the actor
// instance that ran, to the hook.
func (ls *loopState) reportHandler(a Actor, kind EventKind, from, to Ref, msg any, start time.Time, d time.Duration, err error) {
	ls.seq++
	ls.ev = Event{Seq: ls.seq, Loop: ls.id, Kind: kind, From: from, To: to, Msg: msg,
		Start: start, Duration: d, Err: err, Actor: a}
	ls.hook(&ls.ev)
}

// debugView is the debugger seam of a System (seam.Debugger): what a
// debugger needs and an application does not, kept off the exported API.
type debugView struct{ s *System }

// init hands the debugger seam to package debug.
func init() {
	seam.Debugger = func(sys any) any { return debugView{sys.(*System)} }
}

// VisitActors runs f on loop i's goroutine for each actor of that loop, in
// slot order, and waits until it has (or ctx is done: a loop stuck in a long
// handler does not answer). f runs between events, never inside a handler:
// it may read the actors' fields but must not block, and must not keep
// ActorInfo.Actor. A panic in f is recovered and returned as an error. In
// manual mode it runs at once on the calling goroutine.
func (d debugView) VisitActors(ctx context.Context, i int, f func(seam.ActorInfo[Ref, Actor])) error {
	s := d.s
	if i < 0 || i >= len(s.loops) {
		return fmt.Errorf("actor: no loop %d: %w", i, ErrInvalidRef)
	}
	var perr error
	err := s.onLoop(ctx, s.loops[i], func(ls *loopState) {
		defer func() {
			if v := recover(); v != nil {
				perr = fmt.Errorf("actor: VisitActors function panicked: %v", v)
			}
		}()
		for idx := uint32(0); idx < ls.next; idx++ {
			sl := ls.slotAt(idx)
			if sl.state == slotFree {
				continue
			}
			f(seam.ActorInfo[Ref, Actor]{Ref: Ref{l: ls, idx: idx, gen: sl.gen}, Name: sl.name, Parent: sl.parent,
				Actor: sl.actor, Suspended: sl.state == slotSuspended, Stashed: len(sl.stash), Incarnation: sl.inc})
		}
	})
	if err != nil {
		return err
	}
	return perr
}

// Inspect runs f on r's loop, inside the actor r, and waits until it has
// (or ctx is done). c is the actor's Context as in a handler (Self, Now,
// Send, ...) and a its current instance (after a crash, the crashed
// instance until its restart; nil after a Suspend), so f may read and
// replace its state, as Erlang's sys:get_state and
// sys:replace_state. f runs between events; like a handler it must not
// block. A panic in f is recovered and returned as a *CrashError; it does not
// crash the actor. Inspect fails with ErrDead for a stopped actor,
// ErrInvalidRef for the zero Ref or another system's actor, and
// ErrRemoteUnsupported for a remote one.
func (s *System) Inspect(ctx context.Context, r Ref, f func(c *Context, a Actor)) error {
	return r.box().inspect(ctx, s, r, f)
}

// inspectNow runs f inside r, on r's loop.
func (ls *loopState) inspectNow(r Ref, f func(*Context, Actor)) (err error) {
	sl := ls.lookup(r)
	if sl == nil {
		return ErrDead
	}
	if sl.running {
		return ErrCycle
	}
	c := &ls.ctx
	saved := *c
	c.self, c.sender, c.slot, c.env, c.deferred = r, Ref{}, sl, nil, false
	sl.running = true
	defer func() {
		if v := recover(); v != nil {
			err = &CrashError{Actor: r, Value: v, Stack: stack()}
		}
		sl.running = false
		*c = saved
		if sl.stopReq {
			ls.stop(sl, r, sl.reason)
		}
	}()
	f(c, sl.actor)
	return nil
}
