package loop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// handlerFunc adapts a function to Handler.
type handlerFunc[E any] func(*E)

func (f handlerFunc[E]) Handle(e *E) { f(e) }

// record is a Handler that appends every event it handles. got is read by
// the test only after the loop goroutine is done with it (Run returned) or
// from the goroutine driving Step.
type record[E any] struct {
	got []E
}

func (r *record[E]) Handle(e *E) { r.got = append(r.got, *e) }

// startRun runs l on a new goroutine and returns a channel receiving Run's
// result. The cleanup interrupts the loop and waits for Run to return, so no
// test leaves a loop goroutine behind.
func startRun[E any](t *testing.T, ctx context.Context, l *Loop[E]) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res <- l.Run(ctx)
	}()
	t.Cleanup(func() {
		l.Interrupt()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("Run did not return after Interrupt in cleanup")
		}
	})
	return res
}

// waitRunning waits until Run has started handling events: it posts a probe
// and waits for the handler to report it through seen.
func waitRunning[E any](t *testing.T, l *Loop[E], probe E, seen <-chan struct{}) {
	t.Helper()
	if err := l.Post(probe); err != nil {
		t.Fatalf("Post probe: %v", err)
	}
	waitFor(t, seen, "the loop to handle a probe")
}

func TestConfigDefaults(t *testing.T) {
	l := New[int](&record[int]{}, Config{})
	if l.cfg.Capacity != 8192 || l.cfg.Batch != 256 {
		t.Fatalf("defaults: %+v", l.cfg)
	}
	if _, ok := l.Clock().(RealClock); !ok {
		t.Fatalf("default clock %T, want RealClock", l.Clock())
	}
	if l.Capacity() != 8192 || l.local.capacity != 8192 || int(l.in.capacity) != 8192 {
		t.Fatalf("capacity: %d local %d inbound %d", l.Capacity(), l.local.capacity, l.in.capacity)
	}
	clock := NewFakeClock(epoch)
	l2 := New[int](&record[int]{}, Config{Capacity: 3, Batch: 7, Clock: clock})
	if l2.cfg.Capacity != 3 || l2.cfg.Batch != 7 || l2.Clock() != Clock(clock) || !l2.Now().Equal(epoch) {
		t.Fatalf("explicit config: %+v", l2.cfg)
	}
	l.Close(nil)
	l2.Close(nil)
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(epoch)
	if !c.Now().Equal(epoch) {
		t.Fatalf("Now = %v", c.Now())
	}
	c.Advance(5 * time.Second)
	c.Advance(-time.Hour) // ignored
	if want := epoch.Add(5 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("after Advance: %v, want %v", c.Now(), want)
	}
	c.Set(epoch) // backwards: ignored
	if want := epoch.Add(5 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("Set backwards moved the clock to %v", c.Now())
	}
	c.Set(epoch.Add(time.Minute))
	if want := epoch.Add(time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after Set: %v, want %v", c.Now(), want)
	}
	if d := time.Since(RealClock{}.Now()); d < 0 || d > time.Minute {
		t.Fatalf("RealClock is off by %v", d)
	}
}

func TestLoopRunManyProducersKeepOrder(t *testing.T) {
	const producers = 8
	perProducer := 20_000
	if testing.Short() {
		perProducer = 2_000
	}
	total := producers * perProducer
	next := make([]int, producers) // loop goroutine only
	var handled int
	done := make(chan struct{})
	l := New[msg](handlerFunc[msg](func(e *msg) {
		if e.i != next[e.p] {
			t.Errorf("producer %d: handled %d, want %d", e.p, e.i, next[e.p])
		}
		next[e.p] = e.i + 1
		handled++
		if handled == total {
			close(done)
		}
	}), Config{Capacity: 256, Batch: 16})
	res := startRun(t, context.Background(), l)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for i := 0; i < perProducer; {
				// Half the producers use the control queue: it keeps order too.
				var err error
				if p%2 == 0 {
					err = l.Post(msg{p, i})
				} else {
					err = l.PostControl(msg{p, i})
				}
				switch {
				case err == nil:
					i++
				case errors.Is(err, ErrFull) && p%2 == 0:
					runtime.Gosched()
				default:
					t.Errorf("producer %d: post %d: %v", p, i, err)
					return
				}
			}
		})
	}
	waitGroup(t, &wg, "producers to stop")
	waitFor(t, done, fmt.Sprintf("all %d events to be handled", total))
	l.Interrupt()
	if err := waitFor(t, res, "Run to return"); err != nil {
		t.Fatalf("Run after Interrupt = %v, want nil", err)
	}
	if s := l.Stats(); s.Handled != uint64(total) || s.Inbound != 0 || s.Control != 0 {
		t.Fatalf("stats after run: %+v", s)
	}
	l.Close(func(e *msg) { t.Errorf("drained %+v: everything was handled", *e) })
}

func TestLoopInterrupt(t *testing.T) {
	seen := make(chan struct{}, 100)
	l := New[int](handlerFunc[int](func(*int) { seen <- struct{}{} }), Config{})
	t.Cleanup(func() { l.Close(nil) }) // after the Run cleanup (LIFO)
	res := startRun(t, context.Background(), l)
	waitRunning(t, l, 0, seen)
	l.Interrupt()
	if err := waitFor(t, res, "Run to return after Interrupt"); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	// Events posted while stopped stay queued and a second Run handles them.
	if err := l.Post(1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
		t.Fatal("event handled while no Run was active")
	default:
	}
	res2 := startRun(t, context.Background(), l)
	waitFor(t, seen, "the second Run to handle the queued event")
	l.Interrupt()
	if err := waitFor(t, res2, "second Run to return"); err != nil {
		t.Fatalf("second Run = %v", err)
	}
}

// TestLoopInterruptFromHandler calls Interrupt from inside Handle while many
// events are queued. Run must return promptly, handling at most the rest of
// the current batch (the doc promises "after its current event"; the loop
// checks the flag between passes), and leave the rest queued for Close.
func TestLoopInterruptFromHandler(t *testing.T) {
	const batch, total = 4, 40
	var l *Loop[int]
	var got []int
	l = New[int](handlerFunc[int](func(e *int) {
		got = append(got, *e)
		if *e == 2 {
			l.Interrupt()
		}
	}), Config{Batch: batch})
	for i := 0; i < total; i++ {
		if err := l.Post(i); err != nil {
			t.Fatal(err)
		}
	}
	res := startRun(t, context.Background(), l)
	if err := waitFor(t, res, "Run to return"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(got) < 3 || len(got) > batch {
		t.Fatalf("handled %v before returning, want 0..2 and at most the rest of a batch of %d", got, batch)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("handled %v, not in order", got)
		}
	}
	var drained []int
	l.Close(func(e *int) { drained = append(drained, *e) })
	if len(got)+len(drained) != total {
		t.Fatalf("handled %d + drained %d, want %d", len(got), len(drained), total)
	}
	for i, v := range drained {
		if v != len(got)+i {
			t.Fatalf("drained %v, want %d..%d", drained, len(got), total-1)
		}
	}
}

func TestLoopContextCancel(t *testing.T) {
	seen := make(chan struct{}, 10)
	l := New[int](handlerFunc[int](func(*int) { seen <- struct{}{} }), Config{})
	t.Cleanup(func() { l.Close(nil) }) // after the Run cleanup (LIFO)

	ctx, cancel := context.WithCancel(context.Background())
	res := startRun(t, ctx, l)
	waitRunning(t, l, 0, seen)
	eventually(t, "the loop to park", func() bool { return l.Stats().Parked })
	cancel()
	if err := waitFor(t, res, "Run to return after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}

	// A context already done makes Run return at once.
	res = startRun(t, ctx, l)
	if err := waitFor(t, res, "Run with a cancelled context"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}

	// A deadline stops a loop parked on a far timer.
	if err := l.PostLocal(0); err != nil { // run once to schedule from the loop
		t.Fatal(err)
	}
	if !l.Step() {
		t.Fatal("Step handled nothing")
	}
	<-seen
	l.Schedule(time.Now().Add(time.Hour), 99)
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	res = startRun(t, dctx, l)
	if err := waitFor(t, res, "Run to return at the deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	if l.Timers() != 1 {
		t.Fatalf("Timers = %d, want the far timer still scheduled", l.Timers())
	}
}

func TestLoopRunTwiceConcurrently(t *testing.T) {
	seen := make(chan struct{}, 10)
	l := New[int](handlerFunc[int](func(*int) { seen <- struct{}{} }), Config{})
	t.Cleanup(func() { l.Close(nil) }) // after the Run cleanup (LIFO)
	res := startRun(t, context.Background(), l)
	waitRunning(t, l, 0, seen)
	// On its own goroutine, so that a Run that wrongly starts fails the test
	// (and is cancelled) instead of hanging it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	second := make(chan error, 1)
	go func() { second <- l.Run(ctx2) }()
	if err := waitFor(t, second, "a second concurrent Run to be refused"); !errors.Is(err, ErrRunning) {
		t.Fatalf("second concurrent Run = %v, want ErrRunning", err)
	}
	if err := l.PostControl(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, seen, "the running loop to handle a control event")
	// Step must not touch the loop while Run owns it.
	if err := l.Post(2); err != nil {
		t.Fatal(err)
	}
	if l.Step() {
		t.Fatal("Step handled an event while Run was active")
	}
	waitFor(t, seen, "the running loop to handle the inbound event")
	l.Interrupt()
	if err := waitFor(t, res, "first Run to return"); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	// And a Run from inside a Step is refused too.
	var inner error
	l2 := New[int](nil, Config{})
	l2.h = handlerFunc[int](func(*int) { inner = l2.Run(context.Background()) })
	if err := l2.Post(0); err != nil {
		t.Fatal(err)
	}
	if !l2.Step() || !errors.Is(inner, ErrRunning) {
		t.Fatalf("Run inside Step = %v, want ErrRunning", inner)
	}
	l2.Close(nil)
}

func TestLoopParksAndWakes(t *testing.T) {
	seen := make(chan int, 10)
	l := New[int](handlerFunc[int](func(e *int) { seen <- *e }), Config{Spin: 2})
	t.Cleanup(func() { l.Close(nil) }) // after the Run cleanup (LIFO)
	if l.Stats().Parked {
		t.Fatal("a loop that never ran reports Parked")
	}
	startRun(t, context.Background(), l)
	eventually(t, "the idle loop to park", func() bool { return l.Stats().Parked })
	for i := 1; i <= 3; i++ {
		if err := l.Post(i); err != nil {
			t.Fatal(err)
		}
		if got := waitFor(t, seen, "a post to wake the parked loop"); got != i {
			t.Fatalf("handled %d, want %d", got, i)
		}
		eventually(t, "the loop to park again", func() bool { return l.Stats().Parked })
	}
	// Control events wake it too.
	if err := l.PostControl(10); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, seen, "a control post to wake the parked loop"); got != 10 {
		t.Fatalf("handled %d, want 10", got)
	}
	eventually(t, "the loop to park after the control event", func() bool { return l.Stats().Parked })
	l.Interrupt()
	eventually(t, "Interrupt to unpark the loop", func() bool { return !l.Stats().Parked })
}

// TestLoopPingPongNoLostWakeups bounces a token between two loops that park
// as soon as they are idle (Spin < 0). A lost wake-up stalls the exchange.
func TestLoopPingPongNoLostWakeups(t *testing.T) {
	rounds := 20_000
	if testing.Short() {
		rounds = 2_000
	}
	done := make(chan struct{})
	var a, b *Loop[int]
	a = New[int](handlerFunc[int](func(e *int) {
		if *e == rounds {
			close(done)
			return
		}
		if err := b.Post(*e + 1); err != nil {
			t.Errorf("a→b: %v", err)
		}
	}), Config{Spin: -1})
	b = New[int](handlerFunc[int](func(e *int) {
		if err := a.PostControl(*e + 1); err != nil {
			t.Errorf("b→a: %v", err)
		}
	}), Config{Spin: -1})
	t.Cleanup(func() { a.Close(nil) }) // after the Run cleanup (LIFO)
	t.Cleanup(func() { b.Close(nil) }) // after the Run cleanup (LIFO)
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	if err := a.Post(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the ping-pong to finish (a lost wake-up stalls it)")
}

func TestLoopControlBeforeInboundInStep(t *testing.T) {
	rec := &record[string]{}
	l := New[string](rec, Config{})
	defer l.Close(nil)
	for _, s := range []string{"in1", "in2"} {
		if err := l.Post(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"ctl1", "ctl2"} {
		if err := l.PostControl(s); err != nil {
			t.Fatal(err)
		}
	}
	if s := l.Stats(); s.Inbound != 2 || s.Control != 2 {
		t.Fatalf("stats before stepping: %+v", s)
	}
	for l.Step() {
	}
	if want := []string{"ctl1", "ctl2", "in1", "in2"}; !slices.Equal(rec.got, want) {
		t.Fatalf("handled %v, want %v", rec.got, want)
	}
	if s := l.Stats(); s.Handled != 4 || s.Inbound != 0 || s.Control != 0 {
		t.Fatalf("stats after stepping: %+v", s)
	}
}

func TestLoopStepPriority(t *testing.T) {
	clock := NewFakeClock(epoch)
	rec := &record[string]{}
	l := New[string](rec, Config{Clock: clock})
	defer l.Close(nil)
	// Queue in the reverse of the priority order.
	l.Schedule(clock.Now(), "timer1")
	l.Schedule(clock.Now().Add(-time.Second), "timer0")
	l.Schedule(clock.Now().Add(time.Second), "timer-later")
	mustNil(t, l.Post("in1"), l.Post("in2"))
	mustNil(t, l.PostLocal("local1"), l.PostLocal("local2"))
	mustNil(t, l.PostControl("ctl1"), l.PostControl("ctl2"))
	for l.Step() {
	}
	want := []string{"ctl1", "ctl2", "local1", "local2", "in1", "in2", "timer0", "timer1"}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("Step order %v, want %v", rec.got, want)
	}
	if s := l.Stats(); s.Timers != 1 || s.Local != 0 || s.Handled != uint64(len(want)) {
		t.Fatalf("stats: %+v", s)
	}
	// Each Step handles exactly one event, re-evaluating priority each time:
	// a control event posted mid-way goes ahead of queued inbound events.
	rec.got = nil
	mustNil(t, l.Post("in3"), l.Post("in4"))
	if !l.Step() {
		t.Fatal("Step handled nothing")
	}
	mustNil(t, l.PostControl("ctl3"), l.PostLocal("local3"))
	for l.Step() {
	}
	if want := []string{"in3", "ctl3", "local3", "in4"}; !slices.Equal(rec.got, want) {
		t.Fatalf("Step order %v, want %v", rec.got, want)
	}
}

// TestLoopPassBatches drives pass directly: one pass takes up to Batch events
// from each queue in the order control, local, inbound, except that no
// inbound event is taken while control events wait (they go first).
func TestLoopPassBatches(t *testing.T) {
	rec := &record[string]{}
	l := New[string](rec, Config{Batch: 2})
	defer l.Close(nil)
	for i := 0; i < 3; i++ {
		mustNil(t, l.Post(fmt.Sprint("i", i)), l.PostLocal(fmt.Sprint("l", i)), l.PostControl(fmt.Sprint("c", i)))
	}
	for i, want := range []int{4, 4, 1, 0} {
		if n := l.pass(); n != want {
			t.Fatalf("pass %d handled %d (%v), want %d", i+1, n, rec.got, want)
		}
	}
	want := []string{"c0", "c1", "l0", "l1", "c2", "l2", "i0", "i1", "i2"}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("pass order %v, want %v", rec.got, want)
	}
	if s := l.Stats(); s.Handled != 9 || s.Inbound != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestLoopTimersFakeClock(t *testing.T) {
	clock := NewFakeClock(epoch)
	rec := &record[string]{}
	l := New[string](rec, Config{Clock: clock})
	defer l.Close(nil)
	if _, ok := l.NextTimer(); ok {
		t.Fatal("NextTimer on a loop without timers")
	}
	l.Schedule(at(30), "30")
	l.Schedule(at(10), "10a")
	l.Schedule(at(20), "20")
	l.Schedule(at(10), "10b")
	if l.Timers() != 4 {
		t.Fatalf("Timers = %d", l.Timers())
	}
	if n, ok := l.NextTimer(); !ok || !n.Equal(at(10)) {
		t.Fatalf("NextTimer = %v %v, want %v", n, ok, at(10))
	}
	if !l.Now().Equal(epoch) {
		t.Fatalf("Now = %v, want the fake clock's reading", l.Now())
	}
	step := func(wantMs int, want ...string) {
		t.Helper()
		clock.Set(at(wantMs))
		rec.got = nil
		for l.Step() {
		}
		if !slices.Equal(rec.got, want) {
			t.Fatalf("at %dms fired %v, want %v", wantMs, rec.got, want)
		}
	}
	step(0)
	step(9)
	step(10, "10a", "10b") // due exactly at the deadline, ties in scheduling order
	step(10)
	step(19)
	step(25, "20")
	step(1000, "30")
	if l.Timers() != 0 {
		t.Fatalf("Timers = %d after all fired", l.Timers())
	}
	if s := l.Stats(); s.Timers != 0 || s.Handled != 4 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestLoopTimersRealClock checks that a running loop parked with a timer
// pending wakes up for it, and fires timers in deadline order.
func TestLoopTimersRealClock(t *testing.T) {
	fired := make(chan int, 10)
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		if *e == 0 { // schedule three timers, in reverse deadline order
			now := l.Now()
			for i := 3; i >= 1; i-- {
				l.Schedule(now.Add(time.Duration(i)*5*time.Millisecond), i)
			}
			return
		}
		fired <- *e
	}), Config{})
	t.Cleanup(func() { l.Close(nil) }) // after the Run cleanup (LIFO)
	startRun(t, context.Background(), l)
	start := time.Now()
	if err := l.Post(0); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		if got := waitFor(t, fired, "a timer to fire"); got != want {
			t.Fatalf("timer %d fired, want %d", got, want)
		}
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("last timer fired after %v, before its 15ms deadline", d)
	}
}

func TestLoopCompactTimers(t *testing.T) {
	clock := NewFakeClock(epoch)
	rec := &record[int]{}
	l := New[int](rec, Config{Clock: clock})
	defer l.Close(nil)
	for i := 0; i < 10; i++ {
		l.Schedule(at(i), i)
	}
	l.CompactTimers(func(e *int) bool { return *e%3 == 0 })
	if l.Timers() != 4 {
		t.Fatalf("Timers = %d after compact, want 4", l.Timers())
	}
	clock.Set(at(100))
	for l.Step() {
	}
	if !equalInts(rec.got, []int{0, 3, 6, 9}) {
		t.Fatalf("fired %v", rec.got)
	}
}

func TestLoopCloseDrainsEverythingOnce(t *testing.T) {
	clock := NewFakeClock(epoch)
	rec := &record[string]{}
	l := New[string](rec, Config{Clock: clock})
	accepted := map[string]bool{}
	accept := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("posting %s: %v", name, err)
		}
		accepted[name] = true
	}
	schedule := func(name string, when time.Time) {
		l.Schedule(when, name)
		accepted[name] = true
	}
	// Control events pulled into the loop's buffer but not yet handled must
	// be drained too: pull three, handle one.
	for _, s := range []string{"ctl0", "ctl1", "ctl2"} {
		accept(s, l.PostControl(s))
	}
	if !l.Step() || !slices.Equal(rec.got, []string{"ctl0"}) {
		t.Fatalf("first Step handled %v", rec.got)
	}
	accept("ctl3", l.PostControl("ctl3")) // still in the control queue
	for i := 0; i < 3; i++ {
		name := fmt.Sprint("local", i)
		accept(name, l.PostLocal(name))
		name = fmt.Sprint("in", i)
		accept(name, l.Post(name))
	}
	schedule("timer-due", clock.Now())
	schedule("timer-later", clock.Now().Add(time.Hour))
	schedule("timer-later2", clock.Now().Add(2*time.Hour))

	drained := map[string]int{}
	var drainOrder []string
	l.Close(func(e *string) {
		drained[*e]++
		drainOrder = append(drainOrder, *e)
	})
	handled := map[string]int{}
	for _, s := range rec.got {
		handled[s]++
	}
	for name := range accepted {
		if n := handled[name] + drained[name]; n != 1 {
			t.Errorf("%s: handled %d times, drained %d times; want exactly once in all", name, handled[name], drained[name])
		}
	}
	for name := range drained {
		if !accepted[name] {
			t.Errorf("drained %q, which was never accepted", name)
		}
	}
	// Drain order: control (pulled, then queued), local, inbound, timers.
	wantPrefix := []string{"ctl1", "ctl2", "ctl3", "local0", "local1", "local2", "in0", "in1", "in2"}
	if len(drainOrder) != len(wantPrefix)+3 || !slices.Equal(drainOrder[:len(wantPrefix)], wantPrefix) {
		t.Errorf("drain order %v, want %v then the three timers", drainOrder, wantPrefix)
	}
	if !l.Closed() {
		t.Error("Closed = false after Close")
	}
	if s := l.Stats(); s.Inbound != 0 || s.Control != 0 || s.Local != 0 || s.Timers != 0 {
		t.Errorf("stats after Close: %+v", s)
	}

	// Everything is refused afterwards.
	if err := l.Post("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Post after Close = %v, want ErrClosed", err)
	}
	if err := l.PostControl("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("PostControl after Close = %v, want ErrClosed", err)
	}
	if err := l.PostLocal("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("PostLocal after Close = %v, want ErrClosed", err)
	}
	if err := l.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	clock.Advance(3 * time.Hour)
	if l.Step() {
		t.Error("Step after Close handled an event")
	}
	l.Close(func(e *string) { t.Errorf("second Close drained %q", *e) })
	if s := l.Stats(); s.Inbound != 0 || s.Control != 0 {
		t.Errorf("stats after rejected posts: %+v", s)
	}
}

func TestLoopCloseNilDrain(t *testing.T) {
	l := New[int](&record[int]{}, Config{})
	mustNil(t, l.Post(1), l.PostControl(2), l.PostLocal(3))
	l.Schedule(time.Now(), 4)
	l.Close(nil) // must not panic
	if l.Step() {
		t.Fatal("Step after Close handled an event")
	}
}

// TestLoopCloseRacingPosts interrupts a busy loop and closes it while
// producers keep posting: every accepted event is handled or drained exactly
// once, and every refusal after Close is ErrClosed.
func TestLoopCloseRacingPosts(t *testing.T) {
	for iter := 0; iter < 10; iter++ {
		const producers = 4
		seen := make(map[msg]int) // handled or drained; loop goroutine, then Close's caller
		var handled atomic.Int64
		l := New[msg](handlerFunc[msg](func(e *msg) {
			seen[*e]++
			handled.Add(1)
		}), Config{Capacity: 64, Batch: 8})
		res := startRun(t, context.Background(), l)
		accepted := make([]int, producers)
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Go(func() {
				for i := 0; ; {
					var err error
					if p == 0 {
						err = l.PostControl(msg{p, i})
					} else {
						err = l.Post(msg{p, i})
					}
					switch {
					case err == nil:
						i++
						accepted[p] = i
						if p == 0 && i%64 == 0 {
							runtime.Gosched() // the control queue is unbounded
						}
					case errors.Is(err, ErrFull):
						runtime.Gosched()
					case errors.Is(err, ErrClosed):
						return
					default:
						t.Errorf("post: %v", err)
						return
					}
				}
			})
		}
		eventually(t, "the loop to handle some events", func() bool { return handled.Load() > 500 })
		l.Interrupt()
		if err := waitFor(t, res, "Run to return"); err != nil {
			t.Fatalf("Run = %v", err)
		}
		l.Close(func(e *msg) { seen[*e]++ })
		waitGroup(t, &wg, "producers to stop")
		for p := 0; p < producers; p++ {
			for i := 0; i < accepted[p]; i++ {
				if n := seen[msg{p, i}]; n != 1 {
					t.Fatalf("iter %d: event %d of producer %d seen %d times, want 1", iter, i, p, n)
				}
			}
			if n := seen[msg{p, accepted[p]}]; n != 0 {
				t.Fatalf("iter %d: refused event %d of producer %d was seen", iter, accepted[p], p)
			}
		}
		total := 0
		for _, n := range accepted {
			total += n
		}
		if len(seen) != total {
			t.Fatalf("iter %d: saw %d distinct events, %d were accepted", iter, len(seen), total)
		}
		if s := l.Stats(); s.Inbound != 0 || s.Control != 0 {
			t.Fatalf("iter %d: stats after Close: %+v", iter, s)
		}
	}
}

func TestLoopPostFullAtCapacity(t *testing.T) {
	const capacity = 5
	rec := &record[int]{}
	l := New[int](rec, Config{Capacity: capacity})
	defer l.Close(nil)
	for i := 0; i < capacity; i++ {
		mustNil(t, l.PostLocal(100+i), l.Post(i))
	}
	if err := l.PostLocal(105); !errors.Is(err, ErrFull) {
		t.Fatalf("PostLocal beyond capacity = %v, want ErrFull", err)
	}
	if err := l.Post(5); !errors.Is(err, ErrFull) {
		t.Fatalf("Post beyond capacity = %v, want ErrFull", err)
	}
	// The control queue is unbounded.
	for i := 0; i < 3*capacity; i++ {
		mustNil(t, l.PostControl(200+i))
	}
	if s := l.Stats(); s.Inbound != capacity || s.Control != 3*capacity {
		t.Fatalf("stats: %+v", s)
	}
	// Handling one local event makes room for exactly one more.
	for range 3 * capacity {
		l.Step() // the control events
	}
	if !l.Step() || rec.got[len(rec.got)-1] != 100 {
		t.Fatalf("expected to handle local 100, got %v", rec.got[len(rec.got)-1])
	}
	mustNil(t, l.PostLocal(105))
	if err := l.PostLocal(106); !errors.Is(err, ErrFull) {
		t.Fatalf("PostLocal = %v, want ErrFull", err)
	}
}

// TestLoopPostLocalFromHandlerDuringRun has the handler feed itself through
// PostLocal on a running loop, including hitting the local queue's bound.
func TestLoopPostLocalFromHandlerDuringRun(t *testing.T) {
	const n = 5000
	const capacity = 16
	done := make(chan struct{})
	var got []int
	var fulls int
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		got = append(got, *e)
		switch {
		case *e == -1: // fan out more than the local queue holds
			for i := 0; i < capacity+4; i++ {
				if err := l.PostLocal(-100 - i); errors.Is(err, ErrFull) {
					fulls++
				} else if err != nil {
					t.Errorf("PostLocal: %v", err)
				}
			}
			close(done)
		case *e >= 0 && *e < n:
			if err := l.PostLocal(*e + 1); err != nil {
				t.Errorf("PostLocal(%d): %v", *e+1, err)
			}
		case *e == n:
			if err := l.Post(-1); err != nil {
				t.Errorf("Post(-1): %v", err)
			}
		}
	}), Config{Capacity: capacity})
	res := startRun(t, context.Background(), l)
	if err := l.Post(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the self-feeding chain to finish")
	eventually(t, "the fanned-out local events to be handled", func() bool {
		return l.Stats().Handled == uint64(n+2+capacity)
	})
	l.Interrupt()
	if err := waitFor(t, res, "Run to return"); err != nil {
		t.Fatal(err)
	}
	l.Close(func(e *int) { t.Errorf("drained %d", *e) })
	for i := 0; i <= n; i++ {
		if got[i] != i {
			t.Fatalf("handled[%d] = %d", i, got[i])
		}
	}
	if fulls != 4 {
		t.Fatalf("PostLocal returned ErrFull %d times, want 4", fulls)
	}
	tail := got[n+2:]
	for i, v := range tail {
		if v != -100-i {
			t.Fatalf("fanned-out events handled as %v", tail)
		}
	}
}

// script is a deterministic sequence of external inputs for a Step-driven loop.
type scriptOp struct {
	kind int // 0 Post, 1 PostControl, 2 Step, 3 Advance, 4 Step until idle
	v    int
	d    time.Duration
}

func makeScript(seed uint64, n int) []scriptOp {
	rng := rand.New(rand.NewPCG(seed, 42))
	ops := make([]scriptOp, n)
	for i := range ops {
		ops[i] = scriptOp{kind: rng.IntN(5), v: rng.IntN(1000), d: time.Duration(rng.IntN(20)) * time.Millisecond}
	}
	return ops
}

// runScript feeds ops to a fresh loop and returns the handled sequence. The
// handler reacts to events by posting locally and scheduling timers, so the
// sequence depends on all four queues.
func runScript(t *testing.T, ops []scriptOp) []int {
	clock := NewFakeClock(epoch)
	var l *Loop[int]
	var got []int
	l = New[int](handlerFunc[int](func(e *int) {
		got = append(got, *e)
		v := *e
		if v >= 1_000_000 {
			return // derived event: no further reaction
		}
		if v%3 == 0 {
			_ = l.PostLocal(1_000_000 + v)
		}
		if v%4 == 0 {
			l.Schedule(l.Now().Add(time.Duration(v%50)*time.Millisecond), 2_000_000+v)
		}
		if v%7 == 0 {
			l.Schedule(l.Now(), 3_000_000+v) // due now: ties with others
		}
	}), Config{Clock: clock, Capacity: 32})
	for _, op := range ops {
		switch op.kind {
		case 0:
			_ = l.Post(op.v) // ErrFull is part of the deterministic outcome
		case 1:
			mustNil(t, l.PostControl(op.v))
		case 2:
			l.Step()
		case 3:
			clock.Advance(op.d)
		case 4:
			for l.Step() {
			}
		}
	}
	// Run to idle. Events handled now may schedule timers relative to the
	// new time; their derived events schedule nothing, so two rounds do.
	for range 2 {
		clock.Advance(time.Hour)
		for l.Step() {
		}
	}
	l.Close(func(e *int) { t.Errorf("drained %d after running to idle", *e) })
	return got
}

func TestLoopDeterministicWithFakeClock(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		ops := makeScript(seed, 3000)
		a := runScript(t, ops)
		b := runScript(t, ops)
		if !slices.Equal(a, b) {
			i := 0
			for i < min(len(a), len(b)) && a[i] == b[i] {
				i++
			}
			t.Fatalf("seed %d: runs diverge at event %d (lengths %d and %d)", seed, i, len(a), len(b))
		}
		// The comparison is meaningful: the run used every queue, and a
		// different script gives a different sequence.
		var local, timer bool
		for _, v := range a {
			local = local || (v >= 1_000_000 && v < 2_000_000)
			timer = timer || v >= 2_000_000
		}
		if len(a) < 1000 || !local || !timer {
			t.Fatalf("seed %d: run too thin: %d events, local %v, timers %v", seed, len(a), local, timer)
		}
		if c := runScript(t, makeScript(seed+100, 3000)); slices.Equal(a, c) {
			t.Fatalf("seed %d: a different script gave the same sequence", seed)
		}
	}
}

func TestLoopStatsInStepMode(t *testing.T) {
	rec := &record[int]{}
	clock := NewFakeClock(epoch)
	l := New[int](rec, Config{Clock: clock})
	defer l.Close(nil)
	if s := l.Stats(); s != (Stats{}) {
		t.Fatalf("fresh stats %+v", s)
	}
	mustNil(t, l.Post(1), l.Post(2), l.PostControl(3), l.PostLocal(4))
	l.Schedule(at(1), 5)
	if s := l.Stats(); s.Inbound != 2 || s.Control != 1 || s.Handled != 0 {
		t.Fatalf("stats before Step: %+v", s)
	}
	l.Step() // control 3
	if s := l.Stats(); s.Handled != 1 || s.Control != 0 || s.Inbound != 2 || s.Local != 1 || s.Timers != 1 {
		t.Fatalf("stats after one Step: %+v", s)
	}
	l.Step() // local 4
	l.Step() // inbound 1
	if s := l.Stats(); s.Handled != 3 || s.Local != 0 || s.Inbound != 1 {
		t.Fatalf("stats after three Steps: %+v", s)
	}
	l.Step() // inbound 2
	if l.Step() {
		t.Fatal("Step handled a timer that is not due")
	}
	clock.Advance(time.Millisecond)
	if !l.Step() {
		t.Fatal("Step did not handle a due timer")
	}
	if l.Step() {
		t.Fatal("Step on an empty loop handled something")
	}
	if s := l.Stats(); s.Handled != 5 || s.Timers != 0 || s.Inbound != 0 || s.Parked {
		t.Fatalf("final stats %+v", s)
	}
	if !equalInts(rec.got, []int{3, 4, 1, 2, 5}) {
		t.Fatalf("handled %v", rec.got)
	}
}

func mustNil(t *testing.T, errs ...error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// cachedNowProbe is a handler that records CachedNow when it handles a
// probe (true); other events do nothing.
type cachedNowProbe struct {
	l    *Loop[bool]
	seen chan time.Time
}

func (h *cachedNowProbe) Handle(e *bool) {
	if *e {
		h.seen <- h.l.CachedNow()
	}
}

// An idle loop with no timer must not hand a handler the clock reading of
// before it went idle, however the next pass comes to run: a deadline taken
// from it (an ask's) would be in the past, failing the ask at once.
func TestCachedNowAfterIdle(t *testing.T) {
	for _, how := range []string{"PostRun", "Post", "PostControlRun"} {
		t.Run(how, func(t *testing.T) {
			clock := NewFakeClock(epoch)
			h := &cachedNowProbe{seen: make(chan time.Time, 1)}
			l := New[bool](h, Config{Clock: clock, Spin: -1})
			h.l = l
			startRun(t, context.Background(), l)
			post := map[string]func(bool) error{"PostRun": l.PostRun, "Post": l.Post, "PostControlRun": l.PostControlRun}[how]
			for i, idle := range []time.Duration{0, time.Hour, 10 * time.Second} {
				waitParked(t, l)
				clock.Advance(idle)
				want := clock.Now()
				if err := post(true); err != nil {
					t.Fatal(err)
				}
				select {
				case got := <-h.seen:
					if got.Before(want) {
						t.Fatalf("probe %d after %v idle: CachedNow %v, %v behind the clock", i, idle, got, want.Sub(got))
					}
				case <-time.After(waitLimit):
					t.Fatal("probe not handled")
				}
			}
		})
	}
}

// A loop kept busy without any timer still refreshes its cached reading.
func TestCachedNowWhileBusyWithoutTimers(t *testing.T) {
	clock := NewFakeClock(epoch)
	var l *Loop[int]
	advanced := make(chan struct{})
	seen := make(chan time.Time, 1)
	const last = 4 * cachedPasses
	l = New[int](handlerFunc[int](func(e *int) {
		switch {
		case *e == 0:
			l.CachedNow() // an early reading, cached
			advanced <- struct{}{}
			<-advanced // the test moved the clock meanwhile
		case *e == last:
			seen <- l.CachedNow()
			return
		}
		_ = l.PostLocal(*e + 1) // stay busy: one event per pass (Batch 1)
	}), Config{Clock: clock, Batch: 1})
	startRun(t, context.Background(), l)
	if err := l.Post(0); err != nil {
		t.Fatal(err)
	}
	<-advanced
	clock.Advance(time.Hour)
	want := clock.Now()
	advanced <- struct{}{}
	select {
	case got := <-seen:
		if got.Before(want) {
			t.Fatalf("after %d busy passes CachedNow is %v behind the clock", last, want.Sub(got))
		}
	case <-time.After(waitLimit):
		t.Fatal("the busy loop did not finish")
	}
}

// A control event posted before an inbound one is handled before it, even
// when both arrive while the loop is in the middle of a pass: the stop of
// an actor must not be overtaken by a message that its stopper's reply
// caused someone to send.
func TestControlBeforeLaterInbound(t *testing.T) {
	var got []string
	var l *Loop[string]
	l = New[string](handlerFunc[string](func(e *string) {
		got = append(got, *e)
		if *e == "first" {
			// Another goroutine would do the same while this handler runs.
			if err := l.PostControl("control"); err != nil {
				t.Error(err)
			}
			if err := l.Post("later"); err != nil {
				t.Error(err)
			}
		}
	}), Config{})
	if err := l.Post("first"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(waitLimit)
	for l.Stats().Handled < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not handle the three events")
		}
		runtime.Gosched()
	}
	cancel()
	<-done
	if want := []string{"first", "control", "later"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
}

// nanoFake is a FakeClock that reads itself as nanoseconds too.
type nanoFake struct {
	*FakeClock
	nanos, nows int
}

func (c *nanoFake) NowNanos() int64 { c.nanos++; return c.FakeClock.Now().UnixNano() }
func (c *nanoFake) Now() time.Time  { c.nows++; return c.FakeClock.Now() }

// A loop reads a NanoClock as nanoseconds for its timers, and fires them
// at the same readings as through Now.
func TestLoopReadsANanoClockAsNanoseconds(t *testing.T) {
	clock := &nanoFake{FakeClock: NewFakeClock(epoch)}
	rec := &record[string]{}
	l := New[string](rec, Config{Clock: clock})
	defer l.Close(nil)
	l.Schedule(epoch.Add(time.Second), "later")
	l.Schedule(epoch, "now")
	for l.Step() {
	}
	clock.Advance(time.Second)
	for l.Step() {
	}
	if want := []string{"now", "later"}; !slices.Equal(rec.got, want) {
		t.Fatalf("fired %v, want %v", rec.got, want)
	}
	if clock.nanos == 0 || clock.nows != 0 {
		t.Fatalf("read as nanoseconds %d times, through Now %d: want only the first", clock.nanos, clock.nows)
	}
}
