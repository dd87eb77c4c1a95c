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

// pairRig is two nodes on the in-memory network, connected both ways,
// with an actor on each that traps exits (a2 on A, b2 on B) and B's ref to
// a2.
type pairRig struct {
	t              *testing.T
	w              *memWorld
	a, b           *Node
	a2, b2, a2OnB  actor.Ref
	exitsA, exitsB chan actor.Exited
	echoA, echoB   actor.Ref
}

const pairHostA, pairHostB = "10.0.0.1", "10.0.0.2"

func newPairRig(t *testing.T, seed uint64) *pairRig {
	w := newMemWorld(t, seed, pairHostA, pairHostB)
	r := &pairRig{t: t, w: w, a: w.nodes[0], b: w.nodes[1],
		exitsA: make(chan actor.Exited, 8), exitsB: make(chan actor.Exited, 8)}
	spawn := func(i int, ch chan actor.Exited) actor.Ref {
		ref, err := w.sys[i].Spawn(context.Background(), func() actor.Actor { return &probe{trap: true, exited: ch} })
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	echo := func(c *actor.Context, msg any) (any, error) { return msg, nil }
	r.echoA, r.echoB = w.spawnOn(0, 1, echo), w.spawnOn(1, 0, echo)
	r.a2, r.b2 = spawn(0, r.exitsA), spawn(1, r.exitsB)
	node, addr, id, ok := r.a.ExportRef(r.a2)
	if !ok {
		t.Fatalf("cannot export %v", r.a2)
	}
	var err error
	if r.a2OnB, err = r.b.ImportRef(node, addr, id); err != nil {
		t.Fatal(err)
	}
	r.connect()
	return r
}

// connect makes each node reach the other.
func (r *pairRig) connect() { r.w.reach(0, r.echoB); r.w.reach(1, r.echoA) }

// link makes b2 link to a2.
func (r *pairRig) link() {
	if err := r.w.sys[1].Send(r.b2, linkTo{R: r.a2OnB}); err != nil {
		r.t.Fatal(err)
	}
}

// linkReadByA makes b2 link to a2 and steps the network alone until A's
// loop has the request queued, unhandled.
func (r *pairRig) linkReadByA() {
	r.link()
	r.w.sys[1].RunUntilIdle(1 << 16)
	for i := 0; ; i++ {
		if st := r.w.sys[0].Stats()[0]; st.Inbound+st.Control > 0 {
			return
		}
		if i == 1000 || !r.w.nw.Step() {
			r.t.Fatal("the link request never reached A")
		}
	}
}

// lose ends the connection from's node dialed to the other (as a reset or
// a heartbeat timeout would) and returns the peer.
func (r *pairRig) lose(from, to *Node) *peer {
	p := from.peerFor(to.Addr(), "")
	p.mu.Lock()
	conn, epoch := p.conn, p.link.epoch
	p.mu.Unlock()
	if conn == nil {
		r.t.Fatalf("%s has no connection to %s", from.Name(), to.Name())
	}
	_ = conn.Close()
	p.lost(epoch, errors.New("test: connection reset"))
	return p
}

// finish runs the rest out, then cuts everything between A and B after
// connecting them again (which ends a half A may have kept), and returns
// the reasons of the exit signals A's and B's actors got.
func (r *pairRig) finish() (aExits, bExits []string) {
	r.w.run(10 * time.Second)
	r.connect()
	r.w.nw.Cut(pairHostA, pairHostB)
	r.w.run(10 * time.Second)
	for _, c := range []struct {
		ch  chan actor.Exited
		out *[]string
	}{{r.exitsA, &aExits}, {r.exitsB, &bExits}} {
		for len(c.ch) > 0 {
			*c.out = append(*c.out, simReason((<-c.ch).Reason))
		}
	}
	return aExits, bExits
}

// playPairWindow plays the window and returns the reasons of the exit
// signals A's and B's actors got. With readFirst, B's link request is read
// by A's network side before A's loss, and A's loop gets to it after.
func playPairWindow(t *testing.T, readFirst bool) (aExits, bExits []string) {
	r := newPairRig(t, 5)
	defer r.w.close()
	if readFirst {
		r.linkReadByA()
	}
	// A's connection to B breaks; what A sends to B from now on is slow.
	r.w.nw.SetLinkLatency(pairHostA, pairHostB, 3*time.Second, 3*time.Second)
	r.lose(r.a, r.b)
	if !readFirst {
		r.link() // at once: the request goes on B's connection to A
	}
	r.w.run(10 * time.Second)
	r.w.nw.ClearLinkLatency(pairHostA, pairHostB)
	return r.finish()
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
	r := newPairRig(t, 9)
	defer r.w.close()
	b := r.b
	pa := b.peerFor(r.a.Addr(), "")
	bEpoch := pa.currentEpoch()

	// A's loss cuts B's connection and records it for its next Hello.
	pb := r.lose(r.a, b)
	pb.mu.Lock()
	cutInc, cutEpoch := pb.link.cutInc, pb.link.cutEpoch
	pb.mu.Unlock()
	if cutInc != b.inc || cutEpoch != bEpoch {
		t.Fatalf("A recorded the cut of (%x, %d), want B's connection (%x, %d)", cutInc, cutEpoch, b.inc, bEpoch)
	}
	r.w.run(5 * time.Second)

	// B, connected again: a Hello naming an older connection of B's ends
	// nothing; one naming the current one ends it.
	r.w.reach(1, r.echoA)
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
	// A target is ready before its Serve has started the goroutines it
	// runs beside its accept loop: a connection it welcomed shows they
	// run, so that the snapshot below has them.
	w := newTestNode(t, "w", Config{})
	for _, addr := range targets {
		w.node.PeerUp(addr)
		p, err := w.node.peer(addr)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the warm-up connection to "+addr, func() bool { return welcomed(p) })
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
	r := newPairRig(t, seed)
	defer r.w.close()
	r.linkReadByA()
	pb := r.a.peerFor(r.b.Addr(), "")
	aEpoch := pb.currentEpoch()
	r.lose(r.b, r.a)
	for i := 0; ; i++ { // the network only, until A has seen both closes
		r.a.mu.Lock()
		nin := len(r.a.inbound)
		r.a.mu.Unlock()
		if pb.currentEpoch() != aEpoch && nin == 0 {
			break
		}
		if i == 10000 || !r.w.nw.Step() {
			t.Fatalf("A never saw the closes (epoch %d to %d, %d inbound)", aEpoch, pb.currentEpoch(), nin)
		}
	}
	return r.finish()
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
