package pool

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simulate feeds a scaler, every step, with n workers' loads from load
// (total in flight at time t, spread evenly), applies its decisions, and
// returns the worker count after each step and the number of ups and downs.
func simulate(t *testing.T, cfg ScaleConfig, step, span time.Duration, load func(t time.Duration, n int) int) (counts []int, ups, downs int) {
	t.Helper()
	s, err := NewScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint64{}
	next := uint64(0)
	handled := map[uint64]uint64{}
	for range cfg.Min {
		next++
		ids = append(ids, next)
	}
	for at := time.Duration(0); at <= span; at += step {
		total := load(at, len(ids))
		loads := make([]Load, len(ids))
		for i, id := range ids {
			l := total / len(ids)
			if i < total%len(ids) {
				l++
			}
			if l > 0 {
				handled[id]++ // busy workers handle something between samples
			}
			loads[i] = Load{ID: id, InFlight: l, Handled: handled[id]}
		}
		d := s.Observe(t0.Add(at), loads)
		switch {
		case d.Grow > 0:
			if !d.Replace {
				ups++
			}
			for range d.Grow {
				next++
				ids = append(ids, next)
			}
		case len(d.Shrink) > 0:
			downs++
			for _, gone := range d.Shrink {
				for i, id := range ids {
					if id == gone {
						ids = append(ids[:i], ids[i+1:]...)
						break
					}
				}
			}
		}
		if len(ids) < cfg.Min || len(ids) > cfg.Max {
			t.Fatalf("at %v: %d workers, outside %d..%d", at, len(ids), cfg.Min, cfg.Max)
		}
		counts = append(counts, len(ids))
	}
	return counts, ups, downs
}

func testScale() ScaleConfig {
	return ScaleConfig{Min: 1, Max: 8, Up: 4, Down: 1, UpAfter: time.Second, IdleAfter: 5 * time.Second, Cooldown: 3 * time.Second}
}

// A step up of the load grows the pool to what the load needs (not more),
// after UpAfter; a step down shrinks it back to Min once the workers have
// been idle for IdleAfter.
func TestScalerStep(t *testing.T) {
	cfg := testScale()
	// Offered work: 24 in flight for 20 s (needs 6 workers at Up 4), then
	// nothing. In flight per worker drops as workers are added.
	load := func(at time.Duration, n int) int {
		if at >= 2*time.Second && at < 22*time.Second {
			return 24
		}
		return 0
	}
	counts, ups, downs := simulate(t, cfg, 100*time.Millisecond, 60*time.Second, load)
	at := func(d time.Duration) int { return counts[d/(100*time.Millisecond)] }
	if at(2*time.Second+900*time.Millisecond) != 1 {
		t.Fatalf("grew before UpAfter: %d workers at 2.9 s", at(2*time.Second+900*time.Millisecond))
	}
	if at(3*time.Second) != 6 {
		t.Fatalf("workers at 3 s = %d, want 6 (24 in flight / Up 4)", at(3*time.Second))
	}
	if at(21*time.Second) != 6 {
		t.Fatalf("workers at 21 s = %d, want 6 (steady)", at(21*time.Second))
	}
	if got := counts[len(counts)-1]; got != 1 {
		t.Fatalf("workers at the end = %d, want Min 1", got)
	}
	if ups != 1 || downs != 1 {
		t.Fatalf("%d ups and %d downs, want 1 and 1", ups, downs)
	}
}

// A load that swings across Up faster than UpAfter never grows the pool,
// and one that swings across Down with busy workers never shrinks it.
func TestScalerNoFlapping(t *testing.T) {
	cfg := testScale()
	cfg.Min = 2
	swing := func(hi, lo int) func(time.Duration, int) int {
		return func(at time.Duration, n int) int {
			if (at/(700*time.Millisecond))%2 == 0 {
				return hi * n
			}
			return lo * n
		}
	}
	counts, ups, downs := simulate(t, cfg, 100*time.Millisecond, 120*time.Second, swing(5, 3))
	if ups != 0 || downs != 0 || counts[len(counts)-1] != 2 {
		t.Fatalf("near Up: %d ups, %d downs, %d workers; want no event", ups, downs, counts[len(counts)-1])
	}
	// Around Down: 1 and 0 in flight per worker, workers never idle long.
	cfg.Min = 1
	_, ups, downs = simulate(t, cfg, 100*time.Millisecond, 120*time.Second, func(at time.Duration, n int) int {
		if at < 10*time.Second {
			return 30 // grow first
		}
		return swing(1, 0)(at, n)
	})
	if ups != 1 || downs != 0 {
		t.Fatalf("near Down: %d ups, %d downs; want 1 up and no down", ups, downs)
	}
}

// After a scale event nothing happens for Cooldown, even under a load that
// keeps growing; then a new whole UpAfter is needed.
func TestScalerCooldown(t *testing.T) {
	cfg := testScale()
	cfg.Max = 100
	counts, ups, _ := simulate(t, cfg, 100*time.Millisecond, 10*time.Second, func(at time.Duration, n int) int {
		return 8 * n // always twice Up per worker, whatever the size
	})
	// Ups at 1 s, then at most every Cooldown (3 s): 1, 4, 7, 10.
	if ups != 4 {
		t.Fatalf("%d ups in 10 s, want 4 (UpAfter 1 s, Cooldown 3 s); counts %v", ups, counts)
	}
}

// Workers that ended are replaced at once, whatever the cool-down, and that
// is not a scale event.
func TestScalerReplacesBelowMin(t *testing.T) {
	s, err := NewScaler(ScaleConfig{Min: 3, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Observe(t0, []Load{{ID: 1}})
	if d.Grow != 2 || !d.Replace {
		t.Fatalf("decision %+v, want Grow 2 Replace", d)
	}
}

func TestScaleConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  ScaleConfig
		want string
	}{
		{ScaleConfig{Min: 0, Max: 1}, "Min 0"},
		{ScaleConfig{Min: 3, Max: 2}, "Max 2 is below Min 3"},
		{ScaleConfig{Min: 1, Max: HardMax + 1}, "hard cap"},
		{ScaleConfig{Min: 1, Max: 2, Up: 1, Down: 2}, "Down 2 must be below Up 1"},
		{ScaleConfig{Min: 1, Max: 2, Up: -1}, "must be positive"},
		{ScaleConfig{Min: 1, Max: 2, Cooldown: -time.Second}, "must not be negative"},
	} {
		_, err := NewScaler(tc.cfg)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want ErrBadConfig saying %q", tc.cfg, err, tc.want)
		}
	}
}

// A shrink removes only as many idle workers as keep the mean in flight at
// or under Down, longest idle first.
func TestScalerShrinkKeepsMeanUnderDown(t *testing.T) {
	s, err := NewScaler(ScaleConfig{Min: 1, Max: 8, Up: 4, Down: 1, IdleAfter: time.Second, Cooldown: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Worker 4 is busy with 2 in flight (it handles one between samples);
	// 1, 2, 3 are idle, 3 for the longest.
	sample := func(at time.Duration, h uint64) Decision {
		return s.Observe(t0.Add(at), []Load{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4, InFlight: 2, Handled: h}})
	}
	if d := sample(0, 0); d.Grow != 0 || d.Shrink != nil {
		t.Fatalf("first sample: %+v", d)
	}
	d := sample(2*time.Second, 1)
	if len(d.Shrink) != 2 {
		t.Fatalf("decision %+v: want 2 of the 3 idle workers removed (2 in flight over 2 workers = Down)", d)
	}
	for _, id := range d.Shrink {
		if id == 4 {
			t.Fatalf("shrank the busy worker: %+v", d)
		}
	}
}

// A light steady load spread over every worker (round-robin: 1 message a
// second over 8 workers, each handled before the next sample, one in flight
// at the sample it arrives) keeps each worker active, but the pool as a
// whole is nearly idle: it shrinks to Min.
func TestScalerTrickleShrinks(t *testing.T) {
	s, err := NewScaler(ScaleConfig{Min: 1, Max: 8})
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	handled := map[uint64]uint64{}
	now, msg, downs := t0, 0, 0
	for i := range 10 * 60 * 5 { // 5 min of samples every 100 ms
		now = now.Add(100 * time.Millisecond)
		loads := make([]Load, len(ids))
		for j, id := range ids {
			loads[j] = Load{ID: id, Handled: handled[id]}
		}
		if i%10 == 0 { // one message a second, round-robin
			j := msg % len(ids)
			msg++
			loads[j].InFlight = 1
			handled[ids[j]]++
		}
		d := s.Observe(now, loads)
		if d.Grow > 0 {
			t.Fatalf("at %v: grew %+v", now.Sub(t0), d)
		}
		if len(d.Shrink) > 0 {
			downs++
			for _, gone := range d.Shrink {
				for _, l := range loads {
					if l.ID == gone && l.InFlight > 0 {
						t.Fatalf("shrank worker %d with a message in flight", gone)
					}
				}
				ids = slices.DeleteFunc(ids, func(id uint64) bool { return id == gone })
			}
		}
	}
	if len(ids) != 1 || downs == 0 {
		t.Fatalf("%d workers after 5 min of 1 msg/s (%d scale downs), want Min 1", len(ids), downs)
	}
}

// Victims are the workers active the longest time ago, the highest ID first
// on a tie.
func TestScalerShrinksLeastRecentlyActive(t *testing.T) {
	s, err := NewScaler(ScaleConfig{Min: 2, Max: 4, IdleAfter: time.Second, Cooldown: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 1 and 2 handle a message now and then; 3 and 4 never do.
	var h uint64
	var d Decision
	for at := time.Duration(0); at <= 2*time.Second && d.Shrink == nil; at += 100 * time.Millisecond {
		h++
		d = s.Observe(t0.Add(at), []Load{{ID: 1, Handled: h}, {ID: 2, Handled: h}, {ID: 3}, {ID: 4}})
	}
	if !slices.Equal(d.Shrink, []uint64{4, 3}) {
		t.Fatalf("decision %+v, want workers 4 and 3 removed", d)
	}
}

// A forgotten ID (reused by a new worker) does not keep its predecessor's
// past: the new worker counts as active from its first sample.
func TestScalerForget(t *testing.T) {
	s, err := NewScaler(ScaleConfig{Min: 2, Max: 3, IdleAfter: time.Second, Cooldown: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var h uint64
	var d Decision
	for at := time.Duration(0); at <= 2*time.Second && d.Shrink == nil; at += 100 * time.Millisecond {
		if at == 500*time.Millisecond {
			s.Forget(3) // worker 3 ended, its replacement took its ID
		}
		h++
		d = s.Observe(t0.Add(at), []Load{{ID: 1}, {ID: 2, Handled: h}, {ID: 3}})
	}
	if !slices.Equal(d.Shrink, []uint64{1}) {
		t.Fatalf("decision %+v, want worker 1 removed (3 is new)", d)
	}
}

// latencyRun feeds a scaler every 100 ms for span with the workers it
// asks for: each holds perWorker messages in flight and finishes one every
// `every` samples. It returns the worker counts and the scale events.
func latencyRun(t *testing.T, cfg ScaleConfig, span time.Duration, perWorker, every func(at time.Duration) int) (counts []int, events []Decision) {
	t.Helper()
	s, err := NewScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, handled, step := cfg.Min, map[uint64]uint64{}, 100*time.Millisecond
	for at, i := time.Duration(0), 0; at <= span; at, i = at+step, i+1 {
		loads := make([]Load, n)
		for w := range n {
			id := uint64(w + 1)
			if e := every(at); e > 0 && i%e == 0 && perWorker(at) > 0 {
				handled[id]++
			}
			loads[w] = Load{ID: id, InFlight: perWorker(at), Handled: handled[id]}
		}
		d := s.Observe(t0.Add(at), loads)
		if d.Grow > 0 && !d.Replace || len(d.Shrink) > 0 {
			events = append(events, d)
		}
		n += d.Grow - len(d.Shrink)
		counts = append(counts, n)
	}
	return counts, events
}

// Workers that hold few messages each (a mean in flight far under Up) but
// finish them slowly: the time in flight passes UpLatency and the pool
// grows, by one worker per event, only after UpAfter, and not at all
// without UpLatency.
func TestScalerGrowsOnTimeInFlight(t *testing.T) {
	cfg := testScale()
	cfg.Min, cfg.UpLatency = 2, 250*time.Millisecond
	// 3 in flight per worker, one finished per worker every sample (100
	// ms): 3 x 100 ms = 300 ms in flight, from 1 s to 8.5 s.
	three := func(at time.Duration) int {
		if at >= time.Second && at < 8500*time.Millisecond {
			return 3
		}
		return 0
	}
	one := func(time.Duration) int { return 1 }
	counts, events := latencyRun(t, cfg, 8500*time.Millisecond, three, one)
	at := func(d time.Duration) int { return counts[d/(100*time.Millisecond)] }
	if at(1900*time.Millisecond) != 2 || at(2100*time.Millisecond) != 3 {
		t.Fatalf("workers at 1.9 s %d, at 2.1 s %d: want 2 then 3 (UpAfter 1 s after the first high sample)", at(1900*time.Millisecond), at(2100*time.Millisecond))
	}
	if len(events) == 0 || !strings.Contains(events[0].Reason, "time in flight 300ms above 250ms") {
		t.Fatalf("events %+v: want a grow naming the time in flight", events)
	}
	// Still 300 ms in flight per message after each grow (the workers are
	// the bottleneck, not the queue): one more per Cooldown (3 s).
	if len(events) != 3 || counts[len(counts)-1] != 5 {
		t.Fatalf("%d events, %d workers at the end: want 3 grows to 5 (at 2, 5 and 8 s)", len(events), counts[len(counts)-1])
	}
	cfg.UpLatency = 0
	if _, events := latencyRun(t, cfg, 8*time.Second, three, one); len(events) != 0 {
		t.Fatalf("without UpLatency: %+v, want nothing (mean in flight 3 is under Up 4)", events)
	}
	// Under the threshold (2 in flight: 200 ms), nothing either.
	cfg.UpLatency = 250 * time.Millisecond
	two := func(at time.Duration) int { return 2 }
	if _, events := latencyRun(t, cfg, 8*time.Second, two, one); len(events) != 0 {
		t.Fatalf("200 ms in flight against 250 ms: %+v, want nothing", events)
	}
}

// Workers that finish nothing while messages wait count as a time in
// flight as long as they have stalled; a stall shorter than UpLatency
// changes nothing.
func TestScalerStallCountsAsTimeInFlight(t *testing.T) {
	cfg := testScale()
	cfg.Min, cfg.UpLatency = 2, 500*time.Millisecond
	one := func(time.Duration) int { return 1 }
	two := func(time.Duration) int { return 2 }
	never := func(time.Duration) int { return 0 }
	counts, events := latencyRun(t, cfg, 3*time.Second, two, never)
	if len(events) != 1 || counts[len(counts)-1] != 3 {
		t.Fatalf("stalled workers: %+v, %d workers: want one grow", events, counts[len(counts)-1])
	}
	// Finishing one per worker every 2 samples (200 ms), 2 in flight:
	// stalls of 100 ms, under 500 ms; Little's law says 2 x 200 ms / 1.
	if _, events := latencyRun(t, cfg, 10*time.Second, two, func(time.Duration) int { return 2 }); len(events) != 0 {
		t.Fatalf("short stalls: %+v, want nothing", events)
	}
	// Stalled, but with nothing queued (one message per worker): more
	// workers would not help.
	if _, events := latencyRun(t, cfg, 3*time.Second, one, never); len(events) != 0 {
		t.Fatalf("stalled with nothing queued: %+v, want nothing", events)
	}
}

// A pool whose time in flight is high does not shrink, however few
// messages it holds.
func TestScalerNoShrinkWhileSlow(t *testing.T) {
	cfg := testScale()
	cfg.Min, cfg.Max, cfg.UpLatency, cfg.IdleAfter = 1, 4, 150*time.Millisecond, time.Second
	s, err := NewScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 4 workers, three messages in flight in all, on one of them (a mean
	// of 0.75: low), one finished every 2 samples (200 ms): 3 x 200 ms in
	// flight.
	var handled uint64
	for i := range 100 {
		if i%2 == 0 {
			handled++
		}
		loads := []Load{{ID: 1, InFlight: 3, Handled: handled}, {ID: 2}, {ID: 3}, {ID: 4}}
		if d := s.Observe(t0.Add(time.Duration(i)*100*time.Millisecond), loads); len(d.Shrink) > 0 || d.Grow > 0 {
			if d.Grow == 0 {
				t.Fatalf("sample %d: %+v, want no shrink while the time in flight (%v) is above UpLatency", i, d, s.Latency())
			}
		}
	}
	if s.Latency() != 600*time.Millisecond {
		t.Fatalf("estimate %v, want 600ms", s.Latency())
	}
}

// A grown pool whose messages are few but now and then slow (one job
// slower than UpLatency every few seconds, never one waiting behind
// another) still shrinks back to Min.
func TestScalerShrinksDespiteAnOccasionalSlowJob(t *testing.T) {
	cfg := testScale()
	cfg.Min, cfg.Max, cfg.UpLatency, cfg.IdleAfter = 1, 4, 100*time.Millisecond, 5*time.Second
	s, err := NewScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint64{1, 2, 3, 4}
	var handled uint64
	for i := range 1200 { // 2 minutes of samples
		// A 100 ms job every second, and every 4 s a 300 ms one, on worker 1.
		inFlight := 0
		if sec := i % 10; sec == 0 || (i%40 < 3) {
			inFlight = 1
		}
		if i%10 == 1 || i%40 == 3 {
			handled++
		}
		loads := make([]Load, len(ids))
		for j, id := range ids {
			loads[j] = Load{ID: id}
		}
		loads[0] = Load{ID: ids[0], InFlight: inFlight, Handled: handled}
		d := s.Observe(t0.Add(time.Duration(i)*100*time.Millisecond), loads)
		if d.Grow > 0 {
			t.Fatalf("sample %d: grew %+v", i, d)
		}
		for _, gone := range d.Shrink {
			ids = slices.DeleteFunc(ids, func(id uint64) bool { return id == gone })
		}
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("workers %v after 2 minutes, want only the busy one", ids)
	}
}

// A worker's finished count that dips and comes back (a deferred message
// counts as held a moment before it counts as handled) is not read as
// messages finished: the estimate is the same with and without dips.
func TestScalerFinishedCountDips(t *testing.T) {
	run := func(dips bool) time.Duration {
		cfg := testScale()
		cfg.Min, cfg.UpLatency = 1, 250*time.Millisecond
		s, err := NewScaler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		handled := uint64(10)
		for i := range 40 {
			if i%4 == 0 {
				handled++ // one finished every 400 ms, 2 in flight: 800 ms
			}
			h := handled
			if dips && i%4 == 2 {
				h-- // seen mid-handler
			}
			s.Observe(t0.Add(time.Duration(i)*100*time.Millisecond), []Load{{ID: 1, InFlight: 2, Handled: h}})
		}
		return s.Latency()
	}
	if with, without := run(true), run(false); with != without || without != 800*time.Millisecond {
		t.Fatalf("estimate with dips %v, without %v: want 800ms both", with, without)
	}
}

// Samples taken while the pool is below Min (workers ended) still count
// for the time in flight: the next estimate covers one interval, not all
// of them at once.
func TestScalerTimeInFlightBelowMin(t *testing.T) {
	cfg := testScale()
	cfg.Min, cfg.UpLatency = 2, 250*time.Millisecond
	s, err := NewScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handled := uint64(0)
	for i := range 6 {
		handled++ // 2 in flight, one finished every 100 ms: 200 ms
		loads := []Load{{ID: 1, InFlight: 2, Handled: handled}}
		if i == 5 {
			loads = append(loads, Load{ID: 2})
		}
		if d := s.Observe(t0.Add(time.Duration(i)*100*time.Millisecond), loads); i < 5 && !d.Replace {
			t.Fatalf("sample %d below Min: %+v", i, d)
		}
	}
	if s.Latency() != 200*time.Millisecond {
		t.Fatalf("estimate %v, want 200ms", s.Latency())
	}
}
