package actor

import (
	"time"

	"github.com/actord/actord/internal/tsc"
	"github.com/actord/actord/loop"
)

// The hook's handler clock. With a hook installed, every handler and
// continuation is timed: two clock readings per event, on the path of every
// message. A time.Now or time.Since costs 30–60 ns on a virtual machine
// (kvm-clock), a large part of a cross-loop round trip; so where the CPU has
// an invariant time-stamp counter (amd64, checked with CPUID) the loop reads
// the counter instead (~10–20 ns, package tsc) and converts ticks to
// nanoseconds with a ratio measured against the monotonic clock: once per
// process (tsc.Calibrate), then refined every minute per loop over that
// minute. Elsewhere the ticks are the monotonic clock's nanoseconds.
//
// Start times are derived from a base (wall time and ticks read together)
// re-taken every minute, so they follow wall clock adjustments within a
// minute, as before.

// ticks reads the handler clock (tsc.Read).
func ticks() int64 { return tsc.Read() }

// hookClock is a loop's handler clock state (loop goroutine only).
type hookClock struct {
	init      bool
	real      bool  // the System's clock is the wall clock
	baseTicks int64 // ticks read with baseWall
	baseWall  int64 // unix ns
	baseMono  time.Time
	nsPerTick float64
}

// rebase re-reads the base: the wall clock, the monotonic clock and the
// ticks together, and refines the ratio of ticks to nanoseconds over the
// interval since the last base.
func (c *hookClock) rebase() {
	// Calibrate first: every loop passes here before its first ticks, so
	// the calibration happens before the readings it converts.
	tsc.Calibrate()
	m := time.Now()
	t := ticks()
	if c.init && tsc.OK() {
		// refine the ratio over the last interval (at least ~a minute)
		if dm, dt := m.Sub(c.baseMono), t-c.baseTicks; dm > time.Second && dt > 0 {
			if r := float64(dm) / float64(dt); r > c.nsPerTick/2 && r < c.nsPerTick*2 {
				c.nsPerTick = r
			}
		}
	} else {
		c.nsPerTick = tsc.NsPerTick() // 1 without a TSC: ticks are nanoseconds
		c.init = true
	}
	c.baseMono, c.baseWall, c.baseTicks = m, m.UnixNano(), t
}

// hookStart reads the handler clock when a handler with a hook begins: its
// start on the loop's clock and the ticks to pass to hookSince.
func (ls *loopState) hookStart() (start time.Time, t0 int64) {
	c := &ls.hclk
	if !c.init {
		c.real = isRealClock(ls.sys.cfg.Clock)
		c.rebase()
	}
	t0 = ticks()
	d := float64(t0-c.baseTicks) * c.nsPerTick
	if d < 0 || d > float64(time.Minute) { // follow wall clock adjustments
		c.rebase()
		t0, d = c.baseTicks, 0
	}
	if c.real {
		return time.Unix(0, c.baseWall+int64(d)), t0
	}
	return ls.loop.Now(), t0
}

// hookSince returns the time elapsed since t0 (from hookStart).
func (ls *loopState) hookSince(t0 int64) time.Duration {
	d := ticks() - t0
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) * ls.hclk.nsPerTick)
}

func isRealClock(c loop.Clock) bool {
	_, ok := c.(loop.RealClock)
	return ok
}
