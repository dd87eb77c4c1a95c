package actor

import (
	"time"

	"github.com/actord/actord/internal/seam"
)

// Promise is the pending result of an Ask, of blocking work, or of a
// combination of promises. It is a small value handle into its loop's
// promise table, so making one does not allocate.
//
// A promise belongs to the loop of the actor that made it. Attach its
// continuation with Then from a handler on that loop, in the same turn that
// made it (the handler or continuation that called Ask): a promise never
// settles before that turn ends, so no result is missed. The continuation
// runs later on the same loop, inside the actor that made the promise, which
// may touch its own state. If that actor has stopped or crashed since, the
// continuation is dropped.
//
// A promise settles exactly once. A promise nobody attached a continuation to
// is discarded when it settles.
type Promise struct {
	ls       *loopState
	idx, gen uint32
}

// Continuation receives a promise's result inside the actor that made it.
type Continuation func(c *Context, v any, err error)

// cont is a promise's continuation: f, or (through the promise seam) k's
// method with arg, which a caller that keeps its state in an object of its
// own attaches without a closure per promise.
type cont struct {
	f   Continuation
	k   seam.Cont[*Context]
	arg int
}

func (k *cont) set() bool { return k.f != nil || k.k != nil }

// promise states.
const (
	pFree uint8 = iota
	pPending
	pSettled // settled in its creating turn with no continuation yet
	pQueued  // settled with a continuation waiting in a kCont event
)

type promiseEntry struct {
	cont      cont
	val       any
	err       error
	turn      uint64
	owner     Ref
	gen       uint32
	inc       uint32 // owner's incarnation when the promise was made
	state     uint8
	deadlined bool     // a kDeadline event for it sits in the timer heap
	peer      nodePeer // remote asks: the node asked, so a lost connection fails it
	epoch     uint64   // remote asks: the connection epoch it went out on
}

type promiseTable struct {
	entries []promiseEntry
	free    []uint32
	pending int
}

func (t *promiseTable) alloc(ls *loopState, owner Ref, inc uint32) Promise {
	var idx uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.entries = append(t.entries, promiseEntry{})
		idx = uint32(len(t.entries) - 1)
	}
	p := &t.entries[idx]
	p.state, p.owner, p.inc, p.turn = pPending, owner, inc, ls.turn
	t.pending++
	return Promise{ls: ls, idx: idx, gen: p.gen}
}

func (t *promiseTable) get(idx, gen uint32) *promiseEntry {
	if int(idx) >= len(t.entries) {
		return nil
	}
	p := &t.entries[idx]
	if p.gen != gen || p.state == pFree {
		return nil
	}
	return p
}

func (t *promiseTable) release(idx uint32) {
	p := &t.entries[idx]
	gen := p.gen + 1
	*p = promiseEntry{gen: gen}
	t.free = append(t.free, idx)
}

// failAll settles every pending promise with ErrShutdown without running
// continuations (their actors are stopping too).
func (t *promiseTable) failAll(ls *loopState) {
	for i := range t.entries {
		if t.entries[i].state != pFree {
			t.release(uint32(i))
		}
	}
	t.pending = 0
}

// settle resolves a pending promise of this loop. A late reply (after a
// timeout) finds no pending promise and is discarded.
func (ls *loopState) settle(idx, gen uint32, v any, err error) {
	p := ls.promises.get(idx, gen)
	if p == nil || p.state != pPending {
		return
	}
	ls.promises.pending--
	if p.deadlined {
		p.deadlined = false
		ls.garbage++
		ls.maybeCompact()
	}
	if !p.cont.set() {
		if p.turn == ls.turn {
			p.state, p.val, p.err = pSettled, v, err
			ls.settled = append(ls.settled, idx)
			return
		}
		ls.promises.release(idx)
		return
	}
	if ls.ctx.slot != nil {
		// Settled from inside an actor (a resolve function, a combinator):
		// the owner may be that very actor, so run the continuation as an
		// event of its own rather than nested in this one.
		p.state, p.val, p.err = pQueued, v, err
		_ = ls.loop.PostControl(envelope{kind: kCont, pidx: idx, pgen: gen})
		return
	}
	cont, owner, inc := p.cont, p.owner, p.inc
	ls.promises.release(idx)
	ls.runCont(owner, inc, cont, nil, v, err)
}

// deadline fires the timeout of a promise, if it is still pending.
func (ls *loopState) deadline(idx, gen uint32) {
	p := ls.promises.get(idx, gen)
	if p == nil || p.state != pPending || !p.deadlined {
		ls.garbage--
		return
	}
	p.deadlined = false
	ls.settle(idx, gen, nil, ErrTimeout)
}

// endTurn discards the promises settled in the turn that just ended that got
// no continuation.
func (ls *loopState) endTurn() {
	for _, idx := range ls.settled {
		if p := &ls.promises.entries[idx]; p.state == pSettled {
			ls.promises.release(idx)
		}
	}
	ls.settled = ls.settled[:0]
}

// runSettled runs the continuation queued for a promise settled in its own
// creating turn.
func (ls *loopState) runSettled(idx, gen uint32) {
	p := ls.promises.get(idx, gen)
	if p == nil || p.state != pQueued {
		return
	}
	cont, owner, inc, v, err := p.cont, p.owner, p.inc, p.val, p.err
	ls.promises.release(idx)
	ls.runCont(owner, inc, cont, nil, v, err)
}

// runCont runs a continuation (cont, or f: a timer's, see AfterFunc) inside
// its owner actor, if that incarnation of the actor is still alive.
func (ls *loopState) runCont(owner Ref, inc uint32, cont cont, f func(*Context), v any, err error) {
	s := ls.lookup(owner)
	if s == nil || s.inc != inc || s.state != slotAlive || s.running {
		if ls.watching {
			ls.report(EventDropped, Ref{}, owner, v, time.Time{}, 0, ErrDead, nil)
		}
		return
	}
	c := &ls.ctx
	saved := *c
	c.self, c.sender, c.slot, c.env, c.deferred = owner, Ref{}, s, nil, false
	s.running = true
	var start time.Time
	var t0 int64
	if ls.hook != nil {
		start, t0 = ls.hookStart()
	}
	ls.callCont(s, c, cont, f, v, err)
	s.running = false
	*c = saved
	if ls.hook != nil {
		ls.reportHandler(s.actor, EventContinuation, Ref{}, owner, v, start, ls.hookSince(t0), err)
	}
	if s.stopReq {
		ls.stop(s, owner, s.reason)
	}
	if s.upg != nil {
		ls.drained(s)
	}
}

func (ls *loopState) callCont(s *slot, c *Context, cont cont, f func(*Context), v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			ls.crash(s, c.self, r, v, Ref{})
		}
	}()
	switch {
	case f != nil:
		f(c)
	case cont.k != nil:
		cont.k.Continue(c, cont.arg, v, err)
	default:
		cont.f(c, v, err)
	}
}

// Then attaches f as the promise's continuation. f runs once, later, inside
// the actor that made the promise. Then must be called from a handler or
// continuation running on the promise's loop (the loop of the actor that made
// it); calling it from another goroutine is a data race, like touching
// another actor's state. Then on a promise that already has a continuation,
// or one that settled in an earlier turn with none, runs f with
// ErrStalePromise.
func (p Promise) Then(f Continuation) { p.then(cont{f: f}) }

func (p Promise) then(k cont) {
	if p.ls == nil {
		panic("actor: Then on the zero Promise")
	}
	ls := p.ls
	e := ls.promises.get(p.idx, p.gen)
	if e == nil || e.cont.set() || e.state == pQueued {
		ls.afterTurn(func(c *Context) { runStale(c, k) }, ls.ctx.self)
		return
	}
	e.cont = k
	if e.state == pSettled {
		e.state = pQueued
		_ = ls.loop.PostControl(envelope{kind: kCont, pidx: p.idx, pgen: p.gen})
	}
}

// afterTurn runs f inside actor self after the current turn.
func (ls *loopState) afterTurn(f func(*Context), self Ref) {
	s := ls.lookup(self)
	var inc uint32
	if s != nil {
		inc = s.inc
	}
	pr := ls.promises.alloc(ls, self, inc)
	e := &ls.promises.entries[pr.idx]
	e.cont.f = func(c *Context, _ any, _ error) { f(c) }
	e.state = pQueued
	ls.promises.pending--
	_ = ls.loop.PostControl(envelope{kind: kCont, pidx: pr.idx, pgen: pr.gen})
}

// runStale runs k with ErrStalePromise (inside the afterTurn continuation
// of a Then that came too late).
func runStale(c *Context, k cont) {
	if k.k != nil {
		k.k.Continue(c, k.arg, nil, ErrStalePromise)
		return
	}
	k.f(c, nil, ErrStalePromise)
}

// IsZero reports whether p is the zero Promise.
func (p Promise) IsZero() bool { return p.ls == nil }

// resolver settles a promise made with Context.Promise.
func (ls *loopState) resolve(p Promise, v any, err error) {
	ls.settle(p.idx, p.gen, v, err)
}

// All returns a promise that settles with a []any of the results of ps, in
// order, once all have succeeded, or with the first error. It must be called
// on the loop of ps, from the actor that made them.
func (c *Context) All(ps ...Promise) Promise {
	out, resolve := c.Promise()
	if len(ps) == 0 {
		resolve([]any{}, nil)
		return out
	}
	vals := make([]any, len(ps))
	left := len(ps)
	done := false
	for i, p := range ps {
		p.Then(func(_ *Context, v any, err error) {
			if done {
				return
			}
			if err != nil {
				done = true
				resolve(nil, err)
				return
			}
			vals[i] = v
			if left--; left == 0 {
				done = true
				resolve(vals, nil)
			}
		})
	}
	return out
}

// First returns a promise that settles with the first success among ps, or,
// if all fail, with the last error. It must be called on the loop of ps, from
// the actor that made them.
func (c *Context) First(ps ...Promise) Promise {
	out, resolve := c.Promise()
	if len(ps) == 0 {
		resolve(nil, ErrDead)
		return out
	}
	left := len(ps)
	done := false
	for _, p := range ps {
		p.Then(func(_ *Context, v any, err error) {
			if done {
				return
			}
			left--
			if err == nil || left == 0 {
				done = true
				resolve(v, err)
			}
		})
	}
	return out
}
