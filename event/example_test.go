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
