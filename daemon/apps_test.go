package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/supervisor"
)

// instances tracks the live instances of the test kind "worker", by the
// daemon they run on: the ground truth of where children run. An instance
// counts from its Start to its Terminate, and, on the daemons attached,
// only while its actor is alive: a child killed (a stop not acknowledged
// within its shutdown time, a start that finished after its root ended)
// ends without Terminate.
type instances struct {
	mu   sync.Mutex
	live map[string]map[*workerActor]bool // daemon -> instances
	sys  map[string]*actor.System         // attached daemons' systems
}

func newInstances() *instances {
	return &instances{live: map[string]map[*workerActor]bool{}, sys: map[string]*actor.System{}}
}

// attach lets count check the instances on ds for a kill.
func (in *instances) attach(ds ...*Daemon) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, d := range ds {
		in.sys[d.cfg.Name] = d.sys
	}
}

// describe lists the live instances, for a failure's log.
func (in *instances) describe() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var b strings.Builder
	for d, s := range in.live {
		for w := range s {
			fmt.Fprintf(&b, "\n  %s %v parent %v started %s", d, w.ref, w.parent, w.started.Format("15:04:05.000"))
		}
	}
	return b.String()
}

// roots lists the children each daemon's application roots have.
func roots(ds []*Daemon) string {
	var b strings.Builder
	for _, d := range ds {
		d.apps.mu.Lock()
		var live []*liveApp
		for _, l := range d.apps.live {
			live = append(live, l)
		}
		d.apps.mu.Unlock()
		for _, l := range live {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, err := d.sys.Ask(ctx, l.root, supervisor.WhichChildren{})
			cancel()
			fmt.Fprintf(&b, "\n  root on %s gen %d %v: %+v %v", d.cfg.Name, l.gen, l.root, v, err)
		}
	}
	return b.String()
}

func (in *instances) count() (total int, by map[string]int) {
	in.mu.Lock()
	type check struct {
		w   *workerActor
		sys *actor.System
	}
	var checks []check
	for d, s := range in.live {
		if sys := in.sys[d]; sys != nil {
			for w := range s {
				checks = append(checks, check{w, sys})
			}
		}
	}
	in.mu.Unlock()
	// Outside the lock: an instance's Terminate takes it on the actor's loop.
	var dead []*workerActor
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.sys.Inspect(ctx, c.w.ref, func(*actor.Context, actor.Actor) {})
		cancel()
		if errors.Is(err, actor.ErrDead) || errors.Is(err, actor.ErrShutdown) {
			dead = append(dead, c.w)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, w := range dead {
		delete(in.live[w.daemon], w)
	}
	by = map[string]int{}
	for d, s := range in.live {
		by[d] = len(s)
		total += len(s)
	}
	return total, by
}

type workerArgs struct {
	Greeting string `msgpack:"greeting"`
	Times    int    `msgpack:"times"`
}

type workerActor struct {
	in      *instances
	daemon  string
	args    workerArgs
	ref     actor.Ref
	started time.Time
	parent  actor.Ref
}

func (w *workerActor) Start(c *actor.Context) error {
	w.ref = c.Self()
	w.started = time.Now()
	w.parent = c.Parent()
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	if w.in.live[w.daemon] == nil {
		w.in.live[w.daemon] = map[*workerActor]bool{}
	}
	w.in.live[w.daemon][w] = true
	return nil
}

func (w *workerActor) Terminate(*actor.Context, error) {
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	delete(w.in.live[w.daemon], w)
}

func (w *workerActor) Receive(_ *actor.Context, msg any) (any, error) {
	return strings.Repeat(w.args.Greeting, max(w.args.Times, 1)) + fmt.Sprint(msg), nil
}

// workerKinds are the kinds of daemon name: "worker", typed.
func workerKinds(in *instances, name string) Kinds {
	return Kinds{"worker": Kind(func(a workerArgs) (actor.Factory, error) {
		if a.Times < 0 {
			return nil, errors.New("times must not be negative")
		}
		return func() actor.Actor { return &workerActor{in: in, daemon: name, args: a} }, nil
	})}
}

// fastApps are registry timings for tests: a failover in about a second.
func fastApps(members ...string) AppsConfig {
	return AppsConfig{Members: members, Tick: 20 * time.Millisecond, ElectionTicks: 10, Lease: time.Second,
		RenewEvery: 200 * time.Millisecond, Margin: 100 * time.Millisecond}
}

func shopSpec() AppSpec {
	ch := func(n string) AppChild {
		return AppChild{Name: n, Kind: "worker", Args: map[string]any{"greeting": "hi ", "times": int64(2)}, Shutdown: "1s"}
	}
	return AppSpec{Name: "shop", Strategy: "one_for_one", Intensity: 10, Period: gateway.Duration(time.Second),
		Children: []AppChild{ch("w1"), ch("w2"), ch("w3")}}
}

// appCall asks d's gateway an application call.
func appCall(t *testing.T, d *Daemon, msg any) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := d.System().Ask(ctx, d.Gateway().Ref(), msg)
	if err != nil {
		t.Fatalf("%T on %s: %v", msg, d.Info().Node, err)
	}
	return v
}

// listApps lists the applications as d's registry replica has them.
func listApps(t *testing.T, d *Daemon) []gateway.AppInfo {
	t.Helper()
	l, ok := appCall(t, d, gateway.ListApps{}).(gateway.AppList)
	if !ok || l.Result.Err() != nil {
		return nil
	}
	return l.Apps
}

func appOn(t *testing.T, d *Daemon, app string) (gateway.AppInfo, bool) {
	for _, a := range listApps(t, d) {
		if a.Spec.Name == app {
			return a, true
		}
	}
	return gateway.AppInfo{}, false
}

// TestAppsFailover: three daemons, registry members all, an application
// with three children spread over the three. When
// the daemon running its root is killed, the root and its three children
// run again on the two others, and the list says where.
func TestAppsFailover(t *testing.T) {
	in := newInstances()
	mk := func(name string, seeds ...string) Config {
		c := testConfig(t, name, seeds...)
		c.Kinds = workerKinds(in, name)
		c.Apps = fastApps("a", "b", "c")
		return c
	}
	a := start(t, mk("a"))
	seed := a.Info().GossipAddr
	b := start(t, mk("b", seed))
	c := start(t, mk("c", seed))
	in.attach(a, b, c)
	all := map[string]*Daemon{"a": a, "b": b, "c": c}
	// Deployed once the three know each other's gateways: started earlier
	// (with two daemons of three up, which is enough), its children would
	// be spread over two.
	for _, d := range all {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, c, gateway.DeployApp{Spec: shopSpec()}).(gateway.AppResult).Err() == nil
	})

	// One child per daemon is where Spread puts them. A false failure
	// detection (the fast profile under -race on a loaded machine) may
	// move children, and nothing moves them back: then stop and start shop
	// (at most twice) to place them again.
	var holder, state string
	spread := func() bool {
		info, ok := appOn(t, a, "shop")
		total, by := in.count()
		holder = info.Node
		state = fmt.Sprintf("%+v %v, children %d %v", info, ok, total, by)
		return ok && info.State == "running" && total == 3 && by["a"] == 1 && by["b"] == 1 && by["c"] == 1
	}
	for attempt := 0; ; attempt++ {
		deadline := time.Now().Add(10 * time.Second)
		for !spread() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling, not synchronisation
		}
		if spread() {
			break
		}
		if attempt == 2 {
			t.Fatalf("shop does not run with its 3 children spread over 3 daemons: %s", state)
		}
		t.Logf("not spread within 10 s (%s): stopping and starting shop to place its children again", state)
		for _, op := range []string{"stop", "start"} {
			eventually(t, 20*time.Second, op+" shop", func() bool {
				return appCall(t, b, gateway.AppOp{App: "shop", Op: op}).(gateway.AppResult).Err() == nil
			})
			if op == "stop" { // stopped for good before it starts again
				eventually(t, 20*time.Second, "shop's children stopped", func() bool {
					total, _ := in.count()
					return total == 0
				})
			}
		}
	}
	t.Logf("shop runs on %s", holder)
	// Deploying the same spec again is no change: the same generation.
	before, _ := appOn(t, a, "shop")
	if r := appCall(t, b, gateway.DeployApp{Spec: shopSpec()}).(gateway.AppResult); r.Err() != nil {
		t.Fatalf("redeploy: %v", r.Err())
	}
	if after, _ := appOn(t, a, "shop"); after.Gen != before.Gen || after.Node != before.Node {
		t.Fatalf("redeploying the same spec moved shop: %+v -> %+v", before, after)
	}

	killed := time.Now()
	all[holder].Kill()
	var survivors []*Daemon
	for n, d := range all {
		if n != holder {
			survivors = append(survivors, d)
		}
	}
	var seen string
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %s; instances:%s; roots:%s; at %s", seen, in.describe(), roots(survivors), time.Now().Format("15:04:05.000"))
			t.Logf("killed %s at %s", holder, killed.Format("15:04:05.000"))
		}
	}()
	eventually(t, 40*time.Second, "shop runs again on a survivor, with 3 children on the survivors", func() bool {
		info, ok := appOn(t, survivors[0], "shop")
		total, by := in.count()
		seen = fmt.Sprintf("%+v %v, children %d %v", info, ok, total, by)
		return ok && info.State == "running" && info.Node != holder && total == 3 && by[holder] == 0 &&
			info.Gen > before.Gen
	})
	t.Logf("shop running again after %v", time.Since(killed).Round(time.Millisecond))

	// Stop, start and remove, through the other survivor's gateway.
	for _, op := range []string{"stop", "start", "remove"} {
		if r := appCall(t, survivors[1], gateway.AppOp{App: "shop", Op: op}).(gateway.AppResult); r.Err() != nil {
			t.Fatalf("%s: %v", op, r.Err())
		}
		want := 0
		if op == "start" {
			want = 3
		}
		eventually(t, 20*time.Second, fmt.Sprintf("after %s, %d children run", op, want), func() bool {
			info, ok := appOn(t, survivors[0], "shop")
			total, by := in.count()
			seen = fmt.Sprintf("after %s: %+v %v, children %d %v", op, info, ok, total, by)
			return total == want
		})
	}
	if _, ok := appOn(t, survivors[0], "shop"); ok {
		t.Fatal("shop is listed after its removal")
	}
	r := appCall(t, survivors[0], gateway.AppOp{App: "shop", Op: "stop"}).(gateway.AppResult)
	if !errors.Is(r.Err(), gateway.ErrUnknownApp) {
		t.Fatalf("stop of a removed application: %v, want ErrUnknownApp", r.Err())
	}
}

// TestAppsDeployRefused: bad specs are refused at deploy, naming the
// field, and nothing is deployed.
func TestAppsDeployRefused(t *testing.T) {
	in := newInstances()
	cfg := testConfig(t, "a")
	cfg.Kinds = workerKinds(in, "a")
	cfg.Apps = fastApps("a")
	a := start(t, cfg)
	big := shopSpec()
	big.Children[0].Args = map[string]any{"greeting": strings.Repeat("x", MaxAppSpecSize)}
	for _, tc := range []struct {
		name string
		edit func(s *AppSpec)
		want string
	}{
		{"unknown kind", func(s *AppSpec) { s.Children[1].Kind = "nope" }, "children[1].kind"},
		{"bad args", func(s *AppSpec) { s.Children[0].Args = map[string]any{"greeting": 3} }, "children[0].args"},
		{"unknown arg", func(s *AppSpec) { s.Children[0].Args = map[string]any{"colour": "red"} }, "children[0].args"},
		{"refused args", func(s *AppSpec) { s.Children[2].Args = map[string]any{"times": -1} }, "children[2].args"},
		{"duplicate child", func(s *AppSpec) { s.Children[2].Name = "w1" }, "children[2].name"},
		{"too big", func(s *AppSpec) { *s = big }, "spec:"},
		{"no children", func(s *AppSpec) { s.Children = nil }, "children"},
		{"too many children", func(s *AppSpec) {
			for len(s.Children) <= MaxAppChildren {
				s.Children = append(s.Children, AppChild{Name: fmt.Sprint("c", len(s.Children)), Kind: "worker"})
			}
		}, "children"},
		{"bad strategy", func(s *AppSpec) { s.Strategy = "all_for_one" }, "strategy"},
		{"simple_one_for_one", func(s *AppSpec) { s.Strategy = "simple_one_for_one" }, "strategy"},
		{"bad restart", func(s *AppSpec) { s.Children[0].Restart = "sometimes" }, "children[0].restart"},
		{"bad shutdown", func(s *AppSpec) { s.Children[0].Shutdown = "-1s" }, "children[0].shutdown"},
		{"empty name", func(s *AppSpec) { s.Name = "" }, "name"},
		{"long name", func(s *AppSpec) { s.Name = strings.Repeat("n", MaxAppNameLen+1) }, "name"},
		{"control name", func(s *AppSpec) { s.Name = "a\nb" }, "name"},
		{"negative intensity", func(s *AppSpec) { s.Intensity = -1 }, "intensity"},
		{"long prefer", func(s *AppSpec) { s.Prefer = make([]string, 17) }, "prefer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := shopSpec()
			tc.edit(&s)
			r, ok := appCall(t, a, gateway.DeployApp{Spec: s}).(gateway.AppResult)
			if !ok || !errors.Is(r.Err(), gateway.ErrBadAppSpec) || !strings.Contains(r.Msg, tc.want) {
				t.Fatalf("deploy: %+v, want ErrBadAppSpec naming %q", r, tc.want)
			}
		})
	}
	if apps := listApps(t, a); len(apps) != 0 {
		t.Fatalf("refused specs were deployed: %+v", apps)
	}
	if r := appCall(t, a, gateway.AppOp{App: "shop", Op: "explode"}).(gateway.AppResult); r.Err() == nil {
		t.Fatal("an unknown operation was accepted")
	}
}

// TestAppsOffAndNonMember: without members the calls say applications are
// off; a daemon that is no member passes them to a member.
func TestAppsOffAndNonMember(t *testing.T) {
	in := newInstances()
	off := start(t, testConfig(t, "off"))
	r := appCall(t, off, gateway.ListApps{}).(gateway.AppList)
	if !errors.Is(r.Result.Err(), gateway.ErrAppsOff) {
		t.Fatalf("list on a daemon without apps: %v, want ErrAppsOff", r.Result.Err())
	}
	ca := testConfig(t, "a")
	ca.Kinds, ca.Apps = workerKinds(in, "a"), fastApps("a")
	a := start(t, ca)
	cx := testConfig(t, "x", a.Info().GossipAddr)
	cx.Kinds, cx.Apps = workerKinds(in, "x"), fastApps("a")
	x := start(t, cx)
	eventually(t, 20*time.Second, "x deploys through a", func() bool {
		r := appCall(t, x, gateway.DeployApp{Spec: shopSpec()}).(gateway.AppResult)
		return r.Err() == nil
	})
	eventually(t, 20*time.Second, "shop runs on a, children on a and x", func() bool {
		info, ok := appOn(t, x, "shop")
		total, by := in.count()
		return ok && info.Node == "a" && info.State == "running" && total == 3 && by["a"] > 0 && by["x"] > 0
	})
	if _, err := x.System().Ask(context.Background(), x.Gateway().Ref(), appregWhere{}); !errors.Is(err, actor.ErrUnknownMessage) {
		t.Fatalf("a non-member's own ask for a driver: %v, want ErrUnknownMessage", err)
	}
}

// TestAppsConfigErrors: every bad value is refused with ErrConfig naming
// its field.
func TestAppsConfigErrors(t *testing.T) {
	in := newInstances()
	for _, tc := range []struct {
		name string
		edit func(a *AppsConfig)
		want string
	}{
		{"too many members", func(a *AppsConfig) {
			a.Members = nil
			for i := range MaxAppMembers + 1 {
				a.Members = append(a.Members, fmt.Sprint("m", i))
			}
		}, "app members"},
		{"duplicate member", func(a *AppsConfig) { a.Members = []string{"a", "a"} }, "app members"},
		{"empty member", func(a *AppsConfig) { a.Members = []string{""} }, "app members"},
		{"apps without members", func(a *AppsConfig) { a.Members = nil; a.Apps = []AppSpec{shopSpec()} }, "apps"},
		{"tick", func(a *AppsConfig) { a.Tick = time.Microsecond }, "app tick"},
		{"election ticks", func(a *AppsConfig) { a.ElectionTicks = 2 }, "app election ticks"},
		{"lease under elections", func(a *AppsConfig) { a.Lease = 300 * time.Millisecond }, "app lease"},
		{"lease too long", func(a *AppsConfig) { a.Lease = 2 * time.Hour }, "app lease"},
		{"renew over half", func(a *AppsConfig) { a.RenewEvery = 600 * time.Millisecond }, "app renew every"},
		{"renew under a tick", func(a *AppsConfig) { a.RenewEvery = time.Millisecond }, "app renew every"},
		{"margin under a tick", func(a *AppsConfig) { a.Margin = 10 * time.Millisecond }, "app margin"},
		{"margin under two ticks", func(a *AppsConfig) { a.Margin = 2*a.Tick - time.Millisecond }, "app margin"},
		{"drift", func(a *AppsConfig) { a.Drift = 0.5 }, "app drift"},
		{"bad app", func(a *AppsConfig) { s := shopSpec(); s.Children[0].Kind = "nope"; a.Apps = []AppSpec{s} }, "apps[0]"},
		{"app twice", func(a *AppsConfig) { a.Apps = []AppSpec{shopSpec(), shopSpec()} }, "apps[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "a")
			cfg.Kinds = workerKinds(in, "a")
			cfg.Apps = fastApps("a", "b", "c")
			tc.edit(&cfg.Apps)
			err := cfg.WithDefaults().Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want ErrConfig naming %q", err, tc.want)
			}
		})
	}
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a", "b")
	if err := cfg.WithDefaults().Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	def := AppsConfig{Members: []string{"a"}}.withDefaults()
	if err := def.validate(nil); err != nil {
		t.Fatalf("the defaults are refused: %v", err)
	}
	if slices.Contains([]time.Duration{def.Tick, def.Lease, def.RenewEvery, def.Margin}, 0) {
		t.Fatalf("a default is zero: %+v", def)
	}
}

// TestAppsDeployedAtBoot: an application of the config file is deployed
// when the daemon starts; started again with the same config and data dir,
// the daemon finds it in its registry (no change: the same generation, on
// the same daemon); with a changed spec, the registry takes the new one.
func TestAppsDeployedAtBoot(t *testing.T) {
	in := newInstances()
	dir := t.TempDir()
	cfg := testConfig(t, "a")
	cfg.DataDir = dir
	cfg.Kinds, cfg.Apps = workerKinds(in, "a"), fastApps("a")
	cfg.Apps.Apps = []AppSpec{shopSpec()}
	a := start(t, cfg)
	var first gateway.AppInfo
	eventually(t, 20*time.Second, "shop runs", func() bool {
		var ok bool
		first, ok = appOn(t, a, "shop")
		total, _ := in.count()
		return ok && first.State == "running" && total == 3
	})
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if total, _ := in.count(); total != 0 {
		t.Fatalf("%d children still run after the shutdown", total)
	}
	a = start(t, cfg)
	eventually(t, 20*time.Second, "shop runs again", func() bool {
		info, ok := appOn(t, a, "shop")
		total, _ := in.count()
		return ok && info.State == "running" && total == 3 && info.Gen == first.Gen && info.Node == "a"
	})
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	changed := shopSpec()
	changed.Children[0].Args = map[string]any{"greeting": "bye "}
	cfg.Apps.Apps = []AppSpec{changed}
	a = start(t, cfg)
	eventually(t, 20*time.Second, "the registry holds the changed spec", func() bool {
		info, ok := appOn(t, a, "shop")
		return ok && info.Spec.Children[0].Args["greeting"] == "bye "
	})
}

// TestAppCallsBounded: a gateway answering maxAppCalls application calls
// refuses more at once (retry), without holding a worker; the count goes
// back down as calls end.
func TestAppCallsBounded(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	a := start(t, cfg)
	g := a.Gateway()
	if a.appCallMax != appCallLimit(0) || a.appCallMax < 1 {
		t.Fatalf("bound %d, want %d", a.appCallMax, appCallLimit(0))
	}
	g.appCalls.Add(a.appCallMax)
	r, ok := appCall(t, a, gateway.ListApps{}).(gateway.AppList)
	if !ok || !errors.Is(r.Result.Err(), gateway.ErrAppRetry) || !strings.Contains(r.Result.Msg, "answering") {
		t.Fatalf("list over the bound: %+v", r)
	}
	g.appCalls.Add(-a.appCallMax)
	eventually(t, 10*time.Second, "list answered", func() bool {
		r := appCall(t, a, gateway.ListApps{}).(gateway.AppList)
		return r.Result.Err() == nil
	})
	if n := g.appCalls.Load(); n != 0 {
		t.Fatalf("%d calls counted after they ended", n)
	}
}

// A member that did not answer a round of lookups keeps its last known
// driver; one that answered with none, or is no longer a gateway, does not.
func TestKeepUnansweredPeers(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true})
	defer func() { _ = sys.Shutdown(context.Background()) }()
	refs := map[uint32]actor.Ref{}
	r := func(i uint32) actor.Ref {
		if _, ok := refs[i]; !ok {
			ref, err := sys.Spawn(context.Background(), func() actor.Actor {
				return fnActor(func(*actor.Context, any) (any, error) { return nil, nil })
			})
			if err != nil {
				t.Fatal(err)
			}
			refs[i] = ref
		}
		return refs[i]
	}
	last := map[uint64]actor.Ref{2: r(2), 3: r(3), 4: r(4)}
	got := keepUnanswered(peerLookup{
		asked: map[uint64]bool{2: false, 3: true, 5: true},
		found: map[uint64]actor.Ref{5: r(5)},
	}, last)
	want := map[uint64]actor.Ref{2: r(2), 5: r(5)} // 3 has no driver now; 4 is gone
	if !maps.Equal(got, want) {
		t.Fatalf("peers %v, want %v", got, want)
	}
}

// The registry's supervisor ending by itself (it gave up restarting the
// driver) stops the daemon with ErrRegistryEnded, for its service manager
// to restart it.
func TestRegistryEndStopsTheDaemon(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	a := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.sys.Kill(ctx, a.apps.sup); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-ctx.Done():
		t.Fatal("the daemon did not stop after its registry ended")
	}
	if err := a.Err(); !errors.Is(err, ErrRegistryEnded) {
		t.Fatalf("Err = %v, want ErrRegistryEnded", err)
	}
	if a.Ready() {
		t.Fatal("still ready")
	}
}
