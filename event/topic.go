package event

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actord/actord/actor"
)

// topicAny is the part of a topic the bus handles without knowing its type.
type topicAny interface {
	base() *topicBase
	// prepare builds s's entry for this topic, its filters compiled for the
	// topic's type, without installing it. strict: a query that cannot
	// apply to the type is an error (otherwise it matches nothing). absent
	// lists the query keys that name nothing in the type.
	prepare(s *Subscription, cfg *subConfig, strict bool) (e any, absent []string, err error)
	// install adds a prepared entry to the topic's snapshot. b.mu held.
	install(e any)
	// deliverLast gives a prepared entry the topic's last event, if the
	// topic keeps one and the entry's filters accept it. stateMu held.
	// A failed delivery is returned for the caller to apply the
	// subscription's policy once it holds no lock.
	deliverLast(e any) (failed bool, sendErr error)
	// remove detaches s. b.mu held.
	remove(s *Subscription)
	// clear detaches every subscription. b.mu held.
	clear()
	// subscribers counts the entries of the current snapshot. b.mu held.
	subscribers() int
}

// topicBase is the type-independent state of a topic.
type topicBase struct {
	rt  reflect.Type
	typ Type
	seq uint64 // creation order: subscribers lock the stateMu of several topics in this order

	// guarded by the bus's mu
	emitters int           // open emitters
	ready    chan struct{} // closed while emitters > 0

	// stateMu orders the emits of a stateful type against new
	// subscriptions: an emit records the last event and pins the snapshot
	// under it, a subscription is given the last event and installed under
	// it, so a new subscriber gets the last event and then every later one,
	// none twice. Emits of other types never take it.
	stateMu   sync.Mutex
	nStateful int // open stateful emitters; under stateMu
}

func (tb *topicBase) base() *topicBase { return tb }

// Bits of topic.flags: when any is set, Emit takes the slow path.
const (
	flagKeepLast uint32 = 1 << iota // a stateful emitter is open
	flagObserve                     // the bus has an observer
)

// topic is everything the bus knows about one event type T.
type topic[T any] struct {
	topicBase
	b      *Bus
	flags  atomic.Uint32
	tagsFn func(T) []string            // EventTags with a value receiver: called without a copy to the heap
	tagged bool                        // T or *T implements Tagged
	subs   atomic.Pointer[snapshot[T]] // nil when no subscription

	last    T // under stateMu
	hasLast bool
}

// entry is one subscription as seen by the emitters of one type. It is a
// value in the snapshot so that the emit loop touches one contiguous array.
type entry[T any] struct {
	s        *Subscription
	ch       chan T   // kindTyped
	anyCh    chan any // kindAny
	sys      Sender   // kindActor
	ref      actor.Ref
	filter   func(T) bool
	tags     *TagQuery
	query    *boundQuery
	kind     uint8
	filtered bool // filter, tags or query is set
	blocking bool
}

// snapshot is an immutable list of a topic's subscriptions. Subscribing and
// unsubscribing replace it (copy on write) and retire the old one. Emitters
// pin the snapshot they deliver from; once a retired snapshot is unpinned it
// is finalised, which releases its hold on each of its subscriptions. A
// subscription's channel is closed when it has ended and no snapshot that
// lists it can still be delivering: so a send never meets a closed channel,
// and the emit path needs no per-subscriber lock — two atomic additions per
// Emit, whatever the number of subscribers.
type snapshot[T any] struct {
	entries []entry[T]
	state   atomic.Int64 // pins, plus retiredBit once replaced
	done    atomic.Bool  // finalised
}

const retiredBit = 1 << 40

// acquire pins the topic's current snapshot, or returns nil when there is
// no subscription.
func (t *topic[T]) acquire() *snapshot[T] {
	for {
		sn := t.subs.Load()
		if sn == nil {
			return nil
		}
		if sn.state.Add(1)&retiredBit == 0 {
			return sn
		}
		// Replaced since we loaded it: a newer snapshot is already stored.
		sn.release()
	}
}

// release unpins sn, finalising it if it was the last pin of a retired one.
func (sn *snapshot[T]) release() {
	if sn.state.Add(-1) == retiredBit {
		sn.finalize()
	}
}

// retire marks sn replaced, finalising it if nobody has it pinned.
func (sn *snapshot[T]) retire() {
	if sn.state.Add(retiredBit) == retiredBit {
		sn.finalize()
	}
}

func (sn *snapshot[T]) finalize() {
	if !sn.done.CompareAndSwap(false, true) {
		return // a late acquire saw it retired and released it again
	}
	for i := range sn.entries {
		sn.entries[i].s.unhold()
	}
}

// replace installs entries as the topic's snapshot and retires the old one.
// b.mu held.
func (t *topic[T]) replace(entries []entry[T]) {
	var next *snapshot[T]
	if len(entries) > 0 {
		next = &snapshot[T]{entries: entries}
		for i := range entries {
			entries[i].s.hold()
		}
	}
	if old := t.subs.Swap(next); old != nil {
		old.retire()
	}
}

func (t *topic[T]) entries() []entry[T] {
	if sn := t.subs.Load(); sn != nil {
		return sn.entries
	}
	return nil
}

func newTopic[T any](b *Bus) topicAny {
	rt := reflect.TypeFor[T]()
	_, tagged := any((*T)(nil)).(Tagged)
	t := &topic[T]{
		topicBase: topicBase{rt: rt, typ: TypeOf[T](), ready: make(chan struct{})},
		b:         b,
		tagged:    tagged,
	}
	// A value-receiver EventTags is called as a method expression, with the
	// event passed by value: reading tags then copies nothing to the heap.
	if m, ok := rt.MethodByName("EventTags"); ok {
		t.tagsFn, _ = m.Func.Interface().(func(T) []string)
	}
	if b.observer != nil {
		t.flags.Store(flagObserve)
	}
	return t
}

func (t *topic[T]) prepare(s *Subscription, cfg *subConfig, strict bool) (any, []string, error) {
	e := &entry[T]{s: s, kind: s.kind, sys: s.sys, ref: s.ref, anyCh: s.anyOut, blocking: cfg.blocking}
	if s.kind == kindTyped {
		e.ch = s.typedOut.(chan T)
	}
	for _, f := range cfg.filters {
		if f.rt != t.rt {
			continue
		}
		fn := f.fn.(func(T) bool)
		if prev := e.filter; prev != nil {
			e.filter = func(v T) bool { return prev(v) && fn(v) }
		} else {
			e.filter = fn
		}
	}
	if cfg.tags != nil {
		q := *cfg.tags
		e.tags = &q
	}
	e.filtered = e.filter != nil || e.tags != nil || cfg.query != nil
	var absent []string
	if cfg.query != nil {
		bq, abs, err := cfg.query.bind(t.rt, t.tagged)
		if err != nil {
			if strict {
				return nil, nil, fmt.Errorf("%w: %w", err, ErrInvalid)
			}
			bq = &boundQuery{never: true}
		}
		e.query, absent = bq, abs
	}
	return e, absent, nil
}

func (t *topic[T]) install(ea any) {
	old := t.entries()
	next := make([]entry[T], len(old), len(old)+1)
	copy(next, old)
	t.replace(append(next, *ea.(*entry[T])))
}

func (t *topic[T]) subscribers() int { return len(t.entries()) }

func (t *topic[T]) deliverLast(ea any) (bool, error) {
	e := ea.(*entry[T])
	if !t.hasLast || e.s.ended.Load() {
		return false, nil
	}
	ev := t.last
	var tags []string
	known := false
	if !t.accepts(e, &ev, &tags, &known) {
		return false, nil
	}
	switch e.kind {
	case kindTyped:
		select {
		case e.ch <- ev:
			return false, nil
		default:
		}
	case kindAny:
		select {
		case e.anyCh <- ev:
			return false, nil
		default:
		}
	case kindActor:
		if err := e.sys.Send(e.ref, ev); err != nil {
			return true, err
		}
		return false, nil
	}
	return true, nil
}

func (t *topic[T]) remove(s *Subscription) {
	old := t.entries()
	next := make([]entry[T], 0, len(old))
	for _, e := range old {
		if e.s != s {
			next = append(next, e)
		}
	}
	if len(next) != len(old) {
		t.replace(next)
	}
}

func (t *topic[T]) clear() { t.replace(nil) }

// accepts runs e's filters on *ev, which is read in place and not
// retained. *tags holds ev's tags once *known; accepts reads them (once) if
// a filter needs them.
func (t *topic[T]) accepts(e *entry[T], ev *T, tags *[]string, known *bool) bool {
	if e.filter != nil && !e.filter(*ev) {
		return false
	}
	if e.tags == nil && e.query == nil {
		return true
	}
	if !*known && (e.tags != nil || e.query.tags) {
		*tags, *known = t.tagsOf(*ev), true
	}
	if e.tags != nil && !e.tags.Match(*tags) {
		return false
	}
	return e.query == nil || e.query.match(unsafe.Pointer(ev), *tags)
}

// Results of waiting for room in a blocking subscription.
const (
	waitSent   = iota
	waitGone   // the subscription ended meanwhile
	waitGaveUp // the emitter's context ended first
)

// waitSend waits for room in ch, the channel of a blocking subscription.
func waitSend[V any](ctx context.Context, ch chan V, v V, done <-chan struct{}) int {
	if ctx.Err() != nil {
		return waitGaveUp // the emitter has already given up: do not race ctx against ch
	}
	select {
	case ch <- v:
		return waitSent
	case <-done:
		return waitGone
	case <-ctx.Done():
		return waitGaveUp
	}
}

// emitOpts are the options of an emit beyond the fast path: a bus
// observer's boxing of the event, and EmitContext's waiting.
type emitOpts struct {
	boxed any             // ev as an interface, if the caller has made it
	wait  bool            // wait for blocking subscriptions, until ctx ends
	ctx   context.Context // with wait
}

// publish delivers ev to every subscription of a pinned snapshot, in order,
// each with a non-blocking send, except that when o.wait is set
// (EmitContext) a blocking subscription whose buffer is full is waited for
// until o.ctx ends. o is nil on Emit's fast path. missed counts the
// blocking subscriptions given up on; busClosed reports a wait ended by the
// bus closing.
func (t *topic[T]) publish(ev T, o *emitOpts, subs []entry[T]) (missed int, busClosed bool) {
	var boxed any // ev as an interface, made at most once per emit
	wait := false
	var ctx context.Context
	if o != nil {
		boxed, wait, ctx = o.boxed, o.wait, o.ctx
	}
	var tags []string
	tagsKnown := false
	for i := range subs {
		e := &subs[i]
		s := e.s
		if s.ended.Load() {
			continue
		}
		if e.filtered && !t.accepts(e, &ev, &tags, &tagsKnown) {
			continue
		}
		var waited int
		switch e.kind {
		case kindTyped:
			select {
			case e.ch <- ev:
				continue
			default:
			}
			if !e.blocking || !wait {
				break
			}
			waited = waitSend(ctx, e.ch, ev, s.done)
		case kindAny:
			if boxed == nil {
				boxed = ev
			}
			select {
			case e.anyCh <- boxed:
				continue
			default:
			}
			if !e.blocking || !wait {
				break
			}
			waited = waitSend(ctx, e.anyCh, boxed, s.done)
		case kindActor:
			if boxed == nil {
				boxed = ev
			}
			err := e.sys.Send(e.ref, boxed)
			if err == nil {
				continue
			}
			s.overflow(t.rt, err)
			continue
		}
		if e.blocking && wait {
			switch waited {
			case waitSent:
			case waitGone:
				busClosed = busClosed || t.b.closed.Load()
			case waitGaveUp:
				missed++
				s.gaveUp(t.rt, ctx.Err())
			}
			continue
		}
		s.overflow(t.rt, nil)
	}
	return missed, busClosed
}

// tagsOf returns the tags ev carries. With a pointer-receiver EventTags it
// copies ev to the heap.
func (t *topic[T]) tagsOf(ev T) []string {
	if t.tagsFn != nil {
		return t.tagsFn(ev)
	}
	if !t.tagged {
		return nil
	}
	v := ev
	return any(&v).(Tagged).EventTags()
}
