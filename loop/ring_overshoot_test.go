package loop

import (
	"runtime"
	"testing"
	"time"
)

// push's producer that overshoots past the spare cells waits for its cell
// as put's does (TestRingOvershooterWaitsForItsCell): more producers than
// capacity passed the capacity check on a tail read before the others
// claimed, so the one whose position is the next lap of an unconsumed cell
// must not write it until the consumer has published a head past it. The
// test stands in for the stale tail by raising capacity for that one push:
// the check then passes on the current tail, and the position it claims
// is the one a stale check would have let it claim.
func TestRingPushOvershooterWaitsForItsCell(t *testing.T) {
	r := newRing[int](1)               // two cells
	if err := r.push(10); err != nil { // position 0, in cell 0
		t.Fatal(err)
	}
	p1 := r.tail.Add(1) - 1 // an overshooter that claimed position 1
	*r.put(p1) = 11
	r.publishAt(p1)
	r.capacity = 3 // the check of a producer that read tail 0 (restored below)
	type pushed struct {
		pos uint64
		err error
	}
	done := make(chan pushed, 1)
	go func() {
		v := 12
		pos, err := r.pushAt(&v) // position 2: cell 0's next lap
		done <- pushed{pos, err}
	}()
	// The overshooter cannot have written before the pop below; give it
	// every chance to (were it not to wait, it would run through at once).
	for range 1000 {
		select {
		case p := <-done:
			t.Fatalf("push returned (position %d, %v) before the consumer freed cell 0: it overwrote item 10", p.pos, p.err)
		default:
			runtime.Gosched()
		}
	}
	var v int
	if !r.pop(&v) || v != 10 { // publishes head 1: cell 0 is free
		t.Fatalf("pop = %d, want 10", v)
	}
	var p pushed
	select {
	case p = <-done:
	case <-time.After(waitLimit):
		t.Fatal("the overshooter did not write once its cell was free")
	}
	r.capacity = 1
	if p.err != nil || p.pos != 2 {
		t.Fatalf("push = (%d, %v), want (2, nil)", p.pos, p.err)
	}
	for _, want := range []int{11, 12} {
		if !r.pop(&v) || v != want {
			t.Fatalf("pop = %d, want %d", v, want)
		}
	}
	if r.pop(&v) {
		t.Fatalf("extra item %d", v)
	}
}
