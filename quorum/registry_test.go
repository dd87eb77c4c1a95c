package quorum

import (
	"testing"
	"time"
)

// The registry prunes deferred asks by the clock of their deadlines (the
// caller's loop clock), not the wall clock: with a clock years behind the
// wall clock (a fake or simulated one), the entries of calls still running
// must stay, and those a second past their deadline must go.
func TestRegistryPrunesOnTheLoopClock(t *testing.T) {
	r := &registry{m: map[queueKey][]*deferred{}}
	now := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range pruneEvery - 1 {
		r.add(&deferred{node: uint32(i % 3), deadline: now.Add(time.Minute)}, now)
	}
	r.add(&deferred{node: 0, deadline: now.Add(time.Minute)}, now) // a prune pass
	if got := r.queued(); got != pruneEvery {
		t.Fatalf("%d entries queued after a prune at %v, want %d: entries of running calls were pruned", got, now, pruneEvery)
	}
	later := now.Add(time.Hour)
	for range pruneEvery {
		r.add(&deferred{node: 1, deadline: later.Add(time.Minute)}, later)
	}
	if got := r.queued(); got != pruneEvery {
		t.Fatalf("%d entries queued an hour later, want %d: the expired ones must go", got, pruneEvery)
	}
}

// An emptied queue keeps its room for the caller's next calls, but no
// pointer to a deferred ask taken or dropped (it would keep its call
// alive), and a prune forgets it.
func TestRegistryQueueRoomHoldsNothing(t *testing.T) {
	r := &registry{m: map[queueKey][]*deferred{}}
	now := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	d1 := &deferred{node: 0, deadline: now.Add(time.Minute)}
	d2 := &deferred{node: 0, deadline: now.Add(time.Minute)}
	r.add(d1, now)
	r.add(d2, now)
	if got := r.take(d1.caller, 0, d1, nil); len(got) != 1 || got[0] != d1 {
		t.Fatalf("take up to d1 = %v, want d1", got)
	}
	r.drop(d2)
	if n := r.queued(); n != 0 {
		t.Fatalf("%d queued, want 0", n)
	}
	q, ok := r.m[queueKey{d1.caller, 0}]
	if !ok || len(q) != 0 {
		t.Fatalf("the emptied queue is %v (present %v), want empty with its room", q, ok)
	}
	for i, d := range q[:cap(q)] {
		if d != nil {
			t.Fatalf("the queue's room holds a deferred ask at %d", i)
		}
	}
	r.prune(now)
	if len(r.m) != 0 {
		t.Fatalf("%d queues after a prune, want none", len(r.m))
	}
}
