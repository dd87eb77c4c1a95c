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

// BenchmarkEmitWildcard: one op = one event emitted and received by one
// wildcard subscriber (SubscribeAll), which receives it boxed in an any.
func BenchmarkEmitWildcard(b *testing.B) {
	bus := New(Config{})
	defer bus.Close()
	em, err := NewEmitter[benchEvent](bus)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := SubscribeAll(bus, Buffer(benchBatch))
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

// benchTagged is an event with fields and exact tags for the filter
// benchmarks.
type benchTagged struct {
	N    int
	Peer string
	Tags []string
}

func (e benchTagged) EventTags() []string { return e.Tags }

// benchFiltered runs one op = one event emitted to one channel subscriber
// with the given filter option, which accepts it, and received.
func benchFiltered(b *testing.B, opt Option) {
	bus := New(Config{})
	defer bus.Close()
	em, err := NewEmitter[benchTagged](bus)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := Subscribe[benchTagged](bus, Buffer(benchBatch), opt)
	if err != nil {
		b.Fatal(err)
	}
	out := sub.Out()
	tags := []string{"region=eu", "peer=node-2", "critical"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(benchBatch, b.N-i)
		for j := 0; j < n; j++ {
			_ = em.Emit(benchTagged{N: i + j + 1, Peer: "node-2", Tags: tags})
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

// BenchmarkEmitFilterQueryFields: a two-condition query on fields
// (N > 0 AND Peer = 'node-2').
func BenchmarkEmitFilterQueryFields(b *testing.B) {
	benchFiltered(b, MatchQuery("N > 0 AND Peer = 'node-2'"))
}

// BenchmarkEmitFilterQueryTags: a two-condition query on exact tags
// (peer = 'node-2' AND critical EXISTS).
func BenchmarkEmitFilterQueryTags(b *testing.B) {
	benchFiltered(b, MatchQuery("peer = 'node-2' AND critical EXISTS"))
}

// BenchmarkEmitFilterTagQuery: MatchTags with one required tag.
func BenchmarkEmitFilterTagQuery(b *testing.B) {
	benchFiltered(b, MatchTags(TagQuery{All: []string{"peer=node-2"}}))
}

// BenchmarkEmitFilterWhere: the same selection as a Where predicate, the
// floor of the filter benchmarks.
func BenchmarkEmitFilterWhere(b *testing.B) {
	benchFiltered(b, Where(func(e benchTagged) bool { return e.N > 0 && e.Peer == "node-2" }))
}

// BenchmarkEmitStateful: BenchmarkEmitOneSubscriber with a stateful
// emitter (the per-type state lock and the copy of the last event).
func BenchmarkEmitStateful(b *testing.B) {
	bus := New(Config{})
	defer bus.Close()
	em, err := NewEmitter[benchEvent](bus, Stateful())
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
}
