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
)

// The kinds of the move tests: "tally" counts the "inc" asks it gets and
// answers the count; its state crosses daemons as tallyState. Daemon c
// runs the "new binary": its tally is a tallyV2, whose state has a field
// the old one does not send. "plain" has no handoff.

type tallyArgs struct {
	Name string `msgpack:"name"`
}

type tally struct {
	name string
	n    int64
}

func (c *tally) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "slow" {
		slowInc.wait()
		msg = "inc"
	}
	if msg == "inc" {
		c.n++
		return c.n, nil
	}
	return nil, actor.ErrUnknownMessage
}

type tallyV2 struct {
	name  string
	n     int64
	since string // new in v2; empty when the state came from v1
}

func (c *tallyV2) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "slow" {
		slowInc.wait()
		msg = "inc"
	}
	if msg == "inc" {
		c.n++
		return c.n, nil
	}
	return nil, actor.ErrUnknownMessage
}

// slowInc, once set, makes a tally's "slow" (an "inc") tell entered, then
// wait for gate to close.
var slowInc slowGate

type slowGate struct {
	p atomic.Pointer[slowChans]
}

type slowChans struct{ entered, gate chan struct{} }

func (g *slowGate) wait() {
	if s := g.p.Load(); s != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
}

type tallyState struct {
	Name string `msgpack:"name"`
	N    int64  `msgpack:"n"`
}

type tallyStateV2 struct {
	Name  string `msgpack:"name"`
	N     int64  `msgpack:"n"`
	Since string `msgpack:"since"`
}

// moveFixture is what the kinds of every daemon of a test share.
type moveFixture struct {
	failExport atomic.Value // string: the child whose export fails
	panicOn    atomic.Value // string: the child whose export panics
	failImport atomic.Value // string: the child whose import fails
}

func (f *moveFixture) config(t *testing.T, name string, seeds ...string) Config {
	return f.configOf(t, name, name == "c", seeds...)
}

// configOf is config with the binary's version chosen: v2, the new one.
func (f *moveFixture) configOf(t *testing.T, name string, v2 bool, seeds ...string) Config {
	c := testConfig(t, name, seeds...)
	is := func(v *atomic.Value, s string) bool { x, _ := v.Load().(string); return x != "" && x == s }
	c.Kinds = Kinds{
		"tally": Kind(func(a tallyArgs) (actor.Factory, error) {
			if v2 {
				return func() actor.Actor { return &tallyV2{name: a.Name, since: "fresh"} }, nil
			}
			return func() actor.Actor { return &tally{name: a.Name} }, nil
		}),
		"plain": Kind(func(a tallyArgs) (actor.Factory, error) {
			return func() actor.Actor { return &tally{name: a.Name} }, nil
		}),
	}
	if v2 {
		c.Handoffs = []KindHandoff{Handoff("tally",
			func(a *tallyV2) (tallyStateV2, error) { return tallyStateV2{Name: a.name, N: a.n, Since: a.since}, nil },
			func(s tallyStateV2) (*tallyV2, error) {
				if is(&f.failImport, s.Name) {
					return nil, errors.New("the test refuses " + s.Name)
				}
				return &tallyV2{name: s.Name, n: s.N, since: s.Since}, nil
			})}
	} else {
		c.Handoffs = []KindHandoff{Handoff("tally",
			func(a *tally) (tallyState, error) {
				if is(&f.panicOn, a.name) {
					panic("the test panics in " + a.name)
				}
				if is(&f.failExport, a.name) {
					return tallyState{}, errors.New("the test refuses " + a.name)
				}
				return tallyState{Name: a.name, N: a.n}, nil
			},
			func(s tallyState) (*tally, error) {
				if is(&f.failImport, s.Name) {
					return nil, errors.New("the test refuses " + s.Name)
				}
				return &tally{name: s.Name, n: s.N}, nil
			})}
	}
	c.Apps = fastApps("a", "b", "c")
	c.Apps.ElectionTicks, c.Apps.Lease, c.Apps.RenewEvery = 25, 3*time.Second, 300*time.Millisecond
	return c
}

func storeSpec(name, kind string, children ...string) AppSpec {
	s := AppSpec{Name: name, Intensity: 10, Period: gateway.Duration(time.Second), Prefer: []string{"a"}, Takeover: true}
	for _, n := range children {
		s.Children = append(s.Children, AppChild{Name: n, Kind: kind, Args: map[string]any{"name": n}, Shutdown: "1s"})
	}
	return s
}

// moveCluster starts a, b and c and deploys the specs; it returns once
// each runs its root on a with all its children.
func moveCluster(t *testing.T, f *moveFixture, specs ...AppSpec) (a, b, c *Daemon) {
	t.Helper()
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
	for _, s := range specs {
		eventually(t, 20*time.Second, s.Name+" deployed", func() bool {
			return appCall(t, b, gateway.DeployApp{Spec: s}).(gateway.AppResult).Err() == nil
		})
		eventually(t, 30*time.Second, s.Name+" runs on a with its children", func() bool {
			info, ok := appOn(t, a, s.Name)
			if !ok || info.State != "running" || info.Node != "a" {
				return false
			}
			kids, err := placed(a, s.Name)
			return err == nil && len(kids) == len(s.Children)
		})
	}
	return a, b, c
}

// placed lists app's running children (root on a) and their daemons.
func placed(a *Daemon, app string) (map[string]placedChild, error) {
	live := a.apps.liveApp(app)
	if live == nil {
		return nil, fmt.Errorf("%s's root does not run on a", app)
	}
	kids, err := a.apps.children(context.Background(), live.root)
	if err != nil {
		return nil, err
	}
	out := map[string]placedChild{}
	for _, k := range kids {
		out[k.id] = k
	}
	return out, nil
}

func moveCall(t *testing.T, d *Daemon, m gateway.MoveChild) gateway.MoveResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), moveTimeout+10*time.Second)
	defer cancel()
	v, err := d.System().Ask(ctx, d.Gateway().Ref(), m)
	if err != nil {
		t.Fatalf("move on %s: %v", d.Info().Node, err)
	}
	r, ok := v.(gateway.MoveResult)
	if !ok {
		t.Fatalf("move on %s: reply %T", d.Info().Node, v)
	}
	return r
}

func inc(t *testing.T, sys *actor.System, ref actor.Ref) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := sys.Ask(ctx, ref, "inc")
	if err != nil {
		t.Fatalf("inc %v: %v", ref, err)
	}
	n, _ := v.(int64)
	return n
}

// other returns a member name that is neither of not.
func other(not ...string) string {
	for _, n := range []string{"a", "b", "c"} {
		if !slices.Contains(not, n) {
			return n
		}
	}
	return ""
}

// loadAsker asks one ref "inc" without pause until stopped, checking each
// answer is the last plus one.
type loadAsker struct {
	sys *actor.System
	mu  sync.Mutex
	ref actor.Ref

	last     int64
	answered int
	problems []string
}

func (k *loadAsker) target() actor.Ref {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ref
}

func (k *loadAsker) setTarget(r actor.Ref) {
	k.mu.Lock()
	k.ref = r
	k.mu.Unlock()
}

func (k *loadAsker) count() (int, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.answered, k.last
}

func (k *loadAsker) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		v, err := k.sys.Ask(ctx, k.target(), "inc")
		cancel()
		k.mu.Lock()
		n, _ := v.(int64)
		switch {
		case err != nil:
			k.problems = append(k.problems, fmt.Sprintf("ask %d failed: %v", k.answered+1, err))
		case n != k.last+1:
			k.problems = append(k.problems, fmt.Sprintf("answered %d after %d", n, k.last))
		default:
			k.answered++
		}
		if err == nil {
			k.last = n
		}
		k.mu.Unlock()
	}
}

// TestMoveChildUnderLoad: a child moves to another daemon while a client
// asks it without pause through its old ref: every ask is answered and
// the count is continuous (nothing lost, nothing counted twice, order
// kept) before, during and after the move, through the forwarder and then
// through the new ref; the root's child is the new instance, on the
// target, and the new binary's import got the old state (a field it added
// is zero).
func TestMoveChildUnderLoad(t *testing.T) {
	f := &moveFixture{}
	a, _, c := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	// A child not on c, moved to c (the new binary).
	var name string
	for _, n := range []string{"t1", "t2", "t3"} {
		if kids[n].node != "c" {
			name = n
			break
		}
	}
	old := kids[name]
	k := &loadAsker{sys: a.sys, ref: old.ref}
	stop, done := make(chan struct{}), make(chan struct{})
	go k.run(stop, done)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	eventually(t, 20*time.Second, "asks before the move", func() bool { n, _ := k.count(); return n >= 50 })

	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: "c"})
	if err := r.Err(); err != nil {
		t.Fatalf("move: %v", err)
	}
	if r.From != old.node || r.To != "c" || r.Result.Msg != "" {
		t.Fatalf("move result %+v, want from %s to c", r, old.node)
	}
	now, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	nw := now[name]
	if nw.node != "c" || nw.ref == old.ref {
		t.Fatalf("after the move the root runs %+v, want a new instance on c", nw)
	}
	// Asks through the old ref (forwarded) go on.
	n0, _ := k.count()
	eventually(t, 20*time.Second, "asks forwarded after the move", func() bool { n, _ := k.count(); return n >= n0+50 })
	// Then through the new ref.
	k.setTarget(nw.ref)
	n1, _ := k.count()
	eventually(t, 20*time.Second, "asks to the new ref", func() bool { n, _ := k.count(); return n >= n1+50 })
	close(stop)
	<-done
	if len(k.problems) > 0 {
		t.Fatalf("%d problems, the first: %v", len(k.problems), k.problems[:min(5, len(k.problems))])
	}
	answered, last := k.count()
	if int64(answered) != last {
		t.Fatalf("%d asks answered, count %d", answered, last)
	}
	var since string
	var isV2 bool
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node, addr, id, _ := a.node.ExportRef(nw.ref)
	onC, err := c.node.ImportRef(node, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.sys.Inspect(ctx, onC, func(_ *actor.Context, x actor.Actor) {
		v, ok := x.(*tallyV2)
		isV2 = ok
		if ok {
			since = v.since
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !isV2 || since != "" {
		t.Fatalf("the new instance: a tallyV2 %v, since %q; want an imported tallyV2 with no since", isV2, since)
	}
	// Not counted as a restart, and the root runs on.
	if info, ok := appOn(t, a, "store"); !ok || info.State != "running" {
		t.Fatalf("store: %+v", info)
	}
}

// TestMoveChildFailures: an export that fails or panics, an import that
// fails, and a dead target leave the old instance serving with its count,
// and the reply names the cause.
func TestMoveChildFailures(t *testing.T) {
	f := &moveFixture{}
	a, _, c := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3"), storeSpec("misc", "plain", "p1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	// A child not on c; moved to the third daemon (not c, not its own)
	// for the export and import failures, to c once c is dead.
	var name string
	for _, n := range []string{"t1", "t2", "t3"} {
		if kids[n].node != "c" {
			name = n
			break
		}
	}
	child := kids[name]
	want := inc(t, a.sys, child.ref) + 1
	check := func(what string, r gateway.MoveResult, sentinel error) {
		t.Helper()
		if err := r.Err(); !errors.Is(err, sentinel) {
			t.Fatalf("%s: %v, want %v", what, err, sentinel)
		}
		now, err := placed(a, "store")
		if err != nil {
			t.Fatal(err)
		}
		if now[name].ref != child.ref {
			t.Fatalf("%s: the root's child is %v, want the old %v", what, now[name].ref, child.ref)
		}
		if n := inc(t, a.sys, child.ref); n != want {
			t.Fatalf("%s: the old instance counts %d, want %d", what, n, want)
		}
		want++
	}
	to := other(child.node, "c")
	f.failExport.Store(name)
	check("export error", moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: to}), gateway.ErrExport)
	f.failExport.Store("")
	f.panicOn.Store(name)
	check("export panic", moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: to}), gateway.ErrExport)
	f.panicOn.Store("")
	f.failImport.Store(name)
	check("import error", moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: to}), gateway.ErrImport)
	f.failImport.Store("")
	check("unknown target", moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: "zz"}), gateway.ErrTargetDown)
	// No handoff for plain.
	pk, err := placed(a, "misc")
	if err != nil {
		t.Fatal(err)
	}
	r := moveCall(t, a, gateway.MoveChild{App: "misc", Child: "p1", To: other(pk["p1"].node)})
	if !errors.Is(r.Err(), gateway.ErrNoHandoff) {
		t.Fatalf("plain: %v, want ErrNoHandoff", r.Err())
	}
	// A dead target: c is killed; a move to c before and after a knows.
	c.Kill()
	if name != "" && child.node != "c" {
		check("dead target", moveCall(t, a, gateway.MoveChild{App: "store", Child: name, To: "c"}), gateway.ErrTargetDown)
	}
}

// TestDrain: b is drained while it runs children of two applications:
// every child with a handoff moves elsewhere with its count; the one
// without stays, its outcome ErrNoHandoff; b runs no child with a handoff
// afterwards.
func TestDrain(t *testing.T) {
	f := &moveFixture{}
	a, b, _ := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3", "t4", "t5", "t6"),
		storeSpec("depot", "tally", "d1", "d2", "d3"), storeSpec("misc", "plain", "p1", "p2", "p3"))
	counts := map[string]int64{}
	onB := 0
	for _, app := range []string{"store", "depot"} {
		kids, err := placed(a, app)
		if err != nil {
			t.Fatal(err)
		}
		for n, k := range kids {
			counts[app+"/"+n] = inc(t, a.sys, k.ref)
			if k.node == "b" {
				onB++
			}
		}
	}
	if onB < 2 {
		t.Fatalf("%d tally children on b, want two or more (spread over three daemons)", onB)
	}
	mk, err := placed(a, "misc")
	if err != nil {
		t.Fatal(err)
	}
	plainOnB := 0
	for _, k := range mk {
		if k.node == "b" {
			plainOnB++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := b.sys.Ask(ctx, b.Gateway().Ref(), gateway.Drain{})
	if err != nil {
		t.Fatal(err)
	}
	res := v.(gateway.DrainResult)
	if res.Node != "b" || res.Result.Code != gateway.AppOK || res.Moved() != onB || len(res.Children) != onB+plainOnB {
		t.Fatalf("drain: %+v, want %d moved and %d left", res, onB, plainOnB)
	}
	for _, r := range res.Children {
		if r.App == "misc" {
			if !errors.Is(r.Err(), gateway.ErrNoHandoff) {
				t.Fatalf("%s/%s: %v, want ErrNoHandoff", r.App, r.Child, r.Err())
			}
			continue
		}
		if r.Err() != nil || r.From != "b" || r.To == "b" {
			t.Fatalf("%s/%s: %+v", r.App, r.Child, r)
		}
	}
	for _, app := range []string{"store", "depot"} {
		kids, err := placed(a, app)
		if err != nil {
			t.Fatal(err)
		}
		for n, k := range kids {
			if k.node == "b" {
				t.Fatalf("%s/%s still runs on b", app, n)
			}
			if got := inc(t, a.sys, k.ref); got != counts[app+"/"+n]+1 {
				t.Fatalf("%s/%s counts %d after the drain, want %d", app, n, got, counts[app+"/"+n]+1)
			}
		}
	}
}

// TestDrainOnStop: with DrainOnStop, the Shutdown (what SIGTERM runs) of
// a, which runs the root and a child, moves the child with its state and
// hands the root over to b or c, whose new root adopts every child where
// it runs: after a stopped, each child answers its count plus one. This is
// one step of a rolling restart onto a new binary.
func TestDrainOnStop(t *testing.T) {
	f := &moveFixture{}
	ca := f.config(t, "a")
	ca.DrainOnStop = true
	a := start(t, ca)
	seed := a.Info().GossipAddr
	b := start(t, f.config(t, "b", seed))
	c := start(t, f.config(t, "c", seed))
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	spec := storeSpec("store", "tally", "t1", "t2", "t3")
	eventually(t, 20*time.Second, "store deployed", func() bool {
		return appCall(t, a, gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})
	var onA string
	eventually(t, 30*time.Second, "store runs on a with a child on a", func() bool {
		kids, err := placed(a, "store")
		if err != nil || len(kids) != 3 {
			return false
		}
		onA = ""
		for n, k := range kids {
			if k.node == "a" {
				onA = n
			}
		}
		return onA != ""
	})
	kids, _ := placed(a, "store")
	want := map[string]int64{}
	for n, k := range kids {
		want[n] = inc(t, b.sys, k.ref) + 1
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var holder *Daemon
	var now map[string]placedChild
	eventually(t, 30*time.Second, "store's root on b or c with its three children", func() bool {
		for _, d := range []*Daemon{b, c} {
			if live := d.apps.liveApp("store"); live != nil {
				ks, err := d.apps.children(context.Background(), live.root)
				if err != nil || len(ks) != 3 {
					return false
				}
				now = map[string]placedChild{}
				for _, k := range ks {
					now[k.id] = k
				}
				holder = d
				return true
			}
		}
		return false
	})
	for n, k := range now {
		if k.node == "a" {
			t.Fatalf("after a stopped, %s is %+v", n, k)
		}
		if n == onA && k.ref == kids[n].ref {
			t.Fatalf("%s, on a before, kept its ref %v", n, k.ref)
		}
		if got := inc(t, holder.sys, k.ref); got != want[n] {
			t.Fatalf("%s counts %d after a's drain, want %d (its state lost?)", n, got, want[n])
		}
	}
}

// TestHandoffConfig: Config.Validate refuses bad handoffs.
func TestHandoffConfig(t *testing.T) {
	f := &moveFixture{}
	exp := func(a *tally) (tallyState, error) { return tallyState{}, nil }
	imp := func(s tallyState) (*tally, error) { return &tally{}, nil }
	for _, tc := range []struct {
		name string
		hs   []KindHandoff
	}{
		{"unknown kind", []KindHandoff{Handoff("nope", exp, imp)}},
		{"twice", []KindHandoff{Handoff("tally", exp, imp), Handoff("tally", exp, imp)}},
		{"nil export", []KindHandoff{Handoff[*tally, tallyState]("tally", nil, imp)}},
		{"nil import", []KindHandoff{Handoff[*tally, tallyState]("tally", exp, nil)}},
		{"zero value", []KindHandoff{{Kind: "tally"}}},
	} {
		c := f.config(t, "a")
		c.Handoffs = tc.hs
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
	c := f.config(t, "a")
	if err := c.Validate(); err != nil {
		t.Fatalf("good handoffs: %v", err)
	}
}

// TestSpawnImportBounds: the target refuses a state over
// MaxHandoffState, one that does not decode, a kind without handoff, and
// the hold and import messages from a non-member (a client).
func TestSpawnImportBounds(t *testing.T) {
	f := &moveFixture{}
	d := start(t, f.config(t, "a"))
	ask := func(m any) childReleased {
		t.Helper()
		r, ok := appCall(t, d, localImport{m.(spawnImport)}).(childReleased)
		if !ok {
			t.Fatalf("%T: reply not a childReleased", m)
		}
		return r
	}
	if r := ask(spawnImport{Kind: "tally", State: make([]byte, MaxHandoffState+1)}); r.Code != mvImport || !strings.Contains(r.Msg, "at most") {
		t.Fatalf("oversized state: %+v", r)
	}
	if r := ask(spawnImport{Kind: "tally", State: []byte{0xc1}}); r.Code != mvImport || !strings.Contains(r.Msg, "decoding") {
		t.Fatalf("bad state: %+v", r)
	}
	if r := ask(spawnImport{Kind: "plain", State: []byte{0x80}}); r.Code != mvNoHandoff {
		t.Fatalf("kind without handoff: %+v", r)
	}
	if r := ask(spawnImport{Kind: "tally", Args: map[string]any{"name": "x"}, State: []byte{0x81, 0xa1, 'n', 0x07}}); r.Code != mvOK || r.Ref.IsZero() {
		t.Fatalf("good state: %+v", r)
	}
	// A client (not a member) is not answered.
	cn := testNode(t, "client", nil)
	if err := RegisterGatewayTypes(cn); err != nil {
		t.Fatal(err)
	}
	startNode(t, cn)
	gw, err := d.Gateway().Capability().Ref(cn)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []any{spawnImport{Kind: "tally"}, childHold{Kind: "tally"}, childRelease{Token: 1}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cn.System().Ask(ctx, gw, m)
		cancel()
		if !errors.Is(err, actor.ErrUnknownMessage) {
			t.Fatalf("%T from a client: %v, want ErrUnknownMessage", m, err)
		}
	}
}

// TestClientSendsNoMoveSteps: a one-way send from a client arrives
// without a sender, as a local one would: the move steps must refuse it
// too. The client sends a hold of a child and the release (to another
// ref) of a hold a local mover made; then the local mover must still own
// its hold, and nothing else is held.
func TestClientSendsNoMoveSteps(t *testing.T) {
	f := &moveFixture{}
	d := start(t, f.config(t, "a"))
	cn := testNode(t, "client", nil)
	if err := RegisterGatewayTypes(cn); err != nil {
		t.Fatal(err)
	}
	startNode(t, cn)
	gw, err := d.Gateway().Capability().Ref(cn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spawn := func(name string) actor.Ref {
		v, err := cn.System().Ask(ctx, gw, SpawnKind{Kind: "tally", Args: map[string]any{"name": name}})
		if err != nil {
			t.Fatal(err)
		}
		return v.(SpawnResult).Ref
	}
	// Refs as the client has them (for its messages), and mine as the
	// daemon has it (for its own mover).
	victim, other := spawn("victim"), spawn("other")
	mine := appCall(t, d, SpawnKind{Kind: "tally", Args: map[string]any{"name": "mine"}}).(SpawnResult).Ref
	held := d.holdChild(ctx, childHold{Ref: mine, Kind: "tally"})
	if held.Code != mvOK {
		t.Fatalf("local hold: %+v", held)
	}
	for _, m := range []any{
		childHold{Ref: victim, Kind: "tally"},
		childRelease{Token: held.Token, To: other},
		spawnImport{Kind: "tally", Args: map[string]any{"name": "x"}, Owner: other, State: []byte{0x80}},
	} {
		if err := cn.System().Send(gw, m); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway has had the sends once it answers an ask sent after
	// them; a step it took runs on a goroutine, which a second lets run.
	if _, err := cn.System().Ask(ctx, gw, ListMembers{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n := d.holds.n.Load(); n != 1 {
			t.Fatalf("%d holds, want the local mover's only", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := d.releaseChild(ctx, childRelease{Token: held.Token, Resume: true}); r.Code != mvOK {
		t.Fatalf("the local mover's release after the client's: %+v", r)
	}
	if n := inc(t, cn.System(), victim); n != 1 {
		t.Fatalf("victim: %d", n)
	}
}

// TestDrainWaitsForAStartingApplication: right after a root's handover
// (or failover) the application is "starting" in the registry's list
// until its new holder's renewal is applied, by the draining daemon's
// replica too, while its children run on. A drain that lists it so then
// waits for it to run and moves its children, rather than skip it and
// leave them to die with the daemon. The replica's lag (a heartbeat or
// two) is made certain here by listing the application as starting once.
func TestDrainWaitsForAStartingApplication(t *testing.T) {
	f := &moveFixture{}
	a, _, c := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	var onC []string
	for id, k := range kids {
		if k.node == "c" {
			onC = append(onC, id)
		}
	}
	if len(onC) == 0 {
		t.Fatal("no child of store runs on c: the test needs one")
	}
	eventually(t, 20*time.Second, "c lists store as running", func() bool {
		info, ok := appOn(t, c, "store")
		return ok && info.State == "running"
	})
	var lagged atomic.Int32
	drainListHook = func(l *gateway.AppList) {
		for i := range l.Apps {
			if l.Apps[i].Spec.Name == "store" && lagged.Add(1) == 1 {
				l.Apps[i].State = "starting"
			}
		}
	}
	t.Cleanup(func() { drainListHook = nil })
	res := c.Drain(context.Background())
	if err := res.Result.Err(); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if lagged.Load() == 0 {
		t.Fatalf("the drain did not list the applications: %+v", res)
	}
	for _, id := range onC {
		i := slices.IndexFunc(res.Children, func(m gateway.MoveResult) bool { return m.Child == id })
		if i < 0 {
			t.Fatalf("%s ran on c and was not moved by its drain (it skipped the starting application): %+v", id, res.Children)
		}
		if err := res.Children[i].Err(); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if kids, err = placed(a, "store"); err != nil {
		t.Fatal(err)
	}
	for id, k := range kids {
		if k.node == "c" {
			t.Fatalf("%s still runs on c after its drain", id)
		}
	}
}

// TestShutdownAnswersForwardedAsks: a daemon stopped right after one of
// its children moved away (a drain, then the stop) first lets the old
// instance, now a forwarder, pass on the answers of the asks it forwarded:
// an ask in flight through it is answered by the new instance, not failed
// by the stop while the new instance still handles it (its asker, gone
// on, would see its effect after later answers).
func TestShutdownAnswersForwardedAsks(t *testing.T) {
	f := &moveFixture{}
	a, _, c := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for k, p := range kids {
		if p.node == "c" {
			id = k
		}
	}
	if id == "" {
		t.Fatal("no child of store runs on c: the test needs one")
	}
	old := kids[id].ref
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := a.sys.Ask(ctx, old, "inc")
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithTimeout(context.Background(), moveTimeout)
	defer mcancel()
	if r := a.MoveChild(mctx, "store", id, "b"); r.Err() != nil {
		t.Fatalf("move: %v", r.Err())
	}
	// An ask through the old instance (a forwarder now) that the new one
	// handles slowly: in flight when c stops.
	s := &slowChans{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	slowInc.p.Store(s)
	var closeGate sync.Once
	open := func() { closeGate.Do(func() { close(s.gate) }) }
	t.Cleanup(func() { open(); slowInc.p.Store(nil) })
	type answer struct {
		v   any
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := a.sys.Ask(ctx, old, "slow")
		got <- answer{v, err}
	}()
	select {
	case <-s.entered:
	case <-ctx.Done():
		t.Fatal("the forwarded ask never reached the new instance")
	}
	endForwardersHook = open // c waits for its forwarders' answers: let it come
	t.Cleanup(func() { endForwardersHook = nil })
	stopped := make(chan error, 1)
	go func() { stopped <- c.Shutdown(context.Background()) }()
	var ans answer
	select {
	case ans = <-got:
	case <-ctx.Done():
		t.Fatal("no answer")
	}
	open()
	if ans.err != nil {
		t.Fatalf("the ask in flight through c's forwarder failed with c's stop (%v), though the new instance handles it", ans.err)
	}
	if want := before.(int64) + 1; ans.v != want {
		t.Fatalf("answered %v, want %d", ans.v, want)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stopping c: %v", err)
	}
}

// TestDrainReportsAChildNotHeldForTheHandover: a child of a root handed
// over by a drain that its daemon could not hold for the new root (here
// it ended just before) ends with the root and is started afresh by the
// new root: the drain reports it as not moved, rather than let it pass
// for a child that keeps its state.
func TestDrainReportsAChildNotHeldForTheHandover(t *testing.T) {
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2", "t3"))
	var gone atomic.Value // string: the child killed before its hold
	handoverHoldingHook = func(recs []handoverChild, refs map[string]actor.Ref) {
		for _, r := range recs {
			if r.Node == "a" {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := a.sys.Kill(ctx, refs[r.ID]); err != nil {
				t.Errorf("kill %s: %v", r.ID, err)
			}
			gone.Store(r.ID)
			return
		}
	}
	t.Cleanup(func() { handoverHoldingHook = nil })
	res := a.Drain(context.Background())
	id, _ := gone.Load().(string)
	if id == "" {
		t.Fatalf("no child of store off a to end before the handover: %+v", res)
	}
	if len(res.Roots) != 1 || res.Roots[0].Err() != nil {
		t.Fatalf("roots: %+v", res.Roots)
	}
	i := slices.IndexFunc(res.Children, func(m gateway.MoveResult) bool { return m.Child == id && m.Err() != nil })
	if i < 0 {
		t.Fatalf("%s, not held for the handover, is not reported: %+v", id, res.Children)
	}
	t.Logf("%s: %v", id, res.Children[i].Err())
}

// TestHoldsEndedByThemselvesAreForgotten: a hold whose mover never
// releases it (its answer lost, the mover's daemon gone) resumes at its
// bound, and one whose child ends ends with it: neither counts against
// maxHolds afterwards, else the daemon would refuse every hold for good.
func TestHoldsEndedByThemselvesAreForgotten(t *testing.T) {
	defer func(m time.Duration) { holdMax = m }(holdMax)
	holdMax = 200 * time.Millisecond
	f := &moveFixture{}
	d := start(t, f.config(t, "a"))
	ctx := context.Background()
	spawn := func() actor.Ref {
		return appCall(t, d, SpawnKind{Kind: "tally", Args: map[string]any{"name": "x"}}).(SpawnResult).Ref
	}
	hold := func(ref actor.Ref) childHeld {
		t.Helper()
		r := d.holdChild(ctx, childHold{Ref: ref, Kind: "tally"})
		if r.Code != mvOK {
			t.Fatalf("hold (%d held): %+v", d.holds.n.Load(), r)
		}
		return r
	}
	for range maxHolds {
		hold(spawn())
	}
	eventually(t, 10*time.Second, "the holds resumed at their bound are forgotten", func() bool { return d.holds.n.Load() == 0 })
	ref := spawn()
	hold(ref)
	if n := inc(t, d.System(), ref); n != 1 {
		t.Fatalf("the child held and resumed counts %d", n)
	}
	// A child that ends while held, long before the bound.
	holdMax = time.Hour
	ref = spawn()
	hold(ref)
	if err := d.System().Kill(ctx, ref); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the hold of a child that ended is forgotten", func() bool { return d.holds.n.Load() == 0 })
}

// TestDrainOnStopHasItsOwnBound: the drain of DrainOnStop is bounded by
// DrainTimeout, apart from ShutdownTimeout: a drain longer than
// ShutdownTimeout leaves the shutdown proper its whole bound.
func TestDrainOnStopHasItsOwnBound(t *testing.T) {
	f := &moveFixture{}
	a := start(t, f.config(t, "a"))
	seed := a.Info().GossipAddr
	cb := f.config(t, "b", seed)
	cb.DrainOnStop = true
	cb.ShutdownTimeout = 2 * time.Second
	b := start(t, cb)
	c := start(t, f.config(t, "c", seed))
	for _, d := range []*Daemon{a, b, c} {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	// The drain takes longer than ShutdownTimeout (well within its own).
	listed := make(chan struct{})
	drainListHook = func(*gateway.AppList) {
		close(listed)
		time.Sleep(cb.ShutdownTimeout + 500*time.Millisecond) // the drain's work
	}
	defer func() { drainListHook = nil }()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown after a drain longer than ShutdownTimeout: %v", err)
	}
	select {
	case <-listed:
	default:
		t.Fatal("the drain did not run")
	}
}

// TestMoveChildNewInstanceEnded: a new instance that ends after its
// import, before the root takes it, is noticed: the move fails and the
// old instance runs on with its count, the root's child unchanged.
func TestMoveChildNewInstanceEnded(t *testing.T) {
	f := &moveFixture{}
	a, b, c := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	ds := map[string]*Daemon{"a": a, "b": b, "c": c}
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	want := inc(t, a.sys, child.ref) + 1
	to := other(child.node)
	moveImportedHook = func(ref actor.Ref) {
		// The new instance, on to, ends at once.
		node, addr, id, ok := a.node.ExportRef(ref)
		if !ok {
			t.Errorf("%v not exported", ref)
			return
		}
		r, err := ds[to].node.ImportRef(node, addr, id)
		if err == nil {
			err = ds[to].sys.Kill(context.Background(), r)
		}
		if err != nil {
			t.Errorf("killing the new instance: %v", err)
		}
	}
	defer func() { moveImportedHook = nil }()
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) {
		t.Fatalf("move onto an instance that ended: %v, want ErrMoveFailed", r.Err())
	}
	now, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	if now["t1"].ref != child.ref {
		t.Fatalf("the root's child is %v, want the old %v", now["t1"].ref, child.ref)
	}
	if n := inc(t, a.sys, child.ref); n != want {
		t.Fatalf("the old instance counts %d, want %d", n, want)
	}
}
