package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// kidLog records every instance of the "kid" kind, by child name, as
// refs of the daemon it runs on.
type kidLog struct {
	mu      sync.Mutex
	refs    map[string][]actor.Ref
	onStart func(name string, n int) // if set: after each start, with the instances of name so far
}

// setOnStart sets onStart, while kids may start.
func (l *kidLog) setOnStart(f func(name string, n int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onStart = f
}

func (l *kidLog) all(name string) []actor.Ref {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.refs[name])
}

// last returns the latest instance of name, and how many there were.
func (l *kidLog) last(name string) (actor.Ref, int) {
	all := l.all(name)
	if len(all) == 0 {
		return actor.Ref{}, 0
	}
	return all[len(all)-1], len(all)
}

type loggedKid struct {
	log  *kidLog
	name string
}

func (k *loggedKid) Start(c *actor.Context) error {
	k.log.mu.Lock()
	k.log.refs[k.name] = append(k.log.refs[k.name], c.Self())
	n, f := len(k.log.refs[k.name]), k.log.onStart
	k.log.mu.Unlock()
	if f != nil {
		f(k.name, n)
	}
	return nil
}

func (k *loggedKid) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

// handoverRig runs daemons a, b and c, members of the registry, with shop
// (its root preferring a, then b, with takeover: a may not be live yet
// when it is placed) running on a, and its child w1 on b.
func handoverRig(t *testing.T) (a, b, c *Daemon, log *kidLog, spec AppSpec) {
	t.Helper()
	log = &kidLog{refs: map[string][]actor.Ref{}}
	mk := func(name string, seeds ...string) Config {
		cfg := testConfig(t, name, seeds...)
		cfg.Kinds = Kinds{"kid": Kind(func(a heldArgs) (actor.Factory, error) {
			return func() actor.Actor { return &loggedKid{log: log, name: a.Name} }, nil
		})}
		cfg.Apps = fastApps("a", "b", "c")
		return cfg
	}
	a = start(t, mk("a"))
	seed := a.Info().GossipAddr
	b = start(t, mk("b", seed))
	c = start(t, mk("c", seed))
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	spec = AppSpec{Name: "shop", Prefer: []string{"a", "b"}, Takeover: true, Intensity: 10, Period: gateway.Duration(time.Second),
		Children: []AppChild{{Name: "w1", Kind: "kid", Node: "b", Args: map[string]any{"name": "w1"}, Shutdown: "1s"}}}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, c, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 20*time.Second, "shop on a with w1", func() bool {
		root := rootOf(a, "shop")
		if root.IsZero() {
			return false
		}
		ch := childrenOf(a, root)
		return len(ch) == 1 && ch[0].Running
	})
	return a, b, c, log, spec
}

// TestHeldChildEndsWithItsHoldersDaemon: the daemon handing its root over
// dies once its children are held, before the release: a held child ends
// with it at once, as it would have with its root, not after the hold's
// minute, so the failover's fresh copy never runs beside it.
func TestHeldChildEndsWithItsHoldersDaemon(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	handoverHeldHook = func(held []handoverChild) {
		if len(held) != 1 {
			t.Errorf("held %d children, want 1", len(held))
		}
		a.Kill()
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = a.handOverRoots(ctx)
	}()
	first, n := log.last("w1")
	eventually(t, 10*time.Second, "the held w1 ends with a", func() bool { return !isAlive(b, first) })
	eventually(t, 30*time.Second, "w1 started afresh by the failover's root", func() bool { return len(log.all("w1")) > n })
}

// TestFailedHandoverDropsHeldChildren: while a's root is handed over (its
// children held), the registry moves shop elsewhere (a takeover by c):
// the handover fails, a kills its root and has its held child killed, so
// that c's fresh copy never runs beside it.
func TestFailedHandoverDropsHeldChildren(t *testing.T) {
	a, b, c, log, spec := handoverRig(t)
	first, n := log.last("w1")
	handoverHeldHook = func([]handoverChild) {
		moved := spec
		moved.Prefer, moved.Takeover = []string{"c", "a"}, true
		if r := appCall(t, b, gateway.DeployApp{Spec: moved}).(gateway.AppResult); r.Err() != nil {
			t.Errorf("redeploy: %v", r.Err())
		}
		// The holds answered only once a knows shop moved on.
		eventually(t, 20*time.Second, "a sees shop assigned to c", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, err := a.apps.status(ctx)
			if err != nil {
				return false
			}
			for _, x := range st.Apps {
				if x.Name == "shop" {
					return x.Node == "c"
				}
			}
			return false
		})
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	t.Logf("handover: %+v, %v", hs, err)
	eventually(t, 30*time.Second, "shop's root on c with w1 started afresh", func() bool {
		return !rootOf(c, "shop").IsZero() && len(log.all("w1")) > n
	})
	if isAlive(b, first) {
		t.Fatal("the held w1 runs beside the fresh one")
	}
}

// TestHandOverWaitsForTheAdoption: handOverRoots returns once the new root
// has adopted the held children, so the daemon that handed them over may
// stop at once without taking them along (held, they end with it).
func TestHandOverWaitsForTheAdoption(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if hs, err := a.handOverRoots(ctx); err != nil || len(hs) != 1 {
		t.Fatalf("handOverRoots: %+v, %v", hs, err)
	}
	a.Kill()
	eventually(t, 20*time.Second, "shop on b", func() bool { return !rootOf(b, "shop").IsZero() })
	root := rootOf(b, "shop")
	eventually(t, 20*time.Second, "b's root supervises w1", func() bool {
		ch := childrenOf(b, root)
		return len(ch) == 1 && ch[0].Running
	})
	if !isAlive(b, first) || len(log.all("w1")) != n {
		t.Fatalf("w1 did not survive a's end: alive %v, %d instances", isAlive(b, first), len(log.all("w1")))
	}
}

// TestHandOverLeavesTheChildrenOfItsDaemon: the children that run on the
// daemon handing its root over are not held: they end with the old root
// and the new root starts them afresh (not as restarts: they would die
// with the daemon, and two such deaths make a root of the default
// intensity give up); the others are adopted.
func TestHandOverLeavesTheChildrenOfItsDaemon(t *testing.T) {
	a, b, _, log, spec := handoverRig(t)
	local := spec
	local.Name = "mall"
	local.Children = []AppChild{
		{Name: "m1", Kind: "kid", Node: "a", Args: map[string]any{"name": "m1"}, Shutdown: "1s"},
		{Name: "m2", Kind: "kid", Node: "b", Args: map[string]any{"name": "m2"}, Shutdown: "1s"},
	}
	eventually(t, 20*time.Second, "mall deployed", func() bool {
		return appCall(t, b, gateway.DeployApp{Spec: local}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 20*time.Second, "mall on a with m1 and m2", func() bool {
		root := rootOf(a, "mall")
		if root.IsZero() {
			return false
		}
		ch := childrenOf(a, root)
		return len(ch) == 2 && ch[0].Running && ch[1].Running
	})
	var (
		mu        sync.Mutex
		heldNodes []string
	)
	handoverHeldHook = func(held []handoverChild) {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range held {
			heldNodes = append(heldNodes, h.Node)
		}
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	m1, n1 := log.last("m1")
	_, n2 := log.last("m2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if hs, err := a.handOverRoots(ctx); err != nil || len(hs) != 2 {
		t.Fatalf("handOverRoots: %+v, %v", hs, err)
	}
	mu.Lock()
	if slices.Contains(heldNodes, "a") {
		t.Errorf("children held on the daemon handing over: %v", heldNodes)
	}
	mu.Unlock()
	eventually(t, 10*time.Second, "m1, on a, ends with its old root", func() bool { return !isAlive(a, m1) })
	eventually(t, 20*time.Second, "mall on b with m1 afresh and m2 adopted", func() bool {
		root := rootOf(b, "mall")
		if root.IsZero() {
			return false
		}
		ch := childrenOf(b, root)
		return len(ch) == 2 && ch[0].Running && ch[1].Running && len(log.all("m1")) == n1+1 && len(log.all("m2")) == n2
	})
}

// TestHandOverNeedsEveryMemberToApplyReleases: while a registry member
// does not announce that it applies releases (a daemon of an older
// binary, in a rolling upgrade), no release is proposed: its replica
// would reject it and part from the others. The root stays, to fail over
// as before.
func TestHandOverNeedsEveryMemberToApplyReleases(t *testing.T) {
	mk := func(name string, seeds ...string) Config {
		cfg := testConfig(t, name, seeds...)
		cfg.Kinds = tallyKinds(&tallyStarts{n: map[string]int{}})
		cfg.Apps = fastApps("a", "b", "c")
		return cfg
	}
	a := start(t, mk("a"))
	seed := a.Info().GossipAddr
	b := start(t, mk("b", seed))
	old := mk("c", seed)
	old.noAppRelease = true
	c := start(t, old)
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	// Takeover: a leader that does not see a live yet places shop on b,
	// and it comes to a once a is.
	spec := AppSpec{Name: "shop", Prefer: []string{"a", "b"}, Takeover: true, Intensity: 10, Period: gateway.Duration(time.Second),
		Children: []AppChild{{Name: "w1", Kind: "counter", Node: "b", Args: map[string]any{"name": "w1"}, Shutdown: "1s"}}}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, b, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 30*time.Second, "shop on a", func() bool {
		info, ok := appOn(t, a, "shop")
		return ok && info.State == "running" && info.Node == "a" && !rootOf(a, "shop").IsZero()
	})
	root := rootOf(a, "shop")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	if !errors.Is(err, errHandoverUnsupported) || len(hs) != 1 || !errors.Is(hs[0].Err, errHandoverUnsupported) {
		t.Fatalf("handOverRoots: %+v, %v; want errHandoverUnsupported", hs, err)
	}
	if !strings.Contains(err.Error(), "c") {
		t.Fatalf("the member missing is not named: %v", err)
	}
	st, err := a.apps.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st.Apps {
		if x.Name == "shop" && (x.Node != "a" || x.HandoverGen != 0) {
			t.Fatalf("shop was released: %+v", x)
		}
	}
	if rootOf(a, "shop") != root {
		t.Fatal("the root did not stay on a")
	}
}
