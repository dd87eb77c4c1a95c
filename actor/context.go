package actor

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Context is an actor's view of the runtime while one of its handlers,
// continuations or lifecycle methods runs. It is valid only during that call,
// on the goroutine running it (the loop's, or an asker's the loop is lent
// to: see System.Ask and Config.LendTimedAsks): do not keep it or pass it
// to another goroutine.
type Context struct {
	ls       *loopState
	self     Ref
	sender   Ref
	slot     *slot
	env      *envelope
	deferred bool
	rep      *Reply // the handle Defer returned, when deferred
}

// Self returns the running actor's own ref.
func (c *Context) Self() Ref { return c.self }

// Sender returns the ref of the actor that sent the current message, or the
// zero Ref when it came from a plain goroutine, a timer or the runtime.
func (c *Context) Sender() Ref { return c.sender }

// Loop returns the index of the loop the actor runs on.
func (c *Context) Loop() int { return c.ls.id }

// Now returns the loop clock's reading.
func (c *Context) Now() time.Time { return c.ls.loop.Now() }

// Rand returns the loop's random source, seeded from Config.Seed and the loop
// index, so that a run can be reproduced. Loop goroutine only.
func (c *Context) Rand() *rand.Rand { return c.ls.rnd }

// Name returns the name the actor was spawned with.
func (c *Context) Name() string { return c.slot.name }

// Parent returns the ref of the actor that spawned this one, or the zero Ref.
// It is an actor of another node for an actor made by a linked remote
// spawn (the owner, see remote.Node.SpawnLinkAsync), which is linked to it.
func (c *Context) Parent() Ref { return c.slot.parent }

// Send delivers msg to the actor to, one way. It returns once the message is
// queued: ErrInvalidRef for the zero Ref, ErrQueueFull when the target loop's
// queue is full, ErrShutdown when the system is shutting down. A message to a
// dead actor is accepted and then dropped (reported to the event hook), since
// the target's state is only known on its loop. Messages from one actor to
// another arrive in the order sent. Send allocates nothing beyond boxing msg.
// After ErrQueueFull, wait with AwaitRoom rather than trying again at once.
func (c *Context) Send(to Ref, msg any) error {
	return to.send(c.origin(), c.self, msg)
}

// SendMany sends msgs to the actor to, one way and in order, as that many
// Sends would (each message delivered, or refused, as Send says), but
// queues them in one step: an actor of another loop is woken once for the
// batch, and for an actor of another node the connection's queue is locked
// once and the batch leaves in one write when the connection is idle. It
// stops at the first message refused (ErrQueueFull when to's queue or the
// node's outbound queue is full, ErrShutdown, a node-down error) and
// returns how many of msgs were queued, always a prefix, with that error:
// send the rest later (AwaitRoom tells when). msgs is not kept.
func (c *Context) SendMany(to Ref, msgs []any) (int, error) {
	return to.box().sendMany(c.origin(), to, c.self, msgs)
}

// AwaitRoom returns a promise settled with a nil value, on this actor's
// loop, once a send to r that was refused with ErrQueueFull may be
// accepted again: for an actor of another node, when that node's outbound
// queue has drained to half its bound, or its connection was lost (the
// next send says so); for an actor of this node, at the next pass of r's
// loop, which takes its queued messages. It settles at the next turn of
// this loop when it cannot tell (r's queue has room, r is the zero Ref,
// too many wait on one node). It reserves nothing: the next send may be
// refused again when others send too; wait again then. A sender that waits
// this way costs no CPU, where one that tries again at once keeps its loop
// busy doing nothing.
func (c *Context) AwaitRoom(r Ref) Promise {
	p, settle := c.ExternalPromise()
	if !r.box().awaitRoom(c.origin(), func() { settle(nil, nil) }) {
		settle(nil, nil)
	}
	return p
}

// origin is the origin of what the running actor sends.
func (c *Context) origin() origin { return origin{ls: c.ls} }

// here returns the slot of r if r is an actor of this loop: a Call, or a
// synchronous lifecycle operation, needs one. It fails with ErrInvalidRef
// for the zero Ref, ErrNotLocal for an actor of another loop or node, and
// ErrDead for a dead one.
func (c *Context) here(r Ref) (*slot, error) {
	if !r.on(c.ls) {
		if r.IsZero() {
			return nil, ErrInvalidRef
		}
		return nil, ErrNotLocal
	}
	s := c.ls.lookup(r)
	if s == nil {
		return nil, ErrDead
	}
	return s, nil
}

// Call runs the handler of the actor to on the current stack and returns its
// reply, like a function call: no queue, no goroutine switch, no allocation.
// The target must be on the caller's loop (ErrNotLocal otherwise, at once).
// It fails with ErrDead if the target has stopped, ErrCycle if the target's
// handler is already on the stack, and a *CrashError (ErrCrashed) if the
// target panicked; the caller keeps running in every case.
func (c *Context) Call(to Ref, msg any) (any, error) {
	s, err := c.here(to)
	if err != nil {
		return nil, err
	}
	if s.running {
		return nil, ErrCycle
	}
	if s.state == slotSuspended {
		return nil, ErrCrashed
	}
	v, err, deferred := c.ls.invoke(s, to, c.self, msg, nil, EventCall)
	if deferred {
		return nil, ErrDeferredCall
	}
	return v, err
}

// Ask sends msg to the actor to and returns a promise of its reply, with the
// system's default timeout (Config.AskTimeout). It works for actors on any
// loop, this one included. Failures to queue (dead ref is not one: it is
// detected on the target's loop) settle the promise with the error.
//
// The target's handler runs on its own loop's goroutine, so the deadline
// holds and a slow target stalls only its own loop. With
// Config.LendTimedAsks (and a timeout of a second or more), when the
// target is on another loop that is idle and this loop has nothing else
// queued once the current handler returns, this loop's goroutine may run
// the target's handler for the request itself (no goroutine switch; the
// target still handles one message at a time, in order, and a panic there
// crashes the target, not this actor). This loop's timers and messages
// then wait for that handler, and the promise settles with its result
// even past the deadline.
func (c *Context) Ask(to Ref, msg any) Promise {
	return c.AskTimeout(to, msg, c.ls.sys.cfg.AskTimeout)
}

// AskTimeout is Ask with its own timeout; d <= 0 means no deadline (the
// promise waits until the target replies or fails). With
// Config.LendTimedAsks it may lend as Ask describes when d <= 0 or d is a
// second or more; never with a shorter d.
func (c *Context) AskTimeout(to Ref, msg any, d time.Duration) Promise {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	o := c.origin()
	o.lend = ls.sys.cfg.LendTimedAsks && (d <= 0 || d >= lendAfter)
	if err := to.ask(o, c.self, msg, p.idx, p.gen); err != nil {
		ls.settle(p.idx, p.gen, nil, err)
		return p
	}
	if d > 0 {
		ls.promises.entries[p.idx].deadlined = true
		ls.loop.Schedule(ls.loop.CachedNow().Add(d), envelope{kind: kDeadline, pidx: p.idx, pgen: p.gen})
	}
	return p
}

// Promise returns a promise this actor settles itself with the returned
// resolve function (on this loop; later calls are ignored). It is the glue
// for replies that depend on several things.
func (c *Context) Promise() (Promise, func(v any, err error)) {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	return p, func(v any, err error) { ls.resolve(p, v, err) }
}

// ExternalPromise returns a promise settled by the returned function, which
// any goroutine may call (a library's callback, a reply that arrives on a
// network goroutine); only its first call counts, and it never blocks. The
// continuation runs on this actor's loop, as any promise's. Nothing else
// settles it: the caller must make sure the function is called (with a
// timeout of its own, say), or the promise stays pending while the actor
// lives. Unlike Blocking, it holds no worker while it waits.
func (c *Context) ExternalPromise() (Promise, func(v any, err error)) {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	rt := route{from: c.self, pidx: p.idx, pgen: p.gen}
	var once atomic.Bool
	return p, func(v any, err error) {
		if once.CompareAndSwap(false, true) {
			rt.answer(v, err)
		}
	}
}

// Reply is the handle of a deferred reply (see Context.Defer). It may be
// used from any goroutine; only its first use counts.
type Reply struct {
	rt   route // where the answer goes, when ask
	ask  bool  // false: the answer is discarded
	used atomic.Bool
	// drop is set once the Reply was still unanswered after a garbage
	// collection: the cleanup that answers it if it is dropped watches it
	// (replies.go).
	drop atomic.Pointer[dropGuard]
}

// route is where an ask's answer goes: the parts of its envelope that
// reply reads.
type route struct {
	from       Ref
	ch         chan result
	pidx, pgen uint32
}

func (rt *route) answer(v any, err error) {
	reply(&envelope{from: rt.from, ch: rt.ch, pidx: rt.pidx, pgen: rt.pgen}, v, err)
}

// Reply answers the deferred request with v and err. Later calls do nothing.
func (r *Reply) Reply(v any, err error) {
	if r == nil || !r.claim() {
		return
	}
	if r.ask {
		r.rt.answer(v, err)
	}
}

// Forward hands the message being handled to the actor to, as if its
// sender had sent it there: an ask is answered by to (its reply, error or
// the asker's own timeout go straight to the original asker), a one-way
// message arrives at to from the original sender. The current handler's
// return values are then ignored, as after Defer. Messages forwarded by one
// actor to one target arrive in the order forwarded.
//
// to must be on this node (any loop); a remote target gives ErrNotLocal
// (forward with Ask and Defer instead). A dead to is treated as if the
// sender had sent there: an ask fails with ErrDead at its asker. Forward
// fails with ErrNotForwardable outside a message or ask handler (a Call, a
// timer, a continuation) or after Defer or Forward for this message, and
// with ErrQueueFull when to's queue is full; on any error nothing was
// forwarded and the handler still owns the message.
//
// It costs one post and no allocation: a proxy (a facet, a router) hands
// a message on at the price of a send.
func (c *Context) Forward(to Ref) error { return c.forward(to, nil, false) }

// forward hands the message being handled to to, replaced by msg if
// replace (ForwardMsg).
func (c *Context) forward(to Ref, msg any, replace bool) error {
	e := c.env
	if e == nil || (e.kind != kSend && e.kind != kAsk) || c.deferred {
		return ErrNotForwardable
	}
	fwd := *e
	fwd.to = to
	if replace {
		fwd.msg = msg
	}
	if err := to.box().forward(c.origin(), fwd); err != nil {
		return err
	}
	c.deferred, c.rep = true, nil // answered by to: no reply from here, nor from a crash
	return nil
}

// Defer tells the runtime that the current handler will answer later: its
// return values are ignored and the asker waits (up to its own deadline) for
// Reply. The Reply may be handed to other goroutines (a worker that answers
// once its work is done answers even if the actor has crashed or stopped
// meanwhile). A Reply dropped without an answer (the actor forgot it, or
// stopped or crashed holding it) is answered with ErrNoReply once the
// garbage collector finds it unreachable (one or two collections after it
// was dropped, once the runtime's cleanup goroutine has run), so even an asker without a deadline learns the outcome. Use
// it to answer after the handler's own asks complete. For a
// one-way message the Reply discards its answer. Inside a synchronous Call,
// the caller gets ErrDeferredCall and the Reply discards its answer.
func (c *Context) Defer() *Reply {
	if c.deferred && c.rep == nil && c.env != nil {
		return &Reply{} // forwarded: to answers; this Reply does nothing
	}
	c.deferred = true
	r := &Reply{}
	c.rep = r
	if e := c.env; e != nil && e.kind == kAsk {
		r.rt, r.ask = route{from: e.from, ch: e.ch, pidx: e.pidx, pgen: e.pgen}, true
		// Nobody can answer a Reply that is garbage: answer for them.
		c.ls.replies().track(r)
	}
	return r
}

// Spawn creates an actor on this loop (the default, so parent and child can
// Call each other) and returns its ref once its Start method has returned.
// The new actor's parent is the caller. It returns ErrNotLocal if the options
// place the actor on another loop (use SpawnAsync), the Start error or a
// *CrashError if Start failed, and ErrShutdown during shutdown.
func (c *Context) Spawn(f Factory, opts ...SpawnOption) (Ref, error) {
	o := applyOpts(spawnOpts{loop: c.ls.id}, opts)
	target := c.ls.sys.pick(o)
	if target != c.ls {
		return Ref{}, ErrNotLocal
	}
	return c.ls.spawn(f, o, c.self)
}

// SpawnAsync creates an actor on the loop chosen by opts (this loop by
// default) and returns a promise of its Ref.
func (c *Context) SpawnAsync(f Factory, opts ...SpawnOption) Promise {
	ls := c.ls
	o := applyOpts(spawnOpts{loop: ls.id}, opts)
	target := ls.sys.pick(o)
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	parent := c.self
	if target == ls {
		r, err := ls.spawn(f, o, parent)
		ls.settle(p.idx, p.gen, r, err)
		return p
	}
	rt := route{from: c.self, pidx: p.idx, pgen: p.gen}
	err := target.loop.PostControl(envelope{kind: kRun, msg: func(t *loopState) {
		r, err := t.spawn(f, o, parent)
		rt.answer(r, err)
	}})
	if err != nil {
		ls.settle(p.idx, p.gen, nil, postErr(err))
	}
	return p
}

// Stop stops the actor r. On this loop it happens now (or, if r's handler is
// on the stack, as soon as it returns); on another loop it is queued. The
// actor's Terminate method runs, its refs become dead, messages waiting for it
// fail with ErrDead, and its monitors get Down with reason (nil means a normal
// stop). Stopping a dead actor is not an error.
func (c *Context) Stop(r Ref, reason error) error {
	return r.box().halt(c.origin(), r, reason)
}

// Restart re-creates the actor r (on this loop) from its factory in the same
// slot: refs to it stay valid and reach the new instance. Messages that
// arrived while it was suspended after a crash are delivered to the new
// instance in order; the message that crashed it is not redelivered. It is
// how supervisors restart children. It returns ErrNotLocal for an actor of
// another loop or node, ErrInvalidRef for the zero Ref, ErrDead for a stopped
// one, ErrCycle when r's handler is on the stack, and the Start error (the
// actor is then stopped) if the new instance fails to start.
func (c *Context) Restart(r Ref) error {
	s, err := c.here(r)
	if err != nil {
		return err
	}
	return c.ls.restart(s, r)
}

// Monitor asks for a Down message when the actor r stops, whatever the
// reason. Monitoring a dead actor yields Down with ErrDead at once.
// Monitoring the same actor twice yields one Down.
func (c *Context) Monitor(r Ref) error {
	return r.box().monitor(c.origin(), r, c.self)
}

// Demonitor cancels Monitor. A Down already queued is still delivered.
func (c *Context) Demonitor(r Ref) error {
	return r.box().demonitor(c.origin(), r, c.self)
}

// After delivers msg to this actor (as a one-way message with no sender)
// once d has passed on the loop's clock. Cancel it with the returned Timer.
func (c *Context) After(d time.Duration, msg any) Timer {
	return c.ls.schedule(c.self, msg, d, 0)
}

// AfterFunc runs f inside this actor once d has passed on the loop's
// clock, the way a promise's continuation runs: on this loop, with a
// Context of its own, free to touch the actor's state. Cancel it with the
// returned Timer. f belongs to the instance that set it: it is dropped if
// by then the actor has stopped, been restarted or upgraded to a new
// instance, or waits for a restart after a crash (an upgrade does not wait
// for it, as it does for continuations). Unlike After, it sends no
// message, so code running inside another's actor (a library's) can time
// itself without that actor's Receive knowing; and it allocates nothing
// beyond f. An upgrade's new instance does not inherit it: one that must
// keep timing itself sets it again when it next runs (After and Every
// timers, being messages, carry on). f must not be nil.
func (c *Context) AfterFunc(d time.Duration, f func(c *Context)) Timer {
	if f == nil {
		panic("actor: AfterFunc with a nil function")
	}
	return c.ls.addTimer(c.self, nil, f, c.slot.inc, d, 0)
}

// Every delivers msg to this actor every period (first after one period),
// until cancelled or the actor stops. A loop that falls behind skips ticks
// rather than bursting. period must be positive.
func (c *Context) Every(period time.Duration, msg any) Timer {
	if period <= 0 {
		panic(fmt.Sprintf("actor: Every with non-positive period %v", period))
	}
	return c.ls.schedule(c.self, msg, period, period)
}

// Blocking runs fn on the system's worker pool, off the loop, and returns a
// promise of its result, settled on this loop. Use it for file I/O, database
// calls and anything else that blocks. A panic in fn settles the promise with
// a *CrashError. When the pool is saturated (every worker busy and its queue
// full) the promise fails at once with ErrPoolFull: the loop never waits for
// the pool. The promise has no deadline of its own; fn should honour one.
func (c *Context) Blocking(fn func() (any, error)) Promise {
	ls := c.ls
	p := ls.promises.alloc(ls, c.self, c.slot.inc)
	rt := route{from: c.self, pidx: p.idx, pgen: p.gen}
	self := c.self
	submit := ls.sys.pool.Submit
	if ls.sys.blocking != nil {
		submit = ls.sys.blocking
	}
	err := submit(func() {
		v, err := runJob(self, fn)
		rt.answer(v, err)
	})
	if err != nil {
		ls.settle(p.idx, p.gen, nil, postErr(err))
	}
	return p
}

func runJob(self Ref, fn func() (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, &CrashError{Actor: self, Value: r, Stack: stack()}
		}
	}()
	return fn()
}
