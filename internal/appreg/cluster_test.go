package appreg

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A deterministic in-test network of replicas: virtual real time advances in
// steps of 1 ms; each node's clock runs at its own rate; messages go through
// the wire encoding and are delayed, dropped, duplicated and reordered as
// the seed decides. After every step the at-most-one invariant is checked.

var testTiming = Timing{Lease: 400 * time.Millisecond, RenewEvery: 100 * time.Millisecond, Drift: 0.05, Margin: time.Millisecond}

const (
	testTick = 10 * time.Millisecond
	testStep = time.Millisecond
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type tnode struct {
	id       uint64
	name     string
	store    Store
	path     string   // a BoltStore's file, reopened at each start; "" for a MemStore
	r        *Replica // nil while crashed
	rate     float64
	offset   time.Duration
	nextTick time.Time
	inc      uint64
}

func (n *tnode) clock(real time.Duration) time.Time {
	return epoch.Add(n.offset + time.Duration(float64(real)*n.rate))
}

type envelope struct {
	at       time.Duration
	seq      uint64
	from, to uint64
	data     []byte
}

type tcluster struct {
	t        *testing.T
	rng      *rand.Rand
	real     time.Duration
	nodes    []*tnode
	members  []Member
	queue    []envelope
	unsorted bool
	seq      uint64
	cut      map[[2]uint64]bool
	// network faults
	dropP, dupP      float64
	delayLo, delayHi time.Duration
	snapshotEvery    uint64
	timing           Timing
	electionTicks    int
	// the invariant
	runners map[string]string // app -> node running it at the last step
	// holding is, per app, the node whose instance, held for a release
	// (Hold), the test has not said ended: it runs until then, or until
	// its lease ends (HeldUntil: the driver stops it then).
	holding map[string]string
	starts  map[string]int // app -> instances started (a node's MayRun turning true)
	applied map[uint64][]Applied
	trace   []byte // every change of runner, with its time
}

type copt func(*tcluster)

// withRates sets each node's clock rate (1 = real time).
func withRates(rates ...float64) copt {
	return func(c *tcluster) {
		for i, r := range rates {
			c.nodes[i].rate = r
		}
	}
}

func withFaults(drop, dup float64, lo, hi time.Duration) copt {
	return func(c *tcluster) { c.dropP, c.dupP, c.delayLo, c.delayHi = drop, dup, lo, hi }
}

// withBolt keeps each node's raft state in a bbolt file under dir.
func withBolt(dir string) copt {
	return func(c *tcluster) {
		for _, n := range c.nodes {
			n.path = filepath.Join(dir, n.name+".db")
		}
	}
}

// withTiming sets the replicas' timing and election timeout in ticks.
func withTiming(tm Timing, electionTicks int) copt {
	return func(c *tcluster) { c.timing, c.electionTicks = tm, electionTicks }
}

func withSnapshotEvery(n uint64) copt { return func(c *tcluster) { c.snapshotEvery = n } }

func newCluster(t *testing.T, n int, seed uint64, opts ...copt) *tcluster {
	t.Helper()
	c := &tcluster{
		t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		cut: map[[2]uint64]bool{}, delayLo: time.Millisecond, delayHi: 3 * time.Millisecond,
		runners: map[string]string{}, holding: map[string]string{}, starts: map[string]int{}, applied: map[uint64][]Applied{},
		timing: testTiming,
	}
	for i := range n {
		id := uint64(i + 1)
		c.members = append(c.members, Member{ID: id, Node: fmt.Sprintf("n%d", id)})
		// Clocks drift within the bound the replicas assume, and start
		// at unrelated offsets.
		rate := 1 + testTiming.Drift*(2*c.rng.Float64()-1)
		c.nodes = append(c.nodes, &tnode{id: id, name: fmt.Sprintf("n%d", id), store: &MemStore{},
			rate: rate, offset: time.Duration(c.rng.Int64N(int64(time.Hour)))})
	}
	for _, o := range opts {
		o(c)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	return c
}

func (c *tcluster) node(name string) *tnode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

func (c *tcluster) start(n *tnode) {
	c.t.Helper()
	n.inc = c.rng.Uint64() | 1
	if n.path != "" {
		bs, err := OpenBoltStore(n.path)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { _ = bs.Close() })
		n.store = bs
	}
	now := n.clock(c.real)
	r, err := NewReplica(Config{ID: n.id, Members: c.members, Store: n.store, Timing: c.timing,
		ElectionTicks: c.electionTicks, TickInterval: testTick, Incarnation: n.inc, SnapshotEvery: c.snapshotEvery}, now)
	if err != nil {
		c.t.Fatalf("start %s: %v", n.name, err)
	}
	n.r = r
	// Tick phases differ between nodes.
	n.nextTick = now.Add(time.Duration(c.rng.Int64N(int64(testTick))))
	c.collect(n)
}

// crash loses the node's memory; its store survives, as a disk would.
func (c *tcluster) crash(name string) {
	n := c.node(name)
	n.r = nil
	for app, h := range c.holding {
		if h == name {
			delete(c.holding, app) // its instance died with it
		}
	}
	if bs, ok := n.store.(*BoltStore); ok {
		if err := bs.Close(); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *tcluster) restart(name string) { c.start(c.node(name)) }

// isolate cuts every link of the node, both ways.
func (c *tcluster) isolate(name string) {
	n := c.node(name)
	for _, o := range c.nodes {
		if o != n {
			c.cut[[2]uint64{n.id, o.id}], c.cut[[2]uint64{o.id, n.id}] = true, true
		}
	}
}

// deafen cuts every link to the node, one way: it still reaches the others.
func (c *tcluster) deafen(name string) {
	n := c.node(name)
	for _, o := range c.nodes {
		if o != n {
			c.cut[[2]uint64{o.id, n.id}] = true
		}
	}
}

// partition cuts every link between the two groups.
func (c *tcluster) partition(a, b []string) {
	for _, x := range a {
		for _, y := range b {
			nx, ny := c.node(x), c.node(y)
			c.cut[[2]uint64{nx.id, ny.id}], c.cut[[2]uint64{ny.id, nx.id}] = true, true
		}
	}
}

func (c *tcluster) heal() { clear(c.cut) }

func (c *tcluster) delay() time.Duration {
	if c.delayHi <= c.delayLo {
		return c.delayLo
	}
	return c.delayLo + time.Duration(c.rng.Int64N(int64(c.delayHi-c.delayLo)))
}

func (c *tcluster) collect(n *tnode) {
	c.t.Helper()
	rd, err := n.r.Ready()
	if err != nil {
		c.t.Fatalf("%s ready: %v", n.name, err)
	}
	c.applied[n.id] = append(c.applied[n.id], rd.Applied...)
	for _, m := range rd.Messages {
		b, err := MarshalMessage(m)
		if err != nil {
			c.t.Fatalf("%s marshal %v: %v", n.name, m.GetType(), err)
		}
		if c.cut[[2]uint64{m.GetFrom(), m.GetTo()}] || c.rng.Float64() < c.dropP {
			continue
		}
		copies := 1
		if c.rng.Float64() < c.dupP {
			copies = 2
		}
		for range copies {
			c.seq++
			c.unsorted = true
			c.queue = append(c.queue, envelope{at: c.real + c.delay(), seq: c.seq, from: m.GetFrom(), to: m.GetTo(), data: b})
		}
	}
}

// step advances virtual real time by one step, delivers what is due, ticks
// the nodes whose clocks say so, and checks the invariant.
func (c *tcluster) step() {
	c.t.Helper()
	c.real += testStep
	if c.unsorted {
		slices.SortFunc(c.queue, func(a, b envelope) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return int(a.seq) - int(b.seq)
		})
		c.unsorted = false
	}
	i := 0
	for ; i < len(c.queue) && c.queue[i].at <= c.real; i++ {
		e := c.queue[i]
		to := c.nodes[e.to-1]
		if to.r == nil || c.cut[[2]uint64{e.from, e.to}] {
			continue
		}
		m, err := UnmarshalMessage(e.data)
		if err != nil {
			c.t.Fatalf("unmarshal: %v", err)
		}
		if err := to.r.Step(m, to.clock(c.real)); err != nil {
			c.t.Fatalf("%s step %v from %d: %v", to.name, m.GetType(), e.from, err)
		}
		c.collect(to)
	}
	c.queue = c.queue[i:]
	for _, n := range c.nodes {
		if n.r == nil {
			continue
		}
		now := n.clock(c.real)
		for !now.Before(n.nextTick) {
			n.r.Tick(now)
			n.nextTick = n.nextTick.Add(testTick)
			c.collect(n)
		}
	}
	c.check()
}

// check is the at-most-one invariant: at this instant of real time, no two
// nodes may run the same application, each judging on its own clock.
func (c *tcluster) check() {
	c.t.Helper()
	apps := map[string]bool{}
	for _, n := range c.nodes {
		if n.r != nil {
			for name := range n.r.state.apps {
				apps[name] = true
			}
		}
	}
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		var who []string
		for _, n := range c.nodes {
			if n.r == nil {
				continue
			}
			now := n.clock(c.real)
			held := false
			if c.holding[app] == n.name {
				if _, held = n.r.HeldUntil(app, now); !held {
					delete(c.holding, app)
				}
			}
			if held || n.r.MayRun(app, now) {
				who = append(who, n.name)
			}
		}
		if len(who) > 1 {
			c.t.Fatalf("at %v: %s runs on %v at once", c.real, app, who)
		}
		cur := ""
		if len(who) == 1 {
			cur = who[0]
		}
		if cur != "" && c.runners[app] != cur {
			c.starts[app]++
		}
		if c.runners[app] != cur {
			c.trace = fmt.Appendf(c.trace, "%v %s %q\n", c.real, app, cur)
		}
		c.runners[app] = cur
	}
}

func (c *tcluster) run(d time.Duration) {
	c.t.Helper()
	for end := c.real + d; c.real < end; {
		c.step()
	}
}

func (c *tcluster) runUntil(what string, max time.Duration, cond func() bool) {
	c.t.Helper()
	for end := c.real + max; !cond(); {
		if c.real >= end {
			c.t.Fatalf("at %v: not within %v: %s (runners %v)", c.real, max, what, c.runners)
		}
		c.step()
	}
}

func (c *tcluster) runner(app string) string { return c.runners[app] }

func (c *tcluster) leader() *tnode {
	for _, n := range c.nodes {
		if n.r != nil && n.r.leader && !c.isCut(n) {
			return n
		}
	}
	return nil
}

func (c *tcluster) isCut(n *tnode) bool {
	cut := 0
	for _, o := range c.nodes {
		if o != n && c.cut[[2]uint64{n.id, o.id}] {
			cut++
		}
	}
	return 2*(len(c.nodes)-1-cut) < len(c.nodes)-1
}

// propose proposes cmd until a node in the majority sees it applied, and
// returns the outcome.
func (c *tcluster) propose(cmd Command) error {
	c.t.Helper()
	for end := c.real + 10*time.Second; c.real < end; {
		l := c.leader()
		if l == nil {
			c.step()
			continue
		}
		before := len(c.applied[l.id])
		if err := l.r.Propose(cmd, l.nodeNow(c)); err != nil {
			c.step()
			continue
		}
		c.collect(l)
		for wait := c.real + time.Second; c.real < wait; {
			for _, a := range c.applied[l.id][before:] {
				if a.Cmd.Op == cmd.Op && a.Cmd.App == cmd.App {
					return a.Err
				}
			}
			c.step()
		}
	}
	c.t.Fatalf("command %v %s not applied", cmd.Op, cmd.App)
	return nil
}

func (n *tnode) nodeNow(c *tcluster) time.Time { return n.clock(c.real) }

func (c *tcluster) deploy(app string, takeover bool, prefer ...string) {
	c.t.Helper()
	if err := c.propose(Command{Op: OpDeploy, App: app, Spec: []byte("spec of " + app), Prefer: prefer, Takeover: takeover}); err != nil {
		c.t.Fatalf("deploy %s: %v", app, err)
	}
}

// converged says whether every running replica holds the same state.
func (c *tcluster) converged() bool {
	var first []byte
	for _, n := range c.nodes {
		if n.r == nil {
			continue
		}
		b, err := n.r.State().Marshal()
		if err != nil {
			c.t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if string(first) != string(b) {
			return false
		}
	}
	return true
}
