package loop

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// runEnd is how a Run on a goroutine of a test ended.
type runEnd struct {
	returned bool // Run returned
	panicked any  // Run panicked with this
	exited   bool // the goroutine ended otherwise (runtime.Goexit)
}

// runCatching runs l on a new goroutine and reports how Run ended: a
// return, a panic (recovered here, so the test binary survives it) or a
// runtime.Goexit.
func runCatching[E any](l *Loop[E]) <-chan runEnd {
	return postCatching(func() error { return l.Run(context.Background()) })
}

// postCatching calls post on a new goroutine and reports whether it
// returned, panicked (with what) or exited.
func postCatching(post func() error) <-chan runEnd {
	res := make(chan runEnd, 1)
	go func() {
		var end runEnd
		defer func() {
			if v := recover(); v != nil {
				end.panicked = v
			} else if !end.returned {
				end.exited = true
			}
			res <- end
		}()
		_ = post()
		end.returned = true
	}()
	return res
}

type lentBoom struct{}

// A lent handler that panics: the panic is raised by Run on the loop's
// goroutine, as if the handler had run there, and not in the asker, whose
// PostOwn (or PostRun) returns; the loan is undone (the loop can run
// again).
func TestPostOwnLentPanicRaisedByRun(t *testing.T) {
	t.Run("PostOwn", func(t *testing.T) { testLentPanic(t, (*Loop[int]).PostOwn) })
	t.Run("PostRun", func(t *testing.T) { testLentPanic(t, (*Loop[int]).PostRun) })
}

func testLentPanic(t *testing.T, post func(*Loop[int], int) error) {
	var lent atomic.Bool
	handled := make(chan int, 4)
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		if *e == 1 && l.owner.Load() == ownBorrowed {
			lent.Store(true)
			panic(lentBoom{})
		}
		handled <- *e
	}), Config{})
	for !lent.Load() {
		run := runCatching(l)
		waitParked(t, l)
		asker := waitFor(t, postCatching(func() error { return post(l, 1) }), "the post")
		if asker.panicked != nil || !asker.returned {
			t.Fatalf("the asker's PostOwn did not return: %+v", asker)
		}
		if !lent.Load() { // handled by the loop goroutine: try again
			waitFor(t, handled, "the event")
			l.Interrupt()
			waitFor(t, run, "Run")
			continue
		}
		end := waitFor(t, run, "Run to raise the lent handler's panic")
		if _, ok := end.panicked.(lentBoom); !ok {
			t.Fatalf("Run ended with %+v, want a panic with the handler's value", end)
		}
	}
	if o := l.owner.Load(); o == ownBorrowed || o == ownFaulted {
		t.Fatalf("the loop is still lent after the fault (owner %d)", o)
	}
	// The loop runs again (the faulted event is handled again, on the
	// loop's goroutine, as after a panic there).
	run := runCatching(l)
	if err := l.Post(2); err != nil {
		t.Fatal(err)
	}
	for waitFor(t, handled, "an event after the fault") != 2 {
	}
	l.Interrupt()
	if end := waitFor(t, run, "Run"); !end.returned {
		t.Fatalf("Run ended with %+v", end)
	}
}

// A lent handler that calls runtime.Goexit ends the borrower's goroutine
// (nothing can stop that), and the loop's goroutine exits too, as if the
// handler had run there, instead of waiting forever for the loan to end.
func TestPostOwnLentGoexitEndsRun(t *testing.T) {
	var lent atomic.Bool
	handled := make(chan int, 4)
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		if l.owner.Load() == ownBorrowed {
			lent.Store(true)
			runtime.Goexit()
		}
		handled <- *e
	}), Config{})
	for !lent.Load() {
		run := runCatching(l)
		waitParked(t, l)
		asker := waitFor(t, postCatching(func() error { return l.PostOwn(1) }), "PostOwn")
		if !lent.Load() {
			waitFor(t, handled, "the event")
			l.Interrupt()
			waitFor(t, run, "Run")
			continue
		}
		if !asker.exited {
			t.Fatalf("the asker's goroutine went on after its lent handler's Goexit: %+v", asker)
		}
		if end := waitFor(t, run, "the loop goroutine to exit"); !end.exited {
			t.Fatalf("Run ended with %+v, want runtime.Goexit", end)
		}
	}
	if o := l.owner.Load(); o == ownBorrowed || o == ownFaulted {
		t.Fatalf("the loop is still lent after the fault (owner %d)", o)
	}
}

// A handler lent by PostFrom that panics: the target loop's goroutine
// raises it; the asking loop, whose goroutine ran the handler, goes on.
func TestPostFromLentPanicStaysOffTheAsker(t *testing.T) {
	var lent atomic.Bool
	handledA := make(chan int, 4)
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(e *int) {
		if b.owner.Load() == ownBorrowed {
			lent.Store(true)
			panic(lentBoom{})
		}
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		if *e == 1 {
			if err := b.PostFrom(a, 1); err != nil {
				t.Error(err)
			}
		}
		handledA <- *e
	}), Config{})
	runA := runCatching(a)
	t.Cleanup(func() {
		a.Interrupt()
		if end := waitFor(t, runA, "the asking loop"); !end.returned {
			t.Errorf("the asking loop's Run ended with %+v", end)
		}
	})
	for !lent.Load() {
		runB := runCatching(b)
		waitParked(t, a)
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, handledA, "the asking handler")
		if !lent.Load() {
			b.Interrupt()
			waitFor(t, runB, "Run of the target")
			continue
		}
		if end := waitFor(t, runB, "the target loop to raise the panic"); !func() bool { _, ok := end.panicked.(lentBoom); return ok }() {
			t.Fatalf("the target's Run ended with %+v", end)
		}
	}
	if err := a.Post(2); err != nil {
		t.Fatal(err)
	}
	if v := waitFor(t, handledA, "the asking loop after the fault"); v != 2 {
		t.Fatalf("asking loop handled %d", v)
	}
}

// Loans do not nest: a handler running on a borrowed goroutine (lent by
// PostFrom, or by PostRun) that asks another loop with PostFrom does not
// lend it: that loop's own goroutine handles the request.
func TestPostFromDoesNotNest(t *testing.T) {
	var a, b, c *Loop[int]
	aLent := make(chan bool, 1)
	bLent := make(chan bool, 1)
	cLent := make(chan bool, 1)
	c = New[int](handlerFunc[int](func(*int) { cLent <- c.owner.Load() == ownBorrowed }), Config{})
	b = New[int](handlerFunc[int](func(e *int) {
		bLent <- b.owner.Load() == ownBorrowed
		if err := c.PostFrom(b, *e); err != nil {
			t.Error(err)
		}
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		aLent <- a.owner.Load() == ownBorrowed
		if err := b.PostFrom(a, *e); err != nil {
			t.Error(err)
		}
	}), Config{})
	for _, l := range []*Loop[int]{a, b, c} {
		startRun(t, context.Background(), l)
	}
	// One exchange from a parked state; it reports whether a, b and c ran
	// on borrowed goroutines.
	exchange := func(post func(int) error) (bool, bool, bool) {
		t.Helper()
		waitParked(t, a)
		waitParked(t, b)
		waitParked(t, c)
		if err := post(1); err != nil {
			t.Fatal(err)
		}
		return waitFor(t, aLent, "a's handler"), waitFor(t, bLent, "b's handler"), waitFor(t, cLent, "c's handler")
	}
	// a's goroutine lends b; b's handler, on a's goroutine, asks c.
	for round := 0; ; round++ {
		if round == 100 {
			t.Fatal("100 rounds, a never lent b")
		}
		_, lb, lc := exchange(a.Post)
		if lc && lb {
			t.Fatal("c's handler ran on the goroutine b was lent to")
		}
		if lb {
			break
		}
	}
	// The caller runs a's pass (PostRun); a's handler asks b.
	for round := 0; ; round++ {
		if round == 100 {
			t.Fatal("100 rounds, a never lent to PostRun's caller")
		}
		la, lb, _ := exchange(a.PostRun)
		if la && lb {
			t.Fatal("b's handler ran on the goroutine a was lent to")
		}
		if la {
			break
		}
	}
}

// When PostFrom does not lend, it wakes the target at once: here the
// asking loop has more queued, so it will not lend, and its handler waits
// for the target to handle the request before it returns.
func TestPostFromWakesAtOnceWhenItWillNotLend(t *testing.T) {
	bHandled := make(chan struct{}, 1)
	result := make(chan bool, 1) // whether b handled the request while a's handler waited
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(*int) { bHandled <- struct{}{} }), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		if *e != 1 {
			return
		}
		if err := a.PostQuiet(2); err != nil { // a has more to do: no loan
			t.Error(err)
		}
		if err := b.PostFrom(a, 1); err != nil {
			t.Error(err)
		}
		select {
		case <-bHandled:
			result <- true
		case <-time.After(waitLimit / 2):
			result <- false
		}
	}), Config{})
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	waitParked(t, a)
	waitParked(t, b)
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, result, "the asking handler") {
		t.Fatal("the target was not woken while the asking handler ran on")
	}
}

// A handler that PostFrom deferred a loan for, and that then panics (out
// of Run), still gets its request to the target: Run wakes it on the way
// out.
func TestPostFromWakesWhenTheAskingHandlerPanics(t *testing.T) {
	bHandled := make(chan struct{}, 1)
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(*int) { bHandled <- struct{}{} }), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		if err := b.PostFrom(a, 1); err != nil {
			t.Error(err)
		}
		panic(lentBoom{})
	}), Config{})
	runA := runCatching(a)
	startRun(t, context.Background(), b)
	waitParked(t, a)
	waitParked(t, b)
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	if end := waitFor(t, runA, "the asking loop to panic"); end.panicked == nil {
		t.Fatalf("the asking loop's Run ended with %+v", end)
	}
	waitFor(t, bHandled, "the target to handle the request")
}

// A loan taken while the loop spins, whose handler faults only after the
// spinner has run out of spins and waits in takeBack for the loan to end:
// Run raises the fault at once. (takeBack consumes the fault's wake, so a
// Run that parked whenever spin came back empty-handed slept with the
// fault pending, and the next PostRun borrowed the faulted loop.)
func TestFaultDuringSpinTakeBack(t *testing.T) {
	lentSpinning := make(chan struct{}, 1)
	release := make(chan struct{})
	handled := make(chan int, 64)
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		// Lent while its goroutine spins: parked sets sleeping first.
		if *e == 1 && l.owner.Load() == ownBorrowed && l.sleeping.Load() == 0 {
			lentSpinning <- struct{}{}
			<-release
			panic(lentBoom{})
		}
		handled <- *e
	}), Config{Spin: 2000})
	run := runCatching(l)
	for attempt := 0; ; attempt++ {
		if attempt == 5000 {
			t.Skip("never lent while spinning")
		}
		if err := l.Post(0); err != nil {
			t.Fatal(err)
		}
		for waitFor(t, handled, "event 0") != 0 {
		}
		eventually(t, "the loop to go idle", func() bool {
			o := l.owner.Load()
			return o == ownSpinning || o == ownParked
		})
		post := postCatching(func() error { return l.PostControlRun(1) })
		select {
		case <-handled: // handled by the loop goroutine, or lent while parked
			waitFor(t, post, "PostControlRun")
			continue
		case <-lentSpinning:
		case <-time.After(waitLimit):
			t.Fatal("event 1 was neither handled nor lent")
		}
		// The spinner ran out of spins and waits for the loan to end.
		eventually(t, "the spinner to wait in takeBack", l.reclaim.Load)
		close(release)
		if end := waitFor(t, post, "PostControlRun"); !end.returned {
			t.Fatalf("the borrower did not return: %+v", end)
		}
		break
	}
	if end := waitFor(t, run, "Run to raise the lent handler's panic"); end.panicked == nil {
		t.Fatalf("Run ended with %+v, want the handler's panic", end)
	}
}

// A handler lent by PostFrom that calls runtime.Goexit ends the asking
// loop's goroutine too (nothing can stop that): its Run panics with
// errLentGoexit rather than ending silently, and the target's Run exits
// as if the handler had run there.
func TestPostFromLentGoexitPanicsTheAskingLoop(t *testing.T) {
	handledA := make(chan int, 8)
	lentB := make(chan bool, 8) // per request to b: whether a's goroutine ran it
	var a, b *Loop[int]
	b = New[int](handlerFunc[int](func(*int) {
		lent := b.owner.Load() == ownBorrowed
		lentB <- lent
		if lent {
			runtime.Goexit()
		}
	}), Config{})
	a = New[int](handlerFunc[int](func(e *int) {
		if err := b.PostFrom(a, 1); err != nil {
			t.Error(err)
		}
		handledA <- *e
	}), Config{})
	runA := runCatching(a)
	for attempt := 0; ; attempt++ {
		if attempt == 1000 {
			t.Skip("never lent")
		}
		runB := runCatching(b)
		waitParked(t, a)
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, handledA, "the asking handler")
		// The loan runs after the asking handler: wait for the request
		// itself, or a loan still under way is taken for none.
		if waitFor(t, lentB, "the request") {
			if end := waitFor(t, runB, "the target's Run to exit"); !end.exited {
				t.Fatalf("the target's Run ended with %+v, want runtime.Goexit", end)
			}
			break
		}
		b.Interrupt()
		waitFor(t, runB, "the target's Run")
	}
	if end := waitFor(t, runA, "the asking loop's Run to panic"); end.panicked != errLentGoexit {
		t.Fatalf("the asking loop's Run ended with %+v, want a panic with errLentGoexit", end)
	}
}
