package remote

import (
	"fmt"

	"github.com/actord/actord/actor"
)

// ImportRef makes a Ref from the parts of a capability that was written down
// outside the protocol (a file, a command line): the name and listen
// address of the node hosting the actor, and the actor's wire identity with
// its secret. It is how a program that holds such a capability, and nothing
// else, gets its first Ref to another node. It confers no authority of its
// own: the hosting node checks the secret, so a wrong one yields a Ref that
// behaves exactly like a dead actor's. A capability naming this node's own
// address resolves to the local actor (a dead Ref if the secret is wrong).
func (n *Node) ImportRef(node, addr string, id actor.WireID) (actor.Ref, error) {
	if addr == "" {
		return actor.Ref{}, fmt.Errorf("remote: import ref: empty address")
	}
	if addr == n.Addr() {
		r, _ := n.wire.Resolve(id)
		return r, nil
	}
	return n.wire.RemoteRef(n.peerFor(addr, node), id), nil
}

// ExportRef returns the parts of r's capability, as ImportRef takes them:
// the name and listen address of the node hosting the actor and its wire
// identity with its secret. ok is false for the zero Ref and for refs of
// another system or transport. For a local actor it needs the node to be
// listening (Addr is empty before).
func (n *Node) ExportRef(r actor.Ref) (node, addr string, id actor.WireID, ok bool) {
	if id, ok := n.wire.LocalID(r); ok {
		return n.name, n.Addr(), id, n.Addr() != ""
	}
	p, id, ok := n.wire.Remote(r)
	if !ok {
		return "", "", actor.WireID{}, false
	}
	pp, ok := p.(*peer)
	if !ok || pp.n != n {
		return "", "", actor.WireID{}, false
	}
	return pp.name(), pp.addr, id, true
}
