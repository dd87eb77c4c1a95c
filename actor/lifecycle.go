package actor

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/actord/actord/internal/seam"
)

// The life of an actor: suspending it, the lifecycle requests with
// acknowledgement that supervisors use (they work on actors of any loop,
// never block a loop, and answer with a Promise), and, at the end of the
// file, its start, stop and restart on its own loop.

// Suspend ends the current instance of r (on this loop) without ending the
// actor: r's Terminate runs with reason, then r is suspended as after a
// supervised crash: its refs stay valid, messages for it are held (bounded by
// the queue capacity) and calls to it fail with ErrCrashed, until Restart
// (which starts a new instance from the factory and delivers the held
// messages in order) or Stop. It is how a supervisor takes down the siblings
// of a crashed child before restarting them all in place.
//
// It returns ErrNotLocal for an actor of another loop (use SuspendAsync) or
// node, ErrDead for a dead one, ErrCycle when r's handler is on the stack,
// and an error matching ErrCrashed when r was already suspended after a
// crash (its Crashed message is then on its way to its parent, or already
// there); it then does nothing. If Terminate stops r, r is dead (ErrDead).
func (c *Context) Suspend(r Ref, reason error) error {
	s, err := c.here(r)
	if err != nil {
		return err
	}
	return c.ls.suspend(s, r, reason, false)
}

func (ls *loopState) suspend(s *slot, r Ref, reason error, brutal bool) error {
	if s.running {
		return ErrCycle
	}
	if s.state == slotSuspended {
		return errAlreadySuspended
	}
	if s.upg != nil {
		ls.abortSwap(s, ErrRestart)
	}
	if t, ok := s.actor.(Terminator); ok && !brutal {
		ls.terminate(t, s, r, reason)
		if s.stopReq {
			ls.stop(s, r, s.reason)
			return ErrDead
		}
	}
	s.state = slotSuspended
	s.inc++ // continuations of the ended instance never run
	s.actor = nil
	return nil
}

// errAlreadySuspended is what Suspend returns for an actor already suspended
// after a crash.
var errAlreadySuspended = &suspendedError{}

type suspendedError struct{}

func (*suspendedError) Error() string        { return "actor: already suspended after a crash" }
func (*suspendedError) Is(target error) bool { return target == ErrCrashed }

// StopAsync stops r, on any loop, and returns a promise settled with no
// error once r has stopped (its Terminate has returned, its refs are dead,
// its monitors and links are told) or was already dead. The promise's value
// is the reason r ended with: reason, ErrKilled if it was killed, the
// reason it chose if its Terminate stopped it with another (see Stop), or
// ErrDead if it was already dead. On this loop the stop happens at once and
// the promise is settled in this turn.
//
// timeout bounds the wait: if r's loop has not got to the stop within
// timeout (it is busy in a long handler, say), the promise fails with
// ErrTimeout and the stop becomes a kill: when r's loop gets to it, r is
// stopped with reason ErrKilled without running Terminate (a Terminate that
// has already begun runs to its end: nothing preempts a running handler).
// timeout == 0 means no deadline; timeout < 0 means kill now (Erlang's
// brutal_kill): Terminate is not run and the reason is ErrKilled.
func (c *Context) StopAsync(r Ref, reason error, timeout time.Duration) Promise {
	return c.lifecycle(r, seam.LifecycleRequest{Op: seam.LifecycleStop, Reason: reason, Timeout: timeout})
}

// errValue boxes err as a promise value, nil staying the nil value.
func errValue(err error) any {
	if err == nil {
		return nil
	}
	return err
}

// AliveAsync asks whether r is alive, on any loop: the promise settles with
// nil if r is running or suspended (after a crash, or by Suspend), and with
// ErrDead if it has stopped. It neither delivers anything to r nor changes
// it.
func (c *Context) AliveAsync(r Ref) Promise {
	return c.lifecycle(r, seam.LifecycleRequest{Op: seam.LifecycleAlive})
}

// SuspendAsync is Suspend for an actor of any loop, with the deadline rules
// of StopAsync: an instance whose loop has not got to the request within
// timeout is suspended without running Terminate, and timeout < 0 suspends
// without Terminate at once. The promise settles with nil, or with the
// errors of Suspend (ErrCrashed when r had already crashed, ErrDead, ...).
func (c *Context) SuspendAsync(r Ref, reason error, timeout time.Duration) Promise {
	return c.lifecycle(r, seam.LifecycleRequest{Op: seam.LifecycleSuspend, Reason: reason, Timeout: timeout})
}

// RestartAsync is Restart for an actor of any loop: the promise settles
// with nil once the new instance's Start has returned, or with Restart's
// errors (the Start error, after which r is stopped; ErrDead; ErrCycle). It
// has no deadline: a start is not interrupted (the loop watchdog reports a
// start that hangs).
func (c *Context) RestartAsync(r Ref) Promise {
	return c.lifecycle(r, seam.LifecycleRequest{Op: seam.LifecycleRestart})
}

// lifecycle runs q on r's loop (see loopState.acknowledge) and returns a
// promise of its outcome.
func (c *Context) lifecycle(r Ref, q seam.LifecycleRequest) Promise {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	if err := r.box().acknowledge(c, p, r, ackFor(r, q)); err != nil {
		ls.settle(p.idx, p.gen, nil, err)
	}
	return p
}

// ackFor is the ack that carries out q for r on r's loop: the one place
// each request's effect is written, for local and remote requesters alike.
// An unknown op fails with ErrUnknownMessage.
func ackFor(r Ref, q seam.LifecycleRequest) ack {
	a := ack{req: q, timeout: q.Timeout}
	switch q.Op {
	case seam.LifecycleStop:
		a.deadOK = true
		a.op = func(t *loopState, s *slot, late bool) (any, error) {
			if late {
				return errValue(t.kill(s, r)), nil
			}
			return errValue(t.stop(s, r, q.Reason)), nil
		}
	case seam.LifecycleSuspend:
		a.op = func(t *loopState, s *slot, late bool) (any, error) {
			return nil, t.suspend(s, r, q.Reason, late)
		}
	case seam.LifecycleRestart:
		a.timeout = 0 // a start is not interrupted
		a.op = func(t *loopState, s *slot, _ bool) (any, error) {
			return nil, t.restart(s, r)
		}
	case seam.LifecycleAlive:
		a.timeout = 0
		a.op = func(*loopState, *slot, bool) (any, error) { return nil, nil }
	default:
		a.timeout = 0
		a.op = func(*loopState, *slot, bool) (any, error) {
			return nil, fmt.Errorf("%w: lifecycle op %d", ErrUnknownMessage, q.Op)
		}
	}
	return a
}

// Reporting reports whether Report reaches anyone (the loop has an event
// hook or a lifecycle hook), so that an actor can skip building a report
// that nobody would read.
func (c *Context) Reporting() bool { return c.ls.watching }

// Report publishes v, a structured report about the running actor (a
// supervisor's crash or restart report, say), to the loop's event hook as an
// EventReport with To set to the running actor and Msg to v. Without a hook
// it costs one nil check.
func (c *Context) Report(v any) {
	ls := c.ls
	if ls.watching {
		ls.report(EventReport, Ref{}, c.self, v, ls.loop.Now(), 0, nil, nil)
	}
}

// The life of an actor on its loop: start, stop, restart.

// stop ends the actor in s: Terminate, refs dead, stash failed, watchers
// told. It returns the reason the actor ended with: reason, unless its
// Terminate stopped the actor itself with another (a stop of its own,
// requested while Terminate runs, chooses the reason its monitors and links
// see, as an Erlang process trapping exits may exit with a reason of its
// own). While the actor's handler is on the stack the stop waits for it and
// reason is returned.
func (ls *loopState) stop(s *slot, r Ref, reason error) error {
	if s.running {
		s.stopReq, s.reason = true, reason
		return reason
	}
	if s.upg != nil {
		ls.abortSwap(s, ErrDead)
	}
	if len(ls.crashWatch) > 0 {
		delete(ls.crashWatch, r)
	}
	if t, ok := s.actor.(Terminator); ok && s.state == slotAlive && !s.noTerm {
		s.stopReq = false
		ls.terminate(t, s, r, reason)
		if s.stopReq {
			reason = s.reason
		}
	}
	s.gen++
	stash, watchers, links := s.stash, s.watchers, s.links
	*s = slot{gen: s.gen}
	ls.free = append(ls.free, r.idx)
	ls.live.Add(-1)
	for i := range stash {
		ls.drop(&stash[i], ErrDead)
	}
	for _, w := range watchers {
		ls.sendDown(w, r, reason)
	}
	for _, l := range links {
		ls.sendSignal(r, l, reason, true)
	}
	if ls.watching {
		ls.report(EventStop, Ref{}, r, nil, ls.loop.Now(), 0, reason, nil)
	}
	return reason
}

func (ls *loopState) terminate(t Terminator, s *slot, r Ref, reason error) {
	c := &ls.ctx
	saved := *c
	c.self, c.sender, c.slot, c.env, c.deferred = r, Ref{}, s, nil, false
	s.running = true
	func() {
		defer func() {
			if v := recover(); v != nil {
				ls.sys.log.Error("actor Terminate panicked", "actor", r.String(), "panic", v)
			}
		}()
		t.Terminate(c, reason)
	}()
	s.running = false
	*c = saved
}

// start creates the actor of s from its factory and runs its Start method.
func (ls *loopState) start(s *slot, r Ref) (err error) {
	c := &ls.ctx
	saved := *c
	c.self, c.sender, c.slot, c.env, c.deferred = r, Ref{}, s, nil, false
	s.running = true
	var top byte // on this frame: the crash stack is walked up to here
	defer func() {
		if v := recover(); v != nil {
			ce := &CrashError{Actor: r, Value: v}
			ce.Stack, ce.PCs = ls.sys.crashStack(v, unsafe.Pointer(&top), nil)
			cr := &Crash{Actor: r, Name: s.name, Loop: ls.id, Incarnation: s.inc, Value: v,
				Stack: ce.Stack, PCs: ce.PCs, Time: ls.loop.Now(), Supervised: s.sup}
			if ls.watching {
				ls.report(EventCrash, Ref{}, r, nil, cr.Time, 0, ce, cr)
			}
			ls.sys.onCrash(cr)
			ls.tellCrashWatch(r, cr)
			err = ce
		}
		s.running = false
		*c = saved
	}()
	s.inc++
	s.trap = false // a new instance starts not trapping exits, as a new Erlang process
	s.actor = s.factory()
	if s.actor == nil {
		return ErrNilActor
	}
	if st, ok := s.actor.(Starter); ok {
		return st.Start(c)
	}
	return nil
}

// spawn creates an actor on this loop. It runs on the loop goroutine.
func (ls *loopState) spawn(f Factory, o spawnOpts, parent Ref) (Ref, error) {
	if ls.stopping || ls.sys.closing.Load() {
		return Ref{}, ErrShutdown
	}
	if f == nil {
		return Ref{}, ErrNilActor
	}
	var epoch uint64
	if o.linkEpoch != nil {
		var ok bool
		if epoch, ok = o.linkEpoch(); !ok {
			return Ref{}, o.linkLost
		}
		parent = o.parent
	}
	idx, s := ls.allocSlot()
	s.factory, s.name, s.parent, s.sup, s.state = f, o.name, parent, o.supervised, slotAlive
	if o.linkEpoch != nil {
		s.addRemoteLink(parent, epoch) // before Start: the actor is never unlinked
	}
	r := Ref{l: ls, idx: idx, gen: s.gen}
	ls.live.Add(1)
	if err := ls.start(s, r); err != nil {
		s.gen++
		*s = slot{gen: s.gen}
		ls.free = append(ls.free, idx)
		ls.live.Add(-1)
		return Ref{}, err
	}
	if ls.watching {
		ls.report(EventSpawn, parent, r, nil, ls.loop.Now(), 0, nil, nil)
	}
	return r, nil
}

// restart re-creates a live or suspended actor in its slot, keeping its refs,
// then delivers the messages stashed while it was suspended.
func (ls *loopState) restart(s *slot, r Ref) error {
	if s.running {
		return ErrCycle
	}
	if s.upg != nil {
		ls.abortSwap(s, ErrRestart)
	}
	if t, ok := s.actor.(Terminator); ok && s.state == slotAlive {
		ls.terminate(t, s, r, ErrRestart)
	}
	s.state = slotAlive
	if err := ls.start(s, r); err != nil {
		s.actor = nil // it never started: no Terminate
		ls.stop(s, r, err)
		return err
	}
	if ls.watching {
		ls.report(EventRestart, Ref{}, r, nil, ls.loop.Now(), 0, nil, nil)
	}
	ls.flushStash(s, r)
	return nil
}

// stopAll stops every actor of the loop, newest first, at shutdown.
func (ls *loopState) stopAll(reason error) {
	ls.stopping = true
	for idx := ls.next; idx > 0; idx-- {
		s := ls.slotAt(idx - 1)
		if s.state != slotFree {
			ls.stop(s, Ref{l: ls, idx: idx - 1, gen: s.gen}, reason)
		}
	}
	ls.promises.failAll(ls)
}
