package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/actord/actord/actor"
)

// Escalation through three levels: a leaf supervisor that may not restart
// gives up, its parent may not restart it either and gives up too, and the
// root restarts the whole middle subtree; the next failure exceeds the
// root's intensity and the root gives up.
func TestEscalationThreeLevels(t *testing.T) {
	reps := newReports()
	s, _ := manualSystem(t, 1, reps.hook)
	rec := newRecorder()
	leaf := Sub("leaf", Spec{MaxR: -1, Logger: quiet, Children: workers(rec, "w1", "w2")})
	mid := Sub("mid", Spec{MaxR: -1, Logger: quiet, Children: []ChildSpec{leaf, Worker("m", probeF(rec, "m"))}})
	root := spawnSup(t, s, Spec{Name: "root", MaxR: 1, Children: []ChildSpec{mid, Worker("r", probeF(rec, "r"))}})
	expectLines(t, rec, "start w1", "start w2", "start m", "start r")
	drv := spawn(t, s, func() actor.Actor { return driver{} })
	if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(root) })); err != nil {
		t.Fatal(err)
	}
	oldMid := children(t, s, root)[0].Ref

	send(t, s, rec.ref("w1"), "crash")
	idle(s)
	expectLines(t, rec,
		"stop w2 shutdown",                // leaf gives up (w1 crashed: no Terminate)
		"stop m shutdown",                 // mid gives up: its other child, reverse order
		"start w1", "start w2", "start m") // root restarts mid: a new subtree
	if got := strings.Join(reps.kinds(), " "); !strings.Contains(got,
		"root/mid/leaf:child_crashed:w1 root/mid/leaf:gave_up: root/mid:child_exited:leaf root/mid:gave_up: root:child_exited:mid root:child_restarted:mid") {
		t.Fatalf("reports: %s", got)
	}
	cs := children(t, s, root)
	if !cs[0].Running || cs[0].Ref == oldMid || !cs[1].Running {
		t.Fatalf("root children after escalation: %+v", cs)
	}
	var gaveUp *Report
	for _, r := range reps.list {
		if r.Kind == GaveUp && r.Supervisor == "root/mid" {
			gaveUp = r
		}
	}
	if gaveUp == nil || !errors.Is(gaveUp.Reason, ErrTooManyRestarts) {
		t.Fatalf("mid's give-up report %+v", gaveUp)
	}

	send(t, s, rec.ref("w2"), "crash")
	idle(s)
	// Same cascade, but the root has now restarted twice within 5 s.
	expectLines(t, rec, "stop w1 shutdown", "stop m shutdown", "stop r shutdown")
	v, err := ask(t, s, drv, doMsg(func(*actor.Context) (any, error) { return nil, nil }))
	_ = v
	if err != nil {
		t.Fatal(err)
	}
	if alive(t, s, root) {
		t.Fatal("root did not give up")
	}
}

func TestChildCrashesInStart(t *testing.T) {
	t.Run("initial start fails the supervisor", func(t *testing.T) {
		s, _ := manualSystem(t, 1, nil)
		rec := newRecorder()
		rec.failNext("b", 1)
		inner := Sub("inner", Spec{Logger: quiet, Children: workers(rec, "a", "b", "c")})
		_, err := s.Spawn(context.Background(), New(Spec{Logger: quiet, Children: []ChildSpec{Worker("x", probeF(rec, "x")), inner}}))
		var ce *actor.CrashError
		if !errors.Is(err, ErrStartFailed) || !errors.As(err, &ce) || !strings.Contains(fmt.Sprint(ce.Value), "start-boom b") {
			t.Fatalf("Spawn = %v, want ErrStartFailed wrapping b's crash", err)
		}
		expectLines(t, rec, "start x", "start a", "startfail b", "stop a shutdown", "stop x shutdown")
	})
	t.Run("restart fails, is retried, then gives up", func(t *testing.T) {
		s, clk := manualSystem(t, 1, nil)
		rec := newRecorder()
		sup := spawnSup(t, s, Spec{MaxR: 3, Children: workers(rec, "a", "b")})
		rec.take()
		rec.failNext("a", 2)
		send(t, s, rec.ref("a"), "crash")
		idle(s)
		// 3 restarts (2 failing) within the window: allowed.
		expectLines(t, rec, "startfail a", "startfail a", "start a")
		if !alive(t, s, sup) {
			t.Fatal("gave up too early")
		}
		clk.Advance(6 * time.Second) // the window empties
		rec.failNext("a", 5)
		send(t, s, rec.ref("a"), "crash")
		idle(s)
		// The crash and two failed restarts fit in MaxR 3; the third failure does not.
		expectLines(t, rec, "startfail a", "startfail a", "startfail a", "stop b shutdown")
		if alive(t, s, sup) {
			t.Fatal("supervisor did not give up")
		}
	})
}

// A child on another loop whose loop does not get to the stop request within
// its shutdown timeout (it is stuck in a long handler) is reported killed,
// the supervisor carries on, and when the loop frees up the child ends
// without running Terminate.
func TestChildIgnoringShutdownIsKilled(t *testing.T) {
	reps := newReports()
	s := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Hook: reps.hook, Logger: quiet, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { shutdown(t, s) })
	rec := newRecorder()
	slow := Worker("slow", probeF(rec, "slow"), actor.OnLoop(1))
	slow.Shutdown = 50 * time.Millisecond
	sup := spawnSup(t, s, Spec{Children: []ChildSpec{Worker("a", probeF(rec, "a")), slow}}, actor.OnLoop(0))
	rec.waitLine(t, "start slow")
	slowRef := rec.ref("slow")
	downs := make(chan actor.Down, 1)
	w := spawn(t, s, watcherF(downs), actor.OnLoop(0))
	if _, err := ask(t, s, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(slowRef) })); err != nil {
		t.Fatal(err)
	}
	// A round trip through loop 1 makes sure the monitor is in place.
	if _, err := ask(t, s, slowRef, "ping"); err != nil {
		t.Fatal(err)
	}
	blk := blockMsg{entered: make(chan struct{}), release: make(chan struct{})}
	stuck := spawn(t, s, probeF(rec, "stuck"), actor.OnLoop(1))
	send(t, s, stuck, blk)
	<-blk.entered
	start := time.Now()
	if _, err := ask(t, s, sup, TerminateChild{ID: "slow"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("TerminateChild answered after %v, before the shutdown timeout", d)
	}
	rep := reps.wait(t, ChildKilled)
	if rep.ChildID != "slow" || rep.Child != slowRef || !errors.Is(rep.Reason, actor.ErrTimeout) {
		t.Fatalf("report %+v", rep)
	}
	close(blk.release)
	select {
	case d := <-downs:
		if d.Ref != slowRef || !errors.Is(d.Reason, actor.ErrKilled) {
			t.Fatalf("Down %+v, want ErrKilled", d)
		}
	case <-time.After(waitFor):
		t.Fatal("no Down for the killed child")
	}
	if _, err := ask(t, s, slowRef, "ping"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("killed child answers %v", err)
	}
	for _, l := range rec.take() {
		if strings.HasPrefix(l, "stop slow") {
			t.Fatalf("the killed child's Terminate ran: %q", l)
		}
	}
	if cs := children(t, s, sup); cs[1].Running {
		t.Fatalf("children %+v", cs)
	}
	// BrutalKill on the same loop: no Terminate either.
	bk := Worker("bk", probeF(rec, "bk"))
	bk.Shutdown = BrutalKill
	if _, err := ask(t, s, sup, StartChild{Spec: bk}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(t, s, sup, TerminateChild{ID: "bk"}); err != nil {
		t.Fatal(err)
	}
	expectLines(t, rec, "start bk")
}

// one_for_all with children on two loops: the siblings on the other loop are
// really taken down (acknowledged) before anything restarts, and all come
// back in start order with their refs still valid.
func TestOneForAllAcrossTwoLoops(t *testing.T) {
	s := realSystem(t, 2, nil)
	rec := newRecorder()
	spec := Spec{Strategy: OneForAll, MaxR: 5, Children: []ChildSpec{
		Worker("a", probeF(rec, "a"), actor.OnLoop(0)),
		Worker("b", probeF(rec, "b"), actor.OnLoop(1)),
		Worker("c", probeF(rec, "c"), actor.OnLoop(0)),
		Worker("d", probeF(rec, "d"), actor.OnLoop(1)),
	}}
	sup := spawnSup(t, s, spec, actor.OnLoop(0))
	rec.waitLine(t, "start d")
	expectLines(t, rec, "start a", "start b", "start c", "start d")
	refs := []actor.Ref{rec.ref("a"), rec.ref("b"), rec.ref("c"), rec.ref("d")}
	if refs[1].Loop() != 1 || refs[2].Loop() != 0 {
		t.Fatalf("placement: %v", refs)
	}
	send(t, s, refs[2], "crash")
	rec.waitLine(t, "start d")
	expectLines(t, rec, "stop d restart", "stop b restart", "stop a restart", "start a", "start b", "start c", "start d")
	for i, r := range refs {
		if v, err := ask(t, s, r, "ping"); err != nil || v != "pong "+string(rune('a'+i)) {
			t.Fatalf("child %d after restart: %v %v", i, v, err)
		}
	}
	// An orderly Shutdown stops them all in reverse order, with acks.
	if _, err := ask(t, s, sup, Shutdown{}); err != nil {
		t.Fatal(err)
	}
	expectLines(t, rec, "stop d shutdown", "stop c shutdown", "stop b shutdown", "stop a shutdown")
}

func TestSimpleOneForOne(t *testing.T) {
	s, _ := manualSystem(t, 2, nil)
	rec := newRecorder()
	tmpl := Worker("w", nil)
	tmpl.Start = probeF(rec, "tmpl")
	tmpl.Restart = Transient
	sup := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{tmpl}})
	expectLines(t, rec)
	var refs []actor.Ref
	for _, id := range []string{"x", "y", "z"} {
		v, err := ask(t, s, sup, StartChild{Spec: ChildSpec{Start: probeF(rec, id)}})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, v.(actor.Ref))
	}
	expectLines(t, rec, "start x", "start y", "start z")
	send(t, s, refs[1], "crash")
	idle(s)
	expectLines(t, rec, "start y")
	send(t, s, refs[2], exitMsg{nil}) // transient, normal exit: forgotten
	idle(s)
	expectLines(t, rec, "stop z normal")
	if _, err := ask(t, s, sup, TerminateChild{Ref: refs[0]}); err != nil {
		t.Fatal(err)
	}
	expectLines(t, rec, "stop x shutdown")
	if cs := children(t, s, sup); len(cs) != 1 || cs[0].Ref != refs[1] {
		t.Fatalf("children %+v", cs)
	}
	// As OTP: terminating a child that is already gone succeeds.
	if _, err := ask(t, s, sup, TerminateChild{Ref: refs[0]}); err != nil {
		t.Fatalf("TerminateChild of a gone child = %v", err)
	}
	// Placement from the template's options: on loop 1.
	sup2 := spawnSup(t, s, Spec{Strategy: SimpleOneForOne, Children: []ChildSpec{Worker("w", probeF(rec, "far"), actor.OnLoop(1))}}, actor.OnLoop(0))
	v, err := ask(t, s, sup2, StartChild{})
	if err != nil || v.(actor.Ref).Loop() != 1 {
		t.Fatalf("StartChild on loop 1: %v %v", v, err)
	}
}

func TestStaticChildRequests(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{Children: workers(rec, "a")})
	rec.take()
	if _, err := ask(t, s, sup, StartChild{Spec: Worker("a", probeF(rec, "a"))}); !errors.Is(err, ErrAlreadyPresent) {
		t.Fatalf("duplicate StartChild = %v", err)
	}
	if _, err := ask(t, s, sup, StartChild{Spec: Worker("b", probeF(rec, "b"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(t, s, sup, DeleteChild{ID: "b"}); !errors.Is(err, ErrRunning) {
		t.Fatalf("DeleteChild of a running child = %v", err)
	}
	if _, err := ask(t, s, sup, TerminateChild{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	v, err := ask(t, s, sup, RestartChild{ID: "b"})
	if err != nil || v.(actor.Ref).IsZero() {
		t.Fatalf("RestartChild = %v %v", v, err)
	}
	if _, err := ask(t, s, sup, TerminateChild{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(t, s, sup, DeleteChild{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(t, s, sup, RestartChild{ID: "b"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RestartChild of a deleted child = %v", err)
	}
	expectLines(t, rec, "start b", "stop b shutdown", "start b", "stop b shutdown")
	// Start failure of a dynamic static child: the error comes back, the child is not kept.
	rec.failNext("c", 1)
	if _, err := ask(t, s, sup, StartChild{Spec: Worker("c", probeF(rec, "c"))}); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("failing StartChild = %v", err)
	}
	if cs := children(t, s, sup); len(cs) != 1 {
		t.Fatalf("children %+v", cs)
	}
	if _, err := s.Spawn(context.Background(), New(Spec{Children: []ChildSpec{{ID: "nostart"}}})); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("bad spec = %v", err)
	}
}

// Stopping a supervisor (a plain Stop) stops its children in reverse start
// order, and a killed supervisor takes its children with it through links.
func TestSupervisorStopStopsChildren(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{Children: append(workers(rec, "a", "b"), Sub("sub", Spec{Logger: quiet, Children: workers(rec, "c", "d")}))})
	rec.take()
	drv := spawn(t, s, func() actor.Actor { return driver{} })
	if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Stop(sup, nil) })); err != nil {
		t.Fatal(err)
	}
	idle(s)
	expectLines(t, rec, "stop d shutdown", "stop c shutdown", "stop b shutdown", "stop a shutdown")

	sup2 := spawnSup(t, s, Spec{Children: workers(rec, "e", "f")})
	rec.take()
	if _, err := ask(t, s, drv, doMsg(func(c *actor.Context) (any, error) { return nil, c.Kill(sup2) })); err != nil {
		t.Fatal(err)
	}
	idle(s)
	got := rec.take()
	if len(got) != 2 || !strings.HasSuffix(got[0], "killed") || !strings.HasSuffix(got[1], "killed") {
		t.Fatalf("children of a killed supervisor: %q", got)
	}
}

func TestReportsAndSlog(t *testing.T) {
	reps := newReports()
	s, _ := manualSystem(t, 1, reps.hook)
	rec := newRecorder()
	var buf syncBuf
	logger := slogJSON(&buf)
	_ = spawnSup(t, s, Spec{Name: "top", Logger: logger, MaxR: 3, Children: workers(rec, "a")})
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	var crash, restart *Report
	for _, r := range reps.list {
		switch r.Kind {
		case ChildCrashed:
			crash = r
		case ChildRestarted:
			restart = r
		}
	}
	if crash == nil || crash.Supervisor != "top" || crash.ChildID != "a" || crash.Panic != "crash a" ||
		len(crash.StackText()) == 0 || !errors.Is(crash.Reason, actor.ErrCrashed) {
		t.Fatalf("crash report %+v", crash)
	}
	if restart == nil || restart.Restarts != 1 || restart.Child != rec.ref("a") {
		t.Fatalf("restart report %+v", restart)
	}
	out := buf.String()
	for _, want := range []string{`"msg":"supervisor: child_crashed"`, `"supervisor":"top"`, `"child":"a"`, `"panic":"crash a"`, `"stack":`, `"msg":"supervisor: child_restarted"`, `"restarts":1`} {
		if !strings.Contains(out, want) {
			t.Fatalf("slog output lacks %s:\n%s", want, out)
		}
	}
}

// The loops run as suture services: a loop goroutine killed by a panic that
// escapes the loop (here from the event hook) is restarted by suture and the
// loop carries on; System.Shutdown ends the services for good.
func TestServiceTreeRestartsDeadLoop(t *testing.T) {
	var once sync.Once
	panicked := make(chan struct{})
	hook := func(e *actor.Event) {
		if e.Kind == actor.EventSend && e.Msg == "kill-the-loop" {
			once.Do(func() { close(panicked); panic("hook panic") })
		}
	}
	s := actor.NewSystem(actor.Config{Loops: 2, ExternalLoops: true, Hook: hook, Logger: quiet})
	events := make(chan string, 16)
	tree := NewServiceTree(s, suture.Spec{
		EventHook: func(e suture.Event) {
			select {
			case events <- fmt.Sprintf("%T", e):
			default:
			}
		},
		FailureBackoff: time.Millisecond,
		Timeout:        2 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := tree.Root.ServeBackground(ctx)
	a := spawn(t, s, func() actor.Actor { return driver{} }, actor.OnLoop(1))
	send(t, s, a, "kill-the-loop")
	<-panicked
	select {
	case e := <-events:
		if e != "suture.EventServicePanic" {
			t.Fatalf("suture event %s", e)
		}
	case <-time.After(waitFor):
		t.Fatal("suture saw no panic")
	}
	v, err := ask(t, s, a, doMsg(func(c *actor.Context) (any, error) { return c.Loop(), nil }))
	if err != nil || v != 1 {
		t.Fatalf("loop 1 after its goroutine died: %v %v", v, err)
	}
	shutdown(t, s)
	cancel()
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("tree: %v", err)
	}
}

// Reports nobody reads (no event hook, a logger that discards them) are not
// built; with an enabled logger and no hook they are built and logged.
func TestReportsLoggedWithoutHook(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	var buf syncBuf
	_ = spawnSup(t, s, Spec{Name: "top", Logger: slogJSON(&buf), MaxR: 3, Children: workers(rec, "a")})
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	out := buf.String()
	for _, want := range []string{`"msg":"supervisor: child_crashed"`, `"panic":"crash a"`, `"stack":"`, `"msg":"supervisor: child_restarted"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("slog output lacks %s:\n%s", want, out)
		}
	}
}
