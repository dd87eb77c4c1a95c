package event

import (
	"context"
	"testing"

	"github.com/actord/actord/actor"
)

// Benchmarks of the emit path. Each has a plain-Go or plain-runtime baseline
// in this file so that ratios hold on a noisy machine.
//
// The channel benchmarks emit and receive on one goroutine, in batches of
// benchBatch (the subscribers' buffer), so one op is exactly one event
// emitted and received, and the numbers measure the bus rather than the
// scheduler's goroutine hand-off (which a real subscriber on another
// goroutine adds, as the baseline would).

type benchEvent struct {
	N  int
	ID uint64
}

const benchBatch = 64

// BenchmarkBaselineChanSend: one op = one send and one receive on a buffered
// Go channel, in batches, on one goroutine.
func BenchmarkBaselineChanSend(b *testing.B) {
	ch := make(chan benchEvent, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(benchBatch, b.N-i)
		for j := 0; j < n; j++ {
			ch <- benchEvent{N: i + j}
		}
		for j := 0; j < n; j++ {
			<-ch
		}
		i += n
	}
}

// BenchmarkBaselineTenChanSends: one op = one send into each of ten
// buffered Go channels and one receive from each, in batches: the floor of
// BenchmarkEmitTenSubscribers.
func BenchmarkBaselineTenChanSends(b *testing.B) {
	chs := make([]chan benchEvent, 10)
	for i := range chs {
		chs[i] = make(chan benchEvent, benchBatch)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(benchBatch, b.N-i)
		for j := 0; j < n; j++ {
			for _, ch := range chs {
				ch <- benchEvent{N: i + j}
			}
		}
		for _, ch := range chs {
			for j := 0; j < n; j++ {
				<-ch
			}
		}
		i += n
	}
}

// BenchmarkEmitOneSubscriber: one op = one event emitted and received by one
// channel subscriber.
func BenchmarkEmitOneSubscriber(b *testing.B) {
	bus := New(Config{})
	defer bus.Close()
	em, err := NewEmitter[benchEvent](bus)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := Subscribe[benchEvent](bus, Buffer(benchBatch))
	if err != nil {
		b.Fatal(err)
	}
	out := sub.Out()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(benchBatch, b.N-i)
		for j := 0; j < n; j++ {
			_ = em.Emit(benchEvent{N: i + j})
		}
		for j := 0; j < n; j++ {
			<-out
		}
		i += n
	}
	b.StopTimer()
	if err := sub.Err(); err != nil || sub.Dropped() != 0 {
		b.Fatalf("subscription: err %v, dropped %d", err, sub.Dropped())
	}
}

// BenchmarkEmitTenSubscribers: one op = one event delivered to (and received
// by) ten channel subscribers.
func BenchmarkEmitTenSubscribers(b *testing.B) {
	bus := New(Config{})
	defer bus.Close()
	em, err := NewEmitter[benchEvent](bus)
	if err != nil {
		b.Fatal(err)
	}
	subs := make([]*Stream[benchEvent], 10)
	for i := range subs {
		if subs[i], err = Subscribe[benchEvent](bus, Buffer(benchBatch)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(benchBatch, b.N-i)
		for j := 0; j < n; j++ {
			_ = em.Emit(benchEvent{N: i + j})
		}
		for _, s := range subs {
			out := s.out
			for j := 0; j < n; j++ {
				<-out
			}
		}
		i += n
	}
	b.StopTimer()
	for _, s := range subs {
		if err := s.Err(); err != nil || s.Dropped() != 0 {
			b.Fatalf("subscription: err %v, dropped %d", err, s.Dropped())
		}
	}
}

// benchSink counts the events it receives and signals every window.
type benchSink struct {
	got    int
	window int
	tick   chan<- struct{}
}

func (s *benchSink) Receive(_ *actor.Context, msg any) (any, error) {
	s.got++
	if s.got%s.window == 0 {
		s.tick <- struct{}{}
	}
	return nil, nil
}

const actorWindow = 1024

// actorBench runs b.N sends through send to an actor on loop 1, in windows
// small enough for the actor's queue, from a plain goroutine.
func actorBench(b *testing.B, setup func(sys *actor.System, to actor.Ref) (send func(i int) error, done func())) {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	defer sys.Shutdown(context.Background())
	tick := make(chan struct{}, 1)
	to, err := sys.Spawn(context.Background(), func() actor.Actor {
		return &benchSink{window: actorWindow, tick: tick}
	}, actor.OnLoop(1))
	if err != nil {
		b.Fatal(err)
	}
	send, done := setup(sys, to)
	defer done()
	// Round b.N up to whole windows so the sink signals the last one.
	n := (b.N + actorWindow - 1) / actorWindow * actorWindow
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < n; i += actorWindow {
		for j := 0; j < actorWindow; j++ {
			if err := send(i + j); err != nil {
				b.Fatal(err)
			}
		}
		<-tick
	}
}

// BenchmarkBaselineActorSend: one op = one message sent with
// actor.System.Send from a plain goroutine and handled by an actor on loop 1.
func BenchmarkBaselineActorSend(b *testing.B) {
	actorBench(b, func(sys *actor.System, to actor.Ref) (func(int) error, func()) {
		return func(i int) error { return sys.Send(to, benchEvent{N: i}) }, func() {}
	})
}

// BenchmarkEmitToActor: one op = one event emitted from a plain goroutine
// and handled, as a message, by an actor on loop 1. The event is boxed once
// per Emit (one allocation, as for a plain Send of the same value).
func BenchmarkEmitToActor(b *testing.B) {
	actorBench(b, func(sys *actor.System, to actor.Ref) (func(int) error, func()) {
		bus := New(Config{})
		em, err := NewEmitter[benchEvent](bus)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := SubscribeActor(bus, sys, to, []Type{TypeOf[benchEvent]()})
		if err != nil {
			b.Fatal(err)
		}
		return func(i int) error {
				if err := em.Emit(benchEvent{N: i}); err != nil {
					return err
				}
				return sub.Err()
			}, func() {
				bus.Close()
			}
	})
}
