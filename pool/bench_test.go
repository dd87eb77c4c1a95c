package pool

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/actord/actord/actor"
)

// spin is a fixed amount of CPU work (units of a few ns each).
func spin(units int) uint64 {
	x := uint64(88172645463325252)
	for range units {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

const benchUnits = 20000 // about 20 µs

type spinner struct{}

func (spinner) Receive(c *actor.Context, msg any) (any, error) {
	return spin(msg.(int)), nil
}

var sink atomic.Uint64

// BenchmarkDirect is the baseline: the work done on the calling goroutines,
// in parallel, with no actor in the way.
func BenchmarkDirect(b *testing.B) {
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sink.Add(spin(benchUnits))
		}
	})
}

// BenchmarkDirectSerial is the work on one goroutine: what one worker can do
// at best.
func BenchmarkDirectSerial(b *testing.B) {
	for b.Loop() {
		sink.Add(spin(benchUnits))
	}
}

func benchPool(b *testing.B, workers int, strategy Strategy, cost func(i uint64) int) {
	sys := actor.NewSystem(actor.Config{Logger: quiet})
	defer func() { _ = sys.Shutdown(context.Background()) }()
	p, err := New(Config{New: func() actor.Actor { return spinner{} }, Strategy: strategy, LoopStats: sys.Stats,
		Scale: ScaleConfig{Min: workers, Max: workers}, MaxPending: HardMaxPending, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ref, err := sys.Spawn(ctx, p.Factory(), actor.OnLoop(0))
	if err != nil {
		b.Fatal(err)
	}
	for p.Stats().Workers < int64(workers) {
		runtime.Gosched()
	}
	var n atomic.Uint64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := sys.Ask(ctx, ref, cost(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPool: the same work through a pool of 1 worker and of one worker
// per loop, asked by 8×GOMAXPROCS goroutines.
func BenchmarkPool(b *testing.B) {
	fixed := func(uint64) int { return benchUnits }
	for _, w := range []int{1, runtime.GOMAXPROCS(0), 2 * runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchPool(b, w, RoundRobin, fixed) })
	}
}

// BenchmarkUneven: one message in 8 costs 8 times the others; round-robin
// against least-loaded with one worker per loop.
func BenchmarkUneven(b *testing.B) {
	uneven := func(i uint64) int {
		if i%8 == 0 {
			return 8 * benchUnits / 4
		}
		return benchUnits / 4
	}
	for _, s := range []Strategy{RoundRobin, LeastLoaded} {
		b.Run(s.String(), func(b *testing.B) { benchPool(b, runtime.GOMAXPROCS(0), s, uneven) })
	}
}

// BenchmarkRoute is the cost of the pool itself: no work per message;
// no_pool asks one worker actor directly, the baseline.
func BenchmarkRoute(b *testing.B) {
	none := func(uint64) int { return 0 }
	b.Run("no_pool", func(b *testing.B) {
		sys := actor.NewSystem(actor.Config{Logger: quiet})
		defer func() { _ = sys.Shutdown(context.Background()) }()
		ctx := context.Background()
		ref, err := sys.Spawn(ctx, func() actor.Actor { return spinner{} })
		if err != nil {
			b.Fatal(err)
		}
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := sys.Ask(ctx, ref, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, s := range []Strategy{RoundRobin, LeastLoaded} {
		b.Run(s.String(), func(b *testing.B) { benchPool(b, runtime.GOMAXPROCS(0), s, none) })
	}
}
