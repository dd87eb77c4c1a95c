package remote

import (
	"errors"
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
