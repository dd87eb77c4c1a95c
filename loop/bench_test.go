package loop

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchLimit bounds every wait in a benchmark, so a bug fails it instead of
// hanging it.
const benchLimit = time.Minute

func BenchmarkRingPushPop(b *testing.B) {
	r := newRing[int](1024)
	var v int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.push(i); err != nil {
			b.Fatal(err)
		}
		if !r.pop(&v) || v != i {
			b.Fatalf("pop = %d, want %d", v, i)
		}
	}
}

// fanIn runs 4 producers sending b.N messages in total (one op = one
// message) to a single consumer, which runs on the benchmark goroutine.
func fanIn(b *testing.B, send func(int), recv func() (int, bool)) {
	const producers = 4
	b.ReportAllocs()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for p := 0; p < producers; p++ {
		n := b.N / producers
		if p < b.N%producers {
			n++
		}
		wg.Go(func() {
			<-start
			for i := 0; i < n; i++ {
				send(i)
			}
		})
	}
	b.ResetTimer()
	close(start)
	deadline := time.Now().Add(benchLimit)
	for got := 0; got < b.N; {
		if _, ok := recv(); ok {
			got++
			continue
		}
		if got&1023 == 0 && time.Now().After(deadline) {
			b.Fatalf("fan-in stalled after %d of %d messages", got, b.N)
		}
	}
	b.StopTimer()
	wg.Wait()
}

func BenchmarkRingFanIn4(b *testing.B) {
	r := newRing[int](1024)
	fanIn(b,
		func(i int) {
			for {
				err := r.push(i)
				if err == nil {
					return
				}
				if !errors.Is(err, ErrFull) {
					panic(err)
				}
				runtime.Gosched()
			}
		},
		func() (int, bool) {
			var v int
			ok := r.pop(&v)
			if !ok {
				runtime.Gosched() // let the producers run, as they do when the ring is full
			}
			return v, ok
		})
}

func BenchmarkBaselineChanFanIn4(b *testing.B) {
	ch := make(chan int, 1024)
	fanIn(b,
		func(i int) { ch <- i },
		func() (int, bool) { return <-ch, true })
}

// countHandler counts events and closes done when it has seen want of them.
type countHandler struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (h *countHandler) Handle(*int) {
	if h.n.Add(1) == h.want {
		close(h.done)
	}
}

func BenchmarkLoopPostHandle(b *testing.B) {
	h := &countHandler{want: int64(b.N), done: make(chan struct{})}
	l := New[int](h, Config{})
	res := make(chan error, 1)
	go func() { res <- l.Run(context.Background()) }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		err := l.Post(i)
		switch {
		case err == nil:
			i++
		case errors.Is(err, ErrFull):
			runtime.Gosched()
		default:
			b.Fatal(err)
		}
	}
	select {
	case <-h.done:
	case <-time.After(benchLimit):
		b.Fatalf("handled %d of %d events", h.n.Load(), b.N)
	}
	b.StopTimer()
	l.Interrupt()
	select {
	case err := <-res:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(benchLimit):
		b.Fatal("Run did not return")
	}
	l.Close(func(*int) { b.Error("event left over") })
}

// BenchmarkLoopStep measures the deterministic path: post and Step on the
// same goroutine.
func BenchmarkLoopStep(b *testing.B) {
	h := &countHandler{want: -1}
	l := New[int](h, Config{})
	defer l.Close(nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := l.Post(i); err != nil {
			b.Fatal(err)
		}
		if !l.Step() {
			b.Fatal("Step handled nothing")
		}
	}
}

func BenchmarkTimerHeapPushPop(b *testing.B) {
	var h timerHeap[int]
	base := time.Now()
	var v int
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		// Keep ~64 pending entries so push and pop do real sifting.
		h.push(base.Add(time.Duration(i*7919%1000)*time.Microsecond), i)
		if len(h.items) > 64 {
			h.popDue(1<<62, &v)
		}
	}
}
