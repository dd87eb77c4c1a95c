package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
)

// selfActor reports its ref when it starts.
type selfActor struct{ refs chan actor.Ref }

func (s selfActor) Start(c *actor.Context) error {
	s.refs <- c.Self()
	return nil
}

func (selfActor) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

// TestAppClusterKillsLateChildren: a child whose start returns after its
// root ended (the root stopped, was killed or crashed meanwhile) is
// killed, not left running linked to nothing; a start asked after that
// is refused.
func TestAppClusterKillsLateChildren(t *testing.T) {
	refs := make(chan actor.Ref, 4)
	var cl *appCluster
	cfg := testConfig(t, "a")
	cfg.Kinds = Kinds{"late": Kind(func(workerArgs) (actor.Factory, error) {
		cl.close() // the root ends while its child is being made
		return func() actor.Actor { return selfActor{refs: refs} }, nil
	})}
	d := start(t, cfg)
	cl = &appCluster{d: d, log: d.log}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ref, err := cl.Spawn(ctx, d.node.Addr(), "late", map[string]any{})
	if !errors.Is(err, errRootEnded) {
		t.Fatalf("a child started after its root ended: %v, %v; want errRootEnded", ref, err)
	}
	var made actor.Ref
	select {
	case made = <-refs:
	case <-ctx.Done():
		t.Fatal("the child was not made")
	}
	if _, err := d.sys.Ask(ctx, made, "alive?"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the late child %v answers (%v): it runs unlinked", made, err)
	}
	if _, err := cl.Spawn(ctx, d.node.Addr(), "late", map[string]any{}); !errors.Is(err, errRootEnded) {
		t.Fatalf("a start after the root ended: %v, want errRootEnded", err)
	}
	if len(refs) != 0 {
		t.Fatal("a start after the root ended made a child")
	}
}

// runnerHost runs an appRunner on its loop, as the driver does.
type runnerHost struct{ r *appRunner }

type hostStart struct{ g appreg.Grant }
type hostReset struct{}
type hostRoot struct{ app string }

// hostPauseAfter: the pause before app's next start were its root to end
// after running ran, with failures in a row before it.
type hostPauseAfter struct {
	app      string
	ran      time.Duration
	failures int
}

func (h *runnerHost) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case hostStart:
		h.r.Start(c, m.g)
	case hostReset:
		h.r.Reset(c)
	case hostRoot:
		if inst := h.r.insts[m.app]; inst != nil {
			return inst.ref, nil
		}
		return actor.Ref{}, nil
	case hostPauseAfter:
		inst := h.r.insts[m.app]
		inst.failures = m.failures
		return inst.backoff(c.Now().Add(m.ran)), nil
	default:
		h.r.Handle(c, msg)
	}
	return nil, nil
}

// TestAppRunnerResetKillsRoots: the runner outlives the driver's
// instances; a new instance (a restart in place after a crash, with no
// Terminate and no exit) resets it, which kills every root it holds, and
// so its children.
func TestAppRunnerResetKillsRoots(t *testing.T) {
	in := newInstances()
	cfg := testConfig(t, "a")
	cfg.Kinds = workerKinds(in, "a")
	d := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := shopSpec()
	enc, err := encodeAppSpec(spec, cfg.Kinds)
	if err != nil {
		t.Fatal(err)
	}
	r := &appRunner{d: d, log: d.log, stopAfter: time.Second, insts: map[string]*appInstance{}}
	h, err := d.sys.Spawn(ctx, func() actor.Actor { return &runnerHost{r: r} })
	if err != nil {
		t.Fatal(err)
	}
	if err := d.sys.Send(h, hostStart{appreg.Grant{App: "shop", Spec: enc, Gen: 1}}); err != nil {
		t.Fatal(err)
	}
	var root actor.Ref
	eventually(t, 10*time.Second, "shop's root and its 3 children run", func() bool {
		v, err := d.sys.Ask(ctx, h, hostRoot{"shop"})
		root, _ = v.(actor.Ref)
		total, _ := in.count()
		return err == nil && !root.IsZero() && total == 3
	})
	// The runner noted when the root started: had it ended after a
	// healthy run, its restart would not wait out the earlier failures.
	if v, err := d.sys.Ask(ctx, h, hostPauseAfter{app: "shop", ran: healthyRun, failures: 9}); err != nil || v != 100*time.Millisecond {
		t.Fatalf("pause after a healthy run following 9 failures: %v (%v), want 100ms", v, err)
	}
	if _, err := d.sys.Ask(ctx, h, hostReset{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sys.Ask(ctx, root, "alive?"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the root %v answers (%v) after the reset", root, err)
	}
	if v, _ := d.sys.Ask(ctx, h, hostRoot{"shop"}); !v.(actor.Ref).IsZero() {
		t.Fatal("the runner still holds the application after the reset")
	}
}

// TestAppCallLimit: application calls hold workers of the pool, which the
// registry's store writes need: at most a quarter of them, at least one.
func TestAppCallLimit(t *testing.T) {
	for _, w := range []int{1, 3, 4, 8, 64} {
		if got, want := appCallLimit(w), int32(max(1, w/4)); got != want {
			t.Errorf("%d workers: %d calls at once, want %d", w, got, want)
		}
	}
	if got, want := appCallLimit(0), int32(max(1, runtime.GOMAXPROCS(0))); got != want {
		t.Errorf("the default pool: %d calls at once, want %d", got, want)
	}
}

// TestAppCallCountedDownWithoutItsGateway: an application call under way
// when the gateway actor ends (its continuation never runs) still counts
// down when its job ends: the bound does not leak.
func TestAppCallCountedDownWithoutItsGateway(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a", "b") // b never starts: no leader, a deploy waits its 5 s
	cfg.Kinds = workerKinds(newInstances(), "a")
	a := start(t, cfg)
	g := a.Gateway()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _, _ = a.sys.Ask(ctx, g.Ref(), gateway.DeployApp{Spec: shopSpec()}) }()
	eventually(t, 10*time.Second, "the call under way", func() bool { return g.appCalls.Load() == 1 })
	if err := a.sys.Kill(ctx, g.Ref()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the call counted down", func() bool { return g.appCalls.Load() == 0 })
}

// TestAppSpecSizeCheckedFirst: a spec over 8 KiB is refused before any
// kind's argument check runs (the kinds' code).
func TestAppSpecSizeCheckedFirst(t *testing.T) {
	calls := 0
	kinds := Kinds{"counted": Kind(func(workerArgs) (actor.Factory, error) {
		calls++
		return func() actor.Actor { return selfActor{} }, nil
	})}
	s := AppSpec{Name: "big", Children: []AppChild{{Name: "c", Kind: "counted",
		Args: map[string]any{"greeting": strings.Repeat("x", MaxAppSpecSize)}}}}
	_, err := encodeAppSpec(s, kinds)
	if !errors.Is(err, gateway.ErrBadAppSpec) || !strings.Contains(err.Error(), "bytes encoded") {
		t.Fatalf("a spec over %d bytes: %v", MaxAppSpecSize, err)
	}
	if calls != 0 {
		t.Fatalf("the kind's argument check ran %d times on a spec refused for its size", calls)
	}
}

// TestAppDeployRegistryFull: a deploy the registry refuses for good (it is
// full) comes back as a bad spec naming the cause, at once, not as "retry"
// after the call's timeout.
func TestAppDeployRegistryFull(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	cfg.Kinds = workerKinds(newInstances(), "a")
	a := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Specs that the runner cannot decode: granted, logged, nothing runs.
	for i := 0; i < appreg.MaxApps; {
		err := a.apps.propose(ctx, appreg.Command{Op: appreg.OpDeploy, App: fmt.Sprint("filler", i), Spec: []byte{0xc1}})
		switch {
		case err == nil:
			i++
		case ctx.Err() != nil:
			t.Fatalf("filling the registry: %v", err)
		default:
			time.Sleep(10 * time.Millisecond) // no leader yet: polling, with ctx's deadline
		}
	}
	eventually(t, 30*time.Second, "the registry full", func() bool {
		st, err := a.apps.status(ctx)
		return err == nil && len(st.Apps) == appreg.MaxApps
	})
	r := appCall(t, a, gateway.DeployApp{Spec: shopSpec()}).(gateway.AppResult)
	if r.Code != gateway.AppBadSpec || !strings.Contains(r.Msg, "registry full") {
		t.Fatalf("a deploy into a full registry: %+v, want a bad spec naming the cause", r)
	}
}

// TestAppRestartBackoffResetsAfterAHealthyRun: the pause before a root's
// restart doubles while it keeps failing at once, up to 30 s, and starts
// again at 100 ms once a root ran for healthyRun before it ended. A start
// that failed (no root ran) keeps counting.
func TestAppRestartBackoffResetsAfterAHealthyRun(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := &appInstance{}
	now := t0
	var last time.Duration
	for i := range 12 {
		inst.started = now // a root that ended 1 s after its start
		now = now.Add(time.Second)
		last = inst.backoff(now)
		if want := min(100*time.Millisecond<<i, 30*time.Second); last != want {
			t.Fatalf("failure %d in a row: pause %v, want %v", i+1, last, want)
		}
	}
	if last != 30*time.Second {
		t.Fatalf("pause after 12 quick failures %v, want 30s", last)
	}
	if d := inst.backoff(now.Add(time.Hour)); d != 30*time.Second {
		t.Fatalf("a start that failed (no root ran) reset the pause to %v", d)
	}
	inst.started = now
	if d := inst.backoff(now.Add(healthyRun)); d != 100*time.Millisecond {
		t.Fatalf("a root that ran %v then ended: pause %v, want 100ms", healthyRun, d)
	}
	inst.started = now
	if d := inst.backoff(now.Add(time.Second)); d != 200*time.Millisecond {
		t.Fatalf("the next quick failure: pause %v, want 200ms", d)
	}
}
