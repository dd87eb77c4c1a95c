package quorum

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
)

// Order. Messages from one actor to another arrive in the order sent, so
// the calls of one actor (or of one Caller, which is an actor) reach each
// node in the order they were made, as long as each call sends all its asks
// at once. A thrifty call does not: it asks some nodes later, and a later
// call may have asked them meanwhile. So the asks a thrifty call defers are
// queued here, per caller and node, and whatever the caller sends to a node
// first sends the asks queued for it, in order: a deferred ask goes out
// when its call needs it or just before the caller's next message to that
// node, whichever comes first, and never if its call settles without it.

// deferred is one thrifty ask not sent yet.
type deferred struct {
	caller   actor.Ref
	node     uint32
	pos      int       // the node's position in its call
	deadline time.Time // its call's; a queue entry past it is forgotten
	call     sender    // sends it, if it still wants it
}

// sender is a call, which sends its deferred asks (an interface rather
// than a closure per ask: no allocation).
type sender interface {
	sendDeferred(c *actor.Context, pos int)
}

// registry holds the deferred asks of every caller of a Manager. Each
// caller's queues are only used from that caller's loop; the lock guards
// the map, shared by all callers.
type registry struct {
	mu sync.Mutex
	n  atomic.Int64 // entries queued, so that the common case takes no lock
	// The queues by caller and node. An emptied queue stays, with its
	// room, until the next prune: a caller's next thrifty call reuses it
	// rather than allocate.
	m    map[queueKey][]*deferred
	adds int
}

type queueKey struct {
	caller actor.Ref
	node   uint32
}

// pruneEvery is how many additions go between two sweeps for the entries
// of calls that will never settle (their actor crashed or stopped).
const pruneEvery = 1024

// add queues d; now is the caller's loop clock, the clock of the
// deadlines (not the wall clock: a simulated or fake clock can be years
// away from it, which pruned every entry, or none).
func (r *registry) add(d *deferred, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.adds++; r.adds%pruneEvery == 0 {
		r.prune(now)
	}
	k := queueKey{d.caller, d.node}
	r.m[k] = append(r.m[k], d)
	r.n.Add(1)
}

// prune forgets the entries whose call's deadline has passed by a second
// (their call has failed by now, or its actor is gone), and the empty
// queues.
func (r *registry) prune(now time.Time) {
	for key, q := range r.m {
		k := 0
		for _, d := range q {
			if now.Before(d.deadline.Add(time.Second)) {
				q[k] = d
				k++
			}
		}
		r.n.Add(int64(k - len(q)))
		clear(q[k:])
		if k == 0 {
			delete(r.m, key)
		} else {
			r.m[key] = q[:k]
		}
	}
}

// take removes from the queue of (caller, node) the entries up to and
// including upTo (all of them if upTo is nil) and returns them in order,
// appended to buf. If upTo is not queued (it was sent or dropped already),
// it takes nothing.
func (r *registry) take(caller actor.Ref, node uint32, upTo *deferred, buf []*deferred) []*deferred {
	if r.n.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := queueKey{caller, node}
	q := r.m[key]
	k := len(q)
	if upTo != nil {
		k = -1
		for i, d := range q {
			if d == upTo {
				k = i + 1
				break
			}
		}
		if k < 0 {
			return nil
		}
	}
	if k == 0 {
		return nil
	}
	out := append(buf, q[:k]...)
	// Keep the rest at the front of the queue's room.
	n := copy(q, q[k:])
	clear(q[n:])
	r.m[key] = q[:n]
	r.n.Add(-int64(k))
	return out
}

// flush sends, on the caller's loop, the asks queued for (caller, node) up
// to upTo (all if nil), in order.
func (r *registry) flush(c *actor.Context, caller actor.Ref, node uint32, upTo *deferred) {
	var buf [4]*deferred // on the stack, for the usual few
	for _, d := range r.take(caller, node, upTo, buf[:0]) {
		d.call.sendDeferred(c, d.pos)
	}
}

// drop removes d, whose call settled without it.
func (r *registry) drop(d *deferred) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := queueKey{d.caller, d.node}
	q := r.m[key]
	for i, e := range q {
		if e == d {
			q = append(q[:i], q[i+1:]...)
			q[:len(q)+1][len(q)] = nil // the room keeps no call alive
			r.m[key] = q
			r.n.Add(-1)
			return
		}
	}
}

// queued returns the number of deferred asks queued (for tests).
func (r *registry) queued() int { return int(r.n.Load()) }
