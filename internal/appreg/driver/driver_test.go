package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/sim"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Drivers on simulated nodes (remote over the simulator's network, virtual
// time, drifting clocks): the tracker is the instances' ground truth, and
// an application started while it runs elsewhere is a violation.

var simTiming = appreg.Timing{Lease: 2 * time.Second, RenewEvery: 400 * time.Millisecond, Drift: 0.05,
	Margin: 50 * time.Millisecond} // two ticks, and the loop's delay to the next one

const simTick = 20 * time.Millisecond

type tracker struct {
	w          *sim.World
	running    map[string][]string // app -> nodes running it
	starts     map[string]int
	violations []string
	handovers  map[string]string // app -> the handover its last start was granted with
}

type runner struct {
	t    *tracker
	node string
}

func (r runner) Start(_ *actor.Context, g appreg.Grant) {
	if others := r.t.running[g.App]; len(others) > 0 {
		r.t.violations = append(r.t.violations, fmt.Sprintf("at %v: %s starts %s, running on %v", r.t.w.Elapsed(), r.node, g.App, others))
	}
	r.t.running[g.App] = append(r.t.running[g.App], r.node)
	r.t.starts[g.App]++
	if r.t.handovers == nil {
		r.t.handovers = map[string]string{}
	}
	r.t.handovers[g.App] = string(g.Handover)
	r.t.w.Logf("%s starts %s (generation %d)", r.node, g.App, g.Gen)
}

func (r runner) Stop(_ *actor.Context, app string) {
	r.t.running[app] = slices.DeleteFunc(r.t.running[app], func(n string) bool { return n == r.node })
	r.t.w.Logf("%s stops %s", r.node, app)
}

// HandOver implements Handoverer: the instance ends at once, and records
// where it ran.
func (r runner) HandOver(c *actor.Context, app string, done func(*actor.Context, []byte, bool)) {
	r.Stop(c, app)
	done(c, []byte("from "+r.node), true)
}

type simCluster struct {
	t       *testing.T
	w       *sim.World
	tr      *tracker
	nodes   []*sim.Node
	drivers map[string]actor.Ref
	stores  map[string]*appreg.MemStore
	// swarmReplay is the command that replays a swarm seed, printed with
	// a failure.
	swarmReplay string
}

func newSimCluster(t *testing.T, seed uint64, n int, adjust ...func(*Config)) *simCluster {
	w := sim.New(sim.Config{Seed: seed, Timeline: 3000})
	t.Cleanup(w.Close)
	c := &simCluster{t: t, w: w, tr: &tracker{w: w, running: map[string][]string{}, starts: map[string]int{}},
		drivers: map[string]actor.Ref{}, stores: map[string]*appreg.MemStore{}}
	var members []appreg.Member
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		members = append(members, appreg.Member{ID: uint64(i + 1), Node: name})
		c.stores[name] = &appreg.MemStore{}
	}
	for i, m := range members {
		init := func(nd *sim.Node) error {
			if err := Register(nd.Remote()); err != nil {
				return err
			}
			cfg := Config{
				Replica: appreg.Config{ID: m.ID, Members: members, Store: c.stores[m.Node], Timing: simTiming,
					TickInterval: simTick, Incarnation: nd.Incarnation()<<32 | uint64(i+1)},
				Remote: nd.Remote(),
				Runner: runner{t: c.tr, node: m.Node},
			}
			for _, f := range adjust {
				f(&cfg)
			}
			ref, err := nd.Spawn(New(cfg))
			c.drivers[m.Node] = ref
			return err
		}
		nd := w.MustAddNode(m.Node, init)
		// Clocks drift within the bound the registry assumes.
		nd.SetDrift(simTiming.Drift * (2*w.Rand().Float64() - 1) * 0.9)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		c.setPeers(nd)
	}
	return c
}

func (c *simCluster) node(name string) *sim.Node {
	for _, n := range c.nodes {
		if n.Name() == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

func (c *simCluster) setPeers(nd *sim.Node) {
	refs := map[uint64]actor.Ref{}
	for i, o := range c.nodes {
		if o == nd || !o.Up() {
			continue // a node down is given again when it restarts
		}
		r, err := c.w.Ref(c.drivers[o.Name()], o, nd)
		if err != nil {
			c.t.Fatal(err)
		}
		refs[uint64(i+1)] = r
	}
	if err := nd.Send(c.drivers[nd.Name()], SetPeers{Refs: refs}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *simCluster) fail(format string, a ...any) {
	c.t.Helper()
	c.t.Fatalf("seed %d: %s\n%v\ntimeline:\n%s%s", c.w.Seed(), fmt.Sprintf(format, a...), c.tr.violations,
		joinLast(c.w.Timeline(), 60), c.swarmReplay)
}

func joinLast(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func (c *simCluster) checkNoViolation() {
	c.t.Helper()
	if len(c.tr.violations) > 0 {
		c.fail("an application ran twice")
	}
}

// propose retries through any up node until raft takes the command.
func (c *simCluster) propose(cmd appreg.Command) {
	c.t.Helper()
	for range 100 {
		for _, nd := range c.nodes {
			if !nd.Up() {
				continue
			}
			_, err := nd.Ask(c.drivers[nd.Name()], Propose{Cmd: cmd}, time.Second)
			if err == nil {
				return
			}
			if !errors.Is(err, appreg.ErrNoLeader) {
				c.fail("propose: %v", err)
			}
		}
		c.w.Run(100 * time.Millisecond)
	}
	c.fail("no leader took %v %s", cmd.Op, cmd.App)
}

func (c *simCluster) runUntil(what string, limit time.Duration, cond func() bool) {
	c.t.Helper()
	if !c.w.RunUntil(limit, func() bool { return len(c.tr.violations) > 0 || cond() }) {
		c.fail("not within %v: %s (running %v)", limit, what, c.tr.running)
	}
	c.checkNoViolation()
}

func (c *simCluster) runsOn(app string, nodes ...string) bool {
	r := c.tr.running[app]
	return len(r) == 1 && (len(nodes) == 0 || slices.Contains(nodes, r[0]))
}

func TestSimPartitionAndTakeover(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { t.Log(partitionAndTakeover(t, seed+1)) })
	}
}

// The same seed gives the same run, event for event (raft's own election
// timer, which draws from crypto/rand, would not).
func TestSimReplays(t *testing.T) {
	a, b := partitionAndTakeover(t, 5), partitionAndTakeover(t, 5)
	if a != b {
		t.Fatalf("two runs of one seed differ:\n%s\n%s", a, b)
	}
}

func partitionAndTakeover(t *testing.T, seed uint64) string {
	c := newSimCluster(t, seed, 3)
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1", "n2"}, Takeover: true})
	c.runUntil("a on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })

	// n1 on the minority side: it stops on its own, n2 takes over.
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	c.w.Partition(n1, n2)
	c.w.Partition(n1, n3)
	c.runUntil("a on n2", 20*time.Second, func() bool { return c.runsOn("a", "n2") })
	c.w.Run(5 * time.Second)
	c.checkNoViolation()
	if !c.runsOn("a", "n2") {
		c.fail("a left n2 during the partition: %v", c.tr.running)
	}

	// n1 returns: takeover moves a back.
	c.w.Heal(n1, n2)
	c.w.Heal(n1, n3)
	c.runUntil("a back on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
	c.w.Run(5 * time.Second)
	c.checkNoViolation()
	if !c.runsOn("a", "n1") || c.tr.starts["a"] != 3 {
		c.fail("after the takeover: running %v, %d starts", c.tr.running, c.tr.starts["a"])
	}
	return c.w.Summary()
}

type forger struct {
	to  actor.Ref
	msg RaftMsg
}

func (f forger) Receive(c *actor.Context, msg any) (any, error) {
	return nil, c.Send(f.to, f.msg)
}

// A member may only speak for itself: n3 forging a message of n1's (a
// heartbeat of a far later term, which would depose n2's leader) is refused.
func TestSimForgedSenderRefused(t *testing.T) {
	c := newSimCluster(t, 7, 3)
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a"})
	c.runUntil("a runs", 20*time.Second, func() bool { return c.runsOn("a") })
	n2, n3 := c.node("n2"), c.node("n3")
	to, err := c.w.Ref(c.drivers["n2"], n2, n3)
	if err != nil {
		t.Fatal(err)
	}
	forged := &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(1000))}
	b, err := appreg.MarshalMessage(forged)
	if err != nil {
		t.Fatal(err)
	}
	f, err := n3.Spawn(func() actor.Actor { return forger{to: to, msg: RaftMsg{Data: b}} })
	if err != nil {
		t.Fatal(err)
	}
	if err := n3.Send(f, "go"); err != nil {
		t.Fatal(err)
	}
	c.w.Run(time.Second)
	v, err := n2.Ask(c.drivers["n2"], GetStatus{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st := v.(Status); st.Term >= 1000 {
		c.fail("n2 took n3's forged message: term %d", st.Term)
	}
}

type stopper struct{ target actor.Ref }

func (s stopper) Receive(c *actor.Context, _ any) (any, error) { return nil, c.Stop(s.target, nil) }

// Nothing runs without the driver that tracks its lease: stopping the
// driver stops its applications.
func TestSimDriverStopStopsApplications(t *testing.T) {
	c := newSimCluster(t, 11, 3)
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n2"}})
	c.runUntil("a on n2", 20*time.Second, func() bool { return c.runsOn("a", "n2") })
	n2 := c.node("n2")
	s, err := n2.Spawn(func() actor.Actor { return stopper{target: c.drivers["n2"]} })
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.Send(s, "stop"); err != nil {
		t.Fatal(err)
	}
	c.w.Run(100 * time.Millisecond)
	if r := c.tr.running["a"]; slices.Contains(r, "n2") {
		c.fail("n2's driver stopped, a still runs there: %v", r)
	}
	// And the others start it once n2's lease is over.
	c.runUntil("a runs elsewhere", 20*time.Second, func() bool { return c.runsOn("a", "n1", "n3") })
}

// Only the registry assigns and renews: a client's Propose of either is
// refused.
func TestSimProposeOnlyAdminCommands(t *testing.T) {
	c := newSimCluster(t, 9, 3)
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a"})
	n1 := c.node("n1")
	for _, cmd := range []appreg.Command{
		{Op: appreg.OpAssign, App: "a", Node: "n1"},
		{Op: appreg.OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second},
	} {
		if _, err := n1.Ask(c.drivers["n1"], Propose{Cmd: cmd}, time.Second); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("propose %v: %v, want ErrNotAllowed", cmd.Op, err)
		}
	}
}

type countHandler struct{ n *int }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { *h.n++; return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

type flooder struct {
	to   actor.Ref
	msgs []RaftMsg
}

func (f flooder) Receive(c *actor.Context, _ any) (any, error) {
	for _, m := range f.msgs {
		if err := c.Send(f.to, m); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// A member that sends junk (malformed, oversized, claiming other members
// or strangers) costs the receiver a bounded number of log lines, and the
// registry carries on.
func TestSimJunkFromAPeerIsBounded(t *testing.T) {
	lines := 0
	logger := slog.New(countHandler{n: &lines})
	c := newSimCluster(t, 13, 3, func(cfg *Config) {
		if cfg.Replica.ID == 2 {
			cfg.Logger = logger
		}
	})
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n2"}})
	c.runUntil("a on n2", 20*time.Second, func() bool { return c.runsOn("a", "n2") })
	n2, n3 := c.node("n2"), c.node("n3")
	to, err := c.w.Ref(c.drivers["n2"], n2, n3)
	if err != nil {
		t.Fatal(err)
	}
	const junk = 600
	rng := c.w.Rand()
	var msgs []RaftMsg
	for i := range junk {
		switch i % 3 {
		case 0: // not a raft message
			b := make([]byte, 1+rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			msgs = append(msgs, RaftMsg{Data: b})
		case 1: // a stranger's, or another member's
			from := uint64(1 + rng.IntN(1000))
			b, err := appreg.MarshalMessage(&pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(from), To: new(uint64(2)), Term: new(uint64(1))})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, RaftMsg{Data: b})
		case 2: // a local type
			b, _ := proto.Marshal(&pb.Message{Type: pb.MsgHup.Enum(), From: new(uint64(3)), To: new(uint64(2))})
			msgs = append(msgs, RaftMsg{Data: b})
		}
	}
	f, err := n3.Spawn(func() actor.Actor { return flooder{to: to, msgs: msgs} })
	if err != nil {
		t.Fatal(err)
	}
	if err := n3.Send(f, "go"); err != nil {
		t.Fatal(err)
	}
	c.w.Run(2 * time.Second)
	// ratelog's default: 5 lines per key (level, message, sending node) per
	// 10 s of the wall clock; two messages, one sender.
	if lines > 2*5 {
		t.Fatalf("%d junk messages from one peer made %d log lines", junk, lines)
	}
	c.w.Run(5 * time.Second)
	c.checkNoViolation()
	if !c.runsOn("a", "n2") || c.tr.starts["a"] != 1 {
		c.fail("the junk disturbed the registry: running %v, %d starts", c.tr.running, c.tr.starts["a"])
	}
}

// A daemon that crashes and restarts comes back with its raft log (its
// store survives, as a disk would) and gets its preferred application back.
func TestSimRestartBringsApplicationBack(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newSimCluster(t, 20+seed, 3)
			c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1"}, Takeover: true})
			c.propose(appreg.Command{Op: appreg.OpDeploy, App: "b", Prefer: []string{"n3"}})
			c.runUntil("a on n1, b on n3", 20*time.Second, func() bool { return c.runsOn("a", "n1") && c.runsOn("b", "n3") })

			n1 := c.node("n1")
			c.w.Crash(n1)
			// Its instances die with it.
			for app, nodes := range c.tr.running {
				c.tr.running[app] = slices.DeleteFunc(nodes, func(n string) bool { return n == "n1" })
			}
			c.runUntil("a fails over", 20*time.Second, func() bool { return c.runsOn("a", "n2", "n3") })
			c.propose(appreg.Command{Op: appreg.OpDeploy, App: "c"}) // while n1 is down

			if err := c.w.Restart(n1); err != nil {
				t.Fatal(err)
			}
			// Before it hears from anyone (it knows no peer yet), its own
			// log has the applications it saw committed.
			if names := c.appNames(n1); !slices.Equal(names, []string{"a", "b"}) {
				c.fail("restarted n1 knows %v from its store", names)
			}
			for _, nd := range c.nodes {
				c.setPeers(nd)
			}
			c.runUntil("a back on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
			c.runUntil("c runs", 20*time.Second, func() bool { return c.runsOn("c") })
			if names := c.appNames(n1); !slices.Equal(names, []string{"a", "b", "c"}) {
				c.fail("restarted n1 knows %v", names)
			}
			c.checkNoViolation()
			if !c.runsOn("b", "n3") || c.tr.starts["b"] != 1 {
				c.fail("b moved: running %v, %d starts", c.tr.running, c.tr.starts["b"])
			}
		})
	}
}

func (c *simCluster) appNames(nd *sim.Node) []string {
	c.t.Helper()
	v, err := nd.Ask(c.drivers[nd.Name()], GetStatus{}, time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, a := range v.(Status).Apps {
		names = append(names, a.Name)
	}
	return names
}

// Every instance a driver's factory makes (a supervisor's restart) has its
// own incarnation: a renewal an earlier instance proposed, committed
// late, must not count as one of the new instance's (whose sequence
// numbers start again), or it would hold a lease from a later time.
func TestEachStartHasItsOwnIncarnation(t *testing.T) {
	f := New(Config{Replica: appreg.Config{Incarnation: 42}})
	seen := map[uint64]bool{}
	for range 5 {
		inc := f().(*driver).cfg.Replica.Incarnation
		if inc == 0 || seen[inc] {
			t.Fatalf("incarnation %d again (or 0): %v", inc, seen)
		}
		seen[inc] = true
	}
	if !seen[42] {
		t.Fatal("the first instance does not keep the process's incarnation")
	}
}

// The driver refuses a margin under one tick: it stops an application at
// the first tick after its lease ends.
func TestMarginCoversATick(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Watchdog: -1})
	defer sys.Shutdown(context.Background())
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "n1"}}, Store: &appreg.MemStore{},
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}}
	if _, err := sys.Spawn(context.Background(), New(cfg)); !errors.Is(err, appreg.ErrConfig) {
		t.Fatalf("a margin of 1 ms with a 10 ms tick: %v, want ErrConfig", err)
	}
	cfg.Replica.Timing.Margin = 10 * time.Millisecond
	if _, err := sys.Spawn(context.Background(), New(cfg)); err != nil {
		t.Fatalf("a margin of one tick: %v", err)
	}
}

// linkRunner links each instance to the driver, as the daemon's runner
// does, and records what Handle gets.
type linkRunner struct {
	refs    chan actor.Ref
	handled chan any
}

func (r *linkRunner) Start(c *actor.Context, g appreg.Grant) {
	ref, err := c.Spawn(func() actor.Actor {
		return actorFunc(func(_ *actor.Context, msg any) (any, error) { panic(fmt.Sprint("instance dies: ", msg)) })
	})
	if err == nil && c.Link(ref) == nil {
		r.refs <- ref
	}
}

func (r *linkRunner) Stop(*actor.Context, string)      {}
func (r *linkRunner) Handle(_ *actor.Context, msg any) { r.handled <- msg }

type actorFunc func(c *actor.Context, msg any) (any, error)

func (f actorFunc) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// TestInstanceExitGoesToTheRunner: an instance linked to the driver that
// crashes does not take the driver down (it traps exits); its exit reaches
// the Runner's Handle, and so do messages the driver does not know.
func TestInstanceExitGoesToTheRunner(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	r := &linkRunner{refs: make(chan actor.Ref, 1), handled: make(chan any, 4)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: &appreg.MemStore{},
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: "x"}})
		if err == nil {
			break
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
	var inst actor.Ref
	select {
	case inst = <-r.refs:
	case <-ctx.Done():
		t.Fatal("the application was not started")
	}
	_ = sys.Send(inst, "boom")
	select {
	case m := <-r.handled:
		if ex, ok := m.(actor.Exited); !ok || ex.From != inst || ex.Reason == nil {
			t.Fatalf("Handle got %#v, want the instance's abnormal exit", m)
		}
	case <-ctx.Done():
		t.Fatal("the instance's exit did not reach the runner")
	}
	if _, err := sys.Ask(ctx, d, GetStatus{}); err != nil {
		t.Fatalf("the driver died with its instance: %v", err)
	}
	_ = sys.Send(d, "runner's own")
	select {
	case m := <-r.handled:
		if m != "runner's own" {
			t.Fatalf("Handle got %#v", m)
		}
	case <-ctx.Done():
		t.Fatal("an unknown message did not reach the runner")
	}
}

// gateStore is a MemStore whose Save, once armed, waits for the test to
// open the gate: a slow disk.
type gateStore struct {
	appreg.MemStore
	armed   atomic.Bool
	blocked chan struct{} // a Save is waiting
	gate    chan struct{}
}

func (s *gateStore) Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error {
	if s.armed.CompareAndSwap(true, false) {
		s.blocked <- struct{}{}
		<-s.gate
	}
	return s.MemStore.Save(hs, snap, ents)
}

// TestOffLoopStoreDoesNotHoldTheLoop: with OffLoop, a store write that
// takes long (a slow fsync) runs on the worker pool: another actor of the
// driver's loop answers meanwhile, and a status asked of the driver then
// is answered once the write is done.
func TestOffLoopStoreDoesNotHoldTheLoop(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	r := &linkRunner{refs: make(chan actor.Ref, 8), handled: make(chan any, 8)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: New(cfg)().(*driver)} })
	if err != nil {
		t.Fatal(err)
	}
	echo, err := sys.Spawn(ctx, func() actor.Actor {
		return actorFunc(func(_ *actor.Context, msg any) (any, error) { return msg, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	st.armed.Store(true) // the next write (a tick's, soon) blocks
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	status := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, GetStatus{}); status <- err }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	v, err := sys.Ask(actx, echo, "ping")
	acancel()
	if err != nil || v != "ping" {
		close(st.gate)
		t.Fatalf("the loop is held by the store write: ask on it: %v, %v", v, err)
	}
	// The status waits in the driver's queue for the write to end: it
	// is not answered beside it, from a replica in use.
	for queued := false; !queued; {
		v, err := sys.Ask(ctx, d, probeFn(func(_ *actor.Context, d *driver) any { return len(d.queue) }))
		if err != nil {
			close(st.gate)
			t.Fatal(err)
		}
		select {
		case err := <-status:
			close(st.gate)
			t.Fatalf("the status was answered during the write (%v): the replica was used concurrently", err)
		case <-ctx.Done():
			close(st.gate)
			t.Fatal("the status was never queued behind the write")
		default:
		}
		queued = v.(int) > 0
		if !queued {
			time.Sleep(time.Millisecond) // polling a condition, with ctx's deadline
		}
	}
	close(st.gate)
	if err := <-status; err != nil {
		t.Fatalf("status after the write: %v", err)
	}
}

// TestOffLoopPoolFull: when the worker pool refuses the write (saturated),
// the driver writes on its loop this once rather than fail its replica.
func TestOffLoopPoolFull(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Workers: 1, WorkerQueue: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Another actor fills the pool: one job runs (held), one waits.
	release := make(chan struct{})
	defer close(release)
	running := make(chan struct{}, 2)
	filler, err := sys.Spawn(ctx, func() actor.Actor {
		return actorFunc(func(c *actor.Context, _ any) (any, error) {
			for range 2 {
				c.Blocking(func() (any, error) { running <- struct{}{}; <-release; return nil, nil })
			}
			return nil, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Send(filler, "fill"); err != nil {
		t.Fatal(err)
	}
	<-running
	r := &linkRunner{refs: make(chan actor.Ref, 8), handled: make(chan any, 8)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: &appreg.MemStore{},
		Timing:       appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	// The replica elects itself and commits (writes) with the pool full.
	for {
		v, err := sys.Ask(ctx, d, GetStatus{})
		if err != nil {
			t.Fatalf("the driver failed with the pool full: %v", err)
		}
		if v.(Status).Leader == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader with the pool full")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// eventRunner reports starts and stops.
type eventRunner struct{ ev chan string }

func (r eventRunner) Start(_ *actor.Context, g appreg.Grant) { r.ev <- "start " + g.App }
func (r eventRunner) Stop(_ *actor.Context, app string)      { r.ev <- "stop " + app }

// TestOffLoopLeaseEndsDuringAWrite: a store write that hangs (a dying
// disk) keeps renewals from committing; the application is stopped at the
// first tick after its lease ends, while the write still hangs, not when
// it returns.
func TestOffLoopLeaseEndsDuringAWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	r := eventRunner{ev: make(chan string, 16)}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: 300 * time.Millisecond, RenewEvery: 50 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, ElectionTicks: 5, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: "x"}})
		if err == nil {
			break
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
	next := func(what string) {
		t.Helper()
		select {
		case e := <-r.ev:
			if e != what {
				t.Fatalf("runner got %q, want %q", e, what)
			}
		case <-ctx.Done():
			close(st.gate)
			t.Fatalf("runner never got %q", what)
		}
	}
	next("start x")
	st.armed.Store(true)
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	next("stop x") // within the lease and a tick, the write still hanging
	close(st.gate)
}

// A graceful release over the simulated network: the application moves to
// the node named at once, without the lease wait, with the handover, and
// never runs twice.
func TestSimReleaseHandsOver(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newSimCluster(t, 40+seed, 3)
			c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1", "n2"}, Takeover: true})
			c.runUntil("a on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
			n1 := c.node("n1")
			if _, err := n1.Ask(c.drivers["n1"], Release{App: "b", To: "n3"}, time.Second); !errors.Is(err, ErrNotRunningHere) {
				c.fail("release of an application not running here: %v", err)
			}
			start := c.w.Elapsed()
			v, err := n1.Ask(c.drivers["n1"], Release{App: "a", To: "n3"}, time.Second)
			if err != nil {
				c.fail("release: %v", err)
			}
			if v.(uint64) != 1 {
				c.fail("released generation %v, want 1", v)
			}
			c.runUntil("a on n3", 20*time.Second, func() bool { return c.runsOn("a", "n3") })
			if took, wait := c.w.Elapsed()-start, simTiming.Wait(simTiming.Lease); took >= wait/2 {
				c.fail("handover took %v, a failover waits %v", took, wait)
			}
			if h := c.tr.handovers["a"]; h != "from n1" {
				c.fail("n3 was granted a with handover %q", h)
			}
			c.w.Run(5 * time.Second) // takeover does not move it back to n1
			c.checkNoViolation()
			if !c.runsOn("a", "n3") || c.tr.starts["a"] != 2 {
				c.fail("after the handover: running %v, %d starts", c.tr.running, c.tr.starts["a"])
			}
		})
	}
}

// laterRunner's HandOver ends the instance when the test says so (end),
// as a runner that stops the instance asynchronously does.
type laterRunner struct {
	started chan string
	end     chan func() // settles the HandOver
}

func (r *laterRunner) Start(_ *actor.Context, g appreg.Grant) { r.started <- g.App }
func (r *laterRunner) Stop(*actor.Context, string)            {}
func (r *laterRunner) HandOver(c *actor.Context, app string, done func(*actor.Context, []byte, bool)) {
	p, settle := c.ExternalPromise()
	p.Then(func(c *actor.Context, _ any, _ error) { done(c, []byte("h"), true) })
	r.end <- func() { settle(nil, nil) }
}

// TestOffLoopHandOverEndsDuringAWrite: a Runner that ends the instance
// while a store write runs on the pool does not have the release proposed
// beside the write (the replica is the write's until it returns): the
// release waits in the queue, and is answered once the write is done.
func TestOffLoopHandOverEndsDuringAWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	r := &laterRunner{started: make(chan string, 8), end: make(chan func(), 1)}
	// Two members on one system (a release names another member): a,
	// whose store the test holds, and b, which runs nothing.
	members := []appreg.Member{{ID: 1, Node: "a"}, {ID: 2, Node: "b"}}
	timing := appreg.Timing{Lease: time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond}
	cfg := Config{Replica: appreg.Config{ID: 1, Members: members, Store: st, Timing: timing,
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	cfgB := Config{Replica: appreg.Config{ID: 2, Members: members, Store: &appreg.MemStore{}, Timing: timing,
		TickInterval: 10 * time.Millisecond, Incarnation: 2}, Runner: nopRunner{}, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, func() actor.Actor { return &probe{d: New(cfg)().(*driver)} })
	if err != nil {
		t.Fatal(err)
	}
	db, err := sys.Spawn(ctx, New(cfgB))
	if err != nil {
		t.Fatal(err)
	}
	_ = sys.Send(d, SetPeers{Refs: map[uint64]actor.Ref{2: db}})
	_ = sys.Send(db, SetPeers{Refs: map[uint64]actor.Ref{1: d}})
	for {
		_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: "x", Prefer: []string{"a"}}})
		if err == nil {
			break
		}
		if !errors.Is(err, appreg.ErrNoLeader) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(10 * time.Millisecond): // polling for a leader
		}
	}
	select {
	case <-r.started:
	case <-ctx.Done():
		t.Fatal("x never started")
	}
	released := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, Release{App: "x", To: "b"}); released <- err }()
	var end func()
	select {
	case end = <-r.end:
	case <-ctx.Done():
		t.Fatal("no handover")
	}
	st.armed.Store(true) // the next write blocks: another deploy's
	if _, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: "y"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	end() // the instance ends while the write hangs
	for queued := false; !queued; {
		v, err := sys.Ask(ctx, d, probeFn(func(_ *actor.Context, d *driver) any { return len(d.queue) }))
		if err != nil {
			close(st.gate)
			t.Fatal(err)
		}
		select {
		case err := <-released:
			close(st.gate)
			t.Fatalf("the release was proposed during the write (%v): the replica was used concurrently", err)
		case <-ctx.Done():
			close(st.gate)
			t.Fatal("the release was never queued behind the write")
		default:
		}
		queued = v.(int) > 0
		if !queued {
			time.Sleep(time.Millisecond) // polling a condition, with ctx's deadline
		}
	}
	close(st.gate)
	if err := <-released; err != nil {
		t.Fatalf("release after the write: %v", err)
	}
}
