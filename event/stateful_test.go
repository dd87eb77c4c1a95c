package event

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/actord/actord/actor"
)

// Modelled on libp2p's eventbus TestStateful: an event emitted by a
// stateful emitter before anyone subscribed reaches the first subscriber,
// even with a buffer of one.
func TestStatefulGivesLastToNewSubscriber(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b, Stateful()))(t)
	_ = em.Emit(Tick{1})
	_ = em.Emit(Tick{2})
	s := must(Subscribe[Tick](b, Buffer(1)))(t)
	if got := recv(t, s.Out(), "last"); got.N != 2 {
		t.Fatalf("got %v, want the last event, Tick{2}", got)
	}
	_ = em.Emit(Tick{3})
	if got := recv(t, s.Out(), "next"); got.N != 3 {
		t.Fatalf("got %v, want Tick{3}", got)
	}
	if len(s.Out()) != 0 {
		t.Fatalf("%d more events, want none (the last event is given once)", len(s.Out()))
	}
	if info := b.Types(); len(info) != 1 || !info[0].Stateful {
		t.Fatalf("Types() = %+v, want Tick stateful", info)
	}
}

// Modelled on libp2p's TestNonStateful: without the option, a late
// subscriber gets nothing of the past.
func TestNonStatefulGivesNothingOld(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	_ = em.Emit(Tick{1})
	s := must(Subscribe[Tick](b, Buffer(1)))(t)
	select {
	case ev := <-s.Out():
		t.Fatalf("got %v from before the subscription", ev)
	default:
	}
	_ = em.Emit(Tick{2})
	if got := recv(t, s.Out(), "new"); got.N != 2 {
		t.Fatalf("got %v", got)
	}
}

// While a stateful emitter is open, every emitter of the type updates the
// last event; when the last stateful emitter closes, the bus forgets it.
func TestStatefulLastForgottenWithItsEmitter(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	state := must(NewEmitter[Tick](b, Stateful()))(t)
	plain := must(NewEmitter[Tick](b))(t)
	_ = state.Emit(Tick{1})
	_ = plain.Emit(Tick{2})
	s := must(Subscribe[Tick](b, Buffer(4)))(t)
	if got := recv(t, s.Out(), "last"); got.N != 2 {
		t.Fatalf("got %v, want Tick{2} from the plain emitter", got)
	}
	state.Close()
	_ = plain.Emit(Tick{3})
	late := must(Subscribe[Tick](b, Buffer(4)))(t)
	select {
	case ev := <-late.Out():
		t.Fatalf("got %v after the stateful emitter closed", ev)
	default:
	}
	if info := b.Types(); info[0].Stateful {
		t.Fatal("Types() says stateful after its emitter closed")
	}
}

// The last event passes through the new subscription's filters, and a
// wildcard subscription is not given it (as libp2p's).
func TestStatefulLastFilteredNotWildcard(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b, Stateful()))(t)
	_ = em.Emit(Tick{3})
	odd := must(Subscribe[Tick](b, Where(func(e Tick) bool { return e.N%2 == 1 })))(t)
	even := must(Subscribe[Tick](b, MatchQuery("N < 3")))(t)
	all := must(SubscribeAll(b))(t)
	if got := recv(t, odd.Out(), "odd"); got.N != 3 {
		t.Fatalf("odd got %v", got)
	}
	if len(even.Out()) != 0 || len(all.Out()) != 0 {
		t.Fatalf("filtered subscription got %d, wildcard got %d, want 0 and 0", len(even.Out()), len(all.Out()))
	}
}

// An actor subscription is sent the last event first, as a message.
func TestStatefulLastToActor(t *testing.T) {
	sys := newSystem(t, actor.Config{Loops: 2})
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b, Stateful()))(t)
	_ = em.Emit(Tick{7})
	out := make(chan any, 8)
	ref := spawn(t, sys, collector(out))
	must(SubscribeActor(b, sys, ref, []Type{TypeOf[Tick]()}))(t)
	_ = em.Emit(Tick{8})
	if got := recv(t, out, "last"); got != (Tick{7}) {
		t.Fatalf("got %v, want Tick{7}", got)
	}
	if got := recv(t, out, "next"); got != (Tick{8}) {
		t.Fatalf("got %v, want Tick{8}", got)
	}
}

// A last event that does not fit (two stateful types, a buffer of one) is
// handled by the subscription's policy, after it was installed.
func TestStatefulLastOverflow(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	ticks := must(NewEmitter[Tick](b, Stateful()))(t)
	closes := must(NewEmitter[Closed](b, Stateful()))(t)
	_ = ticks.Emit(Tick{1})
	_ = closes.Emit(Closed{2})
	types := []Type{TypeOf[Tick](), TypeOf[Closed]()}
	dropping := must(SubscribeMany(b, types, Buffer(1), OnSlow(Drop)))(t)
	if dropping.Dropped() != 1 || recv(t, dropping.Out(), "first") != (Tick{1}) {
		t.Fatalf("dropped %d, want 1 and Tick{1} kept", dropping.Dropped())
	}
	cancelled, err := SubscribeMany(b, types, Buffer(1))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, cancelled.Subscription, ErrOutOfCapacity)
}

// The heart of the stateful protocol: subscribers that join while a
// stateful emitter runs each see an unbroken run of its events, starting
// with the last one before they joined: never a gap, never one twice.
// Without the state lock around "record, pin" and "deliver, install", a
// subscriber sees a duplicate or misses one (checked by reverting it).
func TestStatefulJoinWhileEmitting(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b, Stateful()))(t)
	_ = em.Emit(Tick{0})
	const total = 3000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		for i := 1; i <= total; i++ {
			_ = em.Emit(Tick{i})
		}
	})
	for range 200 { // most of them join while the emitter runs
		s := must(Subscribe[Tick](b, Buffer(total+1)))(t)
		wg.Go(func() {
			<-stop
			s.Unsubscribe()
			got := drain(t, s.Out())
			if len(got) == 0 {
				t.Error("a joiner got nothing: not even the last event")
				return
			}
			for i := 1; i < len(got); i++ {
				if got[i].N != got[i-1].N+1 {
					t.Errorf("joiner saw %d after %d", got[i].N, got[i-1].N)
					return
				}
			}
			if got[len(got)-1].N != total {
				t.Errorf("joiner ended at %d, want %d", got[len(got)-1].N, total)
			}
		})
	}
	wg.Wait()
}

// A subscriber to a stateful type and another type gets the stateful
// type's last event before any event of the other type, even while the
// other type is being emitted (the last event is delivered before the
// subscription is installed anywhere).
func TestStatefulLastBeforeOtherTypes(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	state := must(NewEmitter[Closed](b, Stateful()))(t)
	_ = state.Emit(Closed{42})
	ticks := must(NewEmitter[Tick](b))(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = ticks.Emit(Tick{i})
		}
	})
	for range 300 {
		s := must(SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Closed]()}, Buffer(1024), OnSlow(Drop)))(t)
		if first := recv(t, s.Out(), "first"); first != (Closed{42}) {
			t.Errorf("first event %v, want the last Closed", first)
		}
		s.Unsubscribe()
		drain(t, s.Out())
	}
	cancel()
	wg.Wait()
}

// Closing the bus ends subscriptions made concurrently with it cleanly:
// Subscribe returns an ended subscription's error or ErrBusClosed, never a
// live subscription of a closed bus.
func TestSubscribeRacesClose(t *testing.T) {
	for range 50 {
		b := New(Config{})
		em := must(NewEmitter[Tick](b, Stateful()))(t)
		_ = em.Emit(Tick{1})
		var wg sync.WaitGroup
		subs := make(chan *Stream[Tick], 8)
		for range 8 {
			wg.Go(func() {
				s, err := Subscribe[Tick](b)
				if err != nil {
					if !errors.Is(err, ErrBusClosed) {
						t.Errorf("Subscribe: %v", err)
					}
					return
				}
				subs <- s
			})
		}
		b.Close()
		wg.Wait()
		close(subs)
		for s := range subs {
			waitDone(t, s.Subscription, ErrBusClosed)
			drain(t, s.Out())
		}
	}
}
