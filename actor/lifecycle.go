package actor

import "time"

// Lifecycle operations with acknowledgement, for supervisors: they work on
// actors of any loop, never block a loop, and answer with a Promise.

// Suspend ends the current instance of r (on this loop) without ending the
// actor: r's Terminate runs with reason, then r is suspended as after a
// supervised crash: its refs stay valid, messages for it are held (bounded by
// the queue capacity) and calls to it fail with ErrCrashed, until Restart
// (which starts a new instance from the factory and delivers the held
// messages in order) or Stop. It is how a supervisor takes down the siblings
// of a crashed child before restarting them all in place.
//
// It returns ErrNotLocal for an actor of another loop (use SuspendAsync),
// ErrDead for a dead one, ErrCycle when r's handler is on the stack, and an
// error matching ErrCrashed when r was already suspended after a crash (its
// Crashed message is then on its way to its parent, or already there); it
// then does nothing. If Terminate stops r, r is dead (ErrDead).
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
	return c.lifecycle(r, ack{timeout: timeout, deadOK: true, op: func(t *loopState, s *slot, late bool) (any, error) {
		if late {
			return errValue(t.kill(s, r)), nil
		}
		return errValue(t.stop(s, r, reason)), nil
	}})
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
// it. It fails with ErrRemoteUnsupported for a remote ref.
func (c *Context) AliveAsync(r Ref) Promise {
	return c.lifecycle(r, ack{op: func(*loopState, *slot, bool) (any, error) { return nil, nil }})
}

// SuspendAsync is Suspend for an actor of any loop, with the deadline rules
// of StopAsync: an instance whose loop has not got to the request within
// timeout is suspended without running Terminate, and timeout < 0 suspends
// without Terminate at once. The promise settles with nil, or with the
// errors of Suspend (ErrCrashed when r had already crashed, ErrDead, ...).
func (c *Context) SuspendAsync(r Ref, reason error, timeout time.Duration) Promise {
	return c.lifecycle(r, ack{timeout: timeout, op: func(t *loopState, s *slot, late bool) (any, error) {
		return nil, t.suspend(s, r, reason, late)
	}})
}

// RestartAsync is Restart for an actor of any loop: the promise settles
// with nil once the new instance's Start has returned, or with Restart's
// errors (the Start error, after which r is stopped; ErrDead; ErrCycle). It
// has no deadline: a start is not interrupted (the loop watchdog reports a
// start that hangs).
func (c *Context) RestartAsync(r Ref) Promise {
	return c.lifecycle(r, ack{op: func(t *loopState, s *slot, _ bool) (any, error) {
		return nil, t.restart(s, r)
	}})
}

// lifecycle runs a on r's loop (see loopState.acknowledge) and returns a
// promise of its outcome.
func (c *Context) lifecycle(r Ref, a ack) Promise {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	if err := r.box().acknowledge(c, p, r, a); err != nil {
		ls.settle(p.idx, p.gen, nil, err)
	}
	return p
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
