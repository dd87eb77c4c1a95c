package remote

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// incarnations is what this node knows of the connections other nodes
// dialed to it, by incarnation: the newest connection epoch of each, how
// many of its connections are open, and since when none is. It decides
// what a Hello and a close mean: a stale connection is refused, and the
// links between local actors and that node's actors end when the node
// dials again after a loss (renewed) or closes its last connection. It is
// a state machine apart from I/O (the time comes in with the inputs); the
// node drives it under its lock and ends the links (actor.Wire.BreakLinks).
//
// The links with a node's actors are ended from both sides of a pair of
// nodes: the halves that node's actors made here by this table (when the
// node dials again or its last connection closes), the halves local actors
// made by the loss of the connection this node dialed (link.lost), which a
// loss on either side ends, since a node that loses its own connection
// cuts the other's (peer.cutLocked). See docs/remote.md, "Links across
// nodes".
type incarnations map[inKey]*inState

// inKey names an incarnation of a remote node.
type inKey struct {
	name string
	inc  uint64
}

// inState tracks the newest connection epoch seen from a remote incarnation,
// so frames from an older connection are refused rather than reordered, and
// how many of its connections are open, so the entry is forgotten some time
// after the last one closed (incarnations.sweep). The epoch is read without
// the node's lock by the connections' network loops; the rest is under it.
type inState struct {
	epoch    atomic.Uint64
	open     int
	closedAt time.Time
	// replaced: another incarnation of the node has connected since (it
	// restarted), so this one's actors are gone; what it still sends
	// cannot make links, and its links ended when the new one connected.
	replaced atomic.Bool
	addr     string // the address it said it listens at (its peer's)
	key      []byte // the static key it authenticated with
	// mark names the incarnation in the epochs of the link halves its
	// actors make here (seam.LinkEpochBits), so that they can be ended
	// when it is replaced, whatever epoch this side was at.
	mark uint64
}

// hello records a connection of epoch from incarnation key. An epoch not
// above the newest recorded is stale: refused. renewed reports that the
// incarnation had connected before: it dialed again because it lost its
// connection, so it ended its links with this node's actors on its side
// and what it sent meanwhile may be lost; this side must end them too,
// before any frame of the new connection is handled.
func (t incarnations) hello(key inKey, epoch uint64) (st *inState, renewed bool, err error) {
	st, ok := t[key]
	if !ok {
		st = &inState{}
		t[key] = st
	}
	prev := st.epoch.Load()
	if epoch <= prev {
		return nil, false, fmt.Errorf("remote: stale connection epoch %d from %s (current %d)", epoch, key.name, prev)
	}
	st.epoch.Store(epoch)
	st.open++
	return st, prev != 0, nil
}

// closed records that st's connection of epoch closed at now. It reports
// whether the links with the incarnation's actors end: when that was its
// newest connection and the last one open, since the other node ended its
// side when it lost that connection and may never dial again to say so.
// A replaced incarnation's links ended when its successor connected: the
// links now held with the node are the successor's.
func (t incarnations) closed(st *inState, epoch uint64, now time.Time) (endLinks bool) {
	st.open--
	st.closedAt = now
	return st.open == 0 && st.epoch.Load() == epoch && !st.replaced.Load()
}

// supersede records that incarnation key, listening at addr and
// authenticated with the static key static, is connecting: every other
// incarnation of its node (the same name and static key at the same
// address) is replaced: the node restarted. A node holding another key
// replaces nothing, whatever name and address it claims. It returns the
// marks of those not replaced yet, whose link halves here must end before
// the new incarnation's frames can make new ones; and fails for an
// incarnation that was itself replaced. A node that restarts at another
// address is another peer, whose old links end with the old address's
// connections.
func (t incarnations) supersede(key inKey, addr string, static []byte) (marks []uint64, err error) {
	if st, ok := t[key]; ok && st.replaced.Load() {
		return nil, fmt.Errorf("remote: incarnation %x of %s was replaced by a newer one", key.inc, key.name)
	}
	for k, st := range t {
		if k.name == key.name && k.inc != key.inc && st.addr == addr && bytes.Equal(st.key, static) && !st.replaced.Load() {
			st.replaced.Store(true)
			marks = append(marks, st.mark)
		}
	}
	slices.Sort(marks) // map order must not reach the loops (simulation)
	return marks, nil
}

// sweep forgets the incarnations with no open connection for forgetAfter,
// and beyond max of them with none open, the oldest closed first.
func (t incarnations) sweep(now time.Time, forgetAfter time.Duration, max int) {
	closed := 0
	for k, st := range t {
		switch {
		case st.open > 0:
		case now.Sub(st.closedAt) >= forgetAfter:
			delete(t, k)
		default:
			closed++
		}
	}
	for closed > max {
		var oldest inKey
		var at time.Time
		for k, st := range t {
			if st.open == 0 && (at.IsZero() || st.closedAt.Before(at)) {
				oldest, at = k, st.closedAt
			}
		}
		delete(t, oldest)
		closed--
	}
}
