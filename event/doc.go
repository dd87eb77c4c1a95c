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
//     actor, through actor.System.Send, in one ordered stream;
//   - [SubscribeAll] delivers every type, those to come included, in one
//     ordered stream (a wildcard, for loggers, debuggers and tests).
//
// [Bus.Types] lists the types a bus knows, with their emitter and
// subscriber counts. An emitter made with [Stateful] has the bus keep the
// last event of its type and give it to each new subscriber first (the
// current membership, the local address). Subscriptions made under a
// [Client] id are unique per types and query, and [Bus.Unsubscribe] and
// [Bus.UnsubscribeAll] end them by client, as Tendermint's pubsub does.
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
// [Emitter.Emit] is never blocked by a subscriber, so a loop never blocks.
// When a subscription has no room for an event (its channel buffer, set
// with [Buffer], is full, or its actor's loop queue refused the message with
// actor.ErrQueueFull), its [SlowPolicy] decides: [Cancel] (the default) ends
// it with ErrOutOfCapacity, [Drop] discards and counts the event, [Notify]
// discards, counts, and calls the subscriber's callback synchronously. A
// channel subscription made [Blocking] is instead waited for by
// [Emitter.EmitContext], until its context ends: for code that must not lose
// an event, never the default, and a deadlock hazard documented there.
//
// # Filters, wiring, limits
//
// [Where] (a predicate on one type), [MatchTags] (a query on the tags of
// [Tagged] events) and [MatchQuery] (conditions on fields and tags in a
// query language after Tendermint's: = < <= > >= CONTAINS EXISTS, numbers,
// strings, DATE and TIME) run in Emit, before enqueueing; a query is
// compiled once per subscription and type, and evaluating it on fields and
// exact tags allocates nothing. [Config.Observer] sees every event before
// the subscribers. [HasEmitter] and [WaitEmitter] tell a component whether,
// or when, a source of a type exists. [Config.MaxSubscriptions] bounds the
// subscriptions of a bus. [Bus.Close] ends every subscription with
// ErrBusClosed.
//
// # Runtime events
//
// A [Runtime] bridge, installed into an actor.Config, emits the lifecycle of
// an actor system on a bus: [ActorSpawned], [ActorStopped], [ActorCrashed],
// [ActorRestarted], [LoopOverloaded], and [SupervisorGaveUp] (from the
// supervisor's report). [NodeUp], [NodeDown], [ConnOpened] and [ConnClosed]
// are emitted by a remote.Node given the bus in its Config.Events; a daemon
// (package daemon) emits [MemberChanged], [Membership] and [ServiceFailed]
// on its own bus. The actor package does not import this one.
// docs/events.md documents every event type.
package event
