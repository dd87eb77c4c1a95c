package upgrade_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/loop"
	"github.com/actord/actord/upgrade"
)

// v2ToV3 is a second upgrade of the counter, to another version of the same
// type; its factory's instances say so.
func v2ToV3() upgrade.Migration[*counterV2, *counterV2] {
	return upgrade.Migration[*counterV2, *counterV2]{From: "v2", To: "v3",
		Forward: func(o *counterV2) (*counterV2, error) { n := *o; n.conts = append(n.conts, "v3"); return &n, nil },
		Factory: func() *counterV2 { return &counterV2{conts: []string{"fresh v3"}} }}
}

// A later upgrade without a watch ends the watch of an earlier one: the
// earlier guard neither counts the later version's crashes nor fails its
// health check, so it never rolls the actor back past the later upgrade
// (here, from v3 to v1 while the actor waits, suspended, for its restart).
func TestUnwatchedLaterUpgradeEndsEarlierWatch(t *testing.T) {
	for _, how := range []string{"crashes", "health"} {
		t.Run(how, func(t *testing.T) {
			rep := newReports()
			m := newManual(t, 1, rep)
			var r actor.Ref
			p := m.spawn(func() actor.Actor {
				return &lazyParent{start: func() actor.Actor { return &counterV1{} }, child: &r}
			})
			mig := migration()
			o := upgrade.Options{Window: time.Hour, HealthEvery: time.Second}
			if how == "crashes" {
				mig.Health, o.MaxCrashes = nil, 1
			}
			m.begin("up", r, mig, o)
			m.do("v3", func(c *actor.Context) actor.Promise {
				return upgrade.Begin(c, r, v2ToV3(), upgrade.Options{}) // no watch
			})
			if err, ok := m.result("v3"); !ok || err != nil {
				t.Fatalf("second upgrade: %v %v", err, ok)
			}
			if how == "crashes" {
				_ = m.s.Send(r, boom{}) // v3 crashes once
				m.settle()
				_ = m.s.Send(p, restartChild{})
			} else {
				_ = m.s.Send(r, sick{}) // fails v1 -> v2's health check, which is not v3's
			}
			m.advance(10 * time.Second)
			got, ok := inspect(t, m.s, r).(*counterV2)
			if !ok || len(got.conts) == 0 || (got.conts[0] != "fresh v3" && got.conts[len(got.conts)-1] != "v3") {
				t.Fatalf("the actor runs %T %+v, want v3; reports %v", inspect(t, m.s, r), got, rep.all())
			}
			for _, x := range rep.all() {
				if x.Outcome == upgrade.RolledBack || x.Outcome == upgrade.RollbackFailed {
					t.Fatalf("the superseded watch acted: %v", rep.all())
				}
			}
		})
	}
}

// hookParent, on loop 1, supervises one child on loop 0 (actor.Supervised)
// and has the supervisor's UpgradeChild hook: start is its Start for the
// child. It restarts the child when it crashes.
type hookParent struct {
	start actor.Factory
	child *actor.Ref
}

func (p *hookParent) Start(c *actor.Context) error {
	c.SpawnAsync(p.start, actor.OnLoop(0), actor.Supervised()).Then(func(_ *actor.Context, v any, err error) {
		if err == nil {
			*p.child = v.(actor.Ref)
		}
	})
	return nil
}

func (p *hookParent) Receive(c *actor.Context, msg any) (any, error) {
	if cr, ok := msg.(actor.Crashed); ok {
		c.RestartAsync(cr.Child)
	}
	return nil, nil
}

func (p *hookParent) UpgradeChild(_ actor.Ref, start actor.Factory) (actor.Factory, error) {
	prev := p.start
	p.start = start
	return prev, nil
}

type sink struct{}

func (sink) Receive(*actor.Context, any) (any, error) { return nil, nil }

// When the new version crashes before its supervisor's loop has run the
// UpgradeChild hook (that loop is busy), the rollback waits for the hook:
// it then sets the supervisor's Start back to the old version, instead of
// the hook installing the new one after the rollback; and Begin answers
// that the upgrade happened.
func TestRollbackWaitsForSupervisorHook(t *testing.T) {
	rep := newReports()
	m := newManual(t, 2, rep)
	var replies []*actor.Reply
	d := m.spawn(func() actor.Actor { return deferrer{&replies} }, actor.OnLoop(0))
	var r actor.Ref
	par := &hookParent{start: func() actor.Actor { return &counterV1{} }, child: &r}
	p := m.spawn(func() actor.Actor { return par }, actor.OnLoop(1))
	busy := m.spawn(func() actor.Actor { return sink{} }, actor.OnLoop(1))
	m.settle()
	_ = m.s.Send(r, ask{to: d}) // a continuation: the upgrade waits for it
	m.settle()
	mig := migration()
	mig.Health = nil
	_ = m.s.Send(m.drv, driverCall{"up", func(c *actor.Context) actor.Promise {
		return upgrade.Begin(c, r, mig, upgrade.Options{MaxCrashes: 1, Window: time.Hour, Drain: time.Minute})
	}})
	m.settle()
	_ = m.s.Send(r, boom{}) // held: the first message of v2, which crashes it
	m.settle()
	for i := 0; i < 200; i++ { // the supervisor's loop is busy
		_ = m.s.Send(busy, i)
	}
	replies[0].Reply("ok", nil) // the drain ends: swap, then boom
	m.settle()
	if err, ok := m.result("up"); !ok || err != nil {
		t.Fatalf("Begin: %v (done %v), want nil: the upgrade happened", err, ok)
	}
	if !rep.has(upgrade.RolledBack) || rep.has(upgrade.RollbackFailed) {
		t.Fatalf("reports %v, want rolled back", rep.all())
	}
	if got := inspect(t, m.s, r); !isV1(got) {
		t.Fatalf("the actor runs %T after the rollback", got)
	}
	var start actor.Actor
	if err := m.s.Inspect(context.Background(), p, func(_ *actor.Context, a actor.Actor) {
		start = a.(*hookParent).start()
	}); err != nil {
		t.Fatal(err)
	}
	if !isV1(start) {
		t.Fatalf("after the rollback the supervisor's Start makes %T, want v1", start)
	}
}

func isV1(a actor.Actor) bool { _, ok := a.(*counterV1); return ok }

// mon counts the ints and the Downs it handles, in order; it monitors the
// refs it is sent and asks (a continuation) on ask.
type mon struct {
	ints  []int
	downs int
}

type monV2 struct{ mon }

func (a *mon) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Down:
		a.downs++
	case int:
		a.ints = append(a.ints, m)
	case ask:
		c.Ask(m.to, "question").Then(func(*actor.Context, any, error) {})
	case actor.Ref:
		_ = c.Monitor(m)
	}
	return nil, nil
}

// While an upgrade waits for continuations, the messages it holds are
// bounded by the queue capacity: at the bound the wait ends, the upgrade
// is refused (ErrPending) and the old version handles every held message,
// in order, then the later ones; nothing accepted is dropped, and the
// Down of a monitored actor is delivered.
func TestHeldMessagesAtBoundRefuseUpgrade(t *testing.T) {
	rep := newReports()
	const capacity = 16
	m := newManualCap(t, rep, capacity)
	var replies []*actor.Reply
	d := m.spawn(func() actor.Actor { return deferrer{&replies} })
	x := m.spawn(func() actor.Actor { return sink{} })
	r := m.spawn(func() actor.Actor { return &mon{} })
	_ = m.s.Send(r, x)
	_ = m.s.Send(r, ask{to: d})
	m.settle()
	mig := upgrade.Migration[*mon, *monV2]{From: "v1", To: "v2",
		Forward: func(o *mon) (*monV2, error) { return &monV2{mon{ints: append([]int(nil), o.ints...)}}, nil },
		Factory: func() *monV2 { return &monV2{} }}
	m.do("up", func(c *actor.Context) actor.Promise {
		return upgrade.Begin(c, r, mig, upgrade.Options{Drain: time.Minute})
	})
	sent := 0
	for i := 0; i < 3*capacity; i++ {
		if err := m.s.Send(r, i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent++
		m.settle()
	}
	_ = m.s.Stop(context.Background(), x)
	m.settle()
	replies[0].Reply("ok", nil)
	m.settle()
	err, ok := m.result("up")
	if !ok || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrPending) || !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("upgrade: %v (done %v), want refused: pending, queue full", err, ok)
	}
	got, isOld := inspect(t, m.s, r).(*mon)
	if !isOld {
		t.Fatalf("the actor runs %T, want v1", inspect(t, m.s, r))
	}
	if len(got.ints) != sent {
		t.Fatalf("%d sends accepted, %d handled", sent, len(got.ints))
	}
	for i, n := range got.ints {
		if n != i {
			t.Fatalf("message %d is %d: reordered", i, n)
		}
	}
	if got.downs != 1 {
		t.Fatalf("%d Downs handled, want 1", got.downs)
	}
}

// The runtime's notices are never dropped from a stash: a Down reaches a
// supervised actor whose stash is full while it waits, suspended, for its
// restart (the messages beyond the bound are dropped, as documented).
func TestDownBeyondStashBound(t *testing.T) {
	rep := newReports()
	const capacity = 16
	m := newManualCap(t, rep, capacity)
	x := m.spawn(func() actor.Actor { return sink{} })
	var r actor.Ref
	p := m.spawn(func() actor.Actor { return &lazyParent{start: func() actor.Actor { return &crasher{} }, child: &r} })
	_ = m.s.Send(r, x)
	_ = m.s.Send(r, boom{}) // suspended until told
	m.settle()
	for i := 0; i < 2*capacity; i++ {
		_ = m.s.Send(r, i)
		m.settle()
	}
	_ = m.s.Stop(context.Background(), x)
	m.settle()
	_ = m.s.Send(p, restartChild{})
	m.settle()
	got := inspect(t, m.s, r).(*crasher)
	if len(got.ints) != capacity || got.downs != 1 {
		t.Fatalf("after the restart: %d ints, %d Downs; want %d and 1", len(got.ints), got.downs, capacity)
	}
}

// crasher is a mon that panics on boom; its Downs and ints outlive a
// restart (they are counted by the instance the factory made).
type crasher struct{ mon }

func (a *crasher) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(boom); ok {
		panic(errBoom)
	}
	return a.mon.Receive(c, msg)
}

func newManualCap(t *testing.T, rep *reports, capacity int) *manual {
	t.Helper()
	fc := loop.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Clock: fc, LifecycleHook: rep.hook,
		OnCrash: func(*actor.Crash) {}, Seed: 1, QueueCapacity: capacity})
	m := &manual{t: t, s: s, fc: fc, results: map[string]error{}}
	m.sim = seam.Sim(s).(interface {
		NextTimer() (time.Time, bool)
		Queued() bool
	})
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	var err error
	m.drv, err = s.Spawn(context.Background(), func() actor.Actor { return driver{m} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// selfV1 upgrades itself with Begin when told, and keeps Begin's outcome.
type selfV1 struct{ res *error }

type selfV2 struct{ res *error }

type upSelf struct{}

func (a *selfV1) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(upSelf); ok {
		mig := upgrade.Migration[*selfV1, *selfV2]{From: "v1", To: "v2",
			Forward: func(o *selfV1) (*selfV2, error) { return &selfV2{res: o.res}, nil },
			Factory: func() *selfV2 { return &selfV2{} }}
		upgrade.Begin(c, c.Self(), mig, upgrade.Options{Drain: time.Second}).Then(func(_ *actor.Context, _ any, err error) {
			*a.res = err
		})
	}
	return nil, nil
}

func (*selfV2) Receive(*actor.Context, any) (any, error) { return nil, nil }

// An actor that upgrades itself with Begin and waits on the promise is
// refused at once with ErrSelf (its own continuation would be one of the
// old version, which the upgrade waits for), not after the drain with
// ErrPending; it runs on as it was.
func TestSelfUpgradeRefused(t *testing.T) {
	m := newManual(t, 1, newReports())
	res := errors.New("unset")
	r := m.spawn(func() actor.Actor { return &selfV1{res: &res} })
	_ = m.s.Send(r, upSelf{})
	m.settle() // no clock advance: the answer must not wait for the drain
	if !errors.Is(res, upgrade.ErrRefused) || !errors.Is(res, upgrade.ErrSelf) {
		t.Fatalf("self-upgrade: %v, want refused at once: ErrSelf", res)
	}
	if _, ok := inspect(t, m.s, r).(*selfV1); !ok {
		t.Fatalf("the actor runs %T, want v1", inspect(t, m.s, r))
	}
}

// A second upgrade of an actor whose first one waits for continuations is
// refused with ErrBusy; the first goes on.
func TestSecondUpgradeWhileDrainingIsBusy(t *testing.T) {
	rep := newReports()
	m := newManual(t, 1, rep)
	var replies []*actor.Reply
	d := m.spawn(func() actor.Actor { return deferrer{&replies} })
	r := m.spawn(func() actor.Actor { return &counterV1{} })
	_ = m.s.Send(r, ask{to: d})
	m.settle()
	for _, key := range []string{"first", "second"} {
		m.do(key, func(c *actor.Context) actor.Promise {
			return upgrade.Begin(c, r, migration(), upgrade.Options{Drain: time.Minute})
		})
	}
	if err, ok := m.result("second"); !ok || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrBusy) {
		t.Fatalf("second upgrade: %v (done %v), want refused: busy", err, ok)
	}
	replies[0].Reply("ok", nil)
	m.settle()
	if err, ok := m.result("first"); !ok || err != nil {
		t.Fatalf("first upgrade: %v (done %v)", err, ok)
	}
}

// blocker blocks its loop in a handler until released.
type blocker struct{ entered, release chan struct{} }

func (b blocker) Receive(*actor.Context, any) (any, error) {
	close(b.entered)
	<-b.release
	return nil, nil
}

// When Apply's context ends while the guard's spawn is queued, Apply
// returns the context's error as it is, not a refusal; the guard, given
// up before its loop got to it, is never started (System.Spawn makes no
// actor for a caller who left), so the upgrade does not happen.
func TestApplyContextEndsWhileGuardStarts(t *testing.T) {
	rep := newReports()
	s := system(t, 1, rep)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} })
	if err != nil {
		t.Fatal(err)
	}
	b := blocker{entered: make(chan struct{}), release: make(chan struct{})}
	br, err := s.Spawn(ctx, func() actor.Actor { return b })
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(br, struct{}{})
	<-b.entered // the loop is busy: the guard's spawn waits behind
	ended, end := context.WithCancel(ctx)
	end()
	err = upgrade.Apply(ended, s, r, migration(), upgrade.Options{})
	close(b.release)
	if !errors.Is(err, context.Canceled) || errors.Is(err, upgrade.ErrRefused) {
		t.Fatalf("Apply: %v, want the context's error, not a refusal", err)
	}
	if _, ok := inspect(t, s, r).(*counterV1); !ok { // a round trip through the loop, after the given-up spawn
		t.Fatalf("the actor runs %T, want v1", inspect(t, s, r))
	}
	if reps := rep.all(); len(reps) != 0 {
		t.Fatalf("reports %v for an upgrade whose guard never started", reps)
	}
}

// linker monitors, links to and traps the exits of the refs it is sent;
// its v2 counts the Downs and Exited it gets.
type linker struct{ downs, exits int }

type linkerV2 struct{ linker }

type watch struct{ mon, link actor.Ref }

func (a *linker) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case watch:
		c.TrapExits(true)
		if err := c.Monitor(m.mon); err != nil {
			return nil, err
		}
		return nil, c.Link(m.link)
	case actor.Down:
		a.downs++
	case actor.Exited:
		a.exits++
	}
	return nil, nil
}

// The new version inherits what belongs to the actor, not to its
// instance: the monitors and links the old version set, and trap-exit.
func TestNewVersionInheritsLinksAndMonitors(t *testing.T) {
	m := newManual(t, 1, newReports())
	x := m.spawn(func() actor.Actor { return sink{} })
	y := m.spawn(func() actor.Actor { return sink{} })
	r := m.spawn(func() actor.Actor { return &linker{} })
	if _, err := m.ask(r, watch{mon: x, link: y}); err != nil {
		t.Fatal(err)
	}
	mig := upgrade.Migration[*linker, *linkerV2]{From: "v1", To: "v2",
		Forward: func(o *linker) (*linkerV2, error) { return &linkerV2{*o}, nil },
		Factory: func() *linkerV2 { return &linkerV2{} }}
	m.do("up", func(c *actor.Context) actor.Promise { return upgrade.Begin(c, r, mig, upgrade.Options{}) })
	if err, ok := m.result("up"); !ok || err != nil {
		t.Fatalf("upgrade: %v (done %v)", err, ok)
	}
	_ = m.s.Stop(context.Background(), x)
	_ = m.s.Kill(context.Background(), y)
	m.settle()
	got, ok := inspect(t, m.s, r).(*linkerV2)
	if !ok || got.downs != 1 || got.exits != 1 {
		t.Fatalf("after the upgrade: %T %+v, want v2 with 1 Down and 1 Exited", inspect(t, m.s, r), got)
	}
}

// A rollback that waits for the new version's continuations goes on when
// the messages it holds reach the bound (the continuations are dropped, as
// when its drain ends): it is not refused, and every held message is
// handled, in order, by the restored version.
func TestRollbackAtHeldBoundGoesOn(t *testing.T) {
	rep := newReports()
	const capacity = 16
	m := newManualCap(t, rep, capacity)
	var replies []*actor.Reply
	d := m.spawn(func() actor.Actor { return deferrer{&replies} })
	r := m.spawn(func() actor.Actor { return &counterV1{} })
	m.begin("up", r, migration(), upgrade.Options{Window: time.Hour, HealthEvery: time.Second, Drain: time.Minute})
	_ = m.s.Send(r, ask{to: d}) // a continuation of v2: the rollback waits for it
	_ = m.s.Send(r, sick{})
	m.advance(time.Second) // the health check fails: rollback
	const n = 3 * capacity
	for i := 1; i <= n; i++ {
		if err := m.s.Send(r, i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		m.settle()
	}
	if !rep.has(upgrade.RolledBack) || rep.has(upgrade.RollbackFailed) {
		t.Fatalf("reports %v, want rolled back", rep.all())
	}
	got, ok := inspect(t, m.s, r).(*counterV1)
	if !ok || !got.back {
		t.Fatalf("the actor runs %T %+v, want v1 through Back", inspect(t, m.s, r), got)
	}
	if len(got.log) != n {
		t.Fatalf("%d messages handled, want %d", len(got.log), n)
	}
	for i, e := range got.log {
		if e.n != i+1 || e.version != "v1" {
			t.Fatalf("message %d: %+v, want %d handled by the restored v1", i+1, e, i+1)
		}
	}
}
