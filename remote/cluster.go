package remote

import (
	"fmt"

	"github.com/actord/actord/connmgr"
)

// PeerDown tells the node that the peer listening at addr is gone, as a
// membership layer (package cluster, over hashicorp/memberlist) learns it
// from gossip, usually well before the connection's own heartbeat times
// out. It ends the connection this node dialed to the peer exactly as a
// lost connection ends: frames queued for it are discarded, every pending
// ask that went out on it (from actors and from goroutines) and every spawn
// waiting on it fails with an error matching ErrNodeDown (and reason, when
// reason is not nil), and every local monitor of an actor on that node gets
// actor.Down with such a reason. The node then redials with its usual
// backoff while anything wants it (a local send, a connection from it), and
// at once when PeerUp reports it alive again.
//
// PeerDown reports whether this node knew a peer at addr. It is safe to
// call from any goroutine (memberlist calls back on its own); it never
// touches an actor loop's state directly, it only posts to the loops.
func (n *Node) PeerDown(addr string, reason error) bool {
	n.mu.Lock()
	p := n.peers[addr]
	n.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	conn, epoch := p.conn, p.link.epoch
	p.link.peerDown() // not redialed for the membership's sake until PeerUp
	p.mu.Unlock()
	_ = n.conns.m.SetKind(addr, connmgr.Managed)
	var err error
	if reason != nil {
		err = fmt.Errorf("%w: %s: %w", ErrNodeDown, p.name(), reason)
	} else {
		err = fmt.Errorf("%w: %s: reported down", ErrNodeDown, p.name())
	}
	// Fail the epoch first, so the connection's OnClose (which reports a
	// plain "connection closed") finds a newer epoch and does nothing: the
	// membership reason is the one callers see.
	p.lost(epoch, err)
	if conn != nil {
		_ = conn.Close()
	}
	return true
}
