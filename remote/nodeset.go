package remote

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/actord/actord/actor"
)

// NodeSet is a set of nodes, by listen address, that a supervisor may place
// remote children on: it implements supervisor.Cluster over a Node. Feed it
// the cluster's membership with Set (for example from the cluster
// package's events); the node's own address is never a candidate (a local
// child is an ordinary ChildSpec). It is safe for concurrent use.
type NodeSet struct {
	n     *Node
	mu    sync.Mutex
	addrs []string
}

// NewNodeSet returns the set of the nodes at addrs, reached through n.
func NewNodeSet(n *Node, addrs ...string) *NodeSet {
	s := &NodeSet{n: n}
	s.Set(addrs...)
	return s
}

// Set replaces the members of the set.
func (s *NodeSet) Set(addrs ...string) {
	a := slices.Clone(addrs)
	slices.Sort(a)
	a = slices.Compact(a)
	s.mu.Lock()
	s.addrs = a
	s.mu.Unlock()
}

// Spawn is Node.Spawn: it creates an actor of a registered kind on the
// node at addr.
func (s *NodeSet) Spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error) {
	return s.n.Spawn(ctx, addr, kind, args)
}

// SpawnAsync implements the supervisor's spawn without a waiting
// goroutine: Node.SpawnAsync.
func (s *NodeSet) SpawnAsync(addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	s.n.SpawnAsync(addr, kind, args, timeout, done)
}

// SpawnLinkAsync implements the supervisor's spawn of a child linked to it
// in the same step: Node.SpawnLinkAsync.
func (s *NodeSet) SpawnLinkAsync(owner actor.Ref, addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	s.n.SpawnLinkAsync(owner, addr, kind, args, timeout, done)
}

// Live returns the members, sorted, but this node and the peers it knows to
// be down: from a lost connection (or PeerDown) until it reaches them again.
// A node gone for a while may be listed again before it is reached (a node
// stops counting a peer it has nothing for as down): a start there then
// fails with ErrNodeDown and is retried, elsewhere if the placement allows.
// It does not block.
func (s *NodeSet) Live() []string {
	s.mu.Lock()
	addrs := s.addrs
	s.mu.Unlock()
	self := s.n.Addr()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a != self && !s.n.knownDown(a) {
			out = append(out, a)
		}
	}
	return out
}

// knownDown reports whether the node knows the peer at addr to be down.
func (n *Node) knownDown(addr string) bool {
	n.mu.Lock()
	p := n.peers[addr]
	n.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.down != nil
}
