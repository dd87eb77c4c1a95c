package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/supervisor"
)

// tallyStarts counts the starts of the test kind "counter", by child
// name (its Args' "name").
type tallyStarts struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *tallyStarts) get(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

type heldArgs struct {
	Name string `msgpack:"name"`
}

// startCounter answers each message with how many it has answered: its state,
// which a restart would lose.
type startCounter struct {
	starts *tallyStarts
	name   string
	n      int64
}

func (k *startCounter) Start(*actor.Context) error {
	k.starts.mu.Lock()
	k.starts.n[k.name]++
	k.starts.mu.Unlock()
	return nil
}

func (k *startCounter) Receive(*actor.Context, any) (any, error) {
	k.n++
	return k.n, nil
}

func tallyKinds(s *tallyStarts) Kinds {
	return Kinds{"counter": Kind(func(a heldArgs) (actor.Factory, error) {
		return func() actor.Actor { return &startCounter{starts: s, name: a.Name} }, nil
	})}
}

// rootOf returns the ref of app's root on d, zero if none runs there.
func rootOf(d *Daemon, app string) actor.Ref {
	d.apps.mu.Lock()
	defer d.apps.mu.Unlock()
	if l := d.apps.live[app]; l != nil {
		return l.root
	}
	return actor.Ref{}
}

// childrenOf asks a root for its children.
func childrenOf(d *Daemon, root actor.Ref) []supervisor.ChildInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := d.sys.Ask(ctx, root, supervisor.WhichChildren{})
	if err != nil {
		return nil
	}
	ch, _ := v.([]supervisor.ChildInfo)
	return ch
}

// wireOf identifies ref across the daemons' systems.
func wireOf(d *Daemon, ref actor.Ref) string {
	node, _, w, ok := d.node.ExportRef(ref)
	if !ok {
		return ""
	}
	return fmt.Sprint(node, w.Loop, w.Slot, w.Gen)
}

// TestHandOverRootKeepsChildren: three daemons; shop's root runs on a,
// its children w1 on b and w2 on c. A client asks w1 without pause while
// a hands the root over (handOverRoots): the root moves to b at once (no
// lease wait), w1 is adopted by the new root (same instance, never
// restarted: its counter runs on without a gap, no ask fails), and w2,
// killed while it was held, is started afresh by the new root.
func TestHandOverRootKeepsChildren(t *testing.T) {
	starts := &tallyStarts{n: map[string]int{}}
	mk := func(name string, seeds ...string) Config {
		c := testConfig(t, name, seeds...)
		c.Kinds = tallyKinds(starts)
		c.Apps = fastApps("a", "b", "c")
		return c
	}
	a := start(t, mk("a"))
	seed := a.Info().GossipAddr
	b := start(t, mk("b", seed))
	c := start(t, mk("c", seed))
	all := []*Daemon{a, b, c}
	for _, d := range all {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	child := func(name, node string) AppChild {
		return AppChild{Name: name, Kind: "counter", Node: node, Args: map[string]any{"name": name}, Shutdown: "1s"}
	}
	spec := AppSpec{Name: "shop", Prefer: []string{"a", "b"}, Takeover: true, Intensity: 10, Period: gateway.Duration(time.Second),
		Children: []AppChild{child("w1", "b"), child("w2", "c")}}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, c, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	var w1, w2 actor.Ref
	eventually(t, 20*time.Second, "shop runs on a with w1 and w2", func() bool {
		root := rootOf(a, "shop")
		if root.IsZero() {
			return false
		}
		ch := childrenOf(a, root)
		if len(ch) != 2 || !ch[0].Running || !ch[1].Running {
			return false
		}
		w1, w2 = ch[0].Ref, ch[1].Ref
		return true
	})
	w1Wire, w2Wire := wireOf(a, w1), wireOf(a, w2)

	// w2 ends while held: the new root must start it afresh.
	handoverHeldHook = func(held []handoverChild) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.sys.Kill(ctx, w2); err != nil {
			t.Errorf("kill w2: %v", err)
		}
	}
	t.Cleanup(func() { handoverHeldHook = nil })

	// The client: asks w1 without pause, from a.
	var (
		stop     atomic.Bool
		asks     atomic.Int64
		failures []error
		gaps     []string
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last int64
		for !stop.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, err := a.sys.Ask(ctx, w1, "inc")
			cancel()
			if err != nil {
				failures = append(failures, err)
				continue
			}
			n, _ := v.(int64)
			if n != last+1 {
				gaps = append(gaps, fmt.Sprintf("%d after %d", n, last))
			}
			last = n
			asks.Add(1)
		}
	}()
	eventually(t, 10*time.Second, "the client's first asks", func() bool { return asks.Load() > 10 })

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	hs, err := a.handOverRoots(ctx)
	cancel()
	// b, preferred, unless a's view of the membership had lost it then.
	to := map[string]*Daemon{"b": b, "c": c}[hs[0].To]
	if err != nil || len(hs) != 1 || hs[0].App != "shop" || to == nil {
		t.Fatalf("handOverRoots: %+v, %v", hs, err)
	}
	released := time.Since(began)
	duringBefore := asks.Load()
	var root actor.Ref
	eventually(t, 20*time.Second, "shop runs on "+hs[0].To+" with w1 adopted and w2 started afresh", func() bool {
		root = rootOf(to, "shop")
		if root.IsZero() {
			return false
		}
		ch := childrenOf(to, root)
		return len(ch) == 2 && ch[0].Running && ch[1].Running && wireOf(to, ch[0].Ref) == w1Wire && wireOf(to, ch[1].Ref) != w2Wire
	})
	adopted := time.Since(began)
	// More asks after the adoption, then stop the client.
	after := asks.Load()
	eventually(t, 10*time.Second, "asks after the adoption", func() bool { return asks.Load() > after+10 })
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 || len(gaps) > 0 {
		t.Fatalf("the client's asks of w1: %d failed (%v), gaps %v", len(failures), failures, gaps)
	}
	if n := starts.get("w1"); n != 1 {
		t.Fatalf("w1 started %d times, want 1 (adopted, not restarted)", n)
	}
	if n := starts.get("w2"); n != 2 {
		t.Fatalf("w2 started %d times, want 2 (it died while held: started afresh)", n)
	}
	if !rootOf(a, "shop").IsZero() {
		t.Fatal("a still runs a root of shop")
	}
	// The new root supervises w1: its crash... its end is restarted.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.sys.Kill(ctx, w1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "w1 restarted by the new root", func() bool { return starts.get("w1") == 2 })
	// A clean release (the old root's stop was acknowledged): the new
	// holder did not wait for the old lease (internal/appreg's tests time
	// that; here the machine's load would).
	st, err := to.apps.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range st.Apps {
		if app.Name == "shop" && (app.CleanGen != app.Gen || app.Gen != hs[0].Gen+1 || app.ReleasedBy != "a") {
			t.Errorf("the registry's record after the handover: node %s, generation %d, clean %d, released by %q",
				app.Node, app.Gen, app.CleanGen, app.ReleasedBy)
		}
	}
	t.Logf("released in %v, adopted after %v; %d asks in all, %d by the release", released, adopted, asks.Load(), duringBefore)
}

// TestHeldChildStopsAfterTheBound: a child its root let go of (holdTie)
// survives the root's end, and, adopted by nobody, is killed by its
// daemon once the hold runs out; one adopted in time is not, and ends
// with its new owner.
func TestHeldChildStopsAfterTheBound(t *testing.T) {
	defer func(d time.Duration) { handoverHold = d }(handoverHold)
	handoverHold = 300 * time.Millisecond
	d := start(t, testConfig(t, "a"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spawn := func() actor.Ref {
		r, err := d.sys.Spawn(ctx, func() actor.Actor { return idleActor{} })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gw := d.gw.ref
	owner, lone, kept, newOwner, holder := spawn(), spawn(), spawn(), spawn(), spawn()
	for _, k := range []actor.Ref{lone, kept} {
		if _, err := d.sys.Ask(ctx, gw, tieLocal{Owner: owner, Kid: k}); err != nil {
			t.Fatal(err)
		}
	}
	// Only from the owner's node; only a tied kid.
	if _, err := d.sys.Ask(ctx, gw, handoverLocal{holdTie{Kid: newOwner, Owner: owner, Holder: holder}}); !errors.Is(err, errNotTied) {
		t.Fatalf("hold of an actor not tied: %v", err)
	}
	if _, err := d.sys.Ask(ctx, gw, handoverLocal{adoptTie{Kid: kept, Owner: newOwner}}); !errors.Is(err, errNotHeld) {
		t.Fatalf("adopt of an actor not held: %v", err)
	}
	held := time.Now()
	for _, k := range []actor.Ref{lone, kept} {
		if _, err := d.sys.Ask(ctx, gw, handoverLocal{holdTie{Kid: k, Owner: owner, Holder: holder}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.sys.Kill(ctx, owner); err != nil {
		t.Fatal(err)
	}
	// Not unless local, or from the owner's daemon.
	if _, err := d.sys.Ask(ctx, gw, adoptTie{Kid: kept, Owner: newOwner}); !errors.Is(err, errNotOwnersNode) {
		t.Fatalf("adopt without proof of the owner's daemon: %v", err)
	}
	if _, err := d.sys.Ask(ctx, gw, handoverLocal{adoptTie{Kid: kept, Owner: newOwner}}); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if !isAlive(d, lone) || !isAlive(d, kept) {
		t.Fatal("a held child ended with the owner that let go of it")
	}
	eventually(t, 10*time.Second, "the child nobody adopted is killed", func() bool { return !isAlive(d, lone) })
	if took := time.Since(held); took < handoverHold {
		t.Fatalf("killed after %v, before the hold of %v ran out", took, handoverHold)
	}
	if !isAlive(d, kept) {
		t.Fatal("the adopted child was killed at the end of its hold")
	}
	if err := d.sys.Kill(ctx, newOwner); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the adopted child ends with its new owner", func() bool { return !isAlive(d, kept) })
	eventually(t, 10*time.Second, "nothing left tied or held", func() bool {
		var kids, owners, held int
		done := make(chan struct{})
		_ = d.sys.Inspect(ctx, gw, func(*actor.Context, actor.Actor) {
			kids, owners = d.gw.ties.tiedCount()
			held = len(d.gw.ties.held)
			close(done)
		})
		<-done
		return kids == 0 && owners == 0 && held == 0
	})
}

type idleActor struct{}

func (idleActor) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

// isAlive reports whether ref, an actor of d, is alive.
func isAlive(d *Daemon, ref actor.Ref) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.sys.Inspect(ctx, ref, func(*actor.Context, actor.Actor) {}) == nil
}

// A release carries as many children as fit in appreg.MaxHandoverSize;
// what a handover decodes is bounded.
func TestHandoverRecordsBounded(t *testing.T) {
	var recs []handoverChild
	for i := range 200 {
		recs = append(recs, handoverChild{ID: fmt.Sprintf("child-%03d", i), Kind: "counter", Node: "node-b", Addr: "127.0.0.1:40000"})
	}
	b, kept := encodeHandover(recs)
	if len(b) > appreg.MaxHandoverSize || len(kept) == 0 || len(kept) >= len(recs) || kept[0].ID != "child-000" {
		t.Fatalf("encoded %d bytes, %d of %d children", len(b), len(kept), len(recs))
	}
	got, err := decodeHandover(b)
	if err != nil || len(got) != len(kept) {
		t.Fatalf("decode: %d children, %v", len(got), err)
	}
	if _, err := decodeHandover(make([]byte, appreg.MaxHandoverSize+1)); err == nil {
		t.Fatal("an oversized handover decoded")
	}
	many := []byte("[" + strings.Repeat("{},", maxHandoverChildren) + "{}]")
	if _, err := decodeHandover(many); err == nil {
		t.Fatalf("%d children decoded", maxHandoverChildren+1)
	}
}

// Held actors count against the ties' bound, tied to their holder: a new
// owner's tie past the bound is refused while they are held, and so is an
// adoption by a new owner past it, which kills the held actor (its new
// owner starts it afresh); an adoption by an owner already watched is
// within the bound.
func TestTiesHeldCountAgainstTheBound(t *testing.T) {
	r := newTiesRig(t)
	r.tt.max = 5
	owner, holder, kidA, kidB := r.idle(), r.idle(), r.idle(), r.idle()
	for _, k := range []actor.Ref{kidA, kidB} {
		if err, _ := r.do(func(c *actor.Context) any { return r.tt.tieNow(c, tieLocal{Owner: owner, Kid: k}) }).(error); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []actor.Ref{kidA, kidB} {
		if err, _ := r.do(func(c *actor.Context) any { return r.tt.hold(c, owner, holder, k, "", time.Hour) }).(error); err != nil {
			t.Fatal(err)
		}
	}
	// Owner forgotten (nothing tied to it), holder and its two: 3 of 5.
	other, kid2 := r.idle(), r.idle()
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.tieNow(c, tieLocal{Owner: other, Kid: kid2}) }).(error); err != nil {
		t.Fatalf("a tie within the bound: %v", err)
	}
	// 5 of 5: the next owner is refused, and so is an adoption by it.
	third, kid3 := r.idle(), r.idle()
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.tieNow(c, tieLocal{Owner: third, Kid: kid3}) }).(error); !errors.Is(err, errTooManyTied) {
		t.Fatalf("a tie past the bound: %v", err)
	}
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.adopt(c, third, kidA, "") }).(error); !errors.Is(err, errTooManyTied) {
		t.Fatalf("an adoption past the bound: %v", err)
	}
	eventually(t, 10*time.Second, "the held actor whose adoption was refused is killed", func() bool { return !r.alive(kidA) })
	// By an owner already watched, it is within the bound.
	if err, _ := r.do(func(c *actor.Context) any { return r.tt.adopt(c, other, kidB, "") }).(error); err != nil {
		t.Fatalf("adoption by a watched owner: %v", err)
	}
	if !r.alive(kidB) || len(r.tt.held) != 0 || r.tt.ownerOf[kidB] != other {
		t.Fatal("the adopted actor is not tied to its new owner")
	}
	if _, watched := r.tt.owners[holder]; watched {
		t.Fatal("the holder is still watched with nothing held")
	}
}
