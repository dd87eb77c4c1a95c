package pool

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Load is one worker's load at a sample: the messages the pool has handed
// it and it has not finished (InFlight), and how many it has finished since
// it started (Handled, a counter: an unchanged Handled and no InFlight
// between two samples mean the worker was idle between them). A message is
// finished once handled, or, if its answer was deferred, once answered.
type Load struct {
	ID       uint64
	InFlight int
	Handled  uint64
}

// Decision is what a Scaler wants after a sample: Grow more workers, or
// Shrink the listed ones (at most one of the two), and why.
type Decision struct {
	Grow   int
	Shrink []uint64
	Reason string
	// Replace marks a Grow that only brings the pool back to Min (workers
	// ended): not a scale event.
	Replace bool
}

// ScaleConfig sets the scaling rules. Loads are the mean in-flight messages
// per worker. See Scaler for how they combine.
type ScaleConfig struct {
	// Min and Max bound the workers (1 <= Min <= Max <= HardMax).
	Min, Max int
	// Up is the mean in-flight per worker above which the pool is
	// overloaded; Down (< Up) the mean the pool must stay at or under
	// after a shrink. Defaults 4 and 1.
	Up, Down float64
	// UpAfter is how long the load must stay above Up before the pool
	// grows. Default 1 s.
	UpAfter time.Duration
	// IdleAfter is how long the pool's load must stay low (the messages in
	// flight would keep the mean at or under Down with a worker less) before
	// workers are removed. Default 30 s.
	IdleAfter time.Duration
	// Cooldown is the least time between two scale events. Default 5 s.
	Cooldown time.Duration
	// UpLatency, if set, makes a second overload: the mean time the pool's
	// messages spend in flight (handed to a worker until handled, or
	// answered if deferred) above UpLatency, on every sample for UpAfter,
	// grows the pool too (by one worker, when the in-flight rule does not
	// ask for more), and keeps it from shrinking. The mean is estimated
	// from the samples by Little's law (time in flight = messages in
	// flight / messages finished per second), so it costs nothing per
	// message; a sample interval in which nothing finishes while messages
	// are in flight counts as that long, added up over such intervals in a
	// row. It counts only at samples where some worker holds more than
	// one message: more workers cut the wait in their queues, not the
	// work, so set it above the workers' own service time. A pool
	// (pool.Config) needs it above its SampleEvery. 0: off.
	UpLatency time.Duration
}

// scale defaults.
const (
	DefaultUp        = 4.0
	DefaultDown      = 1.0
	DefaultUpAfter   = time.Second
	DefaultIdleAfter = 30 * time.Second
	DefaultCooldown  = 5 * time.Second
)

func (c ScaleConfig) withDefaults() ScaleConfig {
	if c.Up == 0 {
		c.Up = DefaultUp
	}
	if c.Down == 0 {
		c.Down = DefaultDown
	}
	if c.UpAfter == 0 {
		c.UpAfter = DefaultUpAfter
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	return c
}

// validate checks a config with its defaults filled in.
func (c ScaleConfig) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(f, a...)) }
	switch {
	case c.Min < 1:
		return bad("Min %d: need at least 1 worker", c.Min)
	case c.Max < c.Min:
		return bad("Max %d is below Min %d", c.Max, c.Min)
	case c.Max > HardMax:
		return bad("Max %d is above the hard cap %d", c.Max, HardMax)
	case math.IsNaN(c.Up) || math.IsNaN(c.Down) || c.Down < 0 || c.Up <= 0:
		return bad("thresholds Up %v and Down %v must be positive numbers", c.Up, c.Down)
	case c.Down >= c.Up:
		return bad("Down %v must be below Up %v (hysteresis)", c.Down, c.Up)
	case c.UpAfter < 0 || c.IdleAfter < 0 || c.Cooldown < 0 || c.UpLatency < 0:
		return bad("UpAfter %v, IdleAfter %v, Cooldown %v and UpLatency %v must not be negative", c.UpAfter, c.IdleAfter, c.Cooldown, c.UpLatency)
	}
	return nil
}

// Scaler decides when a pool grows and shrinks. It is a pure state machine:
// it reads no clock and starts nothing; Observe takes the time and the
// workers' loads and returns a Decision. Its rules:
//
//   - Below Min workers it grows to Min at once (workers died); that is
//     not a scale event and ignores the cool-down.
//   - It grows when the mean in-flight per worker has stayed above Up on
//     every sample for UpAfter, by enough workers to bring the mean to Up
//     or under (at least one, up to Max).
//   - It shrinks when, on every sample for IdleAfter, the workers less one
//     could have carried the load at a mean at or under Down: by as many
//     workers as keep Min and keep the highest load of that time at or
//     under Down per remaining worker. Down < Up, so a shrink cannot make
//     the next sample overloaded. The load is the pool's, not each
//     worker's: a light load spread over every worker (round-robin) still
//     shrinks the pool. The workers removed are those with nothing in
//     flight that were active (had something in flight or handled
//     something) the longest time ago, the highest ID first on a tie.
//   - With UpLatency set, a mean time in flight above it, while some
//     worker holds more than one message (messages wait in a queue),
//     counts as an overload too (growing by at least one worker), and as
//     not low.
//   - After a scale event, nothing but the Min rule happens for Cooldown,
//     and the overload must then last a whole UpAfter again.
//
// A Scaler is not safe for concurrent use.
type Scaler struct {
	cfg       ScaleConfig
	highSince time.Time // first sample of the current overload; zero: not overloaded
	lowSince  time.Time // first sample of the current low load; zero: not low
	lowPeak   int       // the most in flight since lowSince
	last      time.Time // last scale event; zero: none yet
	idle      map[uint64]idleMark
	done      map[uint64]uint64 // per worker, the most it had finished

	// The time in flight (UpLatency): the previous sample, the time in
	// flight added up since something last finished (message-nanoseconds),
	// the estimate, and how long nothing has finished while messages were
	// in flight.
	prevAt    time.Time
	prevTotal int
	area      float64
	latency   time.Duration
	latHigh   bool
	stalled   time.Duration
}

type idleMark struct {
	handled uint64
	active  time.Time // the last sample it was active at (or first seen)
}

// NewScaler returns a Scaler for cfg (defaults filled in), or an error
// matching ErrBadConfig.
func NewScaler(cfg ScaleConfig) (*Scaler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Scaler{cfg: cfg, idle: make(map[uint64]idleMark), done: make(map[uint64]uint64)}, nil
}

// Observe takes a sample of every worker's load at now and returns the
// decision. The caller carries it out (or not) and goes on sampling.
func (s *Scaler) Observe(now time.Time, loads []Load) Decision {
	cfg := &s.cfg
	seen := make(map[uint64]struct{}, len(loads))
	total := 0
	var finished uint64 // since the previous sample, by the workers in both
	queued := false     // some worker holds more than the one it works on
	for _, l := range loads {
		seen[l.ID] = struct{}{}
		total += max(l.InFlight, 0)
		queued = queued || l.InFlight > 1
		// Finished messages count against the most the worker had
		// finished: a counter that dipped (a deferred message counts as
		// held a moment before it counts as handled) and came back is not
		// a message finished twice.
		if hw, ok := s.done[l.ID]; !ok || l.Handled > hw {
			if ok {
				finished += l.Handled - hw
			}
			s.done[l.ID] = l.Handled
		}
		m, ok := s.idle[l.ID]
		if !ok || l.InFlight > 0 || l.Handled != m.handled {
			m = idleMark{handled: l.Handled, active: now}
		}
		s.idle[l.ID] = m
	}
	for id := range s.idle {
		if _, ok := seen[id]; !ok {
			delete(s.idle, id)
		}
	}
	for id := range s.done {
		if _, ok := seen[id]; !ok {
			delete(s.done, id)
		}
	}
	s.timeInFlight(now, total, finished)
	// The time in flight counts only while messages wait behind others:
	// with none queued, more workers would not shorten it.
	slow := s.latHigh && queued
	n := len(loads)
	if n < cfg.Min {
		return Decision{Grow: cfg.Min - n, Replace: true, Reason: fmt.Sprintf("%d workers, below Min %d", n, cfg.Min)}
	}
	mean := float64(total) / float64(n)
	if mean > cfg.Up || slow {
		if s.highSince.IsZero() {
			s.highSince = now
		}
	} else {
		s.highSince = time.Time{}
	}
	if n > 1 && float64(total) <= cfg.Down*float64(n-1) && !slow {
		if s.lowSince.IsZero() {
			s.lowSince, s.lowPeak = now, 0
		}
		s.lowPeak = max(s.lowPeak, total)
	} else {
		s.lowSince = time.Time{}
	}
	if !s.last.IsZero() && now.Sub(s.last) < cfg.Cooldown {
		return Decision{}
	}
	if !s.highSince.IsZero() && now.Sub(s.highSince) >= cfg.UpAfter && n < cfg.Max {
		want := int(math.Ceil(float64(total) / cfg.Up))
		grow := min(max(want-n, 1), cfg.Max-n)
		reason := fmt.Sprintf("mean in-flight %.2f per worker above %v for %v", mean, cfg.Up, now.Sub(s.highSince))
		if mean <= cfg.Up {
			reason = fmt.Sprintf("mean time in flight %v above %v for %v (mean in-flight %.2f per worker)",
				s.latency.Round(time.Microsecond), cfg.UpLatency, now.Sub(s.highSince), mean)
		}
		s.mark(now)
		return Decision{Grow: grow, Reason: reason}
	}
	if n <= cfg.Min || s.lowSince.IsZero() || now.Sub(s.lowSince) < cfg.IdleAfter {
		return Decision{}
	}
	type cand struct {
		id     uint64
		active time.Time
	}
	var cands []cand
	for _, l := range loads {
		if l.InFlight == 0 {
			cands = append(cands, cand{l.ID, s.idle[l.ID].active})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := a.active.Compare(b.active); c != 0 {
			return c
		}
		return cmp.Compare(b.id, a.id)
	})
	k := 0
	for k < len(cands) && n-(k+1) >= cfg.Min && float64(s.lowPeak) <= cfg.Down*float64(n-(k+1)) {
		k++
	}
	if k == 0 {
		return Decision{}
	}
	ids := make([]uint64, k)
	for i := range ids {
		ids[i] = cands[i].id
	}
	reason := fmt.Sprintf("load at most %d in flight for %v over %d workers, mean in-flight %.2f", s.lowPeak, now.Sub(s.lowSince), n, mean)
	s.mark(now)
	return Decision{Shrink: ids, Reason: reason}
}

// timeInFlight updates the estimate of the mean time in flight with a
// sample: total in flight now, finished since the previous sample.
func (s *Scaler) timeInFlight(now time.Time, total int, finished uint64) {
	prevAt, prevTotal := s.prevAt, s.prevTotal
	s.prevAt, s.prevTotal = now, total
	if s.cfg.UpLatency <= 0 || prevAt.IsZero() || !now.After(prevAt) {
		return
	}
	dt := now.Sub(prevAt)
	// Little's law: the messages' time in flight, added up (the area under
	// the in-flight curve, by trapezes), over the messages finished. The
	// area runs on over intervals in which nothing finished, so that
	// lumpy completions are not read as quick ones.
	s.area += float64(prevTotal+total) / 2 * float64(dt)
	switch {
	case finished > 0:
		s.latency = time.Duration(s.area / float64(finished))
		s.area, s.stalled = 0, 0
	case total > 0: // nothing finished while messages waited
		s.stalled += dt
		if s.stalled < s.cfg.UpLatency {
			return // too short to tell: the previous verdict stands
		}
		s.latency = max(s.latency, s.stalled)
	default: // idle
		s.area, s.stalled, s.latency = 0, 0, 0
	}
	s.latHigh = s.latency > s.cfg.UpLatency
}

// Latency returns the Scaler's estimate of the mean time in flight at
// the last sample (0 without UpLatency).
func (s *Scaler) Latency() time.Duration { return s.latency }

// Forget drops what the Scaler knows of worker id: call it when the ID is
// reused by a new worker, which must not inherit its predecessor's idle
// time.
func (s *Scaler) Forget(id uint64) {
	delete(s.idle, id)
	delete(s.done, id)
}

// mark records a scale event at now.
func (s *Scaler) mark(now time.Time) {
	s.last = now
	s.highSince, s.lowSince = time.Time{}, time.Time{}
}
