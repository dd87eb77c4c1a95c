package loop

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// recoverer is a Recoverer whose Handle panics, as its own, on the events
// in boom, and on the events in foreign with a panic it does not claim.
// It records every event it is handed, the pass it came in, and every
// event it is asked to finish. Loop goroutine only, but for done.
type recoverer struct {
	l         *Loop[int]
	boom      map[int]bool
	foreign   map[int]bool
	local     map[int][]int // events to post locally when handling the key
	mine      bool          // Handle is in the code whose panics are its own
	got       []int
	passes    []uint64
	recovered []int
	last      int           // done is closed after this event
	done      chan struct{} // closed once last was handled (or recovered)
}

func (r *recoverer) Handle(e *int) {
	r.got = append(r.got, *e)
	r.passes = append(r.passes, r.l.passes)
	for _, ev := range r.local[*e] {
		if err := r.l.PostLocal(ev); err != nil {
			panic(err)
		}
	}
	if r.foreign[*e] {
		panic(fmt.Sprintf("foreign %d", *e))
	}
	r.mine = true
	if r.boom[*e] {
		panic(fmt.Sprintf("boom %d", *e))
	}
	r.mine = false
	if *e == r.last {
		close(r.done)
	}
}

func (r *recoverer) Recovering() bool { return r.mine }

func (r *recoverer) Recovered(e *int, v any) {
	r.mine = false
	if want := fmt.Sprintf("boom %d", *e); v != want {
		panic(fmt.Sprintf("Recovered(%d, %v), want the value %q", *e, v, want))
	}
	r.recovered = append(r.recovered, *e)
	if *e == r.last {
		close(r.done)
	}
}

func newRecoverer(boom ...int) (*recoverer, *Loop[int]) {
	r := &recoverer{boom: map[int]bool{}, foreign: map[int]bool{}, local: map[int][]int{},
		last: -1, done: make(chan struct{})}
	for _, b := range boom {
		r.boom[b] = true
	}
	r.l = New[int](r, Config{Capacity: 64, Batch: 64, Spin: -1})
	return r, r.l
}

// A handler's panic in the middle of a run of events is recovered once, by
// the loop, and finished by Recovered once; the events after it are
// handled in order, in the same pass, and the loop keeps running. Control
// and local events go the same way.
func TestRecovererPanicInTheMiddleOfARun(t *testing.T) {
	r, l := newRecoverer(3, 7, 100, 201)
	r.local[0] = []int{100, 101} // local events of the next pass, the first panics
	for i := range 10 {
		mustNil(t, l.Post(i))
	}
	mustNil(t, l.PostControl(200), l.PostControl(201), l.PostControl(202))
	r.last = 101
	startRun(t, context.Background(), l)
	waitFor(t, r.done, "the events after the panics")

	want := []int{200, 201, 202, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101}
	if !slices.Equal(r.got, want) {
		t.Fatalf("handled %v, want %v", r.got, want)
	}
	if w := []int{201, 3, 7, 100}; !slices.Equal(r.recovered, w) {
		t.Fatalf("recovered %v, want %v", r.recovered, w)
	}
	for i, p := range r.passes[:13] { // control and inbound: the first pass
		if p != r.passes[0] {
			t.Fatalf("event %d came in pass %d, the run began in pass %d: the pass did not resume", r.got[i], p, r.passes[0])
		}
	}
	if r.passes[13] != r.passes[14] || r.passes[13] == r.passes[0] {
		t.Fatalf("local events came in passes %d and %d (first pass %d)", r.passes[13], r.passes[14], r.passes[0])
	}

	// The loop goes on: a later event is handled.
	r.done, r.last = make(chan struct{}), 11
	mustNil(t, l.Post(11))
	waitFor(t, r.done, "an event after the run")
}

// A panic the handler does not claim (Recovering false) unwinds out of
// Run, as with a plain Handler, and Recovered is not called.
func TestRecovererForeignPanicLeavesRun(t *testing.T) {
	r, l := newRecoverer()
	r.foreign[2] = true
	for i := range 4 {
		mustNil(t, l.Post(i))
	}
	res := make(chan any, 1)
	go func() {
		defer func() { res <- recover() }()
		_ = l.Run(context.Background())
	}()
	select {
	case v := <-res:
		if v != "foreign 2" {
			t.Fatalf("Run ended with %v, want the panic \"foreign 2\"", v)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not panic")
	}
	if len(r.recovered) != 0 || !slices.Equal(r.got, []int{0, 1, 2}) {
		t.Fatalf("handled %v, recovered %v", r.got, r.recovered)
	}
}

// Step and a loan (PostOwn) recover the handler's panic of their one event
// the same way: the event is finished once and the next one is handled.
func TestRecovererStepAndLoan(t *testing.T) {
	r, l := newRecoverer(1, 5)
	for i := range 3 {
		mustNil(t, l.Post(i))
	}
	for range 3 {
		if !l.Step() {
			t.Fatal("Step handled nothing")
		}
	}
	if !slices.Equal(r.got, []int{0, 1, 2}) || !slices.Equal(r.recovered, []int{1}) {
		t.Fatalf("Step: handled %v, recovered %v", r.got, r.recovered)
	}

	r.last = 6
	startRun(t, context.Background(), l)
	waitParked(t, l)         // so that PostOwn lends it
	mustNil(t, l.PostOwn(5)) // handled (and recovered) here
	mustNil(t, l.Post(6))
	waitFor(t, r.done, "the event after the lent one")
	if !slices.Equal(r.got, []int{0, 1, 2, 5, 6}) || !slices.Equal(r.recovered, []int{1, 5}) {
		t.Fatalf("handled %v, recovered %v", r.got, r.recovered)
	}
}
