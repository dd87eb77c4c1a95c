package actor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/actord/actord/actor"
)

// tally counts what it is sent and answers "count" with the total.
type tally struct{ n int }

func (t *tally) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "count" {
		return t.n, nil
	}
	t.n++
	return nil, nil
}

// From plain goroutines: producers that SendWait are slowed to the actor's
// pace instead of being refused; AskTimeout bounds a request without a
// context; Stop returns once the actor has stopped; SpawnMany starts many
// actors in one round trip per loop.
func ExampleSystem_SendWait() {
	sys := actor.NewSystem(actor.Config{QueueCapacity: 16})
	defer sys.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	counter, err := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 { // far more than the queue holds
				if err := sys.SendWait(ctx, counter, "tick"); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	n, err := sys.AskTimeout(counter, "count", time.Second)
	fmt.Println(n, err)
	fmt.Println(sys.Stop(ctx, counter))

	workers, err := sys.SpawnMany(ctx, 100, func() actor.Actor { return &tally{} })
	fmt.Println(len(workers), err)
	// Output:
	// 4000 <nil>
	// <nil>
	// 100 <nil>
}

// SendMany queues a batch in one step and returns how many it queued: a
// prefix of the batch when the queue fills, the rest to be sent again.
func ExampleSystem_SendMany() {
	sys := actor.NewSystem(actor.Config{QueueCapacity: 64})
	defer sys.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	counter, err := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	if err != nil {
		panic(err)
	}
	batch := make([]any, 1000) // more than the queue holds
	for i := range batch {
		batch[i] = i
	}
	for rest := batch; len(rest) > 0; {
		n, err := sys.SendMany(counter, rest)
		rest = rest[n:]
		if errors.Is(err, actor.ErrQueueFull) {
			runtime.Gosched() // or SendWait the next one, or slow the source
		} else if err != nil {
			panic(err)
		}
	}
	n, err := sys.AskTimeout(counter, "count", time.Second)
	fmt.Println(n, err)
	// Output:
	// 1000 <nil>
}
