package upgrade_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/loop"
	"github.com/actord/actord/upgrade"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 10 * time.Second

var errBoom = errors.New("boom")

// Two versions of a counter. Both log every int they handle, tagged with
// their version, so a test can check that nothing was lost or reordered
// across the upgrade.
type entry struct {
	n       int
	version string
}

type counterV1 struct {
	log     []entry
	started bool     // Start ran (a fresh instance from the factory)
	back    bool     // made by Back
	conts   []string // continuations that ran in this instance
	owed    []*actor.Reply
}

type counterV2 struct {
	log   []entry
	total int // new in v2: computed by Forward
	sick  bool
	conts []string
	owed  []*actor.Reply
}

// Messages of the counters.
type (
	get  struct{}               // replies with a copy of the log
	boom struct{}               // v2 panics
	sick struct{}               // v2 fails its health check from now on
	ask  struct{ to actor.Ref } // asks to and logs the answer in a continuation
	owe  struct{}               // deferred: answered by pay
	pay  struct{}               // answers the owed asks with the payer's version
	// later sends n to the actor itself after d, with an actor timer
	later struct {
		n int
		d time.Duration
	}
)

func (a *counterV1) Start(*actor.Context) error { a.started = true; return nil }

func (a *counterV1) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case int:
		a.log = append(a.log, entry{m, "v1"})
	case get:
		return append([]entry(nil), a.log...), nil
	case boom:
		return "v1 does not crash", nil
	case ask:
		c.Ask(m.to, "question").Then(func(_ *actor.Context, v any, err error) {
			if v == "panic" {
				panic("continuation of v1")
			}
			a.conts = append(a.conts, answer(v, err))
		})
	case later:
		c.After(m.d, m.n)
	case owe:
		a.owed = append(a.owed, c.Defer())
	case pay:
		for _, r := range a.owed {
			r.Reply("paid by v1", nil)
		}
		a.owed = nil
	}
	return nil, nil
}

func (a *counterV2) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case int:
		a.log = append(a.log, entry{m, "v2"})
		a.total += m
	case get:
		return append([]entry(nil), a.log...), nil
	case boom:
		panic(errBoom)
	case sick:
		a.sick = true
	case ask:
		c.Ask(m.to, "question").Then(func(_ *actor.Context, v any, err error) {
			a.conts = append(a.conts, answer(v, err))
		})
	case owe:
		a.owed = append(a.owed, c.Defer())
	case pay:
		for _, r := range a.owed {
			r.Reply("paid by v2", nil)
		}
		a.owed = nil
	}
	return nil, nil
}

func answer(v any, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	s, _ := v.(string)
	return s
}

// migration is v1 -> v2 with Back and a health check.
func migration() upgrade.Migration[*counterV1, *counterV2] {
	return upgrade.Migration[*counterV1, *counterV2]{
		From: "v1", To: "v2",
		Forward: func(o *counterV1) (*counterV2, error) {
			n := &counterV2{log: append([]entry(nil), o.log...), conts: append([]string(nil), o.conts...),
				owed: append([]*actor.Reply(nil), o.owed...)}
			for _, e := range o.log {
				n.total += e.n
			}
			return n, nil
		},
		Back: func(n *counterV2) (*counterV1, error) {
			return &counterV1{log: append([]entry(nil), n.log...), back: true}, nil
		},
		Factory: func() *counterV2 { return &counterV2{} },
		Health: func(n *counterV2) error {
			if n.sick {
				return errors.New("sick")
			}
			return nil
		},
	}
}

// reports collects the upgrade reports of a system, through its lifecycle
// hook.
type reports struct {
	mu   sync.Mutex
	reps []*upgrade.Report
	ch   chan *upgrade.Report
}

func newReports() *reports { return &reports{ch: make(chan *upgrade.Report, 64)} }

func (r *reports) hook(ev *actor.Event) {
	if rep, ok := ev.Msg.(*upgrade.Report); ok && ev.Kind == actor.EventReport {
		r.mu.Lock()
		r.reps = append(r.reps, rep)
		r.mu.Unlock()
		r.ch <- rep
	}
}

func (r *reports) all() []*upgrade.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*upgrade.Report(nil), r.reps...)
}

// has reports whether an outcome o was reported.
func (r *reports) has(o upgrade.Outcome) bool {
	for _, rep := range r.all() {
		if rep.Outcome == o {
			return true
		}
	}
	return false
}

// wait waits for a report of outcome o (real loops).
func (r *reports) wait(t *testing.T, o upgrade.Outcome) *upgrade.Report {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case rep := <-r.ch:
			if rep.Outcome == o {
				return rep
			}
		case <-deadline:
			t.Fatalf("no %v report; got %v", o, r.all())
		}
	}
}

// system starts a System with real loops.
func system(t *testing.T, loops int, rep *reports) *actor.System {
	t.Helper()
	s := actor.NewSystem(actor.Config{Loops: loops, LifecycleHook: rep.hook, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// manual is a deterministic System driven by the test (see step).
type manual struct {
	t   *testing.T
	s   *actor.System
	fc  *loop.FakeClock
	sim interface {
		NextTimer() (time.Time, bool)
		Queued() bool
	}
	drv actor.Ref
	// outcomes of the promises the driver ran, by key
	results map[string]error
}

func newManual(t *testing.T, loops int, rep *reports) *manual {
	t.Helper()
	fc := loop.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := actor.NewSystem(actor.Config{Loops: loops, Manual: true, Clock: fc, LifecycleHook: rep.hook,
		OnCrash: func(*actor.Crash) {}, Seed: 1})
	m := &manual{t: t, s: s, fc: fc, results: map[string]error{}}
	m.sim = seam.Sim(s).(interface {
		NextTimer() (time.Time, bool)
		Queued() bool
	})
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	var err error
	m.drv, err = s.Spawn(context.Background(), func() actor.Actor { return driver{m} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// settle handles every event that is ready, without moving the clock.
func (m *manual) settle() {
	for i := 0; i < 1_000_000; i++ {
		due := false
		if next, ok := m.sim.NextTimer(); ok && !next.After(m.fc.Now()) {
			due = true
		}
		if !m.sim.Queued() && !due {
			return
		}
		m.s.Step()
	}
	m.t.Fatal("the system never settled")
}

// advance moves the clock by d and handles what is then ready.
func (m *manual) advance(d time.Duration) {
	m.fc.Advance(d)
	m.settle()
}

// do runs f inside the driver actor; the promise it returns is recorded
// under key when it settles.
func (m *manual) do(key string, f func(c *actor.Context) actor.Promise) {
	if err := m.s.Send(m.drv, driverCall{key, f}); err != nil {
		m.t.Fatal(err)
	}
	m.settle()
}

// result is the outcome recorded under key.
func (m *manual) result(key string) (error, bool) {
	err, ok := m.results[key]
	return err, ok
}

func (m *manual) spawn(f actor.Factory, opts ...actor.SpawnOption) actor.Ref {
	m.t.Helper()
	r, err := m.s.Spawn(context.Background(), f, opts...)
	if err != nil {
		m.t.Fatal(err)
	}
	return r
}

func (m *manual) ask(r actor.Ref, msg any) (any, error) {
	return m.s.Ask(context.Background(), r, msg)
}

type driverCall struct {
	key string
	f   func(c *actor.Context) actor.Promise
}

type driver struct{ m *manual }

func (d driver) Receive(c *actor.Context, msg any) (any, error) {
	if call, ok := msg.(driverCall); ok {
		call.f(c).Then(func(_ *actor.Context, _ any, err error) { d.m.results[call.key] = err })
	}
	return nil, nil
}

// inspect returns the instance r runs (only its type and fields that are
// not touched concurrently may be read).
func inspect(t *testing.T, s *actor.System, r actor.Ref) actor.Actor {
	t.Helper()
	var got actor.Actor
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Inspect(ctx, r, func(_ *actor.Context, a actor.Actor) { got = a }); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkLog checks that log holds 1..n in order, versions never going back
// from v2 to v1, and returns how many each version handled.
func checkLog(t *testing.T, log []entry, n int) (v1, v2 int) {
	t.Helper()
	if len(log) != n {
		t.Fatalf("%d messages handled, want %d", len(log), n)
	}
	for i, e := range log {
		if e.n != i+1 {
			t.Fatalf("message %d is %d: lost or reordered", i+1, e.n)
		}
		switch e.version {
		case "v1":
			if v2 > 0 {
				t.Fatalf("message %d handled by v1 after v2 took over", e.n)
			}
			v1++
		case "v2":
			v2++
		}
	}
	return v1, v2
}
