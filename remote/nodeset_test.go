package remote

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A NodeSet lists its members but this node and the peers known down, and
// spawns through the node.
func TestNodeSetLive(t *testing.T) {
	// A retry far away: the peer stays known down for the whole test.
	a := newTestNode(t, "a", Config{ReconnectMin: time.Minute, ReconnectMax: time.Minute})
	b := newTestNode(t, "b", Config{})
	b.node.RegisterKind("echo", echoKind)
	const never = "127.0.0.1:1" // never contacted: not known down
	s := NewNodeSet(a.node, b.node.Addr(), a.node.Addr(), never, b.node.Addr())
	want := []string{b.node.Addr(), never}
	slices.Sort(want)
	if got := s.Live(); !slices.Equal(got, want) {
		t.Fatalf("Live = %v, want %v", got, want)
	}
	r, err := s.Spawn(ctxT(t), b.node.Addr(), "echo", nil)
	if err != nil || !r.IsRemote() {
		t.Fatalf("Spawn = %v, %v", r, err)
	}
	if !a.node.PeerDown(b.node.Addr(), errors.New("gone")) {
		t.Fatal("PeerDown: b unknown")
	}
	if got := s.Live(); !slices.Equal(got, []string{never}) {
		t.Fatalf("Live after b went down = %v, want [%s]", got, never)
	}
	s.Set(b.node.Addr())
	if got := s.Live(); len(got) != 0 {
		t.Fatalf("Live = %v, want none", got)
	}
}
