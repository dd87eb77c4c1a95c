package actor

import (
	"time"

	"github.com/actord/actord/internal/seam"
)

// simView is the simulator's seam of a System (seam.Sim): what a
// simulated world needs to drive a manual system on virtual time.
type simView struct{ s *System }

func init() {
	seam.Sim = func(sys any) any { return simView{sys.(*System)} }
}

// NextTimer returns the earliest timer deadline of any loop, on the
// system's clock. Manual mode, from the driving goroutine.
func (v simView) NextTimer() (time.Time, bool) {
	var earliest time.Time
	for _, ls := range v.s.loops {
		if t, ok := ls.loop.NextTimer(); ok && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	return earliest, !earliest.IsZero()
}

// NextTimerNanos is NextTimer as Unix nanoseconds (the simulator asks at
// every step).
func (v simView) NextTimerNanos() (int64, bool) {
	var earliest int64
	found := false
	for _, ls := range v.s.loops {
		if t, ok := ls.loop.NextTimerNanos(); ok && (!found || t < earliest) {
			earliest, found = t, true
		}
	}
	return earliest, found
}

// Queued reports whether any loop has an event queued (timers aside).
// Manual mode, from the driving goroutine.
func (v simView) Queued() bool {
	for _, ls := range v.s.loops {
		if ls.loop.Queued() {
			return true
		}
	}
	return false
}

// SetBlocking sends Context.Blocking jobs to run instead of the worker
// pool: a simulator runs them as events of virtual time. Set it before
// any actor runs.
func (v simView) SetBlocking(run func(job func()) error) { v.s.blocking = run }
