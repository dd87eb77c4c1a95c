package event

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test events.
type (
	Opened struct {
		Conn int
		Tags []string
	}
	Closed struct{ Conn int }
	Tick   struct{ N int }
)

func (o Opened) EventTags() []string { return o.Tags }

const wait = 5 * time.Second

// recv receives one value from ch or fails the test after a deadline.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(wait):
		t.Fatalf("%s: nothing after %v", what, wait)
	}
	panic("unreachable")
}

// drain receives until ch is closed and returns what it got, or fails the
// test if ch is not closed within the deadline.
func drain[T any](t *testing.T, ch <-chan T) []T {
	t.Helper()
	var got []T
	deadline := time.After(wait)
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, v)
		case <-deadline:
			t.Fatalf("channel not closed after %v (got %d values)", wait, len(got))
		}
	}
}

func waitDone(t *testing.T, s *Subscription, want error) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(wait):
		t.Fatalf("subscription not ended after %v", wait)
	}
	if err := s.Err(); !errors.Is(err, want) {
		t.Fatalf("Err() = %v, want %v", err, want)
	}
}

func isOpen(s *Subscription) bool {
	select {
	case <-s.Done():
		return false
	default:
		return true
	}
}

// must turns a (value, error) pair into the value, failing the test on an
// error: must(f())(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestSubscribeTyped(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(8)))(t)
	if s.Err() != nil || !isOpen(s.Subscription) {
		t.Fatalf("fresh subscription: err %v", s.Err())
	}
	if n := em.Subscribers(); n != 1 {
		t.Fatalf("Subscribers() = %d, want 1", n)
	}
	for i := range 5 {
		if err := em.Emit(Tick{i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if got := recv(t, s.Out(), "tick"); got.N != i {
			t.Fatalf("got %v, want %d", got, i)
		}
	}
	if s.Policy() != Cancel {
		t.Fatalf("default policy %v, want cancel", s.Policy())
	}
	if ts := s.Types(); len(ts) != 1 || ts[0].String() != "event.Tick" {
		t.Fatalf("Types() = %v", ts)
	}
}

// A subscriber to two types receives them through one stream in emit order,
// with several emitting goroutines each emitting Open then Close of its own
// connections.
func TestOrderingAcrossTwoTypes(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	opens := must(NewEmitter[Opened](b))(t)
	closes := must(NewEmitter[Closed](b))(t)
	const producers, conns = 4, 300
	s := must(SubscribeMany(b, []Type{TypeOf[Opened](), TypeOf[Closed]()}, Buffer(producers*conns*2)))(t)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for c := range conns {
				id := p*conns + c
				if err := opens.Emit(Opened{Conn: id}); err != nil {
					t.Error(err)
				}
				if err := closes.Emit(Closed{Conn: id}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s.Unsubscribe()
	got := drain(t, s.Out())
	if len(got) != producers*conns*2 {
		t.Fatalf("got %d events, want %d", len(got), producers*conns*2)
	}
	opened := map[int]bool{}
	last := make([]int, producers) // per producer, the last conn opened
	for i := range last {
		last[i] = -1
	}
	for i, ev := range got {
		switch ev := ev.(type) {
		case Opened:
			p, c := ev.Conn/conns, ev.Conn%conns
			if c != last[p]+1 {
				t.Fatalf("event %d: producer %d opened %d after %d", i, p, c, last[p])
			}
			last[p] = c
			opened[ev.Conn] = true
		case Closed:
			if !opened[ev.Conn] {
				t.Fatalf("event %d: Close of conn %d before its Open", i, ev.Conn)
			}
			delete(opened, ev.Conn)
		default:
			t.Fatalf("event %d: unexpected %T", i, ev)
		}
	}
	if len(opened) != 0 {
		t.Fatalf("%d conns opened and never closed", len(opened))
	}
	if !errors.Is(s.Err(), ErrUnsubscribed) {
		t.Fatalf("Err() = %v", s.Err())
	}
}

// Cancel: a burst bigger than the buffer delivers an unbroken prefix, then
// ends the subscription with ErrOutOfCapacity.
func TestPolicyCancelBurst(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(4)))(t) // Cancel is the default
	other := must(Subscribe[Tick](b, Buffer(64)))(t)
	for i := range 10 {
		if err := em.Emit(Tick{i}); err != nil {
			t.Fatalf("Emit: %v (an emitter must not see a slow subscriber)", err)
		}
	}
	waitDone(t, s.Subscription, ErrOutOfCapacity)
	got := drain(t, s.Out())
	if len(got) != 4 {
		t.Fatalf("got %d events, want the 4 that fitted", len(got))
	}
	for i, ev := range got {
		if ev.N != i {
			t.Fatalf("event %d = %v: not an unbroken prefix", i, ev)
		}
	}
	if d := s.Dropped(); d != 1 {
		t.Fatalf("Dropped() = %d, want 1 (the event that did not fit)", d)
	}
	if n := em.Subscribers(); n != 1 {
		t.Fatalf("cancelled subscription still listed: %d subscribers", n)
	}
	if n := b.Subscriptions(); n != 1 {
		t.Fatalf("bus counts %d subscriptions, want 1", n)
	}
	// The other subscriber was not affected.
	for i := range 10 {
		if ev := recv(t, other.Out(), "other"); ev.N != i {
			t.Fatalf("other got %v, want %d", ev, i)
		}
	}
	if !isOpen(other.Subscription) {
		t.Fatal("the fast subscriber was ended")
	}
}

// Drop: a burst bigger than the buffer drops and counts the excess and keeps
// the subscription.
func TestPolicyDropBurst(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(4), OnSlow(Drop)))(t)
	for i := range 10 {
		_ = em.Emit(Tick{i})
	}
	if d := s.Dropped(); d != 6 {
		t.Fatalf("Dropped() = %d, want 6", d)
	}
	for i := range 4 {
		if ev := recv(t, s.Out(), "kept"); ev.N != i {
			t.Fatalf("got %v, want %d", ev, i)
		}
	}
	if !isOpen(s.Subscription) || s.Err() != nil {
		t.Fatalf("drop policy ended the subscription: %v", s.Err())
	}
	_ = em.Emit(Tick{100})
	if ev := recv(t, s.Out(), "after the burst"); ev.N != 100 {
		t.Fatalf("got %v after the burst", ev)
	}
}

// Notify: the callback is told of each event that did not fit, synchronously,
// and delivery continues.
func TestPolicyNotifyBurst(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	var told []Overflow
	s := must(Subscribe[Tick](b, Buffer(4), OnSlowNotify(func(o Overflow) { told = append(told, o) })))(t)
	for i := range 10 {
		_ = em.Emit(Tick{i})
		// Synchronous: by the time Emit returns, the callback has run.
		if want := max(0, i-3); len(told) != want {
			t.Fatalf("after emit %d the callback ran %d times, want %d", i, len(told), want)
		}
	}
	for i, o := range told {
		if o.Sub != s.Subscription || o.Dropped != uint64(i+1) || o.Type != TypeOf[Tick]().rt || o.Err != nil {
			t.Fatalf("overflow %d = %+v", i, o)
		}
	}
	if s.Dropped() != 6 || s.Policy() != Notify {
		t.Fatalf("Dropped() = %d, policy %v", s.Dropped(), s.Policy())
	}
	for i := range 4 {
		if ev := recv(t, s.Out(), "kept"); ev.N != i {
			t.Fatalf("got %v, want %d", ev, i)
		}
	}
	_ = em.Emit(Tick{7})
	if ev := recv(t, s.Out(), "after the burst"); ev.N != 7 || !isOpen(s.Subscription) {
		t.Fatalf("got %v after the burst, open %v", ev, isOpen(s.Subscription))
	}
}

// A Notify callback may end its own subscription.
func TestNotifyMayUnsubscribe(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b, Buffer(1), OnSlowNotify(func(o Overflow) { o.Sub.Unsubscribe() })))(t)
	for i := range 5 {
		_ = em.Emit(Tick{i})
	}
	waitDone(t, s.Subscription, ErrUnsubscribed)
	if got := drain(t, s.Out()); len(got) != 1 || got[0].N != 0 || s.Dropped() != 1 {
		t.Fatalf("got %v, dropped %d", got, s.Dropped())
	}
}

func TestUnsubscribeIdempotent(t *testing.T) {
	b := New(Config{MaxSubscriptions: 1})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	s := must(Subscribe[Tick](b))(t)
	_ = em.Emit(Tick{1})
	s.Unsubscribe()
	s.Unsubscribe()
	waitDone(t, s.Subscription, ErrUnsubscribed)
	_ = em.Emit(Tick{2}) // after Unsubscribe: not delivered
	if got := drain(t, s.Out()); len(got) != 1 || got[0].N != 1 {
		t.Fatalf("got %v, want the one event emitted before Unsubscribe", got)
	}
	if b.Subscriptions() != 0 || em.Subscribers() != 0 {
		t.Fatalf("unsubscribed subscription still counted")
	}
	// The slot is free again (the limit is 1).
	s2 := must(Subscribe[Tick](b))(t)
	s2.Unsubscribe()
	s2.Unsubscribe()
	if !errors.Is(s2.Err(), ErrUnsubscribed) {
		t.Fatalf("Err() = %v", s2.Err())
	}
}

func TestWaitEmitter(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	if HasEmitter[Tick](b) {
		t.Fatal("HasEmitter before any emitter")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := WaitEmitter[Tick](ctx, b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEmitter with no emitter = %v, want a deadline error", err)
	}

	// A waiter started before the emitter registers returns when it does.
	waiting := make(chan error, 1)
	go func() { waiting <- WaitEmitter[Tick](context.Background(), b) }()
	em := must(NewEmitter[Tick](b))(t)
	if err := recv(t, waiting, "WaitEmitter"); err != nil {
		t.Fatalf("WaitEmitter = %v", err)
	}
	if !HasEmitter[Tick](b) || !b.HasEmitter(TypeOf[Tick]()) {
		t.Fatal("HasEmitter false with an emitter")
	}
	if err := WaitEmitter[Tick](ctx, b); err != nil { // ctx has expired: must not matter
		t.Fatalf("WaitEmitter with an emitter = %v", err)
	}
	em2 := must(NewEmitter[Tick](b))(t)
	em.Close()
	em.Close()
	if !HasEmitter[Tick](b) {
		t.Fatal("HasEmitter false with a second emitter open")
	}
	if err := em.Emit(Tick{}); !errors.Is(err, ErrEmitterClosed) {
		t.Fatalf("Emit after Close = %v", err)
	}
	em2.Close()
	if HasEmitter[Tick](b) {
		t.Fatal("HasEmitter true after every emitter closed")
	}

	// The bus closing wakes waiters.
	go func() { waiting <- WaitEmitter[Closed](context.Background(), b) }()
	b.Close()
	if err := recv(t, waiting, "WaitEmitter at close"); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("WaitEmitter at close = %v", err)
	}
	if HasEmitter[Tick](b) {
		t.Fatal("HasEmitter on a closed bus")
	}
}

func TestSubscriptionLimit(t *testing.T) {
	b := New(Config{MaxSubscriptions: 3})
	defer b.Close()
	a := must(Subscribe[Tick](b))(t)
	_ = must(SubscribeMany(b, []Type{TypeOf[Opened](), TypeOf[Closed]()}))(t) // counts once
	_ = must(Subscribe[Closed](b))(t)
	_, err := Subscribe[Tick](b)
	if !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("fourth Subscribe = %v, want ErrTooManySubscriptions", err)
	}
	if _, err := SubscribeMany(b, []Type{TypeOf[Tick]()}); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("fourth SubscribeMany = %v", err)
	}
	if b.Subscriptions() != 3 {
		t.Fatalf("Subscriptions() = %d", b.Subscriptions())
	}
	a.Unsubscribe()
	if _, err := Subscribe[Tick](b); err != nil {
		t.Fatalf("Subscribe after one ended = %v", err)
	}

	if def := New(Config{}); def.max != DefaultMaxSubscriptions {
		t.Fatalf("default limit %d, want %d", def.max, DefaultMaxSubscriptions)
	}
	unlimited := New(Config{MaxSubscriptions: -1})
	defer unlimited.Close()
	for range 100 {
		if _, err := Subscribe[Tick](unlimited, Buffer(1)); err != nil {
			t.Fatalf("unlimited bus: %v", err)
		}
	}
}

func TestCloseBusWithLiveSubscribers(t *testing.T) {
	b := New(Config{})
	em := must(NewEmitter[Tick](b))(t)
	emOpen := must(NewEmitter[Opened](b))(t)
	typed := must(Subscribe[Tick](b, Buffer(8)))(t)
	many := must(SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Opened]()}, Buffer(8)))(t)
	// Goroutines ranging over Out must end when the bus closes.
	var wg sync.WaitGroup
	ranged := make(chan int, 2)
	for _, out := range []<-chan any{many.Out()} {
		wg.Go(func() {
			n := 0
			for range out {
				n++
			}
			ranged <- n
		})
	}
	_ = em.Emit(Tick{1})
	_ = emOpen.Emit(Opened{Conn: 1})
	b.Close()
	b.Close() // idempotent
	waitDone(t, typed.Subscription, ErrBusClosed)
	waitDone(t, many.Subscription, ErrBusClosed)
	if got := drain(t, typed.Out()); len(got) != 1 || got[0].N != 1 {
		t.Fatalf("buffered events lost at close: %v", got)
	}
	wg.Wait()
	if n := recv(t, ranged, "ranging goroutine"); n != 2 {
		t.Fatalf("ranging goroutine saw %d events, want 2", n)
	}
	if err := em.Emit(Tick{2}); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("Emit on a closed bus = %v", err)
	}
	if _, err := Subscribe[Tick](b); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("Subscribe on a closed bus = %v", err)
	}
	if _, err := NewEmitter[Tick](b); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("NewEmitter on a closed bus = %v", err)
	}
	if !b.Closed() || b.Subscriptions() != 0 {
		t.Fatalf("Closed() %v, Subscriptions() %d", b.Closed(), b.Subscriptions())
	}
	typed.Unsubscribe() // after the end: no effect
	if !errors.Is(typed.Err(), ErrBusClosed) {
		t.Fatalf("Unsubscribe changed the reason: %v", typed.Err())
	}
	em.Close() // after the bus: no panic
}

func TestWhereFilter(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	ticks := must(NewEmitter[Tick](b))(t)
	opens := must(NewEmitter[Opened](b))(t)
	even := must(Subscribe[Tick](b, Buffer(1), Where(func(e Tick) bool { return e.N%2 == 0 })))(t)
	// Two filters on one type must both accept; a type without a filter passes.
	many := must(SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Opened]()}, Buffer(16),
		Where(func(e Tick) bool { return e.N > 2 }),
		Where(func(e Tick) bool { return e.N < 6 })))(t)
	for i := range 8 {
		_ = ticks.Emit(Tick{i})
		if i%2 == 0 {
			if ev := recv(t, even.Out(), "even"); ev.N != i {
				t.Fatalf("even got %v", ev)
			}
		}
	}
	_ = opens.Emit(Opened{Conn: 9})
	many.Unsubscribe()
	got := drain(t, many.Out())
	want := []any{Tick{3}, Tick{4}, Tick{5}, Opened{Conn: 9}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Filtered events were never enqueued: the buffer of 1 never overflowed.
	if even.Dropped() != 0 || !isOpen(even.Subscription) {
		t.Fatalf("filtered events counted: dropped %d, err %v", even.Dropped(), even.Err())
	}

	if _, err := Subscribe[Tick](b, Where(func(Closed) bool { return true })); !errors.Is(err, ErrInvalid) {
		t.Fatalf("filter on an unsubscribed type = %v, want ErrInvalid", err)
	}
	if _, err := Subscribe[Tick](b, Where[Tick](nil)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil filter = %v", err)
	}
}

func TestMatchTags(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	opens := must(NewEmitter[Opened](b))(t)
	ticks := must(NewEmitter[Tick](b))(t)
	q := TagQuery{All: []string{"tcp"}, Any: []string{"peer=a", "peer=b"}, None: []string{"test"}}
	s := must(SubscribeMany(b, []Type{TypeOf[Opened](), TypeOf[Tick]()}, Buffer(16), MatchTags(q)))(t)
	q.All[0] = "mutated" // the query was copied
	events := []Opened{
		{Conn: 1, Tags: []string{"tcp", "peer=a"}},         // match
		{Conn: 2, Tags: []string{"udp", "peer=a"}},         // no tcp
		{Conn: 3, Tags: []string{"tcp", "peer=c"}},         // no peer in Any
		{Conn: 4, Tags: []string{"tcp", "peer=b", "test"}}, // None
		{Conn: 5, Tags: []string{"peer=b", "x", "tcp"}},    // match
		{Conn: 6}, // no tags
	}
	for _, ev := range events {
		_ = opens.Emit(ev)
	}
	_ = ticks.Emit(Tick{1}) // Tick carries no tags: never matches All
	s.Unsubscribe()
	var conns []int
	for _, ev := range drain(t, s.Out()) {
		conns = append(conns, ev.(Opened).Conn)
	}
	if fmt.Sprint(conns) != "[1 5]" {
		t.Fatalf("matched conns %v, want [1 5]", conns)
	}
	empty := TagQuery{}
	if !empty.Match(nil) {
		t.Fatal("the empty query must match everything")
	}
}

func TestInvalidArguments(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	cases := map[string]error{}
	_, cases["interface emitter"] = NewEmitter[error](b)
	_, cases["interface subscribe"] = Subscribe[any](b)
	_, cases["no types"] = SubscribeMany(b, nil)
	_, cases["zero type"] = SubscribeMany(b, []Type{{}})
	_, cases["twice"] = SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Tick]()})
	_, cases["buffer 0"] = Subscribe[Tick](b, Buffer(0))
	_, cases["OnSlow(Notify)"] = Subscribe[Tick](b, OnSlow(Notify))
	_, cases["OnSlow(99)"] = Subscribe[Tick](b, OnSlow(99))
	_, cases["nil notify"] = Subscribe[Tick](b, OnSlowNotify(nil))
	cases["wait zero type"] = b.WaitEmitter(context.Background(), Type{})
	for name, err := range cases {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if b.Subscriptions() != 0 {
		t.Fatalf("failed subscriptions counted: %d", b.Subscriptions())
	}
	if b.HasEmitter(Type{}) {
		t.Fatal("HasEmitter of the zero Type")
	}
}

// Subscribing and unsubscribing while several goroutines emit: no event is
// delivered out of its emitter's order, no send meets a closed channel (the
// race detector and a panic would tell), every channel gets closed.
func TestConcurrentChurn(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	const emitters, perEmitter, churners = 3, 2000, 3
	ems := make([]*Emitter[Opened], emitters)
	for i := range ems {
		ems[i] = must(NewEmitter[Opened](b))(t)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range churners {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := Subscribe[Opened](b, Buffer(32), OnSlow(Drop))
				if err != nil {
					t.Error(err)
					return
				}
				last := make([]int, emitters)
				for i := range last {
					last[i] = -1
				}
			read:
				for range 50 {
					var ev Opened
					var ok bool
					select {
					case ev, ok = <-s.Out():
					case <-stop:
						break read
					}
					if !ok {
						break
					}
					p, n := ev.Conn/perEmitter, ev.Conn%perEmitter
					if n <= last[p] {
						t.Errorf("emitter %d: %d after %d", p, n, last[p])
					}
					last[p] = n
				}
				s.Unsubscribe()
				drain(t, s.Out())
			}
		})
	}
	var ew sync.WaitGroup
	for p, em := range ems {
		ew.Go(func() {
			for n := range perEmitter {
				if err := em.Emit(Opened{Conn: p*perEmitter + n}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	ew.Wait()
	close(stop)
	wg.Wait()
	if b.Subscriptions() != 0 {
		t.Fatalf("%d subscriptions left", b.Subscriptions())
	}
}
