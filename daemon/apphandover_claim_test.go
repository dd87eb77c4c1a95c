package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// TestClientCannotTakeAHeldChild: a node that is not a registry member (a
// client) and knows the ref of a child held for a root's handover can
// neither adopt it (an adoptTie of its own), nor hold children it spawned
// itself (each hold would start a timer of a minute on the gateway): only
// registry members are answered, and an adoption must carry the claim the
// release recorded. The held child stays held, and its holder's drop
// kills it.
func TestClientCannotTakeAHeldChild(t *testing.T) {
	f := &moveFixture{}
	d := start(t, f.config(t, "a"))
	cn := testNode(t, "client", nil)
	if err := RegisterGatewayTypes(cn); err != nil {
		t.Fatal(err)
	}
	startNode(t, cn)
	gwC, err := d.Gateway().Capability().Ref(cn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	owner, err := d.System().Spawn(ctx, func() actor.Actor { return &tally{name: "owner"} })
	if err != nil {
		t.Fatal(err)
	}
	kid := appCall(t, d, SpawnKind{Kind: "tally", Args: map[string]any{"name": "kid"}, Owner: owner}).(SpawnResult).Ref
	if kid.IsZero() {
		t.Fatal("no kid")
	}
	appCall(t, d, handoverLocal{Msg: holdTie{Kid: kid, Owner: owner, Holder: d.gw.ref, Claim: "secret"}})
	if v := appCall(t, d, handoverLocal{Msg: heldQuery{Kid: kid, Holder: d.gw.ref}}); v != true {
		t.Fatalf("not held: %v", v)
	}
	node, addr, wire, ok := d.node.ExportRef(kid)
	if !ok {
		t.Fatal("export")
	}
	kidC, err := cn.ImportRef(node, addr, wire)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := cn.System().Spawn(ctx, func() actor.Actor { return &tally{name: "thief"} })
	if err != nil {
		t.Fatal(err)
	}
	for _, claim := range []string{"", "secret"} {
		if _, err := cn.System().Ask(ctx, gwC, adoptTie{Kid: kidC, Owner: mine, Claim: claim}); !isRemoteErr(err, errNotOwnersNode) {
			t.Errorf("a non-member client's adoptTie (claim %q): %v, want %v", claim, err, errNotOwnersNode)
		}
	}
	// Its own kids, spawned through the gateway, tied to its own actor.
	own := appCall1(t, cn, gwC, SpawnKind{Kind: "tally", Args: map[string]any{"name": "own"}, Owner: mine})
	if _, err := cn.System().Ask(ctx, gwC, holdTie{Kid: own, Owner: mine, Holder: mine}); !isRemoteErr(err, errNotOwnersNode) {
		t.Errorf("a non-member client's holdTie: %v, want %v", err, errNotOwnersNode)
	}
	// Nor cancel a move's import.
	if _, err := cn.System().Ask(ctx, gwC, cancelImport{Move: "m1"}); err == nil {
		t.Error("a non-member client cancelled a move's import")
	}
	if v := appCall(t, d, handoverLocal{Msg: heldQuery{Kid: kid, Holder: d.gw.ref}}); v != true {
		t.Errorf("after the client's adoptTie the holder no longer holds the kid (held=%v)", v)
	}
	// A member's adoption needs the claim.
	other, err := d.System().Spawn(ctx, func() actor.Actor { return &tally{name: "other"} })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.sys.Ask(ctx, d.gw.ref, handoverLocal{Msg: adoptTie{Kid: kid, Owner: other, Claim: "guess"}}); !errors.Is(err, errNotHeld) {
		t.Errorf("an adoption without the claim: %v, want %v", err, errNotHeld)
	}
	appCall(t, d, handoverLocal{Msg: dropTie{Kid: kid, Holder: d.gw.ref}})
	eventually(t, 10*time.Second, "the held kid killed by its holder's drop", func() bool { return !isAlive(d, kid) })
}

// isRemoteErr reports whether err, come over the network, is want (its
// text: errors lose their identity on the wire).
func isRemoteErr(err, want error) bool {
	return err != nil && strings.Contains(err.Error(), want.Error())
}

// appCall1 asks a gateway a SpawnKind from node n and returns the ref.
func appCall1(t *testing.T, n interface {
	System() *actor.System
}, gw actor.Ref, m SpawnKind) actor.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := n.System().Ask(ctx, gw, m)
	if err != nil {
		t.Fatal(err)
	}
	r := v.(SpawnResult)
	if r.Err() != nil || r.Ref.IsZero() {
		t.Fatalf("spawn: %v", r.Err())
	}
	return r.Ref
}

// TestUnadoptedHeldChildIsKilledFirst: the new root does not adopt a held
// child (its record no longer matches the child's slot): it has the held
// instance killed before it starts the fresh copy, so the two never run
// side by side.
func TestUnadoptedHeldChildIsKilledFirst(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	handoverHeldHook = func(held []handoverChild) {
		for i := range held {
			held[i].Kind = "not-kid" // the new root will not adopt it
		}
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	// Seen as the fresh copy starts, not after: "dead eventually" holds
	// too if the root starts it while the held one is being killed.
	heldAlive := make(chan bool, 1)
	log.setOnStart(func(name string, k int) {
		if name == "w1" && k == n+1 {
			heldAlive <- isAlive(b, first)
		}
	})
	t.Cleanup(func() { log.setOnStart(nil) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	t.Logf("handover: %+v, %v", hs, err)
	select {
	case alive := <-heldAlive:
		if alive {
			t.Fatalf("w1's fresh copy started while the held %v still ran", first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("w1 not started afresh by b's root")
	}
}

// TestTiesAbandonAndDrop: a new root that will not adopt a held child
// (abandonTie) has it killed if it is still held under the claim it
// shows, or if it is already tied to that root (an adoption whose answer
// came too late: it would run unsupervised beside the fresh copy); the
// claim is needed for either, a wrong one changes nothing. A dropTie
// naming the old root kills a child still tied to it (a failed hold).
func TestTiesAbandonAndDrop(t *testing.T) {
	r := newTiesRig(t)
	owner, holder, newRoot, held, adopted, unheld := r.idle(), r.idle(), r.idle(), r.idle(), r.idle(), r.idle()
	for _, k := range []actor.Ref{held, adopted, unheld} {
		if err, _ := r.do(func(c *actor.Context) any { return r.tt.tieNow(c, tieLocal{Owner: owner, Kid: k}) }).(error); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []actor.Ref{held, adopted} {
		if err, _ := r.do(func(c *actor.Context) any { return r.tt.hold(c, owner, holder, k, "claim", time.Hour) }).(error); err != nil {
			t.Fatal(err)
		}
	}
	call := func(f func(c *actor.Context) error) error {
		err, _ := r.do(func(c *actor.Context) any { return f(c) }).(error)
		return err
	}
	if err := call(func(c *actor.Context) error { return r.tt.abandonAdoption(c, newRoot, held, "wrong") }); !errors.Is(err, errNotHeld) {
		t.Fatalf("abandon with a wrong claim: %v", err)
	}
	if err := call(func(c *actor.Context) error { return r.tt.adopt(c, newRoot, adopted, "claim") }); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	for _, k := range []actor.Ref{held, adopted} {
		if err := call(func(c *actor.Context) error { return r.tt.abandonAdoption(c, newRoot, k, "claim") }); err != nil {
			t.Fatalf("abandon: %v", err)
		}
	}
	_ = call(func(c *actor.Context) error { r.tt.drop(c, holder, owner, unheld); return nil })
	eventually(t, 10*time.Second, "the abandoned and the dropped killed", func() bool {
		return !r.alive(held) && !r.alive(adopted) && !r.alive(unheld)
	})
	var nh, nt int
	r.do(func(*actor.Context) any { nh, nt = len(r.tt.held), len(r.tt.ownerOf); return nil })
	if nh != 0 || nt != 0 {
		t.Fatalf("left: %d held, %d tied", nh, nt)
	}
}

// TestHandOverAbortedAfterItsReleaseStillAdopts: the driver stops a
// handover after its release was proposed (with OffLoop, a tick's
// expire can run before the reconcile of the write that applied the
// release): the root is killed, but the held children are not dropped,
// for the release may have committed: the new root adopts them, and the
// handover is reported done.
func TestHandOverAbortedAfterItsReleaseStillAdopts(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	gate := make(chan struct{})
	adopting := make(chan struct{}, 1)
	adoptHook = func() {
		select {
		case adopting <- struct{}{}:
		default:
		}
		<-gate
	}
	t.Cleanup(func() { adoptHook = nil })
	type result struct {
		hs  []RootHandover
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hs, err := a.handOverRoots(ctx)
		res <- result{hs, err}
	}()
	select {
	case <-adopting: // the release committed: b's root adopts
	case <-time.After(30 * time.Second):
		t.Fatal("no adoption began")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.sys.Inspect(ctx, a.apps.driverRef(), func(c *actor.Context, _ actor.Actor) {
		a.apps.runner.abortHandOver(c, "shop")
	}); err != nil {
		t.Fatal(err)
	}
	// A drop, were there one, is asked at once: give it up to 2 s to
	// land before the adoption goes on.
	held := func() bool {
		v, err := a.askGatewayValue(ctx, "b", heldQuery{Kid: first, Holder: a.gw.ref})
		return err == nil && v == true
	}
	for end := time.Now().Add(2 * time.Second); held() && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond) // polling a gateway, which has no watch
	}
	close(gate)
	r := <-res
	if r.err != nil {
		t.Fatalf("handover: %+v, %v", r.hs, r.err)
	}
	root := rootOf(b, "shop")
	eventually(t, 20*time.Second, "b's root supervises w1", func() bool {
		ch := childrenOf(b, root)
		return len(ch) == 1 && ch[0].Running
	})
	if !isAlive(b, first) || len(log.all("w1")) != n {
		t.Fatalf("w1 not adopted: the held one alive %v, %d instances (was %d)", isAlive(b, first), len(log.all("w1")), n)
	}
}

// TestHandOverKillsAChildWhoseHoldIsLost: the hold of w1 was made, but
// its answer lost: w1 is not in the release, so the new root starts it
// afresh; the old daemon has it killed before the release (its gateway
// drops it, held or still tied to the old root), so the held instance
// does not run beside the fresh one until its hold ends.
func TestHandOverKillsAChildWhoseHoldIsLost(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	handoverHoldAnswerHook = func(string, error) error { return errors.New("answer lost (test)") }
	t.Cleanup(func() { handoverHoldAnswerHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	t.Logf("handover: %+v, %v", hs, err)
	eventually(t, 30*time.Second, "w1 started afresh by b's root", func() bool { return len(log.all("w1")) > n })
	if isAlive(b, first) {
		t.Fatalf("two instances of w1 run: the held %v beside the fresh one", first)
	}
}
