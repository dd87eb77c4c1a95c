package event

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// emitAsync runs em.EmitContext(ctx, ev) on a goroutine and returns its
// result channel.
func emitAsync[T any](ctx context.Context, em *Emitter[T], ev T) <-chan error {
	done := make(chan error, 1)
	go func() { done <- em.EmitContext(ctx, ev) }()
	return done
}

// notYet fails the test if ch has a value now. (It cannot prove that an
// emitter is blocked; the waits below show that it was, by what it does
// once released.)
func notYet(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v) while the subscriber had no room", what, err)
	default:
	}
}

// Modelled on Tendermint's TestSubscribeUnbuffered: with a blocking
// subscriber, EmitContext waits for room instead of dropping, and every
// event arrives, in order.
func TestBlockingEmitWaitsForRoom(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(1), Blocking()))(t)
	other := must(Subscribe[Tick](b, Buffer(1), OnSlow(Drop)))(t) // not blocking: drops
	if err := em.EmitContext(context.Background(), Tick{1}); err != nil {
		t.Fatal(err)
	}
	second := emitAsync(context.Background(), em, Tick{2})
	third := make(chan error, 1)
	go func() { <-second; third <- em.EmitContext(context.Background(), Tick{3}) }()
	for i := 1; i <= 3; i++ {
		if got := recv(t, s.Out(), "blocking"); got.N != i {
			t.Fatalf("got %v, want Tick{%d}", got, i)
		}
	}
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 0 || !isOpen(s.Subscription) {
		t.Fatalf("blocking subscription lost events: dropped %d, err %v", s.Dropped(), s.Err())
	}
	if other.Dropped() != 2 {
		t.Fatalf("non-blocking subscription dropped %d, want 2", other.Dropped())
	}
}

// Modelled on Tendermint's TestBufferCapacity: an EmitContext that cannot
// deliver before its deadline fails with the context's error; the blocking
// subscription's policy then applies (Cancel by default).
func TestBlockingEmitGivesUpWithContext(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	cancelled := must(Subscribe[Tick](b, Buffer(1), Blocking()))(t)
	dropping := must(Subscribe[Tick](b, Buffer(1), Blocking(), OnSlow(Drop)))(t)
	var notified atomic.Int64
	notifying := must(Subscribe[Tick](b, Buffer(1), Blocking(), OnSlowNotify(func(o Overflow) {
		if errors.Is(o.Err, context.DeadlineExceeded) {
			notified.Add(1)
		}
	})))(t)
	_ = em.Emit(Tick{1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := em.EmitContext(ctx, Tick{2})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EmitContext = %v, want DeadlineExceeded", err)
	}
	waitDone(t, cancelled.Subscription, ErrOutOfCapacity)
	if !errors.Is(cancelled.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want it to say the emitter's context ended", cancelled.Err())
	}
	if dropping.Dropped() != 1 || !isOpen(dropping.Subscription) || notified.Load() != 1 || notifying.Dropped() != 1 {
		t.Fatalf("drop: %d %v; notify: %d calls, %d dropped", dropping.Dropped(), dropping.Err(), notified.Load(), notifying.Dropped())
	}
	// An already-ended context waits for nobody.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := em.EmitContext(done, Tick{3}); !errors.Is(err, context.Canceled) {
		t.Fatalf("EmitContext with a done context = %v", err)
	}
	//lint:ignore SA1012 a nil context is refused, and this checks it
	if err := em.EmitContext(nil, Tick{4}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil context: %v", err)
	}
}

// Emit never waits, even for a blocking subscriber: it is safe on a loop.
func TestEmitNeverWaitsForBlocking(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(1), Blocking()))(t)
	_ = em.Emit(Tick{1})
	if err := em.Emit(Tick{2}); err != nil { // returns at once: the policy applies
		t.Fatal(err)
	}
	waitDone(t, s.Subscription, ErrOutOfCapacity)
	sys := newSystem(t, actor.Config{Loops: 1})
	ref := spawn(t, sys, collector(make(chan any, 1)))
	if _, err := SubscribeActor(b, sys, ref, []Type{TypeOf[Tick]()}, Blocking()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("blocking actor subscription: %v, want ErrInvalid", err)
	}
}

// Race: an emitter waiting on a full blocking subscription is released by
// Unsubscribe; the event is not counted as missed.
func TestBlockingReleasedByUnsubscribe(t *testing.T) {
	for range 20 {
		b := New(Config{})
		em := must(NewEmitter[Tick](b))(t)
		s := must(Subscribe[Tick](b, Buffer(1), Blocking()))(t)
		_ = em.Emit(Tick{1})
		done := emitAsync(context.Background(), em, Tick{2})
		notYet(t, done, "EmitContext")
		s.Unsubscribe()
		if err := recv(t, done, "EmitContext"); err != nil {
			t.Fatalf("EmitContext after Unsubscribe = %v, want nil", err)
		}
		if got := drain(t, s.Out()); len(got) != 1 || s.Dropped() != 0 {
			t.Fatalf("got %v, dropped %d", got, s.Dropped())
		}
		b.Close()
	}
}

// Race: Bus.Close releases waiting emitters with ErrBusClosed, and the
// channels close only once they have stopped sending (a send on a closed
// channel would panic).
func TestBlockingReleasedByClose(t *testing.T) {
	for range 20 {
		b := New(Config{})
		em := must(NewEmitter[Tick](b))(t)
		subs := make([]*Stream[Tick], 3)
		for i := range subs {
			subs[i] = must(Subscribe[Tick](b, Buffer(1), Blocking()))(t)
		}
		_ = em.Emit(Tick{0})
		dones := make([]<-chan error, 4)
		for i := range dones {
			dones[i] = emitAsync(context.Background(), em, Tick{i + 1})
		}
		b.Close()
		for _, d := range dones {
			if err := recv(t, d, "EmitContext"); err != nil && !errors.Is(err, ErrBusClosed) {
				t.Fatalf("EmitContext across Close = %v", err)
			}
		}
		for _, s := range subs {
			waitDone(t, s.Subscription, ErrBusClosed)
			drain(t, s.Out())
		}
	}
}

// Race: one waiting emitter's context is cancelled while another emitter
// waits on the same subscription and the subscriber starts reading: no
// panic, no event twice, every event either received or counted.
func TestBlockingCancelWhileOthersWait(t *testing.T) {
	for range 20 {
		b := New(Config{})
		em := must(NewEmitter[Tick](b))(t)
		s := must(Subscribe[Tick](b, Buffer(1), Blocking(), OnSlow(Drop)))(t)
		_ = em.Emit(Tick{0})
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := emitAsync(ctx, em, Tick{1})
		patient := emitAsync(context.Background(), em, Tick{2})
		cancel()
		errC := recv(t, cancelled, "cancelled EmitContext")
		got := []int{recv(t, s.Out(), "first").N, recv(t, s.Out(), "second").N}
		if err := recv(t, patient, "patient EmitContext"); err != nil {
			t.Fatal(err)
		}
		s.Unsubscribe()
		for _, ev := range drain(t, s.Out()) {
			got = append(got, ev.N)
		}
		seen := map[int]bool{}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("Tick{%d} twice: %v", n, got)
			}
			seen[n] = true
		}
		if !seen[0] || !seen[2] {
			t.Fatalf("got %v: Tick{0} or Tick{2} lost", got)
		}
		if seen[1] == (errC != nil) || (errC != nil) != (s.Dropped() == 1) {
			t.Fatalf("Tick{1} received %v, EmitContext %v, dropped %d: inconsistent", seen[1], errC, s.Dropped())
		}
		b.Close()
	}
}

// A lossless pipe under churn: several emitters with EmitContext, a slow
// blocking reader that gets every event of every emitter in each
// emitter's order, while other subscriptions come and go and the bus
// closes at the end. Run under -race.
func TestBlockingLosslessUnderChurn(t *testing.T) {
	b := New(Config{})
	em := must(NewEmitter[Opened](b))(t)
	s := must(Subscribe[Opened](b, Buffer(4), Blocking()))(t)
	const emitters, each = 4, 500
	var wg sync.WaitGroup
	for p := range emitters {
		wg.Go(func() {
			for n := range each {
				if err := em.EmitContext(context.Background(), Opened{Conn: p*each + n}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := Subscribe[Opened](b, Buffer(1), Blocking(), OnSlow(Drop))
			if err != nil {
				t.Error(err)
				return
			}
			c.Unsubscribe() // releases any emitter waiting on it
			drain(t, c.Out())
		}
	})
	last := make([]int, emitters)
	for i := range last {
		last[i] = -1
	}
	for range emitters * each {
		ev := recv(t, s.Out(), "lossless")
		p, n := ev.Conn/each, ev.Conn%each
		if n != last[p]+1 {
			t.Fatalf("emitter %d: %d after %d", p, n, last[p])
		}
		last[p] = n
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	b.Close()
	if s.Dropped() != 0 {
		t.Fatalf("dropped %d", s.Dropped())
	}
}
