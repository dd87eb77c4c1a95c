package actor

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/loop"
)

// envelope kinds.
const (
	kSend     uint8 = iota + 1 // deliver msg to `to`
	kAsk                       // deliver msg; reply to ch, or through from's mailbox to promise (pidx,pgen)
	kReply                     // settle promise (pidx,pgen) of this loop with msg/err
	kTimer                     // fire user timer (pidx,pgen)
	kDeadline                  // ask deadline of promise (pidx,pgen)
	kCont                      // run continuation of settled promise (pidx,pgen)
	kRun                       // run msg.(func(*loopState)) on the loop
	kStop                      // stop `to` with reason err
	kSignal                    // exit signal from `from` to `to` with reason err (see link.go)
)

// envelope is what travels through a loop's queues. It is a value, so the
// queues carry messages without allocating.
type envelope struct {
	to, from   Ref
	msg        any
	err        error
	ch         chan result
	pidx, pgen uint32
	kind       uint8
}

type result struct {
	v   any
	err error
}

// slot states.
const (
	slotFree uint8 = iota
	slotAlive
	slotSuspended // crashed, supervised: waiting for its parent to restart or stop it
)

const slabBits = 8
const slabSize = 1 << slabBits

// slot is one actor's place on a loop. Slots live in fixed-size slabs so
// their addresses do not move when the table grows.
type slot struct {
	actor    Actor
	factory  Factory
	name     string
	parent   Ref
	watchers []Ref
	stash    []envelope // messages that arrived while suspended
	reason   error      // stop reason when a stop waits for the handler to return
	gen      uint32
	inc      uint32 // incarnation: bumped at every start and at every crash
	state    uint8
	running  bool  // its handler is on the stack (cycle detection)
	stopReq  bool  // stop once the handler returns
	sup      bool  // supervised: a crash suspends and tells the parent
	links    []Ref // linked actors (see link.go)
	// connection epoch of each link with a remote actor, when it was made
	// (BreakLinks ends only those made before the lost connection)
	linkEpochs map[Ref]uint64
	trap       bool // exit signals become Exited messages
	noTerm     bool // the pending stop is a kill: no Terminate
	// a swap (upgrade.go) waiting for this instance's continuations: its
	// messages and timers are stashed meanwhile
	upg *swapState
}

// loopState is everything one loop owns. Only its goroutine touches it, except
// the fields marked atomic.
type loopState struct {
	sys   *System
	id    int
	loop  *loop.Loop[envelope]
	slabs []*[slabSize]slot
	free  []uint32
	next  uint32 // next never-used slot index
	live  atomic.Int64

	ctx      Context
	promises promiseTable
	timers   timerTable
	garbage  int // invalidated entries in the loop's timer heap
	hook     Hook
	lhook    Hook // Config.LifecycleHook
	watching bool // hook or lhook is set: lifecycle events are reported
	seq      uint64
	turn     uint64
	ev       Event
	rnd      *rand.Rand
	settled  []uint32 // promises settled this turn with no continuation yet
	stopping bool
	svc      loopService // with Config.ExternalLoops: who runs the loop (service.go)
	hclk     hookClock   // the hook's handler clock (hookclock.go)
	lazy     any         // the transport's decoder state for seam.Lazy messages (deliver)
	// crashWatch: who is sent the crashes of an actor (upgrade.go)
	crashWatch map[Ref]Ref
	rtrack     *replyTracker // deferred Replies since the last collection (replies.go)
	top        topCall       // the handler call invokeTop leaves to the loop's recovery
}

// topCall is what Recovered needs to finish a handler call of invokeTop
// that panicked, beyond the context (which names the actor).
type topCall struct {
	start time.Time // the hook's start of the call
	t0    int64
	on    bool // the handler is running: a panic now is its own (Recovering)
}

func newLoopState(s *System, id int) *loopState {
	ls := &loopState{sys: s, id: id, hook: s.cfg.Hook, lhook: s.cfg.LifecycleHook}
	ls.watching = ls.hook != nil || ls.lhook != nil
	ls.rnd = rand.New(rand.NewPCG(s.cfg.Seed, uint64(id)+0x9e3779b97f4a7c15))
	ls.ctx.ls = ls
	ls.loop = loop.New[envelope](ls, loop.Config{
		Capacity: s.cfg.QueueCapacity,
		Batch:    s.cfg.Batch,
		Clock:    s.cfg.Clock,
	})
	return ls
}

func (ls *loopState) slotAt(idx uint32) *slot {
	return &ls.slabs[idx>>slabBits][idx&(slabSize-1)]
}

// lookup returns the live or suspended slot r names, or nil if r is dead.
func (ls *loopState) lookup(r Ref) *slot {
	if r.idx >= ls.next {
		return nil
	}
	s := ls.slotAt(r.idx)
	if s.gen != r.gen || s.state == slotFree {
		return nil
	}
	return s
}

func (ls *loopState) allocSlot() (uint32, *slot) {
	if n := len(ls.free); n > 0 {
		idx := ls.free[n-1]
		ls.free = ls.free[:n-1]
		return idx, ls.slotAt(idx)
	}
	idx := ls.next
	if int(idx>>slabBits) == len(ls.slabs) {
		ls.slabs = append(ls.slabs, new([slabSize]slot))
	}
	ls.next++
	return idx, ls.slotAt(idx)
}

// Handle implements loop.Handler: it is the loop's dispatch.
func (ls *loopState) Handle(e *envelope) {
	ls.turn++
	ls.top.on = false // left set only if a handler ended its goroutine (runtime.Goexit)
	switch e.kind {
	case kSend, kAsk:
		ls.deliverAs(e, true)
	case kReply:
		ls.settle(e.pidx, e.pgen, e.msg, e.err)
	case kDeadline:
		ls.deadline(e.pidx, e.pgen)
	case kTimer:
		ls.fireTimer(e.pidx, e.pgen)
	case kCont:
		ls.runSettled(e.pidx, e.pgen)
	case kRun:
		e.msg.(func(*loopState))(ls)
	case kStop:
		if s := ls.lookup(e.to); s != nil {
			ls.stop(s, e.to, e.err)
		}
	case kSignal:
		ls.signal(e)
	}
	if len(ls.settled) > 0 {
		ls.endTurn()
	}
}

// deliver hands a queued message to its actor and routes the reply.
func (ls *loopState) deliver(e *envelope) { ls.deliverAs(e, false) }

// deliverAs is deliver; top: called by Handle, with nothing after it
// but Handle's end, so the handler is called by invokeTop.
func (ls *loopState) deliverAs(e *envelope, top bool) {
	s := ls.lookup(e.to)
	if s == nil {
		ls.drop(e, ErrDead)
		return
	}
	if s.state == slotSuspended || s.upg != nil {
		switch {
		case len(s.stash) < ls.loop.Capacity() || isNotice(e):
			// the runtime's notices exceed the bound, as they take the
			// control queue: a Down is never lost
			s.stash = append(s.stash, *e)
		case s.upg != nil && s.upg.held:
			ls.drop(e, ErrQueueFull) // a hold ends only by Release
		case s.upg != nil && s.state == slotAlive && !s.running:
			// A swap would hold more than the bound: its wait ends there,
			// rather than drop what it holds (an upgrade refuses, with
			// continuations pending; a rollback goes on), and the held
			// messages are delivered, then this one.
			w := s.upg
			w.full = true
			ls.finishSwap(w)
			ls.deliver(e)
		case s.upg != nil:
			s.stash = append(s.stash, *e) // cannot happen: a swap waits only for a live actor
		default:
			ls.drop(e, ErrQueueFull)
		}
		return
	}
	if lz, ok := e.msg.(*seam.Lazy); ok {
		v, err := lz.Dec.DecodeLazy(lz, &ls.lazy, e.kind != kAsk)
		if err != nil {
			e.msg = nil
			ls.drop(e, err)
			return
		}
		e.msg = v // what the handler, the hooks and Forward see
	}
	kind := EventSend
	if e.kind == kAsk {
		kind = EventAsk
	}
	var v any
	var err error
	var deferred bool
	if top {
		v, err, deferred = ls.invokeTop(s, e)
	} else {
		v, err, deferred = ls.invoke(s, e.to, e.from, e.msg, e, kind)
	}
	if e.kind == kAsk && !deferred {
		reply(e, v, err)
	}
}

// isNotice reports whether e is a notice of the runtime (a Down, an
// Exited of a trapped exit signal, a supervised child's Crashed): what the
// runtime promises never to lose.
func isNotice(e *envelope) bool {
	if e.kind != kSend {
		return false
	}
	switch e.msg.(type) {
	case Down, Exited, Crashed:
		return true
	}
	return false
}

// reply routes the answer of an ask back to its asker: a goroutine's
// channel, or the asker's mailbox. It is safe from any goroutine.
func reply(e *envelope, v any, err error) {
	if e.ch != nil {
		e.ch <- result{v, err} // buffered 1, one reply per ask: never blocks
		return
	}
	e.from.box().reply(e.from, e.pidx, e.pgen, v, err)
}

// drop fails a message that cannot be delivered: asks get err, sends are
// reported to the hook (their sender has already moved on).
func (ls *loopState) drop(e *envelope, err error) {
	if e.kind == kAsk {
		reply(e, nil, err)
	}
	if ls.watching {
		msg := e.msg
		if lz, ok := msg.(*seam.Lazy); ok {
			// the hooks see values, never the transport's encoding
			msg, _ = lz.Dec.DecodeLazy(lz, &ls.lazy, false)
		}
		ls.report(EventDropped, e.from, e.to, msg, time.Time{}, 0, err, nil)
	}
}

// invoke runs an actor's handler on the current stack: the path of queued
// messages and of synchronous calls alike. It restores the caller's context
// afterwards, so calls nest.
func (ls *loopState) invoke(s *slot, to, from Ref, msg any, e *envelope, kind EventKind) (v any, err error, deferred bool) {
	c := &ls.ctx
	saved := *c
	c.self, c.sender, c.slot, c.env, c.deferred = to, from, s, e, false
	s.running = true
	var start time.Time
	var t0 int64
	if ls.hook != nil {
		start, t0 = ls.hookStart()
	}
	v, err = ls.receive(s, c, msg, from)
	s.running = false
	deferred = c.deferred
	*c = saved
	if ls.hook != nil {
		ls.reportHandler(s.actor, kind, from, to, msg, start, ls.hookSince(t0), err)
	}
	if s.stopReq {
		ls.stop(s, to, s.reason)
	}
	return v, err, deferred
}

// invokeTop is invoke for a message Handle delivers, at the bottom of the
// handler stack: it calls the handler without a recover frame of its own
// (a deferred call per message). A panic unwinds to the loop's recover
// frame, which is there for the whole run of messages, and Recovered
// finishes the call as receive, invoke, deliver and Handle would have.
// Nothing runs on the context below it, so it leaves the context empty
// rather than saving and restoring it.
func (ls *loopState) invokeTop(s *slot, e *envelope) (v any, err error, deferred bool) {
	c := &ls.ctx
	// All of it: a handler that left by runtime.Goexit skipped invokedTop,
	// and a Defer it made must not make the next message deferred.
	*c = Context{ls: ls, self: e.to, sender: e.from, slot: s, env: e}
	s.running = true
	t := &ls.top
	if ls.hook != nil {
		t.start, t.t0 = ls.hookStart()
	}
	t.on = true
	v, err = s.actor.Receive(c, e.msg)
	t.on = false
	return v, err, ls.invokedTop(s, e, err)
}

// invokedTop ends invokeTop's call (returned or crashed with err) as
// invoke does, and reports whether the handler deferred its answer.
func (ls *loopState) invokedTop(s *slot, e *envelope, err error) bool {
	c := &ls.ctx
	s.running = false
	deferred := c.deferred
	*c = Context{ls: ls}
	if ls.hook != nil {
		kind := EventSend
		if e.kind == kAsk {
			kind = EventAsk
		}
		ls.reportHandler(s.actor, kind, e.from, e.to, e.msg, ls.top.start, ls.hookSince(ls.top.t0), err)
	}
	if s.stopReq {
		ls.stop(s, e.to, s.reason)
	}
	return deferred
}

// Recovering implements loop.Recoverer: a panic is a handler's own while
// invokeTop's call of it runs (a panic of the runtime's own code unwinds
// out of the loop, as without the loop's recovery).
func (ls *loopState) Recovering() bool { return ls.top.on }

// Recovered implements loop.Recoverer: it finishes the message e whose
// handler, called by invokeTop, panicked with r, as receive's recovery
// (the crash, its stack taken up to invokeTop), invoke, deliver and Handle
// would have. The loop then goes on with its next message.
func (ls *loopState) Recovered(e *envelope, r any) {
	ls.top.on = false
	c := &ls.ctx
	s := c.slot
	err := ls.crashAt(s, c.self, r, e.msg, e.from, unsafe.Pointer(&handlerTop))
	if c.deferred && c.rep != nil && c.rep.claim() {
		c.deferred = false // the handler never answered: the crash is the answer
	}
	if deferred := ls.invokedTop(s, e, err); e.kind == kAsk && !deferred {
		reply(e, nil, err)
	}
	if len(ls.settled) > 0 {
		ls.endTurn()
	}
}

// receive calls the handler and turns a panic into a crash.
func (ls *loopState) receive(s *slot, c *Context, msg any, from Ref) (v any, err error) {
	var top byte // on this frame: the crash stack is walked up to here
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, ls.crashAt(s, c.self, r, msg, from, unsafe.Pointer(&top))
			if c.deferred && c.rep != nil && c.rep.claim() {
				c.deferred = false // the handler never answered: the crash is the answer
			}
		}
	}()
	return s.actor.Receive(c, msg)
}

func (ls *loopState) report(kind EventKind, from, to Ref, msg any, start time.Time, d time.Duration, err error, cr *Crash) {
	ls.seq++
	ls.ev = Event{Seq: ls.seq, Loop: ls.id, Kind: kind, From: from, To: to, Msg: msg,
		Start: start, Duration: d, Err: err, Crash: cr}
	if ls.hook != nil {
		ls.hook(&ls.ev)
	}
	if ls.lhook != nil {
		ls.lhook(&ls.ev)
	}
}

// origin is the origin of what the runtime sends from this loop.
func (ls *loopState) origin() origin { return origin{ls: ls} }

// sendDown tells watcher w that r stopped. A Down travels with the
// watcher's other messages, so it arrives after what r sent before stopping;
// if the watcher's queue is full it takes the unbounded control queue
// instead: a Down is never lost, at the price of order under overload.
func (ls *loopState) sendDown(w, r Ref, reason error) {
	_ = w.box().notify(ls.origin(), w, Down{Ref: r, Reason: reason})
}
