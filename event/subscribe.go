package event

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/actord/actord/actor"
)

// DefaultBuffer is the buffer of a channel subscription made without the
// Buffer option.
const DefaultBuffer = 64

// SlowPolicy says what happens when an event reaches a subscription that has
// no room for it: its channel buffer is full, or, for an actor subscription,
// the actor's loop queue refused the message with actor.ErrQueueFull. The
// emitter is never blocked, whatever the policy.
type SlowPolicy uint8

// The slow-subscriber policies.
const (
	// Cancel ends the subscription with an error wrapping ErrOutOfCapacity.
	// The subscriber has received an unbroken prefix of its stream and
	// learns from Err that it was cut off. It is the default: a subscriber
	// that falls behind is told, never silently left with gaps.
	Cancel SlowPolicy = iota
	// Drop discards the event, counts it (Subscription.Dropped) and keeps
	// the subscription.
	Drop
	// Notify discards and counts the event as Drop does, and calls the
	// subscription's callback (given with OnSlowNotify) synchronously, on
	// the emitter's goroutine, before Emit returns. Delivery continues.
	Notify
)

var policyNames = [...]string{"cancel", "drop", "notify"}

// String returns "cancel", "drop" or "notify".
func (p SlowPolicy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "unknown"
}

// Overflow tells a Notify callback about one event its subscription had no
// room for.
type Overflow struct {
	// Sub is the subscription.
	Sub *Subscription
	// Type is the type of the event that was dropped.
	Type reflect.Type
	// Dropped is the subscription's drop count, this event included.
	Dropped uint64
	// Err is actor.ErrQueueFull for an actor subscription, nil for a channel
	// whose buffer was full.
	Err error
}

// Tagged is implemented by events that carry tags, which tag queries
// (MatchTags) select on. A tag is an opaque string compared exactly, such as
// "peer=node-2" or "critical". EventTags may have a value or a pointer
// receiver; it is called only when a subscription to the type has a tag
// query, at most once per Emit, and must not retain or modify the event.
type Tagged interface {
	EventTags() []string
}

// TagQuery selects events by their tags. An event matches when it carries
// every tag of All, at least one of Any (if Any is not empty), and none of
// None. An event type that does not implement Tagged carries no tags.
type TagQuery struct {
	All, Any, None []string
}

// Match reports whether an event carrying tags matches q.
func (q *TagQuery) Match(tags []string) bool {
	for _, t := range q.All {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	if len(q.Any) > 0 {
		found := false
		for _, t := range q.Any {
			if slices.Contains(tags, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, t := range q.None {
		if slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

// Option adjusts a subscription.
type Option func(*subConfig)

type filterOpt struct {
	rt reflect.Type
	fn any // func(T) bool
}

type subConfig struct {
	buffer  int
	policy  SlowPolicy
	notify  func(Overflow)
	filters []filterOpt
	tags    *TagQuery
	err     error
}

// Buffer sets the capacity of a channel subscription's buffer (DefaultBuffer
// when not given; at least 1). It is how far the subscriber may fall behind
// before its slow-subscriber policy applies. Actor subscriptions ignore it:
// their buffer is the actor's loop queue (actor.Config.QueueCapacity).
func Buffer(n int) Option {
	return func(c *subConfig) {
		if n < 1 {
			c.err = fmt.Errorf("event: buffer %d below 1: %w", n, ErrInvalid)
			return
		}
		c.buffer = n
	}
}

// OnSlow sets the slow-subscriber policy to Cancel (the default) or Drop.
// For Notify use OnSlowNotify, which also gives the callback.
func OnSlow(p SlowPolicy) Option {
	return func(c *subConfig) {
		switch p {
		case Cancel, Drop:
			c.policy, c.notify = p, nil
		case Notify:
			c.err = fmt.Errorf("event: OnSlow(Notify) needs a callback; use OnSlowNotify: %w", ErrInvalid)
		default:
			c.err = fmt.Errorf("event: unknown slow policy %d: %w", p, ErrInvalid)
		}
	}
}

// OnSlowNotify sets the Notify policy: an event the subscription has no room
// for is dropped and counted, fn is called with it synchronously on the
// emitter's goroutine, and delivery continues. fn must be quick and must not
// block (the emitter may be an event loop); it may call Unsubscribe. When
// several goroutines emit, fn may be called concurrently.
func OnSlowNotify(fn func(Overflow)) Option {
	return func(c *subConfig) {
		if fn == nil {
			c.err = fmt.Errorf("event: OnSlowNotify(nil): %w", ErrInvalid)
			return
		}
		c.policy, c.notify = Notify, fn
	}
}

// Where keeps only the events of type T for which keep returns true. It is
// evaluated on the emitter's goroutine before the event is enqueued, so a
// filtered-out event costs the subscriber nothing and is not counted as
// dropped. keep must be quick, must not block, and must be safe to call from
// several goroutines. Several Where options for one type must all accept. T
// must be one of the subscribed types (ErrInvalid otherwise).
func Where[T any](keep func(T) bool) Option {
	return func(c *subConfig) {
		if keep == nil {
			c.err = fmt.Errorf("event: Where(nil): %w", ErrInvalid)
			return
		}
		c.filters = append(c.filters, filterOpt{rt: reflect.TypeFor[T](), fn: keep})
	}
}

// MatchTags keeps only the events whose tags (see Tagged) match q, evaluated
// on the emitter's goroutine before the event is enqueued. It applies to
// every subscribed type; a later MatchTags replaces an earlier one.
func MatchTags(q TagQuery) Option {
	return func(c *subConfig) {
		q := TagQuery{All: slices.Clone(q.All), Any: slices.Clone(q.Any), None: slices.Clone(q.None)}
		c.tags = &q
	}
}

// Sender delivers a message to an actor without blocking. *actor.System is
// the Sender of actor subscriptions; the interface exists so that the bus
// does not depend on how the runtime is built.
type Sender interface {
	Send(to actor.Ref, msg any) error
}

var _ Sender = (*actor.System)(nil)

// subscription kinds.
const (
	kindTyped uint8 = iota + 1
	kindAny
	kindActor
)

// Subscription is a live feed of events from a bus to one subscriber. It
// ends exactly once, for one reason, and then Done is closed and Err says
// why. It is safe for concurrent use.
type Subscription struct {
	b      *Bus
	kind   uint8
	policy SlowPolicy
	notify func(Overflow)
	topics []topicAny
	types  []Type

	// delivery targets, fixed at creation
	typedOut any      // chan T of a Stream[T]
	anyOut   chan any // of a Stream[any] from SubscribeMany
	sys      Sender
	ref      actor.Ref

	dropped atomic.Uint64
	done    chan struct{}
	ended   atomic.Bool // read by every delivery
	// holds counts the reasons the channel must stay open: 1 while the
	// subscription is live, plus one per snapshot listing it that is not
	// finalised (an emitter may be sending from it).
	holds    atomic.Int64
	closeOut func() // closes the channel of a Stream

	mu  sync.Mutex // guards err and the transition to ended
	err error
}

// Done returns a channel closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns nil while the subscription is live, and afterwards why it
// ended: an error matching ErrUnsubscribed, ErrOutOfCapacity, ErrBusClosed or
// ErrSubscriberGone under errors.Is.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Dropped returns how many events the subscription had no room for (under
// the Drop and Notify policies, and the one that ended a Cancel
// subscription). Events rejected by filters are not counted.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Policy returns the subscription's slow-subscriber policy.
func (s *Subscription) Policy() SlowPolicy { return s.policy }

// Types returns the event types the subscription receives.
func (s *Subscription) Types() []Type { return slices.Clone(s.types) }

// Unsubscribe ends the subscription with ErrUnsubscribed, unless it has
// already ended; calling it again does nothing. No Emit that begins after
// Unsubscribe returns delivers to it. A channel subscription's channel is
// closed once no Emit that began earlier is still delivering to it, after the
// events already buffered, so a receiving loop ends.
func (s *Subscription) Unsubscribe() { s.end(ErrUnsubscribed, true) }

// end ends s with err, once; unlink removes it from the bus's tables.
func (s *Subscription) end(err error, unlink bool) {
	s.mu.Lock()
	if s.ended.Load() {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.ended.Store(true)
	close(s.done)
	s.mu.Unlock()
	if unlink {
		s.b.unlink(s)
	}
	s.unhold() // the life hold
}

func (s *Subscription) hold() { s.holds.Add(1) }

// unhold drops a hold; the last one closes the channel.
func (s *Subscription) unhold() {
	if s.holds.Add(-1) == 0 && s.closeOut != nil {
		s.closeOut()
	}
}

// overflow applies the slow-subscriber policy to one event of type rt that
// did not fit; sendErr is the actor system's refusal, if any.
func (s *Subscription) overflow(rt reflect.Type, sendErr error) {
	if sendErr != nil && !errors.Is(sendErr, actor.ErrQueueFull) {
		s.end(fmt.Errorf("event: subscriber actor %v unreachable (%w): %w", s.ref, sendErr, ErrSubscriberGone), true)
		return
	}
	n := s.dropped.Add(1)
	switch s.policy {
	case Drop:
	case Notify:
		s.notify(Overflow{Sub: s, Type: rt, Dropped: n, Err: sendErr})
	default:
		var err error
		if s.kind == kindActor {
			err = fmt.Errorf("event: %v not delivered to actor %v (%w): %w", rt, s.ref, sendErr, ErrOutOfCapacity)
		} else {
			err = fmt.Errorf("event: %v not delivered: buffer of %d full: %w", rt, s.capacity(), ErrOutOfCapacity)
		}
		s.end(err, true)
	}
}

func (s *Subscription) capacity() int {
	if s.anyOut != nil {
		return cap(s.anyOut)
	}
	return reflect.ValueOf(s.typedOut).Cap()
}

// Stream is a channel subscription: events arrive on Out, in order. Its
// Subscription methods (Done, Err, Dropped, Unsubscribe) are promoted.
type Stream[T any] struct {
	*Subscription
	out chan T
}

// Out returns the channel events arrive on. The bus owns it: it is
// receive-only to the subscriber, and the bus closes it when the
// subscription ends, after the events already buffered.
func (s *Stream[T]) Out() <-chan T { return s.out }

// Subscribe subscribes to events of type T, delivered on a channel of T.
// Delivery to it allocates nothing. The subscription receives the events of
// every Emit that begins after Subscribe returns (filters permitting), until
// it ends. It fails with ErrInvalid (bad options or an interface type),
// ErrTooManySubscriptions or ErrBusClosed.
func Subscribe[T any](b *Bus, opts ...Option) (*Stream[T], error) {
	ty := TypeOf[T]()
	cfg, err := configure(opts, []Type{ty})
	if err != nil {
		return nil, err
	}
	ch := make(chan T, cfg.buffer)
	s := &Subscription{kind: kindTyped, typedOut: ch, closeOut: func() { close(ch) }}
	if err := b.attach(s, cfg, []Type{ty}); err != nil {
		return nil, err
	}
	return &Stream[T]{Subscription: s, out: ch}, nil
}

// SubscribeMany subscribes to several event types through one ordered
// stream: events arrive on one channel of any, each the event value (not a
// pointer), in the order their Emit calls were ordered (see Emitter), so a
// subscriber to Opened and Closed never sees a Close before the Open emitted
// before it. It fails as Subscribe does, and with ErrInvalid when types is
// empty. Each event delivered is boxed once per Emit (see Emitter.Emit).
func SubscribeMany(b *Bus, types []Type, opts ...Option) (*Stream[any], error) {
	cfg, err := configure(opts, types)
	if err != nil {
		return nil, err
	}
	ch := make(chan any, cfg.buffer)
	s := &Subscription{kind: kindAny, anyOut: ch, closeOut: func() { close(ch) }}
	if err := b.attach(s, cfg, types); err != nil {
		return nil, err
	}
	return &Stream[any]{Subscription: s, out: ch}, nil
}

// SubscribeActor subscribes the actor to to the given event types: each
// event is sent to it with sys.Send (sys is normally the *actor.System that
// runs it) as a one-way message whose value is the event, so its Receive
// method gets, say, an event.ActorStopped. Events arrive in the order their
// Emit calls were ordered, across all the types, as for SubscribeMany.
//
// The actor's loop queue is the subscription's buffer: when Send fails with
// actor.ErrQueueFull the slow-subscriber policy applies. Any other Send
// failure (the system shut down) ends the subscription with
// ErrSubscriberGone, and so does the actor's stop when a Runtime bridge
// reports the system's events to this bus; without one, a stopped actor's
// subscription lingers (its messages are dropped by the runtime) until
// Unsubscribe, so an actor should unsubscribe in its Terminate method.
func SubscribeActor(b *Bus, sys Sender, to actor.Ref, types []Type, opts ...Option) (*Subscription, error) {
	if sys == nil || to.IsZero() {
		return nil, fmt.Errorf("event: SubscribeActor needs a system and a live ref: %w", ErrInvalid)
	}
	cfg, err := configure(opts, types)
	if err != nil {
		return nil, err
	}
	s := &Subscription{kind: kindActor, sys: sys, ref: to}
	if err := b.attach(s, cfg, types); err != nil {
		return nil, err
	}
	return s, nil
}

// configure applies opts and checks them against the subscribed types.
func configure(opts []Option, types []Type) (*subConfig, error) {
	if len(types) == 0 {
		return nil, fmt.Errorf("event: subscribe to no type: %w", ErrInvalid)
	}
	for i, t := range types {
		if err := checkType(t.rt); err != nil {
			return nil, err
		}
		for _, u := range types[:i] {
			if u.rt == t.rt {
				return nil, fmt.Errorf("event: %v subscribed twice: %w", t.rt, ErrInvalid)
			}
		}
	}
	cfg := &subConfig{buffer: DefaultBuffer, policy: Cancel}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
		if cfg.err != nil {
			return nil, cfg.err
		}
	}
	for _, f := range cfg.filters {
		if !slices.ContainsFunc(types, func(t Type) bool { return t.rt == f.rt }) {
			return nil, fmt.Errorf("event: filter on %v, which is not subscribed: %w", f.rt, ErrInvalid)
		}
	}
	return cfg, nil
}

// attach registers s on the bus for types, within the subscription limit.
func (b *Bus) attach(s *Subscription, cfg *subConfig, types []Type) error {
	s.b, s.policy, s.notify = b, cfg.policy, cfg.notify
	s.types = slices.Clone(types)
	s.done = make(chan struct{})
	s.holds.Store(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrBusClosed
	}
	if b.max > 0 && len(b.subs) >= b.max {
		return fmt.Errorf("event: bus holds its maximum of %d subscriptions: %w", b.max, ErrTooManySubscriptions)
	}
	b.subs[s] = struct{}{}
	s.topics = make([]topicAny, len(types))
	for i, t := range types {
		tp := b.topicLocked(t)
		s.topics[i] = tp
		tp.add(s, cfg)
	}
	if s.kind == kindActor {
		b.byActor[s.ref] = append(b.byActor[s.ref], s)
		b.nActor.Add(1)
	}
	return nil
}
