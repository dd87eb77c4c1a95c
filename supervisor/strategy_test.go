package supervisor

import (
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

func TestStrategies(t *testing.T) {
	cases := []struct {
		name     string
		strategy Strategy
		want     []string
	}{
		{"one_for_one", OneForOne, []string{"start b"}},
		{"one_for_all", OneForAll, []string{"stop c restart", "stop a restart", "start a", "start b", "start c"}},
		{"rest_for_one", RestForOne, []string{"stop c restart", "start b", "start c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := manualSystem(t, 1, nil)
			rec := newRecorder()
			sup := spawnSup(t, s, Spec{Strategy: tc.strategy, MaxR: 5, Children: workers(rec, "a", "b", "c")})
			expectLines(t, rec, "start a", "start b", "start c")
			refs := map[string]actor.Ref{"a": rec.ref("a"), "b": rec.ref("b"), "c": rec.ref("c")}
			send(t, s, refs["b"], "crash")
			idle(s)
			expectLines(t, rec, tc.want...)
			// Restarts are in place: every old ref reaches the new instance.
			for id, r := range refs {
				if v, err := ask(t, s, r, "ping"); err != nil || v != "pong "+id {
					t.Fatalf("%s after restart: %v %v", id, v, err)
				}
			}
			if cs := children(t, s, sup); len(cs) != 3 || !cs[1].Running || cs[1].Ref != refs["b"] {
				t.Fatalf("children %+v", cs)
			}
		})
	}
}

func TestRestartTypes(t *testing.T) {
	type ev struct {
		name   string
		msg    any
		reason string // logged by the child's own Terminate, "" for a crash
	}
	evs := []ev{
		{"crash", "crash", ""},
		{"normal", exitMsg{nil}, "normal"},
		{"shutdown", exitMsg{actor.ErrShutdown}, "shutdown"},
		{"abnormal", exitMsg{errBoom}, "boom"},
	}
	restarted := map[RestartType]map[string]bool{
		Permanent: {"crash": true, "normal": true, "shutdown": true, "abnormal": true},
		Transient: {"crash": true, "normal": false, "shutdown": false, "abnormal": true},
		Temporary: {"crash": false, "normal": false, "shutdown": false, "abnormal": false},
	}
	for _, rt := range []RestartType{Permanent, Transient, Temporary} {
		for _, e := range evs {
			t.Run(rt.String()+"/"+e.name, func(t *testing.T) {
				s, _ := manualSystem(t, 1, nil)
				rec := newRecorder()
				spec := Worker("w", probeF(rec, "w"))
				spec.Restart = rt
				sup := spawnSup(t, s, Spec{Children: []ChildSpec{spec}})
				expectLines(t, rec, "start w")
				send(t, s, rec.ref("w"), e.msg)
				idle(s)
				var want []string
				if e.reason != "" {
					want = append(want, "stop w "+e.reason)
				}
				if restarted[rt][e.name] {
					want = append(want, "start w")
				}
				expectLines(t, rec, want...)
				cs := children(t, s, sup)
				switch {
				case rt == Temporary && len(cs) != 0:
					t.Fatalf("temporary child kept: %+v", cs)
				case rt != Temporary && (len(cs) != 1 || cs[0].Running != restarted[rt][e.name]):
					t.Fatalf("children %+v", cs)
				}
			})
		}
	}
}

func TestIntensityWindowFakeClock(t *testing.T) {
	s, clk := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{MaxR: 2, MaxT: 10 * time.Second, Children: workers(rec, "a", "b")})
	downs := spawn(t, s, func() actor.Actor { return driver{} })
	if _, err := ask(t, s, downs, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(sup) })); err != nil {
		t.Fatal(err)
	}
	rec.take()
	crash := func() {
		send(t, s, rec.ref("a"), "crash")
		idle(s)
	}
	crash()
	clk.Advance(6 * time.Second)
	crash() // 2 restarts within 10 s: allowed
	expectLines(t, rec, "start a", "start a")
	clk.Advance(5 * time.Second) // the first restart leaves the window
	crash()
	expectLines(t, rec, "start a")
	if !alive(t, s, sup) {
		t.Fatal("supervisor gave up too early")
	}
	crash() // third within 10 s (t=6, 11, 11): give up
	expectLines(t, rec, "stop b shutdown")
	if alive(t, s, sup) {
		t.Fatal("supervisor still alive after exceeding its intensity")
	}
}

func TestDefaultIntensityIsOneInFiveSeconds(t *testing.T) {
	s, clk := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{Children: workers(rec, "a")})
	rec.take()
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	clk.Advance(5*time.Second + time.Millisecond)
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	expectLines(t, rec, "start a", "start a")
	clk.Advance(4 * time.Second)
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	expectLines(t, rec)
	if alive(t, s, sup) {
		t.Fatal("2 restarts within 5 s did not stop the supervisor")
	}
}

func TestNoRestartsAllowed(t *testing.T) {
	s, _ := manualSystem(t, 1, nil)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{MaxR: -1, Children: workers(rec, "a", "b", "c")})
	rec.take()
	send(t, s, rec.ref("b"), "crash")
	idle(s)
	// b is suspended (crashed): no Terminate; the others in reverse order.
	expectLines(t, rec, "stop c shutdown", "stop a shutdown")
	if alive(t, s, sup) {
		t.Fatal("supervisor alive")
	}
	if _, err := ask(t, s, rec.ref("b"), "ping"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("crashed child after give-up: %v", err)
	}
}
