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

// ring is a bounded multi-producer single-consumer queue (after Vyukov's
// sequence-numbered array). A push costs one atomic fetch-add on the tail,
// two loads and the store that publishes its cell; there is no CAS retry
// loop. A cell's sequence number says only "full for position p" (p+1):
// producers learn that cells are free from the head, which the consumer
// publishes once per batch, so the consumer writes no per-cell atomic (an
// atomic store is a full barrier on amd64, and the cell's line is the one
// producers are writing next to).
//
// Capacity is checked before the fetch-add, so producers racing at the
// boundary can overshoot it; the array has capacity spare cells for that. A
// producer only waits for a cell if more than capacity producers race past the
// check at once, and then only until the consumer publishes a head past the
// cell's previous use.
type ring[E any] struct {
	_        cacheLinePad
	tail     atomic.Uint64
	_        cacheLinePad
	head     atomic.Uint64 // consumer position as producers see it, published per batch
	_        cacheLinePad
	next     uint64 // consumer position, consumer only
	_        cacheLinePad
	end      atomic.Uint64 // tail at close; valid once tail carries closedBit
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
	// Every cell starts with sequence 0: full for no position (position p
	// is full at p+1), free for the first lap (head 0).
	return &ring[E]{mask: size - 1, capacity: uint64(capacity), cells: make([]cell[E], size)}
}

// push appends v. It returns ErrFull when the ring holds capacity items and
// ErrClosed after close.
func (r *ring[E]) push(v E) error {
	_, err := r.pushAt(&v)
	return err
}

// pushAt is push that also returns the position *v took.
func (r *ring[E]) pushAt(v *E) (uint64, error) {
	t := r.tail.Load()
	if t&closedBit != 0 {
		return 0, ErrClosed
	}
	// head may have moved past the t read above (other producers pushed and
	// the consumer popped in between); t-h would then wrap around.
	h := r.head.Load()
	if t >= h && t-h >= r.capacity {
		return 0, ErrFull
	}
	pos := r.tail.Add(1) - 1
	if pos&closedBit != 0 {
		return 0, ErrClosed
	}
	if pos-h > r.mask { // h is older than pos: pos-h does not wrap
		r.waitFree(pos) // only when > capacity producers overshoot together
	}
	c := &r.cells[pos&r.mask]
	c.v = *v
	c.seq.Store(pos + 1)
	return pos, nil
}

// reserve claims up to n consecutive positions (as many as the ring has
// room for, at least one) for the caller to fill with put, and returns the
// first and how many. It returns ErrFull when the ring holds capacity
// items and ErrClosed after close. Unlike push it claims with a
// compare-and-swap, never past capacity: a claim of many positions must
// not overshoot into cells the consumer has not freed, where its producer
// would wait for a consumer that may not run until it returns.
func (r *ring[E]) reserve(n int) (pos uint64, k int, err error) {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return 0, 0, ErrClosed
		}
		h := r.head.Load()
		if t >= h && t-h >= r.capacity {
			return 0, 0, ErrFull
		}
		room := r.capacity
		if t >= h {
			room -= t - h
		}
		k := uint64(n)
		if k > room {
			k = room
		}
		if r.tail.CompareAndSwap(t, t+k) {
			return t, int(k), nil
		}
	}
}

// waitFree waits until the consumer has published a head past the
// previous use of pos's cell (pos-len(cells)), so the cell is free.
func (r *ring[E]) waitFree(pos uint64) {
	for pos-r.head.Load() > r.mask {
		runtime.Gosched()
	}
}

// put returns the cell of pos, a position reserve claimed, to write in
// place; publishAt then hands it to the consumer. The cell is free unless
// push's producers overshot past the spare cells together (see push).
func (r *ring[E]) put(pos uint64) *E {
	r.waitFree(pos) // only when push's producers overshoot past the spare cells
	return &r.cells[pos&r.mask].v
}

// publishAt makes the value written at pos (put) visible to the consumer.
func (r *ring[E]) publishAt(pos uint64) { r.cells[pos&r.mask].seq.Store(pos + 1) }

// pop removes the oldest item. It reports false when the ring is empty or the
// oldest claimed position is not yet published.
func (r *ring[E]) pop(dst *E) bool {
	v := r.peek()
	if v == nil {
		return false
	}
	*dst = *v
	r.release()
	r.publish()
	return true
}

// peek returns the oldest published item in place, or nil. The consumer
// handles it there and then calls release, which saves copying it out.
func (r *ring[E]) peek() *E {
	c := &r.cells[r.next&r.mask]
	if c.seq.Load() != r.next+1 {
		return nil
	}
	return &c.v
}

// release frees the cell returned by peek. Producers learn that it is
// free only at publish, once per batch: the head's cache line, which they
// read for the capacity check, is not bounced on every pop, and the cell
// needs no atomic store.
func (r *ring[E]) release() { r.next++ }

// publish clears the freed cells, so that the ring keeps nothing
// reachable (in one sweep per batch, and before the head that lets
// producers write them again), and makes them visible to producers,
// reporting whether there were any.
func (r *ring[E]) publish() bool {
	h := r.head.Load()
	if h == r.next {
		return false
	}
	var zero E
	for ; h != r.next; h++ {
		r.cells[h&r.mask].v = zero
	}
	r.head.Store(r.next)
	return true
}

// ready reports whether pop would return an item now.
func (r *ring[E]) ready() bool {
	return r.cells[r.next&r.mask].seq.Load() == r.next+1
}

// claimedEnd returns the end of the claimed positions. After close, producers
// refused with ErrClosed still bump tail, so the end recorded by close is used.
func (r *ring[E]) claimedEnd() uint64 {
	t := r.tail.Load()
	if t&closedBit != 0 {
		return r.end.Load()
	}
	return t
}

// claimed reports whether a producer has claimed a position not yet popped.
func (r *ring[E]) claimed() bool {
	return r.claimedEnd() != r.head.Load()
}

func (r *ring[E]) len() int {
	n := int64(r.claimedEnd()) - int64(r.head.Load())
	if n < 0 {
		return 0
	}
	return int(n)
}

// close stops further pushes and returns the tail position claimed before it:
// every position below it will be published by its producer. It must not run
// concurrently with itself; a later call returns the same position.
func (r *ring[E]) close() uint64 {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return r.end.Load()
		}
		r.end.Store(t) // before the CAS, so readers that see closedBit see it
		if r.tail.CompareAndSwap(t, t|closedBit) {
			return t
		}
	}
}

// drainClosed pops every item claimed before close, waiting for producers
// that claimed a position but have not yet written it.
func (r *ring[E]) drainClosed(end uint64, f func(*E)) {
	var v E
	for r.next < end {
		if r.pop(&v) {
			f(&v)
			continue
		}
		runtime.Gosched()
	}
}
