package loop

import (
	"context"
	"testing"
)

// askingRecoverer is a Recoverer whose Handle asks b with PostFrom, as a
// request whose answer its loop awaits, and then panics as its own.
type askingRecoverer struct {
	a, b      *Loop[int]
	mine      bool
	recovered chan int
}

func (r *askingRecoverer) Handle(e *int) {
	if err := r.b.PostFrom(r.a, *e); err != nil {
		panic(err)
	}
	r.mine = true
	panic("boom")
}

func (r *askingRecoverer) Recovering() bool { return r.mine }

func (r *askingRecoverer) Recovered(e *int, _ any) {
	r.mine = false
	r.recovered <- *e
}

// newAskingLoops returns a loop whose handler asks the other with PostFrom
// and panics (recovered by the loop), and the other, which reports the
// requests it handles on handled, already running and parked.
func newAskingLoops(t *testing.T) (a *Loop[int], r *askingRecoverer, handled chan int) {
	handled = make(chan int, 4)
	b := New[int](handlerFunc[int](func(e *int) { handled <- *e }), Config{})
	r = &askingRecoverer{b: b, recovered: make(chan int, 4)}
	a = New[int](r, Config{})
	r.a = a
	startRun(t, context.Background(), b)
	waitParked(t, b)
	return a, r, handled
}

// A handler that PostFrom deferred a loan for and that then panicked, its
// panic recovered by the loop (Recoverer), still gets its request to the
// target: the loop finishes the event as if the handler had returned,
// loan included (lent, or the target woken), rather than leave the target
// parked with the request until a's next event.
func TestRecovererPanicAfterPostFromReachesTheTarget(t *testing.T) {
	a, r, handled := newAskingLoops(t)
	startRun(t, context.Background(), a)
	waitParked(t, a)
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.recovered, "the asking handler's panic to be recovered")
	if got := waitFor(t, handled, "the target to handle the request"); got != 1 {
		t.Fatalf("the target handled %d, want 1", got)
	}
}

// The same when the loop is stepped: Step recovers the panic for its one
// event and finishes it, loan included. (PostFrom defers a loan only after
// the loop has run a pass, so a's Run runs one first.)
func TestRecovererStepPanicAfterPostFromReachesTheTarget(t *testing.T) {
	a, r, handled := newAskingLoops(t)
	run := runCatching(a)
	waitParked(t, a)
	a.Interrupt()
	if end := waitFor(t, run, "a's Run to return"); !end.returned {
		t.Fatalf("a's Run ended with %+v", end)
	}
	if err := a.Post(1); err != nil {
		t.Fatal(err)
	}
	if !a.Step() {
		t.Fatal("Step handled nothing")
	}
	waitFor(t, r.recovered, "the asking handler's panic to be recovered")
	if a.lendTo != nil {
		t.Fatal("Step returned with the loan PostFrom deferred still pending: the target is not woken")
	}
	if got := waitFor(t, handled, "the target to handle the request"); got != 1 {
		t.Fatalf("the target handled %d, want 1", got)
	}
}
