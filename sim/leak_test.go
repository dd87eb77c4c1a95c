package sim

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A closed world is collected, its nodes' systems with it: a long swarm
// run keeps the memory of one seed, not of all (a remote ref's cleanup
// held its system once, and every world stayed: 3 MB a seed).
func TestWorldsAreCollected(t *testing.T) {
	seeds := int64(4)
	if raceEnabled {
		seeds = 2
	}
	var freed atomic.Int64
	for i := range seeds {
		_, w := swarm(uint64(i+1), 0, true)
		runtime.AddCleanup(w, func(n *atomic.Int64) { n.Add(1) }, &freed)
		w.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for freed.Load() < seeds {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d closed worlds collected", freed.Load(), seeds)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}
