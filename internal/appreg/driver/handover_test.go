package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/sim"
)

// handRunner's HandOver ends when the test sends it "finish": its done
// runs later, on the driver's loop, as the daemon's does (a promise's
// continuation).
type handRunner struct {
	ev     chan string
	called chan struct{}
	done   func(*actor.Context, []byte, bool)
}

func (r *handRunner) Start(_ *actor.Context, g appreg.Grant) { r.ev <- "start " + g.App }
func (r *handRunner) Stop(_ *actor.Context, app string)      { r.ev <- "stop " + app }
func (r *handRunner) HandOver(_ *actor.Context, _ string, done func(*actor.Context, []byte, bool)) {
	r.done = done
	r.called <- struct{}{}
}
func (r *handRunner) Handle(c *actor.Context, msg any) {
	if msg == "finish" && r.done != nil {
		r.done(c, nil, true)
	}
}

// TestOffLoopHandOverDoneWaitsForTheWrite: with OffLoop, a handover's
// done that comes while a Ready runs on the pool proposes the release only
// once the Ready has ended (run with -race: without the queueing, the
// release and the Ready use the replica at once).
func TestOffLoopHandOverDoneWaitsForTheWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	var open sync.Once
	openGate := func() { open.Do(func() { close(st.gate) }) }
	defer openGate() // before the system's shutdown, which waits for the write
	r := &handRunner{ev: make(chan string, 16), called: make(chan struct{}, 1)}
	// Two members on one system: a (whose store the test holds) and b.
	members := []appreg.Member{{ID: 1, Node: "a"}, {ID: 2, Node: "b"}}
	timing := appreg.Timing{Lease: 5 * time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: members, Store: st, Timing: timing,
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	cfgB := Config{Replica: appreg.Config{ID: 2, Members: members, Store: &appreg.MemStore{}, Timing: timing,
		TickInterval: 10 * time.Millisecond, Incarnation: 2}, Runner: nopRunner{}, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sys.Spawn(ctx, New(cfgB))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Send(d, SetPeers{Refs: map[uint64]actor.Ref{2: db}}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Send(db, SetPeers{Refs: map[uint64]actor.Ref{1: d}}); err != nil {
		t.Fatal(err)
	}
	propose := func(app string) error {
		for {
			_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: app, Prefer: []string{"a"}}})
			if !errors.Is(err, appreg.ErrNoLeader) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond): // no leader yet: polling
			}
		}
	}
	if err := propose("x"); err != nil {
		t.Fatal(err)
	}
	if e := <-r.ev; e != "start x" {
		t.Fatal(e)
	}
	if _, err := sys.Ask(ctx, d, Release{App: "x", To: "z"}); !errors.Is(err, appreg.ErrNotMember) {
		t.Fatalf("release to a non-member: %v, want ErrNotMember", err)
	}
	relErr := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, Release{App: "x", To: "b"}); relErr <- err }()
	<-r.called
	st.armed.Store(true)
	proposed := make(chan error, 1)
	go func() { proposed <- propose("y") }() // a write, which blocks on the pool
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	if err := sys.Send(d, "finish"); err != nil { // done runs on the loop while the Ready is on the pool
		t.Fatal(err)
	}
	// The done is in the driver's queue once a status asked after it is
	// (both wait for the write): then the write ends.
	status := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, GetStatus{}); status <- err }()
	select {
	case err := <-relErr:
		t.Fatalf("the release was answered while the write ran: %v", err)
	case <-status:
		t.Fatal("the status was answered while the write ran")
	case <-time.After(100 * time.Millisecond): // a negative check: nothing answered while the write is held
	}
	openGate()
	if err := <-relErr; err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := <-status; err != nil {
		t.Fatal(err)
	}
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
}

// nopRunner runs nothing.
type nopRunner struct{}

func (nopRunner) Start(*actor.Context, appreg.Grant) {}
func (nopRunner) Stop(*actor.Context, string)        {}

// slowRunner's HandOver takes delay to end the instance (as the daemon's
// may: the root's Detach and the gateways' holds are bounded by seconds,
// not by the lease).
type slowRunner struct {
	runner
	delay time.Duration
	dones map[string]func(*actor.Context, []byte, bool)
}

type handoverDone struct{ app string }

func (r *slowRunner) HandOver(c *actor.Context, app string, done func(*actor.Context, []byte, bool)) {
	r.dones[app] = done
	c.After(r.delay, handoverDone{app})
}

// Stop ends the instance, one under a handover too.
func (r *slowRunner) Stop(c *actor.Context, app string) {
	delete(r.dones, app)
	r.runner.Stop(c, app)
}

func (r *slowRunner) Handle(c *actor.Context, msg any) {
	if m, ok := msg.(handoverDone); ok {
		if d := r.dones[m.app]; d != nil {
			delete(r.dones, m.app)
			r.runner.Stop(c, m.app)
			d(c, nil, true)
		}
	}
}

// TestSlowHandoverOfACutOffHolderEndsWithItsLease: the holder is cut off
// from the others right after a Release, and its instance takes longer
// than the lease to end: the lease still bounds it (the driver stops it
// when the lease ends, and the handover fails), so the majority's
// failover never runs a second instance beside it. Without the bound the
// instance ran on for the whole handover.
func TestSlowHandoverOfACutOffHolderEndsWithItsLease(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newSimCluster(t, 60+seed, 3, func(cfg *Config) {
				r := cfg.Runner.(runner)
				cfg.Runner = &slowRunner{runner: r, delay: 10 * time.Second, dones: map[string]func(*actor.Context, []byte, bool){}}
			})
			c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1"}})
			c.runUntil("a on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
			n1 := c.node("n1")
			rel := askLater(t, n1, c.drivers["n1"], Release{App: "a", To: "n3"}, 20*time.Second)
			c.w.Partition(n1, c.node("n2"))
			c.w.Partition(n1, c.node("n3"))
			c.runUntil("a on n2 or n3", 30*time.Second, func() bool { return c.runsOn("a", "n2") || c.runsOn("a", "n3") })
			c.runUntil("the release answered", 30*time.Second, func() bool { return len(rel) > 0 })
			if err := <-rel; !errors.Is(err, ErrHandoverFailed) {
				t.Fatalf("release: %v, want ErrHandoverFailed", err)
			}
		})
	}
}

// TestSlowHandoverIsRenewed: a handover that takes longer than the lease
// is not cut short while the holder reaches the others: the held
// generation is renewed until the release, which then hands it over.
func TestSlowHandoverIsRenewed(t *testing.T) {
	c := newSimCluster(t, 70, 3, func(cfg *Config) {
		r := cfg.Runner.(runner)
		cfg.Runner = &slowRunner{runner: r, delay: 10 * time.Second, dones: map[string]func(*actor.Context, []byte, bool){}}
	})
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1"}})
	c.runUntil("a on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
	n1 := c.node("n1")
	rel := askLater(t, n1, c.drivers["n1"], Release{App: "a", To: "n3"}, 20*time.Second)
	c.runUntil("a on n3", 30*time.Second, func() bool { return c.runsOn("a", "n3") })
	if err := <-rel; err != nil {
		t.Fatalf("release: %v", err)
	}
	if c.tr.starts["a"] != 2 {
		t.Fatalf("starts: %v", c.tr.starts)
	}
}

// askLater asks msg of to from node n without running the world: the
// answer's error comes on the channel returned as the world runs.
func askLater(t *testing.T, n *sim.Node, to actor.Ref, msg any, timeout time.Duration) chan error {
	t.Helper()
	out := make(chan error, 1)
	a, err := n.Spawn(func() actor.Actor {
		return actorFunc(func(c *actor.Context, m any) (any, error) {
			if m == "go" {
				c.AskTimeout(to, msg, timeout).Then(func(c *actor.Context, _ any, err error) {
					out <- err
					_ = c.Stop(c.Self(), nil)
				})
			}
			return nil, nil
		})
	})
	if err == nil {
		err = n.Send(a, "go")
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}
