package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// Links across a reconnect, without sockets: two manually stepped systems
// (nodes A and B), the protocol's own state machines for what ends links
// (A's link to B, which numbers A's connections, and B's table of A's
// incarnations, which sees A dial again), and the network played by the
// test: each frame is handed to the other node's the wire (actorWire) as the node's
// network loop would.

// windowPeer stands for the peer of the other node in seam.Peer: Link
// reports the epoch of this node's connection to it, as peer.Link does.
type windowPeer struct {
	name  string
	epoch func() uint64
}

func (p *windowPeer) Send(to, from actor.Ref, msg any) error { return nil }
func (p *windowPeer) Ask(to, from actor.Ref, msg any, _, _ uint32) (uint64, error) {
	return p.epoch(), nil
}
func (p *windowPeer) Reply(actor.Ref, uint32, uint32, any, error)            {}
func (p *windowPeer) AskWait(context.Context, actor.Ref, any) (any, error)   { return nil, nil }
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

// windowNode is one side: its system, its link to the other node (the
// connection it dials), its table of the other node's incarnations (the
// connections the other node dials here), and the other node's peer.
type windowNode struct {
	sys    *actor.System
	wire   actorWire
	link   *linkRig
	incs   incarnations
	peer   *windowPeer
	exited chan actor.Exited
}

func newWindowNode(t *testing.T, name, other string) *windowNode {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actor.NewSystem(actor.Config{Loops: 2, Manual: true, Logger: quiet, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	w := &windowNode{sys: sys, wire: wireOf(sys), link: newLinkRig(), incs: incarnations{}, exited: make(chan actor.Exited, 16)}
	w.peer = &windowPeer{name: other, epoch: func() uint64 { return w.link.l.epoch }}
	return w
}

// spawn starts an actor that traps exits and reports them.
func (w *windowNode) spawn(t *testing.T) actor.Ref {
	r, err := w.sys.Spawn(context.Background(), func() actor.Actor { return &probe{trap: true, exited: w.exited} })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// remote is the ref, on w, of the other node's actor r.
func (w *windowNode) remote(t *testing.T, other *windowNode, r actor.Ref) actor.Ref {
	id, ok := other.wire.LocalID(r)
	if !ok {
		t.Fatal("not local")
	}
	return w.wire.RemoteRef(w.peer, id)
}

// exits returns the local actors that got an exit signal since the last
// call, once everything queued has been handled.
func (w *windowNode) exits() map[actor.Ref]bool {
	w.sys.RunUntilIdle(1 << 20)
	got := map[actor.Ref]bool{}
	for {
		select {
		case e := <-w.exited:
			if !errors.Is(e.Reason, ErrNodeDown) {
				panic("exit signal with reason " + e.Reason.Error())
			}
			got[e.From] = true
		default:
			return got
		}
	}
}

// linkAcross makes from (on node x) link to to (on node y): x records its half
// as Context.Link does, then y's network loop handles the Link frame as
// inLink does, with y's current epoch for its half.
func linkAcross(t *testing.T, x, y *windowNode, from, to actor.Ref) {
	t.Helper()
	if _, err := x.sys.Ask(context.Background(), from, linkTo{R: x.remote(t, y, to)}); err != nil {
		t.Fatal(err)
	}
	fromOnY := y.remote(t, x, from)
	if err := y.wire.LinkLocal(to, fromOnY, func() uint64 { return y.link.l.epoch }, func() { t.Fatal("noproc") }); err != nil {
		t.Fatal(err)
	}
	y.sys.RunUntilIdle(1 << 20)
}

// TestLinkConsistencyWindow plays the window that docs/remote.md ("Links
// across nodes") documents: a link that the node which stayed connected
// (B) makes while the other (A) reconnects, whose request reaches A after
// A ended its links but before A's new Hello reaches B, is ended on B's
// side only. Links made before the loss end on both sides; a link A makes
// after its loss survives on both.
func TestLinkConsistencyWindow(t *testing.T) {
	a, b := newWindowNode(t, "a", "b"), newWindowNode(t, "b", "a")
	keyA := inKey{"a", 1}
	nodeDown := func(s string) error { return fmt.Errorf("%w: %s", ErrNodeDown, s) }

	// Both connected: A dials B (B records A's incarnation), B dials A.
	eA1 := a.link.connect(t)
	if _, renewed, err := b.incs.hello(keyA, eA1); err != nil || renewed {
		t.Fatalf("first hello: renewed %v, %v", renewed, err)
	}
	b.link.connect(t)

	a1, a2, a3 := a.spawn(t), a.spawn(t), a.spawn(t)
	b1, b2, b3 := b.spawn(t), b.spawn(t), b.spawn(t)
	linkAcross(t, b, a, b1, a1) // before the loss

	// A loses its connection to B: it ends the links made up to that
	// connection's epoch (peer.lost).
	if !a.link.l.lost(eA1, errReset, a.link.now, 0.5) {
		t.Fatal("loss ignored")
	}
	a.wire.BreakLinks(a.peer, eA1, nodeDown("a lost b"))
	if got := a.exits(); len(got) != 1 || !got[a.remote(t, b, b1)] {
		t.Fatalf("A's side after its loss: exits from %v, want b1", got)
	}

	// The window: B, still connected to A, links b2 to a2; the request
	// reaches A before A's new Hello reaches B. A's half is made on its
	// new epoch.
	linkAcross(t, b, a, b2, a2)
	// A links a3 to b3 after its loss: the request goes out on A's new
	// connection, after its Hello.
	if _, err := a.sys.Ask(context.Background(), a3, linkTo{R: a.remote(t, b, b3)}); err != nil {
		t.Fatal(err)
	}

	// A dials B again; B sees the same incarnation with a newer epoch and
	// ends its links with A's actors (handleHello), before any frame of
	// the new connection is handled.
	a.link.advance(time.Second)
	a.link.l.retry(a.link.now) // nothing wants B yet: the next use dials
	eA2 := a.link.connect(t)
	_, renewed, err := b.incs.hello(keyA, eA2)
	if err != nil || !renewed {
		t.Fatalf("hello of the new connection: renewed %v, %v", renewed, err)
	}
	b.wire.BreakLinks(b.peer, math.MaxUint64, nodeDown("a dialed again"))
	// Then the new connection's Link frame (a3's).
	if err := b.wire.LinkLocal(b3, b.remote(t, a, a3), func() uint64 { return b.link.l.epoch }, func() { t.Fatal("noproc") }); err != nil {
		t.Fatal(err)
	}

	gotB := b.exits()
	if len(gotB) != 2 || !gotB[b.remote(t, a, a1)] || !gotB[b.remote(t, a, a2)] {
		t.Fatalf("B's side after A's new hello: exits from %v, want a1 and a2", gotB)
	}
	// The window: a2 keeps its half of the link B ended.
	if got := a.exits(); len(got) != 0 {
		t.Fatalf("A's side after its reconnect: exits from %v, want none (a2 keeps its half)", got)
	}

	// ... until A's next loss, which ends it, and a3's link with it.
	if !a.link.l.lost(eA2, errReset, a.link.now, 0.5) {
		t.Fatal("loss ignored")
	}
	a.wire.BreakLinks(a.peer, eA2, nodeDown("a lost b again"))
	gotA := a.exits()
	if len(gotA) != 2 || !gotA[a.remote(t, b, b2)] || !gotA[a.remote(t, b, b3)] {
		t.Fatalf("A's side after its next loss: exits from %v, want b2 and b3", gotA)
	}
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
	if replaced, err := incs.supersede(old, addr, key); err != nil || replaced {
		t.Fatalf("first incarnation: replaced %v, %v", replaced, err)
	}
	st := hello(old, addr, 5)
	if replaced, err := incs.supersede(inKey{"b", 7}, "10.0.0.2:7000", []byte("b")); err != nil || replaced {
		t.Fatalf("another node replaced a: %v, %v", replaced, err)
	}
	// The same name at another address is another peer (a node restarted
	// elsewhere, or two nodes named alike): nothing is replaced.
	if replaced, err := incs.supersede(inKey{"a", 3}, "10.0.0.9:7000", key); err != nil || replaced {
		t.Fatalf("the same name at another address: replaced %v, %v", replaced, err)
	}
	// A node holding another key replaces nothing, whatever it claims.
	if replaced, err := incs.supersede(inKey{"a", 4}, addr, []byte("a forger's key")); err != nil || replaced {
		t.Fatalf("a forger claiming a's name and address: replaced %v, %v", replaced, err)
	}
	if replaced, err := incs.supersede(young, addr, key); err != nil || !replaced {
		t.Fatalf("the restarted node: replaced %v, %v", replaced, err)
	}
	hello(young, addr, 1)
	if replaced, err := incs.supersede(young, addr, key); err != nil || replaced {
		t.Fatalf("the new incarnation again: replaced %v, %v", replaced, err)
	}
	if incs.closed(st, 5, now) {
		t.Fatal("the replaced incarnation's last close ended the links (the new incarnation's)")
	}
	if _, err := incs.supersede(old, addr, key); err == nil {
		t.Fatal("a replaced incarnation connected again")
	}
}
