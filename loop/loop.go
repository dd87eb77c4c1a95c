package loop

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/actord/actord/internal/tsc"
)

// Errors returned by posts and by the pool. Test for them with errors.Is.
var (
	// ErrFull means a bounded queue is at capacity; the event was not accepted.
	ErrFull = errors.New("loop: queue full")
	// ErrClosed means the loop (or pool) is closed; the event was not accepted.
	ErrClosed = errors.New("loop: closed")
	// ErrPoolFull means every worker is busy and the job queue is full.
	ErrPoolFull = errors.New("loop: worker pool full")
	// ErrRunning means Run or Step was called while Run is already running.
	ErrRunning = errors.New("loop: already running")
)

// Handler handles the events of one loop. Handle runs on the loop goroutine,
// one event at a time; it may post to any loop (including its own, with
// PostLocal) and schedule timers, and must not block.
type Handler[E any] interface {
	Handle(ev *E)
}

// Recoverer is a Handler that leaves the recovery of its own panics to
// the loop, so that it need not set up a recover frame (a deferred call)
// for every event: the loop keeps one around each run of events. When a
// panic unwinds out of Handle while Recovering reports true, the loop
// recovers it, calls Recovered, and goes on with the next event exactly as
// if Handle had returned (the same pass, the same order). A panic while
// Recovering reports false, or a runtime.Goexit, goes on unwinding as
// with a plain Handler.
type Recoverer[E any] interface {
	Handler[E]
	// Recovering reports whether a panic unwinding through Handle now is
	// one the handler finishes in Recovered.
	Recovering() bool
	// Recovered finishes the event ev, whose Handle panicked with v, as
	// Handle would have had it recovered v itself. It runs in the loop's
	// deferred function, on the stack of the panic, which it may record.
	Recovered(ev *E, v any)
}

// Config sets a loop's limits. Zero fields take the defaults.
type Config struct {
	// Capacity bounds the inbound queue and, separately, the local queue.
	// Default 8192.
	Capacity int
	// Batch is how many events of each queue a pass handles before the loop
	// looks at the others again. Default 256.
	Batch int
	// Spin is how many times an idle loop checks its queues, yielding the
	// processor after each check, before it parks. It catches the reply of a
	// cross-loop round trip without paying for a park and a wake. Default 2
	// (measured best for a cross-loop round trip on 2 cores: 450 ns against
	// 1030 ns parking at once and 700 ns with 8). Busy-waiting without yielding
	// is much worse in Go: the goroutine a loop wakes goes to the waker's own
	// processor and waits for the spinner. While it spins the loop is idle
	// and can be lent (PostRun, PostOwn, PostFrom). Negative means park at
	// once.
	Spin int
	// Clock drives the timers. Default RealClock.
	Clock Clock
}

func (c Config) withDefaults() Config {
	if c.Capacity <= 0 {
		c.Capacity = 8192
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.Spin == 0 {
		c.Spin = 2
	} else if c.Spin < 0 {
		c.Spin = 0
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	return c
}

// Loop is one event loop. Create it with New, then either call Run on a
// goroutine of its own or drive it with Step. Post, PostControl, Interrupt and
// the read-only statistics are safe from any goroutine; PostLocal, Schedule,
// Now and Step belong to the goroutine running the loop.
type Loop[E any] struct {
	h     Handler[E]
	rec   Recoverer[E] // h, when it leaves its panics to the loop
	cfg   Config
	clock Clock
	nanos NanoClock // clock, when it reads itself as nanoseconds

	in      *ring[E]
	room    room // producers waiting for space in in (PostWait)
	ctl     ctlQueue[E]
	ctlHint atomic.Int32
	ctlBuf  []E
	ctlPos  int
	local   fifo[E]
	timers  timerHeap[E]

	sleeping  atomic.Int32
	owner     atomic.Int32 // ownRunning, ownParked or ownBorrowed: who may run passes (see PostRun)
	reclaim   atomic.Bool  // the loop goroutine woke while borrowed and waits for the release
	noLend    atomic.Int32 // lend attempts still to refuse after a slow lent pass
	parkUntil int64        // the park timer's deadline (unix ns), 0 for none; read by borrowers
	wake      chan struct{}
	interrupt atomic.Bool
	running   atomic.Bool
	closed    atomic.Bool
	parkTimer *time.Timer // wakes the parked loop for its next timer; see armPark
	parkArmed atomic.Bool // parkTimer is set to fire

	now        int64    // cached clock reading (unix ns), see CachedNow
	nowPass    uint64   // passes when now was read
	passes     uint64   // passes run, by whichever goroutine runs them
	stale      bool     // the loop parked since now was read: read the clock again
	timerPass  int      // busy passes since the timers were last checked
	checkTimer bool     // the next pass checks the timers
	cur        E        // the event being handled: a field, so passing &cur to Handle does not allocate
	handled    uint64   // loop-owned
	inRing     bool     // the event being handled is in the inbound ring (quiet)
	lentPass   uint64   // the pass of this loop that last lent another (PostFrom)
	handling   bool     // a handler of this loop is running (PostFrom may defer its loan)
	fault      *fault   // what a lent handler panicked with, for the loop goroutine to raise
	lendTo     *Loop[E] // the loop to lend (or wake) once the handler returns (PostFrom)
	lendPos    uint64   // the position of the request in lendTo's ring
	lentExit   bool     // lendTo's handler runs here (PostFrom): if it calls runtime.Goexit, Run panics
	pub        stats    // published once per pass for other goroutines
}

// fault is how a lent handler ended abnormally: a panic (value) or
// runtime.Goexit.
type fault struct {
	value  any
	goexit bool
}

type stats struct {
	handled atomic.Uint64
	local   atomic.Int64
	timers  atomic.Int64
}

// New returns a loop that hands its events to h.
func New[E any](h Handler[E], cfg Config) *Loop[E] {
	cfg = cfg.withDefaults()
	l := &Loop[E]{
		h:     h,
		cfg:   cfg,
		clock: cfg.Clock,
		in:    newRing[E](cfg.Capacity),
		wake:  make(chan struct{}, 1),
	}
	l.local.capacity = cfg.Capacity
	l.nanos, _ = cfg.Clock.(NanoClock)
	l.rec, _ = h.(Recoverer[E])
	tsc.Calibrate() // before any loan is timed (once per process)
	return l
}

// Post queues ev on the bounded inbound queue. It returns ErrFull when the
// queue holds Capacity events and ErrClosed after Close; it never blocks.
// Events from one goroutine are handled in the order posted.
func (l *Loop[E]) Post(ev E) error {
	if _, err := l.in.pushAt(&ev); err != nil {
		return err
	}
	l.notify()
	return nil
}

// PostPtr is Post for an event the caller has built in place: *ev is
// copied into the queue, and the caller may reuse it once PostPtr returns
// (see PostWaitPtr for why).
func (l *Loop[E]) PostPtr(ev *E) error {
	if _, err := l.in.pushAt(ev); err != nil {
		return err
	}
	l.notify()
	return nil
}

// PostRun is Post for a goroutine that may run the loop itself: if the
// loop's goroutine is idle (parked for want of work, or yielding before it
// parks, see Config.Spin), the calling goroutine runs
// one pass of the loop (at most Batch events from each queue, and due
// timers), which handles ev, instead of waking it. Otherwise it wakes the
// loop like Post. Order and exclusion are as with Post: handlers never run
// on two goroutines at once and cannot tell the difference.
//
// A transport uses it for events it reads from the network: on an idle loop
// the event is handled without a thread hand-off, which is most of the
// latency of a request/response exchange. The caller must be able to afford
// running handlers (a network goroutine, not a loop's own handler): while a
// lent pass runs, the caller does nothing else, so a slow handler delays it
// too. After a lent pass that took over a millisecond the loop is not lent
// for the next 1024 attempts (posts then wake it as Post does). A lent
// handler that panics or calls runtime.Goexit faults the loop, not the
// caller, as described at PostOwn.
func (l *Loop[E]) PostRun(ev E) error {
	if _, err := l.in.pushAt(&ev); err != nil {
		return err
	}
	l.Kick()
	return nil
}

// PostFrom is Post for a request whose answer the loop from awaits, from
// a handler running on from (on the goroutine running from's pass). Once
// that handler has returned (so that it holds nothing the request's
// handler may need), if from has nothing else queued and l is idle
// (parked, or yielding before it parks) with nothing queued before ev,
// the goroutine running from handles ev itself, as PostOwn does, instead
// of waking l's goroutine: from would go idle next anyway, and the
// exchange takes no goroutine switch. It lends at most once per pass of
// from, and never while from's own pass runs on a borrowed goroutine
// (PostRun, PostOwn or another PostFrom): loans do not nest, so no
// goroutine runs the handlers of a third loop. Whenever PostFrom can tell
// it will not lend (l busy, from with more queued, already lent this
// pass, not called from a handler of from, from borrowed), it wakes l at
// once, as Post; if the loan fails when the handler returns (work arrived
// meanwhile), l is woken then. Order and exclusion are as with Post.
//
// A lent handler that panics faults l, as described at PostOwn, not
// from. One that calls runtime.Goexit ends from's goroutine too (nothing
// can prevent that): l's Run exits as PostOwn describes, and from's Run,
// instead of ending silently, panics with an error saying so.
func (l *Loop[E]) PostFrom(from *Loop[E], ev E) error {
	pos, err := l.in.pushAt(&ev)
	if err != nil {
		return err
	}
	if from != l && from.handling && from.lendTo == nil && from.lentPass != from.passes &&
		from.owner.Load() != ownBorrowed && l.lendable(true) && from.quiet() {
		from.lentPass = from.passes
		from.lendTo, from.lendPos = l, pos
		return nil
	}
	l.notify()
	return nil
}

// lendable reports whether the loop is idle (its goroutine parked or
// yielding before it parks), so that a loan may be tried. guarded: a
// refusal within the attempts after a slow lent event uses one up.
func (l *Loop[E]) lendable(guarded bool) bool {
	if o := l.owner.Load(); o != ownParked && o != ownSpinning {
		return false
	}
	if guarded && l.noLend.Load() > 0 {
		l.noLend.Add(-1)
		return false
	}
	return true
}

// handle runs the handler on ev, then the loan PostFrom deferred to its
// return. A handler that panics or exits its goroutine skips the loan;
// Run's deferred abandonLoan then wakes the loop it was for.
func (l *Loop[E]) handle(ev *E) {
	l.handling = true
	l.h.Handle(ev)
	l.afterHandle()
}

// afterHandle is what handle does once the handler has returned (or its
// panic was recovered for it, see Recoverer): the loan PostFrom deferred.
func (l *Loop[E]) afterHandle() {
	l.handling = false
	if l.lendTo != nil {
		t := l.lendTo
		l.lendTo = nil
		if !l.quiet() || !l.lend(t, l.lendPos) {
			t.notify()
		}
	}
}

// errLentGoexit is what Run panics with when a handler of another loop,
// lent to its goroutine by PostFrom, called runtime.Goexit there: the
// goroutine cannot go on, and a loop that vanished silently would leave
// its events unhandled for good.
var errLentGoexit = errors.New("loop: a handler of another loop lent to this loop's goroutine (PostFrom) called runtime.Goexit")

// lend runs t's handler for the request at pos (PostFrom) on this loop's
// goroutine and reports whether it did. runOwn keeps a panic there off
// this goroutine; only a runtime.Goexit leaves lentExit set, for Run to
// raise as errLentGoexit.
func (l *Loop[E]) lend(t *Loop[E], pos uint64) bool {
	l.lentExit = true
	ran := t.runOwn(pos, true)
	l.lentExit = false
	return ran
}

// abandonLoan wakes the loop a deferred PostFrom loan was for, when the
// handler that posted did not return (a panic or runtime.Goexit leaving
// Run): the request must not wait for the next post to that loop. If the
// goroutine is exiting because a lent handler of another loop called
// runtime.Goexit, it panics with errLentGoexit instead of letting Run
// end silently.
func (l *Loop[E]) abandonLoan() {
	l.handling = false
	if l.lentExit { // the goroutine exits for another loop's handler
		l.lentExit = false
		panic(errLentGoexit)
	}
	if t := l.lendTo; t != nil {
		l.lendTo = nil
		t.notify()
	}
}

// PostOwn is Post for a goroutine that will wait for ev's outcome and do
// nothing else meanwhile (a blocking ask): if the loop is idle (parked, or
// yielding before it parks) and nothing is queued before ev, the calling
// goroutine handles ev itself, and only ev, instead of waking the loop's
// goroutine; otherwise it wakes the loop like Post. The lent handler runs
// on the caller's goroutine, under whatever the caller holds, and the
// caller notices nothing else (a deadline) until it returns. A slow event
// lent by PostRun or PostFrom (over a millisecond) stops them lending the
// loop for the next 1024 attempts; PostOwn neither heeds that rule nor
// times its own loans (two counter reads per ask): its caller runs only the
// event it waits for anyway, and a loan the OS descheduled in mid-handler
// looks slow too, often, on a loaded machine. Order and exclusion are as
// with Post.
//
// A lent handler that panics does not panic the caller: the loan ends,
// PostOwn returns, and Run panics with the same value on the loop's
// goroutine, as it would have had the handler run there (the stack is
// then Run's, not the handler's). One that calls runtime.Goexit ends the
// caller's goroutine (nothing can prevent that), and the loop's goroutine
// exits from Run as it would have. Either way nobody else borrows the
// loop in between.
func (l *Loop[E]) PostOwn(ev E) error {
	pos, err := l.in.pushAt(&ev)
	if err != nil {
		return err
	}
	if !l.runOwn(pos, false) {
		l.notify()
	}
	return nil
}

// quiet reports whether nothing is queued for the loop beyond the event
// being handled. Goroutine running the loop's pass only.
func (l *Loop[E]) quiet() bool {
	if l.ctlPos < len(l.ctlBuf) || l.ctlHint.Load() != 0 || l.local.n > 0 {
		return false
	}
	next := l.in.next
	if l.inRing { // handled in place: the cell after it
		next++
	}
	return l.in.cells[next&l.in.mask].seq.Load() != next+1
}

// PostQuiet queues ev like Post but does not wake the loop: the caller
// must call Kick once it has queued a batch. A transport reading many
// messages at once uses it to pay for one hand-off per batch rather than
// one per message.
func (l *Loop[E]) PostQuiet(ev E) error {
	_, err := l.in.pushAt(&ev)
	return err
}

// PostQuietN is PostQuiet for up to n events in one reservation of the
// inbound queue: it claims as many consecutive places as there is room for
// (all n, or fewer when the queue is nearly full), calls fill with each
// place's index (0, 1, ...) and the event to fill in place, and returns how
// many it queued, in order. It returns ErrFull, having queued none, when
// the queue holds Capacity events, and ErrClosed after Close. As with
// PostQuiet the caller must call Kick once it has queued a batch. fill must
// neither panic nor post to this loop: the places claimed reach the loop
// only as each is filled.
func (l *Loop[E]) PostQuietN(n int, fill func(i int, ev *E)) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	pos, k, err := l.in.reserve(n)
	if err != nil {
		return 0, err
	}
	for i := range k {
		fill(i, l.in.put(pos+uint64(i)))
		l.in.publishAt(pos + uint64(i))
	}
	return k, nil
}

// Kick makes the loop handle what PostQuiet queued: like PostRun, it runs
// a pass on the calling goroutine if the loop's goroutine is idle, and
// wakes it otherwise.
func (l *Loop[E]) Kick() {
	if !l.runParked() {
		l.notify()
	}
}

// Notify wakes the loop if it is parked, so that it handles what PostQuiet
// queued; unlike Kick it never runs a pass on the calling goroutine (a
// loop's own handler sending a batch to another loop must not).
func (l *Loop[E]) Notify() { l.notify() }

// PostControlRun is PostControl with the hand-off of PostRun.
func (l *Loop[E]) PostControlRun(ev E) error {
	if err := l.ctl.push(ev); err != nil {
		return err
	}
	l.ctlHint.Store(1)
	l.Kick()
	return nil
}

// PostControl queues ev on the unbounded control queue, which the loop drains
// before the others: ev is handled before every event posted to the inbound
// queue after it (a pass stops taking inbound events while control events
// wait). Use it only for events whose number is bounded by the
// caller (replies to the loop's own requests, completions of its own jobs),
// so that they cannot be refused for lack of room. It returns ErrClosed after
// Close.
func (l *Loop[E]) PostControl(ev E) error {
	if err := l.ctl.push(ev); err != nil {
		return err
	}
	l.ctlHint.Store(1)
	l.notify()
	return nil
}

// PostLocal queues ev on the loop's own bounded queue. It must be called from
// the loop goroutine (from inside Handle). It returns ErrFull when the local
// queue holds Capacity events and ErrClosed after Close.
func (l *Loop[E]) PostLocal(ev E) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.local.push(ev)
}

// Schedule arranges for ev to be handled once the loop's clock reads at or
// after when. It must be called from the loop goroutine. There is no
// cancellation here: the layer above invalidates ev and may Compact.
func (l *Loop[E]) Schedule(when time.Time, ev E) {
	l.timers.push(when, ev)
}

// CompactTimers drops every scheduled event for which keep reports false. It
// must be called from the loop goroutine.
func (l *Loop[E]) CompactTimers(keep func(*E) bool) { l.timers.compact(keep) }

// Timers returns the number of scheduled events, including invalidated ones
// not yet compacted. Loop goroutine only.
func (l *Loop[E]) Timers() int { return len(l.timers.items) }

// NextTimer returns the deadline of the earliest scheduled event. Loop
// goroutine only (or the goroutine driving Step).
func (l *Loop[E]) NextTimer() (time.Time, bool) {
	w, ok := l.timers.next()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, w), true
}

// NextTimerNanos is NextTimer as Unix nanoseconds, for a driver that asks
// at every step (a simulator): no time.Time is built.
func (l *Loop[E]) NextTimerNanos() (int64, bool) { return l.timers.next() }

// Queued reports whether an event is queued (control, local or inbound;
// timers aside): whether Step would handle one without a timer being due.
// For a manual loop, on the goroutine that steps it (a simulator asks it
// to skip loops that have nothing to do).
func (l *Loop[E]) Queued() bool {
	return l.ctlHint.Load() != 0 || l.ctlPos < len(l.ctlBuf) || l.local.n > 0 || l.in.peek() != nil
}

// Now returns the loop clock's reading.
func (l *Loop[E]) Now() time.Time { return l.clock.Now() }

// Clock returns the loop's clock.
func (l *Loop[E]) Clock() Clock { return l.clock }

func (l *Loop[E]) notify() {
	if l.sleeping.Load() != 0 && l.sleeping.CompareAndSwap(1, 0) {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Interrupt makes a running Run return after its current pass (at most one
// batch from each queue). Safe from any goroutine.
func (l *Loop[E]) Interrupt() {
	l.interrupt.Store(true)
	l.sleeping.Store(0)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run handles events until ctx is done or Interrupt is called, then returns
// ctx.Err() (nil after Interrupt). Events still queued stay queued: run again,
// or Close to drain them. Only one Run (or Step) may be active at a time.
func (l *Loop[E]) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer l.running.Store(false)
	if l.closed.Load() {
		return ErrClosed
	}
	l.interrupt.Store(false)
	l.handling, l.inRing = false, false // left set if a handler panicked out of the last Run
	stop := context.AfterFunc(ctx, l.Interrupt)
	defer stop()
	defer l.disarmPark()
	defer l.abandonLoan()
	for {
		if l.interrupt.Load() {
			return ctx.Err()
		}
		if l.pass() > 0 {
			continue
		}
		if len(l.timers.items) > 0 && l.timerPass >= 4 {
			// Idle: look at the timers, but read the clock (~50 ns on a VM)
			// at most every few passes, not on every idle moment.
			l.checkTimer = true
			if l.pass() > 0 {
				continue
			}
		}
		// A lent handler may fault while spin waits in takeBack for the
		// loan to end: takeBack then consumes the fault's wake, so Run
		// must raise it before it parks.
		if spun := l.spin(); !spun && l.fault == nil {
			l.park()
		}
		if l.fault != nil {
			l.raise()
		}
	}
}

// raise ends Run as the lent handler that faulted would have, had it run
// on the loop's goroutine: with its panic, or by runtime.Goexit.
func (l *Loop[E]) raise() {
	f := l.fault
	l.fault = nil
	if f.goexit {
		runtime.Goexit()
	}
	panic(f.value)
}

// spin watches the queues for a short while before the loop parks, yielding
// the processor after each look so that the goroutine that will post the
// work (often woken onto this very processor) can run.
//
// Meanwhile the loop is idle and can be lent, as when parked: a goroutine
// that posts with PostRun (an asker that would only wait for the reply)
// runs the next pass itself rather than waiting for the spinner to notice.
// The spinner takes the loop back before it looks at the queues.
func (l *Loop[E]) spin() bool {
	if l.cfg.Spin == 0 {
		return false
	}
	l.owner.Store(ownSpinning)
	for range l.cfg.Spin {
		runtime.Gosched()
		if l.owner.CompareAndSwap(ownSpinning, ownRunning) {
			if l.hasWork() || l.interrupt.Load() {
				return true
			}
			l.owner.Store(ownSpinning)
		} else if l.owner.CompareAndSwap(ownFaulted, ownRunning) {
			return true // Run raises the lent handler's fault
		}
	}
	l.takeBack(ownSpinning)
	return false
}

// pass handles up to Batch events from each source and publishes statistics.
func (l *Loop[E]) pass() int {
	l.passes++
	// Control first: replies and completions unblock work already under way.
	if l.ctlPos >= len(l.ctlBuf) && l.ctlHint.Load() != 0 {
		l.pullControl()
	}
	var st passState[E]
	for !l.run(&st) {
		l.recovered(&st) // a handler's panic, recovered: on with the next event
	}
	var zero E
	l.cur = zero // do not keep the last message reachable
	if n := st.n; n > 0 {
		l.handled += uint64(n)
		l.pub.handled.Store(l.handled)
		if l.handled&^255 != (l.handled-uint64(n))&^255 {
			l.publish()
		}
	}
	return st.n
}

// passState is how far a pass has got, so that it can resume after a
// handler's panic that the loop recovered (Recoverer).
type passState[E any] struct {
	stage int // the stage* in progress
	i     int // events the stage has taken
	n     int // events the pass has handled
	ev    *E  // the event being handled
}

// The stages of a pass, in order.
const (
	stageControl = iota
	stageLocal
	stageInbound
	stageTimers // the clock is read and due timers are being handled
)

// run runs the pass from where st says, and reports whether it got to the
// end. With a Recoverer it is the recover frame of every event it hands
// over: when a handler's own panic unwinds to it, it recovers it, has the
// handler finish the event (Recovered) and returns false, the event still
// to be finished on the loop's side (recovered) before run is called
// again. One deferred call per pass, not per event.
func (l *Loop[E]) run(st *passState[E]) (done bool) {
	if l.rec != nil {
		defer func() {
			if !done && l.rec.Recovering() {
				if v := recover(); v != nil { // nil: runtime.Goexit, which goes on
					l.rec.Recovered(st.ev, v)
				}
			}
		}()
	}
	ev := &l.cur
	switch st.stage {
	case stageControl:
		for ; st.i < l.cfg.Batch && l.popControl(ev); st.i++ {
			st.ev = ev
			l.handle(ev)
			st.n++
		}
		st.stage, st.i = stageLocal, 0
		fallthrough
	case stageLocal:
		for ; st.i < l.cfg.Batch && l.local.pop(ev); st.i++ {
			st.ev = ev
			l.handle(ev)
			st.n++
		}
		st.stage, st.i = stageInbound, 0
		fallthrough
	case stageInbound:
		for ; st.i < l.cfg.Batch; st.i++ {
			if l.ctlHint.Load() != 0 || l.ctlPos < len(l.ctlBuf) {
				// Control first at every event, not only at the start of a
				// pass: a control event posted before an inbound one (a stop
				// before a message that the stop's sender caused) is handled
				// before it. The next pass takes it.
				break
			}
			v := l.in.peek()
			if v == nil {
				break
			}
			st.ev = v
			l.inRing = true
			l.handle(v) // in place: no copy out of the ring
			l.inRing = false
			l.in.release()
			if st.n++; st.n&15 == 0 {
				l.pub.handled.Store(l.handled + uint64(st.n)) // progress for the watchdog
			}
		}
		if l.in.publish() {
			l.room.wake()
		}
		if len(l.timers.items) == 0 {
			return true
		}
		if l.timerPass++; l.timerPass >= 16 {
			l.checkTimer = true
		}
		if !l.checkTimer {
			return true
		}
		l.checkTimer, l.timerPass = false, 0
		l.readClock()
		st.stage, st.i = stageTimers, 0
		fallthrough
	case stageTimers:
		for ; st.i < l.cfg.Batch && l.timers.popDue(l.now, ev); st.i++ {
			st.ev = ev
			l.handle(ev)
			st.n++
		}
	}
	return true
}

// recovered finishes, on the loop's side, the event whose handler
// panicked and was recovered in run (the handler has finished it in
// Recovered), as handle and the pass would have had the handler returned.
func (l *Loop[E]) recovered(st *passState[E]) {
	l.afterHandle()
	st.i++
	if st.stage == stageInbound {
		l.inRing = false
		l.in.release()
		if st.n++; st.n&15 == 0 {
			l.pub.handled.Store(l.handled + uint64(st.n))
		}
		return
	}
	st.n++
}

// handleOne is handle for a single event (Step, a loan) with a recover
// frame of its own for a Recoverer's panic: it returns as if the handler
// had.
func (l *Loop[E]) handleOne(ev *E) {
	if l.rec == nil {
		l.handle(ev)
		return
	}
	if !l.handleGuarded(ev) {
		l.afterHandle()
	}
}

// handleGuarded runs handle on ev and reports whether it returned; if not,
// the handler's own panic was recovered and Recovered called.
func (l *Loop[E]) handleGuarded(ev *E) (done bool) {
	defer func() {
		if !done && l.rec.Recovering() {
			if v := recover(); v != nil { // nil: runtime.Goexit, which goes on
				l.rec.Recovered(ev, v)
			}
		}
	}()
	l.handle(ev)
	return true
}

// publish makes the loop-owned counters visible to Stats. Handled is
// published on every busy pass (the watchdog's progress signal); the rest
// every 256 events and whenever the loop parks.
func (l *Loop[E]) publish() {
	l.pub.handled.Store(l.handled)
	l.pub.local.Store(int64(l.local.n))
	l.pub.timers.Store(int64(len(l.timers.items)))
}

// CachedNow returns a recent reading of the loop's clock: never older than
// the current stretch of work (it is read again after the loop parks, on
// whichever goroutine runs the next pass, PostRun's included) and at most
// 16 passes old while the loop stays busy, timers or not. Use it where a
// deadline tolerates that staleness (ask timeouts); Now reads the clock.
// Loop goroutine only (or the goroutine running a pass).
func (l *Loop[E]) CachedNow() time.Time {
	if l.now == 0 || l.stale || l.passes-l.nowPass >= cachedPasses {
		l.readClock()
	}
	return time.Unix(0, l.now)
}

// cachedPasses bounds how many passes CachedNow's reading may serve.
const cachedPasses = 16

// readClock refreshes the cached reading.
func (l *Loop[E]) readClock() {
	if l.nanos != nil {
		l.now = l.nanos.NowNanos()
	} else {
		l.now = l.clock.Now().UnixNano()
	}
	l.nowPass, l.stale = l.passes, false
}

// readClockTrue is readClock in a condition.
func (l *Loop[E]) readClockTrue() bool {
	l.readClock()
	return true
}

func (l *Loop[E]) pullControl() {
	l.ctlHint.Store(0)
	var zero E
	for i := range l.ctlBuf {
		l.ctlBuf[i] = zero
	}
	l.ctlBuf = l.ctl.swap(l.ctlBuf)
	l.ctlPos = 0
}

func (l *Loop[E]) popControl(dst *E) bool {
	if l.ctlPos >= len(l.ctlBuf) {
		return false
	}
	*dst = l.ctlBuf[l.ctlPos]
	l.ctlPos++
	return true
}

func (l *Loop[E]) hasWork() bool {
	return l.ctlPos < len(l.ctlBuf) || l.ctlHint.Load() != 0 || l.local.n > 0 || l.in.ready()
}

// A lent pass longer than slowLend stops lending for the next
// noLendAfterSlow attempts: a poster such as a network goroutine is not
// held up by a loop whose handlers are slow (they still must not block).
// Loans are timed with the tick counter (package tsc), not the loop's
// Clock: the test is about the poster's real time, and it runs twice per
// loan, where a read of the system clock costs several times a tick read
// on a virtual machine.
const (
	slowLend        = time.Millisecond
	noLendAfterSlow = 1024
)

// Owners of a running loop's passes.
const (
	ownRunning  = iota // the loop goroutine
	ownParked          // nobody: the loop goroutine is parked
	ownBorrowed        // a goroutine in PostRun
	ownSpinning        // nobody: the loop goroutine yields before it parks (spin)
	ownFaulted         // nobody: a lent handler faulted, and only the loop goroutine may take the loop (to raise it)
)

// park blocks until a producer wakes the loop or the next timer is due.
// While it is parked, PostRun may lend the loop to another goroutine; the
// loop goroutine takes it back (waiting for the borrower) before it returns.
func (l *Loop[E]) park() {
	l.publish()
	// Time passed: look at the timers first, and read the clock again even
	// if a borrower read it while the loop was lent (a handler the loop's
	// goroutine runs next must not get a reading from before the wait).
	defer func() { l.checkTimer, l.stale = true, true }()
	// Time passes while parked, and the next pass may run on a borrower
	// (PostRun) that knows nothing of it: the cached reading is stale from
	// here on, whoever reads it next. Set before the loop is lent, so the
	// borrower sees it.
	l.stale = true
	l.sleeping.Store(1)
	if l.hasWork() || l.interrupt.Load() {
		l.sleeping.Store(0)
		return
	}
	l.parkUntil = 0
	if when, ok := l.timers.next(); ok {
		d := time.Duration(when - l.clock.Now().UnixNano())
		if d <= 0 {
			l.sleeping.Store(0)
			return
		}
		l.armPark(d)
		l.parkUntil = when
	}
	l.owner.Store(ownParked)
	<-l.wake
	if l.parkArmed.Load() {
		// Disarmed while the loop runs: a pending Go timer makes the
		// scheduler read the clock at every switch on its processor,
		// which a loop that yields between passes (spin) pays each time.
		// A fire that races with this leaves a token in wake: one
		// extra pass later.
		l.disarmPark()
	}
	l.takeBack(ownParked)
	l.sleeping.Store(0)
}

// armPark sets the park timer to wake the loop in d. The timer only wakes
// the loop (AfterFunc), so that a park is one channel receive rather than
// a select over two channels.
func (l *Loop[E]) armPark(d time.Duration) {
	l.parkArmed.Store(true)
	if l.parkTimer == nil {
		l.parkTimer = time.AfterFunc(d, l.parkFired)
		return
	}
	l.parkTimer.Reset(d)
}

// disarmPark stops the park timer, if set.
func (l *Loop[E]) disarmPark() {
	if l.parkTimer != nil && l.parkArmed.Load() {
		l.parkTimer.Stop()
		l.parkArmed.Store(false)
	}
}

// parkFired is the park timer's function: it wakes the loop, which looks
// at its timers first after a park.
func (l *Loop[E]) parkFired() {
	l.parkArmed.Store(false)
	l.sleeping.Store(0)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// takeBack makes the loop goroutine the owner again, from idle (ownParked
// or ownSpinning), waiting for a borrower (PostRun) to finish its pass. The
// flag is raised before the attempt, so a borrower that releases after a
// failed attempt always sees it and wakes us.
func (l *Loop[E]) takeBack(idle int32) {
	for {
		l.reclaim.Store(true)
		if l.owner.CompareAndSwap(idle, ownRunning) || l.owner.CompareAndSwap(ownFaulted, ownRunning) {
			l.reclaim.Store(false)
			return
		}
		<-l.wake // runParked signals when it releases the loop
	}
}

// runParked runs one pass on the calling goroutine if the loop's goroutine
// is idle (parked, or yielding before it parks), and reports whether it
// did. The loop's goroutine stays idle meanwhile and takes the loop back
// afterwards; work left over, or a timer due before the one it sleeps
// toward, wakes a parked one. It returns false at once when the loop is
// busy, stopped or already lent, so it never blocks.
func (l *Loop[E]) runParked() bool {
	idle := l.owner.Load()
	if idle != ownParked && idle != ownSpinning {
		return false
	}
	if l.noLend.Load() > 0 { // a recent lent pass was slow: hand off instead
		l.noLend.Add(-1)
		return false
	}
	if !l.owner.CompareAndSwap(idle, ownBorrowed) {
		return false
	}
	returned := false
	defer func() {
		if !returned {
			l.faulted(recover())
		}
	}()
	start := tsc.Read()
	l.stale = true // the loop was idle for who knows how long: CachedNow reads again
	l.pass()
	returned = true
	if tsc.Since(start) > slowLend {
		// The poster (a network goroutine) was held up by this loop's
		// handlers: do not lend the loop for a while.
		l.noLend.Store(noLendAfterSlow)
	}
	// Hand the loop back, waking its goroutine if it is waiting for us
	// or, parked, has work (parkedWake).
	l.publish()
	l.release(idle, l.parkedWake(idle))
	return true
}

// parkedWake tells a loan's end whether to wake the loop's goroutine: it
// is parked (idle) and work is left, or a timer is now due before the one
// it sleeps toward (a spinning goroutine looks at both itself).
func (l *Loop[E]) parkedWake(idle int32) bool {
	if idle != ownParked {
		return false
	}
	if l.hasWork() {
		return true
	}
	when, ok := l.timers.next()
	return ok && (l.parkUntil == 0 || when < l.parkUntil)
}

// runOwn handles the inbound event at pos on the calling goroutine if the
// loop's goroutine is idle and that event is the next one due (nothing
// queued before it, no control or local event waiting), and reports
// whether it did. It handles nothing else: what the event causes on this
// loop (local posts, timers) and whatever arrives meanwhile is left to
// the loop's goroutine, which it wakes if parked. It never blocks.
// guarded: not within the 1024 attempts after a slow lent event (for a
// borrower with other work, a loop); a slow one stops guarded loans either
// way.
func (l *Loop[E]) runOwn(pos uint64, guarded bool) (ran bool) {
	idle := l.owner.Load()
	if idle != ownParked && idle != ownSpinning {
		return false
	}
	if guarded && l.noLend.Load() > 0 {
		l.noLend.Add(-1)
		return false
	}
	if !l.owner.CompareAndSwap(idle, ownBorrowed) {
		return false
	}
	v := l.in.peek()
	if l.in.next != pos || v == nil || l.ctlHint.Load() != 0 || l.ctlPos < len(l.ctlBuf) || l.local.n > 0 {
		l.release(idle, false)
		return false
	}
	returned := false
	defer func() {
		if !returned {
			l.faulted(recover())
			ran = true
		}
	}()
	var start int64
	if guarded { // PostOwn's loans are not timed: see PostOwn
		start = tsc.Read()
	}
	l.passes++
	l.stale = true // the loop was idle for who knows how long: CachedNow reads again
	l.inRing = true
	l.handleOne(v)
	returned = true
	l.inRing = false
	l.in.release()
	if l.in.publish() {
		l.room.wake()
	}
	l.handled++
	if guarded && tsc.Since(start) > slowLend {
		l.noLend.Store(noLendAfterSlow)
	}
	l.publish()
	l.release(idle, l.parkedWake(idle))
	return true
}

// faulted ends a loan whose handler panicked with v, or called
// runtime.Goexit (v nil: since Go 1.21 a panic's value is never nil). The
// borrower does not take the panic: the loop is handed to its own
// goroutine, which Run makes panic with v (or exit) as if the handler had
// run there; until then nobody else may borrow it. Deferred on the
// borrower's goroutine, so it runs on either fault.
func (l *Loop[E]) faulted(v any) {
	l.handling = false
	l.fault = &fault{value: v, goexit: v == nil}
	l.publish()
	l.sleeping.Store(0)
	l.owner.Store(ownFaulted)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// release ends a loan: the loop is idle again, and its goroutine is woken
// if it waits to take the loop back or wake says so.
func (l *Loop[E]) release(idle int32, wake bool) {
	l.owner.Store(idle)
	if l.reclaim.Swap(false) || wake {
		if idle == ownParked {
			l.sleeping.Store(0)
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Step handles at most one event, in the fixed priority order control,
// local, inbound, due timers, and reports whether it handled one. It is how a
// loop is driven deterministically (with a FakeClock): the same posts in the
// same order give the same sequence of handled events. It returns false while
// Run is active.
func (l *Loop[E]) Step() bool {
	if !l.running.CompareAndSwap(false, true) {
		return false
	}
	defer l.running.Store(false)
	ev := &l.cur
	if l.ctlPos >= len(l.ctlBuf) && l.ctlHint.Load() != 0 {
		l.pullControl()
	}
	// The clock is read only for the timers (or when a handler asks):
	// a simulated clock costs a call, and most steps have no timer due.
	l.stale = true
	ok := l.popControl(ev) || l.local.pop(ev) || l.in.pop(ev) ||
		(len(l.timers.items) > 0 && l.readClockTrue() && l.timers.popDue(l.now, ev))
	if !ok {
		return false
	}
	l.handleOne(ev)
	var zero E
	*ev = zero
	l.handled++
	l.publish()
	return true
}

// Close stops the loop accepting events and passes every event it accepted
// but did not handle (queued or scheduled) to drain, on the calling
// goroutine, so the layer above can fail them with a signal. Call it after
// Run has returned. It is idempotent; drain may be nil.
func (l *Loop[E]) Close(drain func(*E)) {
	if !l.closed.CompareAndSwap(false, true) {
		return
	}
	end := l.in.close()
	l.room.wake() // waiters find the queue closed
	rest := l.ctl.close()
	if drain == nil {
		drain = func(*E) {}
	}
	var ev E
	for l.popControl(&ev) {
		drain(&ev)
	}
	for i := range rest {
		drain(&rest[i])
	}
	for l.local.pop(&ev) {
		drain(&ev)
	}
	l.in.drainClosed(end, drain)
	for i := range l.timers.items {
		drain(&l.timers.items[i].ev)
	}
	l.timers.items = nil
	l.publish()
}

// Closed reports whether Close has been called.
func (l *Loop[E]) Closed() bool { return l.closed.Load() }

// Stats is a snapshot of a loop's queues, safe to take from any goroutine.
type Stats struct {
	Inbound int    // events in the inbound queue
	Control int    // events in the control queue, not yet pulled
	Local   int    // events in the local queue at the end of the last pass
	Timers  int    // scheduled events at the end of the last pass
	Handled uint64 // events handled since New (moves while the loop makes progress)
	Parked  bool   // the loop is parked waiting for work
}

// Stats returns a snapshot of the loop's counters.
func (l *Loop[E]) Stats() Stats {
	return Stats{
		Inbound: l.in.len(),
		Control: l.ctl.len(),
		Local:   int(l.pub.local.Load()),
		Timers:  int(l.pub.timers.Load()),
		Handled: l.pub.handled.Load(),
		// A loop lent to a poster (PostRun) is working even though its
		// goroutine sleeps: the watchdog must see a stuck handler there too.
		Parked: l.sleeping.Load() != 0 && l.owner.Load() != ownBorrowed,
	}
}

// Capacity returns the bound of the inbound queue (and of the local queue).
func (l *Loop[E]) Capacity() int { return l.cfg.Capacity }
