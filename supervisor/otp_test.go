package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// Tests of the seven deviations from OTP's supervisor that were fixed (see
// docs/supervision.md), named after the cases of OTP's supervisor_SUITE
// they follow where there is one.

// --- 1. A child that misses its shutdown timeout is killed, even when its
// supervisor stops right after (sup_stop_timeout, sup_stop_timeout_dynamic).

func TestShutdownTimeoutThenSupervisorStopKills(t *testing.T) {
	for _, simple := range []bool{false, true} {
		t.Run(fmt.Sprintf("simple=%v", simple), func(t *testing.T) {
			reps := newReports()
			s := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Hook: reps.hook, Logger: quiet, OnCrash: func(*actor.Crash) {}})
			t.Cleanup(func() { shutdown(t, s) })
			rec := newRecorder()
			slow := Worker("slow", probeF(rec, "slow"), actor.OnLoop(1))
			slow.Shutdown = 50 * time.Millisecond
			inner := Spec{Logger: quiet, Children: []ChildSpec{slow}}
			if simple {
				inner.Strategy = SimpleOneForOne
			}
			root := spawnSup(t, s, Spec{Name: "root", Children: []ChildSpec{Sub("inner", inner)}}, actor.OnLoop(0))
			innerRef := children(t, s, root)[0].Ref
			if simple {
				if _, err := ask(t, s, innerRef, StartChild{}); err != nil {
					t.Fatal(err)
				}
			}
			rec.waitLine(t, "start slow")
			slowRef := rec.ref("slow")
			downs := make(chan actor.Down, 1)
			w := spawn(t, s, watcherF(downs), actor.OnLoop(0))
			if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(slowRef) })); err != nil {
				t.Fatal(err)
			}
			if _, err := ask(t, s, slowRef, "ping"); err != nil { // the monitor is in place
				t.Fatal(err)
			}
			blk := blockMsg{entered: make(chan struct{}), release: make(chan struct{})}
			send(t, s, spawn(t, s, probeF(rec, "stuck"), actor.OnLoop(1)), blk)
			<-blk.entered
			// The root stops inner, which stops slow: its loop is stuck past
			// the timeout, so it is reported killed; then inner stops, with
			// reason shutdown.
			if _, err := ask(t, s, root, TerminateChild{ID: "inner"}); err != nil {
				t.Fatal(err)
			}
			if rep := reps.wait(t, ChildKilled); rep.ChildID != "slow" {
				t.Fatalf("killed report %+v", rep)
			}
			close(blk.release)
			select {
			case d := <-downs:
				if !errors.Is(d.Reason, actor.ErrKilled) {
					t.Fatalf("slow ended with %v, want killed", d.Reason)
				}
			case <-time.After(waitFor):
				t.Fatal("no Down for slow")
			}
			for _, l := range rec.take() {
				if strings.HasPrefix(l, "stop slow") {
					t.Fatalf("the killed child's Terminate ran: %q", l)
				}
			}
		})
	}
}

// --- 2. A restart that keeps failing slowly does not block the supervisor:
// requests and the parent's exit are handled between attempts
// (hanging_restart_loop, hanging_restart_loop_rest_for_one,
// hanging_restart_loop_simple; OTP-9549).

// hanger is a worker whose Start, while its gate is closed, says it entered
// and waits to be released, then fails.
type hanger struct{ g *gate }

type gate struct {
	mu      sync.Mutex
	closed  bool
	entered chan struct{}
	release chan struct{}
	fails   int
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 16), release: make(chan struct{}, 16)}
}

func (g *gate) set(closed bool) {
	g.mu.Lock()
	g.closed = closed
	g.mu.Unlock()
}

func (g *gate) failures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fails
}

func (h *hanger) Start(*actor.Context) error {
	h.g.mu.Lock()
	closed := h.g.closed
	h.g.mu.Unlock()
	if !closed {
		return nil
	}
	h.g.entered <- struct{}{}
	<-h.g.release
	h.g.mu.Lock()
	h.g.fails++
	h.g.mu.Unlock()
	return errors.New("hanger: cannot start")
}

func (h *hanger) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "crash" {
		panic("hanger crash")
	}
	return nil, actor.Unhandled(msg)
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
	}
}

type reply struct {
	v   any
	err error
}

// askAll sends msgs to to, in order, from an actor on loop 0, and returns
// a channel of the replies, in order.
func askAll(t *testing.T, s *actor.System, drv, to actor.Ref, msgs ...any) <-chan reply {
	t.Helper()
	out := make(chan reply, len(msgs))
	if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) {
		res := make([]*reply, len(msgs))
		left := len(msgs)
		for i, m := range msgs {
			c.Ask(to, m).Then(func(_ *actor.Context, v any, err error) {
				res[i] = &reply{v, err}
				if left--; left == 0 {
					for _, r := range res {
						out <- *r
					}
				}
			})
		}
		return nil, nil
	})); err != nil {
		t.Fatal(err)
	}
	return out
}

func recvReplies(t *testing.T, ch <-chan reply, n int) []reply {
	t.Helper()
	var out []reply
	for range n {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-time.After(waitFor):
			t.Fatalf("the supervisor did not answer between restart attempts (%d of %d replies)", len(out), n)
		}
	}
	return out
}

func TestHangingRestartLoop(t *testing.T) {
	for _, strategy := range []Strategy{OneForOne, RestForOne, SimpleOneForOne} {
		t.Run(strategy.String(), func(t *testing.T) {
			s := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Logger: quiet, OnCrash: func(*actor.Crash) {}})
			t.Cleanup(func() { shutdown(t, s) })
			g := newGate()
			t.Cleanup(func() { g.set(false); close(g.release) })
			rec := newRecorder()
			hang := Worker("hang", func() actor.Actor { return &hanger{g} }, actor.OnLoop(1))
			spec := Spec{Strategy: strategy, MaxR: 8, MaxT: time.Hour, Children: []ChildSpec{hang}}
			if strategy == RestForOne {
				spec.Children = []ChildSpec{Worker("a", probeF(rec, "a")), hang, Worker("c", probeF(rec, "c"))}
			}
			sup := spawnSup(t, s, spec, actor.OnLoop(0))
			drv := spawn(t, s, func() actor.Actor { return driver{} }, actor.OnLoop(0))
			var hangRef actor.Ref
			if strategy == SimpleOneForOne {
				v, err := ask(t, s, sup, StartChild{})
				if err != nil {
					t.Fatal(err)
				}
				hangRef = v.(actor.Ref)
			} else {
				for _, ci := range children(t, s, sup) {
					if ci.ID == "hang" {
						hangRef = ci.Ref
					}
				}
			}
			g.set(true)
			send(t, s, hangRef, "crash")
			waitChan(t, g.entered, "the first restart attempt")
			// Requests arrive while the attempt hangs; the first attempt
			// fails; they are answered before the next one.
			var msgs []any
			term := TerminateChild{ID: "hang"}
			if strategy == SimpleOneForOne {
				term = TerminateChild{Ref: hangRef}
			}
			msgs = append(msgs, WhichChildren{}, CountChildren{}, RestartChild{ID: "hang"}, DeleteChild{ID: "hang"}, term, WhichChildren{})
			replies := askAll(t, s, drv, sup, msgs...)
			g.release <- struct{}{}
			got := recvReplies(t, replies, len(msgs))
			want := ErrRestarting
			if strategy == SimpleOneForOne {
				want = ErrBadSpec
			}
			hangInfo := func(v any) (ChildInfo, bool) {
				for _, ci := range v.([]ChildInfo) {
					if ci.ID == "hang" {
						return ci, true
					}
				}
				return ChildInfo{}, false
			}
			if ci, ok := hangInfo(got[0].v); !ok || ci.State != ChildRestarting || ci.Running || !ci.Ref.IsZero() {
				t.Fatalf("WhichChildren during the restart loop: %+v", got[0].v)
			}
			// rest_for_one: a runs, hang restarts, c (taken down with it) is
			// stopped until hang is back (OTP: undefined).
			wantN := ChildCounts{Specs: 1, Active: 0, Workers: 1}
			if strategy == RestForOne {
				wantN = ChildCounts{Specs: 3, Active: 1, Workers: 3}
			}
			if n := got[1].v.(ChildCounts); n != wantN {
				t.Fatalf("CountChildren during the restart loop: %+v, want %+v", n, wantN)
			}
			if !errors.Is(got[2].err, want) || !errors.Is(got[3].err, want) {
				t.Fatalf("RestartChild, DeleteChild during the restart loop: %v, %v; want %v", got[2].err, got[3].err, want)
			}
			if got[4].err != nil {
				t.Fatalf("TerminateChild during the restart loop: %v", got[4].err)
			}
			ci, ok := hangInfo(got[5].v)
			if strategy == SimpleOneForOne && ok || strategy != SimpleOneForOne && (!ok || ci.State != ChildStopped) {
				t.Fatalf("WhichChildren after TerminateChild: %+v", got[5].v)
			}
			// The retry was dropped: no more attempts.
			children(t, s, sup)
			if n := g.failures(); n != 1 {
				t.Fatalf("%d failed attempts, want 1", n)
			}
		})
	}
}

// The parent's exit, too, is handled between attempts: a supervisor in a
// restart loop can be stopped.
func TestHangingRestartLoopParentStops(t *testing.T) {
	for _, strategy := range []Strategy{OneForOne, RestForOne, SimpleOneForOne} {
		t.Run(strategy.String(), func(t *testing.T) {
			drained := make(chan struct{}, 1)
			hook := func(e *actor.Event) {
				if _, ok := e.Msg.(drain); ok && e.Kind == actor.EventAsk {
					drained <- struct{}{}
				}
			}
			s := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Hook: hook, Logger: quiet, OnCrash: func(*actor.Crash) {}})
			t.Cleanup(func() { shutdown(t, s) })
			g := newGate()
			t.Cleanup(func() { g.set(false); close(g.release) })
			hang := Worker("hang", func() actor.Actor { return &hanger{g} }, actor.OnLoop(1))
			root := spawnSup(t, s, Spec{Children: []ChildSpec{
				Sub("inner", Spec{Strategy: strategy, MaxR: 8, MaxT: time.Hour, Logger: quiet, Children: []ChildSpec{hang}})}},
				actor.OnLoop(0))
			inner := children(t, s, root)[0].Ref
			var hangRef actor.Ref
			if strategy == SimpleOneForOne {
				v, err := ask(t, s, inner, StartChild{})
				if err != nil {
					t.Fatal(err)
				}
				hangRef = v.(actor.Ref)
			} else {
				hangRef = children(t, s, inner)[0].Ref
			}
			drv := spawn(t, s, func() actor.Actor { return driver{} }, actor.OnLoop(0))
			g.set(true)
			send(t, s, hangRef, "crash")
			waitChan(t, g.entered, "the first restart attempt")
			replies := askAll(t, s, drv, root, Shutdown{})
			// The root asks inner to stop its children: that request is held
			// behind the attempt, and handled before the retry.
			waitChan(t, drained, "the root's request to inner")
			g.release <- struct{}{}
			if r := recvReplies(t, replies, 1); r[0].err != nil {
				t.Fatalf("Shutdown: %v", r[0].err)
			}
			if alive(t, s, inner) || alive(t, s, root) {
				t.Fatal("supervisors still alive after Shutdown")
			}
			if n := g.failures(); n != 1 {
				t.Fatalf("%d failed attempts, want 1", n)
			}
		})
	}
}

// --- 3. one_for_all: when a member fails to restart, the members already
// restarted are taken down again and the whole group restarts, in order
// (one_for_all_other_child_fails_restart); rest_for_one restarts only from
// the member that failed (rest_for_one_other_child_fails_restart).

func TestGroupRestartWhenAMemberFailsToRestart(t *testing.T) {
	cases := []struct {
		strategy Strategy
		want     []string
	}{
		{OneForAll, []string{"stop c restart", "stop b restart", "start a", "start b", "startfail c",
			"stop b restart", "stop a restart", "start a", "start b", "start c"}},
		{RestForOne, []string{"stop c restart", "stop b restart", "start a", "start b", "startfail c", "start c"}},
	}
	for _, tc := range cases {
		t.Run(tc.strategy.String(), func(t *testing.T) {
			reps := newReports()
			s, _ := manualSystem(t, 1, reps.hook)
			rec := newRecorder()
			sup := spawnSup(t, s, Spec{Strategy: tc.strategy, MaxR: 10, Children: workers(rec, "a", "b", "c")})
			refs := []actor.Ref{rec.ref("a"), rec.ref("b"), rec.ref("c")}
			rec.take()
			rec.failNext("c", 1)
			send(t, s, refs[0], "crash")
			idle(s)
			expectLines(t, rec, tc.want...)
			cs := children(t, s, sup)
			for i, ci := range cs {
				if ci.State != ChildRunning {
					t.Fatalf("children %+v", cs)
				}
				if i < 2 && ci.Ref != refs[i] { // restarted in place: refs still valid
					t.Fatalf("child %s has ref %v, was %v", ci.ID, ci.Ref, refs[i])
				}
			}
		})
	}
}

// --- 4. A one_for_all (or rest_for_one) restart brings back members that
// were not running, such as one stopped with TerminateChild (OTP restarts
// every child still in the list).

func TestGroupRestartBringsBackStoppedMembers(t *testing.T) {
	cases := []struct {
		strategy   Strategy
		terminated string
		want       []string
	}{
		{OneForAll, "b", []string{"stop c restart", "start a", "start b", "start c"}},
		{RestForOne, "c", []string{"stop b restart", "start a", "start b", "start c"}},
	}
	for _, tc := range cases {
		t.Run(tc.strategy.String(), func(t *testing.T) {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			sup := spawnSup(t, s, Spec{Strategy: tc.strategy, MaxR: 10, Children: workers(rec, "a", "b", "c")})
			if _, err := ask(t, s, sup, TerminateChild{ID: tc.terminated}); err != nil {
				t.Fatal(err)
			}
			rec.take()
			send(t, s, rec.ref("a"), "crash")
			idle(s)
			expectLines(t, rec, tc.want...)
			for _, ci := range children(t, s, sup) {
				if !ci.Running {
					t.Fatalf("child %s not running after the group restart", ci.ID)
				}
			}
		})
	}
}

// --- 5. Requests by ID to a simple_one_for_one supervisor fail with
// ErrBadSpec (OTP's simple_one_for_one error); terminating a child that is
// already gone succeeds; naming a live actor that is not a child does not
// (child_adm_simple).

func TestSimpleOneForOneAdministrativeRequests(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{Worker("w", probeF(rec, "w"))}})
	v, err := ask(t, s, sup, StartChild{})
	if err != nil {
		t.Fatal(err)
	}
	child := v.(actor.Ref)
	for _, req := range []any{TerminateChild{ID: "w"}, RestartChild{ID: "w"}, DeleteChild{ID: "w"}, GetChildSpec{ID: "w"}} {
		if _, err := ask(t, s, sup, req); !errors.Is(err, ErrBadSpec) {
			t.Fatalf("%T by ID = %v, want ErrBadSpec", req, err)
		}
	}
	if _, err := ask(t, s, sup, TerminateChild{Ref: child}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(t, s, sup, TerminateChild{Ref: child}); err != nil {
		t.Fatalf("TerminateChild of a child already gone = %v, want nil", err)
	}
	stranger := spawn(t, s, probeF(rec, "stranger"))
	if _, err := ask(t, s, sup, TerminateChild{Ref: stranger}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TerminateChild of a live non-child = %v, want ErrNotFound", err)
	}
	if !alive(t, s, stranger) {
		t.Fatal("the non-child was stopped")
	}
	expectLines(t, rec, "start w", "stop w shutdown", "start stranger")
}

// --- 6. Every field of a spec is checked, when the supervisor starts and
// when a child is added, with an error naming the field (child_specs,
// child_specs_map, sup_flags).

func TestSpecValidation(t *testing.T) {
	rec := newRecorder()
	good := func() ChildSpec { return Worker("w", probeF(rec, "w")) }
	with := func(f func(*ChildSpec)) ChildSpec { cs := good(); f(&cs); return cs }
	childCases := []struct {
		field string
		cs    ChildSpec
	}{
		{"ID", with(func(cs *ChildSpec) { cs.ID = "" })},
		{"Start", with(func(cs *ChildSpec) { cs.Start = nil })},
		{"Restart", with(func(cs *ChildSpec) { cs.Restart = 7 })},
		{"Shutdown", with(func(cs *ChildSpec) { cs.Shutdown = -10 * time.Second })},
		{"Shutdown", with(func(cs *ChildSpec) { cs.Shutdown = -2 })},
		{"Options", with(func(cs *ChildSpec) { cs.Options = []actor.SpawnOption{nil} })},
		{"Significant", with(func(cs *ChildSpec) { cs.Significant = true; cs.Restart = Transient })}, // AutoShutdown never
	}
	s, _ := manualSystem(t, 1, nil)
	sup := spawnSup(t, s, Spec{})
	for _, tc := range childCases {
		_, err := s.Spawn(context.Background(), New(Spec{Logger: quiet, Children: []ChildSpec{tc.cs}}))
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("start with a bad %s: %v", tc.field, err)
		}
		_, err = ask(t, s, sup, StartChild{Spec: tc.cs})
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("StartChild with a bad %s: %v", tc.field, err)
		}
	}
	specCases := []struct {
		field string
		spec  Spec
	}{
		{"Strategy", Spec{Strategy: 9}},
		{"MaxT", Spec{MaxT: -time.Second}},
		{"AutoShutdown", Spec{AutoShutdown: 5}},
		{"Children", Spec{Strategy: SimpleOneForOne}},
		{"Children", Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{good(), with(func(cs *ChildSpec) { cs.ID = "x" })}}},
		{"ID", Spec{Children: []ChildSpec{good(), good()}}},
	}
	for _, tc := range specCases {
		tc.spec.Logger = quiet
		_, err := s.Spawn(context.Background(), New(tc.spec))
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("start with a bad %s: %v", tc.field, err)
		}
	}
	// Every good combination is accepted (child_specs).
	for _, rt := range []RestartType{Permanent, Transient, Temporary} {
		for _, sd := range []time.Duration{0, time.Second, Infinity, BrutalKill} {
			for _, isSup := range []bool{false, true} {
				cs := ChildSpec{ID: "c", Start: probeF(rec, "c"), Restart: rt, Shutdown: sd, Supervisor: isSup}
				if err := (Spec{Children: []ChildSpec{cs}}).Validate(); err != nil {
					t.Errorf("good spec %+v rejected: %v", cs, err)
				}
			}
		}
	}
	if len(rec.take()) != 0 {
		t.Fatal("a bad spec started a child")
	}
	if cs := children(t, s, sup); len(cs) != 0 {
		t.Fatalf("bad specs were added: %+v", cs)
	}
}

// --- 7. A supervisor that gives up ends with shutdown (as OTP), under
// every strategy: a transient child supervisor that gave up is not
// restarted by its parent. The reason also matches ErrTooManyRestarts.

func TestGiveUpReasonIsShutdown(t *testing.T) {
	for _, strategy := range []Strategy{OneForOne, OneForAll, RestForOne, SimpleOneForOne} {
		t.Run(strategy.String(), func(t *testing.T) {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			inner := Sub("inner", Spec{Strategy: strategy, MaxR: -1, Logger: quiet, Children: workers(rec, "w")})
			inner.Restart = Transient
			root := spawnSup(t, s, Spec{MaxR: 5, Children: []ChildSpec{inner}})
			innerRef := children(t, s, root)[0].Ref
			if strategy == SimpleOneForOne {
				if _, err := ask(t, s, innerRef, StartChild{}); err != nil {
					t.Fatal(err)
				}
			}
			drv := spawn(t, s, func() actor.Actor { return driver{} })
			if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(innerRef) })); err != nil {
				t.Fatal(err)
			}
			send(t, s, rec.ref("w"), "crash")
			idle(s)
			v, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, nil }))
			_ = v
			if err != nil {
				t.Fatal(err)
			}
			if alive(t, s, innerRef) {
				t.Fatal("inner did not give up")
			}
			cs := children(t, s, root)
			if len(cs) != 1 || cs[0].Running {
				t.Fatalf("the transient supervisor that gave up was restarted: %+v", cs)
			}
		})
	}
}

// The reason itself, as monitors see it.
func TestGiveUpReasonMatchesShutdownAndTooManyRestarts(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{MaxR: -1, Children: workers(rec, "w")})
	downs := make(chan actor.Down, 1)
	w := spawn(t, s, watcherF(downs))
	if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(sup) })); err != nil {
		t.Fatal(err)
	}
	send(t, s, rec.ref("w"), "crash")
	idle(s)
	select {
	case d := <-downs:
		if !errors.Is(d.Reason, actor.ErrShutdown) || !errors.Is(d.Reason, ErrTooManyRestarts) {
			t.Fatalf("reason %v: want shutdown and ErrTooManyRestarts", d.Reason)
		}
		if !strings.Contains(d.Reason.Error(), "crash w") {
			t.Fatalf("reason %v does not name the crash", d.Reason)
		}
	default:
		t.Fatal("no Down")
	}
}
