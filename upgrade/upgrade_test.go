package upgrade_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/supervisor"
	"github.com/actord/actord/upgrade"
)

// A producer sends numbered messages while the upgrade happens: every
// message is handled once, in order, v1 before v2, and v2 starts from v1's
// state.
func TestApplyUnderLoad(t *testing.T) {
	rep := newReports()
	s := system(t, 2, rep)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	const first, total = 300, 3000
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := s.Send(r, i); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	}
	send(1, first)
	if _, err := s.Ask(ctx, r, get{}); err != nil { // v1 has handled the first batch
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // sends from another goroutine while the upgrade runs
		defer close(done)
		send(first+1, total-first)
	}()
	if err := upgrade.Apply(ctx, s, r, migration(), upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	<-done
	send(total-first+1, total) // after the upgrade: v2's
	v, err := s.Ask(ctx, r, get{})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := checkLog(t, v.([]entry), total)
	if v1 < first || v2 < first {
		t.Fatalf("v1 handled %d, v2 %d: want at least %d each", v1, v2, first)
	}
	var sum, want int
	if err := s.Inspect(ctx, r, func(_ *actor.Context, a actor.Actor) { sum = a.(*counterV2).total }); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= total; i++ {
		want += i
	}
	if sum != want {
		t.Fatalf("v2's total %d, want %d: state not carried over", sum, want)
	}
	if got := rep.wait(t, upgrade.Upgraded); got.Actor != r || got.From != "v1" || got.To != "v2" || got.Reason != nil {
		t.Fatalf("report %+v", got)
	}
}

// A Forward that fails or panics refuses the upgrade: the old instance
// serves on, untouched, with its state.
func TestForwardFailureRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forward func(*counterV1) (*counterV2, error)
		want    error
	}{
		{"error", func(*counterV1) (*counterV2, error) { return nil, errBoom }, errBoom},
		{"panic", func(*counterV1) (*counterV2, error) { panic("no way") }, upgrade.ErrMigration},
		{"nil", func(*counterV1) (*counterV2, error) { return nil, nil }, upgrade.ErrMigration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := newReports()
			s := system(t, 1, rep)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} })
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Send(r, 1)
			_ = s.Send(r, 2)
			before := inspect(t, s, r)
			m := migration()
			m.Forward = tc.forward
			err = upgrade.Apply(ctx, s, r, m, upgrade.Options{})
			if !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrMigration) || !errors.Is(err, tc.want) {
				t.Fatalf("Apply: %v, want refused by the migration (%v)", err, tc.want)
			}
			_ = s.Send(r, 3)
			v, err := s.Ask(ctx, r, get{})
			if err != nil {
				t.Fatal(err)
			}
			if v1, _ := checkLog(t, v.([]entry), 3); v1 != 3 {
				t.Fatalf("v1 handled %d of 3", v1)
			}
			if after := inspect(t, s, r); after != before {
				t.Fatalf("instance replaced: %T %p, was %p", after, after, before)
			}
			if got := rep.wait(t, upgrade.Refused); !errors.Is(got.Reason, upgrade.ErrRefused) {
				t.Fatalf("report %+v", got)
			}
		})
	}
}

// A migration from another type is refused with an error naming both
// types; so are an incomplete migration and a bad ref.
func TestWrongVersionRefused(t *testing.T) {
	rep := newReports()
	s := system(t, 1, rep)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV2{} })
	if err != nil {
		t.Fatal(err)
	}
	err = upgrade.Apply(ctx, s, r, migration(), upgrade.Options{})
	if !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrWrongVersion) {
		t.Fatalf("Apply: %v, want ErrWrongVersion", err)
	}
	for _, name := range []string{"*upgrade_test.counterV1", "*upgrade_test.counterV2"} {
		if !strings.Contains(err.Error(), name) {
			t.Fatalf("error %q does not name %s", err, name)
		}
	}
	if _, ok := inspect(t, s, r).(*counterV2); !ok {
		t.Fatal("the actor changed")
	}
	bad := migration()
	bad.Factory = nil
	if err := upgrade.Apply(ctx, s, r, bad, upgrade.Options{}); !errors.Is(err, upgrade.ErrBadMigration) {
		t.Fatalf("no Factory: %v", err)
	}
	if err := upgrade.Apply(ctx, s, actor.Ref{}, migration(), upgrade.Options{}); !errors.Is(err, upgrade.ErrRefused) ||
		!errors.Is(err, actor.ErrInvalidRef) {
		t.Fatalf("zero ref: %v", err)
	}
}

// supervised starts a supervisor with one counterV1 child "c" and returns
// both refs.
func supervised(t *testing.T, m *manual) (sup, child actor.Ref) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	sup = m.spawn(supervisor.New(supervisor.Spec{MaxR: 100, MaxT: time.Hour, Logger: quiet, Children: []supervisor.ChildSpec{
		{ID: "c", Start: func() actor.Actor { return &counterV1{} }},
	}}), actor.OnLoop(0))
	return sup, childRef(t, m, sup)
}

func isFreshV1(a actor.Actor) bool {
	v1, ok := a.(*counterV1)
	return ok && v1.started && !v1.back
}

func childRef(t *testing.T, m *manual, sup actor.Ref) actor.Ref {
	t.Helper()
	v, err := m.ask(sup, supervisor.WhichChildren{})
	if err != nil {
		t.Fatal(err)
	}
	return v.([]supervisor.ChildInfo)[0].Ref
}

func (m *manual) begin(key string, r actor.Ref, mig upgrade.Migration[*counterV1, *counterV2], o upgrade.Options) {
	m.t.Helper()
	m.do(key, func(c *actor.Context) actor.Promise { return upgrade.Begin(c, r, mig, o) })
	if err, ok := m.result(key); !ok || err != nil {
		m.t.Fatalf("upgrade: %v (done %v)", err, ok)
	}
}

// After MaxCrashes crashes within the window the new version is rolled
// back: through Back from the restarted new instance, or, without Back, by
// a restart from the old factory. Before that, the supervisor's restarts
// make the new version; after, the old one (in place and from the spec).
func TestRollbackOnCrashes(t *testing.T) {
	for _, withBack := range []bool{true, false} {
		name := "back"
		if !withBack {
			name = "factory"
		}
		t.Run(name, func(t *testing.T) {
			rep := newReports()
			m := newManual(t, 1, rep)
			sup, r := supervised(t, m)
			mig := migration()
			if !withBack {
				mig.Back = nil
			}
			mig.Health = nil
			m.begin("up", r, mig, upgrade.Options{MaxCrashes: 2, Window: time.Minute})
			for i := 1; i <= 3; i++ {
				_ = m.s.Send(r, i)
			}
			_ = m.s.Send(r, boom{})
			m.settle()
			if _, ok := inspect(t, m.s, r).(*counterV2); !ok || rep.has(upgrade.RolledBack) {
				t.Fatalf("after one crash: %T, rolled back %v: want v2 restarted", inspect(t, m.s, r), rep.has(upgrade.RolledBack))
			}
			_ = m.s.Send(r, 4)
			_ = m.s.Send(r, boom{})
			m.settle()
			if !rep.has(upgrade.RolledBack) {
				t.Fatalf("not rolled back after two crashes: %v", rep.all())
			}
			a, ok := inspect(t, m.s, r).(*counterV1)
			if !ok {
				t.Fatalf("after the rollback the actor runs %T", inspect(t, m.s, r))
			}
			if withBack && (!a.back || a.started) {
				t.Fatalf("rolled back without Back: %+v", a)
			}
			if !withBack && (a.back || !a.started) {
				t.Fatalf("not a fresh v1 from the old factory: %+v", a)
			}
			if v, err := m.ask(r, boom{}); err != nil || v != "v1 does not crash" {
				t.Fatalf("v1 after the rollback: %v, %v", v, err)
			}
			// The supervisor's spec is back to v1: a fresh spawn makes v1.
			if _, err := m.ask(sup, supervisor.TerminateChild{ID: "c"}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.ask(sup, supervisor.RestartChild{ID: "c"}); err != nil {
				t.Fatal(err)
			}
			if got := inspect(t, m.s, childRef(t, m, sup)); !isFreshV1(got) {
				t.Fatalf("respawned child after the rollback: %T %+v, want a fresh v1", got, got)
			}
		})
	}
}

// A failing health check rolls back through Back, carrying the state; a
// healthy one does not, and after the window the upgrade is final.
func TestRollbackOnHealth(t *testing.T) {
	t.Run("sick", func(t *testing.T) {
		rep := newReports()
		m := newManual(t, 1, rep)
		r := m.spawn(func() actor.Actor { return &counterV1{} })
		m.begin("up", r, migration(), upgrade.Options{Window: time.Minute, HealthEvery: time.Second})
		_ = m.s.Send(r, 1)
		m.advance(time.Second)
		m.advance(time.Second)
		if rep.has(upgrade.RolledBack) {
			t.Fatal("rolled back while healthy")
		}
		_ = m.s.Send(r, 2)
		_ = m.s.Send(r, sick{})
		m.settle()
		m.advance(time.Second)
		if !rep.has(upgrade.RolledBack) {
			t.Fatalf("not rolled back: %v", rep.all())
		}
		a, ok := inspect(t, m.s, r).(*counterV1)
		if !ok || !a.back {
			t.Fatalf("after the rollback: %T %+v, want v1 from Back", inspect(t, m.s, r), a)
		}
		if _, v2 := checkLog(t, a.log, 2); v2 != 2 {
			t.Fatalf("state not carried back: %+v", a.log)
		}
		for _, x := range rep.all() {
			if x.Outcome == upgrade.RolledBack && (x.From != "v2" || x.To != "v1" || !strings.Contains(x.Reason.Error(), "sick")) {
				t.Fatalf("report %v", x)
			}
		}
	})
	t.Run("window", func(t *testing.T) {
		rep := newReports()
		m := newManual(t, 1, rep)
		r := m.spawn(func() actor.Actor { return &counterV1{} })
		m.begin("up", r, migration(), upgrade.Options{Window: time.Minute, HealthEvery: time.Second})
		for range 61 {
			m.advance(time.Second)
		}
		_ = m.s.Send(r, sick{})
		m.settle()
		m.advance(time.Minute)
		if _, ok := inspect(t, m.s, r).(*counterV2); !ok || rep.has(upgrade.RolledBack) {
			t.Fatalf("rolled back after the window: %v", rep.all())
		}
	})
}

// The supervisor's own restarts of an upgraded child make the new
// version: a restart in place after a crash (the slot's factory), and a
// fresh spawn after TerminateChild and RestartChild (the spec's Start).
func TestSupervisedChildRestartsNewVersion(t *testing.T) {
	rep := newReports()
	m := newManual(t, 1, rep)
	sup, r := supervised(t, m)
	m.begin("up", r, migration(), upgrade.Options{})
	_ = m.s.Send(r, boom{})
	m.settle()
	if a, ok := inspect(t, m.s, r).(*counterV2); !ok || len(a.log) != 0 {
		t.Fatalf("restarted after a crash: %T", inspect(t, m.s, r))
	}
	if _, err := m.ask(sup, supervisor.TerminateChild{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ask(sup, supervisor.RestartChild{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	r2 := childRef(t, m, sup)
	if r2 == r {
		t.Fatal("the child was not spawned afresh")
	}
	if _, ok := inspect(t, m.s, r2).(*counterV2); !ok {
		t.Fatalf("respawned child runs %T, want the new version", inspect(t, m.s, r2))
	}
}

// deferrer answers "question" later: it keeps the Reply.
type deferrer struct{ replies *[]*actor.Reply }

func (d deferrer) Receive(c *actor.Context, _ any) (any, error) {
	*d.replies = append(*d.replies, c.Defer())
	return nil, nil
}

// An upgrade waits for the old version's outstanding continuations, holding
// its messages: they run against the old version, and the held messages
// reach the new one in order. If they do not settle within the drain, the
// upgrade is refused and the old version handles the held messages.
func TestDrainContinuations(t *testing.T) {
	for _, settled := range []bool{true, false} {
		name := "settled"
		if !settled {
			name = "timeout"
		}
		t.Run(name, func(t *testing.T) {
			rep := newReports()
			m := newManual(t, 1, rep)
			var replies []*actor.Reply
			d := m.spawn(func() actor.Actor { return deferrer{&replies} })
			r := m.spawn(func() actor.Actor { return &counterV1{} })
			_ = m.s.Send(r, ask{to: d})
			_ = m.s.Send(r, later{n: 4, d: 500 * time.Millisecond}) // a timer set by v1
			m.settle()
			m.do("up", func(c *actor.Context) actor.Promise {
				return upgrade.Begin(c, r, migration(), upgrade.Options{Drain: time.Second})
			})
			for i := 1; i <= 3; i++ {
				_ = m.s.Send(r, i)
			}
			m.settle()
			m.advance(500 * time.Millisecond) // the timer fires while draining: held too
			if _, done := m.result("up"); done {
				t.Fatal("upgraded with a continuation outstanding")
			}
			if a := inspect(t, m.s, r).(*counterV1); len(a.log) != 0 {
				t.Fatalf("messages not held while draining: %+v", a.log)
			}
			if settled {
				replies[0].Reply("answer", nil)
				m.settle()
				if err, done := m.result("up"); !done || err != nil {
					t.Fatalf("upgrade: %v, done %v", err, done)
				}
				a, ok := inspect(t, m.s, r).(*counterV2)
				if !ok || len(a.conts) != 1 || a.conts[0] != "answer" {
					t.Fatalf("after the drain: %T %+v: want v2 with v1's continuation result", inspect(t, m.s, r), a)
				}
				if _, v2 := checkLog(t, a.log, 4); v2 != 4 {
					t.Fatalf("held messages: %+v", a.log)
				}
				return
			}
			m.advance(500 * time.Millisecond)
			err, done := m.result("up")
			if !done || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrPending) {
				t.Fatalf("upgrade: %v (done %v), want refused with ErrPending", err, done)
			}
			a, ok := inspect(t, m.s, r).(*counterV1)
			if !ok {
				t.Fatalf("after the refusal: %T", inspect(t, m.s, r))
			}
			if v1, _ := checkLog(t, a.log, 4); v1 != 4 {
				t.Fatalf("held messages: %+v", a.log)
			}
			replies[0].Reply("late", nil)
			m.settle()
			if len(a.conts) != 1 || a.conts[0] != "late" {
				t.Fatalf("v1's continuation after the refusal: %+v", a.conts)
			}
		})
	}
}

// The outcome reaches the event bus as event.ActorUpgraded.
func TestEventBus(t *testing.T) {
	bus := event.New(event.Config{})
	defer bus.Close()
	rt, err := event.NewRuntime(bus)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	sub, err := event.Subscribe[event.ActorUpgraded](bus, event.Buffer(8))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s := actor.NewSystem(rt.Install(actor.Config{Loops: 1}))
	defer func() { _ = s.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := upgrade.Apply(ctx, s, r, migration(), upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.Out():
		if ev.Actor != r || ev.Outcome != "upgraded" || ev.From != "v1" || ev.To != "v2" {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no ActorUpgraded on the bus")
	}
}

// The debugger's event stream shows the report (actord debug events
// --kind report).
func TestDebuggerShowsReport(t *testing.T) {
	rec := debug.New(debug.Config{Loops: 1, MemoryBudget: 1 << 20})
	s := actor.NewSystem(actor.Config{Loops: 1, Hook: rec.Hook})
	defer func() { _ = s.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := upgrade.Apply(ctx, s, r, migration(), upgrade.Options{}); err != nil {
		t.Fatal(err)
	}
	// The guard publishes the report (the hook records it on the loop)
	// before it answers Apply: it is there once Apply has returned.
	evs := rec.Events(debug.EventFilter{Loop: -1, Kinds: []string{"report"}})
	if len(evs) != 1 || !strings.Contains(evs[0].Type, "upgrade.Report") || !strings.Contains(evs[0].Payload, `"v2"`) {
		t.Fatalf("report events in the debugger: %+v", evs)
	}
}

// A drain ends when its actor crashes (the upgrade is refused; the held
// messages wait for the supervisor's restart and reach the new instance,
// of the old version, in order) or stops (refused; held asks fail).
func TestDrainAborted(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		rep := newReports()
		m := newManual(t, 1, rep)
		var replies []*actor.Reply
		d := m.spawn(func() actor.Actor { return deferrer{&replies} })
		_, r := supervised(t, m)
		_ = m.s.Send(r, ask{to: d})
		m.settle()
		m.do("up", func(c *actor.Context) actor.Promise {
			return upgrade.Begin(c, r, migration(), upgrade.Options{Drain: time.Second})
		})
		for i := 1; i <= 3; i++ {
			_ = m.s.Send(r, i)
		}
		m.settle()
		replies[0].Reply("panic", nil) // v1's continuation crashes it
		m.settle()
		err, done := m.result("up")
		if !done || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, actor.ErrCrashed) ||
			!strings.Contains(err.Error(), "crashed while") {
			t.Fatalf("upgrade: %v (done %v), want refused by the crash while draining", err, done)
		}
		got := inspect(t, m.s, r)
		if !isFreshV1(got) {
			t.Fatalf("after the crash: %T %+v, want v1 restarted", got, got)
		}
		if v1, _ := checkLog(t, got.(*counterV1).log, 3); v1 != 3 {
			t.Fatalf("held messages: %+v", got)
		}
	})
	t.Run("restart", func(t *testing.T) {
		rep := newReports()
		m := newManual(t, 1, rep)
		var replies []*actor.Reply
		d := m.spawn(func() actor.Actor { return deferrer{&replies} })
		var r actor.Ref
		p := m.spawn(func() actor.Actor {
			return &lazyParent{start: func() actor.Actor { return &counterV1{} }, child: &r}
		})
		_ = m.s.Send(r, ask{to: d})
		m.settle()
		m.do("up", func(c *actor.Context) actor.Promise {
			return upgrade.Begin(c, r, migration(), upgrade.Options{Drain: time.Second})
		})
		for i := 1; i <= 3; i++ {
			_ = m.s.Send(r, i)
		}
		m.settle()
		_ = m.s.Send(p, restartChild{}) // its parent restarts it while draining
		m.settle()
		err, done := m.result("up")
		if !done || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, actor.ErrRestart) {
			t.Fatalf("upgrade: %v (done %v), want refused by the restart", err, done)
		}
		got := inspect(t, m.s, r)
		if !isFreshV1(got) {
			t.Fatalf("after the restart: %T %+v, want v1 restarted", got, got)
		}
		if v1, _ := checkLog(t, got.(*counterV1).log, 3); v1 != 3 {
			t.Fatalf("held messages: %+v", got)
		}
	})
	t.Run("stop", func(t *testing.T) {
		rep := newReports()
		m := newManual(t, 1, rep)
		var replies []*actor.Reply
		d := m.spawn(func() actor.Actor { return deferrer{&replies} })
		r := m.spawn(func() actor.Actor { return &counterV1{} })
		_ = m.s.Send(r, ask{to: d})
		m.settle()
		m.do("up", func(c *actor.Context) actor.Promise {
			return upgrade.Begin(c, r, migration(), upgrade.Options{Drain: time.Second})
		})
		var held error
		m.do("held", func(c *actor.Context) actor.Promise { return c.Ask(r, get{}) })
		if _, done := m.result("held"); done {
			t.Fatal("ask answered while draining")
		}
		if err := m.s.Stop(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		m.settle()
		err, done := m.result("up")
		if !done || !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, actor.ErrDead) {
			t.Fatalf("upgrade: %v (done %v), want refused: dead", err, done)
		}
		if held, done = m.result("held"); !done || !errors.Is(held, actor.ErrDead) {
			t.Fatalf("held ask: %v (done %v), want ErrDead", held, done)
		}
	})
}

// A later upgrade supersedes an earlier one's watch: the earlier guard's
// end does not end the later one's watch of crashes.
func TestLaterUpgradeKeepsItsWatch(t *testing.T) {
	rep := newReports()
	m := newManual(t, 1, rep)
	_, r := supervised(t, m)
	m.begin("v2", r, migration(), upgrade.Options{Window: time.Minute, HealthEvery: time.Second})
	again := upgrade.Migration[*counterV2, *counterV2]{From: "v2", To: "v2b",
		Forward: func(o *counterV2) (*counterV2, error) { n := *o; return &n, nil },
		Factory: func() *counterV2 { return &counterV2{} }}
	m.do("v2b", func(c *actor.Context) actor.Promise {
		return upgrade.Begin(c, r, again, upgrade.Options{MaxCrashes: 1, Window: time.Hour})
	})
	if err, ok := m.result("v2b"); !ok || err != nil {
		t.Fatalf("second upgrade: %v %v", err, ok)
	}
	m.advance(2 * time.Minute) // the first watch ends
	_ = m.s.Send(r, boom{})
	m.settle()
	var rolled *upgrade.Report
	for _, x := range rep.all() {
		if x.Outcome == upgrade.RolledBack {
			rolled = x
		}
	}
	if rolled == nil || rolled.From != "v2b" || rolled.To != "v2" {
		t.Fatalf("reports %v: want v2b rolled back to v2", rep.all())
	}
}

// lazyParent supervises one child (actor.Supervised) and restarts it only
// when told, so a test can act while the child is suspended.
type lazyParent struct {
	start actor.Factory
	child *actor.Ref
}

type restartChild struct{}

func (p *lazyParent) Start(c *actor.Context) error {
	r, err := c.Spawn(p.start, actor.Supervised())
	*p.child = r
	return err
}

func (p *lazyParent) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(restartChild); ok {
		return nil, c.Restart(*p.child)
	}
	return nil, nil // Crashed: wait to be told
}

// A rollback that finds the actor suspended after its crash sets the old
// factory, and the parent's restart makes the old version.
func TestRollbackWhileSuspended(t *testing.T) {
	rep := newReports()
	m := newManual(t, 1, rep)
	var r actor.Ref
	p := m.spawn(func() actor.Actor {
		return &lazyParent{start: func() actor.Actor { return &counterV1{} }, child: &r}
	})
	mig := migration()
	mig.Health = nil
	m.begin("up", r, mig, upgrade.Options{MaxCrashes: 1, Window: time.Minute})
	_ = m.s.Send(r, boom{})
	m.settle()
	if !rep.has(upgrade.RolledBack) {
		t.Fatalf("not rolled back: %v", rep.all())
	}
	_ = m.s.Send(p, restartChild{})
	m.settle()
	if got := inspect(t, m.s, r); !isFreshV1(got) {
		t.Fatalf("restarted after the rollback: %T %+v, want a fresh v1", got, got)
	}
}

// Apply returns when the system shuts down while the upgrade waits.
func TestApplyAnsweredAtShutdown(t *testing.T) {
	spawned := make(chan actor.Ref, 16)
	s := actor.NewSystem(actor.Config{Loops: 1, LifecycleHook: func(ev *actor.Event) {
		if ev.Kind == actor.EventSpawn {
			spawned <- ev.To
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var replies []*actor.Reply
	d, err := s.Spawn(ctx, func() actor.Actor { return deferrer{&replies} })
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Spawn(ctx, func() actor.Actor { return &counterV1{} })
	if err != nil {
		t.Fatal(err)
	}
	<-spawned
	<-spawned
	if err := s.Send(r, ask{to: d}); err != nil { // a continuation that never settles
		t.Fatal(err)
	}
	if _, err := s.Ask(ctx, r, get{}); err != nil { // v1 has made it
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		res <- upgrade.Apply(ctx, s, r, migration(), upgrade.Options{Drain: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	}()
	select {
	case <-spawned: // the guard has started: the swap is asked for
	case <-ctx.Done():
		t.Fatal("no guard")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, actor.ErrShutdown) || !errors.Is(err, upgrade.ErrOutcomeUnknown) ||
		errors.Is(err, upgrade.ErrRefused) {
		t.Fatalf("Apply: %v, want outcome unknown: ErrShutdown", err)
	}
}

// nullPeer is a node nobody reaches: an upgrade must not try.
type nullPeer struct{ seam.Peer[actor.Ref] }

func (nullPeer) Node() string { return "far" }

// An actor of another node (a remote child's, say) is refused with a clear
// error.
func TestRemoteRefused(t *testing.T) {
	s := system(t, 1, newReports())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	w := seam.Wire(s).(interface {
		RemoteRef(p seam.Peer[actor.Ref], id actor.WireID) actor.Ref
	})
	r := w.RemoteRef(nullPeer{}, actor.WireID{Loop: 0, Slot: 1, Gen: 1})
	err := upgrade.Apply(ctx, s, r, migration(), upgrade.Options{})
	if !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, actor.ErrRemoteUnsupported) {
		t.Fatalf("Apply on a remote ref: %v, want refused: remote unsupported", err)
	}
}

// Replies the old version owes (Defer) move with its state: the new
// version answers them, and the askers get that answer.
func TestDeferredRepliesMove(t *testing.T) {
	rep := newReports()
	m := newManual(t, 1, rep)
	r := m.spawn(func() actor.Actor { return &counterV1{} })
	var answers []string
	m.do("owe", func(c *actor.Context) actor.Promise {
		p := c.AskTimeout(r, owe{}, 0)
		out, resolve := c.Promise()
		p.Then(func(_ *actor.Context, v any, err error) {
			answers = append(answers, answer(v, err))
			resolve(nil, nil)
		})
		return out
	})
	m.begin("up", r, migration(), upgrade.Options{})
	if len(answers) != 0 {
		t.Fatalf("answered before pay: %v", answers)
	}
	_ = m.s.Send(r, pay{})
	m.settle()
	if len(answers) != 1 || answers[0] != "paid by v2" {
		t.Fatalf("answers %v, want the owed ask answered by v2", answers)
	}
}
