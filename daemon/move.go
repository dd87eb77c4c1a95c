package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/supervisor"
)

// Moving a child (gateway.MoveChild; docs/upgrades.md): the daemon that
// runs the application's root coordinates. The child's daemon holds the
// child (upgrade.Hold: after its current message and its continuations,
// its later messages wait in order) and exports its state; the target's
// gateway makes the new instance from it, tied to the root; the root takes
// it as the child (supervisor.ReplaceChild: linked, not a restart); then
// the old instance forwards what it held and what comes later to the new
// one, for forwardGrace. A failure before the root took the new instance
// resumes the old one, nothing lost, and kills the new one if it was made;
// a root that refuses the new instance (one past the request's deadline
// included) too. Before the root is asked, the old instance's hold is
// armed: from then on its bound kills it rather than resume it. A root
// that does not answer at all (its outcome unknown) has both killed
// (killBoth): the child ends as after a crash.
//
// A move lasts until the child's next restart: the root places a restart
// as the spec says (supervisor.Spread, which avoids the node of the
// instance that ended), so a child pinned by its spec (Node) is not moved.

// Bounds of moves.
const (
	// moveTimeout bounds a whole move on the daemon that runs the root,
	// from its start to its reply, every step included: the steps that
	// run past the request's end once the new instance is made (moveTail:
	// arm, replace, forward or the kills) are reserved out of it, so the
	// hold, import and alive check stop early enough for them.
	moveTimeout = 2 * time.Minute
	// moveAtTimeout is how long a daemon that passes a move on to the
	// root's daemon waits for its reply: past the root's whole bound, so
	// that a move that happened (or killed both) is not reported as not
	// tried.
	moveAtTimeout = moveTimeout + moveAskSlack
	// moveCallTimeout bounds a gateway's MoveChild: the registry's
	// answer, a non-member's hop to a member and the member's wait for the
	// root's daemon (moveAtTimeout).
	moveCallTimeout = moveAtTimeout + 2*moveAskSlack
	// drainChildTimeout bounds one child's move during a drain.
	drainChildTimeout = moveTimeout
	// maxMoveCalls bounds the moves, evacuations and drains a gateway
	// handles at once (past it, one is refused with AppRetry).
	maxMoveCalls = 4
)

// appMoveAt passes a MoveChild on to the gateway of the daemon that runs
// the application's root; only a registry member's is answered.
type appMoveAt struct{ Req gateway.MoveChild }

// appEvacuateAt asks the gateway of the daemon that runs App's root to
// move every child of App running on Node elsewhere, one at a time (an
// appEvacuated); any cluster member's is answered.
type appEvacuateAt struct {
	App, Node string
	// Within bounds the evacuation (0: MaxAppChildren*drainChildTimeout):
	// the asker's time left, less a round trip, so that it does not go on
	// after the asker (a drain) gave up on it.
	Within time.Duration
}

// appEvacuated answers appEvacuateAt.
type appEvacuated struct {
	Children []gateway.MoveResult
	Result   gateway.AppResult
}

// movesBusy is the refusal of a move, evacuation or drain past
// maxMoveCalls: the same words for each, as the docs quote them.
func (g *Gateway) movesBusy() string {
	return fmt.Sprintf("%s is running %d moves, evacuations or drains", g.d.cfg.Name, maxMoveCalls)
}

// moveCall answers a MoveChild on a goroutine of its own.
func (g *Gateway) moveCall(c *actor.Context, m gateway.MoveChild, forwarded bool) (any, error) {
	if g.moveCalls.Add(1) > maxMoveCalls {
		g.moveCalls.Add(-1)
		return gateway.MoveResult{App: m.App, Child: m.Child, Result: gateway.AppResult{Code: gateway.AppRetry,
			Msg: g.movesBusy()}}, nil
	}
	rep := c.Defer()
	go func() {
		defer g.moveCalls.Add(-1)
		ctx, cancel := context.WithTimeout(g.ctx, moveCallTimeout)
		defer cancel()
		rep.Reply(g.d.apps.move(ctx, m, forwarded), nil)
	}()
	return nil, nil
}

// evacuateCall answers an appEvacuateAt on a goroutine of its own.
func (g *Gateway) evacuateCall(c *actor.Context, m appEvacuateAt) (any, error) {
	if g.moveCalls.Add(1) > maxMoveCalls {
		g.moveCalls.Add(-1)
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: g.movesBusy()}}, nil
	}
	rep := c.Defer()
	go func() {
		defer g.moveCalls.Add(-1)
		within := MaxAppChildren * drainChildTimeout
		if m.Within > 0 {
			within = min(within, m.Within)
		}
		ctx, cancel := context.WithTimeout(g.ctx, within)
		defer cancel()
		rep.Reply(g.d.apps.evacuate(ctx, m.App, m.Node), nil)
	}()
	return nil, nil
}

// drainCall answers a gateway.Drain on a goroutine of its own; a drain
// counts as one of the maxMoveCalls (it moves one child at a time).
func (g *Gateway) drainCall(c *actor.Context) (any, error) {
	if g.moveCalls.Add(1) > maxMoveCalls {
		g.moveCalls.Add(-1)
		return gateway.DrainResult{Node: g.d.cfg.Name, Children: []gateway.MoveResult{}, Result: gateway.AppResult{Code: gateway.AppRetry,
			Msg: g.movesBusy()}}, nil
	}
	rep := c.Defer()
	go func() {
		defer g.moveCalls.Add(-1)
		ctx, cancel := context.WithTimeout(g.ctx, g.d.drainTimeout())
		defer cancel()
		rep.Reply(g.d.Drain(ctx), nil)
	}()
	return nil, nil
}

func (d *Daemon) drainTimeout() time.Duration {
	if d.cfg.DrainTimeout > 0 {
		return d.cfg.DrainTimeout
	}
	return 2 * time.Minute
}

// MoveChild moves the running child of the application app to the
// daemon named to (empty: another live member) with its state, as
// gateway.MoveChild through this daemon's gateway does. The move ends by
// ctx's deadline, every step included (at most 2 minutes); a ctx that
// leaves too little time for the steps that may not be cut short once the
// new instance is made (about a minute) has the move refused (AppRetry)
// or ended early, the old instance resumed; on a daemon that does not run
// the root, a ctx that leaves less than moveAtTimeout (2m05s) has it
// refused.
func (d *Daemon) MoveChild(ctx context.Context, app, child, to string) gateway.MoveResult {
	return d.apps.move(ctx, gateway.MoveChild{App: app, Child: child, To: to}, false)
}

// Drain moves every application child running on this daemon, one at a
// time, to another live member with its state (an application listed as
// starting, its root handed over or failed over a moment ago, is waited
// for up to drainStartWait; one still starting is reported in the
// result's Result, its children here not moved). A child whose kind has no
// handoff, or whose move fails, stays (the registry's failover restarts
// it elsewhere, fresh, when this daemon stops); the result lists each
// child's outcome. Then the application roots running here are handed to
// other members (handOverRoots): their new roots adopt the children where
// they run, so no child restarts; a root not handed over fails over when
// the daemon stops, and its children restart fresh. Drain does not stop
// the daemon, and children started here afterwards stay.
func (d *Daemon) Drain(ctx context.Context) gateway.DrainResult {
	res := gateway.DrainResult{Node: d.cfg.Name, Children: []gateway.MoveResult{}}
	a := d.apps
	if a == nil || len(a.cfg.Members) == 0 {
		res.Result = gateway.AppResult{Code: gateway.AppOff, Msg: fmt.Sprintf("no app members configured on %s", d.cfg.Name)}
		return res
	}
	d.log.Info("drain: moving the application children off this daemon")
	// The children's moves stop early enough for the roots' handover:
	// each move ends by its context's deadline, all its steps included.
	roots := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-drainRootsReserve))
		defer cancel()
	}
	lctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	v := a.call(lctx, gateway.ListApps{})
	cancel()
	list, _ := v.(gateway.AppList)
	if list.Result.Code != gateway.AppOK {
		res.Result = list.Result
		return res
	}
	if drainListHook != nil {
		drainListHook(&list)
	}
	for _, app := range list.Apps {
		if app.State == "starting" {
			// Its holder (a root handed over, or failed over, a moment
			// ago) has not renewed it yet, or this replica has not seen
			// the renewal: its children may run here all the same, held
			// for the new root. Skipped, they would die with this daemon.
			app = d.waitRunning(ctx, app)
		}
		switch app.State {
		case "running":
		case "starting":
			d.log.Warn("drain: an application did not come up in time; its children here were not moved", "app", app.Spec.Name, "node", app.Node)
			if res.Result.Code == gateway.AppOK {
				res.Result = gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf(
					"application %q was still starting on %s after %v: its children on %s were not moved", app.Spec.Name, app.Node, drainStartWait, d.cfg.Name)}
			}
			continue
		default:
			continue // stopped, or waiting for a node: no root, so no child runs
		}
		ev := a.evacuateAt(ctx, app.Node, app.Spec.Name, d.cfg.Name)
		res.Children = append(res.Children, ev.Children...)
		if ev.Result.Code != gateway.AppOK {
			d.log.Warn("drain: an application's children were not all tried", "app", app.Spec.Name, "err", ev.Result.Err())
			if res.Result.Code == gateway.AppOK {
				res.Result = ev.Result
			}
		}
	}
	res.Roots = []gateway.RootMove{}
	hs, err := d.handOverRoots(roots)
	for _, h := range hs {
		for _, id := range h.Lost {
			res.Children = append(res.Children, gateway.MoveResult{App: h.App, Child: id, Result: gateway.AppResult{Code: gateway.MoveFailed,
				Msg: fmt.Sprintf("child %q was not held for the handover of its root to %s: it ended with the root, and the new root starts it afresh", id, h.To)}})
		}
		m := gateway.RootMove{App: h.App, To: h.To}
		if h.Err != nil {
			m.Result = gateway.AppResult{Code: gateway.MoveFailed, Msg: fmt.Sprintf("root of %q not handed over: %v", h.App, h.Err)}
		}
		res.Roots = append(res.Roots, m)
	}
	if err != nil {
		d.log.Warn("drain: roots not all handed over", "err", err)
		if len(hs) == 0 && res.Result.Code == gateway.AppOK {
			res.Result = gateway.AppResult{Code: gateway.MoveFailed, Msg: fmt.Sprintf("roots not handed over: %v", err)}
		}
	}
	d.log.Info("drain: done", "children", len(res.Children), "moved", res.Moved(), "roots", len(res.Roots))
	return res
}

// drainListHook, if set (tests), sees the drain's list of applications
// (the first one) before it is acted on.
var drainListHook func(*gateway.AppList)

// drainRootsReserve is the part of a drain's time kept for handing its
// roots over (the release, its commit, the new roots' adoption).
const drainRootsReserve = 30 * time.Second

// drainStartWait bounds a drain's wait for an application that is
// starting (its holder has not renewed it yet) to run.
const drainStartWait = 30 * time.Second

// waitRunning waits, within drainStartWait and ctx, until app is no
// longer starting, and returns it as listed then (as given if the list
// cannot be had).
func (d *Daemon) waitRunning(ctx context.Context, app gateway.AppInfo) gateway.AppInfo {
	wctx, cancel := context.WithTimeout(ctx, drainStartWait)
	defer cancel()
	for {
		select {
		case <-wctx.Done():
			return app
		case <-time.After(20 * time.Millisecond): // polling the registry, which has no watch
		}
		lctx, lcancel := context.WithTimeout(wctx, appCallTimeout)
		list, _ := d.apps.call(lctx, gateway.ListApps{}).(gateway.AppList)
		lcancel()
		if list.Result.Code != gateway.AppOK {
			continue
		}
		i := slices.IndexFunc(list.Apps, func(x gateway.AppInfo) bool { return x.Spec.Name == app.Spec.Name })
		if i < 0 {
			app.State = "stopped" // removed meanwhile
			return app
		}
		if app = list.Apps[i]; app.State != "starting" {
			return app
		}
	}
}

// evacuateAt asks the daemon named node, which runs app's root, to move
// app's children off off (here if it is this daemon).
func (a *apps) evacuateAt(ctx context.Context, node, app, off string) appEvacuated {
	if node == a.d.cfg.Name {
		return a.evacuate(ctx, app, off)
	}
	g := a.d.gw
	g.mu.Lock()
	peer, ok := g.peers[node]
	g.mu.Unlock()
	if !ok {
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("the gateway of %s, which runs %q, is not known here", node, app)}}
	}
	m := appEvacuateAt{App: app, Node: off}
	if dl, ok := ctx.Deadline(); ok {
		if m.Within = time.Until(dl) - moveAskSlack; m.Within <= 0 {
			return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("too little time left to ask %s, which runs %q", node, app)}}
		}
	}
	v, err := a.d.sys.Ask(ctx, peer.ref, m)
	if err != nil {
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("asking %s, which runs %q: %v", node, app, err)}}
	}
	r, ok := v.(appEvacuated)
	if !ok {
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("unexpected reply %T from %s", v, node)}}
	}
	return r
}

// evacuate moves the children of app, whose root runs here, that run on
// the daemon named off, one at a time, each to the live member (not off)
// with the fewest of app's children.
func (a *apps) evacuate(ctx context.Context, app, off string) appEvacuated {
	live := a.liveApp(app)
	if live == nil {
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("the root of %q is not running on %s now", app, a.d.cfg.Name)}}
	}
	kids, err := a.children(ctx, live.root)
	if err != nil {
		return appEvacuated{Result: gateway.AppResult{Code: gateway.AppRetry, Msg: err.Error()}}
	}
	var out appEvacuated
	for _, k := range kids {
		if k.node != off {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, drainChildTimeout)
		r := a.move(cctx, gateway.MoveChild{App: app, Child: k.id, To: ""}, true, off)
		cancel()
		out.Children = append(out.Children, r)
	}
	return out
}

// placedChild is a running child of a root and the member it runs on.
type placedChild struct {
	id   string
	ref  actor.Ref
	node string
}

// children lists root's running children and their members.
func (a *apps) children(ctx context.Context, root actor.Ref) ([]placedChild, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := a.d.sys.Ask(cctx, root, supervisor.WhichChildren{})
	if err != nil {
		return nil, fmt.Errorf("asking the root for its children: %w", err)
	}
	cs, _ := v.([]supervisor.ChildInfo)
	var out []placedChild
	for _, c := range cs {
		if !c.Running || c.Ref.IsZero() {
			continue
		}
		out = append(out, placedChild{id: c.ID, ref: c.Ref, node: a.nodeOf(c.Ref)})
	}
	return out, nil
}

// nodeOf names the member ref runs on.
func (a *apps) nodeOf(ref actor.Ref) string {
	if node, _, _, ok := a.d.node.ExportRef(ref); ok && ref.IsRemote() {
		return node
	}
	return a.d.cfg.Name
}

// move runs a MoveChild: here if the application's root runs here, else
// on the daemon that runs it. avoid (a drain's daemon) is never a target.
func (a *apps) move(ctx context.Context, req gateway.MoveChild, forwarded bool, avoid ...string) gateway.MoveResult {
	res := gateway.MoveResult{App: req.App, Child: req.Child, To: req.To}
	fail := func(code int, format string, args ...any) gateway.MoveResult {
		res.Result = gateway.AppResult{Code: code, Msg: fmt.Sprintf(format, args...)}
		return res
	}
	if a == nil || len(a.cfg.Members) == 0 {
		return fail(gateway.AppOff, "no app members configured on %s", a.name())
	}
	for _, f := range []struct{ what, v string }{{"application", req.App}, {"child", req.Child}} {
		if err := checkName(f.v); err != nil {
			return fail(gateway.AppBadSpec, "%s name %q: %v", f.what, truncate(f.v, 64), err)
		}
	}
	if req.To != "" {
		if err := checkName(req.To); err != nil {
			return fail(gateway.AppBadSpec, "target name %q: %v", truncate(req.To, 64), err)
		}
	}
	if a.self == 0 {
		v := a.forward(ctx, req, func(code int, format string, args ...any) any { return fail(code, format, args...) })
		if r, ok := v.(gateway.MoveResult); ok {
			return r
		}
		return fail(gateway.AppRetry, "unexpected reply %T from a registry member", v)
	}
	st, err := a.status(ctx)
	if err != nil {
		return fail(gateway.AppRetry, "%v", err)
	}
	i := slices.IndexFunc(st.Apps, func(x appreg.App) bool { return x.Name == req.App })
	if i < 0 || st.Apps[i].Desired == appreg.Removed {
		return fail(gateway.AppUnknown, "%q", req.App)
	}
	rec := st.Apps[i]
	switch {
	case rec.Desired != appreg.Running || rec.Node == "" || rec.RenewGen != rec.Gen:
		return fail(gateway.AppRetry, "application %q is not running now", req.App)
	case rec.Node != a.d.cfg.Name:
		if forwarded {
			return fail(gateway.AppRetry, "application %q moved to %s meanwhile", req.App, rec.Node)
		}
		return a.moveAt(ctx, rec.Node, req, fail)
	}
	unclaim, ok := a.tryClaim(req.App)
	if !ok {
		return fail(gateway.AppBusy, "application %q is being upgraded, one of its children moved, or its root handed over", req.App)
	}
	defer unclaim()
	mctx, mcancel := context.WithTimeout(ctx, moveTimeout)
	defer mcancel()
	res = a.moveHere(mctx, rec, req, avoid)
	if res.Result.Code == gateway.AppOK {
		a.ulog.Info("applications: child moved", "app", req.App, "child", req.Child, "from", res.From, "to", res.To)
	} else {
		a.ulog.Warn("applications: child not moved", "app", req.App, "child", req.Child, "from", res.From, "to", res.To, "err", res.Err())
	}
	return res
}

// moveAt passes req to the gateway of node, which runs the root.
func (a *apps) moveAt(ctx context.Context, node string, req gateway.MoveChild,
	fail func(int, string, ...any) gateway.MoveResult) gateway.MoveResult {
	// The root's daemon bounds the move by moveTimeout from when it gets
	// it: waiting less could report as not tried a move that happened.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < moveAtTimeout {
		return fail(gateway.AppRetry, "too little time left to wait for %s, which runs the application (%v, a move may take %v)",
			node, time.Until(dl).Round(time.Second), moveTimeout)
	}
	actx, cancel := context.WithTimeout(ctx, moveAtTimeout)
	defer cancel()
	return askRootsGateway(actx, a, node, appMoveAt{Req: req}, fail)
}

// moveHere moves a child of rec, whose root runs here.
func (a *apps) moveHere(ctx context.Context, rec appreg.App, req gateway.MoveChild, avoid []string) gateway.MoveResult {
	res := gateway.MoveResult{App: req.App, Child: req.Child, To: req.To}
	fail := func(code int, format string, args ...any) gateway.MoveResult {
		res.Result = gateway.AppResult{Code: code, Msg: fmt.Sprintf(format, args...)}
		return res
	}
	spec, err := decodeAppSpec(rec.Spec)
	if err != nil {
		return fail(gateway.AppBadSpec, "the registry's spec of %q: %v", rec.Name, err)
	}
	ci := slices.IndexFunc(spec.Children, func(c AppChild) bool { return c.Name == req.Child })
	if ci < 0 {
		return fail(gateway.AppBadSpec, "application %q has no child %q", rec.Name, truncate(req.Child, 64))
	}
	if n := spec.Children[ci].Node; n != "" {
		return fail(gateway.AppBadSpec, "child %q is pinned to %s by its spec: it is not moved (its restarts would go back there)", req.Child, n)
	}
	live := a.liveApp(rec.Name)
	if live == nil || live.gen != rec.Gen || live.slots[req.Child] == nil {
		return fail(gateway.AppRetry, "the root of %q is not running on %s now", rec.Name, a.d.cfg.Name)
	}
	slot := live.slots[req.Child]
	// The hold, the import and the alive check run within ctx less the
	// steps that must run past it once the new instance is made
	// (moveTail): the whole move ends by ctx's deadline.
	ctx, cancel := movingWithin(ctx)
	defer cancel()
	if ctx.Err() != nil {
		return fail(gateway.AppRetry, "too little time left for a move of %q (its steps past the new instance take up to %v)", req.Child, moveTail())
	}
	kids, err := a.children(ctx, live.root)
	if err != nil {
		return fail(gateway.MoveFailed, "%v", err)
	}
	k := slices.IndexFunc(kids, func(p placedChild) bool { return p.id == req.Child })
	if k < 0 {
		return fail(gateway.AppRetry, "child %q is not running now: retry once it runs", req.Child)
	}
	old, from := kids[k].ref, kids[k].node
	res.From = from
	to := req.To
	if to == "" {
		to = a.pickTarget(kids, append([]string{from}, avoid...))
		if to == "" {
			return fail(gateway.MoveTargetDown, "no other live member to move %q to", req.Child)
		}
	}
	res.To = to
	if to == from {
		return fail(gateway.AppBadSpec, "child %q runs on %s already", req.Child, to)
	}
	toAddr := a.d.memberAddr(to)
	if toAddr == "" || !slices.Contains((&appCluster{d: a.d}).Live(), toAddr) {
		return fail(gateway.MoveTargetDown, "%s is not a live member with a known gateway", to)
	}
	kind := slot.current()
	args, err := plainArgs(slot.args)
	if err != nil {
		return fail(gateway.AppBadSpec, "child %q's arguments: %v", req.Child, err)
	}

	// 1. Hold the child and take its state.
	held := a.askHold(ctx, from, childHold{Ref: old, Kind: kind})
	if held.Code != mvOK {
		code := gateway.MoveFailed
		switch held.Code {
		case mvNoHandoff:
			code = gateway.MoveNoHandoff
		case mvExport:
			code = gateway.MoveExport
		}
		return fail(code, "holding child %q on %s: %s", req.Child, from, held.Msg)
	}
	// armed: the hold's bound kills the child rather than resume it
	// (armUnknown: the arm's answer was lost, it may have been applied).
	armed := armNot
	// resume resumes the old instance; if that fails, it returns what
	// becomes of it, for the reply ("" once resumed).
	resume := func(why string) string {
		r := a.askRelease(from, childRelease{Token: held.Token, Resume: true})
		if r.Code == mvOK {
			return ""
		}
		var end string
		switch armed {
		case armNot:
			end = fmt.Sprintf("it resumes by itself at its hold's bound (%v), with its state", holdMax)
		case armUnknown:
			end = fmt.Sprintf("its hold may have been armed (that answer was lost too): it is then killed at its hold's bound (%v) and the root restarts it afresh, its state lost; else it resumes by itself then", holdMax)
		default:
			end = fmt.Sprintf("its hold is armed: it is killed at its hold's bound (%v) and the root restarts it afresh, its state lost", holdMax)
		}
		a.ulog.Error("applications: a child held for a move was not resumed; "+end, "app", rec.Name,
			"child", req.Child, "node", from, "why", why, "err", r.Msg)
		return fmt.Sprintf("; the old instance on %s was not resumed (%s): %s", from, r.Msg, end)
	}
	// 2. The new instance on the target, tied to the root.
	moveID := unguessable()
	made := a.askImport(ctx, to, spawnImport{Kind: kind, Args: args, Owner: live.root, State: held.State, Move: moveID})
	if moveImportLostHook != nil {
		made = moveImportLostHook(made)
	}
	if made.Code == mvUnknown {
		// It may have been made: cancelled before the old one resumes.
		if err := a.askCancel(to, moveID); err != nil {
			made.Msg += fmt.Sprintf("; its cancel was not confirmed (%v): an instance made for it anyway runs on, tied to the root, until the root ends", err)
		} else {
			made.Msg += "; an instance made for it anyway was killed"
		}
	}
	if made.Code != mvOK {
		made.Msg += resume("import failed")
		code := gateway.MoveFailed
		switch made.Code {
		case mvNoHandoff:
			code = gateway.MoveNoHandoff
		case mvImport:
			code = gateway.MoveImport
		case mvUnknown:
			code = gateway.MoveTargetDown
		}
		return fail(code, "starting child %q on %s: %s", req.Child, to, made.Msg)
	}
	if moveImportedHook != nil {
		moveImportedHook(made.Ref)
	}
	// The new instance may have ended since (its daemon's answer was on
	// its way): the root's link to it is asynchronous, and would tell
	// only once the old instance forwards to nothing.
	if err := a.alive(ctx, made.Ref); err != nil {
		a.kill(made.Ref)
		note := resume("the new instance is not alive")
		return fail(gateway.MoveFailed, "the new instance of %q on %s is not alive: %v%s", req.Child, to, err, note)
	}
	// The steps from here on run past ctx (their time is reserved out of
	// the move's): started only within it.
	if err := ctx.Err(); err != nil {
		a.kill(made.Ref)
		note := resume("the move's time ran out")
		return fail(gateway.MoveFailed, "the move of %q ran out of time before the root was asked (%v)%s", req.Child, err, note)
	}
	// 3. The old instance's hold is armed: from now on its bound kills
	// it rather than resume it, for the root may take the new one.
	if r := a.askRelease(from, childRelease{Token: held.Token, Arm: true}); r.Code != mvOK {
		if r.Code == mvUnknown {
			armed = armUnknown // it may have been applied, its answer lost
		}
		a.kill(made.Ref)
		note := resume("its hold could not be armed")
		return fail(gateway.MoveFailed, "arming the hold of child %q on %s: %s%s", req.Child, from, r.Msg, note)
	}
	armed = armYes
	// The root takes the new instance in the child's place, before the
	// deadline: a request the root defers (an operation under way) past
	// it is refused when processed. So its answer, whenever it comes,
	// tells the outcome: it is waited for replaceAnswerWait longer.
	deadline := time.Now().Add(replaceTimeout)
	if moveReplaceHook != nil {
		moveReplaceHook(deadline)
	}
	rctx, rcancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(replaceAnswerWait))
	_, err = a.d.sys.Ask(rctx, live.root, supervisor.ReplaceChild{ID: req.Child, Old: old, New: made.Ref, Node: toAddr, Deadline: deadline})
	rcancel()
	if errors.Is(err, supervisor.ErrNotReplaced) || errors.Is(err, supervisor.ErrExiting) || errors.Is(err, actor.ErrDead) {
		// A definite refusal: the root did not take it (it is
		// exiting, or letting go of its children for a handover, or
		// has ended).
		a.kill(made.Ref)
		note := resume("the root refused the new instance")
		return fail(gateway.MoveFailed, "the root did not take the new instance of %q: %v%s", req.Child, err, note)
	}
	if err != nil {
		return a.killBoth(res, spec.Children[ci], from, to, held.Token, old, made.Ref, err)
	}
	// 4. The old instance forwards to the new one.
	if r := a.askRelease(from, childRelease{Token: held.Token, To: made.Ref}); r.Code != mvOK {
		// The root runs the new instance: the old one must not run on
		// beside it (its hold, armed, kills it at its bound at the
		// latest).
		if err := a.kill(old); err != nil {
			res.Result.Msg = fmt.Sprintf("moved, but the old instance on %s could not be told to forward (%s) nor killed (%v): it stays held, and is killed at its hold's bound (%v); the messages it held are lost", from, r.Msg, err, holdMax)
			return res
		}
		res.Result.Msg = fmt.Sprintf("moved, but the old instance on %s was killed rather than forwarding (%s): the messages it held were lost", from, r.Msg)
		return res
	}
	return res
}

// moveTail is the longest the steps of a move take once its new
// instance is made, past the move's context: the arm, the root's answer,
// then the forward (and a kill of the old instance if it fails), or both
// kills after the root's silence, or a kill and the resume after a
// refusal. A failure before (the import's cancel and the resume) takes
// less.
func moveTail() time.Duration {
	release := releaseTimeout + moveAskSlack
	return release + replaceTimeout + replaceAnswerWait + max(release+killTimeout, 2*killTimeout+release)
}

// movingWithin returns ctx less moveTail (if ctx has a deadline): the
// bound of a move's steps that may not run past ctx.
func movingWithin(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, dl.Add(-moveTail()))
}

// States of a move's arm of the old instance's hold.
const (
	armNot     = iota // not armed: its bound resumes it
	armUnknown        // asked, its answer lost: it may be armed
	armYes            // armed: its bound kills it
)

// replaceTimeout is the deadline of a move's ReplaceChild: a root that
// comes to it later refuses it. A var: tests shorten it.
var replaceTimeout = 5 * time.Second

// replaceAnswerWait is how long past replaceTimeout a mover waits for the
// root's answer, which tells the outcome even when late (a refusal). A
// var: tests shorten it.
var replaceAnswerWait = 10 * time.Second

// killBoth ends a move whose root has not answered whether it took the
// new instance, within replaceTimeout and replaceAnswerWait: neither
// instance runs on, so that no two do. To the root it is the end of its
// child by a kill (an abnormal end, whichever instance it has): counted
// in its restart intensity, and restarting the siblings its strategy
// says; a permanent or transient child is restarted afresh (its state
// lost), a temporary one is not. The old instance is killed through its
// daemon's gateway, which holds it (armed: should that fail, the hold's
// bound kills it rather than resume it), else directly.
func (a *apps) killBoth(res gateway.MoveResult, ch AppChild, from, to string, token uint64, old, made actor.Ref, why error) gateway.MoveResult {
	var out []string
	newRuns := false
	killNew := a.kill
	if moveKillNewHook != nil {
		killNew = func(actor.Ref) error { return moveKillNewHook() }
	}
	if err := killNew(made); err != nil {
		newRuns = true
		out = append(out, fmt.Sprintf("the new instance on %s was not killed (%v): it runs on, unlinked, until the root ends unless the root took it", to, err))
	} else {
		out = append(out, fmt.Sprintf("the new instance on %s was killed", to))
	}
	var err error
	if moveKillOldHook != nil {
		err = moveKillOldHook()
	} else if r := a.askRelease(from, childRelease{Token: token, Kill: true}); r.Code != mvOK {
		err = errors.New(r.Msg)
		if kerr := a.kill(old); kerr == nil {
			err = nil
		} else {
			err = fmt.Errorf("%w; killing it directly: %w", err, kerr)
		}
	}
	if err != nil {
		out = append(out, fmt.Sprintf("the old instance on %s was not killed (%v): it stays held, and is killed at its hold's bound (%v) rather than resumed", from, err, holdMax))
	} else {
		out = append(out, fmt.Sprintf("the old instance on %s was killed", from))
	}
	switch rt, _ := restartOf(ch.Restart); {
	case newRuns:
		// The root may have taken it: then it is the child, with the
		// state, and nothing restarts; else the root lost its child.
		end := "restarts the child afresh, as after a crash (its state lost)"
		if rt == supervisor.Temporary {
			end = "does not restart it (temporary): it is gone"
		}
		out = append(out, "if the root took the new instance, that runs on as the child with its state; if not, the root "+end)
	case rt == supervisor.Temporary:
		out = append(out, "the child is temporary: the root does not restart it, it is gone (its state lost)")
	default:
		out = append(out, "the root restarts the child afresh, as after a crash (its state lost; counted in the root's restart intensity, and its strategy restarts the siblings it says)")
	}
	res.Result = gateway.AppResult{Code: gateway.MoveFailed, Msg: fmt.Sprintf("the root did not answer whether it took the new instance of %q (%v): %s", res.Child, why, strings.Join(out, "; "))}
	return res
}

// moveReplaceHook, if set (tests), is called with the deadline of a
// move's ReplaceChild before the root is asked.
var moveReplaceHook func(deadline time.Time)

// moveKillNewHook, if set (tests), stands for the kill of a move's new
// instance after a root's silence, with its error.
var moveKillNewHook func() error

// moveKillOldHook, if set (tests), stands for the kill of a move's old
// instance after a root's silence, with its error.
var moveKillOldHook func() error

// moveImportLostHook, if set (tests), may change the answer to a move's
// import (as if it were lost: mvUnknown).
var moveImportLostHook func(childReleased) childReleased

// moveImportedHook, if set (tests), is called with the new instance of a
// move once it is made, before the check that it is alive.
var moveImportedHook func(actor.Ref)

// aliveTimeout bounds the check that a move's new instance is alive.
const aliveTimeout = 5 * time.Second

// alive checks that ref (of any member) is alive, through the gateway's
// loop (Context.AliveAsync needs an actor).
func (a *apps) alive(ctx context.Context, ref actor.Ref) error {
	actx, cancel := context.WithTimeout(ctx, aliveTimeout)
	defer cancel()
	_, err := a.d.sys.Ask(actx, a.d.gw.ref, aliveCheck{ref})
	return err
}

// aliveCheck asks the gateway whether ref is alive (from this daemon
// only: the type is not registered on the node).
type aliveCheck struct{ ref actor.Ref }

// pickTarget picks the live member, none of avoid, that runs the fewest
// of kids ("" if none).
func (a *apps) pickTarget(kids []placedChild, avoid []string) string {
	count := map[string]int{}
	for _, k := range kids {
		count[k.node]++
	}
	liveAddrs := (&appCluster{d: a.d}).Live()
	var names []string
	for _, m := range a.d.agent.Members() {
		if slices.Contains(avoid, m.Name) {
			continue
		}
		if addr := a.d.memberAddr(m.Name); addr != "" && slices.Contains(liveAddrs, addr) {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	best := ""
	for _, n := range names {
		if best == "" || count[n] < count[best] {
			best = n
		}
	}
	return best
}

// killTimeout bounds a mover's kill of an instance.
const killTimeout = 5 * time.Second

// kill kills ref, within killTimeout, logging and returning a failure
// (one already dead is killed).
func (a *apps) kill(ref actor.Ref) error {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	err := a.d.sys.Kill(ctx, ref)
	if err != nil && !errors.Is(err, actor.ErrDead) {
		a.ulog.Warn("applications: killing an instance after a move failed", "ref", ref.String(), "err", err)
		return err
	}
	return nil
}

// askHold holds a child on node (here or through its gateway).
func (a *apps) askHold(ctx context.Context, node string, m childHold) childHeld {
	if node == a.d.cfg.Name {
		return a.d.holdChild(ctx, m)
	}
	v, err := a.askMember(ctx, node, m, holdTimeout+moveAskSlack)
	if err != nil {
		// No answer: a hold that happened resumes at its bound.
		return childHeld{Code: mvUnknown, Msg: err.Error()}
	}
	r, ok := v.(childHeld)
	if !ok {
		return childHeld{Code: mvFailed, Msg: fmt.Sprintf("unexpected reply %T from %s", v, node)}
	}
	return r
}

// askRelease ends a hold on node, within its own bound (not the move's:
// a resume after the move's time ran out must still happen).
func (a *apps) askRelease(node string, m childRelease) childReleased {
	if h := moveReleaseHook; h != nil {
		return h(m, func() childReleased { return a.askReleaseOnce(node, m) })
	}
	return a.askReleaseOnce(node, m)
}

// moveReleaseHook, if set (tests), stands for a mover's release of a
// hold; real asks the release.
var moveReleaseHook func(m childRelease, real func() childReleased) childReleased

// askReleaseOnce is askRelease without its hook.
func (a *apps) askReleaseOnce(node string, m childRelease) childReleased {
	ctx := context.Background()
	if node == a.d.cfg.Name {
		return a.d.releaseChild(ctx, m)
	}
	v, err := a.askMember(ctx, node, m, releaseTimeout+moveAskSlack)
	if err != nil {
		return childReleased{Code: mvUnknown, Msg: err.Error()}
	}
	r, ok := v.(childReleased)
	if !ok {
		return childReleased{Code: mvFailed, Msg: fmt.Sprintf("unexpected reply %T from %s", v, node)}
	}
	return r
}

// askImport makes the new instance on node.
func (a *apps) askImport(ctx context.Context, node string, m spawnImport) childReleased {
	gw := a.d.gw.ref
	if node != a.d.cfg.Name {
		g := a.d.gw
		g.mu.Lock()
		p, ok := g.peers[node]
		g.mu.Unlock()
		if !ok {
			return childReleased{Code: mvUnknown, Msg: fmt.Sprintf("the gateway of %s is not known here", node)}
		}
		gw = p.ref
	}
	var msg any = m
	if node == a.d.cfg.Name {
		msg = localImport{m}
	}
	ictx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	v, err := a.d.sys.Ask(ictx, gw, msg)
	if err != nil {
		return childReleased{Code: mvUnknown, Msg: fmt.Sprintf("asking %s: %v", node, err)}
	}
	r, ok := v.(childReleased)
	if !ok {
		return childReleased{Code: mvFailed, Msg: fmt.Sprintf("unexpected reply %T from %s", v, node)}
	}
	return r
}

// askCancel cancels the import of the move named move on node
// (cancelImport), within importTimeout.
func (a *apps) askCancel(node, move string) error {
	ctx, cancel := context.WithTimeout(context.Background(), importTimeout)
	defer cancel()
	if node == a.d.cfg.Name {
		_, err := a.d.sys.Ask(ctx, a.d.gw.ref, localCancel{cancelImport{Move: move}})
		return err
	}
	_, err := a.askMember(ctx, node, cancelImport{Move: move}, importTimeout)
	return err
}

// askMember asks the gateway of the member named node, within d.
func (a *apps) askMember(ctx context.Context, node string, m any, d time.Duration) (any, error) {
	g := a.d.gw
	g.mu.Lock()
	p, ok := g.peers[node]
	g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("the gateway of %s is not known here", node)
	}
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := a.d.sys.Ask(actx, p.ref, m)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", node, err)
	}
	return v, nil
}
