package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// store is a replica that acknowledges every write it is sent.
type store struct{ data map[string]string }

type put struct{ Key, Value string }

func (s *store) Receive(c *actor.Context, msg any) (any, error) {
	p, ok := msg.(put)
	if !ok {
		return nil, actor.ErrUnknownMessage
	}
	s.data[p.Key] = p.Value
	return "ack", nil
}

// startReplicas spawns n store replicas on sys and stops the one at index
// dead, so that asks to it fail with actor.ErrDead.
func startReplicas(ctx context.Context, sys *actor.System, n, dead int) []actor.Ref {
	var replicas []actor.Ref
	for range n {
		r, _ := sys.Spawn(ctx, func() actor.Actor { return &store{data: map[string]string{}} })
		replicas = append(replicas, r)
	}
	stopper, _ := sys.Spawn(ctx, func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(msg.(actor.Ref), nil) })
	})
	_, _ = sys.Ask(ctx, stopper, replicas[dead])
	return replicas
}

// A write acknowledged by a majority of three replicas while one of them
// is gone: an actor asks all three and continues with the first two acks.
func ExampleAsk() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(ctx)

	replicas := startReplicas(ctx, sys, 3, 2) // the third is gone: asks to it fail with actor.ErrDead

	done := make(chan string)
	writer, _ := sys.Spawn(ctx, func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			need := quorum.Majority(len(replicas))
			quorum.Ask(c, replicas, msg, need, time.Second).Then(func(c *actor.Context, v any, err error) {
				if err != nil {
					done <- "write failed: " + err.Error()
					return
				}
				done <- fmt.Sprintf("write acknowledged by %d of %d replicas", len(v.([]quorum.Result)), len(replicas))
			})
			return nil, nil
		})
	})
	_ = sys.Send(writer, put{"k", "v"})
	fmt.Println(<-done)
	// Output: write acknowledged by 2 of 3 replicas
}

// Wait is the same from a plain goroutine: here all three are needed and
// one is dead, so it fails as soon as that ask does.
func ExampleWait() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(ctx)

	replicas := startReplicas(ctx, sys, 3, 0) // the first is gone

	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := quorum.Wait(ctx, sys, replicas, put{"k", "v"}, len(replicas))
	var qe *quorum.Error
	if errors.As(err, &qe) {
		fmt.Println(errors.Is(err, quorum.ErrNoQuorum), errors.Is(err, actor.ErrDead), qe.Failed[0].From == replicas[0])
	}
	// Output: true true true
}
