package actor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// A waiter is where a plain goroutine waits for the reply to its ask
// (System.Ask, System.AskTimeout). Its channel is the one thing the
// goroutine blocks on: the reply is sent there, and so are the ask's
// timeout and the system's shutdown, which would otherwise be two more
// cases of a select. A select locks every channel it waits on, both when
// it parks and when it is woken; a receive from one channel is what the Go
// scheduler hands the processor to most cheaply, as in a channel ping-pong
// (BenchmarkAskFromGoroutine, docs/performance.md).
//
// Waiters are pooled: a waiter goes back to the pool only when its wait
// ended with the reply and nothing else was sent (its channel is then
// empty). A wait that ended otherwise (timeout, shutdown, a done context)
// drops its waiter, whose channel may still receive the late reply.
type waiter struct {
	ch  chan result // the reply, and at most one claim (errTimedOut, errShutDown)
	sys *System
	// st is gen<<2 | phase: gen counts the waits, so that a claim meant
	// for one wait cannot land on a later one.
	st atomic.Uint64
	// deadline is the current wait's timeout (monoNow), 0 for none.
	deadline atomic.Int64

	// The timer is lazy: it is armed for some deadline at or before the
	// current wait's and, when it fires early (it was set for an earlier
	// wait), re-arms itself. A steady stream of asks with the same timeout
	// touches it once per timeout period, not twice per ask.
	tmu     sync.Mutex
	timer   *time.Timer
	armed   atomic.Bool
	armedAt atomic.Int64 // the deadline it is armed for, while armed
}

// Phases of a waiter's current wait.
const (
	wIdle    = 0 // no wait: in the pool, or between waits
	wWaiting = 1 // the goroutine waits (or is about to) on ch
	wClaimed = 2 // a timeout or the shutdown sent its claim to ch, or the goroutine gave up
)

// Claims: what a timeout or the shutdown sends to a waiter. Unexported,
// so no reply can carry them.
var (
	errTimedOut = errors.New("actor: waiter timed out")
	errShutDown = errors.New("actor: waiter shut down")
)

// monoNow reads the monotonic clock as nanoseconds since the package loaded.
var monoNow = func() func() int64 {
	base := time.Now()
	return func() int64 { return int64(time.Since(base)) }
}()

// waiterSet is every waiter of a system that exists, so that the shutdown
// can end the waits nothing else will end (an ask whose Reply someone holds
// forever). It holds them weakly: a waiter dropped from the pool leaves.
type waiterSet struct {
	mu   sync.Mutex
	next uint64
	all  map[uint64]weak.Pointer[waiter]
}

type waiterKey struct {
	set *waiterSet
	id  uint64
}

func (ws *waiterSet) remove(k uint64) {
	ws.mu.Lock()
	delete(ws.all, k)
	ws.mu.Unlock()
}

// newWaiter makes a waiter and registers it (the pool's New).
func (s *System) newWaiter() *waiter {
	w := &waiter{ch: make(chan result, 2), sys: s}
	ws := &s.waitSet
	ws.mu.Lock()
	if ws.all == nil {
		ws.all = make(map[uint64]weak.Pointer[waiter])
	}
	ws.next++
	id := ws.next
	ws.all[id] = weak.Make(w)
	ws.mu.Unlock()
	runtime.AddCleanup(w, func(k waiterKey) { k.set.remove(k.id) }, waiterKey{ws, id})
	return w
}

func (s *System) getWaiter() *waiter { return s.waiters.Get().(*waiter) }

// endWaits ends every wait still under way with ErrShutdown (or the reply,
// if it comes with it). It runs once the loops are closed and drained:
// what is still waited for then is held outside the runtime. Waits that
// begin after it see s.ended.
func (s *System) endWaits() {
	s.ended.Store(true)
	ws := &s.waitSet
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, p := range ws.all {
		if w := p.Value(); w != nil {
			w.claim(w.st.Load(), errShutDown)
		}
	}
}

// claim ends the wait st (as loaded) with why, if it is still that wait
// and waiting. The channel has room: one reply and one claim per wait.
func (w *waiter) claim(st uint64, why error) bool {
	if st&3 != wWaiting || !w.st.CompareAndSwap(st, st&^3|wClaimed) {
		return false
	}
	w.ch <- result{err: why}
	return true
}

// await waits for the reply to the ask just posted with w.ch: until ctx
// (nil: none) is done, or until d has passed (d <= 0: no timeout), or the
// system has shut down.
func (w *waiter) await(ctx context.Context, d time.Duration) (any, error) {
	st := (w.st.Load()>>2+1)<<2 | wWaiting
	if d > 0 {
		dl := monoNow() + int64(d)
		w.deadline.Store(dl)
		w.st.Store(st)
		if !w.armed.Load() || w.armedAt.Load() > dl {
			w.arm(dl)
		}
	} else {
		w.deadline.Store(0)
		w.st.Store(st)
	}
	if w.sys.ended.Load() && w.st.CompareAndSwap(st, st&^3|wClaimed) {
		return lateReply(w.ch) // began after the shutdown ended the waits
	}
	var r result
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	if done == nil {
		r = <-w.ch
	} else {
		select {
		case r = <-w.ch:
		case <-done:
			w.st.CompareAndSwap(st, st&^3|wClaimed) // dropped: a claim or the reply may still come
			return nil, ctx.Err()
		}
	}
	switch r.err {
	case errTimedOut:
		return nil, ErrTimeout
	case errShutDown:
		return lateReply(w.ch)
	}
	if w.st.CompareAndSwap(st, st&^3|wIdle) {
		w.sys.waiters.Put(w) // nothing else was sent: ch is empty
	}
	return r.v, r.err
}

// lateReply is the reply on ch if it came with the shutdown, else
// ErrShutdown.
func lateReply(ch chan result) (any, error) {
	select {
	case r := <-ch:
		if r.err == errTimedOut || r.err == errShutDown {
			return nil, ErrShutdown
		}
		return r.v, r.err
	default:
		return nil, ErrShutdown
	}
}

// arm makes the timer fire at or before dl.
func (w *waiter) arm(dl int64) {
	w.tmu.Lock()
	if !w.armed.Load() || dl < w.armedAt.Load() {
		w.armedAt.Store(dl)
		w.armed.Store(true)
		d := time.Duration(dl - monoNow())
		if w.timer == nil {
			w.timer = time.AfterFunc(d, w.fire)
		} else {
			w.timer.Reset(d)
		}
	}
	w.tmu.Unlock()
}

// fire runs when the timer goes off: it times out the current wait if its
// deadline has passed, re-arms for it if not, and leaves the timer idle
// when nothing waits. armed is cleared before the wait is looked at, and
// await stores the wait before it looks at armed: one of the two sees the
// other, so a wait is never left without a timer.
func (w *waiter) fire() {
	w.tmu.Lock()
	w.armed.Store(false)
	w.tmu.Unlock()
	st := w.st.Load()
	if st&3 != wWaiting {
		return
	}
	dl := w.deadline.Load()
	if dl == 0 {
		return
	}
	if monoNow() < dl {
		w.arm(dl)
		return
	}
	w.claim(st, errTimedOut)
}
