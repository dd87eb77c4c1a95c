package sim_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/sim"
)

type echo struct{}

func (echo) Receive(c *actor.Context, msg any) (any, error) { return msg, nil }

// Two simulated nodes: an ask across them, then a partition that makes
// the other node down after the heartbeat timeout. The whole run takes
// a few milliseconds of real time, and the same seed gives the same run.
func Example() {
	w := sim.New(sim.Config{Seed: 42})
	defer w.Close()
	a := w.MustAddNode("a", nil)
	b := w.MustAddNode("b", nil)

	r, err := b.Spawn(func() actor.Actor { return echo{} })
	if err != nil {
		panic(err)
	}
	ref, err := w.Ref(r, b, a) // the echo actor as node a reaches it
	if err != nil {
		panic(err)
	}
	v, err := a.Ask(ref, "hello", time.Second)
	fmt.Println(v, err)

	w.Partition(a, b)
	start := w.Now()
	_, err = a.Ask(ref, "again", 10*time.Second)
	fmt.Println(errors.Is(err, remote.ErrNodeDown), w.Now().Sub(start) >= time.Second)
	// Output:
	// hello <nil>
	// true true
}
