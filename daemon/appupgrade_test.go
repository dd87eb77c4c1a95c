package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/supervisor"
	"github.com/actord/actord/upgrade"
)

// The kinds of the rolling upgrade tests: "counter" (v1) and "counter2"
// (v2) count the "inc" asks they get; the reply names the version.

type ctrArgs struct {
	Name string `msgpack:"name"`
}

type counterV1 struct {
	name string
	n    int64
	f    *upgradeFixture
}

func (c *counterV1) Receive(_ *actor.Context, msg any) (any, error) {
	switch msg {
	case "inc":
		c.n++
		return fmt.Sprintf("v1:%d", c.n), nil
	case "hold": // tells it waits, then waits for the test
		c.f.entered <- struct{}{}
		<-c.f.hold
		return "held", nil
	}
	return nil, actor.ErrUnknownMessage
}

type counterV2 struct {
	name string
	n    int64
}

func (c *counterV2) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "inc" {
		c.n++
		return fmt.Sprintf("v2:%d", c.n), nil
	}
	return nil, actor.ErrUnknownMessage
}

// stepSink passes the UpgradeSteps it gets to its channel.
type stepSink chan gateway.UpgradeStep

func (s stepSink) Receive(_ *actor.Context, msg any) (any, error) {
	if st, ok := msg.(gateway.UpgradeStep); ok {
		s <- st
	}
	return nil, nil
}

// upgradeFixture is what the kinds of every daemon of a test share.
type upgradeFixture struct {
	failOn   atomic.Value  // string: the child whose Forward fails
	failBack atomic.Value  // string: the child whose Back fails
	entered  chan struct{} // a "hold" ask is being handled
	hold     chan struct{} // closed: "hold" asks end
}

func newFixture() *upgradeFixture {
	return &upgradeFixture{entered: make(chan struct{}, 1), hold: make(chan struct{})}
}

func (f *upgradeFixture) config(t *testing.T, name string, seeds ...string) Config {
	c := testConfig(t, name, seeds...)
	c.Kinds = Kinds{
		"counter": Kind(func(a ctrArgs) (actor.Factory, error) {
			return func() actor.Actor { return &counterV1{name: a.Name, f: f} }, nil
		}),
		"counter2": Kind(func(a ctrArgs) (actor.Factory, error) {
			return func() actor.Actor { return &counterV2{name: a.Name} }, nil
		}),
		"echo": Kind(func(a ctrArgs) (actor.Factory, error) {
			return func() actor.Actor { return &counterV2{name: a.Name} }, nil
		}),
	}
	c.Upgrades = []KindUpgrade{Upgrade("counter", "counter2", upgrade.Migration[*counterV1, *counterV2]{
		Forward: func(o *counterV1) (*counterV2, error) {
			if s, _ := f.failOn.Load().(string); s == o.name {
				return nil, errors.New("the test refuses " + o.name)
			}
			return &counterV2{name: o.name, n: o.n}, nil
		},
		Back: func(n *counterV2) (*counterV1, error) {
			if s, _ := f.failBack.Load().(string); s == n.name {
				return nil, errors.New("the test keeps " + n.name)
			}
			return &counterV1{name: n.name, n: n.n, f: f}, nil
		},
	})}
	// The upgrade tests test no failover: slower than fastApps, so that a
	// loaded machine (-race, other tests) does not lapse shop's lease, which
	// stops its root, in the middle of a test. Under fastApps' 200 ms
	// election timeout the leader was seen to step down for want of a
	// quorum, and a's lease to end, right after threeDaemons.
	c.Apps = fastApps("a", "b", "c")
	c.Apps.ElectionTicks, c.Apps.Lease, c.Apps.RenewEvery = 25, 3*time.Second, 300*time.Millisecond
	return c
}

func counterSpec() AppSpec {
	ch := func(n, node string) AppChild {
		return AppChild{Name: n, Kind: "counter", Args: map[string]any{"name": n}, Node: node, Shutdown: "1s"}
	}
	// Takeover: a preference list alone only picks the daemon of an
	// assignment. The registry's leader may not have heard a lately when
	// it assigns shop (a new leader, a loaded machine): shop then goes to
	// b and, without Takeover, stays there. With it, shop moves to a once
	// a is heard, so threeDaemons waits for a state the registry promises.
	return AppSpec{Name: "shop", Intensity: 10, Period: gateway.Duration(time.Second), Prefer: []string{"a"}, Takeover: true,
		Children: []AppChild{ch("w1", "a"), ch("w2", "b"), ch("w3", "c")}}
}

// threeDaemons starts a, b and c, registry members all, and deploys
// counterSpec once they know each other's gateways; it returns them once
// shop's root runs on a with its three children running.
func threeDaemons(t *testing.T, f *upgradeFixture) (a, b, c *Daemon) {
	a = start(t, f.config(t, "a"))
	seed := a.Info().GossipAddr
	b = start(t, f.config(t, "b", seed))
	c = start(t, f.config(t, "c", seed))
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, b, gateway.DeployApp{Spec: counterSpec()}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 30*time.Second, "shop runs on a with its 3 children", func() bool {
		info, ok := appOn(t, a, "shop")
		if !ok || info.State != "running" || info.Node != "a" {
			return false
		}
		refs, err := childRefs(a)
		return err == nil && len(refs) == 3
	})
	// Every replica has applied it (each gateway answers from its own).
	for _, d := range []*Daemon{b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" sees shop running on a", func() bool {
			info, ok := appOn(t, d, "shop")
			return ok && info.State == "running" && info.Node == "a"
		})
	}
	return a, b, c
}

// TestAppTakeoverToPreferred: shop, deployed while a (its preferred
// daemon) is down, runs elsewhere; once a is up, Takeover moves it to a,
// with its three children. Without Takeover it would stay where it is:
// what threeDaemons relies on when the registry's leader has not heard a
// lately at deploy.
func TestAppTakeoverToPreferred(t *testing.T) {
	f := newFixture()
	b := start(t, f.config(t, "b"))
	c := start(t, f.config(t, "c", b.Info().GossipAddr))
	spec := counterSpec()
	for i := range spec.Children {
		spec.Children[i].Node = "" // a is not up: placed over b and c
	}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, c, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 30*time.Second, "shop runs without a", func() bool {
		info, ok := appOn(t, b, "shop")
		return ok && info.State == "running" && info.Node != "a" && info.Node != ""
	})
	a := start(t, f.config(t, "a", b.Info().GossipAddr))
	eventually(t, 30*time.Second, "shop moves to a with its 3 children", func() bool {
		info, ok := appOn(t, a, "shop")
		if !ok || info.State != "running" || info.Node != "a" {
			return false
		}
		refs, err := childRefs(a)
		return err == nil && len(refs) == 3
	})
}

// childRefs returns the running children of shop's root on a, by name.
func childRefs(a *Daemon) (map[string]actor.Ref, error) {
	live := a.apps.liveApp("shop")
	if live == nil {
		return nil, errors.New("shop's root does not run on a")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := a.sys.Ask(ctx, live.root, supervisor.WhichChildren{})
	if err != nil {
		return nil, err
	}
	out := map[string]actor.Ref{}
	for _, c := range v.([]supervisor.ChildInfo) {
		if c.Running {
			out[c.ID] = c.Ref
		}
	}
	return out, nil
}

func upgradeCall(t *testing.T, d *Daemon, m gateway.UpgradeApp) gateway.UpgradeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), appUpgradeTimeout+10*time.Second)
	defer cancel()
	v, err := d.System().Ask(ctx, d.Gateway().Ref(), m)
	if err != nil {
		t.Fatalf("upgrade on %s: %v", d.Info().Node, err)
	}
	r, ok := v.(gateway.UpgradeResult)
	if !ok {
		t.Fatalf("upgrade on %s: reply %T", d.Info().Node, v)
	}
	return r
}

// asker asks each child "inc" in turn until stopped, checking that every
// reply is the child's previous count plus one (the state carries over,
// no ask is lost or counted twice) and that a child never goes back from
// v2 to v1.
type asker struct {
	sys  *actor.System
	refs map[string]actor.Ref

	mu       sync.Mutex
	asks     int
	answered int
	failed   []error
	last     map[string]int64
	version  map[string]string
	problems []string
}

func (k *asker) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	names := []string{"w1", "w2", "w3"}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name := names[i%len(names)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		v, err := k.sys.Ask(ctx, k.refs[name], "inc")
		cancel()
		k.mu.Lock()
		k.asks++
		if err != nil {
			k.failed = append(k.failed, fmt.Errorf("%s: %w", name, err))
			k.mu.Unlock()
			continue
		}
		k.answered++
		var ver string
		var n int64
		if s, _ := v.(string); len(s) > 3 {
			ver = s[:2]
			_, _ = fmt.Sscan(s[3:], &n)
		}
		if n != k.last[name]+1 {
			k.problems = append(k.problems, fmt.Sprintf("%s answered %v after %d", name, v, k.last[name]))
		}
		if k.version[name] == "v2" && ver != "v2" {
			k.problems = append(k.problems, fmt.Sprintf("%s went back from v2 to %v", name, v))
		}
		k.last[name], k.version[name] = n, ver
		k.mu.Unlock()
	}
}

// ask sends one "inc" to name and returns the reply.
func askInc(t *testing.T, sys *actor.System, ref actor.Ref) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := sys.Ask(ctx, ref, "inc")
	if err != nil {
		t.Fatalf("inc %v: %v", ref, err)
	}
	s, _ := v.(string)
	return s
}

// TestAppRollingUpgrade: shop's three children, one per daemon, move from
// counter to counter2 one at a time while a client keeps asking them:
// every ask is answered, each count goes on from where it was, the
// children run v2 afterwards, the registry holds the new spec, a child
// restarted by the root afterwards is a counter2, and each move was
// reported on its own daemon's bus, the whole on the root's.
func TestAppRollingUpgrade(t *testing.T) {
	f := newFixture()
	a, b, c := threeDaemons(t, f)
	var moved []*event.Stream[event.ActorUpgraded]
	for _, d := range []*Daemon{a, b, c} {
		s, err := event.Subscribe[event.ActorUpgraded](d.Bus())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unsubscribe()
		moved = append(moved, s)
	}
	appDone, err := event.Subscribe[AppUpgraded](a.Bus())
	if err != nil {
		t.Fatal(err)
	}
	defer appDone.Unsubscribe()
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	k := &asker{sys: c.System(), refs: refs, last: map[string]int64{}, version: map[string]string{}}
	stop, done := make(chan struct{}), make(chan struct{})
	go k.run(stop, done)
	// Some asks before the upgrade, so that there is a count to carry.
	eventually(t, 20*time.Second, "the client's first asks", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.answered >= 30
	})
	nw := counterSpec()
	for i := range nw.Children {
		nw.Children[i].Kind = "counter2"
	}
	// Through b, which passes it on to a, which runs the root; the steps
	// come back as they happen, through b's relay.
	steps := make(chan gateway.UpgradeStep, 10)
	prog, err := b.System().Spawn(context.Background(), func() actor.Actor { return stepSink(steps) })
	if err != nil {
		t.Fatal(err)
	}
	r := upgradeCall(t, b, gateway.UpgradeApp{Spec: nw, Progress: prog})
	if err := r.Result.Err(); err != nil {
		t.Fatalf("upgrade: %v (steps %+v)", err, r.Steps)
	}
	want := []gateway.UpgradeStep{
		{Child: "w1", Node: "a", From: "counter", To: "counter2", Outcome: "upgraded"},
		{Child: "w2", Node: "b", From: "counter", To: "counter2", Outcome: "upgraded"},
		{Child: "w3", Node: "c", From: "counter", To: "counter2", Outcome: "upgraded"},
	}
	if !slices.Equal(r.Steps, want) {
		t.Fatalf("steps %+v, want %+v", r.Steps, want)
	}
	for i, w := range want {
		select {
		case s := <-steps:
			if s != w {
				t.Fatalf("progress %d: %+v, want %+v", i, s, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("progress %d: nothing", i)
		}
	}
	// More asks after it: each child then answers as v2.
	k.mu.Lock()
	after := k.answered + 30
	k.mu.Unlock()
	eventually(t, 20*time.Second, "the client's asks after the upgrade", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.answered >= after
	})
	close(stop)
	<-done
	k.mu.Lock()
	t.Logf("%d asks: %d answered, %d failed; counts %v", k.asks, k.answered, len(k.failed), k.last)
	if k.answered+len(k.failed) != k.asks || len(k.failed) != 0 || len(k.problems) != 0 {
		t.Fatalf("failed asks %v, problems %v", k.failed, k.problems)
	}
	for _, n := range []string{"w1", "w2", "w3"} {
		if k.version[n] != "v2" || k.last[n] < 10 {
			t.Errorf("%s: last answer %s:%d, want v2 with the count carried", n, k.version[n], k.last[n])
		}
	}
	k.mu.Unlock()

	// The registry holds the new spec, on every replica.
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 10*time.Second, d.Info().Node+" holds the new spec", func() bool {
			info, ok := appOn(t, d, "shop")
			return ok && slices.IndexFunc(info.Spec.Children, func(ch AppChild) bool { return ch.Kind != "counter2" }) < 0
		})
	}
	// A child restarted by the root makes the new kind.
	w2 := restartedChild(t, b, a, "w2", refs["w2"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := askInc(t, a.System(), w2); got != "v2:1" {
		t.Fatalf("restarted w2 answered %q, want a fresh counter2's v2:1", got)
	}

	// Reports: one ActorUpgraded per daemon, one AppUpgraded on a.
	for i, s := range moved {
		select {
		case e := <-s.Out():
			if e.Outcome != "upgraded" || e.From != "counter" || e.To != "counter2" {
				t.Errorf("daemon %d reported %+v", i, e)
			}
		case <-ctx.Done():
			t.Fatalf("daemon %d reported no upgrade", i)
		}
	}
	// ... and in the debugger's reports (`actord debug events --kind report`).
	for _, x := range []struct {
		d    *Daemon
		typ  string
		want string
	}{{a, "AppUpgraded", `"Outcome":"upgraded"`}, {b, "upgrade.Report", "counter2"}, {c, "upgrade.Report", "counter2"}} {
		eventually(t, 10*time.Second, x.d.Info().Node+"'s debugger shows the "+x.typ, func() bool {
			return slices.ContainsFunc(x.d.Recorder().Events(debug.EventFilter{Loop: -1, Kinds: []string{"report"}}), func(e debug.Event) bool {
				return strings.Contains(e.Type, x.typ) && strings.Contains(e.Payload, x.want)
			})
		})
	}
	if e := nextAppUpgraded(t, ctx, appDone, " on a"); e.App != "shop" || e.Outcome != "upgraded" || len(e.Steps) != 3 {
		t.Errorf("AppUpgraded %+v", e)
	}
}

// nextAppUpgraded returns the next AppUpgraded on s, failing the test if
// none comes before ctx ends (where says where it was awaited).
func nextAppUpgraded(t *testing.T, ctx context.Context, s *event.Stream[AppUpgraded], where string) AppUpgraded {
	t.Helper()
	select {
	case e := <-s.Out():
		return e
	case <-ctx.Done():
		t.Fatal("no AppUpgraded" + where)
	}
	return AppUpgraded{}
}

// TestAppRollingUpgradeRollsBack: the migration fails on the second
// child: the first is moved back (its count goes on, as v1), the third
// never moves, the registry keeps the old spec, and the error names w2.
func TestAppRollingUpgradeRollsBack(t *testing.T) {
	f := newFixture()
	f.failOn.Store("w2")
	a, b, c := threeDaemons(t, f)
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		askInc(t, c.System(), refs["w1"])
	}
	nw := counterSpec()
	for i := range nw.Children {
		nw.Children[i].Kind = "counter2"
	}
	r := upgradeCall(t, c, gateway.UpgradeApp{Spec: nw})
	err = r.Result.Err()
	if !errors.Is(err, gateway.ErrUpgradeFailed) || !strings.Contains(err.Error(), `child "w2"`) ||
		!strings.Contains(err.Error(), "the test refuses w2") {
		t.Fatalf("upgrade: %v, want ErrUpgradeFailed naming w2 and the cause", err)
	}
	if len(r.Steps) != 2 || r.Steps[0].Child != "w1" || r.Steps[0].Outcome != "rolled back" ||
		r.Steps[1].Child != "w2" || r.Steps[1].Outcome != "refused" || r.Steps[1].Node != "b" {
		t.Fatalf("steps %+v: want w1 rolled back, w2 refused on b", r.Steps)
	}
	for name, want := range map[string]string{"w1": "v1:4", "w2": "v1:1", "w3": "v1:1"} {
		if got := askInc(t, b.System(), refs[name]); got != want {
			t.Errorf("%s answered %q, want %q", name, got, want)
		}
	}
	if info, _ := appOn(t, a, "shop"); !sameEncoding(info.Spec, counterSpec()) {
		t.Errorf("the registry holds %+v, want the old spec", info.Spec)
	}
	// w1's slot went back too: the root restarts it as a counter.
	w1 := restartedChild(t, a, a, "w1", refs["w1"])
	if got := askInc(t, a.System(), w1); got != "v1:1" {
		t.Fatalf("restarted w1 answered %q, want a fresh counter's v1:1", got)
	}
}

// TestAppUpgradeRefused: requests that cannot be carried out are refused
// before any child moves, naming the cause; a second upgrade of an
// application under way is refused as busy.
func TestAppUpgradeRefused(t *testing.T) {
	f := newFixture()
	a, b, c := threeDaemons(t, f)
	with := func(edit func(s *AppSpec)) gateway.UpgradeApp {
		s := counterSpec()
		edit(&s)
		return gateway.UpgradeApp{Spec: s}
	}
	for _, tc := range []struct {
		name string
		req  gateway.UpgradeApp
		want error
		msg  string
	}{
		{"unknown kind", with(func(s *AppSpec) { s.Children[1].Kind = "nope" }), gateway.ErrBadAppSpec, "children[1].kind"},
		{"no upgrade registered", with(func(s *AppSpec) { s.Children[0].Kind = "echo" }), gateway.ErrBadAppSpec,
			`no upgrade from kind "counter" to "echo"`},
		{"args changed", with(func(s *AppSpec) { s.Children[2].Kind, s.Children[2].Args = "counter2", map[string]any{"name": "x"} }),
			gateway.ErrBadAppSpec, "children[2]"},
		{"child added", with(func(s *AppSpec) { s.Children = append(s.Children, AppChild{Name: "w4", Kind: "counter"}) }),
			gateway.ErrBadAppSpec, "4 children"},
		{"children reordered", with(func(s *AppSpec) { s.Children[0], s.Children[1] = s.Children[1], s.Children[0] }),
			gateway.ErrBadAppSpec, "order"},
		{"strategy changed", with(func(s *AppSpec) { s.Children[0].Kind, s.Strategy = "counter2", "one_for_all" }),
			gateway.ErrBadAppSpec, "strategy"},
		{"nothing changes", with(func(*AppSpec) {}), gateway.ErrBadAppSpec, "no child's kind changes"},
		{"too big", with(func(s *AppSpec) {
			s.Children[0].Kind, s.Children[0].Args = "counter2", map[string]any{"name": strings.Repeat("x", MaxAppSpecSize)}
		}), gateway.ErrBadAppSpec, "bytes encoded, at most"},
		{"unknown app", gateway.UpgradeApp{App: "mall", Child: "w1", Kind: "counter2"}, gateway.ErrUnknownApp, "mall"},
		{"unknown child", gateway.UpgradeApp{App: "shop", Child: "w9", Kind: "counter2"}, gateway.ErrBadAppSpec, `no child "w9"`},
		{"both forms", gateway.UpgradeApp{Spec: counterSpec(), App: "shop", Child: "w1", Kind: "counter2"}, gateway.ErrBadAppSpec, "not both"},
		{"empty", gateway.UpgradeApp{}, gateway.ErrBadAppSpec, "application name"},
		{"long kind", gateway.UpgradeApp{App: "shop", Child: "w1", Kind: strings.Repeat("k", MaxAppNameLen+1)}, gateway.ErrBadAppSpec, "kind name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := upgradeCall(t, c, tc.req)
			if err := r.Result.Err(); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || len(r.Steps) != 0 {
				t.Fatalf("upgrade: %v, steps %+v; want %v naming %q", err, r.Steps, tc.want, tc.msg)
			}
		})
	}
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	// w3 (on c) is busy with an ask that waits: the upgrade of w3 waits
	// behind it, and a second upgrade meanwhile is refused as busy.
	held := f.holdBusy(t, a, refs["w3"])
	first := make(chan gateway.UpgradeResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), appUpgradeTimeout)
		defer cancel()
		v, _ := b.System().Ask(ctx, b.Gateway().Ref(), gateway.UpgradeApp{App: "shop", Child: "w3", Kind: "counter2"})
		r, _ := v.(gateway.UpgradeResult)
		first <- r
	}()
	eventually(t, 20*time.Second, "the first upgrade under way on a", func() bool {
		a.apps.mu.Lock()
		defer a.apps.mu.Unlock()
		_, upgrading := a.apps.claimed["shop"]
		return upgrading
	})
	// Asked of a, whose loops are free (c's gateway may share w3's loop).
	r := upgradeCall(t, a, gateway.UpgradeApp{App: "shop", Child: "w1", Kind: "counter2"})
	if err := r.Result.Err(); !errors.Is(err, gateway.ErrAppBusy) {
		t.Fatalf("a second upgrade during the first: %v, want ErrAppBusy", err)
	}
	close(f.hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if r := <-first; r.Result.Err() != nil || len(r.Steps) != 1 || r.Steps[0].Outcome != "upgraded" {
		t.Fatalf("the first upgrade: %v, %+v", r.Result.Err(), r.Steps)
	}
	if got := askInc(t, a.System(), refs["w3"]); got != "v2:1" {
		t.Fatalf("w3 answered %q after its upgrade, want v2:1", got)
	}
	// The others did not move.
	if got := askInc(t, a.System(), refs["w1"]); got != "v1:1" {
		t.Fatalf("w1 answered %q, want v1:1", got)
	}
	// Bounds: the upgrades a gateway runs at once, the moves a daemon runs
	// for the others.
	a.gw.upgradeCalls.Add(maxUpgradeCalls)
	r = upgradeCall(t, a, gateway.UpgradeApp{App: "shop", Child: "w1", Kind: "counter2"})
	a.gw.upgradeCalls.Add(-maxUpgradeCalls)
	if err := r.Result.Err(); !errors.Is(err, gateway.ErrAppRetry) || !strings.Contains(err.Error(), "running 4 application upgrades") {
		t.Fatalf("an upgrade past the bound: %v", err)
	}
	aGw := b.gw.peers["a"].ref
	onB := func(r actor.Ref) actor.Ref { // a's ref r as b names it
		node, addr, id, ok := a.node.ExportRef(r)
		if !ok {
			t.Fatalf("export %v", r)
		}
		br, err := b.node.ImportRef(node, addr, id)
		if err != nil {
			t.Fatal(err)
		}
		return br
	}
	move := func(m childUpgrade) childUpgraded {
		m.Ref = onB(m.Ref)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := b.System().Ask(ctx, aGw, m)
		if err != nil {
			t.Fatalf("move asked by b: %v", err)
		}
		return v.(childUpgraded)
	}
	a.gw.childCalls.Add(maxChildUpgrades)
	got := move(childUpgrade{Ref: refs["w1"], Old: "counter", New: "counter2"})
	a.gw.childCalls.Add(-maxChildUpgrades)
	if got.Code != cuBusy {
		t.Fatalf("a move past the bound: %+v", got)
	}
	for _, tc := range []struct {
		m    childUpgrade
		want string
	}{
		{childUpgrade{Ref: refs["w1"], Old: "counter", New: "echo"}, `no upgrade from kind "counter" to "echo"`},
		{childUpgrade{Ref: refs["w2"], Old: "counter", New: "counter2"}, "not one of this daemon's"},
		{childUpgrade{Ref: refs["w1"], Old: "counter", New: "counter2", Args: map[string]any{"colour": 1}}, "refused the child's arguments"},
		{childUpgrade{Ref: refs["w1"], Old: strings.Repeat("k", MaxAppNameLen+1), New: "counter2"}, "bytes, at most"},
	} {
		if got := move(tc.m); got.Code != cuBad || !strings.Contains(got.Msg, tc.want) {
			t.Errorf("move %+v: %+v, want refused naming %q", tc.m, got, tc.want)
		}
	}
	if got := askInc(t, a.System(), refs["w1"]); got != "v1:2" {
		t.Fatalf("w1 answered %q after the refused moves, want v1:2", got)
	}
	// A child move asked by no member is refused: the client's own ask.
	_, err = a.System().Ask(context.Background(), a.Gateway().Ref(), childUpgrade{Ref: refs["w1"], Old: "counter", New: "counter2"})
	if !errors.Is(err, actor.ErrUnknownMessage) {
		t.Fatalf("a child move asked from the daemon itself: %v, want ErrUnknownMessage", err)
	}
}

// TestUpgradeConfig: the upgrades of the config are checked against the
// kinds, naming the entry.
func TestUpgradeConfig(t *testing.T) {
	m := upgrade.Migration[*counterV1, *counterV2]{
		Forward: func(o *counterV1) (*counterV2, error) { return &counterV2{}, nil },
		Back:    func(n *counterV2) (*counterV1, error) { return &counterV1{}, nil },
	}
	noBack := m
	noBack.Back = nil
	health := m
	health.Health = func(*counterV2) error { return nil }
	f := newFixture()
	for _, tc := range []struct {
		up   KindUpgrade
		want string
	}{
		{Upgrade("counter", "nope", m), `"nope" is not a kind`},
		{Upgrade("nope", "counter2", m), `"nope" is not a kind`},
		{Upgrade("counter", "counter", m), "same kind"},
		{Upgrade("counter", "counter2", noBack), "no Back"},
		{Upgrade("counter", "counter2", health), "Health"},
		{KindUpgrade{From: "counter", To: "counter2"}, "not made with daemon.Upgrade"},
	} {
		cfg := f.config(t, "a")
		cfg.Upgrades = []KindUpgrade{tc.up}
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrConfig naming %q", tc.up, err, tc.want)
		}
	}
	cfg := f.config(t, "a")
	cfg.Upgrades = append(cfg.Upgrades, cfg.Upgrades[0])
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("an upgrade registered twice: %v", err)
	}
}

// TestUpgradePlanArgsByValue: a child's arguments are the same whatever
// integer width they arrived in (a client's msgpack, a config file's
// JSON): only the kind changes here.
func TestUpgradePlanArgsByValue(t *testing.T) {
	old := counterSpec()
	old.Children[1].Args = map[string]any{"name": "w2", "n": int64(300), "l": []any{int64(1)}}
	req := counterSpec()
	req.Children[1].Args = map[string]any{"name": "w2", "n": int16(300), "l": []any{int8(1)}}
	req.Children[1].Kind = "counter2"
	nw, changed, err := upgradePlan(old, gateway.UpgradeApp{Spec: req})
	if err != nil || !slices.Equal(changed, []int{1}) || nw.Children[1].Kind != "counter2" {
		t.Fatalf("plan: %v, changed %v", err, changed)
	}
	req.Children[1].Args["n"] = int16(301)
	if _, _, err := upgradePlan(old, gateway.UpgradeApp{Spec: req}); err == nil || !strings.Contains(err.Error(), "children[1]") {
		t.Fatalf("plan with other args: %v, want a refusal naming children[1]", err)
	}
}

// countHandler counts the records of one message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestAppUpgradeLogBounded: refused upgrades, which a capability holder
// can ask for without end, log a bounded number of lines.
func TestAppUpgradeLogBounded(t *testing.T) {
	var n atomic.Int64
	f := newFixture()
	cfg := f.config(t, "a")
	cfg.Apps = fastApps("a")
	cfg.Logger = slog.New(countHandler{msg: "applications: rolling upgrade failed", n: &n})
	a := start(t, cfg)
	spec := AppSpec{Name: "shop", Children: []AppChild{{Name: "w1", Kind: "counter", Args: map[string]any{"name": "w1"}}}}
	eventually(t, 20*time.Second, "shop deployed", func() bool {
		return appCall(t, a, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 20*time.Second, "shop running", func() bool {
		info, ok := appOn(t, a, "shop")
		return ok && info.State == "running" && a.apps.liveApp("shop") != nil
	})
	for range 50 {
		r := upgradeCall(t, a, gateway.UpgradeApp{Spec: spec}) // nothing changes: refused
		if !errors.Is(r.Result.Err(), gateway.ErrBadAppSpec) {
			t.Fatalf("upgrade: %v", r.Result.Err())
		}
	}
	if got := n.Load(); got < 1 || got > 10 {
		t.Fatalf("%d lines for 50 refused upgrades, want 1 to 10", got)
	}
}

// TestAppUpgradeKeepsOperatorsDeploy: an operator's deploy made while an
// upgrade runs is the registry's last word: the upgrade, which finds the
// record changed once its children have moved, moves them back and fails,
// and neither overwrites that deploy with its new spec nor puts the old
// spec back. (A conditional deploy is what makes the upgrade's own write
// safe against a change that lands just before it: appreg's
// TestConditionalDeployIsCompareAndSet.)
func TestAppUpgradeKeepsOperatorsDeploy(t *testing.T) {
	f := newFixture()
	a, b, c := threeDaemons(t, f)
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	// w3 is busy until the test says: the upgrade waits on it once w1
	// and w2 have moved.
	held := f.holdBusy(t, a, refs["w3"])
	steps := make(chan gateway.UpgradeStep, 10)
	prog, err := a.System().Spawn(context.Background(), func() actor.Actor { return stepSink(steps) })
	if err != nil {
		t.Fatal(err)
	}
	nw := counterSpec()
	for i := range nw.Children {
		nw.Children[i].Kind = "counter2"
	}
	res := make(chan gateway.UpgradeResult, 1)
	go func() { res <- upgradeCall(t, a, gateway.UpgradeApp{Spec: nw, Progress: prog}) }()
	for _, w := range []string{"w1", "w2"} {
		select {
		case s := <-steps:
			if s.Child != w || s.Outcome != "upgraded" {
				t.Fatalf("progress %+v, want %s upgraded", s, w)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no progress for %s", w)
		}
	}
	user := counterSpec()
	user.Intensity = 11
	if err := appCall(t, b, gateway.DeployApp{Spec: user}).(gateway.AppResult).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the operator's deploy seen on a", func() bool {
		info, _ := appOn(t, a, "shop")
		return sameEncoding(info.Spec, user)
	})
	close(f.hold)
	<-held
	r := <-res
	if err := r.Result.Err(); !errors.Is(err, gateway.ErrUpgradeFailed) || !strings.Contains(err.Error(), "changed during the upgrade") {
		t.Fatalf("upgrade: %v (steps %+v), want ErrUpgradeFailed naming the changed record", err, r.Steps)
	}
	// The registry keeps the operator's deploy, on every replica (the
	// upgrade's writes are over once it has answered).
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 10*time.Second, d.Info().Node+" holds the operator's deploy", func() bool {
			info, _ := appOn(t, d, "shop")
			return sameEncoding(info.Spec, user) && info.Desired == "running"
		})
	}
}

// boomV2 is the actor type of the kind "boom", whose factory panics.
type boomV2 struct{}

func (boomV2) Receive(*actor.Context, any) (any, error) { return nil, nil }

// TestAppUpgradeFactoryPanics: a target kind whose factory panics refuses
// the move, naming the panic; the daemon lives on (the factory is first
// called on a goroutine of the daemon's, where a panic would end the
// process) and the child runs its old kind.
func TestAppUpgradeFactoryPanics(t *testing.T) {
	f := newFixture()
	cfg := f.config(t, "a")
	cfg.Apps = fastApps("a")
	cfg.Kinds["boom"] = Kind(func(a ctrArgs) (actor.Factory, error) {
		return func() actor.Actor { panic("the factory of boom fails for " + a.Name) }, nil
	})
	cfg.Upgrades = append(cfg.Upgrades, Upgrade("counter", "boom", upgrade.Migration[*counterV1, *boomV2]{
		Forward: func(o *counterV1) (*boomV2, error) { return &boomV2{}, nil },
		Back:    func(n *boomV2) (*counterV1, error) { return &counterV1{f: f}, nil },
	}))
	a := start(t, cfg)
	spec := AppSpec{Name: "one", Intensity: 10, Period: gateway.Duration(time.Second),
		Children: []AppChild{{Name: "w1", Kind: "counter", Args: map[string]any{"name": "w1"}, Shutdown: "1s"}}}
	eventually(t, 30*time.Second, "one deployed", func() bool {
		return appCall(t, a, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	var w1 actor.Ref
	eventually(t, 30*time.Second, "one's w1 runs on a", func() bool {
		info, ok := appOn(t, a, "one")
		live := a.apps.liveApp("one")
		if !ok || info.State != "running" || live == nil {
			return false
		}
		ref, err := a.apps.childRef(context.Background(), live.root, "w1")
		w1 = ref
		return err == nil
	})
	r := upgradeCall(t, a, gateway.UpgradeApp{App: "one", Child: "w1", Kind: "boom"})
	err := r.Result.Err()
	if !errors.Is(err, gateway.ErrUpgradeFailed) || !strings.Contains(err.Error(), "panic: the factory of boom fails for w1") {
		t.Fatalf("upgrade: %v, want ErrUpgradeFailed naming the factory's panic", err)
	}
	if len(r.Steps) != 1 || r.Steps[0].Outcome != "refused" {
		t.Fatalf("steps %+v, want w1 refused", r.Steps)
	}
	if got := askInc(t, a.System(), w1); got != "v1:1" {
		t.Fatalf("w1 answered %q, want the old kind's v1:1", got)
	}
	if k := a.apps.liveApp("one").slots["w1"].current(); k != "counter" {
		t.Fatalf("w1's slot says %q, want counter", k)
	}
}

// TestAppUpgradeUnknownRollback: b's gateway stops answering a (a ref
// that is gone stands for it): w2's move and its move back get no answer,
// and neither does the question which kind w2 runs. The upgrade does not
// guess: w2's step says "unknown", the reply says the rollback is
// incomplete, the AppUpgraded event says so too, and w2's slot keeps the
// old kind the registry names, so the root's next restart of w2 (which
// never moved) makes the old kind.
func TestAppUpgradeUnknownRollback(t *testing.T) {
	f := newFixture()
	a, _, _ := threeDaemons(t, f)
	done, err := event.Subscribe[AppUpgraded](a.Bus())
	if err != nil {
		t.Fatal(err)
	}
	defer done.Unsubscribe()
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := a.System().Spawn(context.Background(), func() actor.Actor { return stepSink(nil) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.System().Kill(ctx, gone); err != nil {
		t.Fatal(err)
	}
	a.gw.mu.Lock()
	bgw := a.gw.peers["b"]
	unreachable := bgw
	unreachable.ref = gone
	a.gw.peers["b"] = unreachable
	a.gw.mu.Unlock()
	r := upgradeCall(t, a, gateway.UpgradeApp{App: "shop", Child: "w2", Kind: "counter2"})
	a.gw.mu.Lock()
	a.gw.peers["b"] = bgw
	a.gw.mu.Unlock()
	err = r.Result.Err()
	if !errors.Is(err, gateway.ErrUpgradeFailed) || !strings.Contains(err.Error(), rollbackIncomplete+": w2 runs counter or counter2") {
		t.Fatalf("upgrade: %v, want ErrUpgradeFailed saying the rollback of w2 is incomplete", err)
	}
	if len(r.Steps) != 1 || r.Steps[0].Outcome != "unknown" || !strings.Contains(r.Steps[0].Reason, "which kind it runs is not known") {
		t.Fatalf("steps %+v, want w2 unknown", r.Steps)
	}
	if e := nextAppUpgraded(t, ctx, done, ""); e.Outcome != "rollback incomplete" {
		t.Errorf("AppUpgraded %+v, want rollback incomplete", e)
	}
	if k := a.apps.liveApp("shop").slots["w2"].current(); k != "counter" {
		t.Fatalf("w2's slot says %q, want the registry's counter", k)
	}
	w2 := restartedChild(t, a, a, "w2", refs["w2"])
	if got := askInc(t, a.System(), w2); got != "v1:1" {
		t.Fatalf("restarted w2 answered %q, want a fresh counter's v1:1", got)
	}
}

// TestMoveActorSerialized: the moves of one actor are carried out one at
// a time on its daemon: a move back sent while the move forward waits
// (its actor is busy) waits for it, and gives up naming it; then, once
// the forward move has happened, Which says the actor runs the new kind.
func TestMoveActorSerialized(t *testing.T) {
	f := newFixture()
	cfg := f.config(t, "a")
	a := start(t, cfg)
	w, err := a.System().Spawn(context.Background(), func() actor.Actor { return &counterV1{name: "w", f: f} })
	if err != nil {
		t.Fatal(err)
	}
	held := f.holdBusy(t, a, w)
	args := map[string]any{"name": "w"}
	fwd := make(chan childUpgraded, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), childUpgradeTimeout)
		defer cancel()
		fwd <- a.moveActor(ctx, childUpgrade{Ref: w, Old: "counter", New: "counter2", Args: args})
	}()
	eventually(t, 10*time.Second, "the forward move under way", func() bool {
		a.moves.mu.Lock()
		defer a.moves.mu.Unlock()
		return a.moves.m[w] != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	r := a.moveActor(ctx, childUpgrade{Ref: w, Old: "counter", New: "counter2", Args: args, Back: true})
	cancel()
	if r.Code != cuUnknown || !strings.Contains(r.Msg, "waiting for the move of the actor under way") {
		t.Fatalf("move back during the move forward: %+v, want it to wait for it", r)
	}
	close(f.hold)
	<-held
	if r := <-fwd; r.Code != cuOK {
		t.Fatalf("move forward: %+v", r)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := a.moveActor(ctx, childUpgrade{Ref: w, Old: "counter", New: "counter2", Which: true}); r.Code != cuOK || r.Kind != "counter2" {
		t.Fatalf("which: %+v, want counter2", r)
	}
	if got := askInc(t, a.System(), w); got != "v2:1" {
		t.Fatalf("w answered %q after its move", got)
	}
}

// TestAppUpgradeRollbackFails: w3's move fails, then w2's move back: w2
// runs its new kind, as its daemon says when asked, so its step says
// "rollback failed", its slot the new kind (the root's restarts make
// what it runs), and the reply and the AppUpgraded event say the
// rollback is incomplete; w1 is rolled back.
func TestAppUpgradeRollbackFails(t *testing.T) {
	f := newFixture()
	f.failOn.Store("w3")
	f.failBack.Store("w2")
	a, _, _ := threeDaemons(t, f)
	done, err := event.Subscribe[AppUpgraded](a.Bus())
	if err != nil {
		t.Fatal(err)
	}
	defer done.Unsubscribe()
	refs, err := childRefs(a)
	if err != nil {
		t.Fatal(err)
	}
	nw := counterSpec()
	for i := range nw.Children {
		nw.Children[i].Kind = "counter2"
	}
	r := upgradeCall(t, a, gateway.UpgradeApp{Spec: nw})
	err = r.Result.Err()
	if !errors.Is(err, gateway.ErrUpgradeFailed) || !strings.Contains(err.Error(), rollbackIncomplete+": w2 runs counter2") {
		t.Fatalf("upgrade: %v, want ErrUpgradeFailed saying w2 runs counter2", err)
	}
	var outcomes []string
	for _, s := range r.Steps {
		outcomes = append(outcomes, s.Child+" "+s.Outcome)
	}
	if want := []string{"w1 rolled back", "w2 rollback failed", "w3 refused"}; !slices.Equal(outcomes, want) {
		t.Fatalf("steps %+v, want %v", r.Steps, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if e := nextAppUpgraded(t, ctx, done, ""); e.Outcome != "rollback incomplete" {
		t.Errorf("AppUpgraded %+v, want rollback incomplete", e)
	}
	if k := a.apps.liveApp("shop").slots["w2"].current(); k != "counter2" {
		t.Fatalf("w2's slot says %q, want counter2, which it runs", k)
	}
	if got := askInc(t, a.System(), refs["w2"]); got != "v2:1" {
		t.Fatalf("w2 answered %q, want counter2's v2:1", got)
	}
}

// restartedChild kills child name (running on host, with ref old) and
// waits for root's daemon root to restart it; it returns the new ref.
func restartedChild(t *testing.T, host, root *Daemon, name string, old actor.Ref) actor.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.System().Kill(ctx, old); err != nil {
		t.Fatal(err)
	}
	var now actor.Ref
	eventually(t, 20*time.Second, name+" restarted", func() bool {
		refs, err := childRefs(root)
		now = refs[name]
		return err == nil && !now.IsZero() && now != old
	})
	return now
}

// holdBusy asks ref (a counter of f on d) to hold: its handler waits until the
// test releases it, keeping the actor busy. It returns when the handler
// has begun, with the channel the ask's outcome comes on.
func (f *upgradeFixture) holdBusy(t *testing.T, d *Daemon, ref actor.Ref) <-chan error {
	t.Helper()
	held := make(chan error, 1)
	go func() {
		_, err := d.System().Ask(context.Background(), ref, "hold")
		held <- err
	}()
	select {
	case <-f.entered:
	case err := <-held:
		t.Fatalf("%v did not hold: %v", ref, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%v did not get the hold ask", ref)
	}
	return held
}
