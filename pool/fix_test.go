package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/loop"

	"github.com/actord/actord/actor"
)

func (p *Pool) liveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// panicky panics in its Start.
type panicky struct{}

func (panicky) Start(c *actor.Context) error                   { panic("cannot start") }
func (panicky) Receive(c *actor.Context, msg any) (any, error) { return nil, nil }

// Workers whose start fails (with an error or a panic) and that are
// replaced again and again leave nothing in the pool's table of live
// workers.
func TestFailedStartsAreNotTracked(t *testing.T) {
	for name, f := range map[string]actor.Factory{
		"error": func() actor.Actor { fail := 1; return flaky{&fail} },
		"panic": func() actor.Actor { return panicky{} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			p, err := New(Config{Logger: quiet, New: f})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0)); err != nil {
				t.Fatal(err)
			}
			end := e.clk.Now().Add(2 * time.Second)
			for i := 0; i < 100000 && e.clk.Now().Before(end); i++ {
				e.sys.Step()
			}
			if st := p.Stats(); st.StartFailed < 5 {
				t.Fatalf("only %d failed starts", st.StartFailed)
			}
			if n := p.liveCount(); n != 0 {
				t.Fatalf("%d workers tracked after %d failed starts, want 0", n, p.Stats().StartFailed)
			}
		})
	}
}

// named answers with its name ("pool/ID"), stops itself on a quitKey, and
// fails its start when its start number is in fail.
type named struct {
	n    int
	fail func(n int) bool
}

func (w named) Start(c *actor.Context) error {
	if w.fail(w.n) {
		return errors.New("cannot start")
	}
	return nil
}

func (w named) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(quitKey); ok {
		return nil, c.Stop(c.Self(), errors.New("quit"))
	}
	return c.Name(), nil
}

// A worker that ends is replaced under its own ID even when a smaller ID
// is free (here that of a worker whose start failed), so that its keys come
// back to the replacement and no other key moves.
func TestReplacementTakesTheEndedID(t *testing.T) {
	e := newEnv(t, 1)
	starts := 0
	p, err := New(Config{Logger: quiet, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 3, Max: 3},
		New: func() actor.Actor {
			starts++
			// The second start fails, and those after the replacement: the
			// Min rule's later starts do not change the ring.
			return named{starts, func(n int) bool { return n == 2 || n >= 5 }}
		}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	e.until("two started, one failed", 1000, func() bool { return p.Stats().Started == 2 && p.Stats().StartFailed == 1 })
	owner := func() map[string]string {
		out := map[string]string{}
		for k := range 60 {
			key := fmt.Sprint("k", k)
			v, err := e.ask(pool, keyed(key))
			if err != nil {
				t.Fatal(err)
			}
			out[key] = v.(string)
		}
		return out
	}
	before := owner()
	var victimKey string
	for k, w := range before {
		if w == "pool/3" {
			victimKey = k
		}
	}
	if victimKey == "" {
		t.Fatalf("no key on pool/3: %v", before)
	}
	if _, err := e.ask(pool, quitKey(victimKey)); err != nil {
		t.Fatal(err)
	}
	e.until("the replacement", 1000, func() bool { return p.Stats().Started == 3 && p.Stats().Workers == 2 })
	after := owner()
	for k, w := range before {
		if after[k] != w {
			t.Fatalf("key %s moved from %s to %s: the replacement should take the ended worker's ID", k, w, after[k])
		}
	}
}

// With ConsistentHash, the messages that arrive while the first workers
// start wait for all the starts, then go to their keys' owners: each key
// runs on one worker, the same as for the messages after. Here the first
// worker starts well before the others.
func TestHeldGoToTheirKeysOwner(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Logger: quiet})
	gates := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	var opened [3]sync.Once
	open := func(i int) { opened[i].Do(func() { close(gates[i]) }) }
	defer func() {
		for i := range gates {
			open(i) // a failed test must not leave a loop blocked
		}
		_ = sys.Shutdown(context.Background())
	}()
	onLoop1 := func() []actor.Stats { st := sys.Stats(); st[0].Inbound += 100; return st }
	var made atomic.Int32
	p, err := New(Config{Strategy: ConsistentHash, LoopStats: onLoop1, Scale: ScaleConfig{Min: 3, Max: 3}, Logger: quiet,
		New: func() actor.Actor { return gated{gates[made.Add(1)-1]} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := sys.Spawn(ctx, p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	answers := make([]any, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = sys.Ask(ctx, pool, keyed(fmt.Sprint("k", i)))
		}()
	}
	poll := func(what string, cond func() bool) { // polled with the test's deadline
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("never happened: %s: %+v", what, p.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	poll("asks held", func() bool { return p.Stats().Held == n })
	open(0)
	poll("the first worker started", func() bool { return p.Stats().Workers == 1 })
	open(1)
	open(2)
	wg.Wait()
	workers := map[any]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("held ask %d: %v", i, errs[i])
		}
		workers[answers[i]] = true
		v, err := sys.Ask(ctx, pool, keyed(fmt.Sprint("k", i)))
		if err != nil {
			t.Fatal(err)
		}
		if v != answers[i] {
			t.Fatalf("key k%d: held ask answered by %v, later ones by its owner %v", i, answers[i], v)
		}
	}
	if len(workers) < 2 {
		t.Fatalf("%d held keys answered by %d worker(s): want them spread to their owners", n, len(workers))
	}
	_ = sys.Stop(ctx, pool)
}

// A worker that crashes while many messages are queued for it stashes them
// during its restart, in a stash bounded by its loop's queue capacity: the
// pool keeps at most that many in flight to one worker, refusing the rest
// with ErrFull, so that none is refused by the runtime after the pool
// counted it in flight (it would stay counted for good).
func TestInFlightPerWorkerBoundedByQueueCapacity(t *testing.T) {
	clk := loop.NewFakeClock(t0)
	sys := actor.NewSystem(actor.Config{Loops: 2, Manual: true, Clock: clk, Seed: 1, Logger: quiet, QueueCapacity: 16,
		OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	e := &env{t: t, sys: sys, clk: clk}
	onLoop1 := func() []actor.Stats { st := sys.Stats(); st[0].Inbound += 100; return st }
	fail := 0
	p, pool := e.spawnPool(Config{New: func() actor.Actor { return flaky{&fail} }, LoopStats: onLoop1,
		MaxPending: 1000, QueueCapacity: 16})
	msgs := []any{"boom"}
	for range 12 {
		msgs = append(msgs, "x")
	}
	var ds []*driver
	for range 4 {
		ds = append(ds, e.driveAsync(pool, msgs...))
	}
	e.until("all answered", 100000, func() bool {
		for _, d := range ds {
			if !d.settled() {
				return false
			}
		}
		return true
	})
	full := 0
	for _, d := range ds {
		for i, err := range d.results {
			switch {
			case err == nil, errors.Is(err, actor.ErrCrashed):
			case errors.Is(err, ErrFull) && strings.Contains(err.Error(), "QueueCapacity"):
				full++
			default:
				t.Fatalf("ask %d: %v", i, err)
			}
		}
	}
	if st := p.Stats(); full == 0 || st.Refused != uint64(full) {
		t.Fatalf("%d refused as full, stats %+v: want some, all counted", full, st)
	}
	start := clk.Now()
	e.until("no message left in flight", 100000, func() bool {
		return p.Stats().InFlight == 0 && clk.Now().Sub(start) > time.Second // after a sample
	})
}

// panicOn is a log handler that panics on a record with message msg once
// armed: a way to crash the pool's router where it logs.
type panicOn struct {
	slog.Handler
	msg   string
	armed *atomic.Bool
}

func (h panicOn) Enabled(context.Context, slog.Level) bool { return true }

func (h panicOn) Handle(ctx context.Context, r slog.Record) error {
	if h.armed.Load() && r.Message == h.msg {
		panic("log handler")
	}
	return nil
}

// gatedStart is a worker whose start, if first, waits for the gate of its
// loop, then fails on loop 2.
type gatedStart struct {
	first bool
	gates map[int]chan struct{}
}

func (g gatedStart) Start(c *actor.Context) error {
	if !g.first {
		return nil
	}
	<-g.gates[c.Loop()]
	if c.Loop() == 2 {
		return errors.New("cannot start")
	}
	return nil
}

func (g gatedStart) Receive(c *actor.Context, msg any) (any, error) { return c.Self(), nil }

// Messages held by a router that crashes are answered by its restarted
// instance with ErrRestarted, at once, not lost; a worker the crashed
// instance spawned that finishes its start after the restart does not
// start (nobody would route to it or stop it).
func TestRouterCrashFailsHeldAndStaleStarts(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 3, Watchdog: -1, Logger: quiet})
	gateA, gateB := make(chan struct{}), make(chan struct{})
	var openA, openB sync.Once
	defer func() {
		openA.Do(func() { close(gateA) }) // a failed test must not leave a loop blocked
		openB.Do(func() { close(gateB) })
		_ = sys.Shutdown(context.Background())
	}()
	// One worker on loop 1, one on loop 2 (each start counts as load).
	notLoop0 := func() []actor.Stats { st := sys.Stats(); st[0].Inbound += 100; return st }
	var made atomic.Int32
	armed := &atomic.Bool{}
	p, err := New(Config{LoopStats: notLoop0, Scale: ScaleConfig{Min: 2, Max: 2},
		Logger: slog.New(panicOn{slog.DiscardHandler, "pool: a worker failed to start", armed}),
		New: func() actor.Actor {
			return gatedStart{made.Add(1) <= 2, map[int]chan struct{}{1: gateA, 2: gateB}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// On loop 1, behind the gated start there: answered once it is over.
	probe, err := sys.Spawn(ctx, who, actor.OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	pa := &parent{f: p.Factory()}
	if _, err := sys.Spawn(ctx, func() actor.Actor { return pa }, actor.OnLoop(0)); err != nil {
		t.Fatal(err)
	}
	pool := pa.pool
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := sys.Ask(ctx, pool, "hi")
			errs <- err
		}()
	}
	for p.Stats().Held < n { // polled with the test's deadline
		if ctx.Err() != nil {
			t.Fatalf("the asks were not held: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	armed.Store(true)
	openB.Do(func() { close(gateB) }) // the worker on loop 2 fails: the router crashes logging it
	for range n {
		if err := <-errs; !errors.Is(err, ErrRestarted) {
			t.Fatalf("held ask: %v, want ErrRestarted; stats %+v", err, p.Stats())
		}
	}
	if st := p.Stats(); st.Dropped != n {
		t.Fatalf("stats %+v: want %d dropped", st, n)
	}
	openA.Do(func() { close(gateA) }) // the crashed instance's worker on loop 1 ends its start
	if _, err := sys.Ask(ctx, probe, "after the start"); err != nil {
		t.Fatal(err)
	}
	for p.Stats().Workers != 2 { // polled with the test's deadline
		if ctx.Err() != nil {
			t.Fatalf("the restarted pool has no 2 workers: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if n := p.liveCount(); n != 2 {
		t.Fatalf("%d workers live, want the restarted router's 2 (a stale start ran)", n)
	}
	_ = sys.Stop(ctx, pool)
}

// fakeCluster keeps the remote spawns' callbacks for the test to call.
type fakeCluster struct {
	mu   sync.Mutex
	done []func(actor.Ref, error)
}

func (f *fakeCluster) Spawn(context.Context, string, string, any) (actor.Ref, error) {
	return actor.Ref{}, errors.New("not used")
}

func (f *fakeCluster) Live() []string { return []string{"n1"} }

func (f *fakeCluster) SpawnAsync(_, _ string, _ any, _ time.Duration, done func(actor.Ref, error)) {
	f.mu.Lock()
	f.done = append(f.done, done)
	f.mu.Unlock()
}

func (f *fakeCluster) spawns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.done)
}

// A remote worker whose start ends after its router stopped is stopped by
// the pool's next router: it is not left running unseen.
func TestRemoteOrphanStopped(t *testing.T) {
	e := newEnv(t, 1)
	fc := &fakeCluster{}
	p, err := New(Config{New: who, Logger: quiet, Remote: &RemoteWorkers{Cluster: fc, Kind: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	e.until("a remote spawn", 1000, func() bool { return fc.spawns() == 1 })
	if err := e.sys.Stop(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	// The "remote" worker (an actor of this system) starts only now.
	w, err := e.sys.Spawn(context.Background(), who, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	done := fc.done[0]
	fc.mu.Unlock()
	done(w, nil)
	if _, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0)); err != nil {
		t.Fatal(err)
	}
	e.until("the orphan stopped", 1000, func() bool { _, err := e.ask(w, "x"); return errors.Is(err, actor.ErrDead) })
}
