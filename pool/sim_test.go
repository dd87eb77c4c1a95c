package pool

import (
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
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
