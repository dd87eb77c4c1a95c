package pool

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/sim"
)

// The pool runs under the simulator: a load step scales it up and back
// down on virtual time, and a seed replays the run event for event.
func TestPoolUnderSimulator(t *testing.T) {
	run := func(seed uint64) (string, Stats) {
		w := sim.New(sim.Config{Seed: seed})
		defer w.Close()
		n := w.MustAddNode("a", nil)
		var p *Pool
		p, err := New(Config{
			Name: "sim", Strategy: LeastLoaded, Logger: quiet, LoopStats: n.System().Stats,
			New: func() actor.Actor { return &timedWorker{p: p, cost: 10 * time.Millisecond} },
			Scale: ScaleConfig{Min: 1, Max: 4, Up: 4, Down: 1, UpAfter: 500 * time.Millisecond,
				IdleAfter: 3 * time.Second, Cooldown: 2 * time.Second},
		})
		if err != nil {
			t.Fatal(err)
		}
		pool, err := n.Spawn(p.Factory())
		if err != nil {
			t.Fatal(err)
		}
		l := &load{pool: pool, period: time.Second / 300, on: func(at time.Duration) bool { return at < 10*time.Second }}
		if _, err := n.Spawn(func() actor.Actor { return l }); err != nil {
			t.Fatal(err)
		}
		w.Run(30 * time.Second)
		st := p.Stats()
		if l.ok != l.sent || l.fail != 0 {
			t.Fatalf("seed %d: jobs sent %d, answered %d, failed %d", seed, l.sent, l.ok, l.fail)
		}
		return w.Summary(), st
	}
	sum1, st1 := run(7)
	sum2, st2 := run(7)
	if sum1 != sum2 || st1 != st2 {
		t.Fatalf("one seed, two runs:\n%s %+v\n%s %+v", sum1, st1, sum2, st2)
	}
	if st1.ScaleUps == 0 || st1.ScaleDowns == 0 || st1.Workers != 1 {
		t.Fatalf("stats %+v: want a scale up under the load and back to 1 worker", st1)
	}
	t.Log(sum1, fmt.Sprintf("%+v", st1))
}

// Remote workers: one worker on the pool's node, two on b and c; when b is
// lost, the asks in flight there fail and its worker is replaced on c. One
// seed replays the run.
func TestRemoteWorkersUnderSimulator(t *testing.T) {
	run := func(seed uint64) (string, Stats) {
		w := sim.New(sim.Config{Seed: seed})
		defer w.Close()
		kind := func(n *sim.Node) error {
			name := n.Name()
			n.Remote().RegisterKind("echo", func(any) (actor.Factory, error) {
				return func() actor.Actor {
					return fn(func(c *actor.Context, msg any) (any, error) { return name, nil })
				}, nil
			})
			return nil
		}
		a := w.MustAddNode("a", nil)
		b := w.MustAddNode("b", kind)
		c := w.MustAddNode("c", kind)
		p, err := New(Config{
			Name: "remote", Logger: quiet, LoopStats: a.System().Stats,
			New:   func() actor.Actor { return fn(func(*actor.Context, any) (any, error) { return "a", nil }) },
			Scale: ScaleConfig{Min: 3, Max: 3},
			Remote: &RemoteWorkers{Cluster: remote.NewNodeSet(a.Remote(), b.Addr(), c.Addr()), Kind: "echo",
				StartTimeout: 2 * time.Second, LocalMax: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		pool, err := a.Spawn(p.Factory())
		if err != nil {
			t.Fatal(err)
		}
		if !w.RunUntil(10*time.Second, func() bool { return p.Stats().Workers == 3 }) {
			t.Fatalf("seed %d: workers %+v", seed, p.Stats())
		}
		answers := func() map[any]int {
			out := map[any]int{}
			for range 6 {
				v, err := a.Ask(pool, "who", 5*time.Second)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				out[v]++
			}
			return out
		}
		if got := answers(); got["a"] != 2 || got["b"] != 2 || got["c"] != 2 {
			t.Fatalf("seed %d: answers %v, want 2 each from a, b and c", seed, got)
		}
		// Six asks from an actor of a, two of them in flight to b when b
		// loses its power.
		d := &driver{want: 6}
		dref, err := a.Spawn(func() actor.Actor { return d })
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Send(dref, batch{pool, []any{"who", "who", "who", "who", "who", "who"}}); err != nil {
			t.Fatal(err)
		}
		if !w.RunUntil(time.Second, func() bool { return p.Stats().Routed == 12 }) {
			t.Fatalf("seed %d: the asks were not routed: %+v", seed, p.Stats())
		}
		w.Crash(b)
		if !w.RunUntil(20*time.Second, func() bool { return p.Stats().Workers == 3 && p.Stats().Started == 4 && d.settled() }) {
			t.Fatalf("seed %d: no replacement: %+v", seed, p.Stats())
		}
		lost := 0
		for _, err := range d.results {
			switch {
			case err == nil:
			case errors.Is(err, remote.ErrNodeDown):
				lost++
			default:
				t.Fatalf("seed %d: an ask failed with %v, want remote.ErrNodeDown", seed, err)
			}
		}
		if st := p.Stats(); lost != 2 || st.Dropped != 2 {
			t.Fatalf("seed %d: %d asks lost with b, %d dropped; want 2 and 2", seed, lost, st.Dropped)
		}
		if got := answers(); got["a"] != 2 || got["c"] != 4 {
			t.Fatalf("seed %d: answers %v after b was lost, want 2 from a and 4 from c", seed, got)
		}
		return w.Summary(), p.Stats()
	}
	sum1, st1 := run(3)
	sum2, st2 := run(3)
	if sum1 != sum2 || st1 != st2 {
		t.Fatalf("one seed, two runs:\n%s %+v\n%s %+v", sum1, st1, sum2, st2)
	}
	t.Log(sum1, fmt.Sprintf("%+v", st1))
}
