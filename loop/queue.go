package loop

import "sync"

// ctlQueue is the unbounded control queue: a mutex and a slice swapped whole
// by the consumer. It carries events whose count the layer above bounds
// (replies to its own pending asks, completions of its own pool jobs), so
// refusing them for lack of room would lose a signal.
type ctlQueue[E any] struct {
	mu     sync.Mutex
	items  []E
	closed bool
}

func (q *ctlQueue[E]) push(v E) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	return nil
}

// swap hands the queued items to the consumer and takes spare as the new
// backing array, so steady state allocates nothing.
func (q *ctlQueue[E]) swap(spare []E) []E {
	q.mu.Lock()
	items := q.items
	q.items = spare[:0]
	q.mu.Unlock()
	return items
}

func (q *ctlQueue[E]) len() int {
	q.mu.Lock()
	n := len(q.items)
	q.mu.Unlock()
	return n
}

func (q *ctlQueue[E]) close() []E {
	q.mu.Lock()
	q.closed = true
	items := q.items
	q.items = nil
	q.mu.Unlock()
	return items
}

// fifo is the loop-owned local queue: a growable power-of-two ring with a hard
// capacity. Only the loop goroutine touches it.
type fifo[E any] struct {
	buf      []E
	head, n  int
	capacity int
}

func (f *fifo[E]) push(v E) error {
	if f.n >= f.capacity {
		return ErrFull
	}
	if f.n == len(f.buf) {
		size := 2 * len(f.buf)
		if size == 0 {
			size = 64
		}
		nb := make([]E, size)
		for i := 0; i < f.n; i++ {
			nb[i] = f.buf[(f.head+i)&(len(f.buf)-1)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.n)&(len(f.buf)-1)] = v
	f.n++
	return nil
}

func (f *fifo[E]) pop(dst *E) bool {
	if f.n == 0 {
		return false
	}
	var zero E
	i := f.head
	*dst = f.buf[i]
	f.buf[i] = zero
	f.head = (i + 1) & (len(f.buf) - 1)
	f.n--
	return true
}
