package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/loop"
	"github.com/actord/actord/supervisor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init (the
		// simulator's nodes import the remote layer).
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a manual actor system on a fake clock: the test steps it.
type env struct {
	t   *testing.T
	sys *actor.System
	clk *loop.FakeClock
}

func newEnv(t *testing.T, loops int) *env {
	clk := loop.NewFakeClock(t0)
	sys := actor.NewSystem(actor.Config{Loops: loops, Manual: true, Clock: clk, Seed: 1, Logger: quiet,
		OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	return &env{t: t, sys: sys, clk: clk}
}

// until steps the system until cond holds (at most max events).
func (e *env) until(what string, max int, cond func() bool) {
	e.t.Helper()
	for range max {
		if cond() {
			return
		}
		if !e.sys.Step() {
			break
		}
	}
	if !cond() {
		e.t.Fatalf("never happened: %s", what)
	}
}

func (e *env) spawnPool(cfg Config) (*Pool, actor.Ref) {
	e.t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		e.t.Fatal(err)
	}
	e.until("the pool's Min workers run", 1000, func() bool { return p.Stats().Workers == int64(p.cfg.Scale.Min) })
	return p, ref
}

func (e *env) ask(to actor.Ref, msg any) (any, error) {
	return e.sys.Ask(context.Background(), to, msg)
}

// fn is an actor made of a function.
type fn func(c *actor.Context, msg any) (any, error)

func (f fn) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// who answers with the worker's ref.
func who() actor.Actor {
	return fn(func(c *actor.Context, msg any) (any, error) { return c.Self(), nil })
}

// driver asks the pool for each message of a batch, from an actor, without
// waiting, and records the answers in order.
type driver struct {
	want    int
	mu      sync.Mutex
	results []error
	values  []any
}

type batch struct {
	to   actor.Ref
	msgs []any
}

// spawnBatch makes the driver spawn the pool on its loop and ask it at
// once, before any other loop has run: the pool's first workers, on other
// loops, have not started yet.
type spawnBatch struct {
	f    actor.Factory
	msgs []any
}

func (d *driver) Receive(c *actor.Context, msg any) (any, error) {
	if sb, ok := msg.(spawnBatch); ok {
		ref, err := c.Spawn(sb.f)
		if err != nil {
			return nil, err
		}
		msg = batch{ref, sb.msgs}
	}
	b := msg.(batch)
	for _, m := range b.msgs {
		d.mu.Lock()
		i := len(d.results)
		d.results, d.values = append(d.results, errPending), append(d.values, nil)
		d.mu.Unlock()
		c.Ask(b.to, m).Then(func(c *actor.Context, v any, err error) {
			d.mu.Lock()
			d.results[i], d.values[i] = err, v
			d.mu.Unlock()
		})
	}
	return nil, nil
}

var errPending = errors.New("pending")

func (d *driver) settled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.results) < d.want {
		return false
	}
	for _, r := range d.results {
		if r == errPending {
			return false
		}
	}
	return true
}

func (e *env) drive(to actor.Ref, msgs ...any) *driver {
	e.t.Helper()
	d := &driver{want: len(msgs)}
	ref, err := e.sys.Spawn(context.Background(), func() actor.Actor { return d }, actor.OnLoop(0))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sys.Send(ref, batch{to, msgs}); err != nil {
		e.t.Fatal(err)
	}
	e.until("every ask answered", 10000, d.settled)
	return d
}

func TestConfigErrors(t *testing.T) {
	ok := func() actor.Actor { return who() }
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "New: nil"},
		{Config{New: ok, Strategy: 9}, "unknown strategy 9"},
		{Config{New: ok, Name: strings.Repeat("x", 129)}, "Name: 129 bytes"},
		{Config{New: ok, Remote: &RemoteWorkers{Kind: "k"}}, "Remote.Cluster: nil"},
		{Config{New: ok, MaxPending: HardMaxPending + 1}, "MaxPending"},
		{Config{New: ok, SampleEvery: -1}, "SampleEvery"},
		{Config{New: ok, QueueCapacity: -1}, "QueueCapacity -1"},
		{Config{New: ok, Scale: ScaleConfig{Min: 2, Max: 1}}, "Max 1 is below Min 2"},
		{Config{New: ok, Scale: ScaleConfig{Min: 1, Max: HardMax + 1}}, "hard cap"},
		{Config{New: ok, Scale: ScaleConfig{UpLatency: 100 * time.Millisecond}}, "UpLatency 100ms must be above SampleEvery 100ms"},
		{Config{New: ok, Scale: ScaleConfig{UpLatency: -time.Second}}, "must not be negative"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want ErrBadConfig saying %q", tc.cfg, err, tc.want)
		}
	}
}

// Round-robin hands messages to the workers in turn; the worker answers.
func TestRoundRobin(t *testing.T) {
	e := newEnv(t, 2)
	p, pool := e.spawnPool(Config{New: who, Scale: ScaleConfig{Min: 3, Max: 3}})
	seen := map[actor.Ref]int{}
	var order []actor.Ref
	for range 9 {
		v, err := e.ask(pool, "hi")
		if err != nil {
			t.Fatal(err)
		}
		seen[v.(actor.Ref)]++
		order = append(order, v.(actor.Ref))
	}
	if len(seen) != 3 {
		t.Fatalf("answers from %d workers, want 3", len(seen))
	}
	for i := 3; i < 9; i++ {
		if order[i] != order[i-3] {
			t.Fatalf("answer %d from %v, want %v (in turn)", i, order[i], order[i-3])
		}
	}
	if st := p.Stats(); st.Routed != 9 || st.Workers != 3 || st.Started != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// holder keeps the pool's deferred replies of "hold" messages until told,
// and answers the others at once with its ref.
type holder struct {
	p    *Pool
	mu   *sync.Mutex
	held *[]*Reply
}

func (h holder) Receive(c *actor.Context, msg any) (any, error) {
	if msg == "hold" {
		r := h.p.Defer(c)
		h.mu.Lock()
		*h.held = append(*h.held, r)
		h.mu.Unlock()
		return nil, nil
	}
	return c.Self(), nil
}

type holders struct {
	p    *Pool
	mu   sync.Mutex
	held []*Reply
}

func (hs *holders) factory() actor.Actor { return holder{hs.p, &hs.mu, &hs.held} }

func (hs *holders) release() {
	hs.mu.Lock()
	held := hs.held
	hs.held = nil
	hs.mu.Unlock()
	for _, r := range held {
		r.Reply("released", nil)
	}
}

// newHeld spawns a pool of holders; the factory needs the pool for Defer.
func (e *env) newHeld(cfg Config) (*holders, *Pool, actor.Ref) {
	hs := &holders{}
	cfg.New = func() actor.Actor { return hs.factory() }
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	hs.p = p
	ref, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		e.t.Fatal(err)
	}
	e.until("the pool's Min workers run", 1000, func() bool { return p.Stats().Workers == int64(cfg.Scale.Min) })
	return hs, p, ref
}

// Least-loaded sends new messages away from a worker that is busy with a
// deferred one; round-robin would not.
func TestLeastLoaded(t *testing.T) {
	e := newEnv(t, 2)
	hs, _, pool := e.newHeld(Config{Strategy: LeastLoaded, Scale: ScaleConfig{Min: 2, Max: 2}})
	d := &driver{want: 1}
	dref, _ := e.sys.Spawn(context.Background(), func() actor.Actor { return d }, actor.OnLoop(0))
	_ = e.sys.Send(dref, batch{pool, []any{"hold"}})
	e.until("the hold is held", 1000, func() bool { hs.mu.Lock(); defer hs.mu.Unlock(); return len(hs.held) == 1 })
	busy := map[actor.Ref]bool{}
	var free actor.Ref
	for range 6 {
		v, err := e.ask(pool, "ping")
		if err != nil {
			t.Fatal(err)
		}
		if !free.IsZero() && v != free {
			t.Fatalf("ping answered by %v, want always the free worker %v", v, free)
		}
		free = v.(actor.Ref)
		busy[free] = true
	}
	hs.release()
	e.until("the hold is answered", 1000, d.settled)
	if d.results[0] != nil || d.values[0] != "released" {
		t.Fatalf("held ask = %v, %v", d.values[0], d.results[0])
	}
}

type keyed string

func (k keyed) Key() string { return string(k) }

// One key, one worker, as long as the workers stay; an unkeyed message is
// refused with ErrNoKey.
func TestConsistentHash(t *testing.T) {
	e := newEnv(t, 2)
	p, pool := e.spawnPool(Config{New: who, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 4, Max: 4}})
	first := map[keyed]any{}
	workers := map[any]bool{}
	for round := range 3 {
		for k := range 20 {
			key := keyed(fmt.Sprint("user-", k))
			v, err := e.ask(pool, key)
			if err != nil {
				t.Fatal(err)
			}
			if round == 0 {
				first[key] = v
				workers[v] = true
			} else if first[key] != v {
				t.Fatalf("key %s went to %v, then to %v", key, first[key], v)
			}
		}
	}
	if len(workers) < 3 {
		t.Fatalf("20 keys over %d of 4 workers", len(workers))
	}
	if _, err := e.ask(pool, 42); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unkeyed message: err %v, want ErrNoKey", err)
	}
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("refused %d, want 1", st.Refused)
	}
}

// A pool with MaxPending messages in flight refuses the next with an error
// matching actor.ErrQueueFull, and takes messages again once they are done.
func TestFullPoolRefuses(t *testing.T) {
	e := newEnv(t, 2)
	hs, p, pool := e.newHeld(Config{MaxPending: 3, Scale: ScaleConfig{Min: 2, Max: 2}})
	d := e.driveAsync(pool, "hold", "hold", "hold", "hold", "hold")
	e.until("three held", 1000, func() bool { hs.mu.Lock(); defer hs.mu.Unlock(); return len(hs.held) == 3 })
	e.until("two refused", 1000, func() bool { return p.Stats().Refused == 2 })
	hs.release()
	e.until("every ask answered", 1000, d.settled)
	full := 0
	for i, err := range d.results {
		switch {
		case err == nil:
		case errors.Is(err, actor.ErrQueueFull) && errors.Is(err, ErrFull) && strings.Contains(err.Error(), "3 messages in flight"):
			full++
		default:
			t.Fatalf("ask %d: %v", i, err)
		}
	}
	if full != 2 {
		t.Fatalf("%d refused as full, want 2", full)
	}
	if v, err := e.ask(pool, "ping"); err != nil {
		t.Fatalf("after the release: %v, %v", v, err)
	}
}

func (e *env) driveAsync(to actor.Ref, msgs ...any) *driver {
	e.t.Helper()
	d := &driver{want: len(msgs)}
	ref, err := e.sys.Spawn(context.Background(), func() actor.Actor { return d }, actor.OnLoop(0))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sys.Send(ref, batch{to, msgs}); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// flaky panics on "boom" and, while fail > 0, fails its starts.
type flaky struct{ fail *int }

func (f flaky) Start(c *actor.Context) error {
	if *f.fail > 0 {
		*f.fail--
		return errors.New("cannot start")
	}
	return nil
}

func (f flaky) Receive(c *actor.Context, msg any) (any, error) {
	if msg == "boom" {
		panic("boom")
	}
	return c.Self(), nil
}

// A worker that crashes is restarted in place: the message that crashed it
// fails with a *CrashError, the ones queued behind it reach the new
// instance.
func TestCrashRestartsInPlace(t *testing.T) {
	e := newEnv(t, 1)
	fail := 0
	p, pool := e.spawnPool(Config{New: func() actor.Actor { return flaky{&fail} }})
	d := e.drive(pool, "a", "boom", "b", "c")
	for i, err := range d.results {
		if (i == 1) != (err != nil) {
			t.Fatalf("ask %d: err %v", i, err)
		}
	}
	var ce *actor.CrashError
	if !errors.As(d.results[1], &ce) || !errors.Is(d.results[1], actor.ErrCrashed) {
		t.Fatalf("the crashing ask: %v, want a *CrashError", d.results[1])
	}
	if d.values[0] != d.values[3] {
		t.Fatalf("answers from %v and %v: the restarted worker should keep its ref", d.values[0], d.values[3])
	}
	e.until("the restart is acknowledged", 1000, func() bool { return p.Stats().Restarts == 1 })
	st := p.Stats()
	if st.Crashes != 1 || st.Restarts != 1 || st.Dropped != 0 || st.Started != 1 || st.Workers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A worker whose restart fails ends: the asks queued behind the crash fail
// with actor.ErrDead and are counted as dropped; a new worker replaces it.
func TestWorkerLostFailsItsAsks(t *testing.T) {
	e := newEnv(t, 1)
	fail := 0
	p, pool := e.spawnPool(Config{New: func() actor.Actor { return flaky{&fail} }})
	fail = 1 // the restart after the crash fails
	d := e.drive(pool, "boom", "b", "c", "d")
	if !errors.Is(d.results[0], actor.ErrCrashed) {
		t.Fatalf("the crashing ask: %v", d.results[0])
	}
	for i := 1; i < 4; i++ {
		if !errors.Is(d.results[i], actor.ErrDead) {
			t.Fatalf("ask %d queued behind the crash: %v, want actor.ErrDead", i, d.results[i])
		}
	}
	e.until("a new worker", 1000, func() bool { return p.Stats().Started == 2 && p.Stats().Workers == 1 })
	st := p.Stats()
	if st.Crashes != 1 || st.Restarts != 0 || st.Dropped != 3 {
		t.Fatalf("stats %+v, want 1 crash, no restart, 3 dropped", st)
	}
	if _, err := e.ask(pool, "e"); err != nil {
		t.Fatalf("the replacement: %v", err)
	}
}

// A new worker goes to the least loaded loop.
func TestPlacement(t *testing.T) {
	e := newEnv(t, 3)
	busy := map[int]int{0: 50, 1: 0, 2: 10}
	stats := func() []actor.Stats {
		st := e.sys.Stats()
		for i := range st {
			st[i].Inbound += busy[i]
		}
		return st
	}
	p, pool := e.spawnPool(Config{New: who, LoopStats: stats, Scale: ScaleConfig{Min: 12, Max: 12}})
	_ = p
	perLoop := map[int]int{}
	for range 12 {
		v, err := e.ask(pool, "where")
		if err != nil {
			t.Fatal(err)
		}
		perLoop[v.(actor.Ref).Loop()]++
	}
	// Loop 1 takes workers until it is as loaded as loop 2 (its queued
	// spawns count too), then loops 1 and 2 share the rest; loop 0, the
	// busiest, gets none.
	if perLoop[0] != 0 || perLoop[2] == 0 || perLoop[1] <= perLoop[2] {
		t.Fatalf("workers per loop %v, want none on 0, most on 1, some on 2", perLoop)
	}
	// Without load the workers spread evenly.
	busy = map[int]int{}
	_, pool = e.spawnPool(Config{New: who, LoopStats: stats, Scale: ScaleConfig{Min: 6, Max: 6}})
	clear(perLoop)
	for range 6 {
		v, _ := e.ask(pool, "where")
		perLoop[v.(actor.Ref).Loop()]++
	}
	if perLoop[0] != 2 || perLoop[1] != 2 || perLoop[2] != 2 {
		t.Fatalf("workers per loop %v without load, want 2 each", perLoop)
	}
}

// timedWorker is a worker whose every job takes cost of virtual time, one at a
// time: its backlog is its in-flight load.
type timedWorker struct {
	p     *Pool
	cost  time.Duration
	queue []*Reply
}

type job struct{}
type jobDone struct{}

func (w *timedWorker) Receive(c *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case job:
		w.queue = append(w.queue, w.p.Defer(c))
		if len(w.queue) == 1 {
			c.After(w.cost, jobDone{})
		}
	case jobDone:
		w.queue[0].Reply("done", nil)
		w.queue = w.queue[1:]
		if len(w.queue) > 0 {
			c.After(w.cost, jobDone{})
		}
	}
	return nil, nil
}

// load asks the pool for a job every period while its rate function says
// so, and counts the answers.
type load struct {
	pool           actor.Ref
	period         time.Duration
	start          time.Time
	on             func(at time.Duration) bool
	sent, ok, fail int
}

type loadTick struct{}

func (l *load) Start(c *actor.Context) error {
	l.start = c.Now()
	c.Every(l.period, loadTick{})
	return nil
}

func (l *load) Receive(c *actor.Context, msg any) (any, error) {
	if l.on(c.Now().Sub(l.start)) {
		l.sent++
		c.AskTimeout(l.pool, job{}, 0).Then(func(c *actor.Context, v any, err error) {
			if err != nil {
				l.fail++
			} else {
				l.ok++
			}
		})
	}
	return nil, nil
}

// scalingRun runs a pool of timed workers (10 ms a job) with scale, under
// a load of one job per period while on says so, for span of a fake
// clock, and returns its scale events, the most workers it had, its
// counters and the load's. Every event must name the pool and a reason,
// and the counters must agree with the events.
func scalingRun(t *testing.T, scale ScaleConfig, period time.Duration, on func(time.Duration) bool, span time.Duration) (ups, downs []ScaleEvent, maxWorkers int64, st Stats, l *load) {
	t.Helper()
	e := newEnv(t, 4)
	bus := event.New(event.Config{})
	defer bus.Close()
	events, err := event.Subscribe[ScaleEvent](bus, event.Buffer(64))
	if err != nil {
		t.Fatal(err)
	}
	var p *Pool
	p, err = New(Config{
		Name: "jobs", Strategy: LeastLoaded, Bus: bus, Logger: quiet, LoopStats: e.sys.Stats,
		New:   func() actor.Actor { return &timedWorker{p: p, cost: 10 * time.Millisecond} },
		Scale: scale,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	l = &load{pool: pool, period: period, on: on}
	if _, err := e.sys.Spawn(context.Background(), func() actor.Actor { return l }, actor.OnLoop(0)); err != nil {
		t.Fatal(err)
	}
	for e.clk.Now().Before(t0.Add(span)) {
		if !e.sys.Step() {
			break
		}
		maxWorkers = max(maxWorkers, p.Stats().Workers)
	}
	for len(events.Out()) > 0 {
		ev := <-events.Out()
		if ev.Direction == Up {
			ups = append(ups, ev)
		} else {
			downs = append(downs, ev)
			if len(ups) > 0 && ev.Time.Before(ups[len(ups)-1].Time) {
				t.Fatalf("a down before the last up: %+v", ev)
			}
		}
		if ev.Pool != "jobs" || ev.Reason == "" {
			t.Fatalf("event %+v", ev)
		}
	}
	st = p.Stats()
	t.Logf("ups %v\ndowns %v\nstats %+v, load sent %d ok %d fail %d", ups, downs, st, l.sent, l.ok, l.fail)
	if uint64(len(ups)) != st.ScaleUps || uint64(len(downs)) != st.ScaleDowns {
		t.Fatalf("events %d/%d, counters %d/%d", len(ups), len(downs), st.ScaleUps, st.ScaleDowns)
	}
	if l.fail != 0 || l.ok != l.sent || st.Refused != 0 || st.Dropped != 0 {
		t.Fatalf("jobs sent %d ok %d failed %d, refused %d dropped %d: want all answered", l.sent, l.ok, l.fail, st.Refused, st.Dropped)
	}
	return ups, downs, maxWorkers, st, l
}

// A load step grows the pool from Min to Max (a worker serves 100 jobs/s,
// the step offers 350/s), and once the load is gone the pool shrinks back to
// Min, with one scale event per step of the worker count and no flapping.
func TestScalesWithLoad(t *testing.T) {
	// 350 jobs/s from 1 s to 21 s (20 s), 50 jobs/s before, none after.
	ups, downs, maxWorkers, st, _ := scalingRun(t, ScaleConfig{Min: 1, Max: 4, Up: 4, Down: 1, UpAfter: 500 * time.Millisecond,
		IdleAfter: 3 * time.Second, Cooldown: 2 * time.Second}, time.Second/350, func(at time.Duration) bool {
		switch {
		case at < time.Second:
			return at%(7*(time.Second/350)) == 0 // about 50/s
		case at < 21*time.Second:
			return true
		}
		return false
	}, 60*time.Second)
	if maxWorkers != 4 {
		t.Fatalf("at most %d workers under the step, want Max 4", maxWorkers)
	}
	if st.Workers != 1 {
		t.Fatalf("%d workers after the load, want Min 1", st.Workers)
	}
	if len(ups) == 0 || len(ups) > 3 || len(downs) == 0 || len(downs) > 3 {
		t.Fatalf("%d ups, %d downs: want 1 to 3 each (Min 1 to Max 4 and back)", len(ups), len(downs))
	}
}

// A load that one worker cannot keep up with but that never holds Up
// messages in flight per worker (Up is out of reach here) grows the pool
// on the time in flight alone: 150 jobs/s against workers serving 100/s
// each (UpLatency 200 ms); two workers carry it, and once the load ends the pool shrinks
// back, every job answered.
func TestScalesOnTimeInFlight(t *testing.T) {
	ups, downs, maxWorkers, st, _ := scalingRun(t, ScaleConfig{Min: 1, Max: 4, Up: 1000, Down: 1, UpAfter: 500 * time.Millisecond,
		IdleAfter: 3 * time.Second, Cooldown: 2 * time.Second, UpLatency: 200 * time.Millisecond},
		time.Second/150, func(at time.Duration) bool { return at < 20*time.Second }, 40*time.Second)
	if len(ups) != 1 || !strings.Contains(ups[0].Reason, "time in flight") || ups[0].To != 2 {
		t.Fatalf("ups %+v: want one, to 2 workers, on the time in flight", ups)
	}
	if maxWorkers != 2 || st.Workers != 1 || len(downs) != 1 {
		t.Fatalf("at most %d workers, %d at the end, %d downs: want 2, back to 1 in one event", maxWorkers, st.Workers, len(downs))
	}
}

// gated is a worker whose start waits for its gate to open: its loop is
// blocked meanwhile (a real system, not a manual one).
type gated struct{ gate chan struct{} }

func (g gated) Start(c *actor.Context) error { <-g.gate; return nil }

func (g gated) Receive(c *actor.Context, msg any) (any, error) { return c.Self(), nil }

// Messages that arrive while the first workers start wait for them; if
// every start fails they fail with ErrNoWorker.
func TestHeldUntilWorkersStart(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Logger: quiet})
	gate := make(chan struct{})
	var open sync.Once
	defer func() {
		open.Do(func() { close(gate) }) // a failed test must not leave a loop blocked
		_ = sys.Shutdown(context.Background())
	}()
	onLoop1 := func() []actor.Stats { st := sys.Stats(); st[0].Inbound += 100; return st }
	p, err := New(Config{New: func() actor.Actor { return gated{gate} }, LoopStats: onLoop1, Scale: ScaleConfig{Min: 2, Max: 2}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := sys.Spawn(ctx, p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		v   any
		err error
	}
	answers := make(chan answer, 3)
	for range 3 {
		go func() {
			v, err := sys.Ask(ctx, pool, "hi")
			answers <- answer{v, err}
		}()
	}
	for p.Stats().Held < 3 { // polled with the test's deadline
		if ctx.Err() != nil {
			t.Fatalf("the asks were not held: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	open.Do(func() { close(gate) })
	for range 3 {
		a := <-answers
		if a.err != nil || a.v.(actor.Ref).Loop() != 1 {
			t.Fatalf("held ask: %v, %v", a.v, a.err)
		}
	}
	if st := p.Stats(); st.Routed != 3 || st.Workers != 2 {
		t.Fatalf("stats %+v", st)
	}
	_ = sys.Stop(ctx, pool)

	e := newEnv(t, 3)
	busy0 := func() []actor.Stats { st := e.sys.Stats(); st[0].Inbound += 100; return st }
	// Workers that cannot start.
	p, err = New(Config{New: func() actor.Actor { fail := 1 << 30; return flaky{&fail} }, LoopStats: busy0, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{want: 1}
	dref, _ := e.sys.Spawn(context.Background(), func() actor.Actor { return d }, actor.OnLoop(0))
	if err := e.sys.Send(dref, spawnBatch{p.Factory(), []any{"a"}}); err != nil {
		t.Fatal(err)
	}
	e.until("the ask answered", 1000, d.settled)
	if !errors.Is(d.results[0], ErrNoWorker) || !strings.Contains(d.results[0].Error(), "cannot start") {
		t.Fatalf("ask to a pool whose worker cannot start: %v, want ErrNoWorker with the cause", d.results[0])
	}
	if st := p.Stats(); st.StartFailed != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// parent supervises one pool: it restarts it in place when it crashes.
type parent struct {
	f    actor.Factory
	pool actor.Ref
}

func (pa *parent) Start(c *actor.Context) (err error) {
	pa.pool, err = c.Spawn(pa.f, actor.Supervised())
	return err
}

func (pa *parent) Receive(c *actor.Context, msg any) (any, error) {
	if cr, ok := msg.(actor.Crashed); ok {
		return nil, c.Restart(cr.Child)
	}
	return pa.pool, nil
}

// A pool restarted in place after a crash stops the workers its
// predecessor left and starts fresh ones; a pool that stops stops its
// workers.
func TestPoolRestartAndStop(t *testing.T) {
	e := newEnv(t, 2)
	p, err := New(Config{New: who, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 2, Max: 2}, Logger: quiet,
		Key: func(msg any) (uint64, bool) {
			if msg == "crash the pool" {
				panic("bad key function")
			}
			return StringKey(fmt.Sprint(msg)), true
		}})
	if err != nil {
		t.Fatal(err)
	}
	pa := &parent{f: p.Factory()}
	if _, err := e.sys.Spawn(context.Background(), func() actor.Actor { return pa }, actor.OnLoop(0)); err != nil {
		t.Fatal(err)
	}
	pool := pa.pool
	workersOf := func() map[actor.Ref]bool {
		out := map[actor.Ref]bool{}
		for i := range 40 {
			v, err := e.ask(pool, i)
			if err != nil {
				t.Fatal(err)
			}
			out[v.(actor.Ref)] = true
		}
		return out
	}
	e.until("two workers", 1000, func() bool { return p.Stats().Workers == 2 })
	old := workersOf()
	if len(old) != 2 {
		t.Fatalf("%d workers answered, want 2", len(old))
	}
	if _, err := e.ask(pool, "crash the pool"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("crashing the pool: %v", err)
	}
	e.until("two new workers", 1000, func() bool { return p.Stats().Workers == 2 && p.Stats().Started == 4 })
	for w := range old {
		e.until("the old worker stops", 1000, func() bool { _, err := e.ask(w, "x"); return errors.Is(err, actor.ErrDead) })
	}
	now := workersOf()
	for w := range now {
		if old[w] {
			t.Fatalf("worker %v of the crashed pool still answers for the new one", w)
		}
	}
	if err := e.sys.Stop(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	for w := range now {
		e.until("the worker stops with its pool", 1000, func() bool { _, err := e.ask(w, "x"); return errors.Is(err, actor.ErrDead) })
	}
	if st := p.Stats(); st.Workers != 0 {
		t.Fatalf("stats after the stop %+v", st)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, 1)
	p, pool := e.spawnPool(Config{Name: "m", New: who})
	if _, err := e.ask(pool, "x"); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range p.Metrics() {
		if len(f.Samples) != 1 || f.Samples[0].Labels[0] != [2]string{"pool", "m"} {
			t.Fatalf("family %+v", f)
		}
		got[f.Name] = f.Samples[0].Value
	}
	if got["actord_pool_routed_total"] != 1 || got["actord_pool_workers"] != 1 || len(got) != 13 {
		t.Fatalf("metrics %v", got)
	}
}

// quitter answers with its ref, and stops itself on a quitKey.
type quitKey string

func (k quitKey) Key() string { return string(k) }

func quitter() actor.Actor {
	return fn(func(c *actor.Context, msg any) (any, error) {
		if _, ok := msg.(quitKey); ok {
			return nil, c.Stop(c.Self(), errors.New("quit"))
		}
		return c.Self(), nil
	})
}

// A worker that ends is replaced under its ID: the keys of the others never
// move, and its own keys all go to its replacement.
func TestReplacementKeepsKeys(t *testing.T) {
	e := newEnv(t, 2)
	p, pool := e.spawnPool(Config{New: quitter, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 3, Max: 3}})
	owner := func() map[string]actor.Ref {
		out := map[string]actor.Ref{}
		for k := range 60 {
			key := fmt.Sprint("k", k)
			v, err := e.ask(pool, keyed(key))
			if err != nil {
				t.Fatal(err)
			}
			out[key] = v.(actor.Ref)
		}
		return out
	}
	before := owner()
	victim := before["k0"]
	if _, err := e.ask(pool, quitKey("k0")); err != nil {
		t.Fatal(err)
	}
	e.until("the replacement", 1000, func() bool { return p.Stats().Started == 4 && p.Stats().Workers == 3 })
	after := owner()
	var repl actor.Ref
	for k, w := range before {
		switch {
		case w != victim && after[k] != w:
			t.Fatalf("key %s moved from %v to %v when another worker was replaced", k, w, after[k])
		case w == victim && repl.IsZero():
			repl = after[k]
		case w == victim && after[k] != repl:
			t.Fatalf("the lost worker's keys went to %v and %v", repl, after[k])
		}
	}
	if repl == victim || repl.IsZero() {
		t.Fatalf("replacement %v", repl)
	}
}

// quickQuitter ends as soon as it has started.
type quickQuitter struct{}

func (quickQuitter) Start(c *actor.Context) error { return c.Send(c.Self(), "quit") }

func (quickQuitter) Receive(c *actor.Context, msg any) (any, error) {
	return nil, c.Stop(c.Self(), errors.New("quit"))
}

// A worker that ends as soon as it starts is replaced at the sampling pace,
// not in a tight loop.
func TestReplacementIsPaced(t *testing.T) {
	e := newEnv(t, 1)
	p, err := New(Config{Logger: quiet, SampleEvery: 100 * time.Millisecond, New: func() actor.Actor { return quickQuitter{} }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0)); err != nil {
		t.Fatal(err)
	}
	end := e.clk.Now().Add(time.Second)
	for i := 0; i < 20000 && e.clk.Now().Before(end); i++ {
		e.sys.Step()
	}
	// About one start per 50-100 ms (the immediate replacement and the Min
	// rule each at most once per sample), not one per few events.
	if st := p.Stats(); st.Started > 25 || e.clk.Now().Before(end) {
		t.Fatalf("%d workers started by %v of virtual time, want at most 25 in 1 s", st.Started, e.clk.Now().Sub(t0))
	}
}

// A pool as a supervisor's child: a crash of the pool is restarted by the
// supervisor, with fresh workers, and the supervisor's shutdown stops the
// workers.
func TestUnderSupervisor(t *testing.T) {
	e := newEnv(t, 2)
	p, err := New(Config{New: who, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 2, Max: 2}, Logger: quiet,
		Key: func(msg any) (uint64, bool) {
			if msg == "crash the pool" {
				panic("bad key function")
			}
			return StringKey(fmt.Sprint(msg)), true
		}})
	if err != nil {
		t.Fatal(err)
	}
	sup, err := e.sys.Spawn(context.Background(), supervisor.New(supervisor.Spec{Logger: quiet, MaxR: 5,
		Children: []supervisor.ChildSpec{supervisor.Worker("pool", p.Factory())}}), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.ask(sup, supervisor.WhichChildren{})
	if err != nil {
		t.Fatal(err)
	}
	pool := v.([]supervisor.ChildInfo)[0].Ref
	e.until("two workers", 1000, func() bool { return p.Stats().Workers == 2 })
	w, err := e.ask(pool, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ask(pool, "crash the pool"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("crashing the pool: %v", err)
	}
	e.until("two new workers", 1000, func() bool { return p.Stats().Workers == 2 && p.Stats().Started == 4 })
	e.until("the old worker stops", 1000, func() bool { _, err := e.ask(w.(actor.Ref), "x"); return errors.Is(err, actor.ErrDead) })
	w, err = e.ask(pool, "x")
	if err != nil {
		t.Fatalf("the restarted pool: %v", err)
	}
	if _, err := e.ask(sup, supervisor.Shutdown{}); err != nil {
		t.Fatal(err)
	}
	e.until("the worker stops with the tree", 1000, func() bool { _, err := e.ask(w.(actor.Ref), "x"); return errors.Is(err, actor.ErrDead) })
}
