package loop

import (
	"runtime"
	"sync/atomic"
)

// closedBit marks the tail of a ring that no longer accepts pushes. Producers
// that claim a position carrying it know the ring closed before they claimed.
const closedBit = uint64(1) << 63

type cacheLinePad [64]byte

type cell[E any] struct {
	seq atomic.Uint64
	v   E
}

// ring is a bounded multi-producer single-consumer queue (Vyukov's
// sequence-numbered array). A push costs one atomic fetch-add on the tail plus
// two loads; there is no CAS retry loop, which is what makes it twice as fast
// as a channel under fan-in (see docs/performance.md).
//
// Capacity is checked before the fetch-add, so producers racing at the
// boundary can overshoot it; the array has capacity spare cells for that. A
// producer only waits for a cell if more than capacity producers race past the
// check at once, and then only until the consumer frees the cell.
type ring[E any] struct {
	_        cacheLinePad
	tail     atomic.Uint64
	_        cacheLinePad
	head     atomic.Uint64 // written by the consumer only
	_        cacheLinePad
	mask     uint64
	capacity uint64
	cells    []cell[E]
}

func newRing[E any](capacity int) *ring[E] {
	if capacity < 1 {
		capacity = 1
	}
	size := uint64(1)
	for size < 2*uint64(capacity) {
		size <<= 1
	}
	r := &ring[E]{mask: size - 1, capacity: uint64(capacity), cells: make([]cell[E], size)}
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
	}
	return r
}

// push appends v. It returns ErrFull when the ring holds capacity items and
// ErrClosed after close.
func (r *ring[E]) push(v E) error {
	t := r.tail.Load()
	if t&closedBit != 0 {
		return ErrClosed
	}
	if t-r.head.Load() >= r.capacity {
		return ErrFull
	}
	pos := r.tail.Add(1) - 1
	if pos&closedBit != 0 {
		return ErrClosed
	}
	c := &r.cells[pos&r.mask]
	for c.seq.Load() != pos {
		runtime.Gosched() // only when > capacity producers overshoot together
	}
	c.v = v
	c.seq.Store(pos + 1)
	return nil
}

// pop removes the oldest item. It reports false when the ring is empty or the
// oldest claimed position is not yet published.
func (r *ring[E]) pop(dst *E) bool {
	h := r.head.Load()
	c := &r.cells[h&r.mask]
	if c.seq.Load() != h+1 {
		return false
	}
	var zero E
	*dst = c.v
	c.v = zero
	c.seq.Store(h + r.mask + 1)
	r.head.Store(h + 1)
	return true
}

// ready reports whether pop would return an item now.
func (r *ring[E]) ready() bool {
	h := r.head.Load()
	return r.cells[h&r.mask].seq.Load() == h+1
}

// claimed reports whether a producer has claimed a position not yet popped.
func (r *ring[E]) claimed() bool {
	return r.tail.Load()&^closedBit != r.head.Load()
}

func (r *ring[E]) len() int {
	n := int64(r.tail.Load()&^closedBit) - int64(r.head.Load())
	if n < 0 {
		return 0
	}
	return int(n)
}

// close stops further pushes and returns the tail position claimed before it:
// every position below it will be published by its producer.
func (r *ring[E]) close() uint64 {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return t &^ closedBit
		}
		if r.tail.CompareAndSwap(t, t|closedBit) {
			return t
		}
	}
}

// drainClosed pops every item claimed before close, waiting for producers
// that claimed a position but have not yet written it.
func (r *ring[E]) drainClosed(end uint64, f func(*E)) {
	var v E
	for r.head.Load() < end {
		if r.pop(&v) {
			f(&v)
			continue
		}
		runtime.Gosched()
	}
}
