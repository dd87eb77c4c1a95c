// Package event is actord's typed, in-process event bus: components emit
// typed events, other components subscribe to them, and no one wires them
// together with timing assumptions.
//
// # Events, emitters, subscriptions
//
// An event is a Go value, normally a struct passed by value. A component that
// produces events of type T registers an [Emitter] for it with [NewEmitter]
// and calls [Emitter.Emit]. Subscribers choose how events reach them:
//
//   - [Subscribe] delivers one type T on a channel of T (no allocation per
//     event);
//   - [SubscribeMany] delivers several types through one channel of any, in
//     one ordered stream;
//   - [SubscribeActor] delivers several types as one-way messages to an
//     actor, through actor.System.Send, in one ordered stream.
//
// Channels belong to the bus: the subscriber gets a receive-only channel,
// which the bus closes when the subscription ends. Every subscription is a
// [Subscription]: Done is closed when it ends, Err says why
// (ErrUnsubscribed, ErrOutOfCapacity, ErrBusClosed, ErrSubscriberGone),
// Dropped counts what it missed, Unsubscribe is idempotent.
//
// # Ordering
//
// Delivery happens inside Emit, to each subscription in turn, with a
// non-blocking send into its one queue (channel or actor mailbox), whatever
// the number of types it subscribed to. So if one Emit returns
// before another begins — the same emitter or two emitters of different
// types, on one goroutine or ordered by any synchronisation — every
// subscription that gets both gets them in that order. A subscriber to
// Opened and Closed never sees a Close before the Open emitted before it.
//
// # Slow subscribers
//
// An emitter is never blocked by a subscriber, and a loop never blocks. When
// a subscription has no room for an event (its channel buffer, set with
// [Buffer], is full, or its actor's loop queue refused the message with
// actor.ErrQueueFull), its [SlowPolicy] decides: [Cancel] (the default) ends
// it with ErrOutOfCapacity, [Drop] discards and counts the event, [Notify]
// discards, counts, and calls the subscriber's callback synchronously.
//
// # Filters, wiring, limits
//
// [Where] (a predicate on one type) and [MatchTags] (a query on the tags of
// [Tagged] events) run in Emit, before enqueueing. [HasEmitter] and
// [WaitEmitter] tell a component whether, or when, a source of a type
// exists. [Config.MaxSubscriptions] bounds the subscriptions of a bus.
// [Bus.Close] ends every subscription with ErrBusClosed.
//
// # Runtime events
//
// A [Runtime] bridge, installed into an actor.Config, emits the lifecycle of
// an actor system on a bus: [ActorSpawned], [ActorStopped], [ActorCrashed],
// [ActorRestarted], [LoopOverloaded], and [SupervisorGaveUp] (from the
// supervisor's report). [NodeUp], [NodeDown], [ConnOpened] and [ConnClosed]
// are emitted by a remote.Node given the bus in its Config.Events. The actor package does not import
// this one. docs/events.md documents every event type.
package event
