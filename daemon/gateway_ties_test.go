package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// tiedCounts reads the gateway's ties on its loop.
func tiedCounts(t *testing.T, d *Daemon) (kids, owners int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.sys.Inspect(ctx, d.gw.ref, func(*actor.Context, actor.Actor) { kids, owners = d.gw.ties.tiedCount() }); err != nil {
		t.Fatal(err)
	}
	return kids, owners
}

// TestGatewayTiesSpawnsToTheirOwner: an actor spawned through a gateway
// for an owner ends when the owner ends, when the owner's node is lost,
// and is not left running when the owner had ended before it started;
// one that ends first is forgotten, and the ties are bounded.
func TestGatewayTiesSpawnsToTheirOwner(t *testing.T) {
	d := start(t, testConfig(t, "d"))
	d.Gateway().RegisterKind("echo", func(any) (actor.Factory, error) {
		return func() actor.Actor { return fnActor(func(_ *actor.Context, m any) (any, error) { return m, nil }) }, nil
	})
	client := func(name string) (*remote.Node, actor.Ref) {
		n := testNode(t, name, nil)
		if err := RegisterGatewayTypes(n); err != nil {
			t.Fatal(err)
		}
		startNode(t, n)
		gw, err := d.Gateway().Capability().Ref(n)
		if err != nil {
			t.Fatal(err)
		}
		return n, gw
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owned := func(n *remote.Node, gw, owner actor.Ref) (actor.Ref, error) {
		t.Helper()
		v, err := n.System().Ask(ctx, gw, SpawnKind{Kind: "echo", Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		res := v.(SpawnResult)
		return res.Ref, res.Err()
	}
	alive := func(n *remote.Node, r actor.Ref) bool {
		_, err := n.System().Ask(ctx, r, "hi")
		return err == nil
	}
	idle := func(n *remote.Node) actor.Ref {
		r, err := n.System().Spawn(ctx, func() actor.Actor { return fnActor(func(*actor.Context, any) (any, error) { return nil, nil }) })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// The owner ends: its actors are killed, the ties forgotten.
	n1, gw1 := client("c1")
	owner := idle(n1)
	k1, err := owned(n1, gw1, owner)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := owned(n1, gw1, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !alive(n1, k1) || !alive(n1, k2) {
		t.Fatal("the owned actors do not answer")
	}
	if kids, owners := tiedCounts(t, d); kids != 2 || owners != 1 {
		t.Fatalf("%d tied, %d owners; want 2 and 1", kids, owners)
	}
	if err := n1.System().Stop(ctx, owner); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the owner's actors killed", func() bool { return !alive(n1, k1) && !alive(n1, k2) })
	eventually(t, 20*time.Second, "the ties forgotten", func() bool { k, o := tiedCounts(t, d); return k == 0 && o == 0 })

	// An actor that ends first is forgotten; its owner is not watched any
	// longer.
	owner = idle(n1)
	k3, err := owned(n1, gw1, owner)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.System().Stop(ctx, k3); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the tie of the ended actor forgotten", func() bool { k, o := tiedCounts(t, d); return k == 0 && o == 0 })

	// An owner that had ended: nothing is left running, the spawn fails.
	gone := idle(n1)
	if err := n1.System().Stop(ctx, gone); err != nil {
		t.Fatal(err)
	}
	// The Down of the owner may come before the actor is made (the spawn
	// fails) or after (the actor is killed then).
	if r, err := owned(n1, gw1, gone); err == nil {
		eventually(t, 20*time.Second, "the actor of an ended owner killed", func() bool { return !alive(n1, r) })
	}
	eventually(t, 20*time.Second, "no ties left", func() bool { k, o := tiedCounts(t, d); return k == 0 && o == 0 })

	// The owner's node is lost: its actors are killed.
	n2 := testNode(t, "c2", nil)
	if err := RegisterGatewayTypes(n2); err != nil {
		t.Fatal(err)
	}
	stop2, err := n2.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gw2, err := d.Gateway().Capability().Ref(n2)
	if err != nil {
		t.Fatal(err)
	}
	k4, err := owned(n2, gw2, idle(n2))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(n2, k4) {
		t.Fatal("the owned actor does not answer")
	}
	node, addr, id, ok := n2.ExportRef(k4)
	if !ok {
		t.Fatal("the owned actor's ref does not export")
	}
	ref4, err := d.Node().ImportRef(node, addr, id)
	if err != nil || ref4.IsRemote() {
		t.Fatalf("the owned actor on d: %v, %v", ref4, err)
	}
	stop2()
	eventually(t, 20*time.Second, "the actor of a lost node's owner killed", func() bool {
		ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
		defer icancel()
		err := d.sys.Inspect(ictx, ref4, func(*actor.Context, actor.Actor) {})
		return errors.Is(err, actor.ErrDead)
	})

	// The bound.
	if err := d.sys.Inspect(ctx, d.gw.ref, func(*actor.Context, actor.Actor) { d.gw.ties.max = 2 }); err != nil {
		t.Fatal(err)
	}
	if _, err := owned(n1, gw1, idle(n1)); err != nil {
		t.Fatal(err)
	}
	if r, err := owned(n1, gw1, idle(n1)); err == nil {
		t.Fatalf("a tie past the bound made %v", r)
	}
}

// tiesRig runs a ties record inside an actor of its own system, for the
// bookkeeping's cases one by one.
type tiesRig struct {
	t   *testing.T
	sys *actor.System
	drv actor.Ref
	tt  ties
}

type tiesStep func(c *actor.Context) any

func newTiesRig(t *testing.T) *tiesRig {
	r := &tiesRig{t: t, sys: actor.NewSystem(actor.Config{Loops: 1})}
	t.Cleanup(func() { _ = r.sys.Shutdown(context.Background()) })
	var err error
	r.drv, err = r.sys.Spawn(context.Background(), func() actor.Actor {
		return fnActor(func(c *actor.Context, m any) (any, error) {
			switch m := m.(type) {
			case tiesStep:
				return m(c), nil
			case actor.Down:
				r.tt.down(c, m)
			}
			return nil, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *tiesRig) do(f tiesStep) any {
	r.t.Helper()
	v, err := r.sys.Ask(context.Background(), r.drv, f)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *tiesRig) idle() actor.Ref {
	r.t.Helper()
	ref, err := r.sys.Spawn(context.Background(), func() actor.Actor {
		return fnActor(func(*actor.Context, any) (any, error) { return nil, nil })
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

func (r *tiesRig) alive(ref actor.Ref) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return !errors.Is(r.sys.Inspect(ctx, ref, func(*actor.Context, actor.Actor) {}), actor.ErrDead)
}

// TestTiesSpawnKeepsItsEntry: a spawn under way when its owner's Down
// removed the owner's entry is not booked against the entry a later spawn
// for the same owner made (the owner's node was lost, then reached again):
// the old spawn's actor is killed (its answer went nowhere), and an old
// spawn that fails does not use up the new one's count.
func TestTiesSpawnKeepsItsEntry(t *testing.T) {
	r := newTiesRig(t)
	owner, kid1, kid2 := r.idle(), r.idle(), r.idle()
	lost := actor.Down{Ref: owner, Reason: errors.New("node lost")}
	old := r.do(func(c *actor.Context) any { o, _ := r.tt.expect(c, owner); return o }).(*owned)
	r.do(func(c *actor.Context) any { r.tt.down(c, lost); return nil })
	cur := r.do(func(c *actor.Context) any { o, _ := r.tt.expect(c, owner); return o }).(*owned)
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.tie(c, owner, old, kid1) }).(error); err == nil {
		t.Fatal("the old spawn's actor was tied to the owner's new entry")
	}
	eventually(t, 10*time.Second, "the old spawn's actor killed", func() bool { return !r.alive(kid1) })
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.tie(c, owner, cur, kid2) }).(error); err != nil {
		t.Fatalf("the new spawn: %v", err)
	}

	// An old spawn that fails after the owner's entry was made again.
	owner2, kid3 := r.idle(), r.idle()
	old = r.do(func(c *actor.Context) any { o, _ := r.tt.expect(c, owner2); return o }).(*owned)
	r.do(func(c *actor.Context) any { r.tt.down(c, actor.Down{Ref: owner2}); return nil })
	cur = r.do(func(c *actor.Context) any { o, _ := r.tt.expect(c, owner2); return o }).(*owned)
	r.do(func(c *actor.Context) any { r.tt.abandon(c, owner2, old); return nil })
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.tie(c, owner2, cur, kid3) }).(error); err != nil {
		t.Fatalf("the new spawn after an old one failed: %v", err)
	}
	if !r.alive(kid3) {
		t.Fatal("the new spawn's actor was killed")
	}
}

// TestTiesOwnerThatIsTied: an actor tied to one owner that owns actors
// itself: when it ends, its own actors are killed and its tie to its owner
// is forgotten; when its owner ends, it is killed and its actors after it.
func TestTiesOwnerThatIsTied(t *testing.T) {
	r := newTiesRig(t)
	root, mid, leaf := r.idle(), r.idle(), r.idle()
	tie := func(owner, kid actor.Ref) {
		t.Helper()
		if err, _ := r.do(func(c *actor.Context) any {
			o, err := r.tt.expect(c, owner)
			if err != nil {
				return err
			}
			return r.tt.tie(c, owner, o, kid)
		}).(error); err != nil {
			t.Fatal(err)
		}
	}
	counts := func() (k, o int) {
		r.do(func(*actor.Context) any { k, o = r.tt.tiedCount(); return nil })
		return k, o
	}
	tie(root, mid)
	tie(mid, leaf)
	if err := r.sys.Stop(context.Background(), mid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "mid's actor killed, mid's ties forgotten", func() bool {
		k, o := counts()
		return !r.alive(leaf) && k == 0 && o == 0
	})

	mid, leaf = r.idle(), r.idle()
	tie(root, mid)
	tie(mid, leaf)
	if err := r.sys.Stop(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "root's actor killed, and its actor's after it", func() bool {
		k, o := counts()
		return !r.alive(mid) && !r.alive(leaf) && k == 0 && o == 0
	})
}
