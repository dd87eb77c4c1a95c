package loop

import (
	"sync"
	"time"
)

// Clock is where a loop reads the time. Every timer of a loop is driven by its
// clock, so a test that injects a [FakeClock] controls when timers fire.
type Clock interface {
	Now() time.Time
}

// NanoClock is a Clock that also reads itself as Unix nanoseconds without
// building a time.Time; a loop reads such a clock that way (a simulator's
// clock, read at every step).
type NanoClock interface {
	Clock
	NowNanos() int64
}

// RealClock is the wall clock with its monotonic reading.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that moves only when told to. It is safe for
// concurrent use. A loop that is parked in [Loop.Run] does not notice an
// Advance by itself; FakeClock is meant for loops driven with [Loop.Step].
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's current reading.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (ignored if d is negative).
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t if t is later than its reading; a clock never goes back.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
}
