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
	deadline time.Time              // its call's; a queue entry past it is forgotten
	send     func(c *actor.Context) // sends it, if its call still wants it
}

// registry holds the deferred asks of every caller of a Manager. Each
// caller's queues are only used from that caller's loop; the lock guards
// the maps, shared by all callers.
type registry struct {
	mu   sync.Mutex
	n    atomic.Int64 // entries queued, so that the common case takes no lock
	m    map[actor.Ref]map[uint32][]*deferred
	adds int
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
	byNode := r.m[d.caller]
	if byNode == nil {
		byNode = map[uint32][]*deferred{}
		r.m[d.caller] = byNode
	}
	byNode[d.node] = append(byNode[d.node], d)
	r.n.Add(1)
}

// prune forgets the entries whose call's deadline has passed by a second:
// their call has failed by now, or its actor is gone.
func (r *registry) prune(now time.Time) {
	for caller, byNode := range r.m {
		for node, q := range byNode {
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
				delete(byNode, node)
			} else {
				byNode[node] = q[:k]
			}
		}
		if len(byNode) == 0 {
			delete(r.m, caller)
		}
	}
}

// take removes from the queue of (caller, node) the entries up to and
// including upTo (all of them if upTo is nil) and returns them in order. If
// upTo is not queued (it was sent or dropped already), it takes nothing.
func (r *registry) take(caller actor.Ref, node uint32, upTo *deferred) []*deferred {
	if r.n.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	byNode := r.m[caller]
	q := byNode[node]
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
	out := append([]*deferred(nil), q[:k]...)
	clear(q[:k])
	rest := q[k:]
	if len(rest) == 0 {
		delete(byNode, node)
		if len(byNode) == 0 {
			delete(r.m, caller)
		}
	} else {
		byNode[node] = rest
	}
	r.n.Add(-int64(k))
	return out
}

// flush sends, on the caller's loop, the asks queued for (caller, node) up
// to upTo (all if nil), in order.
func (r *registry) flush(c *actor.Context, caller actor.Ref, node uint32, upTo *deferred) {
	for _, d := range r.take(caller, node, upTo) {
		d.send(c)
	}
}

// drop removes d, whose call settled without it.
func (r *registry) drop(d *deferred) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byNode := r.m[d.caller]
	q := byNode[d.node]
	for i, e := range q {
		if e == d {
			q = append(q[:i], q[i+1:]...)
			r.n.Add(-1)
			break
		}
	}
	if len(q) == 0 {
		delete(byNode, d.node)
		if len(byNode) == 0 {
			delete(r.m, d.caller)
		}
	} else {
		byNode[d.node] = q
	}
}

// queued returns the number of deferred asks queued (for tests).
func (r *registry) queued() int { return int(r.n.Load()) }
