package event

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Emitter publishes events of type T on a bus. Make one with NewEmitter; a
// component registers one emitter per event type it produces.
//
// Emit and EmitContext are safe for concurrent use, but the bus orders only
// what the caller orders: if one Emit call (of this emitter or of any other)
// returns before another begins, every subscription that receives both
// events receives them in that order, whatever their types and whether it is
// a channel or an actor subscription. Events emitted concurrently may reach
// different subscribers in different orders.
type Emitter[T any] struct {
	t        *topic[T]
	stateful bool
	closed   atomic.Bool
}

// EmitterOption adjusts an emitter.
type EmitterOption func(*emitterConfig)

type emitterConfig struct {
	stateful bool
}

// Stateful makes an emitter whose events are state, such as "the current
// membership" or "the local address": the bus keeps the last event of the
// type, and every new subscription to the type is given it first (its
// filters permitting), then every later event, none twice. While a stateful
// emitter of T is open, every Emit of T, by any emitter, updates the last
// event; when the last stateful emitter of T closes, the bus forgets it.
// Wildcard subscriptions (SubscribeAll) are not given last events. Emits of
// a stateful type take a short per-type lock (to order them against new
// subscriptions); other types are not affected.
func Stateful() EmitterOption {
	return func(c *emitterConfig) { c.stateful = true }
}

// NewEmitter registers an emitter of T on the bus: from now on HasEmitter[T]
// is true and WaitEmitter[T] returns, until every emitter of T is closed. T
// must be a concrete type (ErrInvalid for an interface type); a struct passed
// by value is the intended shape. NewEmitter fails with ErrBusClosed on a
// closed bus.
func NewEmitter[T any](b *Bus, opts ...EmitterOption) (*Emitter[T], error) {
	ty := TypeOf[T]()
	if err := checkType(ty.rt); err != nil {
		return nil, fmt.Errorf("event: NewEmitter: %w", err)
	}
	var cfg emitterConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrBusClosed
	}
	t := b.topicLocked(ty).(*topic[T])
	t.emitters++
	if t.emitters == 1 {
		close(t.ready)
	}
	b.mu.Unlock()
	if cfg.stateful {
		t.stateMu.Lock()
		t.nStateful++
		t.flags.Or(flagKeepLast)
		t.stateMu.Unlock()
	}
	return &Emitter[T]{t: t, stateful: cfg.stateful}, nil
}

// Emit delivers ev to every live subscription of T whose filters accept it,
// and returns without waiting for any of them: a subscriber whose buffer (or
// actor queue) is full is handled by its slow-subscriber policy, never by
// blocking — blocking subscriptions included, which only EmitContext waits
// for. So Emit is safe on an event loop or a network goroutine. The bus's
// Observer, filters and Notify callbacks run on the caller's goroutine,
// before Emit returns. Emit returns ErrEmitterClosed after Close and
// ErrBusClosed after the bus closed; it does not report slow subscribers
// (they learn it from their Subscription).
//
// Delivering to channel subscriptions of T alone allocates nothing, filters
// on fields and exact tags included. Each Emit that reaches a SubscribeMany,
// SubscribeAll or actor subscription, or a bus with an Observer, boxes ev
// into an interface once (shared by all of them), which allocates unless T
// is pointer-shaped.
func (e *Emitter[T]) Emit(ev T) error {
	if e.closed.Load() {
		return ErrEmitterClosed
	}
	t := e.t
	if t.b.closed.Load() {
		return ErrBusClosed
	}
	if t.flags.Load() != 0 {
		return t.emit(nil, ev)
	}
	sn := t.acquire()
	if sn == nil {
		return nil
	}
	defer sn.release()
	t.publish(ev, nil, sn.entries)
	return nil
}

// EmitContext is Emit, except that a blocking subscription (see Blocking)
// whose buffer is full is waited for, until it has room, ends, or ctx ends.
// When ctx ends first the subscription misses the event and its
// slow-subscriber policy applies (the default, Cancel, ends it with an error
// wrapping ErrOutOfCapacity and ctx's error); delivery to the other
// subscriptions goes on without waiting, and EmitContext returns an error
// wrapping ctx's error that counts the blocking subscriptions given up on.
// It returns ErrBusClosed if the bus closed while it waited. Non-blocking
// subscriptions are handled exactly as by Emit. Waiting on a subscriber is
// a deadlock hazard: see Blocking.
func (e *Emitter[T]) EmitContext(ctx context.Context, ev T) error {
	if ctx == nil {
		return fmt.Errorf("event: EmitContext with a nil context: %w", ErrInvalid)
	}
	if e.closed.Load() {
		return ErrEmitterClosed
	}
	if e.t.b.closed.Load() {
		return ErrBusClosed
	}
	return e.t.emit(&emitOpts{wait: true, ctx: ctx}, ev)
}

// emit is the general emit path: the observer, the last event of a stateful
// type, and, with o.wait, waiting for blocking subscriptions until o.ctx
// ends. o may be nil.
func (t *topic[T]) emit(o *emitOpts, ev T) error {
	if obs := t.b.observer; obs != nil {
		if o == nil {
			o = &emitOpts{}
		}
		o.boxed = ev
		obs(t.typ, o.boxed)
	}
	var sn *snapshot[T]
	if t.flags.Load()&flagKeepLast != 0 {
		t.stateMu.Lock()
		if t.nStateful > 0 {
			t.last, t.hasLast = ev, true
		}
		sn = t.acquire()
		t.stateMu.Unlock()
	} else {
		sn = t.acquire()
	}
	if sn == nil {
		return nil
	}
	defer sn.release()
	missed, busClosed := t.publish(ev, o, sn.entries)
	if missed > 0 {
		return fmt.Errorf("event: %v not delivered to %d blocking subscription(s): %w", t.rt, missed, o.ctx.Err())
	}
	if busClosed {
		return ErrBusClosed
	}
	return nil
}

// Subscribers returns the number of live subscriptions that receive T
// (wildcard ones included), so an emitter can skip building events nobody
// listens to. The answer may be stale by the time it is used.
func (e *Emitter[T]) Subscribers() int {
	return len(e.t.entries())
}

// Close unregisters the emitter: Emit fails with ErrEmitterClosed from now
// on, and when it was the last open emitter of T, HasEmitter[T] turns false;
// when it was the last stateful one, the bus forgets T's last event.
// Subscriptions are not affected (another emitter of T may come). Close is
// idempotent.
func (e *Emitter[T]) Close() {
	if !e.closed.CompareAndSwap(false, true) {
		return
	}
	t := e.t
	if e.stateful {
		t.stateMu.Lock()
		t.nStateful--
		if t.nStateful == 0 {
			t.flags.And(^flagKeepLast)
			var zero T
			t.last, t.hasLast = zero, false
		}
		t.stateMu.Unlock()
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return
	}
	t.emitters--
	if t.emitters == 0 {
		t.ready = make(chan struct{})
	}
}
