package actor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/internal/seam"

	"github.com/actord/actord/loop"
)

// The loop's side of the mailbox: how an operation on a Ref of this node
// reaches its actor. Every body here serves every caller: an actor of the
// same loop (done at once where the operation allows), an actor of
// another loop, a plain goroutine, and a transport delivering for another
// node (wire, which calls the same methods with the network's origin).

// enqueue queues e for l, as its origin posts: an actor of l itself on
// l's local queue (no atomics, and a loop never waits on its own full
// ring); an actor of another loop or a plain goroutine on l's inbound
// ring, waking l; a transport's network goroutine on the inbound ring,
// running l's pass itself if l is idle (postRun) or leaving l to a later
// Kick (postQuiet).
func (l *loopState) enqueue(o origin, e *envelope) error {
	var err error
	switch {
	case o.ls == l:
		err = l.loop.PostLocal(*e)
	case o.ls != nil || o.how == postWake:
		err = l.loop.Post(*e)
	case o.how == postRun:
		err = l.loop.PostRun(*e)
	default:
		err = l.loop.PostQuiet(*e)
	}
	if err != nil {
		return postErr(err)
	}
	return nil
}

// ordered is enqueue for what must keep its place and must not be lost
// (link requests, exit signals, Downs): behind what its origin queued for
// l before, ahead of what is queued after; only when that queue is full
// does it take the control queue, which is never refused, giving up order
// under overload only.
func (l *loopState) ordered(o origin, e *envelope) error {
	err := l.enqueue(o, e)
	if errors.Is(err, ErrQueueFull) {
		err = l.control(o, e)
	}
	return err
}

// control queues e on l's unbounded control queue, which l drains first
// in each pass: for stops, kills and lifecycle requests, which overtake
// queued messages.
func (l *loopState) control(o origin, e *envelope) error {
	if o.ls == nil && o.how == postRun {
		return postErr(l.loop.PostControlRun(*e))
	}
	return postErr(l.loop.PostControl(*e))
}

// send and ask post from another loop or a plain goroutine without going
// through enqueue: the common case, where the envelope built in place and
// the inlined Post measurably matter (BenchmarkFanIn).
func (l *loopState) send(o origin, to, from Ref, msg any) error {
	if o.ls != l && (o.ls != nil || o.how == postWake) {
		var e envelope // field by field, not a literal: see sendWait
		e.kind, e.to, e.from, e.msg = kSend, to, from, msg
		return postErr(l.loop.PostPtr(&e))
	}
	return l.enqueue(o, &envelope{kind: kSend, to: to, from: from, msg: msg})
}

// sendMany queues msgs as send does, waking l's loop once for the batch
// rather than once per message.
func (l *loopState) sendMany(o origin, to, from Ref, msgs []any) (int, error) {
	if o.ls != l && (o.ls != nil || o.how == postWake) {
		for i, m := range msgs {
			if err := l.loop.PostQuiet(envelope{kind: kSend, to: to, from: from, msg: m}); err != nil {
				if i > 0 {
					l.loop.Notify()
				}
				return i, postErr(err)
			}
		}
		if len(msgs) > 0 {
			l.loop.Notify()
		}
		return len(msgs), nil
	}
	for i, m := range msgs {
		if err := l.enqueue(o, &envelope{kind: kSend, to: to, from: from, msg: m}); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func (l *loopState) notify(o origin, to Ref, msg any) error {
	return l.ordered(o, &envelope{kind: kSend, to: to, msg: msg})
}

// ask from another loop wakes l, as a send does. With
// Config.LendTimedAsks (o.lend) it posts with PostFrom instead: when the
// asking loop has nothing else to do and l is idle with nothing queued
// before the request, the asker's goroutine handles the request (the
// reply is queued for the asker) rather than switching to l's goroutine
// and back; a slow handler then stalls the asking loop too.
func (l *loopState) ask(o origin, to, from Ref, msg any, pidx, pgen uint32) error {
	if o.ls != l && o.ls != nil {
		if o.lend {
			return postErr(l.loop.PostFrom(o.ls.loop, envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen}))
		}
		return postErr(l.loop.Post(envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen}))
	}
	if o.ls == nil && o.how == postWake {
		return postErr(l.loop.Post(envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen}))
	}
	return l.enqueue(o, &envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen})
}

func (l *loopState) forward(o origin, e envelope) error {
	if o.ls != l && (o.ls != nil || o.how == postWake) { // as send and ask
		return postErr(l.loop.Post(e))
	}
	return l.enqueue(o, &e)
}

// reply posts to the asker's control queue: the asker's loop bounds
// replies by its own pending asks, so the queue cannot grow without bound,
// and refusing a reply would leave an ask waiting for nothing. A closed
// loop has no one to tell.
func (l *loopState) reply(_ Ref, pidx, pgen uint32, v any, err error) {
	_ = l.loop.PostControl(envelope{kind: kReply, pidx: pidx, pgen: pgen, msg: v, err: err})
}

// askWait posts the request with a pooled waiter and waits on it.
func (l *loopState) askWait(ctx context.Context, s *System, to Ref, msg any) (any, error) {
	if s.cfg.Manual {
		return s.askManual(ctx, l, to, msg)
	}
	w := s.getWaiter()
	if err := l.postAsk(envelope{kind: kAsk, to: to, msg: msg, ch: w.ch}, s.patient(ctx)); err != nil {
		s.waiters.Put(w)
		return nil, postErr(err)
	}
	return w.await(ctx, 0)
}

// lendAfter is how long an asker must be prepared to wait for it to run
// the target's handler itself under Config.LendTimedAsks: a shorter
// timeout is there to catch a slow handler, which the asker could not do
// while it runs that handler. It is the watchdog's default budget, past
// which a handler counts as stalling its loop.
const lendAfter = time.Second

// patient reports whether a goroutine asking with ctx may run the
// handler itself (postAsk): when it would wait without bound anyway (ctx
// nil, or one that can be neither cancelled nor time out), and with
// Config.LendTimedAsks also when ctx's deadline is at least lendAfter
// away. A ctx that can be cancelled but has no deadline never lends: the
// cancellation may come at any time.
func (s *System) patient(ctx context.Context) bool {
	if ctx == nil || ctx.Done() == nil {
		return true
	}
	if !s.cfg.LendTimedAsks {
		return false
	}
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) >= lendAfter
}

// postAsk posts a plain goroutine's ask. If lend, it posts with PostOwn:
// when the loop is idle and nothing is queued before the request, the
// asking goroutine handles the request itself (and nothing else) instead
// of waking the loop's goroutine and parking until that goroutine wakes it
// back: the asker would only wait meanwhile, and the round trip takes no
// goroutine switch at all (the reply is in the waiter's channel when the
// handler returns). Order and exclusion are as with Post. The asker cannot
// notice its timeout or cancellation while the handler runs, so it lends
// only when patient (or askTimeout) says so.
func (l *loopState) postAsk(e envelope, lend bool) error {
	if lend {
		return l.loop.PostOwn(e)
	}
	return l.loop.Post(e)
}

// askTimeout is askWait bounded by d (the waiter's timer) rather than by a
// context.
func (l *loopState) askTimeout(s *System, to Ref, msg any, d time.Duration) (any, error) {
	if l.sys != s {
		return nil, ErrInvalidRef
	}
	if s.cfg.Manual {
		return s.askWithContext(to, msg, d)
	}
	w := s.getWaiter()
	if err := l.postAsk(envelope{kind: kAsk, to: to, msg: msg, ch: w.ch}, s.cfg.LendTimedAsks && (d <= 0 || d >= lendAfter)); err != nil {
		if !errors.Is(err, loop.ErrFull) {
			s.waiters.Put(w)
			return nil, postErr(err)
		}
		return l.askFull(s, w, to, msg, d)
	}
	return w.await(context.Background(), d)
}

// askFull is askTimeout once the queue was found full: it waits for room
// and then for the reply, both within d, through a context (the rare
// path).
func (l *loopState) askFull(s *System, w *waiter, to Ref, msg any, d time.Duration) (any, error) {
	ctx, cancel := timeoutContext(d)
	defer cancel()
	if err := l.loop.PostWait(ctx, envelope{kind: kAsk, to: to, msg: msg, ch: w.ch}); err != nil {
		s.waiters.Put(w)
		if ctx.Err() != nil {
			return nil, ErrTimeout
		}
		return nil, postErr(err)
	}
	v, err := w.await(ctx, 0)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = ErrTimeout
	}
	return v, err
}

// awaitRoom runs wake on l at its next pass, which takes its queued
// messages: on its control queue, which a full queue does not refuse.
func (l *loopState) awaitRoom(o origin, wake func()) bool {
	return l.control(o, &envelope{kind: kRun, msg: func(*loopState) { wake() }}) == nil
}

func (l *loopState) sendWait(ctx context.Context, to Ref, msg any) error {
	if l.sys.cfg.Manual { // no one steps the loop while we wait
		return l.send(origin{}, to, Ref{}, msg)
	}
	// Field by field: a composite literal is built in a temporary and
	// copied with loads wider than its stores, which stall.
	var e envelope
	e.kind, e.to, e.msg = kSend, to, msg
	return postErr(l.loop.PostWaitPtr(ctx, &e))
}

// lifecycleWait runs the request on r's loop, ahead of its queued
// messages, and waits for it there.
func (l *loopState) lifecycleWait(ctx context.Context, s *System, r Ref, q seam.LifecycleRequest) (any, error) {
	if l.sys != s {
		return nil, ErrInvalidRef
	}
	a := ackFor(r, q)
	var deadline time.Time
	if a.timeout > 0 {
		deadline = l.loop.Now().Add(a.timeout)
	}
	var v any
	var err error
	if e := s.onLoop(ctx, l, func(t *loopState) { v, err = a.run(t, r, deadline) }); e != nil {
		return nil, e
	}
	return v, err
}

func (l *loopState) halt(o origin, to Ref, reason error) error {
	if o.ls == l {
		if s := l.lookup(to); s != nil {
			l.stop(s, to, reason)
		}
		return nil
	}
	return l.control(o, &envelope{kind: kStop, to: to, err: reason})
}

// exit delivers an exit signal: a kill (not trappable) at once on this
// loop or ahead of queued messages on another; any other signal behind
// the messages from queued before it.
func (l *loopState) exit(o origin, to, from Ref, reason error, link bool) error {
	if !link && errors.Is(reason, ErrKilled) {
		if o.ls == l {
			if s := l.lookup(to); s != nil {
				l.kill(s, to)
			}
			return nil
		}
		return l.control(o, &envelope{kind: kRun, msg: func(t *loopState) {
			if s := t.lookup(to); s != nil {
				t.kill(s, to)
			}
		}})
	}
	e := envelope{kind: kSignal, to: to, from: from, err: reason}
	if link {
		e.pidx = 1
	}
	return l.ordered(o, &e)
}

func (l *loopState) monitor(o origin, target, watcher Ref) error {
	return l.watchFrom(o, target, watcher, nil)
}

func (l *loopState) demonitor(o origin, target, watcher Ref) error {
	if o.ls == l {
		l.unwatch(target, watcher)
		return nil
	}
	return l.monitorRequest(o, func(t *loopState) { t.unwatch(target, watcher) })
}

// watchFrom registers watcher for a Down when target stops; if target is
// dead, noproc runs instead of the Down (ErrDead) it would get, when set
// (a transport answers a remote monitor of a dead actor itself).
func (l *loopState) watchFrom(o origin, target, watcher Ref, noproc func()) error {
	if o.ls == l {
		l.watch(target, watcher, noproc)
		return nil
	}
	return l.monitorRequest(o, func(t *loopState) { t.watch(target, watcher, noproc) })
}

// monitorRequest queues a monitor or demonitor request for l. From
// another loop it takes the control queue, as it always has; from another
// node it keeps its place among the messages queued for l (ordered), so a
// message sent after it, by anyone who learned of the monitor, cannot be
// handled first.
func (l *loopState) monitorRequest(o origin, f func(*loopState)) error {
	e := envelope{kind: kRun, msg: f}
	if o.ls != nil {
		return l.control(o, &e)
	}
	return l.ordered(o, &e)
}

func (l *loopState) watch(target, watcher Ref, noproc func()) {
	s := l.lookup(target)
	if s == nil {
		if noproc != nil {
			noproc()
			return
		}
		l.sendDown(watcher, target, ErrDead)
		return
	}
	addRef(&s.watchers, watcher)
}

func (l *loopState) unwatch(target, watcher Ref) {
	if s := l.lookup(target); s != nil {
		removeRef(&s.watchers, watcher)
	}
}

// link makes both halves of the link between c's actor and r: at once on
// this loop (ErrDead for a dead r), r's half asynchronously on another
// (a dead r then sends c's actor the exit signal of a dead actor).
func (l *loopState) link(c *Context, r Ref) error {
	self := c.self
	if r == self {
		return nil
	}
	if c.ls == l {
		if !l.addLink(r, self, nil) {
			return ErrDead
		}
		addRef(&c.slot.links, r)
		return nil
	}
	addRef(&c.slot.links, r)
	return l.linkFrom(c.origin(), r, self, nil, nil)
}

// linkFrom queues target's half of a link with from, in order with from's
// messages. epoch is set for a link with a remote actor (see
// wire.LinkLocal); noproc, if set, runs instead of the exit signal (ErrDead)
// a dead target sends from.
func (l *loopState) linkFrom(o origin, target, from Ref, epoch func() (uint64, bool), noproc func()) error {
	return l.ordered(o, &envelope{kind: kRun, msg: func(t *loopState) {
		if t.addLink(target, from, epoch) {
			return
		}
		if noproc != nil {
			noproc()
			return
		}
		t.sendSignal(target, from, ErrDead, true)
	}})
}

// addLink adds from to the links of target, if alive. A remote link
// whose epoch says the request no longer counts is dropped (true).
func (l *loopState) addLink(target, from Ref, epoch func() (uint64, bool)) bool {
	var e uint64
	if epoch != nil {
		var ok bool
		if e, ok = epoch(); !ok {
			return true
		}
	}
	s := l.lookup(target)
	if s == nil {
		return false
	}
	if epoch != nil {
		s.addRemoteLink(from, e)
	} else {
		addRef(&s.links, from)
	}
	return true
}

func (l *loopState) unlink(c *Context, r Ref) error {
	c.slot.removeLink(r)
	return l.unlinkFrom(c.origin(), r, c.self)
}

// unlinkFrom removes target's half of a link with from: at once on this
// loop, in order with from's messages on another.
func (l *loopState) unlinkFrom(o origin, target, from Ref) error {
	if o.ls == l {
		l.removeLink(target, from)
		return nil
	}
	return l.ordered(o, &envelope{kind: kRun, msg: func(t *loopState) { t.removeLink(target, from) }})
}

func (l *loopState) removeLink(target, from Ref) {
	if s := l.lookup(target); s != nil {
		s.removeLink(from)
	}
}

// acknowledge runs a.op for r at once on c's loop, or queues it on r's
// control queue and routes its outcome back to p like a reply, with a
// deadline when a.timeout is positive.
func (l *loopState) acknowledge(c *Context, p Promise, r Ref, a ack) error {
	ls := c.ls
	var deadline time.Time
	if a.timeout > 0 {
		deadline = ls.loop.Now().Add(a.timeout)
	}
	if l == ls {
		v, err := a.run(l, r, deadline)
		ls.settle(p.idx, p.gen, v, err)
		return nil
	}
	rt := route{from: c.self, pidx: p.idx, pgen: p.gen}
	if err := l.control(c.origin(), &envelope{kind: kRun, msg: func(t *loopState) {
		v, err := a.run(t, r, deadline)
		rt.answer(v, err)
	}}); err != nil {
		return err
	}
	if a.timeout > 0 {
		ls.promises.entries[p.idx].deadlined = true
		ls.loop.Schedule(deadline, envelope{kind: kDeadline, pidx: p.idx, pgen: p.gen})
	}
	return nil
}

// run carries out a on r's loop t: late if a is brutal or t got to it at
// or after deadline (zero: none). A dead r is an answer or an error (see
// ack.deadOK).
func (a *ack) run(t *loopState, r Ref, deadline time.Time) (any, error) {
	s := t.lookup(r)
	if s == nil {
		if a.deadOK {
			return ErrDead, nil
		}
		return nil, ErrDead
	}
	late := a.timeout < 0 || (!deadline.IsZero() && !t.loop.Now().Before(deadline))
	return a.op(t, s, late)
}

func (l *loopState) inspect(ctx context.Context, s *System, r Ref, f func(*Context, Actor)) error {
	if l.sys != s {
		return ErrInvalidRef
	}
	var ierr error
	if err := s.onLoop(ctx, l, func(t *loopState) { ierr = t.inspectNow(r, f) }); err != nil {
		return err
	}
	return ierr
}

func (l *loopState) loopIndex() int { return l.id }

func (l *loopState) format(idx, gen uint32) string {
	return fmt.Sprintf("<%d.%d.%d>", l.id, idx, gen)
}
