package loop

import (
	"context"
	"sync"
	"sync/atomic"
)

// room lets producers wait for space in the inbound ring (PostWait)
// instead of spinning on ErrFull. A waiter registers, tries again, and
// parks on the current channel; the consumer, after each pass that freed
// cells, closes that channel (waking every waiter) if anyone waits. The
// registration and the consumer's published head are both sequentially
// consistent atomics, so either the waiter's second try sees the room or
// the consumer sees the waiter: no wakeup is lost.
type room struct {
	waiters atomic.Int32
	mu      sync.Mutex
	ch      chan struct{}
}

// enter registers a waiter and returns the channel it parks on.
func (r *room) enter() <-chan struct{} {
	r.mu.Lock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	ch := r.ch
	r.waiters.Add(1)
	r.mu.Unlock()
	return ch
}

func (r *room) leave() { r.waiters.Add(-1) }

// wake wakes every waiter, if any: a channel is made only while
// producers wait.
func (r *room) wake() {
	if r.waiters.Load() == 0 {
		return
	}
	r.mu.Lock()
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
	r.mu.Unlock()
}

// PostWait is Post for a producer that would rather wait than be refused:
// when the inbound queue is full it parks (no spinning) until the loop's
// next pass frees room, then tries again, until ctx is done (ctx's error)
// or the loop closes (ErrClosed). Events posted by one goroutine keep
// their order. It must not be called from the loop's own goroutine (from
// inside Handle): the loop would wait for itself.
func (l *Loop[E]) PostWait(ctx context.Context, ev E) error { return l.PostWaitPtr(ctx, &ev) }

// PostWaitPtr is PostWait for an event the caller has built in place: *ev
// is copied into the queue, and the caller may reuse it once PostWaitPtr
// returns. A large event passed by value is copied on the way, with loads
// wider than the stores that just built it, which stall (BenchmarkFanInWait
// in package actor).
func (l *Loop[E]) PostWaitPtr(ctx context.Context, ev *E) error {
	for {
		_, err := l.in.pushAt(ev)
		if err != ErrFull {
			if err == nil {
				l.notify()
			}
			return err
		}
		ch := l.room.enter()
		// Again, now that the loop can see us: it may have made room
		// before we registered.
		if _, err = l.in.pushAt(ev); err != ErrFull {
			l.room.leave()
			if err == nil {
				l.notify()
			}
			return err
		}
		l.notify() // a full queue is work: make sure the loop is at it
		select {
		case <-ch:
			l.room.leave()
		case <-ctx.Done():
			l.room.leave()
			return ctx.Err()
		}
	}
}
