package quorum

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// The registry prunes deferred asks by the clock of their deadlines (the
// caller's loop clock), not the wall clock: with a clock years behind the
// wall clock (a fake or simulated one), the entries of calls still running
// must stay, and those a second past their deadline must go.
func TestRegistryPrunesOnTheLoopClock(t *testing.T) {
	r := &registry{m: map[actor.Ref]map[uint32][]*deferred{}}
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
