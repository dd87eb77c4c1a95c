package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/bugs"
	"go.uber.org/goleak"
)

// The link-consistency window of protocol 4, played with the nodes' own
// code on the in-memory network (virtual time, no sockets): node A loses
// its connection to B while B's connection to A stays up, and B's actor
// links to A's actor at once, its request racing A's new Hello (the
// direction from A to B is slow). With the pair's connections ending
// together (peer.cutLocked), A does not make its half from a connection
// it cut, and B ends its own with that connection: neither side keeps a
// half. Without it (bugs.NoCut) A makes and keeps its half while B ends
// its own, which the test shows by a later loss that ends A's half.
func TestPairCutEndsBothSides(t *testing.T) {
	t.Run("cut", func(t *testing.T) {
		aExits, bExits := playPairWindow(t, false)
		if len(aExits) != 0 || len(bExits) != 1 {
			t.Fatalf("exit signals: A's actor %v, B's actor %v; want none, and one (node down)", aExits, bExits)
		}
	})
	// The request was read before the cut, its half not made yet: the
	// target's loop must not make it after the cut.
	t.Run("read before the cut", func(t *testing.T) {
		aExits, bExits := playPairWindow(t, true)
		if len(aExits) != 0 || len(bExits) != 1 {
			t.Fatalf("exit signals: A's actor %v, B's actor %v; want none, and one (node down)", aExits, bExits)
		}
	})
	// The request was read, then its connection closed and A lost its own
	// before A's loop got to it: the closed connection's request makes no
	// half (B ended its own with that connection).
	t.Run("connection closed before the loop", func(t *testing.T) {
		for seed := uint64(1); seed <= 30; seed++ {
			if aExits, bExits := playClosedFirst(t, seed); len(aExits) != 0 || len(bExits) != 1 {
				t.Fatalf("seed %d: exit signals: A's actor %v, B's actor %v; want none, and one (node down)", seed, aExits, bExits)
			}
		}
	})
	t.Run("without the cut", func(t *testing.T) {
		bugs.NoCut = true
		defer func() { bugs.NoCut = false }()
		aExits, bExits := playPairWindow(t, false)
		// A kept a half that B had ended: A's next loss ends it.
		if len(aExits) != 1 || len(bExits) != 1 {
			t.Fatalf("exit signals: A's actor %v, B's actor %v; want one each (the window)", aExits, bExits)
		}
	})
}

// playPairWindow plays the window and returns the reasons of the exit
// signals A's and B's actors got. With readFirst, B's link request is read
// by A's network side before A's loss, and A's loop gets to it after.
func playPairWindow(t *testing.T, readFirst bool) (aExits, bExits []string) {
	const hostA, hostB = "10.0.0.1", "10.0.0.2"
	w := newMemWorld(t, 5, hostA, hostB)
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	exitsA, exitsB := make(chan actor.Exited, 8), make(chan actor.Exited, 8)
	spawn := func(i int, ch chan actor.Exited) actor.Ref {
		r, err := w.sys[i].Spawn(context.Background(), func() actor.Actor { return &probe{trap: true, exited: ch} })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	imported := func(from, to int, r actor.Ref) actor.Ref {
		node, addr, id, ok := w.nodes[from].ExportRef(r)
		if !ok {
			t.Fatalf("cannot export %v", r)
		}
		rr, err := w.nodes[to].ImportRef(node, addr, id)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	echo := func(c *actor.Context, msg any) (any, error) { return msg, nil }
	echoA, echoB := w.spawnOn(0, 1, echo), w.spawnOn(1, 0, echo)
	connect := func() { w.reach(0, echoB); w.reach(1, echoA) }
	a2, b2 := spawn(0, exitsA), spawn(1, exitsB)
	a2OnB := imported(0, 1, a2)
	connect()

	if readFirst {
		if err := w.sys[1].Send(b2, linkTo{R: a2OnB}); err != nil {
			t.Fatal(err)
		}
		w.sys[1].RunUntilIdle(1 << 16)
		for i := 0; ; i++ { // until A's loop has the request queued, unhandled
			if st := w.sys[0].Stats()[0]; st.Inbound+st.Control > 0 {
				break
			}
			if i == 1000 || !w.nw.Step() {
				t.Fatal("the link request never reached A")
			}
		}
	}
	// A's connection to B breaks (as a reset or a heartbeat timeout would
	// end it); what A sends to B from now on is slow.
	w.nw.SetLinkLatency(hostA, hostB, 3*time.Second, 3*time.Second)
	pb := a.peerFor(b.Addr(), "")
	pb.mu.Lock()
	conn, epoch := pb.conn, pb.link.epoch
	pb.mu.Unlock()
	if conn == nil {
		t.Fatal("A has no connection to B")
	}
	_ = conn.Close()
	pb.lost(epoch, errors.New("test: connection reset"))
	// B links b2 to a2 at once: the request goes on B's connection to A.
	if !readFirst {
		if err := w.sys[1].Send(b2, linkTo{R: a2OnB}); err != nil {
			t.Fatal(err)
		}
	}
	w.run(10 * time.Second)
	w.nw.ClearLinkLatency(hostA, hostB)

	// Then a later loss of everything between A and B: it ends a half A
	// may have kept.
	connect()
	w.nw.Cut(hostA, hostB)
	w.run(10 * time.Second)
	for _, c := range []struct {
		ch  chan actor.Exited
		out *[]string
	}{{exitsA, &aExits}, {exitsB, &bExits}} {
		for len(c.ch) > 0 {
			e := <-c.ch
			if !errors.Is(e.Reason, ErrNodeDown) {
				t.Fatalf("exit signal with reason %v, want node down", e.Reason)
			}
			*c.out = append(*c.out, simReason(e.Reason))
		}
	}
	return aExits, bExits
}

// reach makes node i ask to (an actor of another node) until it answers:
// node i then has a connection to that node.
func (w *memWorld) reach(i int, to actor.Ref) {
	w.t.Helper()
	var got error = errors.New("no reply")
	asker := w.spawnOn(i, i, func(ctx *actor.Context, msg any) (any, error) {
		if msg == "go" {
			ctx.Ask(to, "hi").Then(func(_ *actor.Context, _ any, err error) { got = err })
		}
		return nil, nil
	})
	for k := 0; got != nil && k < 20; k++ {
		_ = w.sys[i].Send(asker, "go")
		w.run(500 * time.Millisecond)
	}
	if got != nil {
		w.t.Fatalf("node %d cannot reach %v: %v\n%s", i, to, got, strings.Join(w.trace, "\n"))
	}
}

// A cut is named in the cutting node's next Hello, and a node told by a
// Hello that its connection was cut loses that connection if it is still
// its current one (its close has not arrived), and only then.
func TestCutNamedInHello(t *testing.T) {
	w := newMemWorld(t, 9, "10.0.0.1", "10.0.0.2")
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	echo := func(c *actor.Context, msg any) (any, error) { return msg, nil }
	echoA, echoB := w.spawnOn(0, 1, echo), w.spawnOn(1, 0, echo)
	w.reach(0, echoB)
	w.reach(1, echoA)

	// A's loss cuts B's connection and records it for its next Hello.
	pb, pa := a.peerFor(b.Addr(), ""), b.peerFor(a.Addr(), "")
	bEpoch := pa.currentEpoch()
	pb.mu.Lock()
	conn, epoch := pb.conn, pb.link.epoch
	pb.mu.Unlock()
	_ = conn.Close()
	pb.lost(epoch, errors.New("test: connection reset"))
	pb.mu.Lock()
	cutInc, cutEpoch := pb.link.cutInc, pb.link.cutEpoch
	pb.mu.Unlock()
	if cutInc != b.inc || cutEpoch != bEpoch {
		t.Fatalf("A recorded the cut of (%x, %d), want B's connection (%x, %d)", cutInc, cutEpoch, b.inc, bEpoch)
	}
	w.run(5 * time.Second)

	// B, connected again: a Hello naming an older connection of B's ends
	// nothing; one naming the current one ends it.
	w.reach(1, echoA)
	cur := pa.currentEpoch()
	if cur <= bEpoch {
		t.Fatalf("B's epoch %d after the cut, want above %d", cur, bEpoch)
	}
	pa.cutBy(cur-1, "n0")
	if pa.currentEpoch() != cur || pa.connectedKey() == nil {
		t.Fatal("a cut of an older connection ended B's current one")
	}
	pa.cutBy(cur, "n0")
	pa.mu.Lock()
	down, epochNow := pa.link.down, pa.link.epoch
	pa.mu.Unlock()
	if epochNow == cur || !errors.Is(down, ErrNodeDown) {
		t.Fatalf("after a cut of the current connection: epoch %d (was %d), down %v; want lost", epochNow, cur, down)
	}
}

// A Hello naming a cut of this node's connection is heeded only from the
// node that connection reached (its key), not from any node claiming its
// address: another member cannot make a node drop its connections.
func TestForgedCutIgnored(t *testing.T) {
	a := newTestNode(t, "a", Config{HeartbeatTimeout: 30 * time.Second})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: 30 * time.Second})
	r := remoteActor(t, b, a, echo) // b dials a
	pa := b.node.peerFor(a.node.Addr(), "")
	epoch := pa.currentEpoch()
	if pa.connectedKey() == nil {
		t.Fatal("b is not connected to a")
	}
	s := secureDial(t, b.node.Addr()) // another key
	defer s.Close()
	if _, err := s.Write(appendFrame(nil, fHello, uint64(protocolVersion), "a", rawInc.Add(1)+1000, a.node.Addr(), uint64(1), b.node.inc, epoch)); err != nil {
		t.Fatal(err)
	}
	if wb, err := s.readFrame(5 * time.Second); err != nil {
		t.Fatalf("no welcome: %v", err)
	} else if f := parseOne(t, b.node, wb); f.kind != fWelcome {
		t.Fatalf("answer to the hello = %+v", f)
	}
	if got := pa.currentEpoch(); got != epoch || pa.connectedKey() == nil {
		t.Fatalf("after a forged cut: epoch %d (was %d), connected %v", got, epoch, pa.connectedKey() != nil)
	}
	if v, err := b.sys.Ask(ctxT(t), r, "still up"); err != nil || v != "still up" {
		t.Fatalf("ask after the forged cut = %v, %v", v, err)
	}
}

// Stopping a node while its dials are under way leaks no goroutine: gnet's
// Enroll waits for ever for a connection that its engine, stopping
// meanwhile, never registers, so the node waits for its dials first.
func TestStopWhileDialing(t *testing.T) {
	var targets []string
	for i := range 3 {
		targets = append(targets, newTestNode(t, fmt.Sprintf("b%d", i), Config{}).node.Addr())
	}
	before := goleak.IgnoreCurrent()
	for i := range 40 {
		a := newTestNode(t, fmt.Sprintf("a%d", i), Config{})
		for _, addr := range targets {
			a.node.PeerUp(addr) // dials at once
		}
		a.close()
	}
	goleak.VerifyNone(t, before,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// playClosedFirst: B's link request is read by A and queued for A's loop;
// then B loses its own connection to A and cuts A's; A sees both closes
// before its loop gets to the request. It returns the exit signals as
// playPairWindow does.
func playClosedFirst(t *testing.T, seed uint64) (aExits, bExits []string) {
	const hostA, hostB = "10.0.0.1", "10.0.0.2"
	w := newMemWorld(t, seed, hostA, hostB)
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	exitsA, exitsB := make(chan actor.Exited, 8), make(chan actor.Exited, 8)
	spawn := func(i int, ch chan actor.Exited) actor.Ref {
		r, err := w.sys[i].Spawn(context.Background(), func() actor.Actor { return &probe{trap: true, exited: ch} })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	echo := func(c *actor.Context, msg any) (any, error) { return msg, nil }
	echoA, echoB := w.spawnOn(0, 1, echo), w.spawnOn(1, 0, echo)
	connect := func() { w.reach(0, echoB); w.reach(1, echoA) }
	a2, b2 := spawn(0, exitsA), spawn(1, exitsB)
	node, addr, id, _ := a.ExportRef(a2)
	a2OnB, err := b.ImportRef(node, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	connect()
	if err := w.sys[1].Send(b2, linkTo{R: a2OnB}); err != nil {
		t.Fatal(err)
	}
	w.sys[1].RunUntilIdle(1 << 16)
	for i := 0; ; i++ { // until A's loop has the request queued, unhandled
		if st := w.sys[0].Stats()[0]; st.Inbound+st.Control > 0 {
			break
		}
		if i == 1000 || !w.nw.Step() {
			t.Fatal("the link request never reached A")
		}
	}
	pa, pb := b.peerFor(a.Addr(), ""), a.peerFor(b.Addr(), "")
	pa.mu.Lock()
	conn, epoch := pa.conn, pa.link.epoch
	pa.mu.Unlock()
	aEpoch := pb.currentEpoch()
	_ = conn.Close()
	pa.lost(epoch, errors.New("test: connection reset"))
	for i := 0; ; i++ { // the network only, until A has seen both closes
		a.mu.Lock()
		nin := len(a.inbound)
		a.mu.Unlock()
		if pb.currentEpoch() != aEpoch && nin == 0 {
			break
		}
		if i == 10000 || !w.nw.Step() {
			t.Fatalf("A never saw the closes (epoch %d to %d, %d inbound)", aEpoch, pb.currentEpoch(), nin)
		}
	}
	w.run(10 * time.Second)
	connect()
	w.nw.Cut(hostA, hostB) // ends a half A may have kept
	w.run(10 * time.Second)
	for _, c := range []struct {
		ch  chan actor.Exited
		out *[]string
	}{{exitsA, &aExits}, {exitsB, &bExits}} {
		for len(c.ch) > 0 {
			*c.out = append(*c.out, simReason((<-c.ch).Reason))
		}
	}
	return aExits, bExits
}

// A node that cannot dial the other while the other can dial it (the
// other's address unreachable from here) does not cut the other's
// connection at each failed dial: only a connection that was up ends the
// pair's other one.
func TestUnreachableDialerDoesNotFlap(t *testing.T) {
	w := newMemWorld(t, 7, "10.0.0.1", "10.0.0.2")
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	a.PeerUp(b.Addr())
	b.PeerUp(a.Addr())
	w.run(2 * time.Second)
	b.drv.Load().d.(*memDriver).ln.Close() // B's listener goes; its connection to A stays
	w.run(2 * time.Second)
	s0 := b.Stats()
	w.run(30 * time.Second)
	if down := b.Stats().PeersDown - s0.PeersDown; down > 1 {
		t.Fatalf("B declared A down %d times in 30 s while A failed to dial it", down)
	}
}
