package supervisor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/loop"
)

// Tests of the OTP features added: ignore, CountChildren, GetChildSpec,
// significant children and auto-shutdown, infinity shutdown of a child
// supervisor, and a child choosing its exit reason. Each follows the case
// of OTP's supervisor_SUITE it names.

func counts(t testing.TB, s *actor.System, sup actor.Ref) ChildCounts {
	t.Helper()
	v, err := ask(t, s, sup, CountChildren{})
	if err != nil {
		t.Fatalf("CountChildren: %v", err)
	}
	return v.(ChildCounts)
}

func ids(cs []ChildInfo) string {
	out := ""
	for _, ci := range cs {
		out += fmt.Sprintf("%s:%v ", ci.ID, ci.State)
	}
	return out
}

func TestIgnore(t *testing.T) {
	t.Run("start_child", func(t *testing.T) { // sup_start_ignore_child
		s, _ := manualSystem(t, 1, nil)
		rec := newRecorder()
		sup := spawnSup(t, s, Spec{})
		rec.ignoreNext("c1", 1)
		if v, err := ask(t, s, sup, StartChild{Spec: Worker("c1", probeF(rec, "c1"))}); err != nil || !v.(actor.Ref).IsZero() {
			t.Fatalf("ignored StartChild = %v %v, want the zero Ref", v, err)
		}
		if _, err := ask(t, s, sup, StartChild{Spec: Worker("c2", probeF(rec, "c2"))}); err != nil {
			t.Fatal(err)
		}
		if got := ids(children(t, s, sup)); got != "c1:stopped c2:running " {
			t.Fatalf("children %s", got)
		}
		if n := counts(t, s, sup); n != (ChildCounts{Specs: 2, Active: 1, Workers: 2}) {
			t.Fatalf("counts %+v", n)
		}
		// Kept: it can be restarted, and ignore there too answers the zero Ref.
		rec.ignoreNext("c1", 1)
		if v, err := ask(t, s, sup, RestartChild{ID: "c1"}); err != nil || !v.(actor.Ref).IsZero() {
			t.Fatalf("ignored RestartChild = %v %v", v, err)
		}
		if v, err := ask(t, s, sup, RestartChild{ID: "c1"}); err != nil || v.(actor.Ref).IsZero() {
			t.Fatalf("RestartChild = %v %v", v, err)
		}
		expectLines(t, rec, "ignore c1", "start c2", "ignore c1", "start c1")
	})
	t.Run("temporary", func(t *testing.T) { // sup_start_ignore_temporary_child(_start_child)
		s, _ := manualSystem(t, 1, nil)
		rec := newRecorder()
		c1, c2 := Worker("c1", probeF(rec, "c1")), Worker("c2", probeF(rec, "c2"))
		c1.Restart, c2.Restart = Temporary, Temporary
		rec.ignoreNext("c1", 1)
		sup := spawnSup(t, s, Spec{Children: []ChildSpec{c1, c2}})
		if got := ids(children(t, s, sup)); got != "c2:running " {
			t.Fatalf("children %s", got)
		}
		rec.ignoreNext("c3", 1)
		c3 := Worker("c3", probeF(rec, "c3"))
		c3.Restart = Temporary
		if v, err := ask(t, s, sup, StartChild{Spec: c3}); err != nil || !v.(actor.Ref).IsZero() {
			t.Fatalf("ignored StartChild = %v %v", v, err)
		}
		if n := counts(t, s, sup); n != (ChildCounts{Specs: 1, Active: 1, Workers: 1}) {
			t.Fatalf("counts %+v", n)
		}
	})
	t.Run("simple_one_for_one", func(t *testing.T) { // sup_start_ignore_*_start_child_simple
		for _, rt := range []RestartType{Temporary, Permanent} {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			tmpl := Worker("c", probeF(rec, "c"))
			tmpl.Restart = rt
			sup := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{tmpl}})
			rec.ignoreNext("c", 1)
			if v, err := ask(t, s, sup, StartChild{}); err != nil || !v.(actor.Ref).IsZero() {
				t.Fatalf("ignored StartChild = %v %v", v, err)
			}
			if _, err := ask(t, s, sup, StartChild{}); err != nil {
				t.Fatal(err)
			}
			if got := ids(children(t, s, sup)); got != "c:running " {
				t.Fatalf("%v: children %s", rt, got)
			}
			if n := counts(t, s, sup); n != (ChildCounts{Specs: 1, Active: 1, Workers: 1}) {
				t.Fatalf("%v: counts %+v", rt, n)
			}
		}
	})
	t.Run("restart", func(t *testing.T) { // simple_one_for_one_restart_ignore, and static
		for _, strategy := range []Strategy{OneForOne, SimpleOneForOne} {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			c := Worker("c", probeF(rec, "c"))
			c.Restart = Transient
			sup := spawnSup(t, s, Spec{Strategy: strategy, MaxR: 10, Children: []ChildSpec{c}})
			if strategy == SimpleOneForOne {
				if _, err := ask(t, s, sup, StartChild{}); err != nil {
					t.Fatal(err)
				}
			}
			send(t, s, rec.ref("c"), "crash")
			idle(s)
			rec.ignoreNext("c", 1)
			send(t, s, rec.ref("c"), "crash")
			idle(s)
			expectLines(t, rec, "start c", "start c", "ignore c") // not retried
			want := "c:stopped "
			if strategy == SimpleOneForOne {
				want = "" // a dynamic child that ignores its restart is forgotten
			}
			if got := ids(children(t, s, sup)); got != want {
				t.Fatalf("%v: children %q, want %q", strategy, got, want)
			}
			if !alive(t, s, sup) {
				t.Fatal("supervisor gone")
			}
		}
	})
	t.Run("group", func(t *testing.T) {
		s, _ := manualSystem(t, 1, nil)
		rec := newRecorder()
		sup := spawnSup(t, s, Spec{Strategy: OneForAll, MaxR: 10, Children: workers(rec, "a", "b", "c")})
		rec.take()
		rec.ignoreNext("b", 1)
		send(t, s, rec.ref("a"), "crash")
		idle(s)
		expectLines(t, rec, "stop c restart", "stop b restart", "start a", "ignore b", "start c")
		if got := ids(children(t, s, sup)); got != "a:running b:stopped c:running " {
			t.Fatalf("children %s", got)
		}
	})
}

func TestCountChildren(t *testing.T) { // tree, count_children, count_children_supervisor
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sub3 := Sub("sup3", Spec{Logger: quiet})
	sub3.Restart = Transient
	root := spawnSup(t, s, Spec{Strategy: OneForAll, MaxR: 4, Children: []ChildSpec{
		Sub("sup1", Spec{Logger: quiet, Children: workers(rec, "w1", "w2")}), Sub("sup2", Spec{Logger: quiet}), sub3}})
	if _, err := ask(t, s, root, TerminateChild{ID: "sup3"}); err != nil {
		t.Fatal(err)
	}
	if n := counts(t, s, root); n != (ChildCounts{Specs: 3, Active: 2, Supervisors: 3}) {
		t.Fatalf("root counts %+v", n)
	}
	if n := counts(t, s, children(t, s, root)[0].Ref); n != (ChildCounts{Specs: 2, Active: 2, Workers: 2}) {
		t.Fatalf("sup1 counts %+v", n)
	}
	// Dynamic children that are supervisors count as supervisors.
	tmpl := Sub("dyn", Spec{Logger: quiet})
	tmpl.Restart = Temporary
	dyn := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{tmpl}})
	var refs []actor.Ref
	for range 5 {
		v, err := ask(t, s, dyn, StartChild{})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, v.(actor.Ref))
	}
	if n := counts(t, s, dyn); n != (ChildCounts{Specs: 1, Active: 5, Supervisors: 5}) {
		t.Fatalf("dynamic counts %+v", n)
	}
	drv := spawn(t, s, func() actor.Actor { return driver{} })
	for _, r := range refs {
		if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Kill(r) })); err != nil {
			t.Fatal(err)
		}
	}
	idle(s)
	if n := counts(t, s, dyn); n != (ChildCounts{Specs: 1}) {
		t.Fatalf("dynamic counts after the kills %+v", n)
	}
}

func TestGetChildSpec(t *testing.T) { // sup_start_map, sup_start_map_simple
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	bk := Worker("c2", probeF(rec, "c2"))
	bk.Shutdown = BrutalKill
	sup := spawnSup(t, s, Spec{Children: []ChildSpec{Worker("c1", probeF(rec, "c1")), bk, Sub("c3", Spec{Logger: quiet})}})
	want := map[string]time.Duration{"c1": DefaultShutdown, "c2": BrutalKill, "c3": Infinity}
	for id, sd := range want {
		v, err := ask(t, s, sup, GetChildSpec{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		cs := v.(ChildSpec)
		if cs.ID != id || cs.Shutdown != sd || cs.Restart != Permanent || cs.Start == nil || cs.Supervisor != (id == "c3") {
			t.Fatalf("spec of %s: %+v", id, cs)
		}
	}
	if _, err := ask(t, s, sup, GetChildSpec{ID: "c4"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetChildSpec of no child = %v", err)
	}
	tmpl := Worker("t", probeF(rec, "t"))
	tmpl.Restart = Temporary
	dyn := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{tmpl}})
	v, err := ask(t, s, dyn, StartChild{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ask(t, s, dyn, GetChildSpec{Ref: v.(actor.Ref)}); err != nil || v.(ChildSpec).Restart != Temporary || v.(ChildSpec).Shutdown != DefaultShutdown {
		t.Fatalf("spec of a dynamic child: %+v %v", v, err)
	}
	if _, err := ask(t, s, dyn, GetChildSpec{Ref: dyn}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetChildSpec of a non-child = %v", err)
	}
}

// significant children and auto_shutdown: nonsignificant_*, significant_*.
func TestSignificantChildren(t *testing.T) {
	type end struct {
		id   string
		how  string // "terminate" (by the supervisor), "kill", "crash", "abnormal", "normal"
		stop bool   // the supervisor shuts down
	}
	cases := []struct {
		name    string
		auto    AutoShutdown
		restart RestartType
		sig     bool
		ends    []end // in turn; c1 and c2 have restart and sig, c3 is a permanent worker
	}{
		{"nonsignificant temporary any", AnySignificant, Temporary, false, []end{{"c1", "kill", false}, {"c2", "normal", false}}},
		{"nonsignificant transient all", AllSignificant, Transient, false, []end{{"c1", "normal", false}, {"c2", "normal", false}}},
		{"temporary any by supervisor", AnySignificant, Temporary, true, []end{{"c1", "terminate", false}, {"c2", "kill", true}}},
		{"temporary any abnormal", AnySignificant, Temporary, true, []end{{"c1", "abnormal", true}}},
		{"temporary any crash", AnySignificant, Temporary, true, []end{{"c1", "crash", true}}},
		{"temporary any normal", AnySignificant, Temporary, true, []end{{"c1", "normal", true}}},
		{"temporary all", AllSignificant, Temporary, true, []end{{"c1", "normal", false}, {"c2", "normal", true}}},
		{"transient any", AnySignificant, Transient, true, []end{{"c1", "kill", false}, {"c1", "abnormal", false}, {"c1", "normal", true}}},
		{"transient all", AllSignificant, Transient, true, []end{{"c1", "normal", false}, {"c2", "crash", false}, {"c2", "normal", true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			var kids []ChildSpec
			for _, id := range []string{"c1", "c2"} {
				cs := Worker(id, probeF(rec, id))
				cs.Restart, cs.Significant = tc.restart, tc.sig
				kids = append(kids, cs)
			}
			kids = append(kids, Worker("c3", probeF(rec, "c3")))
			sup := spawnSup(t, s, Spec{MaxR: 5, AutoShutdown: tc.auto, Children: kids})
			rec.take()
			downs := make(chan actor.Down, 1)
			w := spawn(t, s, watcherF(downs))
			if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(sup) })); err != nil {
				t.Fatal(err)
			}
			for i, e := range tc.ends {
				id := e.id
				switch e.how {
				case "terminate":
					if _, err := ask(t, s, sup, TerminateChild{ID: id}); err != nil {
						t.Fatal(err)
					}
				case "kill":
					ref := rec.ref(id)
					if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Kill(ref) })); err != nil {
						t.Fatal(err)
					}
				case "crash":
					send(t, s, rec.ref(id), "crash")
				case "abnormal":
					send(t, s, rec.ref(id), exitMsg{errBoom})
				case "normal":
					send(t, s, rec.ref(id), exitMsg{nil})
				}
				idle(s)
				if !e.stop {
					rec.take()
				}
				if got := alive(t, s, sup); got == e.stop {
					t.Fatalf("end %d (%s of %s): supervisor alive=%v", i, e.how, id, got)
				}
				if e.stop {
					d := <-downs
					if !errors.Is(d.Reason, actor.ErrShutdown) {
						t.Fatalf("auto-shutdown reason %v, want shutdown", d.Reason)
					}
					// Its children are stopped in reverse order.
					for _, l := range rec.take() {
						if l == "start c1" || l == "start c2" {
							t.Fatalf("restarted during the auto-shutdown: %q", l)
						}
					}
					if alive(t, s, rec.ref("c3")) {
						t.Fatal("c3 still running after the auto-shutdown")
					}
					return
				}
			}
		})
	}
}

// Significant children taken down by a sibling's restart do not shut the
// supervisor down (significant_bystander).
func TestSignificantBystander(t *testing.T) {
	for _, strategy := range []Strategy{OneForOne, OneForAll, RestForOne} {
		for _, auto := range []AutoShutdown{AnySignificant, AllSignificant} {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			kids := workers(rec, "c1", "c2", "c3")
			for i := range kids {
				kids[i].Restart = Transient
				kids[i].Significant = i != 1
			}
			sup := spawnSup(t, s, Spec{Strategy: strategy, MaxR: 5, AutoShutdown: auto, Children: kids})
			drv := spawn(t, s, func() actor.Actor { return driver{} })
			c2 := rec.ref("c2")
			if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Kill(c2) })); err != nil {
				t.Fatal(err)
			}
			idle(s)
			if !alive(t, s, sup) {
				t.Fatalf("%v %v: a bystander shut the supervisor down", strategy, auto)
			}
			if got := ids(children(t, s, sup)); got != "c1:running c2:running c3:running " {
				t.Fatalf("%v %v: children %s", strategy, auto, got)
			}
		}
	}
}

// An auto-shutdown ends the supervisor with shutdown, which its own
// supervisor handles as any shutdown: a significant transient child
// supervisor that shut down shuts its parent down in turn
// (significant_escalation).
func TestAutoShutdownEscalation(t *testing.T) {
	for _, sig := range []bool{true, false} {
		s, _ := manualSystem(t, 1, nil)
		rec := newRecorder()
		c1 := Worker("c1", probeF(rec, "c1"))
		c1.Restart, c1.Significant = Transient, true
		b := Sub("b", Spec{AutoShutdown: AnySignificant, Logger: quiet, Children: []ChildSpec{c1}})
		b.Restart, b.Significant = Transient, sig
		a := spawnSup(t, s, Spec{AutoShutdown: AnySignificant, Children: []ChildSpec{b}})
		bRef := children(t, s, a)[0].Ref
		send(t, s, rec.ref("c1"), exitMsg{nil})
		idle(s)
		if alive(t, s, bRef) {
			t.Fatal("b did not shut down")
		}
		if alive(t, s, a) != !sig {
			t.Fatalf("b significant=%v: a alive=%v", sig, alive(t, s, a))
		}
	}
}

func TestSignificantValidation(t *testing.T) { // child_specs_map, significant_simple
	rec := newRecorder()
	perm := Worker("c", probeF(rec, "c"))
	perm.Significant = true
	trans := perm
	trans.Restart = Transient
	for _, tc := range []struct {
		spec Spec
		ok   bool
	}{
		{Spec{AutoShutdown: AnySignificant, Children: []ChildSpec{perm}}, false},
		{Spec{AutoShutdown: Never, Children: []ChildSpec{trans}}, false},
		{Spec{AutoShutdown: AllSignificant, Children: []ChildSpec{trans}}, true},
		{Spec{Strategy: SimpleOneForOne, AutoShutdown: AnySignificant, Children: []ChildSpec{Worker("c", probeF(rec, "c"))}}, false},
		{Spec{Strategy: SimpleOneForOne, AutoShutdown: AllSignificant, Children: []ChildSpec{Worker("c", probeF(rec, "c"))}}, false},
		{Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{Worker("c", probeF(rec, "c"))}}, true},
	} {
		err := tc.spec.Validate()
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrBadSpec) {
			t.Errorf("%+v: %v", tc.spec, err)
		}
	}
	// StartChild checks against the supervisor's mode.
	s, _ := manualSystem(t, 1, nil)
	sup := spawnSup(t, s, Spec{})
	if _, err := ask(t, s, sup, StartChild{Spec: trans}); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("significant StartChild under never = %v", err)
	}
}

// hog is a worker whose Terminate takes an hour on the fake clock.
type hog struct {
	clk *loop.FakeClock
	rec *recorder
}

func (h *hog) Receive(_ *actor.Context, msg any) (any, error) { return nil, actor.Unhandled(msg) }
func (h *hog) Terminate(_ *actor.Context, reason error) {
	h.clk.Advance(time.Hour)
	h.rec.add("stop hog " + reasonName(reason))
}

// A child supervisor's shutdown is Infinity by default (as OTP's): its
// parent waits however long its subtree takes to stop. With a finite
// timeout the parent would kill it (shown too).
func TestChildSupervisorShutdownInfinity(t *testing.T) {
	for _, finite := range []bool{false, true} {
		reps := newReports()
		s, clk := manualSystem(t, 2, reps.hook)
		rec := newRecorder()
		slow := Worker("hog", func() actor.Actor { return &hog{clk, rec} })
		slow.Shutdown = Infinity
		sub := Sub("sub", Spec{Logger: quiet, Children: []ChildSpec{Worker("w", probeF(rec, "w")), slow}})
		sub.Options = []actor.SpawnOption{actor.OnLoop(1)}
		if finite {
			sub.Shutdown = DefaultShutdown
		}
		root := spawnSup(t, s, Spec{Children: []ChildSpec{sub}}, actor.OnLoop(0))
		idle(s)
		rec.take()
		if _, err := ask(t, s, root, TerminateChild{ID: "sub"}); err != nil {
			t.Fatal(err)
		}
		idle(s)
		killed := false
		for _, k := range reps.kinds() {
			killed = killed || k == "supervisor:child_killed:sub"
		}
		if killed != finite {
			t.Fatalf("finite=%v: sub killed=%v (reports %v)", finite, killed, reps.kinds())
		}
		if !finite {
			expectLines(t, rec, "stop hog shutdown", "stop w shutdown")
		}
	}
}

// chooser is a worker whose Terminate, when told to shut down, ends with
// the reason it was given instead (OTP: a child trapping exits that exits
// with a reason of its own).
type chooser struct{ reason error }

func (ch *chooser) Receive(_ *actor.Context, msg any) (any, error) { return nil, actor.Unhandled(msg) }
func (ch *chooser) Terminate(c *actor.Context, reason error) {
	if errors.Is(reason, actor.ErrShutdown) {
		_ = c.Stop(c.Self(), ch.reason)
	}
}

// A child chooses its exit reason when its supervisor stops it; the
// supervisor reports a reason OTP counts as a shutdown error
// (sup_stop_race, sup_stop_non_shutdown_exit_dynamic).
func TestChildChoosesExitReason(t *testing.T) {
	errOwn := errors.New("own reason")
	wrapped := fmt.Errorf("%w: done", actor.ErrShutdown)
	cases := []struct {
		restart RestartType
		reason  error
		report  bool
	}{
		{Permanent, errOwn, true},
		{Permanent, nil, true},
		{Permanent, wrapped, true},
		{Transient, nil, false},
		{Transient, wrapped, false},
		{Temporary, errOwn, true},
	}
	for _, tc := range cases {
		reps := newReports()
		s, _ := manualSystem(t, 1, reps.hook)
		cs := Worker("c", func() actor.Actor { return &chooser{tc.reason} })
		cs.Restart = tc.restart
		sup := spawnSup(t, s, Spec{Children: []ChildSpec{cs}})
		ref := children(t, s, sup)[0].Ref
		downs := make(chan actor.Down, 1)
		w := spawn(t, s, watcherF(downs))
		if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(ref) })); err != nil {
			t.Fatal(err)
		}
		if _, err := ask(t, s, sup, Shutdown{}); err != nil {
			t.Fatal(err)
		}
		idle(s)
		if d := <-downs; d.Reason != tc.reason {
			t.Fatalf("%v %v: Down reason %v", tc.restart, tc.reason, d.Reason)
		}
		var rep *Report
		for _, r := range reps.list {
			if r.Kind == ShutdownError {
				rep = r
			}
		}
		if (rep != nil) != tc.report || rep != nil && rep.Reason != tc.reason {
			t.Fatalf("%v %v: shutdown error report %+v", tc.restart, tc.reason, rep)
		}
	}
}
