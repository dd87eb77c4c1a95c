// Package tsc reads a cheap tick counter for timing short stretches of
// work on hot paths. A time.Now or time.Since costs 30–60 ns on a virtual
// machine (kvm-clock), a large part of a cross-loop or remote round trip;
// where the CPU has an invariant time-stamp counter (amd64, checked with
// CPUID) the counter is read instead (~10–20 ns) and converted to
// nanoseconds with a ratio measured once against the monotonic clock.
// Elsewhere the ticks are the monotonic clock's nanoseconds.
//
// Ticks are for intervals only (compare two readings of one process);
// they never stand for a time of day, and a simulated clock does not
// drive them.
package tsc

import (
	"sync"
	"time"
)

var (
	once      sync.Once
	ok        bool        // ticks come from the TSC
	nsPerTick float64 = 1 // nanoseconds per tick, as calibrated
	monoBase          = time.Now()
)

// Calibrate measures the counter against the monotonic clock, once per
// process (a 200 µs spin at the first call; later calls return at once).
// Call it before the first Read whose result is compared or converted,
// from a goroutine that happens before the readers (a constructor): Read
// and Since only read what it wrote.
func Calibrate() { once.Do(calibrate) }

func calibrate() {
	if !haveInvariantTSC() {
		return
	}
	m0 := time.Now()
	t0 := rdtsc()
	for time.Since(m0) < 200*time.Microsecond {
	}
	t1 := rdtsc()
	d := time.Since(m0)
	if t1 <= t0 {
		return
	}
	r := float64(d) / float64(t1-t0)
	if r < 1e-3 || r > 1e3 { // not a plausible counter
		return
	}
	ok, nsPerTick = true, r
}

// Read returns the current tick count: the TSC once Calibrate found it
// usable, else the monotonic clock's nanoseconds since the process began.
func Read() int64 {
	if ok {
		return rdtsc()
	}
	return int64(time.Since(monoBase))
}

// Since returns the time elapsed since start, a Read; never negative (a
// goroutine that moved between CPUs may see a counter slightly behind).
func Since(start int64) time.Duration {
	d := Read() - start
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) * nsPerTick)
}

// Ticks returns d in ticks.
func Ticks(d time.Duration) int64 { return int64(float64(d) / nsPerTick) }

// NsPerTick returns the calibrated ratio of nanoseconds to ticks (1
// without a TSC).
func NsPerTick() float64 { return nsPerTick }

// OK reports whether ticks come from the time-stamp counter.
func OK() bool { return ok }
