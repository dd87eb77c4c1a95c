package sim

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSimLoad: the simulator's own speed. Three nodes; every node's
// client sends numbered messages to and asks the other nodes' servers
// every 25 ms of virtual time (the swarm's workload, without faults), for
// one simulated minute per iteration. It reports loop and network events
// per second of wall time and the ratio of virtual to wall time, and the
// process's CPU time (user and system, the garbage collector's included)
// per iteration and per event: on a shared machine the CPU time varies
// less than the wall time, which other processes' load stretches. Only
// the simulated minute is timed: making the world and its nodes before it
// and closing them after (a shutdown that runs its own simulated minute
// of stopping nodes) are not.
func BenchmarkSimLoad(b *testing.B) {
	var events uint64
	var virtual, el, cpu time.Duration
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		w := New(Config{Seed: uint64(i + 1)})
		k := newChecker(w)
		for j := range 3 {
			if _, err := w.AddNode(fmt.Sprintf("n%d", j), k.init); err != nil {
				b.Fatal(err)
			}
		}
		k.spread()
		start, cpu0 := time.Now(), processCPU()
		b.StartTimer()
		w.Run(time.Minute)
		b.StopTimer()
		el, cpu = el+time.Since(start), cpu+processCPU()-cpu0
		events += w.Events()
		virtual += w.Elapsed()
		if len(k.violations) > 0 {
			b.Fatal(k.violations)
		}
		w.Close()
	}
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	b.ReportMetric(virtual.Seconds()/el.Seconds(), "virtual/wall")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(cpu)/float64(events), "cpu-ns/event")
}

// processCPU is the CPU time the process used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
