package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// TestRemoteSupervision is a swarm of supervisors whose children are on
// other nodes: per seed, a root supervisor on node n0 (one for one, one
// for all or rest for one, as the seed draws) with three children spread
// over the other nodes, while the seed crashes, kills and restarts those
// nodes, partitions them from n0, cuts connections and crashes children.
// Then every fault heals and it checks: the supervisor runs every child,
// each on a node that is up, each answering; no child runs twice (an
// instance the supervisor does not know is an orphan); and a supervisor
// whose intensity the faults exceeded has stopped with its children.
//
//	go test ./sim -run 'TestRemoteSupervision$' -sim.seeds=200 -v
func TestRemoteSupervision(t *testing.T) {
	if testing.Short() {
		t.Skip("a swarm")
	}
	seeds := *flagSeeds
	if seeds == 0 {
		seeds = 20
		if raceEnabled {
			seeds = 3
		}
	}
	var orphans int
	for i := range seeds {
		seed := *flagSeed + uint64(i)
		v, o, w := remoteSupervision(seed, 0)
		orphans += o
		w.Close()
		if o > 0 {
			v = append(v, fmt.Sprintf("%d orphans: child instances running that the supervisor does not know", o))
		}
		if len(v) > 0 {
			_, _, w := remoteSupervision(seed, *flagTimeline)
			defer w.Close()
			t.Fatalf("seed %d: %d violations:\n  %s\ntimeline (last %d lines):\n%s\nreplay: go test ./sim -run 'TestRemoteSupervision$' -sim.seed=%d -sim.seeds=1 -v",
				seed, len(v), strings.Join(v, "\n  "), len(w.Timeline()), strings.Join(w.Timeline(), "\n"), seed)
		}
	}
	t.Logf("%d seeds from %d: %d orphans", seeds, *flagSeed, orphans)
}

// instance is a running worker of the swarm, as it recorded itself.
type instance struct {
	node *Node
	gen  uint64 // the node's incarnation
	ref  actor.Ref
}

type rsWorld struct {
	w       *World
	nodes   []*Node
	live    map[string][]instance // by child id
	viol    []string
	crashes int // children crashed on purpose
}

func (r *rsWorld) violation(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.viol = append(r.viol, s)
	r.w.Logf("VIOLATION %s", s)
}

// alive lists child id's instances that still run: on a node up in the
// incarnation that started them.
func (r *rsWorld) alive(id string) []instance {
	var out []instance
	for _, in := range r.live[id] {
		if in.node.Up() && in.node.Incarnation() == in.gen {
			out = append(out, in)
		}
	}
	return out
}

type rsCrash struct{}

func remoteSupervision(seed uint64, timeline int) ([]string, int, *World) {
	w := New(Config{Seed: seed, Timeline: timeline})
	r := &rsWorld{w: w, live: map[string][]instance{}}
	rng := rand.New(rand.NewPCG(seed, 77))
	var self *Node // the node whose init runs
	kind := func(n *Node) error {
		n.Remote().RegisterKind("w", func(args any) (actor.Factory, error) {
			id, _ := args.(string)
			return func() actor.Actor {
				return &rsWorker{r: r, node: n, id: id}
			}, nil
		})
		self = n
		return nil
	}
	nn := 3 + rng.IntN(2)
	for i := range nn {
		r.nodes = append(r.nodes, w.MustAddNode(fmt.Sprintf("n%d", i), kind))
	}
	_ = self
	root := r.nodes[0]
	var addrs []string
	for _, n := range r.nodes[1:] {
		addrs = append(addrs, n.Addr())
	}
	strategies := []supervisor.Strategy{supervisor.OneForOne, supervisor.OneForAll, supervisor.RestForOne}
	strategy := strategies[rng.IntN(len(strategies))]
	maxR := 1000
	if rng.IntN(4) == 0 {
		maxR = 2 // the faults exceed it
	}
	ids := []string{"a", "b", "c"}
	var children []supervisor.ChildSpec
	for _, id := range ids {
		children = append(children, supervisor.RemoteWorker(id, supervisor.Remote{Kind: "w", Args: id, StartTimeout: 2 * time.Second}))
	}
	w.Logf("nodes %d, strategy %v, intensity %d in a minute", nn, strategy, maxR)
	sup, err := root.Spawn(supervisor.New(supervisor.Spec{
		Strategy: strategy, MaxR: maxR, MaxT: time.Minute,
		Cluster:  remote.NewNodeSet(root.Remote(), addrs...),
		Children: children,
		Logger:   slog.New(slog.DiscardHandler),
	}))
	if err != nil {
		r.violation("spawn the supervisor: %v", err)
		return r.viol, 0, w
	}
	mon := newWatcher()
	monRef := spawnOrFail2(root, mon)
	if monRef.IsZero() {
		r.violation("spawn the monitor")
		return r.viol, 0, w
	}
	_ = root.Send(monRef, watchMonitor{to: sup})
	// The faults start once the children run: a static child that cannot
	// start at all makes its supervisor fail to start (as OTP's does).
	started := func() bool {
		v, err := root.Ask(sup, supervisor.CountChildren{}, time.Second)
		return err == nil && v.(supervisor.ChildCounts).Active == len(ids)
	}
	if !w.RunUntil(10*time.Second, started) {
		r.violation("the children did not start")
		return r.viol, 0, w
	}

	// Faults, for 20 s of virtual time.
	type recovery struct {
		at time.Duration
		do func()
	}
	var recoveries []recovery
	later := func(d time.Duration, do func()) { recoveries = append(recoveries, recovery{w.Elapsed() + d, do}) }
	end := w.Elapsed() + 20*time.Second
	for w.Elapsed() < end {
		for k := 0; k < len(recoveries); {
			if rv := recoveries[k]; rv.at <= w.Elapsed() {
				recoveries = slices.Delete(recoveries, k, k+1)
				rv.do()
				continue
			}
			k++
		}
		n := r.nodes[1+rng.IntN(nn-1)]
		d := time.Duration(200+rng.IntN(2500)) * time.Millisecond
		switch p := rng.IntN(10); {
		case p < 2 && n.Up():
			w.Logf("fault crash %s for %v", n.Name(), d)
			w.Crash(n)
			later(d, func() { _ = w.Restart(n) })
		case p < 3 && n.Up():
			w.Logf("fault kill %s for %v", n.Name(), d)
			w.Kill(n)
			later(d, func() { _ = w.Restart(n) })
		case p < 5:
			w.Logf("fault partition %s %s for %v", root.Name(), n.Name(), d)
			w.Partition(root, n)
			later(d, func() { w.Heal(root, n) })
		case p < 6:
			w.Logf("fault cut %s %s", root.Name(), n.Name())
			w.Cut(root, n)
		case p < 8:
			id := ids[rng.IntN(len(ids))]
			if in := r.alive(id); len(in) > 0 {
				x := in[rng.IntN(len(in))]
				w.Logf("fault crash child %s %v on %s", id, x.ref, x.node.Name())
				_ = x.node.Send(x.ref, rsCrash{})
				r.crashes++
			}
		}
		w.Run(time.Duration(100+rng.IntN(600)) * time.Millisecond)
	}
	w.Logf("heal everything")
	for _, rv := range recoveries {
		rv.do()
	}
	for _, a := range r.nodes {
		for _, b := range r.nodes {
			if a != b {
				w.Heal(a, b)
			}
		}
		if !a.Up() {
			_ = w.Restart(a)
		}
	}
	w.Run(30 * time.Second)

	stopped := len(mon.downs[sup]) > 0
	if stopped && maxR > 100 {
		r.violation("the supervisor stopped (%v) though its intensity was not exceeded", mon.downs[sup])
	}
	orphans := 0
	if stopped {
		// Its children were stopped with it: none it knew runs.
		for _, id := range ids {
			orphans += len(r.alive(id))
		}
		return r.viol, orphans, w
	}
	v, err := root.Ask(sup, supervisor.WhichChildren{}, 5*time.Second)
	if err != nil {
		r.violation("WhichChildren: %v", err)
		return r.viol, 0, w
	}
	for _, ci := range v.([]supervisor.ChildInfo) {
		if !ci.Running {
			r.violation("child %s is not running after the faults healed: %+v", ci.ID, ci)
			continue
		}
		var host *Node
		for _, n := range r.nodes {
			if n.Addr() == ci.Node {
				host = n
			}
		}
		if host == nil || host == root {
			r.violation("child %s runs on %q, not one of the other nodes", ci.ID, ci.Node)
			continue
		}
		if got, err := root.Ask(ci.Ref, "ping", 5*time.Second); got != "ping" || err != nil {
			r.violation("child %s on %s does not answer: %v, %v", ci.ID, host.Name(), got, err)
		}
		// The supervisor's instance, as its own node names it.
		var local actor.Ref
		if name, addr, id, ok := root.Remote().ExportRef(ci.Ref); ok {
			local, _ = host.Remote().ImportRef(name, addr, id)
		}
		known := false
		for _, in := range r.alive(ci.ID) {
			if in.node == host && in.ref == local {
				known = true
			} else {
				orphans++ // another instance, even one on the same node
			}
		}
		if !known {
			r.violation("child %s: no live instance on %s, where the supervisor says it runs", ci.ID, host.Name())
		}
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "seed %d: %d nodes, %v, intensity %d: %d children crashed, supervisor stopped %v, %d orphans; %s\n",
			seed, nn, strategy, maxR, r.crashes, stopped, orphans, w.Summary())
	}
	return r.viol, orphans, w
}

func spawnOrFail2(n *Node, a actor.Actor) actor.Ref {
	ref, err := n.Spawn(func() actor.Actor { return a })
	if err != nil {
		return actor.Ref{}
	}
	return ref
}

// rsWorker is a remote child: it records itself while it runs, answers
// pings and crashes on rsCrash.
type rsWorker struct {
	r    *rsWorld
	node *Node
	id   string
	ref  actor.Ref
}

func (x *rsWorker) Start(c *actor.Context) error {
	x.ref = c.Self()
	x.r.live[x.id] = append(x.r.live[x.id], instance{node: x.node, gen: x.node.Incarnation(), ref: x.ref})
	return nil
}

func (x *rsWorker) Terminate(*actor.Context, error) {
	x.r.live[x.id] = slices.DeleteFunc(x.r.live[x.id], func(in instance) bool { return in.node == x.node && in.ref == x.ref })
}

var errCrashed = errors.New("crashed on purpose")

func (x *rsWorker) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(rsCrash); ok {
		panic(errCrashed)
	}
	return msg, nil
}
