package pool_test

import (
	"context"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/pool"
)

// squarer answers a number with its square.
type squarer struct{}

func (squarer) Receive(c *actor.Context, msg any) (any, error) {
	n, ok := msg.(int)
	if !ok {
		return nil, actor.Unhandled(msg)
	}
	return n * n, nil
}

// A pool of two to four workers on the least loaded loops; asks through the
// pool are answered by the workers.
func Example() {
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer func() { _ = sys.Shutdown(context.Background()) }()

	p, err := pool.New(pool.Config{
		Name:      "squares",
		New:       func() actor.Actor { return squarer{} },
		Strategy:  pool.LeastLoaded,
		Scale:     pool.ScaleConfig{Min: 2, Max: 4},
		LoopStats: sys.Stats,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ref, err := sys.Spawn(ctx, p.Factory())
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 1; i <= 3; i++ {
		v, err := sys.Ask(ctx, ref, i)
		fmt.Println(i, "->", v, err)
	}
	_, err = sys.Ask(ctx, ref, "seven")
	fmt.Println(err)
	// A worker may answer before the pool's turn that handed it the message
	// has counted it: read the counters once the pool has stopped.
	if err := sys.Stop(ctx, ref); err != nil {
		fmt.Println(err)
	}
	fmt.Println("routed", p.Stats().Routed)
	// Output:
	// 1 -> 1 <nil>
	// 2 -> 4 <nil>
	// 3 -> 9 <nil>
	// actor: unknown message type: string
	// routed 4
}
