package actor

import (
	"testing"
	"time"

	"github.com/actord/actord/loop"
)

// The watchdog's decision: a loop that blocks in its very first handler
// (no event handled yet) is reported after the budget with the time since
// it was first seen, once; a loop that handles events or parks is not.
func TestWatchMark(t *testing.T) {
	t0 := time.Unix(1_900_000_000, 0)
	budget := 20 * time.Millisecond
	var m watchMark
	busy := loop.Stats{}
	if d, ok := m.stalled(busy, t0, budget); ok {
		t.Fatalf("reported at first sight: %v", d)
	}
	if d, ok := m.stalled(busy, t0.Add(budget/2), budget); ok {
		t.Fatalf("reported before the budget: %v", d)
	}
	d, ok := m.stalled(busy, t0.Add(budget), budget)
	if !ok || d != budget {
		t.Fatalf("stalled %v %v, want %v", d, ok, budget)
	}
	if _, ok := m.stalled(busy, t0.Add(3*budget), budget); ok {
		t.Fatal("the same stall reported twice")
	}
	if _, ok := m.stalled(loop.Stats{Handled: 1}, t0.Add(4*budget), budget); ok {
		t.Fatal("a loop that handled an event reported")
	}
	if _, ok := m.stalled(loop.Stats{Handled: 1, Parked: true}, t0.Add(9*budget), budget); ok {
		t.Fatal("a parked loop reported")
	}
}
