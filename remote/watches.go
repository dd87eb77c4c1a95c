package remote

import (
	"cmp"
	"slices"

	"github.com/actord/actord/actor"
)

// watches is the bookkeeping of the monitors local actors hold on actors
// of one peer's node: by target, the local watchers. It decides what a
// Monitor, a Demonitor and a Down from the peer do, and which Downs a loss
// fires; the peer keeps it under its lock, sends the frames and delivers
// the Downs. Monitors carry no connection epoch: one made after a loss
// either finds the peer known down (Down at once) or goes out on the next
// connection, and a loss takes every monitor registered before it, under
// the same lock.
type watches struct {
	m     map[actor.WireID]*monitor
	pairs int // (target, watcher) pairs in m
}

// monitor is a remote actor watched by local actors through this peer.
type monitor struct {
	target   actor.Ref
	watchers map[actor.Ref]struct{}
}

// add registers watcher on target (id tid on the peer). It reports false
// when watcher watched target already: no Monitor frame is needed.
func (w *watches) add(tid actor.WireID, target, watcher actor.Ref) bool {
	if w.m == nil {
		w.m = map[actor.WireID]*monitor{}
	}
	m := w.m[tid]
	if m == nil {
		m = &monitor{target: target, watchers: map[actor.Ref]struct{}{}}
		w.m[tid] = m
	}
	if _, dup := m.watchers[watcher]; dup {
		return false
	}
	m.watchers[watcher] = struct{}{}
	w.pairs++
	return true
}

// remove unregisters watcher from tid (a Demonitor, or a Monitor that
// could not be sent) and returns the target's ref; ok is false when it was
// not registered (a Down or a loss took it meanwhile).
func (w *watches) remove(tid actor.WireID, watcher actor.Ref) (target actor.Ref, ok bool) {
	m := w.m[tid]
	if m == nil {
		return actor.Ref{}, false
	}
	if _, ok = m.watchers[watcher]; !ok {
		return actor.Ref{}, false
	}
	delete(m.watchers, watcher)
	w.pairs--
	if len(m.watchers) == 0 {
		delete(w.m, tid)
	}
	return m.target, true
}

// lost takes every monitor, to be fired with the loss's reason: the peer
// delivers a Down to each watcher of each target.
func (w *watches) lost() map[actor.WireID]*monitor {
	m := w.m
	w.m, w.pairs = nil, 0
	return m
}

// count returns the number of (target, watcher) pairs registered.
func (w *watches) count() int { return w.pairs }

// empty reports whether no local actor watches an actor of the peer.
func (w *watches) empty() bool { return len(w.m) == 0 }

// downTo is a Down to deliver: target stopped (or its node is gone), for
// watcher.
type downTo struct{ target, watcher actor.Ref }

// downsOf lists the Downs the monitors ms owe, in an order that does not
// depend on Go's map order (by target id, then watcher id), so that a
// simulated run delivers them the same way every time.
func downsOf(ms map[actor.WireID]*monitor) []downTo {
	var out []downTo
	for _, m := range ms {
		for w := range m.watchers {
			out = append(out, downTo{m.target, w})
		}
	}
	slices.SortFunc(out, func(a, b downTo) int {
		if c := compareRefs(a.target, b.target); c != 0 {
			return c
		}
		return compareRefs(a.watcher, b.watcher)
	})
	return out
}

// compareRefs orders refs by their ids (loop, slot, generation).
func compareRefs(a, b actor.Ref) int {
	al, as, ag := a.ID()
	bl, bs, bg := b.ID()
	return cmp.Or(cmp.Compare(al, bl), cmp.Compare(as, bs), cmp.Compare(ag, bg))
}
