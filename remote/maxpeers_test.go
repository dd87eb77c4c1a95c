package remote

import (
	"errors"
	"fmt"
	"testing"

	"github.com/actord/actord/actor"
)

// Refs and handshakes naming new nodes cannot grow a node's peer table past
// Config.MaxPeers; nodes it already knows stay reachable.
func TestMaxPeersBoundsPeerTable(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true})
	defer sys.Shutdown(t.Context())
	n := New(sys, Config{Name: "bounded", MaxPeers: 3})
	for i := range 3 {
		if _, err := n.boundedPeer(fmt.Sprintf("127.0.0.1:%d", 9000+i), ""); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	if _, err := n.boundedPeer("127.0.0.1:9999", ""); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("fourth new peer: %v, want ErrTooManyPeers", err)
	}
	if _, err := n.boundedPeer("127.0.0.1:9001", "known"); err != nil {
		t.Fatalf("a known peer is refused: %v", err)
	}
	n.mu.Lock()
	got := len(n.peers)
	n.mu.Unlock()
	if got != 3 {
		t.Fatalf("%d peers kept, want 3", got)
	}
	// A decoded ref to a new node is a payload error, not a new peer.
	fw := newFrameWriter(n)
	defer fw.release()
	otherSys := actor.NewSystem(actor.Config{Loops: 1, Manual: true})
	defer otherSys.Shutdown(t.Context())
	other := New(otherSys, Config{Name: "other"})
	p := other.peerFor("127.0.0.1:7777", "far")
	ref := other.wire.RemoteRef(p, actor.WireID{Loop: 0, Slot: 1, Gen: 1})
	w := newFrameWriter(other)
	defer w.release()
	if err := other.encodeRef(w.enc, ref); err != nil {
		t.Fatal(err)
	}
	fr := newFrameReader(n, nil)
	defer fr.release()
	fr.r.Reset(w.w.b)
	if _, err := n.decodeRef(fr.dec); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("decoding a ref to a fourth node: %v, want ErrTooManyPeers", err)
	}
}
