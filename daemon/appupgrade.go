package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/supervisor"
	"github.com/actord/actord/upgrade"
)

// Rolling upgrades of applications (gateway.UpgradeApp; docs/upgrades.md):
// the daemon running an application's root upgrades the children whose
// kind changes one at a time, in spec order, each on the daemon where it
// runs (upgrade.Apply there, with the KindUpgrade registered there),
// waiting for each outcome before the next. A failure stops it and moves
// the children already upgraded back, in reverse order; only once every
// child runs its new kind does the registry get the new spec, so a later
// start of the application (a failover) makes the new kinds.

// Bounds of rolling upgrades.
const (
	// appUpgradeTimeout bounds a whole application upgrade on the daemon
	// that runs it (the rollback included).
	appUpgradeTimeout = 2 * time.Minute
	// childUpgradeTimeout bounds one child's move, forward or back, on
	// the daemon where the child runs (waiting for a move of the same
	// actor under way there included).
	childUpgradeTimeout = 30 * time.Second
	// childAskTimeout bounds the coordinator's wait for a child's move on
	// another daemon: that daemon's own bound plus a round trip, so that
	// the coordinator does not give up before the answer can come.
	childAskTimeout = childUpgradeTimeout + 10*time.Second
	// maxUpgradeCalls bounds the application upgrades a gateway handles at
	// once (each holds a goroutine, not a worker of the pool).
	maxUpgradeCalls = 4
	// maxChildUpgrades bounds the child moves a daemon runs at once for
	// the other daemons.
	maxChildUpgrades = 16
)

// appUpgradeAt passes an UpgradeApp on to the gateway of the daemon that
// runs the application's root; only a registry member's is answered.
type appUpgradeAt struct{ Req gateway.UpgradeApp }

// childUpgrade asks a daemon's gateway to move one of its actors, Ref,
// from kind Old to kind New (Back: from New back to Old) with the
// KindUpgrade registered there for Old -> New; Args are the child's spec
// arguments, for the target kind's factory. Which asks instead which of
// the two kinds the actor runs now (nothing moves). Only a cluster
// member's is answered (a childUpgraded). The moves (and Which) of one
// actor are carried out one at a time, in the order they arrive.
type childUpgrade struct {
	Ref      actor.Ref
	Old, New string
	Args     map[string]any
	Back     bool
	Which    bool
}

// childUpgraded answers childUpgrade: Code one of the cu* constants;
// Kind, for Which, the kind the actor runs (Old or New).
type childUpgraded struct {
	Code int
	Msg  string
	Kind string
}

// Codes of childUpgraded.
const (
	cuOK      = 0
	cuRefused = 1 // the upgrade was refused: the actor runs as it did
	cuUnknown = 2 // no outcome within the time: it may still happen
	cuBad     = 3 // the request was refused before any upgrade began
	cuBusy    = 4 // too many moves under way on that daemon
	cuNotFrom = 5 // refused: the actor does not run the kind moved from
)

// Errors of a child's move, for the coordinator.
var (
	errChildRefused = errors.New("refused")
	errChildUnknown = errors.New("outcome unknown")
)

func (r childUpgraded) err() error {
	switch r.Code {
	case cuOK:
		return nil
	case cuRefused:
		return fmt.Errorf("%w: %s", errChildRefused, r.Msg)
	case cuUnknown:
		return fmt.Errorf("%w: %s", errChildUnknown, r.Msg)
	}
	return fmt.Errorf("%w: %s", errChildRefused, r.Msg) // refused before it began: nothing moved
}

// AppUpgraded is emitted on the daemon's bus (Daemon.Bus) when a rolling
// upgrade that this daemon carried out (it ran the application's root)
// ends, and published as a report of its gateway actor (`actord debug
// events --kind report` shows it). Each child's move is reported
// separately, as an event.ActorUpgraded on the daemon where it ran.
type AppUpgraded struct {
	App string
	// Outcome is "upgraded" (every changed child runs its new kind and
	// the registry holds the new spec), "rolled back" (a step failed:
	// Steps say which and why; every child runs its old kind),
	// "rollback incomplete" (a step failed and a child could not be
	// moved back, or which kind it runs is not known: its step says
	// "rollback failed" or "unknown") or "refused" (no child moved).
	Outcome string
	Steps   []gateway.UpgradeStep
	Reason  string
	Time    time.Time
}

// String returns the outcome on one line.
func (e *AppUpgraded) String() string {
	s := fmt.Sprintf("application upgrade of %q: %s", e.App, e.Outcome)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// liveApp is an application whose root runs on this daemon.
type liveApp struct {
	gen   uint64
	root  actor.Ref
	slots map[string]*childSlot
}

// upgradeLog is the logger of rolling upgrades. A capability holder
// asks for them, so their lines must be rate-limited: the daemon's
// logger is (Start wraps Config.Logger with ratelog, by level and
// message), and ratelog.Wrap keeps it so.
func upgradeLog(l *slog.Logger) *slog.Logger {
	return ratelog.Wrap(l, ratelog.Config{}).With("component", "apps")
}

// setLive records that app's root runs here (called by the runner).
func (a *apps) setLive(app string, l *liveApp) {
	a.mu.Lock()
	a.live[app] = l
	a.mu.Unlock()
}

// dropLive forgets app's root, if it is root.
func (a *apps) dropLive(app string, root actor.Ref) {
	a.mu.Lock()
	if l := a.live[app]; l != nil && l.root == root {
		delete(a.live, app)
	}
	a.mu.Unlock()
}

func (a *apps) liveApp(app string) *liveApp {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live[app]
}

// upgradeCall answers an UpgradeApp (forwarded: from another member's
// gateway, which found this daemon running the root) on a goroutine of
// its own, bounded by appUpgradeTimeout.
func (g *Gateway) upgradeCall(c *actor.Context, m gateway.UpgradeApp, forwarded bool) (any, error) {
	if g.upgradeCalls.Add(1) > maxUpgradeCalls {
		g.upgradeCalls.Add(-1)
		return gateway.UpgradeResult{Result: gateway.AppResult{Code: gateway.AppRetry,
			Msg: fmt.Sprintf("%s is running %d application upgrades", g.d.cfg.Name, maxUpgradeCalls)}}, nil
	}
	// The asker's progress actor gets the steps through a relay of this
	// daemon's: the daemon that runs the upgrade may not reach the asker
	// (a client's node), this one does. The relay ends with the call.
	var relay actor.Ref
	if !m.Progress.IsZero() && !forwarded {
		r, err := c.Spawn(func() actor.Actor { return &progressRelay{to: m.Progress} })
		if err != nil {
			m.Progress = actor.Ref{} // no progress: the reply tells all
		} else {
			m.Progress, relay = r, r
		}
	}
	rep := c.Defer()
	go func() {
		defer g.upgradeCalls.Add(-1)
		ctx, cancel := context.WithTimeout(g.ctx, appUpgradeTimeout)
		defer cancel()
		res := g.d.apps.upgrade(ctx, m, forwarded)
		if !relay.IsZero() {
			// Answered once the steps queued before it are passed on: on
			// their way before the reply, on the same connection.
			fctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
			_, _ = g.d.sys.Ask(fctx, relay, relayDone{})
			cancel()
		}
		rep.Reply(res, nil)
	}()
	return nil, nil
}

// maxProgress bounds the steps a relay passes on: each child's move and
// its move back, and one more.
const maxProgress = 2*MaxAppChildren + 1

// progressRelay passes an upgrade's steps on to the asker's progress
// actor, at most maxProgress, until told the upgrade has ended.
type progressRelay struct {
	to   actor.Ref
	sent int
}

// relayDone ends a progressRelay.
type relayDone struct{}

func (r *progressRelay) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case gateway.UpgradeStep:
		if r.sent < maxProgress {
			r.sent++
			_ = c.Send(r.to, m)
		}
	case relayDone:
		return true, c.Stop(c.Self(), nil)
	}
	return nil, nil
}

// childUpgradeCall answers a childUpgrade on a goroutine of its own.
func (g *Gateway) childUpgradeCall(c *actor.Context, m childUpgrade) (any, error) {
	if g.childCalls.Add(1) > maxChildUpgrades {
		g.childCalls.Add(-1)
		return childUpgraded{Code: cuBusy, Msg: fmt.Sprintf("%s is moving %d actors", g.d.cfg.Name, maxChildUpgrades)}, nil
	}
	rep := c.Defer()
	go func() {
		defer g.childCalls.Add(-1)
		ctx, cancel := context.WithTimeout(g.ctx, childUpgradeTimeout)
		defer cancel()
		rep.Reply(g.d.moveActor(ctx, m), nil)
	}()
	return nil, nil
}

// fromMember returns the name of the cluster member c's sender is on, if
// it is another member's.
func (g *Gateway) fromMember(c *actor.Context) (string, bool) {
	node, _, _, ok := g.d.node.ExportRef(c.Sender())
	if !ok || node == g.d.cfg.Name {
		return "", false
	}
	_, ok = g.member(node)
	return node, ok
}

// moveActor carries out a childUpgrade on this daemon.
func (d *Daemon) moveActor(ctx context.Context, m childUpgrade) childUpgraded {
	bad := func(format string, args ...any) childUpgraded {
		return childUpgraded{Code: cuBad, Msg: fmt.Sprintf("on %s: ", d.cfg.Name) + fmt.Sprintf(format, args...)}
	}
	if m.Ref.IsZero() || m.Ref.IsRemote() {
		return bad("the actor is not one of this daemon's")
	}
	for _, k := range []string{m.Old, m.New} {
		if err := checkName(k); err != nil {
			return bad("kind %q: %v", truncate(k, 64), err)
		}
	}
	u, ok := d.upgrades[upgradeKey{m.Old, m.New}]
	if !ok {
		return bad("no upgrade from kind %q to %q registered", m.Old, m.New)
	}
	// One move of an actor at a time: a move back must not overtake the
	// move forward it undoes, nor Which a move under way.
	if err := d.moves.lock(ctx, m.Ref); err != nil {
		return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("on %s: waiting for the move of the actor under way: %v", d.cfg.Name, err)}
	}
	defer d.moves.unlock(m.Ref)
	if m.Which {
		return d.whichKind(ctx, m, u)
	}
	target := m.New
	if m.Back {
		target = m.Old
	}
	d.gw.mu.Lock()
	k := d.gw.kinds[target]
	d.gw.mu.Unlock()
	if k == nil {
		return bad("kind %q is not registered", target)
	}
	args, err := plainArgs(m.Args)
	if err != nil {
		return bad("arguments: %v", err)
	}
	f, err := callKind(k, args)
	if err != nil {
		return bad("kind %q refused the child's arguments: %v", target, err)
	}
	err = u.run(ctx, d.sys, m.Ref, m.Back, f, d.log)
	switch {
	case err == nil:
		return childUpgraded{}
	case errors.Is(err, errKindType), errors.Is(err, errKindPanic):
		return bad("%v", err)
	case errors.Is(err, upgrade.ErrWrongVersion):
		return childUpgraded{Code: cuNotFrom, Msg: fmt.Sprintf("on %s: %v", d.cfg.Name, err)}
	case errors.Is(err, upgrade.ErrRefused):
		return childUpgraded{Code: cuRefused, Msg: fmt.Sprintf("on %s: %v", d.cfg.Name, err)}
	}
	return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("on %s: %v", d.cfg.Name, err)}
}

// whichKind answers a childUpgrade's Which: the kind m.Ref runs now, by
// its instance's type.
func (d *Daemon) whichKind(ctx context.Context, m childUpgrade, u KindUpgrade) childUpgraded {
	var isOld, isNew bool
	err := d.sys.Inspect(ctx, m.Ref, func(_ *actor.Context, a actor.Actor) { isOld, isNew = u.which(a) })
	switch {
	case err != nil:
		return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("on %s: looking at the actor: %v", d.cfg.Name, err)}
	case isOld && !isNew:
		return childUpgraded{Kind: m.Old}
	case isNew && !isOld:
		return childUpgraded{Kind: m.New}
	}
	return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("on %s: the actor's type is neither only %q's nor only %q's", d.cfg.Name, m.Old, m.New)}
}

// refLocks serializes work per actor; the zero value is ready.
type refLocks struct {
	mu sync.Mutex
	m  map[actor.Ref]chan struct{}
}

// lock waits for ref's turn, or for ctx's end.
func (l *refLocks) lock(ctx context.Context, ref actor.Ref) error {
	for {
		l.mu.Lock()
		if l.m == nil {
			l.m = map[actor.Ref]chan struct{}{}
		}
		held, ok := l.m[ref]
		if !ok {
			l.m[ref] = make(chan struct{})
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// unlock ends ref's turn.
func (l *refLocks) unlock(ref actor.Ref) {
	l.mu.Lock()
	close(l.m[ref])
	delete(l.m, ref)
	l.mu.Unlock()
}

// upgradeTarget is the app an UpgradeApp names, after checking its shape.
func upgradeTarget(m gateway.UpgradeApp) (string, error) {
	if m.Spec.Name != "" || len(m.Spec.Children) > 0 {
		if m.App != "" || m.Child != "" || m.Kind != "" {
			return "", errors.New("give either a spec or an application, a child and a kind, not both")
		}
		if err := checkName(m.Spec.Name); err != nil {
			return "", fmt.Errorf("name %q: %v", truncate(m.Spec.Name, 64), err)
		}
		return m.Spec.Name, nil
	}
	for _, f := range []struct{ what, v string }{{"application", m.App}, {"child", m.Child}, {"kind", m.Kind}} {
		if err := checkName(f.v); err != nil {
			return "", fmt.Errorf("%s name %q: %v", f.what, truncate(f.v, 64), err)
		}
	}
	return m.App, nil
}

// upgradePlan returns the spec that req makes of old and the indices of
// the children whose kind changes. Anything else that differs is refused
// (an error naming it): an upgrade changes kinds only.
func upgradePlan(old AppSpec, req gateway.UpgradeApp) (AppSpec, []int, error) {
	nw := req.Spec
	if req.Spec.Name == "" {
		nw = old
		nw.Children = slices.Clone(old.Children)
		i := slices.IndexFunc(nw.Children, func(c AppChild) bool { return c.Name == req.Child })
		if i < 0 {
			return AppSpec{}, nil, fmt.Errorf("application %q has no child %q", old.Name, truncate(req.Child, 64))
		}
		nw.Children[i].Kind = req.Kind
	}
	if len(nw.Children) != len(old.Children) {
		return AppSpec{}, nil, fmt.Errorf("%d children, the running spec has %d: an upgrade changes children's kinds only (deploy the spec for other changes)",
			len(nw.Children), len(old.Children))
	}
	var changed []int
	for i := range nw.Children {
		o, n := old.Children[i], nw.Children[i]
		if o.Name != n.Name {
			return AppSpec{}, nil, fmt.Errorf("children[%d] is %q, the running spec's is %q: an upgrade keeps the children and their order",
				i, truncate(n.Name, 64), o.Name)
		}
		n.Kind = o.Kind
		if !sameChild(o, n) {
			return AppSpec{}, nil, fmt.Errorf("children[%d] (%q): its args, restart, shutdown or node differ: an upgrade changes kinds only (deploy the spec for other changes)",
				i, o.Name)
		}
		if nw.Children[i].Kind != o.Kind {
			changed = append(changed, i)
		}
	}
	a, b := old, nw
	a.Children, b.Children = nil, nil
	if !sameEncoding(a, b) {
		return AppSpec{}, nil, errors.New("its strategy, intensity, period, prefer or takeover differ: an upgrade changes children's kinds only (deploy the spec for other changes)")
	}
	if len(changed) == 0 {
		return AppSpec{}, nil, errors.New("no child's kind changes")
	}
	return nw, changed, nil
}

// sameChild reports whether two children's specs are the same, their
// arguments compared as plain values (integers as int64, whatever width
// they arrived in).
func sameChild(a, b AppChild) bool {
	var err1, err2 error
	if a.Args != nil {
		var p any
		p, err1 = plainArgs(a.Args)
		a.Args, _ = p.(map[string]any)
	}
	if b.Args != nil {
		var p any
		p, err2 = plainArgs(b.Args)
		b.Args, _ = p.(map[string]any)
	}
	return err1 == nil && err2 == nil && sameEncoding(a, b)
}

// sameEncoding reports whether a and b encode to the same bytes (map keys
// sorted).
func sameEncoding(a, b any) bool {
	x, err1 := sortedMsgpack(a)
	y, err2 := sortedMsgpack(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// upgradeStep is one child's move in a rolling upgrade.
type upgradeStep struct {
	child    AppChild // its spec (old kind)
	to       string
	slot     *childSlot
	ref      actor.Ref
	out      *gateway.UpgradeStep
	upgraded bool // moved, or maybe moved (unknown): to roll back on failure
}

// upgrade runs an UpgradeApp: here if the application's root runs here,
// else on the daemon that runs it.
func (a *apps) upgrade(ctx context.Context, req gateway.UpgradeApp, forwarded bool) gateway.UpgradeResult {
	res := gateway.UpgradeResult{App: req.App}
	if req.Spec.Name != "" {
		res.App = req.Spec.Name
	}
	fail := func(code int, format string, args ...any) gateway.UpgradeResult {
		res.Result = gateway.AppResult{Code: code, Msg: fmt.Sprintf(format, args...)}
		return res
	}
	if a == nil || len(a.cfg.Members) == 0 {
		return fail(gateway.AppOff, "no app members configured on %s", a.name())
	}
	app, err := upgradeTarget(req)
	if err != nil {
		return fail(gateway.AppBadSpec, "upgrade: %v", err)
	}
	res.App = app
	if a.self == 0 {
		v := a.forward(ctx, req, func(code int, format string, args ...any) any { return fail(code, format, args...) })
		if r, ok := v.(gateway.UpgradeResult); ok {
			return r
		}
		return fail(gateway.AppRetry, "unexpected reply %T from a registry member", v)
	}
	st, err := a.status(ctx)
	if err != nil {
		return fail(gateway.AppRetry, "%v", err)
	}
	i := slices.IndexFunc(st.Apps, func(x appreg.App) bool { return x.Name == app })
	if i < 0 || st.Apps[i].Desired == appreg.Removed {
		return fail(gateway.AppUnknown, "%q", app)
	}
	rec := st.Apps[i]
	switch {
	case rec.Desired != appreg.Running:
		return fail(gateway.AppBadSpec, "application %q is stopped: deploy the new spec, its next start makes the new kinds", app)
	case rec.Node == "" || rec.RenewGen != rec.Gen:
		return fail(gateway.AppRetry, "application %q is not running now (waiting or starting)", app)
	case rec.Node != a.d.cfg.Name:
		if forwarded {
			return fail(gateway.AppRetry, "application %q moved to %s meanwhile", app, rec.Node)
		}
		return a.upgradeAt(ctx, rec.Node, req, fail)
	}
	unclaim, ok := a.tryClaim(app)
	if !ok {
		return fail(gateway.AppBusy, "application %q is being upgraded, one of its children moved, or its root handed over", app)
	}
	defer unclaim()
	res = a.roll(ctx, rec, req)
	a.report(res)
	return res
}

// upgradeAt passes req to the gateway of node, which runs app's root.
func (a *apps) upgradeAt(ctx context.Context, node string, req gateway.UpgradeApp,
	fail func(int, string, ...any) gateway.UpgradeResult) gateway.UpgradeResult {
	return askRootsGateway(ctx, a, node, appUpgradeAt{Req: req}, fail)
}

// askRootsGateway asks the gateway of node, which runs an application's
// root, to carry out msg there, and returns its answer of type R; fail
// makes the AppRetry answer when node's gateway is not known here, does
// not answer, or answers something else.
func askRootsGateway[R any](ctx context.Context, a *apps, node string, msg any, fail func(int, string, ...any) R) R {
	g := a.d.gw
	g.mu.Lock()
	peer, ok := g.peers[node]
	g.mu.Unlock()
	if !ok {
		return fail(gateway.AppRetry, "the gateway of %s, which runs the application, is not known here", node)
	}
	v, err := a.d.sys.Ask(ctx, peer.ref, msg)
	if err != nil {
		return fail(gateway.AppRetry, "asking %s, which runs the application: %v", node, err)
	}
	r, ok := v.(R)
	if !ok {
		return fail(gateway.AppRetry, "unexpected reply %T from %s", v, node)
	}
	return r
}

// roll upgrades rec's running instance, which runs here, as req says.
func (a *apps) roll(ctx context.Context, rec appreg.App, req gateway.UpgradeApp) gateway.UpgradeResult {
	res := gateway.UpgradeResult{App: rec.Name}
	fail := func(code int, format string, args ...any) gateway.UpgradeResult {
		res.Result = gateway.AppResult{Code: code, Msg: fmt.Sprintf(format, args...)}
		return res
	}
	old, err := decodeAppSpec(rec.Spec)
	if err != nil {
		return fail(gateway.AppBadSpec, "the registry's spec of %q: %v", rec.Name, err)
	}
	kinds := a.d.gw.kindSet()
	if req.Spec.Name != "" {
		// Checked first, size first: the plan compares it child by child.
		if _, err := encodeAppSpec(req.Spec, kinds); err != nil {
			return fail(gateway.AppBadSpec, "upgrade of %q: %v", rec.Name, err)
		}
	}
	nw, changed, err := upgradePlan(old, req)
	if err != nil {
		return fail(gateway.AppBadSpec, "upgrade of %q: %v", rec.Name, err)
	}
	enc, err := encodeAppSpec(nw, kinds)
	if err != nil {
		return fail(gateway.AppBadSpec, "upgrade of %q: %v", rec.Name, err)
	}
	live := a.liveApp(rec.Name)
	if live == nil || live.gen != rec.Gen {
		return fail(gateway.AppRetry, "the root of %q is not running on %s now", rec.Name, a.d.cfg.Name)
	}
	steps := make([]*upgradeStep, 0, len(changed))
	for _, i := range changed {
		o, n := old.Children[i], nw.Children[i]
		if _, ok := a.d.upgrades[upgradeKey{o.Kind, n.Kind}]; !ok {
			return fail(gateway.AppBadSpec, "upgrade of %q: children[%d] (%q): no upgrade from kind %q to %q is registered on %s",
				rec.Name, i, o.Name, o.Kind, n.Kind, a.d.cfg.Name)
		}
		slot := live.slots[o.Name]
		if slot == nil || slot.current() != o.Kind {
			return fail(gateway.AppRetry, "upgrade of %q: child %q does not run kind %q on %s now", rec.Name, o.Name, o.Kind, a.d.cfg.Name)
		}
		steps = append(steps, &upgradeStep{child: o, to: n.Kind, slot: slot})
	}
	a.ulog.Info("applications: rolling upgrade begins", "app", rec.Name, "children", len(steps))
	// One child at a time, in spec order. (Steps has room for them all:
	// the steps point into it.)
	res.Steps = make([]gateway.UpgradeStep, 0, len(steps))
	var failed *upgradeStep
	var cause error
	for _, s := range steps {
		res.Steps = append(res.Steps, gateway.UpgradeStep{Child: s.child.Name, From: s.child.Kind, To: s.to})
		s.out = &res.Steps[len(res.Steps)-1]
		err := a.moveChild(ctx, live, s, false)
		a.progress(req.Progress, *s.out)
		if err != nil {
			failed, cause = s, err
			break
		}
		a.ulog.Info("applications: child upgraded", "app", rec.Name, "child", s.child.Name, "node", s.out.Node, "from", s.child.Kind, "to", s.to)
	}
	var proposed bool // the new spec was proposed: it may be recorded
	if failed == nil {
		// Only now does the registry get the new spec: a failover during
		// the upgrade starts the old kinds, which the old spec names.
		proposed, cause = a.recordSpec(ctx, rec, enc)
		if cause == nil {
			a.ulog.Info("applications: rolling upgrade done", "app", rec.Name, "children", len(steps))
			return res
		}
	}
	why := "the new spec was not recorded"
	if failed != nil {
		why = fmt.Sprintf("child %q failed", failed.child.Name)
	}
	// Roll back, newest first: the failed child too when its outcome is
	// unknown (its move may still happen; a Back of an actor that did
	// not move is refused, harmlessly). Each move back has its own time
	// (childUpgradeTimeout), even when the upgrade's has run out.
	back := context.WithoutCancel(ctx)
	var incomplete []string // children whose move back failed, or whose kind is not known
	for i := len(res.Steps) - 1; i >= 0; i-- {
		s := steps[i]
		if !s.upgraded {
			continue
		}
		err := a.moveChild(back, live, s, true)
		switch {
		case err == nil && s == failed:
			s.out.Reason += "; it runs its old kind"
			a.progress(req.Progress, *s.out)
			continue
		case err == nil:
			s.out.Outcome, s.out.Reason = "rolled back", why
		case errors.Is(err, errRunsNew):
			s.out.Outcome, s.out.Reason = "rollback failed", err.Error()
			incomplete = append(incomplete, fmt.Sprintf("%s runs %s", s.child.Name, s.to))
			a.ulog.Error("applications: rollback of a child failed; it runs its new kind, which its restarts make", "app", rec.Name,
				"child", s.child.Name, "node", s.out.Node, "kind", s.to, "err", err)
		default:
			s.out.Outcome, s.out.Reason = "unknown", err.Error()
			incomplete = append(incomplete, fmt.Sprintf("%s runs %s or %s", s.child.Name, s.child.Kind, s.to))
			a.ulog.Error("applications: rollback of a child failed and which kind it runs is not known; its restarts make its old kind",
				"app", rec.Name, "child", s.child.Name, "node", s.out.Node, "old", s.child.Kind, "new", s.to, "err", err)
		}
		a.progress(req.Progress, *s.out)
	}
	moved := "the children moved were rolled back"
	if len(incomplete) > 0 {
		moved = rollbackIncomplete + ": " + strings.Join(incomplete, ", ")
	}
	if failed == nil {
		if proposed {
			// The new spec may be recorded all the same: the old one goes
			// back, but only in place of this upgrade's own (a deploy or
			// a stop meanwhile is the operator's, kept).
			a.restoreSpec(rec, enc)
		}
		return fail(gateway.AppFailed, "upgrade of %q: %v; %s", rec.Name, cause, moved)
	}
	return fail(gateway.AppFailed, "upgrade of %q: child %q (%s -> %s on %s): %v; %s", rec.Name, failed.child.Name,
		failed.child.Kind, failed.to, failed.out.Node, cause, moved)
}

// rollbackIncomplete marks an upgrade's error whose rollback left a child
// on its new kind, or on a kind not known.
const rollbackIncomplete = "ROLLBACK INCOMPLETE"

// progress sends a step's outcome to the asker's progress actor (through
// its gateway's relay), if it gave one; one way, never waiting.
func (a *apps) progress(to actor.Ref, s gateway.UpgradeStep) {
	if !to.IsZero() {
		_ = a.d.sys.Send(to, s)
	}
}

// errSpecChanged: the registry's record of an application changed while
// it was upgraded (a deploy, a stop, a removal, a failover).
var errSpecChanged = errors.New("the registry's record changed during the upgrade (a deploy, a stop or a failover?)")

// holdsAt reports whether st holds app desired running with the spec enc,
// at generation gen.
func holdsAt(st driver.Status, app string, enc []byte, gen uint64) bool {
	for _, x := range st.Apps {
		if x.Name == app {
			return x.Desired == appreg.Running && x.Gen == gen && bytes.Equal(x.Spec, enc)
		}
	}
	return false
}

// recordSpec replaces rec's spec by enc in the registry with a
// conditional deploy: it applies only while the record is rec's (its
// spec, its generation, desired running), so a deploy, stop or failover
// made meanwhile is never overwritten. It returns errSpecChanged once the
// registry shows another record, and whether enc was proposed (then it
// may be recorded even when an error is returned).
func (a *apps) recordSpec(ctx context.Context, rec appreg.App, enc []byte) (proposed bool, err error) {
	old, _ := decodeAppSpec(rec.Spec)
	cmd := appreg.Command{Op: appreg.OpDeploy, App: rec.Name, Spec: enc, Prefer: old.Prefer, Takeover: old.Takeover,
		IfSpec: appreg.SpecHash(rec.Spec), Gen: rec.Gen}
	return a.casSpec(ctx, cmd, rec.Spec)
}

// restoreSpec puts rec's spec back in place of enc, if the registry holds
// enc at rec's generation (this upgrade's write), within appCallTimeout.
func (a *apps) restoreSpec(rec appreg.App, enc []byte) {
	old, _ := decodeAppSpec(rec.Spec)
	cmd := appreg.Command{Op: appreg.OpDeploy, App: rec.Name, Spec: rec.Spec, Prefer: old.Prefer, Takeover: old.Takeover,
		IfSpec: appreg.SpecHash(enc), Gen: rec.Gen}
	ctx, cancel := context.WithTimeout(context.Background(), appCallTimeout)
	defer cancel()
	if _, err := a.casSpec(ctx, cmd, enc); err != nil && !errors.Is(err, errSpecChanged) {
		a.ulog.Error("applications: putting the old spec back failed; the registry may hold the new one while the children run the old kinds",
			"app", rec.Name, "err", err)
	}
}

// casSpec proposes the conditional deploy cmd, which expects the registry
// to hold from (at cmd.Gen), until the registry shows cmd.Spec (nil) or
// another record than from (errSpecChanged), or ctx ends.
func (a *apps) casSpec(ctx context.Context, cmd appreg.Command, from []byte) (proposed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	defer cancel()
	var last error
	for {
		st, err := a.status(ctx)
		switch {
		case err != nil:
			last = err
		case holdsAt(st, cmd.App, cmd.Spec, cmd.Gen):
			return proposed, nil
		case !holdsAt(st, cmd.App, from, cmd.Gen):
			return proposed, errSpecChanged
		default:
			proposed = true // an error may come after it was proposed
			if err := a.propose(ctx, cmd); err != nil {
				last = err
			}
		}
		if err := a.settleWait(ctx, last); err != nil {
			return proposed, fmt.Errorf("recording the spec: not applied within %v: %w", appCallTimeout, err)
		}
	}
}

// Errors of a child's move back.
var (
	// errRunsNew: the move back failed and the child runs its new kind
	// (its daemon says so).
	errRunsNew = errors.New("it runs its new kind")
	// errKindUnknown: the move back failed or got no answer, and which
	// kind the child runs is not known either.
	errKindUnknown = errors.New("which kind it runs is not known")
)

// moveChild moves one child forward (or back) on the daemon where it runs
// and sets its slot, so that the root's restarts make the kind it runs.
// The slot is never set from a guess: a move back that fails or gets no
// answer is followed by asking the child's daemon which kind it runs
// (errRunsNew, errKindUnknown).
func (a *apps) moveChild(ctx context.Context, live *liveApp, s *upgradeStep, back bool) error {
	from, to := s.child.Kind, s.to
	if back {
		from, to = to, from
	}
	if !back {
		ref, err := a.childRef(ctx, live.root, s.child.Name)
		if err != nil {
			s.out.Outcome, s.out.Reason = "refused", err.Error()
			return err
		}
		s.ref = ref
		s.out.Node = a.d.cfg.Name
		if node, _, _, ok := a.d.node.ExportRef(ref); ok && ref.IsRemote() {
			s.out.Node = node
		}
	}
	// The slot first: a restart of the child from now on makes the
	// target kind (a restart after the move must not make the old one).
	s.slot.set(to)
	r := a.askChild(ctx, s, childUpgrade{Ref: s.ref, Old: s.child.Kind, New: s.to, Args: s.child.Args, Back: back})
	err := r.err()
	switch {
	case err == nil:
		s.upgraded = !back
		if !back {
			s.out.Outcome = "upgraded"
		}
		return nil
	case back && r.Code == cuNotFrom:
		// It does not run the new kind: a move whose outcome was unknown
		// did not happen. It runs the old one.
		return nil
	case back:
		q := a.askChild(ctx, s, childUpgrade{Ref: s.ref, Old: s.child.Kind, New: s.to, Which: true})
		qerr := q.err()
		switch {
		case qerr == nil && q.Kind == s.child.Kind:
			return nil // it runs the old kind: the forward move never happened
		case qerr == nil && q.Kind == s.to:
			s.slot.set(s.to)
			return fmt.Errorf("%w: %w", errRunsNew, err)
		}
		// The slot keeps the old kind, the one the registry's spec names.
		return fmt.Errorf("%w (asking: %v): %w", errKindUnknown, qerr, err)
	case r.Code == cuUnknown:
		s.upgraded = true // perhaps: rolled back with the others
		s.out.Outcome, s.out.Reason = "unknown", err.Error()
		return err
	}
	s.slot.set(from)
	s.out.Outcome, s.out.Reason = "refused", err.Error()
	return err
}

// askChild sends m to the daemon where s's child runs (this one, or
// another's gateway) and waits for the answer, within that daemon's own
// bound plus a round trip.
func (a *apps) askChild(ctx context.Context, s *upgradeStep, m childUpgrade) childUpgraded {
	if !s.ref.IsRemote() {
		cctx, cancel := context.WithTimeout(ctx, childUpgradeTimeout)
		defer cancel()
		return a.d.moveActor(cctx, m)
	}
	cctx, cancel := context.WithTimeout(ctx, childAskTimeout)
	defer cancel()
	return a.askMove(cctx, s.out.Node, m)
}

// askMove asks node's gateway to carry out m.
func (a *apps) askMove(ctx context.Context, node string, m childUpgrade) childUpgraded {
	g := a.d.gw
	g.mu.Lock()
	peer, ok := g.peers[node]
	g.mu.Unlock()
	if !ok {
		return childUpgraded{Code: cuBad, Msg: fmt.Sprintf("the gateway of %s, where the child runs, is not known here", node)}
	}
	v, err := a.d.sys.Ask(ctx, peer.ref, m)
	if err != nil {
		return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("asking %s: %v", node, err)}
	}
	r, ok := v.(childUpgraded)
	if !ok {
		return childUpgraded{Code: cuUnknown, Msg: fmt.Sprintf("unexpected reply %T from %s", v, node)}
	}
	return r
}

// childRef asks the root for its running child named name.
func (a *apps) childRef(ctx context.Context, root actor.Ref, name string) (actor.Ref, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := a.d.sys.Ask(cctx, root, supervisor.WhichChildren{})
	if err != nil {
		return actor.Ref{}, fmt.Errorf("asking the root for its children: %w", err)
	}
	cs, _ := v.([]supervisor.ChildInfo)
	for _, c := range cs {
		if c.ID == name {
			if !c.Running || c.Ref.IsZero() {
				return actor.Ref{}, fmt.Errorf("child %q is not running now (%v): retry once it runs", name, c.State)
			}
			return c.Ref, nil
		}
	}
	return actor.Ref{}, fmt.Errorf("the root has no child %q", name)
}

// report logs, emits and publishes the outcome of an upgrade run here.
func (a *apps) report(res gateway.UpgradeResult) {
	e := &AppUpgraded{App: res.App, Steps: res.Steps, Time: time.Now()}
	switch {
	case res.Result.Code == gateway.AppOK:
		e.Outcome = "upgraded"
	case res.Result.Code == gateway.AppFailed && strings.Contains(res.Result.Msg, rollbackIncomplete):
		e.Outcome, e.Reason = "rollback incomplete", res.Result.Msg
	case slices.ContainsFunc(res.Steps, func(s gateway.UpgradeStep) bool { return s.Outcome != "refused" }):
		e.Outcome, e.Reason = "rolled back", res.Result.Msg
	default:
		e.Outcome, e.Reason = "refused", res.Result.Msg
	}
	if e.Outcome != "upgraded" {
		steps := make([]string, len(res.Steps))
		for i, s := range res.Steps {
			steps[i] = s.Child + ": " + s.Outcome
		}
		a.ulog.Warn("applications: rolling upgrade failed", "app", res.App, "outcome", e.Outcome, "steps", strings.Join(steps, ", "), "err", e.Reason)
	}
	_ = a.d.ev.upgraded.Emit(*e)
	_ = a.d.sys.Send(a.d.gw.ref, e) // the gateway actor reports it (an unregistered type: only local)
}
