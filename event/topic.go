package event

import (
	"reflect"
	"sync/atomic"

	"github.com/actord/actord/actor"
)

// topicAny is the part of a topic the bus handles without knowing its type.
type topicAny interface {
	base() *topicBase
	// add attaches s, already configured, to the topic. b.mu held.
	add(s *Subscription, cfg *subConfig)
	// remove detaches s. b.mu held.
	remove(s *Subscription)
	// clear detaches every subscription. b.mu held.
	clear()
}

// topicBase is the type-independent state of a topic, guarded by the bus's mu.
type topicBase struct {
	rt       reflect.Type
	emitters int           // open emitters
	ready    chan struct{} // closed while emitters > 0
}

func (tb *topicBase) base() *topicBase { return tb }

// topic is everything the bus knows about one event type T.
type topic[T any] struct {
	topicBase
	b      *Bus
	tagged bool                        // T or *T implements Tagged
	subs   atomic.Pointer[snapshot[T]] // nil when no subscription
}

// entry is one subscription as seen by the emitters of one type. It is a
// value in the snapshot so that the emit loop touches one contiguous array.
type entry[T any] struct {
	s      *Subscription
	ch     chan T   // kindTyped
	anyCh  chan any // kindAny
	sys    Sender   // kindActor
	ref    actor.Ref
	filter func(T) bool
	tags   *TagQuery
	kind   uint8
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
	_, tagged := any((*T)(nil)).(Tagged)
	return &topic[T]{
		topicBase: topicBase{rt: reflect.TypeFor[T](), ready: make(chan struct{})},
		b:         b,
		tagged:    tagged,
	}
}

func (t *topic[T]) add(s *Subscription, cfg *subConfig) {
	e := entry[T]{s: s, kind: s.kind, sys: s.sys, ref: s.ref, anyCh: s.anyOut}
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
	old := t.entries()
	next := make([]entry[T], len(old), len(old)+1)
	copy(next, old)
	t.replace(append(next, e))
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

// publish delivers ev to every subscription of a pinned snapshot, in order,
// each with a non-blocking send.
func (t *topic[T]) publish(ev T, subs []entry[T]) {
	var boxed any // ev as an interface, made at most once per emit
	var tags []string
	tagsKnown := false
	for i := range subs {
		e := &subs[i]
		s := e.s
		if s.ended.Load() {
			continue
		}
		if e.filter != nil && !e.filter(ev) {
			continue
		}
		if e.tags != nil {
			if !tagsKnown {
				tags, tagsKnown = t.tagsOf(ev), true
			}
			if !e.tags.Match(tags) {
				continue
			}
		}
		switch e.kind {
		case kindTyped:
			select {
			case e.ch <- ev:
				continue
			default:
			}
		case kindAny:
			if boxed == nil {
				boxed = ev
			}
			select {
			case e.anyCh <- boxed:
				continue
			default:
			}
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
		s.overflow(t.rt, nil)
	}
}

// tagsOf returns the tags ev carries. It copies ev to the heap, so it is
// called only when a subscription of this type has a tag query.
func (t *topic[T]) tagsOf(ev T) []string {
	if !t.tagged {
		return nil
	}
	v := ev
	return any(&v).(Tagged).EventTags()
}
