package quorum_test

import (
	"context"
	"sync"
	"testing"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// answer replies with its input.
func answer(_ *actor.Context, msg any) (any, error) { return msg, nil }

// benchQuorum: one op = one call from an actor asking 3 replicas on
// another loop. The quorum call settles with the first 2 replies; the
// baseline joins the same three asks with Context.All (all 3).
func benchQuorum(b *testing.B, useAll, thrifty bool) {
	sys := newSystem(b)
	m := newManager(b, sys)
	refs := []actor.Ref{
		spawn(b, sys, answer, actor.OnLoop(1)),
		spawn(b, sys, answer, actor.OnLoop(1)),
		spawn(b, sys, answer, actor.OnLoop(1)),
	}
	cfg := config(b, m, nil, refs...)
	spec := quorum.Spec[int, int, []quorum.Reply[int]]{Quorum: quorum.Collect[int, int](quorum.Read)}
	if thrifty {
		spec.Thrifty = 1e9
	}
	done := make(chan error, 1)
	left := 0
	var next func(c *actor.Context)
	next = func(c *actor.Context) {
		if useAll {
			c.All(c.Ask(refs[0], 1), c.Ask(refs[1], 1), c.Ask(refs[2], 1)).Then(func(c *actor.Context, _ any, err error) {
				if left--; err != nil || left == 0 {
					done <- err
					return
				}
				next(c)
			})
			return
		}
		quorum.Ask(c, cfg, 1, spec).Then(func(c *actor.Context, _ []quorum.Reply[int], err error) {
			if left--; err != nil || left == 0 {
				done <- err
				return
			}
			next(c)
		})
	}
	d := spawn(b, sys, func(c *actor.Context, msg any) (any, error) {
		left = msg.(int)
		next(c)
		return nil, nil
	}, actor.OnLoop(0))
	b.ReportAllocs()
	b.ResetTimer()
	if err := sys.Send(d, b.N); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkQuorumAsk(b *testing.B)          { benchQuorum(b, false, false) }
func BenchmarkQuorumAskThrifty(b *testing.B)   { benchQuorum(b, false, true) }
func BenchmarkBaselineAllOfThree(b *testing.B) { benchQuorum(b, true, false) }

// BenchmarkQuorumCall: one op = one call from a goroutine through a Caller,
// settling with 2 replies of 3 (4×GOMAXPROCS goroutines, one call in
// flight each). BenchmarkBaselineGoroutineAsks: the same three asks with
// System.Ask, a goroutine each (what Wait did before Callers), using the
// first 2 replies but waiting for the third goroutine to end.
func BenchmarkQuorumCall(b *testing.B) {
	sys := newSystem(b)
	m := newManager(b, sys)
	cfg := config(b, m, nil, spawn(b, sys, answer, actor.OnLoop(1)), spawn(b, sys, answer, actor.OnLoop(1)), spawn(b, sys, answer, actor.OnLoop(1)))
	spec := quorum.Spec[int, int, []quorum.Reply[int]]{Quorum: quorum.Collect[int, int](quorum.Read)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := quorum.Call(ctx, m.Caller(), cfg, 1, spec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkBaselineGoroutineAsks(b *testing.B) {
	sys := newSystem(b)
	refs := []actor.Ref{spawn(b, sys, answer, actor.OnLoop(1)), spawn(b, sys, answer, actor.OnLoop(1)), spawn(b, sys, answer, actor.OnLoop(1))}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch := make(chan error, 3)
			var wg sync.WaitGroup
			for _, r := range refs {
				wg.Go(func() {
					_, err := sys.Ask(ctx, r, 1)
					ch <- err
				})
			}
			for range 2 {
				if err := <-ch; err != nil {
					b.Error(err)
				}
			}
			wg.Wait()
		}
	})
}
