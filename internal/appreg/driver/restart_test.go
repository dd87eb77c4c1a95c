package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/supervisor"
	pb "go.etcd.io/raft/v3/raftpb"
)

// crashRunner links its instances to the driver and keeps them across the
// driver's instances (as the daemon's runner does); Reset kills them.
type crashRunner struct {
	refs chan actor.Ref
	inst map[string]actor.Ref
}

func (r *crashRunner) Start(c *actor.Context, g appreg.Grant) {
	ref, err := c.Spawn(func() actor.Actor {
		return actorFunc(func(_ *actor.Context, msg any) (any, error) { return msg, nil })
	})
	if err == nil && c.Link(ref) == nil {
		r.inst[g.App] = ref
		r.refs <- ref
	}
}

func (r *crashRunner) Stop(c *actor.Context, app string) {
	if ref, ok := r.inst[app]; ok {
		_ = c.Kill(ref)
		delete(r.inst, app)
	}
}

func (r *crashRunner) Reset(c *actor.Context) {
	for app, ref := range r.inst {
		_ = c.Kill(ref)
		delete(r.inst, app)
	}
}

func (r *crashRunner) Handle(_ *actor.Context, msg any) {
	if msg == "crash" {
		panic("runner bug")
	}
}

// deployX proposes the application "x" until a leader takes it.
func deployX(ctx context.Context, t *testing.T, sys *actor.System, d actor.Ref) {
	t.Helper()
	for {
		_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: "x"}})
		if err == nil {
			return
		}
		if !errors.Is(err, appreg.ErrNoLeader) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestCrashKillsTheOldInstances: a driver that crashes is restarted in
// place by its supervisor (same ref, no Terminate, no exit to its linked
// instances); its new instance resets the Runner before anything else, so
// the instance the old one started is dead before a second one starts.
func TestCrashKillsTheOldInstances(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	r := &crashRunner{refs: make(chan actor.Ref, 8), inst: map[string]actor.Ref{}}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: &appreg.MemStore{},
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sup, err := sys.Spawn(ctx, supervisor.New(supervisor.Spec{MaxR: 3, MaxT: time.Minute, Logger: slog.New(slog.DiscardHandler),
		Children: []supervisor.ChildSpec{{ID: "driver", Start: New(cfg), Shutdown: 5 * time.Second}}}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := sys.Ask(ctx, sup, supervisor.WhichChildren{})
	if err != nil {
		t.Fatal(err)
	}
	d := v.([]supervisor.ChildInfo)[0].Ref
	deployX(ctx, t, sys, d)
	var first actor.Ref
	select {
	case first = <-r.refs:
	case <-ctx.Done():
		t.Fatal("the application was not started")
	}
	if err := sys.Send(d, "crash"); err != nil {
		t.Fatal(err)
	}
	var second actor.Ref
	select {
	case second = <-r.refs:
	case <-ctx.Done():
		t.Fatal("the application was not started again after the driver's restart")
	}
	actx, acancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = sys.Ask(actx, first, "alive?")
	acancel()
	if !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the first instance %v answers (%v) beside the second %v: two instances run", first, err, second)
	}
}

// probe runs a driver and, on its loop, the test's functions with it
// (without its ticks if noTicks).
type probe struct {
	d       *driver
	noTicks bool
}

type probeFn func(c *actor.Context, d *driver) any

func (p *probe) Start(c *actor.Context) error             { return p.d.Start(c) }
func (p *probe) Terminate(c *actor.Context, reason error) { p.d.Terminate(c, reason) }
func (p *probe) Receive(c *actor.Context, msg any) (any, error) {
	if f, ok := msg.(probeFn); ok {
		return f(c, p.d), nil
	}
	if _, ok := msg.(tick); ok && p.noTicks {
		return nil, nil
	}
	return p.d.Receive(c, msg)
}

// TestTickExpiresBeforeItsWrite: a tick that finds the replica with work
// (a write to start) first stops an application whose lease ended: it
// does not wait for the write, nor for the next tick.
func TestTickExpiresBeforeItsWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	r := eventRunner{ev: make(chan string, 64)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: &appreg.MemStore{},
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: New(cfg)().(*driver)} })
	if err != nil {
		t.Fatal(err)
	}
	deployX(ctx, t, sys, p)
	select {
	case e := <-r.ev:
		if e != "start x" {
			t.Fatalf("runner got %q, want start x", e)
		}
	case <-ctx.Done():
		t.Fatal("the application was not started")
	}
	for {
		// On the loop, between two turns: the lease of x ends (as the
		// last reconcile saw it), the replica has work, and a tick comes.
		v, err := sys.Ask(ctx, p, probeFn(func(c *actor.Context, d *driver) any {
			if d.busy {
				return "busy"
			}
			if _, ok := d.running["x"]; !ok {
				return "x not running"
			}
			d.until["x"] = c.Now().Add(-time.Nanosecond)
			if err := d.r.Propose(appreg.Command{Op: appreg.OpDeploy, App: "y"}, c.Now()); err != nil {
				return err.Error()
			}
			if !d.r.HasReady() {
				return "no work"
			}
			_, _ = d.Receive(c, tick{})
			if !d.busy {
				return "the tick started no write"
			}
			if _, ok := d.running["x"]; ok {
				return "x still running"
			}
			return "stopped"
		}))
		if err != nil {
			t.Fatal(err)
		}
		switch v {
		case "stopped":
			return
		case "busy":
			select {
			case <-ctx.Done():
				t.Fatal("the driver stayed busy")
			case <-time.After(time.Millisecond):
			}
		default:
			t.Fatalf("after a tick with a write to start and x's lease ended: %v", v)
		}
	}
}

// TestTerminateDoesNotWaitForAWrite: a driver stopped while its store
// write hangs stops its applications at once, and its stop ends, the
// write still hanging.
func TestTerminateDoesNotWaitForAWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	defer close(st.gate)
	r := eventRunner{ev: make(chan string, 64)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: 5 * time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	deployX(ctx, t, sys, d)
	select {
	case e := <-r.ev:
		if e != "start x" {
			t.Fatalf("runner got %q, want start x", e)
		}
	case <-ctx.Done():
		t.Fatal("the application was not started")
	}
	st.armed.Store(true)
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- sys.Stop(ctx, d) }()
	deadline := time.After(5 * time.Second)
	select {
	case e := <-r.ev:
		if e != "stop x" {
			t.Fatalf("runner got %q, want stop x", e)
		}
	case <-deadline:
		t.Fatal("the application was not stopped while the write hangs")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-deadline:
		t.Fatal("the driver's stop waits for the write")
	}
}

// TestStaleInstanceDoesNotWrite: once a newer instance of a driver has
// loaded the Store, a write of an older one (a job still queued on the
// pool when it ended, whose Terminate does not wait for it) writes
// nothing.
func TestStaleInstanceDoesNotWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &countStore{}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: eventRunner{ev: make(chan string, 64)}, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := New(cfg)
	old, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: f().(*driver), noTicks: true} })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: f().(*driver), noTicks: true} }); err != nil {
		t.Fatal(err)
	}
	v, err := sys.Ask(ctx, old, probeFn(func(c *actor.Context, d *driver) any {
		// A write the old instance still has to make.
		now := c.Now()
		for i := 0; i < 1000 && !d.r.HasReady(); i++ {
			now = now.Add(10 * time.Millisecond)
			d.r.Tick(now)
		}
		if !d.r.HasReady() {
			return errors.New("nothing to write")
		}
		before := st.saves.Load()
		_, err := d.ready(d.r)
		if n := st.saves.Load() - before; n != 0 {
			return fmt.Errorf("%d writes (%v)", n, err)
		}
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := v.(error); !errors.Is(err, errStale) {
		t.Fatalf("the older instance's write: %v, want errStale and no write", v)
	}
}

// countStore counts Saves.
type countStore struct {
	appreg.MemStore
	saves atomic.Int64
}

func (s *countStore) Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error {
	s.saves.Add(1)
	return s.MemStore.Save(hs, snap, ents)
}

// TestStartBoundsItsWaitForAnOldWrite: a new instance's Start waits for a
// write of an earlier one still under way, but not for ever (a hanging
// disk must not hold its loop): it fails with ErrNoReplica.
func TestStartBoundsItsWaitForAnOldWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	defer close(st.gate)
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: eventRunner{ev: make(chan string, 64)}, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := New(cfg)
	old, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: f().(*driver), noTicks: true} })
	if err != nil {
		t.Fatal(err)
	}
	// The old instance's write hangs (as on the pool: off its loop).
	if _, err := sys.Ask(ctx, old, probeFn(func(c *actor.Context, d *driver) any {
		now := c.Now()
		for i := 0; i < 1000 && !d.r.HasReady(); i++ {
			now = now.Add(10 * time.Millisecond)
			d.r.Tick(now)
		}
		st.armed.Store(true)
		r := d.r
		go func() { _, _ = d.ready(r) }()
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	defer func(w time.Duration) { storeWait = w }(storeWait)
	storeWait = 50 * time.Millisecond
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	_, err = sys.Spawn(sctx, func() actor.Actor { return &probe{d: f().(*driver), noTicks: true} })
	if !errors.Is(err, ErrNoReplica) {
		t.Fatalf("a start while an earlier instance's write hangs: %v, want ErrNoReplica", err)
	}
}
