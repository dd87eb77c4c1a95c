package remote

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// Links, exit signals and kills across nodes (actor.Context.Link, Unlink,
// Exit, Kill with remote refs).

var errLinkTest = errors.New("link test reason")

type (
	linkTo     struct{ R actor.Ref }
	unlinkFrom struct{ R actor.Ref }
	exitTo     struct {
		R      actor.Ref
		Reason error
	}
	killIt struct{ R actor.Ref }
)

// probe is an actor for link tests: it traps exits if trap is set (from
// Start, as a restart would), reports every Exited on exited and its
// Terminate on terminated, and obeys the requests above. "stop" stops it
// with errLinkTest, "stop-normal" with nil, "crash" panics; anything else
// is echoed.
type probe struct {
	trap       bool
	exited     chan<- actor.Exited
	terminated chan<- actor.Ref
}

func (p *probe) Start(c *actor.Context) error {
	c.TrapExits(p.trap)
	return nil
}

func (p *probe) Terminate(c *actor.Context, reason error) {
	if p.terminated != nil {
		p.terminated <- c.Self()
	}
}

func (p *probe) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case linkTo:
		return nil, c.Link(m.R)
	case unlinkFrom:
		return nil, c.Unlink(m.R)
	case exitTo:
		return nil, c.Exit(m.R, m.Reason)
	case killIt:
		return nil, c.Kill(m.R)
	case actor.Exited:
		p.exited <- m
		return nil, nil
	case string:
		switch m {
		case "stop":
			return nil, c.Stop(c.Self(), errLinkTest)
		case "stop-normal":
			return nil, c.Stop(c.Self(), nil)
		case "crash":
			panic("probe crash")
		}
	}
	return msg, nil
}

// linkNodes makes the requests above sendable between the nodes.
func linkNodes(t testing.TB, nodes ...*testNode) {
	t.Helper()
	for _, tn := range nodes {
		if err := Register[linkTo](tn.node, "test.linkTo"); err != nil {
			t.Fatal(err)
		}
	}
}

// localProbe spawns p on tn, on loop 0.
func localProbe(t testing.TB, tn *testNode, p *probe) actor.Ref {
	t.Helper()
	r, err := tn.sys.Spawn(ctxT(t), func() actor.Actor { return p }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// remoteProbe spawns p on node on through a remote spawn from node from.
func remoteProbe(t testing.TB, from, on *testNode, p *probe) actor.Ref {
	t.Helper()
	name := fmt.Sprintf("test-probe-%d", kindSeq.Add(1))
	on.node.RegisterKind(name, func(any) (actor.Factory, error) {
		return func() actor.Actor { return p }, nil
	})
	r, err := from.node.Spawn(ctxT(t), on.node.Addr(), name, nil)
	if err != nil {
		t.Fatalf("remote spawn on %s: %v", on.node.Name(), err)
	}
	return r
}

// ask asks r from a goroutine of tn and fails the test on an error.
func ask(t testing.TB, tn *testNode, r actor.Ref, msg any) any {
	t.Helper()
	v, err := tn.sys.Ask(ctxT(t), r, msg)
	if err != nil {
		t.Fatalf("ask %v %#v: %v", r, msg, err)
	}
	return v
}

func hasText(err, want error) bool {
	return err != nil && strings.Contains(err.Error(), want.Error())
}

func TestRemoteLinkStopsLocalActor(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	dn := make(chan actor.Down, 8)
	w := watcher(t, a, dn)

	// A local actor that does not trap exits stops with the linked remote
	// actor's reason.
	r := remoteProbe(t, a, b, &probe{})
	l := localProbe(t, a, &probe{})
	monitorVia(t, a, w, l)
	ask(t, a, l, linkTo{r})
	ask(t, a, l, linkTo{r}) // twice: one link
	ask(t, a, r, "sync")    // the link request went before this ask on the same connection
	if err := a.sys.Send(r, "stop"); err != nil {
		t.Fatal(err)
	}
	d := recv(t, dn, 5*time.Second, "Down of the linked local actor")
	if d.Ref != l || !hasText(d.Reason, errLinkTest) {
		t.Fatalf("Down = %+v (reason %v), want %v with %v", d, d.Reason, l, errLinkTest)
	}

	// A crash travels as a crash; a trapping actor gets Exited, From the
	// very ref it linked to.
	exited := make(chan actor.Exited, 8)
	r2 := remoteProbe(t, a, b, &probe{})
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})
	ask(t, a, trapper, linkTo{r2})
	ask(t, a, r2, "sync")
	if err := a.sys.Send(r2, "crash"); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, exited, 5*time.Second, "Exited of a crash"); e.From != r2 || !errors.Is(e.Reason, actor.ErrCrashed) {
		t.Fatalf("Exited = %+v, want from %v matching ErrCrashed", e, r2)
	}

	// A normal stop leaves a non-trapping linked actor running. Both are on
	// loop 0 and l3 linked first, so its signal is handled before the
	// trapping one's Exited.
	r3 := remoteProbe(t, a, b, &probe{})
	l3 := localProbe(t, a, &probe{})
	ask(t, a, l3, linkTo{r3})
	ask(t, a, trapper, linkTo{r3})
	ask(t, a, r3, "sync")
	if err := a.sys.Send(r3, "stop-normal"); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, exited, 5*time.Second, "Exited of a normal stop"); e.From != r3 || e.Reason != nil {
		t.Fatalf("Exited = %+v, want from %v with a nil reason", e, r3)
	}
	ask(t, a, l3, "still here")
	nothing(t, dn, "Down")
}

func TestRemoteLinkFromTheOtherNode(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exited := make(chan actor.Exited, 8)
	// An actor on B links to an actor on A, whose ref it got in a message.
	rb := remoteProbe(t, a, b, &probe{trap: true, exited: exited})
	la := localProbe(t, a, &probe{})
	ask(t, a, rb, linkTo{la})
	ask(t, a, rb, "sync") // B's link request went to A before this reply
	if err := a.sys.Send(la, "stop"); err != nil {
		t.Fatal(err)
	}
	e := recv(t, exited, 5*time.Second, "Exited on B")
	if !hasText(e.Reason, errLinkTest) {
		t.Fatalf("Exited = %+v, want reason %v", e, errLinkTest)
	}
	// From is B's ref to la: the ref B was given.
	if _, id, ok := wireOf(b.sys).Remote(e.From); !ok {
		t.Fatalf("Exited.From %v is not remote on B", e.From)
	} else if lid, _ := wireOf(a.sys).LocalID(la); lid != id {
		t.Fatalf("Exited.From names %+v, want %+v", id, lid)
	}
	// The link is gone on both sides: la's slot is dead and rb unlinked.
	if _, err := a.sys.Ask(ctxT(t), la, "x"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask to the stopped actor: %v", err)
	}
}

// TestRemoteLinkOrderedBeforeLaterMessages: a link request from another
// node is handled before a message sent after it (here by a goroutine that
// learned of the link), even when the target's loop is busy when both
// arrive: on the control queue, the message could be handled first in the
// same pass, and the link answered as one to a dead actor.
func TestRemoteLinkOrderedBeforeLaterMessages(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exited := make(chan actor.Exited, 8)
	rb := remoteProbe(t, a, b, &probe{trap: true, exited: exited})
	la := localProbe(t, a, &probe{}) // on loop 0
	busy, release := make(chan struct{}), make(chan struct{})
	blocker := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		busy <- struct{}{}
		<-release
		return nil, nil
	}, actor.OnLoop(0))
	if err := a.sys.Send(blocker, "hold loop 0"); err != nil {
		t.Fatal(err)
	}
	<-busy
	ask(t, a, rb, linkTo{la}) // B's link request reached A (and la's loop) before this reply
	if err := a.sys.Send(la, "stop"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if e := recv(t, exited, 5*time.Second, "Exited on B"); !hasText(e.Reason, errLinkTest) {
		t.Fatalf("Exited = %+v, want reason %v: the stop overtook the link", e, errLinkTest)
	}
}

func TestRemoteLinkToDeadOrForgedActor(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	dn := make(chan actor.Down, 4)
	w := watcher(t, a, dn)
	exited := make(chan actor.Exited, 8)
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})

	dead := remoteProbe(t, a, b, &probe{})
	monitorVia(t, a, w, dead)
	ask(t, a, dead, "sync")
	if err := a.sys.Send(dead, "stop-normal"); err != nil {
		t.Fatal(err)
	}
	recv(t, dn, 5*time.Second, "Down of the stopped actor")
	ask(t, a, trapper, linkTo{dead})
	if e := recv(t, exited, 5*time.Second, "Exited for a dead actor"); e.From != dead || !errors.Is(e.Reason, actor.ErrDead) {
		t.Fatalf("Exited = %+v, want from %v matching ErrDead", e, dead)
	}

	// A forged secret is answered exactly like a dead actor.
	live := remoteProbe(t, a, b, &probe{})
	p, id, _ := wireOf(a.sys).Remote(live)
	id.Secret[0] ^= 1
	forged := wireOf(a.sys).RemoteRef(p, id)
	ask(t, a, trapper, linkTo{forged})
	if e := recv(t, exited, 5*time.Second, "Exited for a forged ref"); e.From != forged || !errors.Is(e.Reason, actor.ErrDead) {
		t.Fatalf("Exited = %+v, want from the forged ref matching ErrDead", e)
	}
	ask(t, a, live, "the real actor is untouched")
}

func TestRemoteUnlink(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exited := make(chan actor.Exited, 8)
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})
	r := remoteProbe(t, a, b, &probe{})
	ask(t, a, trapper, linkTo{r})
	ask(t, a, trapper, unlinkFrom{r})
	ask(t, a, r, "sync") // the unlink reached B before this
	if err := a.sys.Send(r, "stop"); err != nil {
		t.Fatal(err)
	}
	// A second linked actor's exit arrives after the first one's would have
	// (same connection, same loop): the first must not come.
	r2 := remoteProbe(t, a, b, &probe{})
	ask(t, a, trapper, linkTo{r2})
	ask(t, a, r2, "sync")
	if err := a.sys.Send(r2, "stop"); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, exited, 5*time.Second, "Exited of r2"); e.From != r2 {
		t.Fatalf("Exited from %v after Unlink, want only r2 %v", e.From, r2)
	}
	nothing(t, exited, "Exited")
}

func TestRemoteExitAndKill(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	dn := make(chan actor.Down, 8)
	w := watcher(t, a, dn)
	sender := localProbe(t, a, &probe{})

	// Exit with a reason stops an actor that does not trap exits.
	r := remoteProbe(t, a, b, &probe{})
	monitorVia(t, a, w, r)
	ask(t, a, r, "sync")
	ask(t, a, sender, exitTo{r, errLinkTest})
	if d := recv(t, dn, 5*time.Second, "Down after Exit"); d.Ref != r || !hasText(d.Reason, errLinkTest) {
		t.Fatalf("Down = %+v, want %v with %v", d, r, errLinkTest)
	}

	// Exit with a nil reason does nothing to it; the ask that follows on the
	// same connection is answered.
	r2 := remoteProbe(t, a, b, &probe{})
	ask(t, a, sender, exitTo{r2, nil})
	ask(t, a, r2, "still here")

	// A trapping actor gets Exited from the sender and keeps running.
	exited := make(chan actor.Exited, 4)
	r3 := remoteProbe(t, a, b, &probe{trap: true, exited: exited})
	ask(t, a, sender, exitTo{r3, errLinkTest})
	e := recv(t, exited, 5*time.Second, "Exited on B")
	if !hasText(e.Reason, errLinkTest) {
		t.Fatalf("Exited = %+v, want %v", e, errLinkTest)
	}
	if lid, _ := wireOf(a.sys).LocalID(sender); func() actor.WireID { _, id, _ := wireOf(b.sys).Remote(e.From); return id }() != lid {
		t.Fatalf("Exited.From %v is not the sender", e.From)
	}
	ask(t, a, r3, "still here")

	// Kill cannot be trapped and skips Terminate; the reason is ErrKilled.
	terminated := make(chan actor.Ref, 4)
	r4 := remoteProbe(t, a, b, &probe{trap: true, exited: exited, terminated: terminated})
	monitorVia(t, a, w, r4)
	ask(t, a, r4, "sync")
	ask(t, a, sender, killIt{r4})
	if d := recv(t, dn, 5*time.Second, "Down after Kill"); d.Ref != r4 || !errors.Is(d.Reason, actor.ErrKilled) {
		t.Fatalf("Down = %+v (reason %v), want %v matching ErrKilled", d, d.Reason, r4)
	}
	nothing(t, exited, "Exited for a kill")
	nothing(t, terminated, "Terminate of a killed actor")

	// Exit with ErrKilled is a Kill too.
	r5 := remoteProbe(t, a, b, &probe{trap: true, exited: exited})
	monitorVia(t, a, w, r5)
	ask(t, a, r5, "sync")
	ask(t, a, sender, exitTo{r5, actor.ErrKilled})
	if d := recv(t, dn, 5*time.Second, "Down after Exit(ErrKilled)"); d.Ref != r5 || !errors.Is(d.Reason, actor.ErrKilled) {
		t.Fatalf("Down = %+v, want %v matching ErrKilled", d, r5)
	}

	// A killed actor's links get a trappable exit with ErrKilled.
	r6 := remoteProbe(t, a, b, &probe{})
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})
	ask(t, a, trapper, linkTo{r6})
	ask(t, a, r6, "sync")
	ask(t, a, sender, killIt{r6})
	if e := recv(t, exited, 5*time.Second, "Exited of a killed link"); e.From != r6 || !errors.Is(e.Reason, actor.ErrKilled) {
		t.Fatalf("Exited = %+v, want from %v matching ErrKilled", e, r6)
	}
	ask(t, a, trapper, "the trapping actor survives")
}

func TestRemoteLinkNodeDown(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	dn := make(chan actor.Down, 4)
	w := watcher(t, a, dn)
	exited := make(chan actor.Exited, 4)
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})
	l := localProbe(t, a, &probe{})
	monitorVia(t, a, w, l)
	r := remoteProbe(t, a, b, &probe{})
	r2 := remoteProbe(t, a, b, &probe{})
	ask(t, a, trapper, linkTo{r})
	ask(t, a, l, linkTo{r2})
	ask(t, a, r2, "sync")

	b.close() // the node goes away with its actors

	e := recv(t, exited, 5*time.Second, "Exited after node down")
	if e.From != r || !errors.Is(e.Reason, ErrNodeDown) {
		t.Fatalf("Exited = %+v, want from %v matching ErrNodeDown", e, r)
	}
	if d := recv(t, dn, 5*time.Second, "Down of the linked actor"); d.Ref != l || !errors.Is(d.Reason, ErrNodeDown) {
		t.Fatalf("Down = %+v (reason %v), want %v matching ErrNodeDown", d, d.Reason, l)
	}
	ask(t, a, trapper, "the trapping actor survives")
}

// TestRemoteLinksEndOnBothSidesAfterReconnect: when one node loses its
// connection and dials again, the other node (whose own connection stayed
// up) ends its links too, so neither side keeps a link the other dropped.
func TestRemoteLinksEndOnBothSidesAfterReconnect(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exA := make(chan actor.Exited, 4)
	exB := make(chan actor.Exited, 4)
	ta := localProbe(t, a, &probe{trap: true, exited: exA})
	tb := remoteProbe(t, a, b, &probe{trap: true, exited: exB})
	ask(t, a, ta, linkTo{tb})
	ask(t, a, tb, "sync")

	// Drop the connection A dialed to B; B's connection to A stays up.
	p, err := a.node.peer(b.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c == nil {
		t.Fatal("no connection from A to B")
	}
	_ = c.Close()

	if e := recv(t, exA, 5*time.Second, "Exited on A"); e.From != tb || !errors.Is(e.Reason, ErrNodeDown) {
		t.Fatalf("A: Exited = %+v, want from %v matching ErrNodeDown", e, tb)
	}
	// A fails what it sends while B is known down, and dials again: B ends
	// its half when the connection closes (or, at the latest, when it sees
	// the new one).
	askWhenUp(t, a, tb, "redial")
	if e := recv(t, exB, 5*time.Second, "Exited on B"); !errors.Is(e.Reason, ErrNodeDown) {
		t.Fatalf("B: Exited = %+v, want a reason matching ErrNodeDown", e)
	}
	// A new link over the new connection works.
	ask(t, a, ta, linkTo{tb})
	ask(t, a, tb, "sync")
	if err := a.sys.Send(tb, "stop"); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, exA, 5*time.Second, "Exited of the new link"); e.From != tb || !hasText(e.Reason, errLinkTest) {
		t.Fatalf("A: Exited = %+v, want from %v with %v", e, tb, errLinkTest)
	}
}

// TestRemoteLinkEndsOnTheNodeThatNeverDialed: node B holds its half of a
// link made by an actor of A, and had no reason of its own to dial A (the
// ref came from a third node; a link sends no reply). When A goes away,
// B's half still ends with ErrNodeDown: a link makes B watch A.
func TestRemoteLinkEndsOnTheNodeThatNeverDialed(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exB := make(chan actor.Exited, 4)
	tb := localProbe(t, b, &probe{trap: true, exited: exB})
	id, _ := wireOf(b.sys).LocalID(tb)
	pab, err := a.node.peer(b.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	rb := wireOf(a.sys).RemoteRef(pab, id) // as if handed over by a third node
	la := localProbe(t, a, &probe{})
	ask(t, a, la, linkTo{rb})
	pba, err := b.node.peer(a.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B connected to A after the link", func() bool { return pba.connectedKey() != nil })

	a.close()
	e := recv(t, exB, 10*time.Second, "Exited on B after A went away")
	if !errors.Is(e.Reason, ErrNodeDown) {
		t.Fatalf("Exited = %+v, want a reason matching ErrNodeDown", e)
	}
}

// TestRemoteLinkMadeAfterALossSurvivesItsBreak: a link made on a new
// connection, while the loops may not yet have ended the links of the lost
// one, is not ended with them, or the other node would keep a half-link.
// (Between the loss and the new connection, a link is refused at once with
// ErrNodeDown: the peer is known down. The other node, whose connection the
// loss cut, may dial again at once, and this node answer it, so the new
// connection may be up already.)
func TestRemoteLinkMadeAfterALossSurvivesItsBreak(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	b := newTestNode(t, "b", Config{})
	linkNodes(t, a, b)
	exA := make(chan actor.Exited, 4)
	exB := make(chan actor.Exited, 4)
	tb := remoteProbe(t, a, b, &probe{trap: true, exited: exB})
	p, err := a.node.peer(b.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ta := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		switch m := msg.(type) {
		case string:
			switch m {
			case "link":
				c.TrapExits(true)
				return nil, c.Link(tb)
			case "stop":
				return nil, c.Stop(c.Self(), errLinkTest)
			}
		case actor.Exited:
			exA <- m
		}
		return nil, nil
	}, actor.OnLoop(0))
	p.mu.Lock()
	conn, e0 := p.conn, p.link.epoch
	p.mu.Unlock()
	_ = conn.Close()
	waitFor(t, 5*time.Second, "the loss", func() bool { return p.currentEpoch() != e0 })
	if _, err := a.sys.Ask(ctxT(t), ta, "link"); err != nil && !errors.Is(err, ErrNodeDown) {
		t.Fatalf("a link right after the loss: %v, want ErrNodeDown or a link on the new connection", err)
	}
	askWhenUp(t, a, tb, "sync") // reconnected
	ask(t, a, ta, "link")
	// Whether or not lost() has already asked the loops to end the links of
	// epoch e0, ask again, and let loop 0 handle it (control first).
	wireOf(a.sys).BreakLinks(p, e0, ErrNodeDown)
	ask(t, a, ta, "sync")
	ask(t, a, tb, "sync") // the link request reached B on the new connection
	nothing(t, exA, "Exited on A for a link made after the loss")

	if err := a.sys.Send(ta, "stop"); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, exB, 5*time.Second, "Exited on B"); !hasText(e.Reason, errLinkTest) {
		t.Fatalf("B: Exited = %+v, want %v", e, errLinkTest)
	}
}

// askWhenUp asks until the ask does not fail with ErrNodeDown: the peer
// was known down and comes back (each failed ask asks for a redial).
func askWhenUp(t testing.TB, tn *testNode, r actor.Ref, msg any) any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := tn.sys.Ask(ctxT(t), r, msg)
		switch {
		case err == nil:
			return v
		case !errors.Is(err, ErrNodeDown) || time.Now().After(deadline):
			t.Fatalf("ask %v %v: %v", r, msg, err)
		}
		time.Sleep(5 * time.Millisecond) // retry pacing, not synchronisation
	}
}
