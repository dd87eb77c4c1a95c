package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSimLoad: the simulator's own speed. Three nodes; every node's
// client sends numbered messages to and asks the other nodes' servers
// every 25 ms of virtual time (the swarm's workload, without faults), for
// one simulated minute per iteration. It reports loop and network events
// per second of wall time and the ratio of virtual to wall time.
func BenchmarkSimLoad(b *testing.B) {
	var events uint64
	var virtual time.Duration
	start := time.Now()
	for i := 0; i < b.N; i++ {
		w := New(Config{Seed: uint64(i + 1)})
		k := newChecker(w)
		for j := range 3 {
			if _, err := w.AddNode(fmt.Sprintf("n%d", j), k.init); err != nil {
				b.Fatal(err)
			}
		}
		k.spread()
		w.Run(time.Minute)
		events += w.Events()
		virtual += w.Elapsed()
		if len(k.violations) > 0 {
			b.Fatal(k.violations)
		}
		w.Close()
	}
	el := time.Since(start)
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	b.ReportMetric(virtual.Seconds()/el.Seconds(), "virtual/wall")
}
