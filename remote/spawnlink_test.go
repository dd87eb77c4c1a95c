package remote

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// trapper is an owner of spawns that outlives their links' ends: it traps
// exits and records them.
type trapper struct{ exits *[]actor.Exited }

func (t trapper) Start(c *actor.Context) error { c.TrapExits(true); return nil }
func (t trapper) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Exited:
		*t.exits = append(*t.exits, m)
	case string:
		switch m {
		case "die":
			return nil, c.Stop(c.Self(), nil)
		case "fail":
			return nil, c.Stop(c.Self(), errOwnerFailed)
		}
	}
	return nil, nil
}

var errOwnerFailed = errors.New("test: the owner failed")

// linkWorld is two nodes, B with a kind that counts its live instances
// and records each one's parent, A with a trapping owner, connected.
type linkWorld struct {
	*memWorld
	live    int
	parents []actor.Ref
	owner   actor.Ref
	exits   []actor.Exited
}

func newLinkWorld(t *testing.T, seed uint64) *linkWorld {
	lw := &linkWorld{memWorld: newMemWorld(t, seed, "10.0.0.1", "10.0.0.2")}
	lw.nodes[1].RegisterKind("counted", func(any) (actor.Factory, error) {
		return func() actor.Actor { return parentRecorder{counted{live: &lw.live}, &lw.parents} }, nil
	})
	r, err := lw.sys[0].Spawn(ctxT(t), func() actor.Actor { return trapper{&lw.exits} })
	if err != nil {
		t.Fatal(err)
	}
	lw.owner = r
	var first spawned // connects the nodes
	lw.nodes[0].SpawnAsync(lw.nodes[1].Addr(), "counted", nil, time.Second, first.done)
	lw.run(time.Second)
	if first.err != nil || lw.live != 1 {
		t.Fatalf("spawn: %v; %d live, want 1", first.err, lw.live)
	}
	return lw
}

// parentRecorder is counted, recording its parent at Start.
type parentRecorder struct {
	counted
	parents *[]actor.Ref
}

func (p parentRecorder) Start(c *actor.Context) error {
	*p.parents = append(*p.parents, c.Parent())
	return p.counted.Start(c)
}

// A spawn whose answer is lost with its connection: without the link its
// actor runs on, known to nobody; with it, the actor's half of the link
// ends with the connection and the actor stops.
func TestSpawnLinkAnswerLostStopsTheActor(t *testing.T) {
	for _, linked := range []bool{false, true} {
		lw := newLinkWorld(t, 11)
		a, b := lw.nodes[0], lw.nodes[1]
		lw.nw.SetLinkLatency("10.0.0.2", "10.0.0.1", 500*time.Millisecond, 500*time.Millisecond)
		var lost spawned
		if linked {
			a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, lost.done)
		} else {
			a.SpawnAsync(b.Addr(), "counted", nil, 10*time.Second, lost.done)
		}
		lw.run(100 * time.Millisecond)
		if lw.live != 2 {
			t.Fatalf("linked %v: %d live on B, want 2 (the new one made, its answer on the way)", linked, lw.live)
		}
		lw.nw.Partition("10.0.0.1", "10.0.0.2")
		lw.run(3 * time.Second) // the heartbeats time out (1 s)
		lw.nw.Heal("10.0.0.1", "10.0.0.2")
		lw.nw.ClearLinkLatency("10.0.0.2", "10.0.0.1")
		lw.run(3 * time.Second)
		if lost.calls != 1 || lost.err == nil || !lost.ref.IsZero() {
			t.Fatalf("linked %v: done ran %d times with %v, %v; want once with the loss", linked, lost.calls, lost.ref, lost.err)
		}
		want := 1 // the first, unlinked one
		if !linked {
			want = 2 // the documented orphan
		}
		if lw.live != want {
			t.Errorf("linked %v: %d live on B, want %d", linked, lw.live, want)
		}
		lw.close()
	}
}

// An owner that ends while its spawn is under way: the answer names an
// actor linked to a dead owner, which then gets the owner's exit signal.
func TestSpawnLinkOwnerGoneStopsTheActor(t *testing.T) {
	lw := newLinkWorld(t, 12)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	lw.nw.SetLinkLatency("10.0.0.2", "10.0.0.1", 500*time.Millisecond, 500*time.Millisecond)
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, got.done)
	lw.run(100 * time.Millisecond)
	if lw.live != 2 {
		t.Fatalf("%d live on B, want 2", lw.live)
	}
	lw.sys[0].Send(lw.owner, "die")
	lw.run(2 * time.Second)
	lw.nw.ClearLinkLatency("10.0.0.2", "10.0.0.1")
	if got.calls != 1 || got.err != nil || !got.ref.IsRemote() {
		t.Fatalf("done ran %d times with %v, %v; want once with the ref", got.calls, got.ref, got.err)
	}
	if lw.live != 1 {
		t.Fatalf("%d live on B, want 1: the dead owner's actor runs on", lw.live)
	}
}

// A linked spawn names its owner as the new actor's parent, and links the
// two both ways: the actor's end reaches the owner as an exit signal, the
// owner's end stops the actor (not a normal end: as Erlang's links, a
// nil reason stops nothing).
func TestSpawnLinkBothWays(t *testing.T) {
	lw := newLinkWorld(t, 13)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, got.done)
	lw.run(time.Second)
	if got.calls != 1 || got.err != nil || lw.live != 2 {
		t.Fatalf("done ran %d times with %v; %d live, want 2", got.calls, got.err, lw.live)
	}
	if len(lw.parents) != 2 || !lw.parents[0].IsZero() {
		t.Fatalf("parents %v: want none for the unlinked spawn, then the owner", lw.parents)
	}
	name, addr, id, ok := a.ExportRef(lw.owner)
	if !ok {
		t.Fatal("cannot export the owner")
	}
	if want, err := b.ImportRef(name, addr, id); err != nil || lw.parents[1] != want {
		t.Fatalf("parent %v, want the owner %v (%v)", lw.parents[1], want, err)
	}
	// The actor's end reaches the owner.
	name, addr, id, _ = a.ExportRef(got.ref)
	local, err := b.ImportRef(name, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := lw.sys[1].Stop(ctxT(t), local); err != nil {
		t.Fatal(err)
	}
	lw.run(time.Second)
	if len(lw.exits) != 1 || lw.exits[0].From != got.ref || lw.exits[0].Reason != nil || lw.live != 1 {
		t.Fatalf("owner's exits %+v (%d live), want the stopped actor's", lw.exits, lw.live)
	}
	// The owner's end stops a second one.
	var second spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, second.done)
	lw.run(time.Second)
	if second.err != nil || lw.live != 2 {
		t.Fatalf("second spawn: %v; %d live, want 2", second.err, lw.live)
	}
	lw.sys[0].Send(lw.owner, "fail")
	lw.run(time.Second)
	if lw.live != 1 {
		t.Fatalf("%d live on B after the owner failed, want 1", lw.live)
	}
}

// The connection the request came on is lost before the actor is made:
// none is, and the spawn fails.
func TestSpawnLinkConnectionLostFirst(t *testing.T) {
	lw := newLinkWorld(t, 14)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	made := 0
	b.RegisterKind("lossy", func(any) (actor.Factory, error) {
		// Runs where the request is read, before the actor is made:
		// B loses its connection to A (and, with it, A's to B).
		p := b.peerFor(a.Addr(), "")
		p.mu.Lock()
		epoch := p.link.epoch
		p.mu.Unlock()
		p.lost(epoch, errors.New("test: connection reset"))
		return func() actor.Actor { made++; return counted{live: &lw.live} }, nil
	})
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "lossy", nil, 10*time.Second, got.done)
	lw.run(3 * time.Second)
	if got.calls != 1 || got.err == nil {
		t.Fatalf("done ran %d times with %v, %v; want once with an error", got.calls, got.ref, got.err)
	}
	if made != 0 || lw.live != 1 {
		t.Fatalf("%d made, %d live; want none made, 1 live (the first)", made, lw.live)
	}
}

// An owner that is not an actor of the spawning node is refused at once.
func TestSpawnLinkOwnerNotLocal(t *testing.T) {
	lw := newLinkWorld(t, 15)
	defer lw.close()
	var got spawned
	lw.nodes[1].SpawnLinkAsync(lw.owner, lw.nodes[0].Addr(), "counted", nil, time.Second, got.done)
	if got.calls != 1 || !errors.Is(got.err, actor.ErrInvalidRef) {
		t.Fatalf("done ran %d times with %v; want once, at once, with ErrInvalidRef", got.calls, got.err)
	}
}

// quitter ends right after its Start, with errQuit.
type quitter struct{}

var errQuit = errors.New("test: quit at once")

func (quitter) Start(c *actor.Context) error { return c.Send(c.Self(), "quit") }
func (quitter) Receive(c *actor.Context, m any) (any, error) {
	if m == "quit" {
		return nil, c.Stop(c.Self(), errQuit)
	}
	return nil, nil
}

// exitsTo is an owner that traps exits and hands them to a channel.
type exitsTo chan actor.Exited

func (exitsTo) Start(c *actor.Context) error { c.TrapExits(true); return nil }
func (ch exitsTo) Receive(c *actor.Context, msg any) (any, error) {
	if m, ok := msg.(actor.Exited); ok {
		ch <- m
	}
	return nil, nil
}

// On real sockets an actor that ends right after its Start could send its
// exit signal before its node answered the spawn (the owner, without its
// half yet, would ignore it): the answer goes first, so the owner learns
// of every such end, with its reason.
func TestSpawnLinkEndReachesOwnerWithItsReason(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	b.node.RegisterKind("quitter", func(any) (actor.Factory, error) {
		return func() actor.Actor { return quitter{} }, nil
	})
	ch := make(exitsTo, 100)
	owner, err := a.sys.Spawn(ctxT(t), func() actor.Actor { return ch })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		done := make(chan spawned, 1)
		a.node.SpawnLinkAsync(owner, b.node.Addr(), "quitter", nil, 5*time.Second, func(r actor.Ref, err error) { done <- spawned{ref: r, err: err} })
		got := <-done
		if got.err != nil {
			t.Fatalf("spawn %d: %v", i, got.err)
		}
		select {
		case e := <-ch:
			if e.From != got.ref || !strings.Contains(fmt.Sprint(e.Reason), errQuit.Error()) {
				t.Fatalf("spawn %d: exit %+v, want %v's with %q", i, e, got.ref, errQuit)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("spawn %d: the actor's end never reached its owner", i)
		}
	}
}

// The answer of a linked spawn goes even when the other node's queue to
// the owner's node is full (a refused answer would leave the actor linked
// on its side only, the owner never learning of it).
func TestSpawnLinkAnswerPastFullQueue(t *testing.T) {
	lw := newLinkWorld(t, 21)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	name, addr, id, _ := a.ExportRef(lw.owner)
	ownerOnB, err := b.ImportRef(name, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	lw.nw.SetLinkLatency("10.0.0.2", "10.0.0.1", 500*time.Millisecond, 500*time.Millisecond)
	big := make([]byte, 60<<10)
	for i := 0; ; i++ {
		if err := lw.sys[1].Send(ownerOnB, big); err != nil {
			if !errors.Is(err, actor.ErrQueueFull) || i == 0 {
				t.Fatalf("send %d: %v", i, err)
			}
			break
		}
	}
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 5*time.Second, got.done)
	lw.run(3 * time.Second)
	lw.nw.ClearLinkLatency("10.0.0.2", "10.0.0.1")
	if got.calls != 1 || got.err != nil || lw.live != 2 {
		t.Fatalf("done ran %d times with %v, %v; %d live on B: want the ref, 2 live", got.calls, got.ref, got.err, lw.live)
	}
	lw.sys[0].Send(lw.owner, "fail")
	lw.run(3 * time.Second)
	if lw.live != 1 {
		t.Fatalf("%d live on B after the owner failed, want 1", lw.live)
	}
}

// linksOf is the peer's estimate of the live links with its node.
func linksOf(p *peer) int64 { p.mu.Lock(); defer p.mu.Unlock(); return p.links }

// linker links to a remote actor at Start.
type linker struct{ to actor.Ref }

func (l linker) Start(c *actor.Context) error           { c.TrapExits(true); return c.Link(l.to) }
func (linker) Receive(*actor.Context, any) (any, error) { return nil, nil }

// The connection manager's estimate of live links counts a linked spawn
// once on each node, and nothing once it ended, failed to start or found
// its owner dead.
func TestSpawnLinkCountsLinks(t *testing.T) {
	lw := newLinkWorld(t, 22)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	b.RegisterKind("failing", func(any) (actor.Factory, error) { return func() actor.Actor { return failStart{} }, nil })
	pa, pb := a.peerFor(b.Addr(), ""), b.peerFor(a.Addr(), "")
	want := func(step string, na, nb int64) {
		t.Helper()
		if linksOf(pa) != na || linksOf(pb) != nb {
			t.Fatalf("%s: A counts %d links, B %d; want %d, %d", step, linksOf(pa), linksOf(pb), na, nb)
		}
	}
	want("before", 0, 0)
	// A plain link, kept throughout.
	var other spawned
	a.SpawnAsync(b.Addr(), "counted", nil, time.Second, other.done)
	lw.run(time.Second)
	if _, err := lw.sys[0].Spawn(ctxT(t), func() actor.Actor { return linker{other.ref} }); err != nil {
		t.Fatal(err)
	}
	lw.run(time.Second)
	want("a plain link", 1, 1)
	for i := range 3 {
		var got spawned
		a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, time.Second, got.done)
		lw.run(time.Second)
		if got.err != nil {
			t.Fatal(got.err)
		}
		want(fmt.Sprintf("linked spawn %d", i), 2, 2)
		name, addr, id, _ := a.ExportRef(got.ref)
		local, err := b.ImportRef(name, addr, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := lw.sys[1].Stop(ctxT(t), local); err != nil {
			t.Fatal(err)
		}
		lw.run(time.Second)
		want(fmt.Sprintf("linked spawn %d ended", i), 1, 1)
	}
	for range 3 {
		var got spawned
		a.SpawnLinkAsync(lw.owner, b.Addr(), "failing", nil, time.Second, got.done)
		lw.run(time.Second)
		if got.err == nil {
			t.Fatal("a failing Start started")
		}
	}
	want("failed starts", 1, 1)
	lw.nw.SetLinkLatency("10.0.0.2", "10.0.0.1", 500*time.Millisecond, 500*time.Millisecond)
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, got.done)
	lw.run(100 * time.Millisecond)
	lw.sys[0].Send(lw.owner, "die")
	lw.run(2 * time.Second)
	lw.nw.ClearLinkLatency("10.0.0.2", "10.0.0.1")
	lw.run(time.Second)
	want("a spawn whose owner died", 1, 1)
}

// A spawn's answer that names an actor of another node, or a local one,
// links nothing: it is a malformed answer.
func TestSpawnLinkAnswerNamesAnotherNode(t *testing.T) {
	w := newMemWorld(t, 23, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	defer w.close()
	a := w.nodes[0]
	owner := w.spawnOn(0, 0, func(*actor.Context, any) (any, error) { return nil, nil })
	ownerID, _ := a.wire.LocalID(owner)
	pb := a.peerFor(w.nodes[1].Addr(), "")
	for _, r := range []actor.Ref{w.spawnOn(2, 0, echo), owner} {
		var got spawned
		a.linkSpawned(pb, owner, ownerID, r, got.done)
		if got.calls != 1 || !errors.Is(got.err, ErrBadFrame) {
			t.Fatalf("answer naming %v: done ran %d times with %v; want ErrBadFrame", r, got.calls, got.err)
		}
	}
}

// The answer waits for a dial back that fails (the owner's node reaching
// this one all along): the owner's spawn times out, the answer is lost,
// and the actor, linked on this side only, would run on while the owner's
// connection stays up. Its spawn is never confirmed, so it stops when its
// time to be confirmed is up.
func TestSpawnLinkUnconfirmedStops(t *testing.T) {
	lw := newLinkWorld(t, 24)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	lw.nw.Cut("10.0.0.1", "10.0.0.2") // no connection either way
	lw.run(time.Second)               // past the peers' time known down
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 2*time.Second, got.done)
	for i := 0; lw.live < 2; i++ {
		if i > 1000 {
			t.Fatalf("the spawn never reached B: %+v", got)
		}
		lw.run(time.Millisecond)
	}
	// B now dials A back to answer: that dial fails, while A's connection
	// to B outlives the partition (under the heartbeat timeout).
	lw.nw.Partition("10.0.0.1", "10.0.0.2")
	lw.run(800 * time.Millisecond)
	lw.nw.Heal("10.0.0.1", "10.0.0.2")
	lw.run(3 * time.Second)
	if got.calls != 1 || got.err == nil {
		t.Fatalf("done ran %d times with %v, %v; want once with an error", got.calls, got.ref, got.err)
	}
	if lw.live != 2 {
		t.Fatalf("%d live on B before the confirmation's time is up, want 2 (the scenario did not happen)", lw.live)
	}
	lw.run(b.spawnConfirmWithin())
	if lw.live != 1 {
		t.Fatalf("%d live on B after the confirmation's time, want 1: the unconfirmed actor runs on", lw.live)
	}
	if n := b.Stats().SpawnsUnconfirmed; n != 1 {
		t.Fatalf("SpawnsUnconfirmed = %d, want 1", n)
	}
}

// The request's connection is lost right after the answer was read, before
// the owner's loop made its half: the owner must not end up linked to an
// actor that the loss took down, with no exit signal to come.
func TestSpawnLinkLossBeforeOwnersHalf(t *testing.T) {
	lw := newLinkWorld(t, 31)
	defer lw.close()
	a, b := lw.nodes[0], lw.nodes[1]
	pa := a.peerFor(b.Addr(), "")
	testCallRecorded = func(p *peer) {
		if p != pa {
			return
		}
		p.mu.Lock()
		corr := p.nextCall
		w := p.calls[corr]
		answered := w.fn
		w.fn = func(v any, err error) {
			answered(v, err) // queues the owner's half on its loop
			p.mu.Lock()
			e := p.link.epoch
			p.mu.Unlock()
			p.lost(e, errors.New("test: connection reset"))
		}
		p.calls[corr] = w
		p.mu.Unlock()
	}
	var got spawned
	a.SpawnLinkAsync(lw.owner, b.Addr(), "counted", nil, 10*time.Second, got.done)
	testCallRecorded = nil
	lw.run(5 * time.Second)
	if got.calls != 1 {
		t.Fatalf("done ran %d times", got.calls)
	}
	if got.err == nil && len(lw.exits) == 0 {
		t.Fatalf("the owner is linked to %v, which the loss took down (%d live on B), and no exit signal came", got.ref, lw.live)
	}
	if lw.live != 1 {
		t.Fatalf("%d live on B, want 1", lw.live)
	}
}
