package loop

import "time"

// timerEntry is one scheduled event. seq breaks ties between equal deadlines
// in scheduling order, which keeps firing order deterministic.
type timerEntry[E any] struct {
	when int64 // unix nanoseconds on the loop's clock
	seq  uint64
	ev   E
}

// timerHeap is a binary min-heap of values. It has no removal: the layer
// above cancels by invalidating the event (a generation check when it fires)
// and calls compact when too many dead entries pile up. Values rather than
// pointers keep scheduling allocation-free once the heap has grown.
type timerHeap[E any] struct {
	items []timerEntry[E]
	seq   uint64
}

func (h *timerHeap[E]) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	return a.when < b.when || (a.when == b.when && a.seq < b.seq)
}

func (h *timerHeap[E]) push(when time.Time, ev E) {
	h.seq++
	h.items = append(h.items, timerEntry[E]{when: when.UnixNano(), seq: h.seq, ev: ev})
	h.up(len(h.items) - 1)
}

func (h *timerHeap[E]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *timerHeap[E]) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}

// next returns the earliest deadline.
func (h *timerHeap[E]) next() (int64, bool) {
	if len(h.items) == 0 {
		return 0, false
	}
	return h.items[0].when, true
}

// popDue removes the earliest entry if it is due at now.
func (h *timerHeap[E]) popDue(now int64, dst *E) bool {
	if len(h.items) == 0 || h.items[0].when > now {
		return false
	}
	var zero timerEntry[E]
	*dst = h.items[0].ev
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items[last] = zero
	h.items = h.items[:last]
	if last > 0 {
		h.down(0)
	}
	return true
}

// compact drops every entry for which keep reports false and restores the heap.
func (h *timerHeap[E]) compact(keep func(*E) bool) {
	var zero timerEntry[E]
	j := 0
	for i := range h.items {
		if keep(&h.items[i].ev) {
			h.items[j] = h.items[i]
			j++
		}
	}
	for i := j; i < len(h.items); i++ {
		h.items[i] = zero
	}
	h.items = h.items[:j]
	for i := j/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}
