package remote

import (
	"context"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// What ends links across a reconnect, without sockets: the table of
// another node's incarnations (what its Hello and its closes mean). The
// whole window, with the nodes' own code on the in-memory network, is
// TestPairCutEndsBothSides.

// windowPeer stands for the peer of the other node in seam.Peer: Link
// reports the epoch of this node's connection to it, as peer.Link does.
type windowPeer struct {
	name  string
	epoch func() uint64
}

func (p *windowPeer) Send(to, from actor.Ref, msg any) error { return nil }
func (p *windowPeer) SendMany(to, from actor.Ref, msgs []any) (int, error) {
	return len(msgs), nil
}
func (p *windowPeer) Ask(to, from actor.Ref, msg any, _, _ uint32) (uint64, error) {
	return p.epoch(), nil
}
func (p *windowPeer) Reply(actor.Ref, uint32, uint32, any, error)            {}
func (p *windowPeer) AskWait(context.Context, actor.Ref, any) (any, error)   { return nil, nil }
func (p *windowPeer) AwaitRoom(func()) bool                                  { return false }
func (p *windowPeer) Monitor(target, watcher actor.Ref) error                { return nil }
func (p *windowPeer) Demonitor(target, watcher actor.Ref) error              { return nil }
func (p *windowPeer) Stop(target actor.Ref, reason error) error              { return nil }
func (p *windowPeer) Link(target, from actor.Ref) (uint64, error)            { return p.epoch(), nil }
func (p *windowPeer) Unlink(target, from actor.Ref) error                    { return nil }
func (p *windowPeer) Exit(to, from actor.Ref, reason error, link bool) error { return nil }
func (p *windowPeer) Node() string                                           { return p.name }
func (p *windowPeer) Lifecycle(actor.Ref, actor.Ref, seam.LifecycleRequest, uint32, uint32) (uint64, error) {
	return p.epoch(), nil
}
func (p *windowPeer) LifecycleWait(context.Context, actor.Ref, seam.LifecycleRequest) (any, error) {
	return nil, nil
}

// TestIncarnations: what a Hello and a close of another node's connection
// mean for the links with its actors.
func TestIncarnations(t *testing.T) {
	incs := incarnations{}
	now := time.Unix(1_900_000_000, 0)
	a := inKey{"a", 1}
	st1, renewed, err := incs.hello(a, 5)
	if err != nil || renewed {
		t.Fatalf("first connection: renewed %v, %v", renewed, err)
	}
	if _, _, err := incs.hello(a, 5); err == nil {
		t.Fatal("a replayed epoch was accepted")
	}
	if _, _, err := incs.hello(a, 4); err == nil {
		t.Fatal("an older epoch was accepted")
	}
	// A new incarnation of the same node is another node.
	if _, renewed, err := incs.hello(inKey{"a", 2}, 1); err != nil || renewed {
		t.Fatalf("a restarted node: renewed %v, %v", renewed, err)
	}
	// The same incarnation dials again: its links end here.
	st2, renewed, err := incs.hello(a, 9)
	if err != nil || !renewed || st2 != st1 {
		t.Fatalf("second connection: renewed %v, %v", renewed, err)
	}
	// The links end when the newest connection closes and none is open:
	// not while an older one is open, not when the last one open is older.
	if incs.closed(st2, 9, now) {
		t.Fatal("the close of the newest connection ended the links while an older one is open")
	}
	if incs.closed(st1, 5, now) {
		t.Fatal("the close of a superseded connection ended the links")
	}
	st3, _, _ := incs.hello(a, 12)
	if !incs.closed(st3, 12, now) {
		t.Fatal("the close of the last connection did not end the links")
	}
	// Forgotten after forgetAfter with nothing open; the other incarnation
	// (still open) stays.
	incs.sweep(now.Add(time.Minute), 30*time.Second, 10)
	if _, ok := incs[a]; ok || len(incs) != 1 {
		t.Fatalf("after the sweep: %v", incs)
	}
	// Beyond max closed ones, the oldest closed go first.
	for i := range 5 {
		st, _, _ := incs.hello(inKey{"n", uint64(i)}, 1)
		incs.closed(st, 1, now.Add(time.Duration(i)*time.Second))
	}
	incs.sweep(now.Add(5*time.Second), time.Hour, 2)
	if len(incs) != 3 || incs[inKey{"n", 3}] == nil || incs[inKey{"n", 4}] == nil {
		t.Fatalf("after the sweep beyond max: %v", incs)
	}
}

// TestIncarnationReplaced: a node that restarts replaces its old
// incarnation here. The old one's last close then ends nothing (its links
// ended when the new one connected: the links held with the node now are
// the new one's), and it cannot connect again.
func TestIncarnationReplaced(t *testing.T) {
	incs := incarnations{}
	now := time.Unix(1_900_000_000, 0)
	old, young := inKey{"a", 1}, inKey{"a", 2}
	const addr = "10.0.0.1:7000"
	key := []byte("the static key of a")
	hello := func(k inKey, addr string, epoch uint64) *inState {
		t.Helper()
		st, _, err := incs.hello(k, epoch)
		if err != nil {
			t.Fatal(err)
		}
		st.addr, st.key = addr, key
		return st
	}
	if replaced, err := incs.supersede(old, addr, key); err != nil || replaced != nil {
		t.Fatalf("first incarnation: replaced %v, %v", replaced, err)
	}
	st := hello(old, addr, 5)
	st.mark = 7
	if replaced, err := incs.supersede(inKey{"b", 7}, "10.0.0.2:7000", []byte("b")); err != nil || replaced != nil {
		t.Fatalf("another node replaced a: %v, %v", replaced, err)
	}
	// The same name at another address is another peer (a node restarted
	// elsewhere, or two nodes named alike): nothing is replaced.
	if replaced, err := incs.supersede(inKey{"a", 3}, "10.0.0.9:7000", key); err != nil || replaced != nil {
		t.Fatalf("the same name at another address: replaced %v, %v", replaced, err)
	}
	// A node holding another key replaces nothing, whatever it claims.
	if replaced, err := incs.supersede(inKey{"a", 4}, addr, []byte("a forger's key")); err != nil || replaced != nil {
		t.Fatalf("a forger claiming a's name and address: replaced %v, %v", replaced, err)
	}
	if replaced, err := incs.supersede(young, addr, key); err != nil || len(replaced) != 1 || replaced[0] != 7 {
		t.Fatalf("the restarted node: replaced %v, %v", replaced, err)
	}
	hello(young, addr, 1)
	if replaced, err := incs.supersede(young, addr, key); err != nil || replaced != nil {
		t.Fatalf("the new incarnation again: replaced %v, %v", replaced, err)
	}
	if incs.closed(st, 5, now) {
		t.Fatal("the replaced incarnation's last close ended the links (the new incarnation's)")
	}
	if _, err := incs.supersede(old, addr, key); err == nil {
		t.Fatal("a replaced incarnation connected again")
	}
}
