package sim

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/internal/kvmodel"
	"github.com/anishathalye/porcupine"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/examples/kvstore"
	"github.com/actord/actord/quorum"
)

// The kvstore under the simulator: three nodes run a store (4 shards of 3
// replicas, one MemDisk each, kept across crashes), a client actor on each
// of them and on a fourth node (all replicas remote) reads and writes a
// few keys, and the seed picks faults (partitions, one-way blocks, crashes
// and kills with restarts, replica crashes, latency spikes, cut
// connections, clock drift and jumps, a slow node). Checks: every request
// settles exactly once (unless its client's node went down); once every
// node has crashed, every acknowledged write is on the disks of a majority
// of its replicas, and reads after the restart see it; the history is
// linearizable (porcupine).

var (
	flagKVTime   = flag.Duration("sim.kvtime", 10*time.Second, "the virtual time of each TestKVStore run's load")
	flagKVLoad   = flag.Int("sim.kvload", 0, "requests each TestKVStore client keeps in flight (0: 1 to 6, as the seed decides)")
	flagKVKeys   = flag.Int("sim.kvkeys", 6, "how many keys TestKVStore's clients read and write (fewer: more conflicts; more: a faster linearizability check)")
	flagKVErrLen = flag.Int("sim.kverrlen", 120, "how much of each error TestKVStore -v counts by (the failures' histogram)")
	flagKVFaults = flag.Bool("sim.kvfaults", true, "inject faults in TestKVStore (false: load only, to measure the simulator's speed)")
)

// kvDefaultSeeds is how many seeds TestKVStore runs when -sim.seeds is not
// given: its CI cost.
const kvDefaultSeeds = 4

// kvShards is the store's number of shards.
const kvShards = 4

// kvOp is one request of a client actor: id names it in the history.
type kvOp struct {
	id int
	in kvmodel.Input
}

// kvSetTable gives a client actor a new table (a node restarted).
type kvSetTable struct{ tab kvstore.Table }

// kvResult is how a request settled.
type kvResult struct {
	id  int
	e   kvstore.Entry // a get's version
	ts  kvstore.Stamp // a put's or del's stamp
	err error
}

// kvClient is the client actor of a node: it runs the requests it is sent
// with a kvstore.ActorClient and reports each outcome to done.
type kvClient struct {
	cl   *kvstore.ActorClient
	done func(kvResult)
}

func (k *kvClient) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case kvOp:
		switch m.in.Op {
		case "get":
			k.cl.Get(c, m.in.Key, func(_ *actor.Context, e kvstore.Entry, err error) { k.done(kvResult{id: m.id, e: e, err: err}) })
		case "put":
			k.cl.Put(c, m.in.Key, []byte(m.in.Val), func(_ *actor.Context, ts kvstore.Stamp, err error) { k.done(kvResult{id: m.id, ts: ts, err: err}) })
		case "del":
			k.cl.Delete(c, m.in.Key, func(_ *actor.Context, ts kvstore.Stamp, err error) { k.done(kvResult{id: m.id, ts: ts, err: err}) })
		}
	case kvSetTable:
		return nil, k.cl.SetTable(m.tab)
	}
	return nil, nil
}

// kvNode is a node, and what it keeps across crashes: its disk (nil for
// the client node, which is not one of the store's).
type kvNode struct {
	n      *Node
	disk   *kvstore.MemDisk
	st     *kvstore.Store
	client actor.Ref
}

// kvOpState is a request of the run: its history entry and its fate.
type kvOpState struct {
	node     int
	gen      uint64 // its client's incarnation
	op       porcupine.Operation
	settled  int
	lost     bool // its client's node went down before it settled
	final    bool // a read of the final check
	res      kvResult
	settleAt time.Duration
}

// kvRun is one seed's run.
type kvRun struct {
	t     testing.TB
	w     *World
	nodes []*kvNode
	ops   []*kvOpState
	open  []int                    // requests in flight, by node (not settled, not lost)
	acked map[string]kvstore.Stamp // the newest acknowledged write of each key
	keys  []string
	bug   string // the first violation found while running
	// counters
	ok, failedReads, notWritten, unknown, lostOps int
	faults                                        []string
	caughtUp                                      uint64         // entries the stores' catch-ups copied
	errs                                          map[string]int // failures by their error's first words
	checkTook                                     time.Duration  // the linearizability check's wall time
	checkCPU                                      time.Duration  // the process's CPU time during the check and its history
}

func (r *kvRun) violation(format string, a ...any) {
	if r.bug == "" {
		r.bug = fmt.Sprintf("at %v: ", r.w.Elapsed()) + fmt.Sprintf(format, a...)
		r.w.Logf("VIOLATION %s", r.bug)
	}
}

// members returns the addresses of the store's nodes.
func (r *kvRun) members() []string {
	var members []string
	for _, o := range r.nodes {
		if o.disk != nil {
			members = append(members, o.n.Addr())
		}
	}
	return members
}

// install starts node i's store (if it is one of the store's) and client,
// once the node listens.
func (r *kvRun) install(i int) error {
	kn := r.nodes[i]
	if kn.disk != nil {
		st, err := kvstore.Install(context.Background(), kn.n.Remote(), kvstore.Config{
			Storage: kn.disk, Token: "sim", Members: r.members(), Shards: kvShards,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return fmt.Errorf("install on %s: %w", kn.n.Name(), err)
		}
		kn.st = st
	}
	mgr, err := quorum.NewManager(kn.n.System(), quorum.ManagerConfig{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	cl, err := kvstore.NewActorClient(mgr, r.table(i), (kn.n.Incarnation()*16+uint64(i)+1)<<32)
	if err != nil {
		return err
	}
	gen := kn.n.Incarnation()
	kn.client, err = kn.n.Spawn(func() actor.Actor {
		return &kvClient{cl: cl, done: func(res kvResult) { r.settle(i, gen, res) }}
	})
	return err
}

// table is the store's table as node viewer's client sees it: the refs of
// the replicas of the nodes up, through viewer's connections.
func (r *kvRun) table(viewer int) kvstore.Table {
	t := kvstore.Table{Shards: kvShards, Replicas: 3, Members: slices.Sorted(slices.Values(r.members()))}
	t.Refs, t.Missing = make([][]actor.Ref, kvShards), make([][]error, kvShards)
	for id := range kvShards {
		hosts := t.Hosts(id)
		t.Refs[id], t.Missing[id] = make([]actor.Ref, len(hosts)), make([]error, len(hosts))
		for j, h := range hosts {
			t.Missing[id][j] = fmt.Errorf("%w: replica on %s: node down", kvstore.ErrUnavailable, h)
		}
	}
	for _, o := range r.nodes {
		if !o.n.Up() || o.st == nil {
			continue
		}
		for _, s := range o.st.Directory().Local {
			j := slices.Index(t.Hosts(s.ID), o.n.Addr())
			ref, err := r.w.Ref(s.Ref, o.n, r.nodes[viewer].n)
			if j < 0 || err != nil {
				continue
			}
			t.Refs[s.ID][j], t.Missing[s.ID][j] = ref, nil
		}
	}
	return t
}

// retable gives every client up a fresh table.
func (r *kvRun) retable() {
	for i, kn := range r.nodes {
		if kn.n.Up() && !kn.client.IsZero() {
			if err := kn.n.Send(kn.client, kvSetTable{r.table(i)}); err != nil {
				r.violation("retable %s: %v", kn.n.Name(), err)
			}
		}
	}
}

// down takes node i down (crash, or kill if kill): its client's requests
// in flight are lost with it.
func (r *kvRun) down(i int, kill bool) {
	kn := r.nodes[i]
	if kill {
		r.w.Kill(kn.n)
	} else {
		r.w.Crash(kn.n)
	}
	if kn.st != nil {
		r.caughtUp += kn.st.Stats().CaughtUp
	}
	kn.st, kn.client = nil, actor.Ref{}
	for _, o := range r.ops {
		if o.node == i && o.settled == 0 && !o.lost {
			o.lost = true
			r.lostOps++
		}
	}
	r.open[i] = 0
}

// restart restarts node i on its disk and reinstalls its store and client.
func (r *kvRun) restart(i int) {
	kn := r.nodes[i]
	if err := r.w.Restart(kn.n); err != nil {
		r.violation("restart %s: %v", kn.n.Name(), err)
		return
	}
	if err := r.install(i); err != nil {
		r.violation("%v", err)
		return
	}
	r.retable()
}

// issue sends a request to node i's client.
func (r *kvRun) issue(i int, in kvmodel.Input, final bool) {
	kn := r.nodes[i]
	id := len(r.ops)
	o := &kvOpState{node: i, gen: kn.n.Incarnation(), final: final,
		op: porcupine.Operation{ClientId: i, Input: in, Call: int64(r.w.Elapsed())}}
	r.ops = append(r.ops, o)
	r.open[i]++
	if err := kn.n.Send(kn.client, kvOp{id: id, in: in}); err != nil {
		r.violation("send to the client of %s: %v", kn.n.Name(), err)
	}
}

// settle records how request res.id settled, on node i's client of
// incarnation gen.
func (r *kvRun) settle(i int, gen uint64, res kvResult) {
	if res.id < 0 || res.id >= len(r.ops) {
		r.violation("client of %s settled an unknown request %d", r.nodes[i].n.Name(), res.id)
		return
	}
	o := r.ops[res.id]
	o.settled++
	if o.settled > 1 {
		r.violation("request %d (%v) settled twice: %v, then %v", res.id, o.op.Input, o.res.err, res.err)
		return
	}
	if o.node != i || o.gen != gen || o.lost {
		r.violation("request %d settled by the client of %s incarnation %d, sent to %d incarnation %d (lost %v)",
			res.id, r.nodes[i].n.Name(), gen, o.node, o.gen, o.lost)
	}
	if !o.lost {
		r.open[o.node]--
	}
	o.res, o.settleAt = res, r.w.Elapsed()
	if res.err != nil {
		msg := res.err.Error()
		r.errs[msg[:min(len(msg), *flagKVErrLen)]]++
	}
	o.op.Return = int64(r.w.Elapsed())
	in := o.op.Input.(kvmodel.Input)
	switch {
	case res.err == nil:
		r.ok++
		if in.Op == "get" {
			o.op.Output = kvmodel.Output{Val: string(res.e.V), Present: !res.e.TS.IsZero() && !res.e.Deleted}
		} else if a := r.acked[in.Key]; a.Less(res.ts) {
			r.acked[in.Key] = res.ts
		}
	case in.Op == "get":
		r.failedReads++
	case errors.Is(res.err, kvstore.ErrNotWritten):
		r.notWritten++
	default:
		r.unknown++
	}
	if o.final && res.err != nil {
		r.violation("final read of %q failed with every node up and no fault: %v", in.Key, res.err)
	}
	if o.final && res.err == nil {
		if a := r.acked[in.Key]; res.e.TS.Less(a) {
			r.violation("acknowledged write lost: key %q: the newest acknowledged write has stamp %+v, a read after every node crashed and restarted found %+v (%q)",
				in.Key, a, res.e.TS, res.e.V)
		}
	}
}

// inflight counts the requests of node (all nodes if -1) not settled and
// not lost.
func (r *kvRun) inflight(node int) int {
	if node >= 0 {
		return r.open[node]
	}
	n := 0
	for _, k := range r.open {
		n += k
	}
	return n
}

// history is the porcupine history: a failed read and a write that
// failed with ErrNotWritten are left out (they changed nothing), and so is
// a lost read; a write of unknown outcome, or lost with its client, may
// have happened at any time after its call (return time infinite).
func (r *kvRun) history() []porcupine.Operation {
	var h []porcupine.Operation
	for _, o := range r.ops {
		in := o.op.Input.(kvmodel.Input)
		op := o.op
		switch {
		case o.settled == 0 || o.lost:
			if in.Op == "get" {
				continue
			}
			op.Return = math.MaxInt64
		case o.res.err == nil:
		case in.Op == "get", errors.Is(o.res.err, kvstore.ErrNotWritten):
			continue
		default:
			op.Return = math.MaxInt64
		}
		h = append(h, op)
	}
	return h
}

// kvFaults is a seed's mix of faults: the chance of each, per fault tick.
type kvFaults struct {
	partition, block, crash, kill, latency, cut, slow, jump, shardCrash float64
	every                                                               time.Duration // between fault ticks
	maxDown                                                             int           // nodes down at once, at most
}

// runKV runs one seed: the load with faults for loadTime of virtual
// time, then every fault healed, every request settled, every node
// crashed and restarted, and a final read of every key. It returns the
// first violation ("" if none).
func runKV(t testing.TB, w *World, loadTime time.Duration) (*kvRun, string) {
	r := &kvRun{t: t, w: w, acked: map[string]kvstore.Stamp{}, errs: map[string]int{}}
	for i := range max(*flagKVKeys, 1) {
		r.keys = append(r.keys, fmt.Sprintf("k%d", i))
	}
	for i := range 4 { // three nodes of the store, and a client node
		kn := &kvNode{disk: kvstore.NewMemDisk()}
		name := fmt.Sprintf("kv%d", i)
		if i == 3 {
			kn.disk, name = nil, "client"
		}
		n, err := w.AddNode(name, func(n *Node) error { return kvstore.RegisterTypes(n.Remote()) })
		if err != nil {
			t.Fatal(err)
		}
		kn.n = n
		r.nodes = append(r.nodes, kn)
	}
	r.open = make([]int, len(r.nodes))
	for i := range r.nodes {
		if err := r.install(i); err != nil {
			t.Fatal(err)
		}
	}
	r.retable()

	rng := w.Rand()
	mix := kvFaults{
		partition: rng.Float64() * 0.3, block: rng.Float64() * 0.2, crash: rng.Float64() * 0.25,
		kill: rng.Float64() * 0.25, latency: rng.Float64() * 0.3, cut: rng.Float64() * 0.2,
		slow: rng.Float64() * 0.15, jump: rng.Float64() * 0.1, shardCrash: rng.Float64() * 0.2,
		every:   time.Duration(100+rng.IntN(900)) * time.Millisecond,
		maxDown: 1 + rng.IntN(2),
	}
	for _, kn := range r.nodes {
		if rng.IntN(2) == 0 {
			kn.n.SetDrift(rng.Float64()*0.02 - 0.01) // up to 1% fast or slow
		}
	}
	perClient := 1 + rng.IntN(6) // requests each client keeps in flight
	if *flagKVLoad > 0 {
		perClient = *flagKVLoad
	}
	if !*flagKVFaults {
		mix = kvFaults{every: time.Hour}
	}
	w.Logf("faults %+v, %d requests in flight per client", mix, perClient)

	type recovery struct {
		at time.Duration
		do func()
		s  string
	}
	var recoveries []recovery
	later := func(d time.Duration, s string, do func()) {
		recoveries = append(recoveries, recovery{at: w.Elapsed() + d, do: do, s: s})
	}
	fault := func(s string) {
		r.faults = append(r.faults, s)
		w.Logf("fault %s", s)
	}
	pair := func() (int, int) {
		a := rng.IntN(len(r.nodes))
		return a, (a + 1 + rng.IntN(len(r.nodes)-1)) % len(r.nodes)
	}
	downCount := func() int {
		n := 0
		for _, kn := range r.nodes {
			if !kn.n.Up() {
				n++
			}
		}
		return n
	}
	seq := 0
	nextFault := w.Elapsed() + mix.every
	end := w.Elapsed() + loadTime
	for w.Elapsed() < end && r.bug == "" {
		// Recoveries due.
		for k := 0; k < len(recoveries); {
			if rv := recoveries[k]; rv.at <= w.Elapsed() {
				recoveries = append(recoveries[:k], recoveries[k+1:]...)
				w.Logf("recover %s", rv.s)
				rv.do()
				continue
			}
			k++
		}
		// Faults.
		if w.Elapsed() >= nextFault {
			nextFault = w.Elapsed() + mix.every
			a, b := pair()
			na, nb := r.nodes[a].n, r.nodes[b].n
			d := time.Duration(200+rng.IntN(3000)) * time.Millisecond
			switch p := rng.Float64(); {
			case p < mix.partition:
				fault(fmt.Sprintf("partition %s %s for %v", na.Name(), nb.Name(), d))
				w.Partition(na, nb)
				later(d, "heal "+na.Name()+" "+nb.Name(), func() { w.Heal(na, nb) })
			case p < mix.partition+mix.block:
				fault(fmt.Sprintf("block %s->%s for %v", na.Name(), nb.Name(), d))
				w.Block(na, nb)
				later(d, "unblock "+na.Name()+" "+nb.Name(), func() { w.Unblock(na, nb) })
			case p < mix.partition+mix.block+mix.crash+mix.kill:
				if !na.Up() || downCount() >= mix.maxDown {
					break
				}
				kill := p >= mix.partition+mix.block+mix.crash
				how := map[bool]string{false: "crash", true: "kill"}[kill]
				fault(fmt.Sprintf("%s %s for %v", how, na.Name(), d))
				r.down(a, kill)
				later(d, "restart "+na.Name(), func() { r.restart(a) })
			case p < mix.partition+mix.block+mix.crash+mix.kill+mix.latency:
				lo := time.Duration(5+rng.IntN(50)) * time.Millisecond
				hi := lo + time.Duration(rng.IntN(300))*time.Millisecond
				fault(fmt.Sprintf("latency %s->%s %v-%v for %v", na.Name(), nb.Name(), lo, hi, d))
				w.SetLatency(na, nb, lo, hi)
				later(d, "latency "+na.Name()+" "+nb.Name(), func() { w.ClearLatency(na, nb) })
			case p < mix.partition+mix.block+mix.crash+mix.kill+mix.latency+mix.cut:
				fault(fmt.Sprintf("cut %s %s", na.Name(), nb.Name()))
				w.Cut(na, nb)
			case p < mix.partition+mix.block+mix.crash+mix.kill+mix.latency+mix.cut+mix.slow:
				busy := time.Duration(20+rng.IntN(500)) * time.Microsecond
				fault(fmt.Sprintf("slow %s (%v per event) for %v", na.Name(), busy, d))
				na.SetSlow(busy)
				later(d, "slow "+na.Name(), func() { na.SetSlow(0) })
			case p < mix.partition+mix.block+mix.crash+mix.kill+mix.latency+mix.cut+mix.slow+mix.jump:
				j := time.Duration(rng.IntN(2000)) * time.Millisecond
				fault(fmt.Sprintf("clock of %s jumps %v", na.Name(), j))
				na.Jump(j)
			case p < mix.partition+mix.block+mix.crash+mix.kill+mix.latency+mix.cut+mix.slow+mix.jump+mix.shardCrash:
				if st := r.nodes[a].st; st != nil && na.Up() {
					local := st.Directory().Local
					s := local[rng.IntN(len(local))]
					fault(fmt.Sprintf("crash replica %d on %s", s.ID, na.Name()))
					if err := na.Send(s.Ref, kvstore.CrashShard{Token: "sim"}); err != nil {
						r.violation("crash replica %d on %s: %v", s.ID, na.Name(), err)
					}
				}
			}
		}
		// Load: every client up keeps perClient requests in flight.
		for i, kn := range r.nodes {
			if !kn.n.Up() {
				continue
			}
			for n := r.inflight(i); n < perClient; n++ {
				in := kvmodel.Input{Key: r.keys[rng.IntN(len(r.keys))]}
				switch p := rng.IntN(10); {
				case p < 4:
					seq++
					in.Op, in.Val = "put", fmt.Sprintf("v%d", seq)
				case p < 5:
					in.Op = "del"
				default:
					in.Op = "get"
				}
				r.issue(i, in, false)
			}
		}
		w.Run(time.Duration(1+rng.IntN(20)) * time.Millisecond)
	}
	if r.bug != "" {
		return r, r.bug
	}

	// The end: every fault healed, every request settled.
	w.Logf("heal everything")
	for _, rv := range recoveries {
		rv.do()
	}
	for _, a := range r.nodes {
		for _, b := range r.nodes {
			if a != b {
				w.Heal(a.n, b.n)
				w.Unblock(a.n, b.n)
				w.ClearLatency(a.n, b.n)
			}
		}
	}
	for i, kn := range r.nodes {
		if !kn.n.Up() {
			r.restart(i)
		}
	}
	if !w.RunUntil(time.Minute, func() bool { return r.inflight(-1) == 0 || r.bug != "" }) {
		for id, o := range r.ops {
			if o.settled == 0 && !o.lost {
				r.violation("request %d (%v) from %s, sent at %v, never settled", id, o.op.Input, r.nodes[o.node].n.Name(), time.Duration(o.op.Call))
				break
			}
		}
	}
	if r.bug != "" {
		return r, r.bug
	}

	// Every node loses power, and comes back on its disk: what was
	// acknowledged must be there.
	w.Logf("crash every node, restart every node")
	for i := range r.nodes {
		r.down(i, false)
	}
	w.Run(100 * time.Millisecond)
	r.checkDisks()
	for i := range r.nodes {
		r.restart(i)
	}
	// The nodes learn that the others' old incarnations are gone (a reset,
	// or the heartbeat timeout) before the final reads.
	w.Run(3 * time.Second)
	for k, key := range r.keys {
		r.issue(k%len(r.nodes), kvmodel.Input{Op: "get", Key: key}, true)
	}
	if !w.RunUntil(time.Minute, func() bool { return r.inflight(-1) == 0 || r.bug != "" }) && r.bug == "" {
		r.violation("the final reads did not settle")
	}
	// Every store's catch-up (an actor: it runs simulated) ends, both
	// passes, with the cluster whole.
	caughtUp := func() bool {
		for _, kn := range r.nodes {
			if kn.st == nil {
				continue
			}
			select {
			case <-kn.st.CaughtUp():
			default:
				return false
			}
		}
		return true
	}
	if !w.RunUntil(time.Minute, caughtUp) && r.bug == "" {
		for _, kn := range r.nodes {
			if kn.st != nil {
				r.violation("the catch-up on %s did not end in a minute with every node up: %+v", kn.n.Name(), kn.st.Stats())
			}
		}
	}
	for _, kn := range r.nodes {
		if kn.st != nil {
			r.caughtUp += kn.st.Stats().CaughtUp
		}
	}
	if r.bug != "" {
		return r, r.bug
	}

	cpu := processCPU()
	h := r.history()
	checkStart := time.Now()
	res, _ := porcupine.CheckOperationsVerbose(kvmodel.Model, h, time.Minute)
	r.checkTook = time.Since(checkStart)
	r.checkCPU = processCPU() - cpu
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		return r, r.explain(h)
	default:
		return r, fmt.Sprintf("the linearizability check of %d operations did not finish: %v", len(h), res)
	}
	return r, ""
}

// kvConfig is the world of a TestKVStore run. The loops' queues are
// smaller than the default (8192): a node's restart makes new ones, and
// at the default size their allocation was a quarter of the run's time.
func kvConfig(seed uint64, timeline int) Config {
	return Config{Seed: seed, Timeline: timeline, Actor: func(_ string, cfg *actor.Config) { cfg.QueueCapacity = 1024 }}
}

// explain describes a history that is not linearizable: the operations
// of the first key whose own history is not (at most 200 of them, by
// their call time; porcupine checks key by key).
func (r *kvRun) explain(h []porcupine.Operation) string {
	for _, ops := range kvmodel.Model.Partition(h) {
		if porcupine.CheckOperations(kvmodel.Model, ops) {
			continue
		}
		ops = slices.Clone(ops)
		slices.SortStableFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		var b strings.Builder
		key := ops[0].Input.(kvmodel.Input).Key
		fmt.Fprintf(&b, "the history of key %q (%d operations) is not linearizable:", key, len(ops))
		for i, op := range ops {
			if i == 200 {
				fmt.Fprintf(&b, "\n  ... %d more", len(ops)-i)
				break
			}
			ret := "never"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			fmt.Fprintf(&b, "\n  %-14s client %s [%v, %s]", kvmodel.Model.DescribeOperation(op.Input, op.Output),
				r.nodes[op.ClientId].n.Name(), time.Duration(op.Call), ret)
		}
		return b.String()
	}
	return fmt.Sprintf("the history of %d operations is not linearizable (no single key's is: a checker bug?)", len(h))
}

// checkDisks checks that every acknowledged write is on the disks of a
// majority of its key's replicas (the newest acknowledged write of each
// key, or a newer version).
func (r *kvRun) checkDisks() {
	hosts := kvstore.Placement(kvShards, 3, r.members())
	replicas := map[[2]int]map[string]kvstore.Entry{} // by shard and node
	for _, key := range r.keys {
		acked, ok := r.acked[key]
		if !ok {
			continue
		}
		id := kvstore.ShardOf(key, kvShards)
		have := 0
		for i, kn := range r.nodes {
			if kn.disk == nil || !slices.Contains(hosts[id], kn.n.Addr()) {
				continue
			}
			m, ok := replicas[[2]int{id, i}]
			if !ok {
				var err error
				if m, err = kvstore.LoadReplica(kn.disk, id); err != nil {
					r.violation("the disk of %s: shard %d: %v", kn.n.Name(), id, err)
					return
				}
				replicas[[2]int{id, i}] = m
			}
			if !m[key].TS.Less(acked) {
				have++
			}
		}
		if have < 2 {
			r.violation("acknowledged write lost: key %q: its newest acknowledged write (stamp %+v) is on the disks of %d of its 3 replicas",
				key, acked, have)
		}
	}
}

// kvSeeds returns the seeds TestKVStore runs: -sim.seeds of them from
// -sim.seed, or kvDefaultSeeds when -sim.seeds is not given.
func kvSeeds() []uint64 {
	n := kvDefaultSeeds
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "sim.seeds" {
			n = *flagSeeds
		}
	})
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = *flagSeed + uint64(i)
	}
	return seeds
}

// TestKVStore runs the kvstore under random faults for each seed and
// checks its invariants; a failing seed prints its timeline and the
// command that replays it. The first seed runs twice: the same summary
// line, bit for bit.
func TestKVStore(t *testing.T) {
	for k, seed := range kvSeeds() {
		type outcome struct {
			summary  string
			events   uint64
			virtual  time.Duration
			timeline []string
			cpu      time.Duration // the process's, during the simulation
		}
		run := func(timeline int) (outcome, *kvRun, string, time.Duration) {
			w := New(kvConfig(seed, timeline))
			defer w.Close()
			wall, cpu := time.Now(), processCPU()
			r, bug := runKV(t, w, *flagKVTime)
			el := time.Since(wall) - r.checkTook // the simulation's own time
			cpu = processCPU() - cpu - r.checkCPU
			return outcome{w.Summary(), w.Events(), w.Elapsed(), w.Timeline(), cpu}, r, bug, el
		}
		timeline := 0
		if *flagTrace {
			timeline = 1 << 20
		}
		w, r, bug, wall := run(timeline)
		t.Logf("%s: virtual %v in %v of wall time (%.0f events/s, %.1fx real time), %v of CPU (%.0f ns/event, %.1f events/request); %d requests: %d ok, %d reads failed, %d writes not applied, %d of unknown outcome, %d lost with their client; %d faults; %d entries caught up; check took %v",
			w.summary, w.virtual.Round(time.Millisecond), wall.Round(time.Millisecond), float64(w.events)/wall.Seconds(),
			w.virtual.Seconds()/wall.Seconds(), w.cpu.Round(time.Millisecond), float64(w.cpu.Nanoseconds())/float64(w.events),
			float64(w.events)/float64(max(len(r.ops), 1)), len(r.ops), r.ok, r.failedReads, r.notWritten, r.unknown, r.lostOps, len(r.faults), r.caughtUp, r.checkTook.Round(time.Millisecond))
		if testing.Verbose() {
			var es []string
			for e, n := range r.errs {
				es = append(es, fmt.Sprintf("%6d %s", n, e))
			}
			slices.Sort(es)
			t.Logf("failures:\n%s\nfaults: %s", strings.Join(es, "\n"), strings.Join(r.faults, "; "))
		}
		if *flagTrace {
			t.Log("timeline:\n" + strings.Join(w.timeline, "\n"))
		}
		if bug != "" {
			// Run the seed again with a timeline to show how it came.
			w2, _, _, _ := run(3000)
			t.Fatalf("seed %d: %s\n(the rerun with a timeline: %s)\nlast %d lines of the timeline:\n%s\nreplay: go test ./sim -run 'TestKVStore$' -sim.seed=%d -sim.seeds=1 -v",
				seed, bug, w2.summary, len(w2.timeline), strings.Join(w2.timeline, "\n"), seed)
		}
		if k == 0 {
			w2, _, _, _ := run(0)
			if w2.summary != w.summary {
				t.Fatalf("two runs of seed %d differ:\n  %s\n  %s", seed, w.summary, w2.summary)
			}
		}
	}
}
