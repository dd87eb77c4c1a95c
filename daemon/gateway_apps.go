package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
)

// The gateway's application calls (gateway.DeployApp, AppOp, ListApps):
// whoever holds the gateway's capability may deploy, start, stop, remove
// and list the cluster's applications, as they may spawn its kinds. The
// work (a proposal, then waiting for the registry to apply it) runs on the
// worker pool, bounded by appCallTimeout, never on the gateway's loop.

// appCallTimeout bounds an application call: the proposal and the wait for
// the local replica to apply it.
const appCallTimeout = 5 * time.Second

// appCall answers an application call.
func (g *Gateway) appCall(c *actor.Context, msg any) (any, error) {
	if limit := g.d.appCallMax; g.appCalls.Add(1) > limit {
		g.appCalls.Add(-1)
		r := gateway.AppResult{Code: gateway.AppRetry, Msg: fmt.Sprintf("%s is answering %d application calls", g.d.cfg.Name, limit)}
		if _, ok := msg.(gateway.ListApps); ok {
			return gateway.AppList{Result: r}, nil
		}
		return r, nil
	}
	// Counted down once, by the job when it ends (the continuation never
	// runs if the gateway actor restarts meanwhile), or by the
	// continuation when the saturated pool refused the job.
	var once sync.Once
	done := func() { once.Do(func() { g.appCalls.Add(-1) }) }
	rep := c.Defer()
	c.Blocking(func() (any, error) {
		defer done()
		ctx, cancel := context.WithTimeout(g.ctx, appCallTimeout)
		defer cancel()
		return g.d.apps.call(ctx, msg), nil
	}).Then(func(_ *actor.Context, v any, err error) {
		done()
		rep.Reply(v, err)
	})
	return nil, nil
}

// call runs an application call here, or passes it to a member's gateway
// when this daemon runs no replica.
func (a *apps) call(ctx context.Context, msg any) any {
	fail := func(code int, format string, args ...any) any {
		r := gateway.AppResult{Code: code, Msg: fmt.Sprintf(format, args...)}
		if _, ok := msg.(gateway.ListApps); ok {
			return gateway.AppList{Result: r}
		}
		return r
	}
	if a == nil || len(a.cfg.Members) == 0 {
		return fail(gateway.AppOff, "no app members configured on %s", a.name())
	}
	if a.self == 0 {
		return a.forward(ctx, msg, fail)
	}
	switch m := msg.(type) {
	case gateway.ListApps:
		st, err := a.status(ctx)
		if err != nil {
			return fail(gateway.AppRetry, "%v", err)
		}
		return gateway.AppList{Apps: appInfos(st)}
	case gateway.DeployApp:
		enc, err := encodeAppSpec(m.Spec, a.d.gw.kindSet())
		if err != nil {
			return fail(gateway.AppBadSpec, "%v", err)
		}
		cmd := appreg.Command{Op: appreg.OpDeploy, App: m.Spec.Name, Spec: enc, Prefer: m.Spec.Prefer, Takeover: m.Spec.Takeover}
		return a.apply(ctx, cmd, func(st driver.Status) bool {
			return holds(st, m.Spec, enc) && desired(st, m.Spec.Name) == appreg.Running
		}, fail)
	case gateway.AppOp:
		if err := checkName(m.App); err != nil {
			return fail(gateway.AppUnknown, "application name %q: %v", truncate(m.App, 64), err)
		}
		var op appreg.Op
		var want appreg.Desired
		switch m.Op {
		case "start":
			op, want = appreg.OpStart, appreg.Running
		case "stop":
			op, want = appreg.OpStop, appreg.Stopped
		case "remove":
			op, want = appreg.OpRemove, appreg.Removed
		default:
			return fail(gateway.AppBadSpec, "operation %q: want start, stop or remove", truncate(m.Op, 64))
		}
		st, err := a.status(ctx)
		if err != nil {
			return fail(gateway.AppRetry, "%v", err)
		}
		if d := desired(st, m.App); d == 0 || d == appreg.Removed {
			return fail(gateway.AppUnknown, "%q", m.App)
		}
		return a.apply(ctx, appreg.Command{Op: op, App: m.App}, func(st driver.Status) bool {
			return desired(st, m.App) == want
		}, fail)
	}
	return fail(gateway.AppBadSpec, "unexpected call %T", msg)
}

func (a *apps) name() string {
	if a == nil {
		return "this daemon"
	}
	return a.d.cfg.Name
}

// apply proposes cmd until the local replica shows done, or ctx ends. A
// proposal may be lost (a leader change drops it): it is made again.
func (a *apps) apply(ctx context.Context, cmd appreg.Command, done func(driver.Status) bool, fail func(int, string, ...any) any) any {
	var last error
	for {
		st, err := a.status(ctx)
		if err == nil && done(st) {
			return gateway.AppResult{}
		}
		if err == nil {
			err = refusal(st, cmd)
		}
		if err == nil {
			err = a.propose(ctx, cmd)
		}
		if permanent(err) {
			// Proposing again changes nothing: the caller must.
			return fail(gateway.AppBadSpec, "%s %q refused: %v", cmd.Op, cmd.App, err)
		}
		if err != nil {
			last = err
		}
		if err := a.settleWait(ctx, last); err != nil {
			return fail(gateway.AppRetry, "%s %q not applied within %v: %v", cmd.Op, cmd.App, appCallTimeout, err)
		}
	}
}

// settleWait gives a proposal a few ticks to commit before the registry is
// looked at again. When ctx ends first it returns why: last, the latest
// error of the attempts, or else ctx's.
func (a *apps) settleWait(ctx context.Context, last error) error {
	t := time.NewTimer(5 * a.cfg.Tick)
	defer t.Stop()
	select {
	case <-ctx.Done():
		if last == nil {
			last = ctx.Err()
		}
		return last
	case <-t.C:
		return nil
	}
}

// forward passes an application call to the gateway of a registry member
// this daemon knows.
func (a *apps) forward(ctx context.Context, msg any, fail func(int, string, ...any) any) any {
	g := a.d.gw
	var refs []actor.Ref
	g.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(g.peers)) {
		if a.isMember(name) {
			refs = append(refs, g.peers[name].ref)
		}
	}
	g.mu.Unlock()
	var errs []error
	for _, ref := range refs {
		v, err := a.d.sys.Ask(ctx, ref, msg)
		if err == nil {
			return v
		}
		errs = append(errs, err)
	}
	return fail(gateway.AppRetry, "%s is no registry member and reached none: %v", a.d.cfg.Name, errors.Join(errs...))
}

// desired is the named application's desired state in st (0 if absent).
func desired(st driver.Status, app string) appreg.Desired {
	for _, x := range st.Apps {
		if x.Name == app {
			return x.Desired
		}
	}
	return 0
}

// appInfos lists the applications of st that are not removed.
func appInfos(st driver.Status) []gateway.AppInfo {
	out := []gateway.AppInfo{}
	for _, x := range st.Apps {
		if x.Desired == appreg.Removed {
			continue
		}
		spec, err := decodeAppSpec(x.Spec)
		if err != nil {
			spec = AppSpec{Name: x.Name}
		}
		info := gateway.AppInfo{Spec: spec, Desired: x.Desired.String(), Node: x.Node, Gen: x.Gen}
		switch {
		case x.Desired != appreg.Running:
			info.State = "stopped"
		case x.Node == "":
			info.State = "waiting"
		case x.RenewGen == x.Gen:
			info.State = "running"
		default:
			info.State = "starting"
		}
		out = append(out, info)
	}
	return out
}

// kindSet returns the kinds registered on the gateway now.
func (g *Gateway) kindSet() Kinds {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.kinds)
}
