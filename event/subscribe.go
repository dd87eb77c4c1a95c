package event

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
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
// (MatchTags) and queries (MatchQuery, which reads "key=value" tags as
// attributes) select on. A tag is an opaque string compared exactly, such
// as "peer=node-2" or "critical". EventTags may have a value or a pointer
// receiver; it is called only when a subscription to the type has a tag
// query, at most once per Emit, and must not retain or modify the event.
// With a value receiver it is called on the event as emitted, at no
// allocation; with a pointer receiver the event is first copied to the
// heap.
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
	buffer   int
	policy   SlowPolicy
	notify   func(Overflow)
	filters  []filterOpt
	tags     *TagQuery
	query    *Query
	blocking bool
	client   string
	err      error
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

// MatchQuery keeps only the events that match q, a query in the bus's
// query language (see Query for the grammar), evaluated on the emitter's
// goroutine before the event is enqueued. The query is parsed once, when
// the option is applied, and compiled once per subscribed type; a later
// MatchQuery replaces an earlier one. A bad query fails the Subscribe call
// with ErrInvalid.
//
// A key names, in this order: an exported field of the event (a path such
// as Member.Name reaches into nested structs, not through pointers), or,
// for events that implement Tagged, the tags "key=value" with that key (a
// tag without "=" is a key with the empty value). Fields compare by kind:
//
//   - strings: = 'v' (exact), CONTAINS 'v' (substring), EXISTS (not empty);
//   - integers and floats: = < <= > >= a number (integers exactly), EXISTS
//     (not zero);
//   - booleans: = 'true' or = 'false', EXISTS (true);
//   - time.Time: = < <= > >= TIME (as instants) or DATE (as calendar days
//     in UTC), EXISTS (not the zero time);
//   - error: = and CONTAINS on its text, EXISTS (not nil).
//
// A field of another kind, or an operator that does not fit its field, is
// an error. Tags compare as strings, or as numbers, dates and times when the
// operand is one (a value that does not read as one does not match); a key
// may appear in several tags, and a condition holds if one of them
// satisfies it (as Tendermint's multi-valued attributes); EXISTS also
// matches the keys under it (key.sub=...). A key that names nothing in the
// event's type makes the query match no event of that type; if it names
// nothing in any subscribed type, Subscribe fails with ErrInvalid
// (SubscribeAll cannot check, and does not).
//
// Evaluating a query on fields and exact tags allocates nothing (tags need
// a value-receiver EventTags for that; a pointer receiver copies the event
// to the heap once per Emit). Numeric, date and time comparisons on tags
// parse the tag's value at each Emit.
func MatchQuery(q string) Option {
	return func(c *subConfig) {
		parsed, err := ParseQuery(q)
		if err != nil {
			c.err = err
			return
		}
		c.query = parsed
	}
}

// Blocking makes a channel subscription that an EmitContext waits for when
// its buffer is full, instead of applying the slow-subscriber policy at
// once: for tests, and for consensus-style code that must not lose an
// event. Only EmitContext waits, and at most until its context ends (then
// the policy applies, to this event); Emit never waits, so an emitter on an
// event loop or network goroutine, which uses Emit, is never held up by a
// blocking subscriber, and the subscriber learns from its policy that it
// missed an event. Blocking is never the default. Actor subscriptions
// cannot block (ErrInvalid): a loop must not wait.
//
// Deadlock hazard: an EmitContext with a context that never ends waits as
// long as the subscriber neither reads nor unsubscribes. A subscriber that
// emits with EmitContext, from the goroutine that reads the subscription,
// an event that it (or another subscriber waiting on it) receives, can wait
// for itself. Give EmitContext a deadline, read blocking subscriptions on a
// goroutine that does not emit, and unsubscribe (or close the bus) to
// release a waiting emitter.
func Blocking() Option {
	return func(c *subConfig) { c.blocking = true }
}

// Client makes the subscription one of the client id, as Tendermint's
// pubsub does: a client may hold one subscription per set of event types
// and query (the MatchQuery text, canonicalised; Where and MatchTags
// filters are not compared), a second one fails with ErrAlreadySubscribed;
// Bus.Unsubscribe ends one by its client, query and types, and
// Bus.UnsubscribeAll all of a client's. An ended subscription frees its
// place at once, so the client may subscribe again.
func Client(id string) Option {
	return func(c *subConfig) {
		if id == "" {
			c.err = fmt.Errorf("event: Client(\"\"): a client id is not empty: %w", ErrInvalid)
			return
		}
		c.client = id
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
	topics []topicAny // b.mu: a wildcard subscription gains the topics made after it
	types  []Type
	wild   bool       // SubscribeAll
	cfg    *subConfig // kept by wildcard subscriptions, for the topics to come
	client string
	key    string // the client's key for it: types and query

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

// Types returns the event types the subscription names; nil for a
// wildcard subscription, which receives every type.
func (s *Subscription) Types() []Type { return slices.Clone(s.types) }

// Client returns the client id the subscription was made under (see
// Client), or "".
func (s *Subscription) Client() string { return s.client }

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

// gaveUp applies the slow-subscriber policy to an event of type rt that an
// EmitContext waited to deliver to this blocking subscription until its
// context ended with cause.
func (s *Subscription) gaveUp(rt reflect.Type, cause error) {
	n := s.dropped.Add(1)
	switch s.policy {
	case Drop:
	case Notify:
		s.notify(Overflow{Sub: s, Type: rt, Dropped: n, Err: cause})
	default:
		s.end(fmt.Errorf("event: %v not delivered: the emitter stopped waiting for room in a buffer of %d (%w): %w",
			rt, s.capacity(), cause, ErrOutOfCapacity), true)
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
	cfg, err := configure(opts, []Type{ty}, false)
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
	cfg, err := configure(opts, types, false)
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

// SubscribeAll subscribes to every event type, those that exist and those
// to come, through one ordered stream of any, as SubscribeMany does for
// chosen types (the order guarantee is the same): for loggers, debuggers and
// tests, as libp2p's wildcard subscription. Where filters apply to their own
// type and let the others pass; a query whose keys a type lacks matches no
// event of that type. It is not given the last events of stateful types.
// It counts once against Config.MaxSubscriptions.
func SubscribeAll(b *Bus, opts ...Option) (*Stream[any], error) {
	cfg, err := configure(opts, nil, true)
	if err != nil {
		return nil, err
	}
	ch := make(chan any, cfg.buffer)
	s := &Subscription{kind: kindAny, anyOut: ch, closeOut: func() { close(ch) }, wild: true}
	if err := b.attach(s, cfg, nil); err != nil {
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
	cfg, err := configure(opts, types, false)
	if err != nil {
		return nil, err
	}
	if cfg.blocking {
		return nil, fmt.Errorf("event: an actor subscription cannot block (its loop must not wait): %w", ErrInvalid)
	}
	s := &Subscription{kind: kindActor, sys: sys, ref: to}
	if err := b.attach(s, cfg, types); err != nil {
		return nil, err
	}
	return s, nil
}

// configure applies opts and checks them against the subscribed types
// (all of them when wild).
func configure(opts []Option, types []Type, wild bool) (*subConfig, error) {
	if len(types) == 0 && !wild {
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
	if wild {
		return cfg, nil
	}
	for _, f := range cfg.filters {
		if !slices.ContainsFunc(types, func(t Type) bool { return t.rt == f.rt }) {
			return nil, fmt.Errorf("event: filter on %v, which is not subscribed: %w", f.rt, ErrInvalid)
		}
	}
	return cfg, nil
}

// subKey is a client's key for a subscription: its types (as a set) and
// its query.
func subKey(types []Type, wild bool, q *Query) string {
	var b strings.Builder
	if wild {
		b.WriteString("*")
	} else {
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = t.rt.PkgPath() + "\x00" + t.rt.String()
		}
		slices.Sort(names)
		b.WriteString(strings.Join(names, "\x01"))
	}
	b.WriteString("\x02")
	if q != nil {
		b.WriteString(q.String())
	}
	return b.String()
}

// attach registers s on the bus for types (every type when s is a
// wildcard), within the subscription limit and the client's keys.
//
// A subscription to a stateful type must get the type's last event before
// any later event of any of its types, and never twice. So the topics'
// state locks are taken (in creation order, which every subscriber
// follows), the last events are delivered into the new subscription, and
// only then is it installed in the topics' snapshots: an emit of a
// stateful type waits for the state lock, an emit of any other type cannot
// reach the subscription before it is installed.
func (b *Bus) attach(s *Subscription, cfg *subConfig, types []Type) error {
	s.b, s.policy, s.notify, s.client = b, cfg.policy, cfg.notify, cfg.client
	s.types = slices.Clone(types)
	s.done = make(chan struct{})
	s.holds.Store(1)
	if s.client != "" {
		s.key = subKey(types, s.wild, cfg.query)
	}
	if s.wild {
		s.cfg = cfg
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.admitLocked(s); err != nil {
			return err
		}
		b.wild = append(b.wild, s)
		for _, tp := range b.topics {
			e, _, _ := tp.prepare(s, cfg, false)
			tp.install(e)
			s.topics = append(s.topics, tp)
		}
		return nil
	}

	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrBusClosed
	}
	tps := make([]topicAny, len(types))
	for i, t := range types {
		tps[i] = b.topicLocked(t)
	}
	b.mu.Unlock()

	// Compile the filters for each type, outside every lock.
	entries := make([]any, len(tps))
	absentIn := map[string]int{}
	for i, tp := range tps {
		e, absent, err := tp.prepare(s, cfg, true)
		if err != nil {
			return err
		}
		entries[i] = e
		for _, k := range absent {
			absentIn[k]++
		}
	}
	for k, n := range absentIn {
		if n == len(tps) {
			return fmt.Errorf("event: query %q: no subscribed type has a field named %s, nor tags: %w", cfg.query, k, ErrInvalid)
		}
	}

	b.mu.Lock()
	if err := b.admitLocked(s); err != nil {
		b.mu.Unlock()
		return err
	}
	s.topics = tps
	s.hold() // the channel stays open while attach may deliver, whatever happens to s
	b.mu.Unlock()
	defer s.unhold()

	order := slices.Clone(tps)
	slices.SortFunc(order, func(x, y topicAny) int { return cmp.Compare(x.base().seq, y.base().seq) })
	for _, tp := range order {
		tp.base().stateMu.Lock()
	}
	type late struct {
		rt  reflect.Type
		err error
	}
	var lates []late
	for i, tp := range tps {
		if failed, err := tp.deliverLast(entries[i]); failed {
			lates = append(lates, late{tp.base().rt, err})
		}
	}
	b.mu.Lock()
	_, live := b.subs[s] // not unlinked meanwhile (the bus closing, the actor stopping)
	if live {
		for i, tp := range tps {
			tp.install(entries[i])
		}
	}
	b.mu.Unlock()
	for _, tp := range order {
		tp.base().stateMu.Unlock()
	}
	if !live {
		if err := s.Err(); err != nil && !errors.Is(err, ErrBusClosed) {
			return err
		}
		return ErrBusClosed
	}
	for _, l := range lates { // a last event that did not fit: the policy applies
		s.overflow(l.rt, l.err)
	}
	return nil
}

// admitLocked checks that s may join the bus and registers it: the bus is
// open, below its limit, and the client holds no subscription of the same
// key. b.mu held.
func (b *Bus) admitLocked(s *Subscription) error {
	if b.closed.Load() {
		return ErrBusClosed
	}
	if b.max > 0 && len(b.subs) >= b.max {
		return fmt.Errorf("event: bus holds its maximum of %d subscriptions: %w", b.max, ErrTooManySubscriptions)
	}
	if s.client != "" {
		if _, dup := b.clients[s.client][s.key]; dup {
			return fmt.Errorf("event: client %q already holds a subscription to these types with this query: %w", s.client, ErrAlreadySubscribed)
		}
		m := b.clients[s.client]
		if m == nil {
			m = make(map[string]*Subscription)
			b.clients[s.client] = m
		}
		m[s.key] = s
	}
	b.subs[s] = struct{}{}
	if s.kind == kindActor {
		b.byActor[s.ref] = append(b.byActor[s.ref], s)
		b.nActor.Add(1)
	}
	return nil
}

// Unsubscribe ends the subscription that client holds to types with query
// (the text given to MatchQuery, or "" for none; compared canonicalised),
// as Tendermint's Unsubscribe; no types names the client's SubscribeAll.
// It fails with ErrSubscriptionNotFound when there is none (already ended,
// say), and with ErrInvalid for a query that does not parse.
func (b *Bus) Unsubscribe(client, query string, types ...Type) error {
	var q *Query
	if query != "" {
		var err error
		if q, err = ParseQuery(query); err != nil {
			return err
		}
	}
	for _, t := range types {
		if err := checkType(t.rt); err != nil {
			return err
		}
	}
	key := subKey(types, len(types) == 0, q)
	b.mu.Lock()
	s := b.clients[client][key]
	b.mu.Unlock()
	if s == nil {
		return fmt.Errorf("event: client %q holds no subscription to %v with query %q: %w", client, types, query, ErrSubscriptionNotFound)
	}
	s.Unsubscribe()
	return nil
}

// UnsubscribeAll ends every subscription of client, as Tendermint's
// UnsubscribeAll. It fails with ErrSubscriptionNotFound when the client
// holds none.
func (b *Bus) UnsubscribeAll(client string) error {
	b.mu.Lock()
	m := b.clients[client]
	subs := make([]*Subscription, 0, len(m))
	for _, s := range m {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	if len(subs) == 0 {
		return fmt.Errorf("event: client %q holds no subscription: %w", client, ErrSubscriptionNotFound)
	}
	for _, s := range subs {
		s.Unsubscribe()
	}
	return nil
}

// Clients returns the number of client ids that hold live subscriptions.
func (b *Bus) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// ClientSubscriptions returns the number of live subscriptions of client.
func (b *Bus) ClientSubscriptions(client string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients[client])
}
