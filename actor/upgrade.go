package actor

import (
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/internal/seam"
)

// This file is the runtime's side of hot upgrades (package upgrade):
// replacing the instance and the factory of a live actor in its slot, on its
// loop, between two of its events, after letting the continuations of the
// instance being replaced settle; running a function inside an actor from
// another actor; and telling a watcher of an actor's crashes. It is reached
// through seam.Upgrader, off the exported API.

// upgradeView is the upgrade seam of a System (seam.Upgrader).
type upgradeView struct{ s *System }

func init() {
	seam.Upgrader = func(sys any) any { return upgradeView{sys.(*System)} }
}

// swapFunc decides a swap, inside the actor, on its loop: a is the current
// instance (nil while suspended after a crash), factory the slot's factory,
// pending the number of the instance's continuations still outstanding (0
// unless the wait ended first: drain passed, or the held messages reached
// their bound). It returns the new instance and factory; a nil instance
// with a factory sets the factory and, if the actor is alive, restarts it
// from it (Terminate with ErrRestart, then Start, as Restart).
// An error (or a panic, as a *CrashError) changes nothing.
type swapFunc = func(c *Context, a Actor, factory Factory, pending int) (Actor, Factory, error)

// swapState is a swap waiting for the continuations of the instance it
// replaces (slot.upg): the actor's messages and timers are held meanwhile.
type swapState struct {
	r    Ref
	inc  uint32 // the incarnation whose continuations are waited for
	f    swapFunc
	done func(error)
	over bool // finished or aborted: a later deadline does nothing
	full bool // the held messages reached the bound: the wait ended early
	hold bool // Hold's: once f has succeeded, the messages stay held
	held bool // a Hold's wait for Release: never finished by the runtime
}

// Swap carries out f for the actor r, which must be of this System, on r's
// loop, as an event of its own queued behind what c's actor queued for that
// loop before (so after the message r is handling, and never inside a
// handler). When r is alive and has continuations outstanding (promises it
// attached with Then that have not run), r's messages and timers are held
// (stashed in arrival order) until they have run, drain has passed on r's
// loop clock (drain <= 0: no wait), or the held messages have reached the
// loop's queue capacity (the runtime's notices may go beyond it);
// then f is called inside r, with the count of continuations still
// pending. If the wait ended at that bound, an error of f is wrapped in one
// matching ErrQueueFull. When f returns an instance, it replaces r's
// (no Start, no Terminate: f moved the state) and the incarnation is
// bumped, so no continuation of the old instance ever runs against the new
// one; the factory replaces r's for later restarts. Held messages are then
// delivered in order, before anything queued after them. The promise
// settles with f's error, a *CrashError if f panicked, ErrDead if r is dead
// or stops meanwhile, seam.ErrDraining if another swap of r is waiting, an
// error matching ErrCrashed if r crashed while its continuations were
// awaited, ErrRemoteUnsupported for a remote r, ErrInvalidRef for the zero
// Ref or another System's actor.
func (u upgradeView) Swap(c *Context, r Ref, drain time.Duration, f swapFunc) Promise {
	return u.post(c, r, func(t *loopState, done func(any, error)) {
		t.beginSwap(r, drain, f, false, func(err error) { done(nil, err) })
	})
}

// Hold is Swap, but once f has succeeded r's messages and timers go on
// being held, in arrival order, until Release (or r stops, is suspended
// or restarted: as for a swap's wait, a stop fails what is held, a
// restart delivers it). Held messages beyond the loop's queue capacity
// are refused with ErrQueueFull (notices aside), as a full queue's: the
// hold never ends by itself. Another Swap or Hold of r meanwhile gets
// seam.ErrDraining. A move of an actor to another node holds it so: its
// state is exported in f, and Release either gives it its messages back
// or installs what forwards them.
func (u upgradeView) Hold(c *Context, r Ref, drain time.Duration, f swapFunc) Promise {
	return u.post(c, r, func(t *loopState, done func(any, error)) {
		t.beginSwap(r, drain, f, true, func(err error) { done(nil, err) })
	})
}

// Release ends the hold of r (Hold): f is called inside r as a swap's
// function (its outcome applied the same way; an error, or a panic,
// changes nothing), then the held messages are delivered in order, before
// anything queued after them. The promise settles with f's error, ErrDead
// for a dead r, errNotHeld when r is not held (its hold ended: it stopped,
// or was suspended or restarted).
func (u upgradeView) Release(c *Context, r Ref, f swapFunc) Promise {
	return u.post(c, r, func(t *loopState, done func(any, error)) {
		s := t.lookup(r)
		if s == nil {
			done(nil, ErrDead)
			return
		}
		w := s.upg
		if w == nil || !w.held {
			done(nil, errNotHeld)
			return
		}
		w.held, w.f, w.done = false, f, func(err error) { done(nil, err) }
		t.finishSwap(w)
	})
}

// SendOn, called inside a handler of a one-way message, sends that
// message on to to as coming from its own sender, when that sender is
// this node's (or none): a forwarder to another node thus keeps the
// sender, which Forward cannot (it is local only). It reports false, and
// sends nothing, for an ask or a sender on another node (the remote layer
// names only this node's actors as senders).
func (u upgradeView) SendOn(c *Context, to Ref) (bool, error) {
	e := c.env
	if e == nil || e.kind != kSend || c.deferred {
		return false, nil
	}
	if !e.from.IsZero() {
		if l, ok := e.from.box().(*loopState); !ok || l.sys != c.ls.sys {
			return false, nil
		}
	}
	return true, to.box().send(c.origin(), to, e.from, e.msg)
}

// DropTimers, called inside an actor (in a Swap or Release function),
// cancels every timer set for it (After, Every, AfterFunc) and drops the
// ticks its timers fired while it was held: a move that makes it a
// forwarder leaves its timers behind (the new instance sets its own).
func (u upgradeView) DropTimers(c *Context) {
	ls, r := c.ls, c.self
	t := &ls.timers
	for i := range t.entries {
		if e := &t.entries[i]; e.active && e.to == r {
			ls.releaseTimer(uint32(i))
			ls.garbage++
		}
	}
	ls.maybeCompact()
	if s := ls.lookup(r); s != nil {
		kept := s.stash[:0]
		for _, e := range s.stash {
			if e.kind != kSend || e.pidx != timerFired {
				kept = append(kept, e)
			}
		}
		clear(s.stash[len(kept):])
		s.stash = kept
	}
}

// timerFired marks (in pidx, unused by a kSend) the message of a timer
// that fired while its actor was held or suspended, stashed as a send.
const timerFired = ^uint32(0)

// errNotHeld is Release's error for an actor whose hold has ended.
var errNotHeld = errors.New("actor: not held (its hold ended: it stopped, or was suspended or restarted)")

// Asking, called inside a handler, reports whether the message being
// handled is an ask (a forwarder must ask on for the asker's answer).
func (u upgradeView) Asking(c *Context) bool { return c.env != nil && c.env.kind == kAsk }

// Run runs f inside r (as System.Inspect does, a nil a while r is
// suspended), on r's loop, as an event queued behind what c's actor queued
// for that loop before, and settles the promise with f's results: ErrDead
// for a dead r, a *CrashError if f panicked (r does not crash), and the
// errors of Swap for a bad r.
func (u upgradeView) Run(c *Context, r Ref, f func(c *Context, a Actor) (any, error)) Promise {
	return u.post(c, r, func(t *loopState, done func(any, error)) {
		var v any
		var ferr error
		err := t.inspectNow(r, func(c *Context, a Actor) { v, ferr = f(c, a) })
		if err == nil {
			err = ferr
		}
		done(v, err)
	})
}

// WatchCrashes, called inside an actor (in a Swap or Run function) with on
// set, makes every later crash of that actor (in a handler, a continuation
// or Start) be sent to watcher as a *Crash, in order with what the actor's
// loop sends it, until the actor stops, another watcher takes over (one
// per actor) or a swap succeeds: a successful swap ends the watch of the
// version it replaces, and tells that watcher with a seam.CrashWatchEnded
// (its function may start a new watch). With on false it ends watcher's
// watch, if watcher is still the one.
func (u upgradeView) WatchCrashes(c *Context, watcher Ref, on bool) {
	ls := c.ls
	if !on {
		if ls.crashWatch[c.self] == watcher {
			delete(ls.crashWatch, c.self)
		}
		return
	}
	if ls.crashWatch == nil {
		ls.crashWatch = map[Ref]Ref{}
	}
	ls.crashWatch[c.self] = watcher
}

// Watcher, called inside an actor (in a Swap or Run function), returns the
// watcher of its crashes (WatchCrashes), or the zero Ref. A watcher that is
// no longer the one has been superseded by a later swap.
func (u upgradeView) Watcher(c *Context) Ref { return c.ls.crashWatch[c.self] }

// post runs op on r's loop, ordered behind what c's actor queued there,
// and settles the returned promise with what op passes to done.
func (u upgradeView) post(c *Context, r Ref, op func(t *loopState, done func(any, error))) Promise {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	var err error
	switch t := r.box().(type) {
	case *loopState:
		if t.sys != ls.sys {
			err = ErrInvalidRef
			break
		}
		rt := route{from: c.self, pidx: p.idx, pgen: p.gen}
		err = t.ordered(c.origin(), &envelope{kind: kRun, msg: func(t *loopState) {
			op(t, func(v any, err error) { rt.answer(v, err) })
		}})
	case *remoteTarget:
		err = ErrRemoteUnsupported
	default:
		err = ErrInvalidRef
	}
	if err != nil {
		ls.settle(p.idx, p.gen, nil, err)
	}
	return p
}

// beginSwap starts a swap of r on its loop: now, or once r's outstanding
// continuations have run (or drain has passed).
func (ls *loopState) beginSwap(r Ref, drain time.Duration, f swapFunc, hold bool, done func(error)) {
	s := ls.lookup(r)
	if s == nil {
		done(ErrDead)
		return
	}
	if s.upg != nil {
		done(seam.ErrDraining)
		return
	}
	w := &swapState{r: r, inc: s.inc, f: f, done: done, hold: hold}
	if drain > 0 && s.state == slotAlive && ls.pendingConts(r, s.inc) > 0 {
		s.upg = w
		ls.loop.Schedule(ls.loop.Now().Add(drain), envelope{kind: kRun, msg: func(t *loopState) { t.finishSwap(w) }})
		return
	}
	ls.finishSwap(w)
}

// pendingConts counts the continuations of incarnation inc of r that have
// yet to run: attached to a pending promise, or queued to run.
func (ls *loopState) pendingConts(r Ref, inc uint32) int {
	n := 0
	for i := range ls.promises.entries {
		p := &ls.promises.entries[i]
		if p.owner == r && p.inc == inc && (p.state == pQueued || (p.state == pPending && p.cont.set())) {
			n++
		}
	}
	return n
}

// drained finishes the swap waiting on s once its continuations have run.
// It runs after each continuation of an actor whose swap waits.
func (ls *loopState) drained(s *slot) {
	if w := s.upg; w != nil && !w.held && ls.pendingConts(w.r, w.inc) == 0 {
		ls.finishSwap(w)
	}
}

// abortSwap ends the swap waiting on s with err, without calling its
// function: r crashed, stopped, or was suspended or restarted meanwhile.
// The held messages stay stashed: a crashed or suspended actor keeps them
// for its restart, a restart delivers them, a stop fails them.
func (ls *loopState) abortSwap(s *slot, err error) {
	w := s.upg
	s.upg = nil
	w.over = true
	w.done(err)
}

// errHeldFull wraps the error of a swap whose wait ended because the
// messages it held reached the bound of a stash (the loop's queue capacity).
var errHeldFull = &heldFullError{}

type heldFullError struct{}

func (*heldFullError) Error() string {
	return "actor: the messages held while a swap waited for continuations reached the queue capacity"
}
func (*heldFullError) Is(target error) bool { return target == ErrQueueFull }

// errCrashedDraining is the error of a swap whose actor crashed while its
// continuations were awaited.
var errCrashedDraining = &swapCrashError{}

type swapCrashError struct{}

func (*swapCrashError) Error() string {
	return "actor: crashed while a swap waited for its continuations"
}
func (*swapCrashError) Is(target error) bool { return target == ErrCrashed }

// finishSwap calls the swap's function inside r and applies its outcome,
// then delivers the messages held for it.
func (ls *loopState) finishSwap(w *swapState) {
	if w.over {
		return
	}
	s := ls.lookup(w.r)
	if s != nil && s.running && (s.upg == nil || s.upg == w) {
		// Inside one of r's own events (not reached today: swaps run as
		// events of their own): hold r's messages and try again as an event
		// of its own, rather than fail and leave what is held stashed.
		s.upg = w
		if err := ls.loop.PostControl(envelope{kind: kRun, msg: func(t *loopState) { t.finishSwap(w) }}); err != nil {
			ls.abortSwap(s, postErr(err)) // the loop is closing: its stop fails what is held
		}
		return
	}
	w.over = true
	if s == nil || (s.upg != nil && s.upg != w) {
		w.done(ErrDead) // cannot happen: stop and abortSwap end w first
		return
	}
	s.upg = nil
	pending := 0
	if s.state == slotAlive {
		pending = ls.pendingConts(w.r, s.inc)
	}
	// A swap ends the crash watch of the version it replaces (f may start
	// another, or end it); a refused one leaves it as it was.
	prevWatch, watched := ls.crashWatch[w.r]
	var na Actor
	var nf Factory
	var ferr error
	err := ls.inspectNow(w.r, func(c *Context, a Actor) {
		if s.state != slotAlive {
			a = nil // a crashed instance stays in its slot until its restart: not one to migrate
		}
		na, nf, ferr = w.f(c, a, s.factory, pending)
	})
	if err == nil {
		err = ferr
	}
	if err != nil && w.full {
		err = fmt.Errorf("%w: %w", errHeldFull, err)
	}
	if err == nil && ls.lookup(w.r) == nil {
		err = ErrDead // f stopped it
	}
	if err == nil {
		switch {
		case nf == nil:
			err = ErrNilActor
		case na != nil && s.state == slotAlive:
			s.actor, s.factory = na, nf
			s.inc++ // continuations of the replaced instance never run
		case na != nil:
			err = errAlreadySuspended // it crashed: there is no state to replace
		default:
			s.factory = nf
			if s.state == slotAlive {
				err = ls.restart(s, w.r)
			}
		}
	}
	if ls.lookup(w.r) == s {
		now, ok := ls.crashWatch[w.r]
		switch {
		case err != nil && watched:
			ls.crashWatch[w.r] = prevWatch
		case err != nil:
			delete(ls.crashWatch, w.r)
		case watched:
			if ok && now == prevWatch {
				delete(ls.crashWatch, w.r)
			}
			_ = prevWatch.box().notify(ls.origin(), prevWatch, seam.CrashWatchEnded{})
		}
	}
	if err == nil && w.hold && ls.lookup(w.r) == s && s.state == slotAlive {
		// Held on until Release, which finishes this new state (a new
		// one: a drain deadline scheduled for w must find w over). An
		// abort (stop, suspend, restart) answers nobody now.
		s.upg = &swapState{r: w.r, inc: s.inc, held: true, done: func(error) {}}
		w.done(nil)
		return
	}
	if ls.lookup(w.r) == s && s.state == slotAlive {
		ls.flushStash(s, w.r)
	}
	w.done(err)
}

// flushStash delivers the messages stashed for s, in order, while it stays
// alive and nothing holds them again.
func (ls *loopState) flushStash(s *slot, r Ref) {
	for len(s.stash) > 0 && s.state == slotAlive && s.gen == r.gen && s.upg == nil {
		e := s.stash[0]
		s.stash = s.stash[1:]
		ls.deliver(&e)
	}
	if len(s.stash) == 0 {
		s.stash = nil
	}
}

// tellCrashWatch sends cr to the watcher of r's crashes, if any.
func (ls *loopState) tellCrashWatch(r Ref, cr *Crash) {
	if w, ok := ls.crashWatch[r]; ok {
		_ = w.box().notify(ls.origin(), w, cr)
	}
}
