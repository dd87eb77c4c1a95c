package event

import (
	"errors"
	"fmt"
	"testing"
)

// Modelled on libp2p's eventbus TestWildcardSubscription: one subscription
// receives the events of every type, in emit order.
func TestWildcardReceivesEveryType(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	all := must(SubscribeAll(b, Buffer(16)))(t)
	ticks := must(NewEmitter[Tick](b))(t)
	opens := must(NewEmitter[Opened](b))(t)
	_ = ticks.Emit(Tick{1})
	_ = opens.Emit(Opened{Conn: 2})
	_ = ticks.Emit(Tick{3})
	// A type first named after the subscription is received too.
	closes := must(NewEmitter[Closed](b))(t)
	_ = closes.Emit(Closed{4})
	all.Unsubscribe()
	got := drain(t, all.Out())
	if want := "[{1} {2 []} {3} {4}]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	if all.Types() != nil {
		t.Fatalf("Types() of a wildcard = %v, want nil", all.Types())
	}
}

// Modelled on libp2p's TestManyWildcardSubscriptions: ten wildcard
// subscriptions each get every event; closing five stops them only.
func TestManyWildcardSubscriptions(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	subs := make([]*Stream[any], 10)
	for i := range subs {
		subs[i] = must(SubscribeAll(b, Buffer(8)))(t)
	}
	ticks := must(NewEmitter[Tick](b))(t)
	closes := must(NewEmitter[Closed](b))(t)
	_ = ticks.Emit(Tick{1})
	_ = closes.Emit(Closed{1})
	for i, s := range subs {
		if len(s.Out()) != 2 {
			t.Fatalf("subscription %d holds %d events, want 2", i, len(s.Out()))
		}
	}
	for _, s := range subs[:5] {
		s.Unsubscribe()
	}
	if n := b.Wildcards(); n != 5 {
		t.Fatalf("Wildcards() = %d, want 5", n)
	}
	_ = ticks.Emit(Tick{2})
	_ = closes.Emit(Closed{2})
	for i, s := range subs {
		want := 4
		if i < 5 {
			want = 2 // what they held when they ended
		}
		if got := len(drainOrHold(s)); got != want {
			t.Fatalf("subscription %d: %d events, want %d", i, got, want)
		}
	}
	for _, s := range subs {
		s.Unsubscribe() // twice for the first five: idempotent
	}
	if n := b.Wildcards(); n != 0 || b.Subscriptions() != 0 {
		t.Fatalf("after unsubscribing: %d wildcards, %d subscriptions", n, b.Subscriptions())
	}
	if n := ticks.Subscribers(); n != 0 {
		t.Fatalf("Tick has %d subscribers left", n)
	}
}

// drainOrHold returns the events a stream holds: all of them until its
// channel closes if it ended, else what is buffered now.
func drainOrHold(s *Stream[any]) []any {
	var got []any
	for {
		select {
		case v, ok := <-s.Out():
			if !ok {
				return got
			}
			got = append(got, v)
		default:
			return got
		}
	}
}

// Filters on a wildcard subscription: a Where applies to its own type and
// lets the others pass; a query applies where its keys exist.
func TestWildcardFilters(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	ticks := must(NewEmitter[Tick](b))(t)
	closes := must(NewEmitter[Closed](b))(t)
	where := must(SubscribeAll(b, Buffer(16), Where(func(e Tick) bool { return e.N > 1 })))(t)
	query := must(SubscribeAll(b, Buffer(16), MatchQuery("Conn >= 2")))(t)
	for i := range 4 {
		_ = ticks.Emit(Tick{i})
		_ = closes.Emit(Closed{i})
	}
	where.Unsubscribe()
	query.Unsubscribe()
	if got, want := fmt.Sprint(drain(t, where.Out())), "[{0} {1} {2} {2} {3} {3}]"; got != want {
		t.Fatalf("where: got %v, want %v", got, want)
	}
	if got, want := fmt.Sprint(drain(t, query.Out())), "[{2} {3}]"; got != want { // Tick has no Conn
		t.Fatalf("query: got %v, want %v", got, want)
	}
}

// Modelled on libp2p's TestGetAllEventTypes: the bus lists the types it
// knows, with their counts; a wildcard subscription adds no type.
func TestTypesListing(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	if len(b.Types()) != 0 {
		t.Fatalf("a new bus knows %v", b.Types())
	}
	must(SubscribeAll(b))(t)
	if len(b.Types()) != 0 {
		t.Fatalf("a wildcard subscription added %v", b.Types())
	}
	must(Subscribe[Tick](b))(t)
	must(SubscribeMany(b, []Type{TypeOf[Tick](), TypeOf[Closed]()}))(t)
	em := must(NewEmitter[Opened](b, Stateful()))(t)
	must(NewEmitter[Opened](b))(t)
	got := fmt.Sprint(b.Types())
	want := fmt.Sprint([]TypeInfo{
		{Type: TypeOf[Closed](), Subscribers: 1},
		{Type: TypeOf[Opened](), Emitters: 2, Stateful: true},
		{Type: TypeOf[Tick](), Subscribers: 2},
	})
	if got != want {
		t.Fatalf("Types() = %v\nwant %v", got, want)
	}
	if n := em.Subscribers(); n != 1 {
		t.Fatalf("Opened has %d subscribers, want 1 (the wildcard)", n)
	}
	b.Close()
	if b.Types() != nil {
		t.Fatal("a closed bus lists types")
	}
}

// The wildcard counts once against the limit, and ends with the bus.
func TestWildcardLimitAndClose(t *testing.T) {
	b := New(Config{MaxSubscriptions: 1})
	all := must(SubscribeAll(b))(t)
	if _, err := SubscribeAll(b); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("second wildcard past the limit: %v", err)
	}
	b.Close()
	waitDone(t, all.Subscription, ErrBusClosed)
	drain(t, all.Out())
	if _, err := SubscribeAll(b); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("SubscribeAll on a closed bus: %v", err)
	}
}

// Modelled on Tendermint's TestClientSubscribesTwice: a client cannot hold
// two subscriptions to the same types with the same query, and the first
// one keeps working.
func TestClientSubscribesTwice(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Opened](b))(t)
	s1 := must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn > 1")))(t)
	if _, err := Subscribe[Opened](b, Client("c"), MatchQuery("Conn>1")); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("same client, same query: %v, want ErrAlreadySubscribed", err)
	}
	// The same types in another order, or through SubscribeMany, are the
	// same key; another query, another type set or another client are not.
	types := []Type{TypeOf[Closed](), TypeOf[Opened]()}
	must(SubscribeMany(b, types, Client("c"), MatchQuery("Conn > 1")))(t)
	if _, err := SubscribeMany(b, []Type{types[1], types[0]}, Client("c"), MatchQuery("Conn > 1")); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("same set in another order: %v", err)
	}
	must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn > 2")))(t)
	must(Subscribe[Opened](b, Client("c")))(t)
	must(Subscribe[Opened](b, Client("d"), MatchQuery("Conn > 1")))(t)
	must(SubscribeAll(b, Client("c")))(t)
	if _, err := SubscribeAll(b, Client("c")); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("second wildcard of a client: %v", err)
	}
	if b.Clients() != 2 || b.ClientSubscriptions("c") != 5 {
		t.Fatalf("Clients() %d, ClientSubscriptions(c) %d, want 2 and 5", b.Clients(), b.ClientSubscriptions("c"))
	}
	_ = em.Emit(Opened{Conn: 2})
	if got := recv(t, s1.Out(), "first"); got.Conn != 2 || s1.Client() != "c" {
		t.Fatalf("got %v from client %q", got, s1.Client())
	}
	if _, err := Subscribe[Opened](b, Client("")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty client id: %v", err)
	}
}

// Modelled on Tendermint's TestUnsubscribe, TestClientUnsubscribesTwice and
// TestResubscribe: unsubscribing by client and query ends the
// subscription with ErrUnsubscribed; a second time finds nothing; the
// client may subscribe again.
func TestClientUnsubscribe(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Opened](b))(t)
	s := must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn = 1")))(t)
	if err := b.Unsubscribe("c", "Conn=1", TypeOf[Opened]()); err != nil {
		t.Fatal(err)
	}
	_ = em.Emit(Opened{Conn: 1})
	waitDone(t, s.Subscription, ErrUnsubscribed)
	if got := drain(t, s.Out()); len(got) != 0 {
		t.Fatalf("got %v after Unsubscribe", got)
	}
	if err := b.Unsubscribe("c", "Conn = 1", TypeOf[Opened]()); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("second Unsubscribe: %v, want ErrSubscriptionNotFound", err)
	}
	if err := b.UnsubscribeAll("c"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("UnsubscribeAll of a client with none: %v", err)
	}
	if err := b.Unsubscribe("c", "Conn =", TypeOf[Opened]()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Unsubscribe with a bad query: %v", err)
	}
	if err := b.Unsubscribe("c", "", Type{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Unsubscribe of the zero Type: %v", err)
	}
	again := must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn = 1")))(t)
	_ = em.Emit(Opened{Conn: 1})
	if got := recv(t, again.Out(), "again"); got.Conn != 1 {
		t.Fatalf("got %v", got)
	}
	// A subscription that ended by itself frees its key too.
	again.Unsubscribe()
	must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn = 1")))(t)
	all := must(SubscribeAll(b, Client("c")))(t)
	if err := b.Unsubscribe("c", ""); err != nil {
		t.Fatal(err)
	}
	waitDone(t, all.Subscription, ErrUnsubscribed)
}

// Modelled on Tendermint's TestUnsubscribeAll: every subscription of the
// client ends with ErrUnsubscribed, those of other clients do not.
func TestClientUnsubscribeAll(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	s1 := must(Subscribe[Opened](b, Client("c"), MatchQuery("Conn = 1")))(t)
	s2 := must(Subscribe[Closed](b, Client("c")))(t)
	other := must(Subscribe[Closed](b, Client("d")))(t)
	if err := b.UnsubscribeAll("c"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s1.Subscription, ErrUnsubscribed)
	waitDone(t, s2.Subscription, ErrUnsubscribed)
	if !isOpen(other.Subscription) || b.Clients() != 1 || b.ClientSubscriptions("c") != 0 {
		t.Fatalf("other client's subscription: err %v; clients %d", other.Err(), b.Clients())
	}
}
