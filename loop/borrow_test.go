package loop

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitParked waits until the loop goroutine has parked (and lent nothing).
func waitParked[E any](t *testing.T, l *Loop[E]) {
	t.Helper()
	eventually(t, "the loop to park", func() bool { return l.owner.Load() == ownParked })
}

// A parked loop handles the event PostRun posts on the calling goroutine,
// before PostRun returns; its own goroutine takes the loop back afterwards.
func TestPostRunHandlesInline(t *testing.T) {
	var handled, inline atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(*int) {
		if l.owner.Load() == ownBorrowed {
			inline.Add(1)
		}
		handled.Add(1)
	}), Config{})
	startRun(t, context.Background(), l)
	for i := int64(1); inline.Load() == 0; i++ {
		if i > 100 {
			t.Fatal("100 posts to a parked loop, none handled by the poster")
		}
		waitParked(t, l)
		if err := l.PostRun(1); err != nil {
			t.Fatal(err)
		}
		if inline.Load() > 0 && handled.Load() != i {
			t.Fatalf("PostRun returned before handling its event: %d of %d handled", handled.Load(), i)
		}
		eventually(t, "the event to be handled", func() bool { return handled.Load() == i })
	}
	// The loop goroutine works after a loan.
	before := handled.Load()
	if err := l.Post(2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the loop goroutine to handle the next event", func() bool { return handled.Load() == before+1 })
	if err := l.PostControlRun(3); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the control event to be handled", func() bool { return handled.Load() == before+2 })
}

// A busy loop is not lent: PostRun only queues.
func TestPostRunBusyLoop(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int64
	l := New[int](handlerFunc[int](func(e *int) {
		if *e == 1 {
			close(inside)
			<-release
		}
		handled.Add(1)
	}), Config{})
	startRun(t, context.Background(), l)
	if err := l.Post(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, inside, "the handler to block")
	if err := l.PostRun(2); err != nil { // would deadlock or overlap if it ran the loop
		t.Fatal(err)
	}
	if handled.Load() != 0 {
		t.Fatal("PostRun ran a pass of a loop busy in a handler")
	}
	close(release)
	eventually(t, "both events to be handled", func() bool { return handled.Load() == 2 })
	// A loop that is not running is not lent either.
	l2 := New[int](handlerFunc[int](func(*int) { t.Error("handled without Run") }), Config{})
	if err := l2.PostRun(1); err != nil {
		t.Fatal(err)
	}
}

// Many producers post and lend concurrently with the loop goroutine: no two
// goroutines are ever inside the handler at once, each producer's events are
// handled in order, every event exactly once, and nothing is left behind.
func TestPostRunStress(t *testing.T) {
	const producers, each = 4, 5000
	var inside atomic.Int32
	var overlap atomic.Int32
	last := make([]int, producers) // touched only inside the handler
	var bad atomic.Int32
	var handled, lent atomic.Int64
	var l *Loop[[2]int]
	l = New[[2]int](handlerFunc[[2]int](func(e *[2]int) {
		if !inside.CompareAndSwap(0, 1) {
			overlap.Add(1)
		}
		if l.owner.Load() == ownBorrowed {
			lent.Add(1)
		}
		p, seq := e[0], e[1]
		if seq != last[p]+1 {
			bad.Add(1)
		}
		last[p] = seq
		handled.Add(1)
		inside.Store(0)
	}), Config{Capacity: 1 << 16})
	startRun(t, context.Background(), l)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				if err := l.PostRun([2]int{p, i}); err != nil {
					t.Errorf("post: %v", err)
					return
				}
				if i%8 == 0 { // now and then let the loop go idle, so posts find it parked
					for k := 0; k < 1000 && l.owner.Load() != ownParked; k++ {
						runtime.Gosched()
					}
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "every event to be handled", func() bool { return handled.Load() == producers*each })
	if overlap.Load() != 0 {
		t.Fatalf("%d events handled while another goroutine was in the handler", overlap.Load())
	}
	if bad.Load() != 0 {
		t.Fatalf("%d events out of order", bad.Load())
	}
	t.Logf("%d of %d events were handled on a lent loop", lent.Load(), producers*each)
	if lent.Load() == 0 {
		t.Fatal("no event was handled on a lent loop: the test did not exercise lending")
	}
}

// A timer scheduled by a pass on a lent loop fires on time even though the
// loop goroutine parked without a timer: the release wakes it to re-arm.
func TestPostRunTimerScheduledOnLoan(t *testing.T) {
	fired := make(chan bool, 1)
	var onLoan atomic.Bool
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		switch *e {
		case 1:
			onLoan.Store(l.owner.Load() == ownBorrowed)
			l.Schedule(time.Now().Add(20*time.Millisecond), 2)
		case 2:
			fired <- true
		}
	}), Config{})
	startRun(t, context.Background(), l)
	var lent atomic.Bool
	for !lent.Load() {
		waitParked(t, l)
		if err := l.PostRun(1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fired, "the timer")
		// Was event 1 handled on a loan? Only then does this test the
		// re-arming; otherwise try again.
		lent.Store(onLoan.Load())
	}
}

// Interrupt while the loop is lent: Run returns only once the borrower's
// handler is done.
func TestPostRunInterruptWhileLent(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	l := New[int](handlerFunc[int](func(e *int) {
		if *e == 1 {
			close(inside)
			<-release
			finished.Store(true)
		}
	}), Config{})
	res := make(chan bool, 1) // whether the handler had finished when Run returned
	go func() {
		_ = l.Run(context.Background())
		res <- finished.Load()
	}()
	waitParked(t, l)
	go func() { _ = l.PostRun(1) }()
	waitFor(t, inside, "a handler to block")
	l.Interrupt()
	close(release)
	if !waitFor(t, res, "Run to return") {
		t.Fatal("Run returned while a handler was running")
	}
}

// PostQuiet queues without waking; Kick then handles the batch, on the
// calling goroutine when the loop is parked, by waking it otherwise.
func TestPostQuietThenKick(t *testing.T) {
	var handled, inline atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(*int) {
		if l.owner.Load() == ownBorrowed {
			inline.Add(1)
		}
		handled.Add(1)
	}), Config{Batch: 4})
	startRun(t, context.Background(), l)
	for round := int64(1); round <= 20; round++ {
		waitParked(t, l)
		for range 10 { // more than a pass handles: the rest wakes the loop
			if err := l.PostQuiet(1); err != nil {
				t.Fatal(err)
			}
		}
		l.Kick()
		eventually(t, "the batch to be handled", func() bool { return handled.Load() == 10*round })
	}
	if inline.Load() == 0 {
		t.Fatal("no event handled by Kick on the calling goroutine")
	}
	// A stopped loop: Kick neither runs nor blocks.
	l2 := New[int](handlerFunc[int](func(*int) { t.Error("handled without Run") }), Config{})
	if err := l2.PostQuiet(1); err != nil {
		t.Fatal(err)
	}
	l2.Kick()
}

// A loop lent to a poster is not reported parked while the poster runs its
// handler: a watchdog must see a handler stuck there.
func TestPostRunLentLoopIsNotParked(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	var lent atomic.Bool
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		if *e == 1 {
			lent.Store(l.owner.Load() == ownBorrowed)
			close(inside)
			<-release
		}
	}), Config{})
	startRun(t, context.Background(), l)
	waitParked(t, l)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.PostRun(1) }()
	waitFor(t, inside, "the handler to block")
	if st := l.Stats(); st.Parked {
		t.Fatalf("a loop busy in a handler (lent: %v) reports Parked", lent.Load())
	}
	close(release)
	waitFor(t, done, "PostRun to return")
}

// After a slow lent pass the loop is not lent for a while: posters are not
// held up by a loop whose handlers are slow.
func TestPostRunStopsLendingAfterSlowPass(t *testing.T) {
	var lentSlow, lentAfter atomic.Int64
	var handled atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		lent := l.owner.Load() == ownBorrowed
		if *e == 1 {
			if lent {
				lentSlow.Add(1)
			}
			busy := time.Now()
			for time.Since(busy) < 2*slowLend { // a slow handler (no sleep: it is the handler's work)
			}
		} else if lent {
			lentAfter.Add(1)
		}
		handled.Add(1)
	}), Config{})
	startRun(t, context.Background(), l)
	for lentSlow.Load() == 0 { // until the slow one ran on a loan
		waitParked(t, l)
		before := handled.Load()
		if err := l.PostRun(1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the slow event", func() bool { return handled.Load() == before+1 })
	}
	for i := range 20 {
		waitParked(t, l)
		before := handled.Load()
		if err := l.PostRun(2); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a later event", func() bool { return handled.Load() == before+1 })
		_ = i
	}
	if n := lentAfter.Load(); n != 0 {
		t.Fatalf("%d of 20 events after a slow lent pass were run on a loan", n)
	}
}

// A loop yielding before it parks (spin) is idle too: PostRun runs the
// pass on the calling goroutine rather than waiting for the spinner to
// look, and the spinner goes on once the loan is over.
func TestPostRunLendsSpinningLoop(t *testing.T) {
	var handled, inline atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(*int) {
		if l.owner.Load() == ownBorrowed {
			inline.Add(1)
		}
		handled.Add(1)
	}), Config{Spin: 1 << 30}) // spins until the test ends (Interrupt)
	startRun(t, context.Background(), l)
	for i := int64(1); inline.Load() == 0; i += 2 {
		if i > 200 {
			t.Fatal("100 posts to a spinning loop, none handled by the poster")
		}
		if err := l.Post(1); err != nil { // the loop handles it, then spins
			t.Fatal(err)
		}
		eventually(t, "the loop to spin", func() bool { return handled.Load() == i && l.owner.Load() == ownSpinning })
		if err := l.PostRun(2); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the event to be handled", func() bool { return handled.Load() == i+1 })
	}
}

// PostFrom from a handler of a loop with nothing else queued runs the idle
// target's pass on the handler's goroutine; from a loop with more queued
// it wakes the target instead.
func TestPostFromLendsWhenQuiet(t *testing.T) {
	var inline sync.Map
	done := make(chan int, 16)
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(e *int) {
		inline.Store(*e, b.owner.Load() == ownBorrowed)
		done <- *e
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		post := func(e int) error { return b.PostFrom(a, e) }
		if *e == 11 { // it would lend b, which would then handle 10 too
			post = b.Post
		}
		if err := post(*e); err != nil {
			t.Error(err)
		}
	}), Config{})
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	waitParked(t, a)
	waitParked(t, b)
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the request from a quiet loop")
	if v, _ := inline.Load(1); v != true {
		t.Fatal("a request from a quiet loop to a parked one was not handled on the poster's goroutine")
	}
	waitParked(t, a)
	waitParked(t, b)
	for _, e := range []int{10, 11} {
		if err := a.PostQuiet(e); err != nil {
			t.Fatal(err)
		}
	}
	a.Notify()
	waitFor(t, done, "a request")
	waitFor(t, done, "a request")
	if v, _ := inline.Load(10); v != false {
		t.Fatal("a request from a loop with more queued was handled on its goroutine")
	}
}

// PostOwn lends the loop for the poster's own event only: not when another
// event is queued before it, and what the event causes on the loop (a
// local post) is left to the loop's goroutine.
func TestPostOwnHandlesOnlyItsEvent(t *testing.T) {
	var inline sync.Map
	done := make(chan int, 16)
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		inline.Store(*e, l.owner.Load() == ownBorrowed)
		if *e == 1 {
			if err := l.PostLocal(2); err != nil {
				t.Error(err)
			}
		}
		done <- *e
	}), Config{})
	startRun(t, context.Background(), l)
	waitParked(t, l)
	if err := l.PostOwn(1); err != nil {
		t.Fatal(err)
	}
	if v, _ := inline.Load(1); v != true {
		t.Fatal("PostOwn to a parked loop did not handle its event on the caller's goroutine")
	}
	waitFor(t, done, "the posted event")
	waitFor(t, done, "the event it posted locally")
	if v, _ := inline.Load(2); v != false {
		t.Fatal("the lent handler's local post was handled on the caller's goroutine too")
	}
	waitParked(t, l)
	if err := l.PostQuiet(3); err != nil { // queued before, not woken
		t.Fatal(err)
	}
	if err := l.PostOwn(4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the first event")
	waitFor(t, done, "the second event")
	if v, _ := inline.Load(4); v != false {
		t.Fatal("PostOwn handled its event on the caller's goroutine with another queued before it")
	}
}

// PostFrom lends only once the posting handler has returned: a handler
// that posts while holding a lock the request's handler takes does not
// deadlock on its own goroutine.
func TestPostFromLendsAfterTheHandlerReturns(t *testing.T) {
	var mu sync.Mutex
	shared := 0 // what mu guards
	done := make(chan bool, 1)
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(*int) {
		mu.Lock()
		shared++
		mu.Unlock()
		done <- b.owner.Load() == ownBorrowed
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		mu.Lock()
		defer mu.Unlock()
		shared++
		if err := b.PostFrom(a, *e); err != nil {
			t.Error(err)
		}
	}), Config{})
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	waitParked(t, a)
	waitParked(t, b)
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, done, "the request") {
		t.Fatal("the request was not handled on the poster's goroutine")
	}
}

// A slow event lent by PostFrom stops guarded loans of its loop too.
func TestPostFromStopsLendingAfterSlowEvent(t *testing.T) {
	lent := make(chan bool, 1)
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(*int) {
		busy := time.Now()
		for time.Since(busy) < 2*slowLend { // a slow handler (no sleep: it is the handler's work)
		}
		lent <- b.owner.Load() == ownBorrowed
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		if err := b.PostFrom(a, *e); err != nil {
			t.Error(err)
		}
	}), Config{})
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	for onLoan := false; !onLoan; { // until the slow one ran on a loan
		waitParked(t, a)
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		onLoan = waitFor(t, lent, "the slow event")
	}
	waitParked(t, a) // the loan is over: a's goroutine parks after it
	if n := b.noLend.Load(); n != noLendAfterSlow {
		t.Fatalf("after a slow event lent by PostFrom, %d loans are refused, want %d", n, noLendAfterSlow)
	}
}

// PostOwn lends even within the attempts a slow lent event stopped
// PostRun for: its caller runs only the event it waits for anyway.
func TestPostOwnLendsAfterSlowEvent(t *testing.T) {
	var inline atomic.Bool
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(*int) { inline.Store(l.owner.Load() == ownBorrowed) }), Config{})
	startRun(t, context.Background(), l)
	waitParked(t, l)
	l.noLend.Store(noLendAfterSlow) // as after a slow lent event
	if err := l.PostOwn(1); err != nil {
		t.Fatal(err)
	}
	if !inline.Load() {
		t.Fatal("PostOwn did not lend after a slow lent event")
	}
	if n := l.noLend.Load(); n != noLendAfterSlow {
		t.Fatalf("PostOwn used up an attempt of the others: %d left", n)
	}
}
