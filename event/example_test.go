package event_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
)

// ConnOpened and ConnClosed are the events of a connection component.
type ConnOpened struct {
	ID   int
	Peer string
}

type ConnClosed struct{ ID int }

// One component emits typed events; another receives them on a channel the
// bus owns and closes.
func Example() {
	bus := event.New(event.Config{})
	defer bus.Close()

	opened, _ := event.NewEmitter[ConnOpened](bus)
	sub, err := event.Subscribe[ConnOpened](bus, event.Buffer(16))
	if err != nil {
		panic(err)
	}

	opened.Emit(ConnOpened{ID: 1, Peer: "node-a"})
	opened.Emit(ConnOpened{ID: 2, Peer: "node-b"})
	sub.Unsubscribe() // Out is closed after the buffered events

	for ev := range sub.Out() {
		fmt.Println(ev.ID, ev.Peer)
	}
	fmt.Println(errors.Is(sub.Err(), event.ErrUnsubscribed))
	// Output:
	// 1 node-a
	// 2 node-b
	// true
}

// A subscriber to two types gets one ordered stream: never a close before
// its open.
func ExampleSubscribeMany() {
	bus := event.New(event.Config{})
	defer bus.Close()
	opened, _ := event.NewEmitter[ConnOpened](bus)
	closed, _ := event.NewEmitter[ConnClosed](bus)

	sub, _ := event.SubscribeMany(bus, []event.Type{
		event.TypeOf[ConnOpened](), event.TypeOf[ConnClosed](),
	})
	opened.Emit(ConnOpened{ID: 1})
	opened.Emit(ConnOpened{ID: 2})
	closed.Emit(ConnClosed{ID: 1})
	sub.Unsubscribe()

	for ev := range sub.Out() {
		switch ev := ev.(type) {
		case ConnOpened:
			fmt.Println("opened", ev.ID)
		case ConnClosed:
			fmt.Println("closed", ev.ID)
		}
	}
	// Output:
	// opened 1
	// opened 2
	// closed 1
}

// An actor receives events as messages, in order, on its own loop.
func ExampleSubscribeActor() {
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer sys.Shutdown(context.Background())
	bus := event.New(event.Config{})
	defer bus.Close()

	seen := make(chan string, 2)
	logger, _ := sys.Spawn(context.Background(), func() actor.Actor {
		return receiver(func(msg any) {
			if ev, ok := msg.(ConnOpened); ok {
				seen <- fmt.Sprintf("actor got conn %d from %s", ev.ID, ev.Peer)
			}
		})
	}, actor.OnLoop(1))

	sub, err := event.SubscribeActor(bus, sys, logger, []event.Type{event.TypeOf[ConnOpened]()})
	if err != nil {
		panic(err)
	}
	defer sub.Unsubscribe()
	opened, _ := event.NewEmitter[ConnOpened](bus)
	opened.Emit(ConnOpened{ID: 7, Peer: "node-c"})
	opened.Emit(ConnOpened{ID: 8, Peer: "node-d"})
	fmt.Println(<-seen)
	fmt.Println(<-seen)
	// Output:
	// actor got conn 7 from node-c
	// actor got conn 8 from node-d
}

// receiver adapts a function to an actor that ignores replies.
type receiver func(msg any)

func (r receiver) Receive(_ *actor.Context, msg any) (any, error) {
	r(msg)
	return nil, nil
}

// A component waits for its event source instead of assuming it already
// started.
func ExampleWaitEmitter() {
	bus := event.New(event.Config{})
	defer bus.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := event.WaitEmitter[ConnOpened](ctx, bus)
	fmt.Println("before:", errors.Is(err, context.DeadlineExceeded), event.HasEmitter[ConnOpened](bus))

	go func() { event.NewEmitter[ConnOpened](bus) }()
	err = event.WaitEmitter[ConnOpened](context.Background(), bus)
	fmt.Println("after:", err, event.HasEmitter[ConnOpened](bus))
	// Output:
	// before: true false
	// after: <nil> true
}

// Under the Drop policy a slow subscriber loses events, counted, and keeps
// its subscription; under the default Cancel policy it is cut off and told
// why.
func ExampleOnSlow() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[ConnClosed](bus)
	dropping, _ := event.Subscribe[ConnClosed](bus, event.Buffer(2), event.OnSlow(event.Drop))
	cancelled, _ := event.Subscribe[ConnClosed](bus, event.Buffer(2))

	for i := range 5 {
		em.Emit(ConnClosed{ID: i})
	}
	fmt.Println("drop:", len(dropping.Out()), "buffered,", dropping.Dropped(), "dropped, err", dropping.Err())
	<-cancelled.Done()
	fmt.Println("cancel:", errors.Is(cancelled.Err(), event.ErrOutOfCapacity))
	// Output:
	// drop: 2 buffered, 3 dropped, err <nil>
	// cancel: true
}

// Under the Notify policy a callback hears of each event that did not fit,
// before Emit returns.
func ExampleOnSlowNotify() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[ConnClosed](bus)
	event.Subscribe[ConnClosed](bus, event.Buffer(1), event.OnSlowNotify(func(o event.Overflow) {
		fmt.Printf("subscriber full: %v dropped (%d so far)\n", o.Type, o.Dropped)
	}))
	em.Emit(ConnClosed{ID: 1})
	em.Emit(ConnClosed{ID: 2})
	em.Emit(ConnClosed{ID: 3})
	// Output:
	// subscriber full: event_test.ConnClosed dropped (1 so far)
	// subscriber full: event_test.ConnClosed dropped (2 so far)
}

// Filters run before enqueueing: a predicate on one type.
func ExampleWhere() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[ConnOpened](bus)
	sub, _ := event.Subscribe[ConnOpened](bus, event.Where(func(e ConnOpened) bool { return e.Peer == "node-b" }))
	em.Emit(ConnOpened{ID: 1, Peer: "node-a"})
	em.Emit(ConnOpened{ID: 2, Peer: "node-b"})
	fmt.Println((<-sub.Out()).ID)
	// Output: 2
}

// Alert is an event that carries tags.
type Alert struct {
	Text string
	tags []string
}

func (a Alert) EventTags() []string { return a.tags }

// Filters run before enqueueing: a query on the tags events carry.
func ExampleMatchTags() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[Alert](bus)
	sub, _ := event.Subscribe[Alert](bus, event.MatchTags(event.TagQuery{
		All:  []string{"disk"},
		None: []string{"test"},
	}))
	em.Emit(Alert{Text: "disk full", tags: []string{"disk", "critical"}})
	em.Emit(Alert{Text: "cpu hot", tags: []string{"cpu"}})
	em.Emit(Alert{Text: "disk drill", tags: []string{"disk", "test"}})
	sub.Unsubscribe()
	for a := range sub.Out() {
		fmt.Println(a.Text)
	}
	// Output: disk full
}

// The Runtime bridge puts an actor system's lifecycle on a bus.
func ExampleNewRuntime() {
	bus := event.New(event.Config{})
	defer bus.Close()
	rt, _ := event.NewRuntime(bus)
	sys := actor.NewSystem(rt.Install(actor.Config{
		Loops:   1,
		OnCrash: func(*actor.Crash) {},
		Logger:  slog.New(slog.DiscardHandler),
	}))
	defer sys.Shutdown(context.Background())

	sub, _ := event.SubscribeMany(bus, []event.Type{
		event.TypeOf[event.ActorSpawned](),
		event.TypeOf[event.ActorCrashed](),
		event.TypeOf[event.ActorStopped](),
	})
	ctx := context.Background()
	fragile, _ := sys.Spawn(ctx, func() actor.Actor {
		return receiver(func(any) { panic("oops") })
	})
	sys.Ask(ctx, fragile, "hello")

	for range 3 {
		switch ev := (<-sub.Out()).(type) {
		case event.ActorSpawned:
			fmt.Println("spawned on loop", ev.Loop)
		case event.ActorCrashed:
			fmt.Println("crashed:", ev.Crash.Value)
		case event.ActorStopped:
			fmt.Println("stopped, crashed:", errors.Is(ev.Reason, actor.ErrCrashed))
		}
	}
	// Output:
	// spawned on loop 0
	// crashed: oops
	// stopped, crashed: true
}

// Closing a bus ends every subscription with ErrBusClosed.
func ExampleBus_Close() {
	bus := event.New(event.Config{})
	sub, _ := event.Subscribe[ConnOpened](bus)
	bus.Close()
	<-sub.Done()
	_, open := <-sub.Out()
	fmt.Println(errors.Is(sub.Err(), event.ErrBusClosed), open)
	// Output: true false
}

// LocalAddr is state: the address a node listens on now.
type LocalAddr struct{ Addr string }

// A stateful emitter's last event is given to each new subscriber first:
// a component that starts late still learns the current address.
func ExampleStateful() {
	bus := event.New(event.Config{})
	defer bus.Close()
	addr, _ := event.NewEmitter[LocalAddr](bus, event.Stateful())
	addr.Emit(LocalAddr{Addr: "10.0.0.1:7700"})
	addr.Emit(LocalAddr{Addr: "10.0.0.2:7700"})

	late, _ := event.Subscribe[LocalAddr](bus) // after both events
	fmt.Println("current:", (<-late.Out()).Addr)
	addr.Emit(LocalAddr{Addr: "10.0.0.3:7700"})
	fmt.Println("then:", (<-late.Out()).Addr)
	// Output:
	// current: 10.0.0.2:7700
	// then: 10.0.0.3:7700
}

// A wildcard subscription receives every event type, in emit order; the
// bus lists the types it knows with their counts.
func ExampleSubscribeAll() {
	bus := event.New(event.Config{})
	defer bus.Close()
	all, _ := event.SubscribeAll(bus, event.Buffer(16))
	opened, _ := event.NewEmitter[ConnOpened](bus)
	closed, _ := event.NewEmitter[ConnClosed](bus)
	opened.Emit(ConnOpened{ID: 1, Peer: "node-a"})
	closed.Emit(ConnClosed{ID: 1})
	all.Unsubscribe()
	for ev := range all.Out() {
		fmt.Printf("%T %v\n", ev, ev)
	}
	for _, t := range bus.Types() {
		fmt.Println(t.Type, "emitters:", t.Emitters, "subscribers:", t.Subscribers)
	}
	// Output:
	// event_test.ConnOpened {1 node-a}
	// event_test.ConnClosed {1}
	// event_test.ConnClosed emitters: 1 subscribers: 0
	// event_test.ConnOpened emitters: 1 subscribers: 0
}

// Subscriptions under a client id: one per types and query, and
// unsubscribing by client, as Tendermint's pubsub.
func ExampleClient() {
	bus := event.New(event.Config{})
	defer bus.Close()
	sub, _ := event.Subscribe[ConnOpened](bus, event.Client("rpc-7"), event.MatchQuery("Peer = 'node-a'"))
	_, err := event.Subscribe[ConnOpened](bus, event.Client("rpc-7"), event.MatchQuery("Peer='node-a'"))
	fmt.Println("again:", errors.Is(err, event.ErrAlreadySubscribed))

	event.Subscribe[ConnClosed](bus, event.Client("rpc-7"))
	fmt.Println("held:", bus.ClientSubscriptions("rpc-7"))
	fmt.Println("by query:", bus.Unsubscribe("rpc-7", "Peer = 'node-a'", event.TypeOf[ConnOpened]()))
	fmt.Println("ended:", errors.Is(sub.Err(), event.ErrUnsubscribed))
	fmt.Println("all:", bus.UnsubscribeAll("rpc-7"))
	fmt.Println("none left:", errors.Is(bus.UnsubscribeAll("rpc-7"), event.ErrSubscriptionNotFound))
	// Output:
	// again: true
	// held: 2
	// by query: <nil>
	// ended: true
	// all: <nil>
	// none left: true
}

// A blocking subscription makes EmitContext wait for room instead of
// losing the event; the context bounds the wait. Emit never waits.
func ExampleBlocking() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[ConnClosed](bus)
	sub, _ := event.Subscribe[ConnClosed](bus, event.Buffer(1), event.Blocking())

	em.EmitContext(context.Background(), ConnClosed{ID: 1}) // fits
	done := make(chan error)
	go func() { done <- em.EmitContext(context.Background(), ConnClosed{ID: 2}) }() // waits for room
	fmt.Println((<-sub.Out()).ID, (<-sub.Out()).ID, <-done)

	em.EmitContext(context.Background(), ConnClosed{ID: 3}) // fills the buffer again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := em.EmitContext(ctx, ConnClosed{ID: 4}) // nobody reads: gives up
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(sub.Err(), event.ErrOutOfCapacity))
	// Output:
	// 1 2 <nil>
	// true true
}

// The observer sees every event, before any subscriber.
func ExampleConfig_observer() {
	counts := map[string]int{}
	bus := event.New(event.Config{Observer: func(t event.Type, ev any) { counts[t.String()]++ }})
	defer bus.Close()
	opened, _ := event.NewEmitter[ConnOpened](bus)
	opened.Emit(ConnOpened{ID: 1}) // no subscriber: observed all the same
	opened.Emit(ConnOpened{ID: 2})
	fmt.Println(counts)
	// Output: map[event_test.ConnOpened:2]
}

// Transfer is an event with fields and tags for queries.
type Transfer struct {
	Height int64
	Owner  string
	Amount float64
	At     time.Time
	tags   []string
}

func (t Transfer) EventTags() []string { return t.tags }

// A query selects events by their fields and tags, in the spirit of
// Tendermint's query language.
func ExampleMatchQuery() {
	bus := event.New(event.Config{})
	defer bus.Close()
	em, _ := event.NewEmitter[Transfer](bus)
	sub, err := event.Subscribe[Transfer](bus, event.Buffer(8), event.MatchQuery(
		"Height > 5 AND Owner CONTAINS 'Iv' AND At >= DATE 2024-05-03 AND account.kind = 'savings'"))
	if err != nil {
		panic(err)
	}
	day := time.Date(2024, 5, 3, 14, 45, 0, 0, time.UTC)
	savings := []string{"account.kind=savings", "region=eu"}
	em.Emit(Transfer{Height: 6, Owner: "Ivan", At: day, tags: savings})                        // matches
	em.Emit(Transfer{Height: 5, Owner: "Ivan", At: day, tags: savings})                        // Height
	em.Emit(Transfer{Height: 7, Owner: "Igor", At: day, tags: savings})                        // Owner
	em.Emit(Transfer{Height: 8, Owner: "Ivan", At: day.AddDate(0, 0, -1), tags: savings})      // At
	em.Emit(Transfer{Height: 9, Owner: "Ivan", At: day, tags: []string{"account.kind=check"}}) // tag
	sub.Unsubscribe()
	for t := range sub.Out() {
		fmt.Println(t.Height, t.Owner)
	}
	_, err = event.Subscribe[Transfer](bus, event.MatchQuery("Owner > 3"))
	fmt.Println(errors.Is(err, event.ErrInvalid))
	// Output:
	// 6 Ivan
	// true
}
