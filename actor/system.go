package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/internal/seam"

	"github.com/actord/actord/loop"
)

// Config sets up a System. Zero fields take the defaults.
type Config struct {
	// Loops is the number of event loops. Default runtime.GOMAXPROCS(0).
	Loops int
	// QueueCapacity bounds each loop's inbound queue (messages from other
	// goroutines and loops) and, separately, its local queue. When a queue is
	// full, Send and Ask fail at once with ErrQueueFull: a sender is never
	// blocked and a loop never waits on another loop. Default 8192.
	QueueCapacity int
	// Batch is how many events of each queue a loop handles per pass. Default 256.
	Batch int
	// AskTimeout is the deadline of Context.Ask. Default 5s.
	AskTimeout time.Duration
	// Workers and WorkerQueue size the pool that runs Context.Blocking jobs.
	// Defaults 4×GOMAXPROCS and 1024.
	Workers, WorkerQueue int
	// Hook, if set, receives every event every loop processes (see Event).
	// Each handler is then timed: two clock reads per message.
	Hook Hook
	// LifecycleHook, if set, receives only the lifecycle events (spawn,
	// stop, restart, crash, report, dropped), at no cost per message. Event
	// buses and crash collectors want this one. Event.Seq then counts the
	// events reported to either hook.
	LifecycleHook Hook
	// OnCrash, if set, receives every crash on the goroutine running the
	// crashing loop (its own, or an asker's it is lent to: see
	// LendTimedAsks), in addition to the event hook. Default: log it at
	// Error level.
	OnCrash func(*Crash)
	// Watchdog is the longest a handler may run before it is reported as
	// stalling its loop (through OnStall). Default 1s; negative disables it.
	Watchdog time.Duration
	// OnStall is called (from the watchdog goroutine) when a busy loop has
	// handled no event for longer than Watchdog. Default: log it at Warn level.
	OnStall func(loop int, stalled time.Duration)
	// Clock drives timers and deadlines. Default: the wall clock.
	Clock loop.Clock
	// Seed seeds each loop's random source (Context.Rand).
	Seed uint64
	// Manual creates the loops without goroutines: the caller drives them
	// with Step and RunUntilIdle, from one goroutine, which makes a run
	// reproducible (with a loop.FakeClock and a fixed Seed). In manual mode
	// every System method must be called from that goroutine, the secrets
	// in refs come from Seed (not from crypto/rand), and refs to remote
	// actors are kept for the system's lifetime rather than collected, so
	// that the garbage collector's timing cannot change a run. Manual mode
	// is for tests and simulation, not for production.
	Manual bool
	// ExternalLoops creates the loops without goroutines of their own: the
	// caller runs each loop by calling Serve on System.LoopServices() (they
	// satisfy suture/v4's Service), so a goroutine-level supervisor can
	// restart a loop whose goroutine died. Until a loop is served, messages
	// to it wait and System.Spawn/Ask on it block (up to their context).
	// Shutdown needs the loops served to stop their actors; it makes every
	// Serve return ErrShutdown. Ignored with Manual.
	ExternalLoops bool
	// LazyStacks records the stack of a crash as program counters
	// (Crash.PCs, CrashError.PCs) instead of as text (Crash.Stack, which is
	// then nil); Crash.StackText and CrashError.StackText format it when
	// asked. Formatting a stack costs several microseconds, most of the cost
	// of a crash and restart (supervisor.BenchmarkRestart), so a system that
	// expects many crashes and logs few of them saves it.
	LazyStacks bool
	// LendTimedAsks lets asks that have a deadline run the target's handler
	// on the asking goroutine, as a System.Ask without one does by
	// default, which saves them two goroutine switches, about half the
	// cost of the round trip.
	//
	// By default only a plain goroutine's System.Ask whose ctx has no
	// deadline and cannot be cancelled does that: when the target's loop
	// is idle (its goroutine parked, or yielding before it parks) and
	// nothing is queued before the request, the asking goroutine handles
	// the request itself, since it would wait without bound anyway. Every
	// other ask leaves the handler to the target loop's goroutine.
	//
	// With LendTimedAsks, so do System.AskTimeout with no timeout or one
	// of a second or more, System.Ask whose ctx's deadline is a second or
	// more away (a ctx that can be cancelled without a deadline still
	// never lends), and Context.Ask and Context.AskTimeout to an actor of
	// another loop with no timeout or one of a second or more, once the
	// asking handler has returned and if its loop has nothing else
	// queued (the asking loop's goroutine runs the handler). What that
	// costs:
	//   - The asker notices its deadline only once the handler returns: a
	//     handler slower than the deadline overruns it, and the ask then
	//     succeeds with the handler's result instead of failing with
	//     ErrTimeout (or ctx's error).
	//   - A goroutine that holds, while it asks, a lock the handler takes
	//     deadlocks, where it would otherwise fail at its deadline.
	//   - A slow target handler stalls the asking loop (its other actors,
	//     timers and messages, asks with short deadlines included), not
	//     only its own.
	//   - A handler that calls runtime.Goexit ends the asking goroutine.
	//     On an asking loop's goroutine that loop cannot go on: it panics
	//     with an error saying so (which stops the program unless the
	//     loop is served with ExternalLoops and the panic recovered),
	//     where otherwise only the target's loop would stop.
	// Asks with a timeout under a second never lend.
	LendTimedAsks bool
	// Logger receives the runtime's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Loops <= 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	if c.QueueCapacity <= 0 {
		c.QueueCapacity = 8192
	}
	if c.AskTimeout == 0 {
		c.AskTimeout = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if c.WorkerQueue <= 0 {
		c.WorkerQueue = 1024
	}
	if c.Watchdog == 0 {
		c.Watchdog = time.Second
	}
	if c.Clock == nil {
		c.Clock = loop.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// System is a group of event loops and the actors on them.
type System struct {
	cfg   Config
	loops []*loopState
	pool  *loop.Pool
	// blocking, if set, replaces pool.Submit for Context.Blocking (a
	// simulator's, through seam.Sim).
	blocking func(job func()) error
	log      *slog.Logger
	closing  atomic.Bool
	done     chan struct{} // closed when Shutdown has finished
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	next     int       // manual-mode round robin
	waiters  sync.Pool // *waiter, for the asks of plain goroutines
	waitSet  waiterSet
	ended    atomic.Bool // endWaits has run: waits that begin now end at once
	wire     wire
	key      secretKey
}

// NewSystem starts a System: its loops (one goroutine each, unless
// Config.Manual), its worker pool and its watchdog. Stop it with Shutdown.
func NewSystem(cfg Config) *System {
	cfg = cfg.withDefaults()
	s := &System{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	s.wire.s, s.wire.refs = s, newRefTable()
	s.waiters.New = func() any { return s.newWaiter() }
	s.pool = loop.NewPool(cfg.Workers, cfg.WorkerQueue)
	s.loops = make([]*loopState, cfg.Loops)
	for i := range s.loops {
		s.loops[i] = newLoopState(s, i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if !cfg.Manual {
		for _, ls := range s.ownLoops() {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = ls.loop.Run(ctx)
			}()
		}
		if cfg.Watchdog > 0 {
			s.wg.Add(1)
			go s.watchdog(ctx)
		}
	}
	return s
}

// Loops returns the number of loops.
func (s *System) Loops() int { return len(s.loops) }

func (s *System) onCrash(cr *Crash) {
	if s.cfg.OnCrash != nil {
		s.cfg.OnCrash(cr)
		return
	}
	s.log.Error("actor crashed", "actor", cr.Actor.String(), "name", cr.Name, "loop", cr.Loop,
		"panic", fmt.Sprint(cr.Value), "msg_type", fmt.Sprintf("%T", cr.Msg), "stack", string(cr.StackText()))
}

// pick chooses the loop for a spawn.
func (s *System) pick(o spawnOpts) *loopState {
	if o.loop >= 0 {
		return s.loops[o.loop%len(s.loops)]
	}
	best, bestLoad := s.loops[0], int64(-1)
	for _, ls := range s.loops {
		load := ls.live.Load() + int64(ls.loop.Stats().Inbound)
		if bestLoad < 0 || load < bestLoad {
			best, bestLoad = ls, load
		}
	}
	return best
}

// onLoop runs f on ls's goroutine and waits for it, or runs it inline in
// manual mode.
func (s *System) onLoop(ctx context.Context, ls *loopState, f func(*loopState)) error {
	if s.cfg.Manual {
		if ls.loop.Closed() {
			return ErrShutdown
		}
		ls.turn++
		f(ls)
		if len(ls.settled) > 0 {
			ls.endTurn()
		}
		return nil
	}
	done := make(chan struct{})
	if err := ls.loop.PostControl(envelope{kind: kRun, msg: func(l *loopState) { f(l); close(done) }}); err != nil {
		return postErr(err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		// s.done closes after the loops have stopped: if f ran, done was
		// closed before it, and this caller must not be told otherwise
		// (select picks at random among ready cases).
		select {
		case <-done:
			return nil
		default:
		}
		return ErrShutdown
	}
}

// Spawn creates a top-level actor (no parent) from a plain goroutine and
// waits until its Start method has returned. By default it goes on the least
// loaded loop. It fails with the Start error, ErrShutdown, or ctx's error;
// an actor whose start ctx's end overtook is not left running: it is never
// made, or, if its Start was under way, stopped with ctx's error as the
// reason once Start returns (Terminate runs).
func (s *System) Spawn(ctx context.Context, f Factory, opts ...SpawnOption) (Ref, error) {
	o := applyOpts(spawnOpts{loop: -1}, opts)
	if s.closing.Load() {
		return Ref{}, ErrShutdown
	}
	ls := s.pick(o)
	if s.cfg.Manual {
		var r Ref
		var err error
		if e := s.onLoop(ctx, ls, func(l *loopState) { r, err = l.spawn(f, o, Ref{}); o.after(l, r, err) }); e != nil {
			return Ref{}, e
		}
		return r, err
	}
	// The caller and the loop agree, through st, on who has the actor: the
	// caller (the spawn ended before the caller gave up) or nobody (the
	// loop stops what it made for a caller who left).
	const (
		pending = iota
		running
		finished
		abandoned
	)
	var st atomic.Int32
	var r Ref
	var err error
	var reason error // ctx's error, set before abandoned
	done := make(chan struct{})
	run := func(l *loopState) {
		defer close(done)
		if !st.CompareAndSwap(pending, running) {
			return // abandoned before it began: nothing made
		}
		r, err = l.spawn(f, o, Ref{})
		o.after(l, r, err)
		if !st.CompareAndSwap(running, finished) && err == nil {
			if sl := l.lookup(r); sl != nil {
				_ = l.stop(sl, r, reason) // the caller has gone: nobody holds r
			}
		}
	}
	if e := ls.loop.PostControl(envelope{kind: kRun, msg: run}); e != nil {
		return Ref{}, postErr(e)
	}
	giveUp := func(why error) (Ref, error) {
		reason = why
		if st.CompareAndSwap(pending, abandoned) || st.CompareAndSwap(running, abandoned) {
			return Ref{}, why
		}
		<-done // finished: the actor is the caller's after all
		return r, err
	}
	select {
	case <-done:
		return r, err
	case <-ctx.Done():
		return giveUp(ctx.Err())
	case <-s.done:
		// s.done closes after the loops have stopped: if the spawn ran,
		// done was closed before it.
		select {
		case <-done:
			return r, err
		default:
		}
		return giveUp(ErrShutdown)
	}
}

// SpawnMany creates n top-level actors from f from a plain goroutine, with
// one round trip to each loop used instead of one per actor, and returns
// their refs once every Start has returned. Without OnLoop the actors are
// spread evenly over the loops, in order (refs[i] on loop i mod Loops());
// with OnLoop they all go on that loop. It is all or nothing: if a Start
// fails, the actors already started are stopped with that error as the
// reason (their Terminate runs, on their loops, perhaps after SpawnMany has
// returned) and SpawnMany returns it; so does ctx's error or ErrShutdown.
// If ctx ends while loops are still starting actors, the ones they start
// are stopped when they are done. It must not be called from inside a
// handler (use Context.Spawn there).
func (s *System) SpawnMany(ctx context.Context, n int, f Factory, opts ...SpawnOption) ([]Ref, error) {
	if n <= 0 {
		return nil, nil
	}
	o := applyOpts(spawnOpts{loop: -1}, opts)
	if s.closing.Load() {
		return nil, ErrShutdown
	}
	refs := make([]Ref, n)
	loops := s.loops
	if o.loop >= 0 {
		loops = []*loopState{s.pick(o)}
	}
	stride := len(loops)
	// undo stops the actors chunk k started; on its loop.
	undo := func(l *loopState, k int, reason error) {
		for i := k; i < n; i += stride {
			if sl := l.lookup(refs[i]); sl != nil && !refs[i].IsZero() {
				l.stop(sl, refs[i], reason)
			}
		}
	}
	// A chunk that ends after its caller gave up undoes itself; mu orders
	// that decision against the caller's.
	var mu sync.Mutex
	var abandoned error
	finished := make([]bool, min(stride, n)) // sized now: runs write it concurrently
	dones := make([]chan error, 0, stride)
	for k, ls := range loops {
		if k >= n {
			break
		}
		done := make(chan error, 1)
		run := func(l *loopState) {
			var err error
			for i := k; i < n && err == nil; i += stride {
				refs[i], err = l.spawn(f, o, Ref{})
			}
			mu.Lock()
			finished[k] = true
			reason := err
			if reason == nil {
				reason = abandoned
			}
			mu.Unlock()
			if reason != nil {
				undo(l, k, reason)
			}
			done <- err
		}
		if s.cfg.Manual {
			if e := s.onLoop(ctx, ls, run); e != nil {
				done <- e
			}
		} else if e := ls.loop.PostControl(envelope{kind: kRun, msg: run}); e != nil {
			mu.Lock()
			finished[k] = true
			mu.Unlock()
			done <- postErr(e)
		}
		dones = append(dones, done)
	}
	var first error
	ok := make([]bool, len(dones))
	for k, done := range dones {
		select {
		case err := <-done:
			ok[k] = err == nil
			if err != nil && first == nil {
				first = err
			}
			continue
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
		case <-s.done:
			if first == nil {
				first = ErrShutdown
			}
		}
		// Giving up: chunks still running undo themselves; the ones that
		// finished are undone below.
		mu.Lock()
		abandoned = first
		for j := k; j < len(dones); j++ {
			if finished[j] {
				ok[j] = <-dones[j] == nil
			}
		}
		mu.Unlock()
		break
	}
	if first == nil {
		return refs, nil
	}
	for k, good := range ok {
		if !good {
			continue
		}
		f := func(l *loopState) { undo(l, k, first) }
		if s.cfg.Manual {
			_ = s.onLoop(context.Background(), loops[k], f)
		} else {
			_ = loops[k].loop.PostControl(envelope{kind: kRun, msg: f}) // closed: nothing left to stop
		}
	}
	return nil, first
}

// Send delivers msg to the actor to from a plain goroutine, one way. It never
// blocks: it fails with ErrQueueFull when the target loop's queue is full and
// ErrShutdown after shutdown. Messages sent by one goroutine to one actor
// arrive in the order sent. Use it where the caller has something better to
// do than wait (drop, count, shed load); use SendWait to be slowed down to
// the consumer's pace instead.
func (s *System) Send(to Ref, msg any) error {
	return to.send(origin{}, Ref{}, msg)
}

// SendMany is Context.SendMany from a plain goroutine: msgs go to the
// actor to in order, queued in one step; it returns how many were queued
// (a prefix of msgs) and, if not all, why the next was refused. It never
// blocks.
func (s *System) SendMany(to Ref, msgs []any) (int, error) {
	return to.box().sendMany(origin{}, to, Ref{}, msgs)
}

// SendWait is Send that waits for room instead of failing with
// ErrQueueFull: the calling goroutine parks until the target loop's next
// pass frees space (no spinning), so many producers feeding one actor run
// at its pace, as senders on a full channel do. It fails with ctx's error
// when ctx ends first (the message was not sent), ErrDead-style errors as
// Send, and ErrShutdown. For an actor of another node it retries after
// short pauses while the connection's outbound buffer is full. Order is as
// for Send. In manual mode (Config.Manual) it does not wait: nothing steps
// the loop meanwhile, so it fails with ErrQueueFull as Send does. It must not be called from inside a handler (the loop could
// wait for itself): use Context.Send there.
func (s *System) SendWait(ctx context.Context, to Ref, msg any) error {
	return to.box().sendWait(ctx, to, msg)
}

// Stop stops the actor r from a plain goroutine, as Context.Stop with a nil
// (normal) reason, and returns once it has stopped: its Terminate has
// returned, its refs are dead, its monitors and links are told. It returns
// nil also if r was already dead. If ctx ends first it returns ctx's error;
// the stop still happens. It works on actors of any loop and node. It must
// not be called from inside a handler (the loop could wait for itself): use
// Context.Stop or Context.StopAsync there.
func (s *System) Stop(ctx context.Context, r Ref) error {
	_, err := r.box().lifecycleWait(ctx, s, r, seam.LifecycleRequest{Op: seam.LifecycleStop})
	return err
}

// Kill ends the actor r at once, without running its Terminate (reason
// ErrKilled, as Context.Kill), and returns once it is dead, or when ctx
// ends (the kill still happens). A handler that is running finishes first:
// nothing preempts it. Not from inside a handler: use Context.Kill there.
func (s *System) Kill(ctx context.Context, r Ref) error {
	_, err := r.box().lifecycleWait(ctx, s, r, seam.LifecycleRequest{Op: seam.LifecycleStop, Timeout: -1})
	return err
}

// AskTimeout is Ask with a timeout instead of a context: it fails with
// ErrTimeout when no reply came within d (d <= 0: no timeout), the reply
// then being dropped. Unlike Ask, it waits (within d) for room when the
// target's queue is full, as SendWait does. It costs about what Ask does:
// the timer comes from a pool, not from a context made per call.
//
// By default the handler runs on the target loop's goroutine, so d holds
// whatever the handler does. With Config.LendTimedAsks, when d is zero or
// a second or more, it may run on the calling goroutine as described at
// Ask, and AskTimeout then returns only when the handler does, even past
// d (with the handler's result); a shorter d never lends.
func (s *System) AskTimeout(to Ref, msg any, d time.Duration) (any, error) {
	return to.box().askTimeout(s, to, msg, d)
}

// timeoutContext is a context that ends after d, or never for d <= 0 (as
// AskTimeout's d).
func timeoutContext(d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(context.Background(), d)
	}
	return context.Background(), func() {}
}

// askWithContext is AskTimeout through a context, for the mailboxes that
// have no cheaper way.
func (s *System) askWithContext(to Ref, msg any, d time.Duration) (any, error) {
	ctx, cancel := timeoutContext(d)
	defer cancel()
	v, err := s.Ask(ctx, to, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		err = ErrTimeout
	}
	return v, err
}

// Ask sends msg to the actor to from a plain goroutine and waits for the
// reply, until ctx is done (no deadline in ctx means no deadline). It fails
// with the handler's error, ErrDead, a *CrashError, ErrQueueFull,
// ErrShutdown or ctx's error. It must not be called from inside a handler
// (that would block the loop): use Context.Ask there.
//
// When ctx has no deadline and cannot be cancelled (its Done is nil:
// context.Background, context.TODO, a context.WithoutCancel), Ask would
// wait without bound anyway, so the handler may run on the calling
// goroutine: if the target's loop is idle with nothing queued before the
// request, Ask handles the request itself instead of waking the loop's
// goroutine and waiting for it (two goroutine switches saved; the actor
// still handles one message at a time, in order). Then the handler runs
// with whatever the caller holds: the caller must not hold a lock the
// handler takes (it would deadlock, where it would otherwise wait
// forever too), and the handler must not rely on goroutine-local state
// (runtime.LockOSThread, pprof labels); one that calls runtime.Goexit
// ends the caller's goroutine. A panic in the handler crashes the actor
// as on its loop (Ask returns the *CrashError); it does not reach the
// caller. Any other ctx (a deadline, or a cancel function) leaves the
// handler to the loop's goroutine, so ctx's end is noticed on time;
// Config.LendTimedAsks makes a deadline a second or more away lend too.
func (s *System) Ask(ctx context.Context, to Ref, msg any) (any, error) {
	return to.box().askWait(ctx, s, to, msg)
}

// askManual asks in manual mode, stepping the system until the reply comes.
func (s *System) askManual(ctx context.Context, l *loopState, to Ref, msg any) (any, error) {
	ch := make(chan result, 1)
	if err := l.loop.Post(envelope{kind: kAsk, to: to, msg: msg, ch: ch}); err != nil {
		return nil, postErr(err)
	}
	for {
		select {
		case r := <-ch:
			return r.v, r.err
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !s.Step() {
			return nil, fmt.Errorf("actor: manual system idle with the ask unanswered: %w", ErrTimeout)
		}
	}
}

// Step handles one event on one loop, taking the loops in turn, and reports
// whether there was one. When no loop has a ready event but timers are
// scheduled and the clock is a *loop.FakeClock, it advances the clock to the
// earliest deadline first. Manual mode only.
func (s *System) Step() bool {
	if !s.cfg.Manual {
		return false
	}
	for range 2 {
		for i := 0; i < len(s.loops); i++ {
			ls := s.loops[(s.next+i)%len(s.loops)]
			if ls.loop.Step() {
				s.next = (s.next + i + 1) % len(s.loops)
				return true
			}
		}
		fc, ok := s.cfg.Clock.(*loop.FakeClock)
		if !ok {
			return false
		}
		var earliest time.Time
		for _, ls := range s.loops {
			if t, ok := ls.loop.NextTimer(); ok && (earliest.IsZero() || t.Before(earliest)) {
				earliest = t
			}
		}
		if earliest.IsZero() {
			return false
		}
		fc.Set(earliest)
	}
	return false
}

// RunUntilIdle steps until no loop has anything to do (advancing a fake
// clock through pending timers) or max events were handled, and returns how
// many were. Manual mode only.
func (s *System) RunUntilIdle(max int) int {
	n := 0
	for n < max && s.Step() {
		n++
	}
	return n
}

// Stats is a snapshot of one loop.
type Stats struct {
	Loop   int
	Actors int64
	loop.Stats
}

// Stats returns a snapshot of every loop's counters. Safe from any goroutine.
func (s *System) Stats() []Stats {
	out := make([]Stats, len(s.loops))
	for i, ls := range s.loops {
		out[i] = Stats{Loop: i, Actors: ls.live.Load(), Stats: ls.loop.Stats()}
	}
	return out
}

// Shutdown stops the system: new spawns fail, every actor is stopped (newest
// first, Terminate called with ErrShutdown, monitors told), the loops exit,
// every message still queued is failed (asks get ErrShutdown), and the worker
// pool finishes the jobs it accepted. It returns ctx's error if that takes
// longer than ctx allows (the remaining goroutines then exit on their own
// once their jobs return). It is idempotent.
func (s *System) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() { err = s.shutdown(ctx) })
	return err
}

func (s *System) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	for _, ls := range s.loops {
		if e := s.onLoop(ctx, ls, func(l *loopState) { l.stopAll(ErrShutdown) }); e != nil && !errors.Is(e, ErrShutdown) {
			s.log.Warn("actor: shutdown could not stop the actors of a loop", "loop", ls.id, "err", e)
		}
	}
	s.cancel()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.haltServices()
		for _, ls := range s.loops {
			ls.loop.Close(func(e *envelope) {
				switch e.kind {
				case kAsk:
					reply(e, nil, ErrShutdown)
				case kRun:
					// runs that wait for an answer select on s.done
				}
			})
		}
		s.endWaits()
		close(s.done)
		s.pool.Close()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actor: shutdown: %w", ctx.Err())
	}
}

// watchdog reports loops that stay inside one pass longer than the budget.
func (s *System) watchdog(ctx context.Context) {
	defer s.wg.Done()
	budget := s.cfg.Watchdog
	tick := time.NewTicker(budget / 4)
	defer tick.Stop()
	marks := make([]watchMark, len(s.loops))
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for i, ls := range s.loops {
				d, ok := marks[i].stalled(ls.loop.Stats(), now, budget)
				if !ok {
					continue
				}
				if s.cfg.OnStall != nil {
					s.cfg.OnStall(i, d)
				} else {
					s.log.Warn("actor: loop stalled: a handler has run too long", "loop", i, "for", d)
				}
			}
		}
	}
}

// watchMark is the watchdog's record of one loop: how many events it had
// handled when last seen, since when, and whether its stall was reported.
type watchMark struct {
	handled  uint64
	since    time.Time
	reported bool
}

// stalled updates m with the loop's stats st at now, and returns how long
// the loop has been in one handler when that reached budget and was not
// reported yet. A loop seen for the first time starts its count now: a
// loop that blocks in its very first handler is reported after budget,
// with the time since it was first seen, not since the zero time.
func (m *watchMark) stalled(st loop.Stats, now time.Time, budget time.Duration) (time.Duration, bool) {
	if st.Parked || st.Handled != m.handled || m.since.IsZero() {
		*m = watchMark{handled: st.Handled, since: now}
		return 0, false
	}
	if d := now.Sub(m.since); d >= budget && !m.reported {
		m.reported = true
		return d, true
	}
	return 0, false
}
