package event

import (
	"fmt"
	"sync/atomic"
)

// Emitter publishes events of type T on a bus. Make one with NewEmitter; a
// component registers one emitter per event type it produces.
//
// Emit is safe for concurrent use, but the bus orders only what the caller
// orders: if one Emit call (of this emitter or of any other) returns before
// another begins, every subscription that receives both events receives
// them in that order, whatever their types and whether it is a channel or an
// actor subscription. Events emitted concurrently may reach different
// subscribers in different orders.
type Emitter[T any] struct {
	t      *topic[T]
	closed atomic.Bool
}

// NewEmitter registers an emitter of T on the bus: from now on HasEmitter[T]
// is true and WaitEmitter[T] returns, until every emitter of T is closed. T
// must be a concrete type (ErrInvalid for an interface type); a struct passed
// by value is the intended shape. NewEmitter fails with ErrBusClosed on a
// closed bus.
func NewEmitter[T any](b *Bus) (*Emitter[T], error) {
	ty := TypeOf[T]()
	if err := checkType(ty.rt); err != nil {
		return nil, fmt.Errorf("event: NewEmitter: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrBusClosed
	}
	t := b.topicLocked(ty).(*topic[T])
	t.emitters++
	if t.emitters == 1 {
		close(t.ready)
	}
	return &Emitter[T]{t: t}, nil
}

// Emit delivers ev to every live subscription of T whose filters accept it,
// and returns without waiting for any of them: a subscriber whose buffer (or
// actor queue) is full is handled by its slow-subscriber policy, never by
// blocking. Filters and Notify callbacks run on the caller's goroutine,
// before Emit returns. Emit returns ErrEmitterClosed after Close and
// ErrBusClosed after the bus closed; it does not report slow subscribers
// (they learn it from their Subscription).
//
// Delivering to channel subscriptions of T alone allocates nothing. Each Emit
// that reaches a SubscribeMany or actor subscription boxes ev into an
// interface once (shared by all of them), which allocates unless T is
// pointer-shaped; evaluating a tag query copies ev to the heap once.
func (e *Emitter[T]) Emit(ev T) error {
	if e.closed.Load() {
		return ErrEmitterClosed
	}
	t := e.t
	if t.b.closed.Load() {
		return ErrBusClosed
	}
	sn := t.acquire()
	if sn == nil {
		return nil
	}
	defer sn.release()
	t.publish(ev, sn.entries)
	return nil
}

// Subscribers returns the number of live subscriptions to T, so an emitter
// can skip building events nobody listens to. The answer may be stale by the
// time it is used.
func (e *Emitter[T]) Subscribers() int {
	return len(e.t.entries())
}

// Close unregisters the emitter: Emit fails with ErrEmitterClosed from now
// on, and when it was the last open emitter of T, HasEmitter[T] turns false.
// Subscriptions are not affected (another emitter of T may come). Close is
// idempotent.
func (e *Emitter[T]) Close() {
	if !e.closed.CompareAndSwap(false, true) {
		return
	}
	b := e.t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return
	}
	e.t.emitters--
	if e.t.emitters == 0 {
		e.t.ready = make(chan struct{})
	}
}
