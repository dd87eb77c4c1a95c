package event

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/actord/actord/actor"
)

// DefaultMaxSubscriptions is the subscription limit of a bus whose
// Config.MaxSubscriptions is zero.
const DefaultMaxSubscriptions = 4096

// Config sets up a Bus. Zero fields take the defaults.
type Config struct {
	// MaxSubscriptions bounds the number of live subscriptions on the bus
	// (a subscription to several types counts once). Beyond it the Subscribe
	// functions fail with ErrTooManySubscriptions instead of slowing every
	// emitter down. Zero means DefaultMaxSubscriptions; negative means no
	// limit.
	MaxSubscriptions int
	// Observer, if set, is called with every event emitted on the bus (by
	// Emit and EmitContext), on the emitter's goroutine, before the event is
	// delivered to any subscriber, and whether or not there are any: for
	// metrics, tracing and tests. ev is the event value (boxed once per
	// Emit, shared with the subscribers that need it). It must be quick,
	// must not block, must not emit on the bus, and must be safe to call
	// from several goroutines at once; a panic in it reaches the emitter.
	Observer func(t Type, ev any)
}

// Bus carries typed events from emitters to subscribers, in process. It is
// safe for concurrent use. The zero Bus is not usable: make one with New.
//
// Emitting never blocks on a subscriber: delivery is a non-blocking send to
// each subscriber's buffer (or actor queue), and a subscriber that is full is
// handled by its own slow-subscriber policy. Subscribing and unsubscribing
// copy the subscriber list of the types concerned (copy on write), so the
// emit path pins it with two atomic additions and takes no lock.
type Bus struct {
	max      int
	observer func(Type, any)
	closed   atomic.Bool
	done     chan struct{} // closed by Close

	mu      sync.Mutex
	topics  map[reflect.Type]topicAny
	seq     uint64 // topics created
	subs    map[*Subscription]struct{}
	byActor map[actor.Ref][]*Subscription
	nActor  atomic.Int64                        // len of all byActor lists, read without mu by the runtime bridge
	wild    []*Subscription                     // wildcard subscriptions: in every topic
	clients map[string]map[string]*Subscription // client id -> subscription key -> subscription
}

// New returns an open Bus.
func New(cfg Config) *Bus {
	max := cfg.MaxSubscriptions
	if max == 0 {
		max = DefaultMaxSubscriptions
	}
	return &Bus{
		max:      max,
		observer: cfg.Observer,
		done:     make(chan struct{}),
		topics:   make(map[reflect.Type]topicAny),
		subs:     make(map[*Subscription]struct{}),
		byActor:  make(map[actor.Ref][]*Subscription),
		clients:  make(map[string]map[string]*Subscription),
	}
}

// Close closes the bus: every live subscription ends with ErrBusClosed (its
// channel, if any, is closed after the events already buffered), every
// emitter's Emit returns ErrBusClosed from then on, WaitEmitter calls return
// ErrBusClosed, and new emitters and subscriptions are refused. Close is
// idempotent and never blocks on a subscriber.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return
	}
	b.closed.Store(true)
	close(b.done)
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	for _, t := range b.topics {
		t.clear()
	}
	clear(b.subs)
	clear(b.byActor)
	clear(b.clients)
	b.wild = nil
	b.nActor.Store(0)
	b.mu.Unlock()
	for _, s := range subs {
		s.end(ErrBusClosed, false)
	}
}

// Closed reports whether Close has been called.
func (b *Bus) Closed() bool { return b.closed.Load() }

// Subscriptions returns the number of live subscriptions, counted from the
// moment a Subscribe call admits them (before it returns); an emitter's
// Subscribers counts those that receive its events.
func (b *Bus) Subscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Type names an event type for the functions that take several types
// (SubscribeMany, SubscribeActor). Make one with TypeOf.
type Type struct {
	rt reflect.Type
	mk func(*Bus) topicAny
}

// TypeOf returns the Type of events of type T.
func TypeOf[T any]() Type {
	return Type{rt: reflect.TypeFor[T](), mk: newTopic[T]}
}

// String returns the Go name of the type.
func (t Type) String() string {
	if t.rt == nil {
		return "<nil>"
	}
	return t.rt.String()
}

// checkType refuses the zero Type and interface types: an event is a
// concrete value, and a topic of an interface type would look like a
// wildcard without being one.
func checkType(rt reflect.Type) error {
	if rt == nil {
		return fmt.Errorf("event: the zero Type: %w", ErrInvalid)
	}
	if rt.Kind() == reflect.Interface {
		return fmt.Errorf("event: %v is an interface type; events are concrete values: %w", rt, ErrInvalid)
	}
	return nil
}

// topicLocked returns the topic of t, creating it (with the wildcard
// subscriptions in it). b.mu must be held.
func (b *Bus) topicLocked(t Type) topicAny {
	tp, ok := b.topics[t.rt]
	if !ok {
		tp = t.mk(b)
		b.seq++
		tp.base().seq = b.seq
		b.topics[t.rt] = tp
		for _, s := range b.wild {
			e, _, _ := tp.prepare(s, s.cfg, false)
			tp.install(e)
			s.topics = append(s.topics, tp)
		}
	}
	return tp
}

// TypeInfo describes an event type a bus knows: one that an emitter, a
// subscription or a WaitEmitter call has named.
type TypeInfo struct {
	Type Type
	// Emitters is the number of open emitters of the type.
	Emitters int
	// Subscribers is the number of live subscriptions that name the type
	// (Subscribe, SubscribeMany, SubscribeActor); wildcard subscriptions,
	// which receive every type, are counted by Bus.Wildcards instead.
	Subscribers int
	// Stateful is true while a stateful emitter of the type is open.
	Stateful bool
}

// Types lists the event types the bus knows, sorted by name, with their
// emitter and subscriber counts (as libp2p's GetAllEventTypes, with the
// counts). A type stays known once named; its counts may drop to zero.
// Nil once the bus is closed.
func (b *Bus) Types() []TypeInfo {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	out := make([]TypeInfo, 0, len(b.topics))
	bases := make([]*topicBase, 0, len(b.topics))
	for _, tp := range b.topics {
		tb := tp.base()
		out = append(out, TypeInfo{Type: tb.typ, Emitters: tb.emitters, Subscribers: tp.subscribers() - len(b.wild)})
		bases = append(bases, tb)
	}
	b.mu.Unlock()
	for i, tb := range bases { // a state lock is taken before mu, never under it (see attach)
		tb.stateMu.Lock()
		out[i].Stateful = tb.nStateful > 0
		tb.stateMu.Unlock()
	}
	slices.SortFunc(out, func(x, y TypeInfo) int {
		if c := strings.Compare(x.Type.String(), y.Type.String()); c != 0 {
			return c
		}
		return strings.Compare(x.Type.rt.PkgPath(), y.Type.rt.PkgPath())
	})
	return out
}

// Wildcards returns the number of live wildcard subscriptions
// (SubscribeAll).
func (b *Bus) Wildcards() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.wild)
}

// HasEmitter reports whether at least one open emitter of T is registered on
// the bus. It is false once the bus is closed.
func HasEmitter[T any](b *Bus) bool {
	return b.HasEmitter(TypeOf[T]())
}

// HasEmitter reports whether at least one open emitter of type t is
// registered on the bus. It is false once the bus is closed.
func (b *Bus) HasEmitter(t Type) bool {
	if t.rt == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false
	}
	tp, ok := b.topics[t.rt]
	return ok && tp.base().emitters > 0
}

// WaitEmitter waits until an emitter of T is registered on the bus (it
// returns at once if one is). It fails with ctx's error, wrapped, when ctx
// ends first, and with ErrBusClosed when the bus closes. Subscribing does not
// need it (a subscription may precede every emitter of its types); it is for
// components that must not start before their event sources exist.
func WaitEmitter[T any](ctx context.Context, b *Bus) error {
	return b.WaitEmitter(ctx, TypeOf[T]())
}

// WaitEmitter waits until an emitter of type t is registered on the bus; see
// the generic WaitEmitter.
func (b *Bus) WaitEmitter(ctx context.Context, t Type) error {
	if err := checkType(t.rt); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrBusClosed
	}
	tb := b.topicLocked(t).base()
	if tb.emitters > 0 {
		b.mu.Unlock()
		return nil
	}
	ready := tb.ready
	b.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-b.done:
		return ErrBusClosed
	case <-ctx.Done():
		return fmt.Errorf("event: waiting for an emitter of %v: %w", t.rt, ctx.Err())
	}
}

// unlink removes s from the bus's tables. It is called once, after s ended.
func (b *Bus) unlink(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; !ok {
		return // the bus closed meanwhile
	}
	delete(b.subs, s)
	for _, tp := range s.topics {
		tp.remove(s)
	}
	if s.client != "" {
		if m := b.clients[s.client]; m[s.key] == s {
			delete(m, s.key)
			if len(m) == 0 {
				delete(b.clients, s.client)
			}
		}
	}
	if s.wild {
		b.wild = slices.DeleteFunc(b.wild, func(x *Subscription) bool { return x == s })
	}
	if s.kind == kindActor {
		list := b.byActor[s.ref]
		for i, x := range list {
			if x == s {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(b.byActor, s.ref)
		} else {
			b.byActor[s.ref] = list
		}
		b.nActor.Add(-1)
	}
}

// actorGone ends the actor subscriptions that deliver to r, which stopped.
func (b *Bus) actorGone(r actor.Ref, reason error) {
	if b.nActor.Load() == 0 {
		return
	}
	b.mu.Lock()
	list := b.byActor[r]
	if len(list) == 0 {
		b.mu.Unlock()
		return
	}
	list = append([]*Subscription(nil), list...)
	b.mu.Unlock()
	err := fmt.Errorf("event: subscriber actor %v stopped: %w", r, ErrSubscriberGone)
	if reason != nil {
		err = fmt.Errorf("event: subscriber actor %v stopped (%w): %w", r, reason, ErrSubscriberGone)
	}
	for _, s := range list {
		s.end(err, true)
	}
}
