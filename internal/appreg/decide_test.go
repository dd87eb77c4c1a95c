package appreg

import (
	"slices"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	tm := Timing{Drift: 0.05, Margin: time.Millisecond}
	d := 400 * time.Millisecond
	w := tm.Wait(d)
	// The waiter's clock, fast, counts w in w/1.05 of real time; the
	// holder's, slow, counts d in d/0.95.
	if float64(w-tm.Margin)/1.05 < float64(d)/0.95 {
		t.Fatalf("Wait(%v) = %v: shorter in real time than the holder's lease", d, w)
	}
	if (Timing{}).Wait(d) != d {
		t.Fatalf("no drift, no margin: Wait(%v) = %v", d, (Timing{}).Wait(d))
	}
}

func TestMayRun(t *testing.T) {
	tm := testTiming
	now := epoch.Add(time.Hour)
	a := App{Name: "a", Desired: Running, Node: "n1", Gen: 3}
	lease := Lease{Gen: 3, Until: now.Add(time.Millisecond)}
	prev := Observed{At: now.Add(-tm.Wait(tm.Lease)), Lease: tm.Lease}
	if !MayRun(a, "n1", lease, prev, now, tm) {
		t.Fatal("holder with a lease, after the wait, may not run")
	}
	cases := map[string]func() bool{
		"another node":   func() bool { return MayRun(a, "n2", lease, prev, now, tm) },
		"stopped":        func() bool { b := a; b.Desired = Stopped; return MayRun(b, "n1", lease, prev, now, tm) },
		"lease expired":  func() bool { return MayRun(a, "n1", Lease{Gen: 3, Until: now}, prev, now, tm) },
		"lease of gen 2": func() bool { return MayRun(a, "n1", Lease{Gen: 2, Until: now.Add(time.Hour)}, prev, now, tm) },
		"no lease":       func() bool { return MayRun(a, "n1", Lease{}, prev, now, tm) },
		"previous holder's lease may run": func() bool {
			return MayRun(a, "n1", lease, Observed{At: prev.At.Add(time.Nanosecond), Lease: tm.Lease}, now, tm)
		},
		"previous holder asked a longer lease": func() bool {
			return MayRun(a, "n1", lease, Observed{At: prev.At, Lease: tm.Lease + time.Millisecond}, now, tm)
		},
	}
	for name, f := range cases {
		if f() {
			t.Errorf("%s: may run", name)
		}
	}
}

func TestPlace(t *testing.T) {
	live := []string{"n3", "n1", "n2"}
	if got := Place(App{Prefer: []string{"n9", "n2", "n1"}}, live, nil); got != "n2" {
		t.Fatalf("first live preferred: %s", got)
	}
	if got := Place(App{Prefer: []string{"n9"}}, live, map[string]int{"n1": 2, "n2": 1, "n3": 1}); got != "n2" {
		t.Fatalf("none preferred live: fewest, name order: %s", got)
	}
	if got := Place(App{}, nil, nil); got != "" {
		t.Fatalf("nothing live: %q", got)
	}
}

func TestPlan(t *testing.T) {
	tm := testTiming
	now := epoch.Add(time.Hour)
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "new", Prefer: []string{"n2"}})
	mustApply(t, s, Command{Op: OpDeploy, App: "lost", Prefer: []string{"n1", "n2"}})
	mustApply(t, s, Command{Op: OpAssign, App: "lost", Node: "n1"})
	mustApply(t, s, Command{Op: OpDeploy, App: "back", Prefer: []string{"n1", "n2"}, Takeover: true})
	mustApply(t, s, Command{Op: OpAssign, App: "back", Node: "n2"})
	mustApply(t, s, Command{Op: OpDeploy, App: "stay", Prefer: []string{"n1", "n2"}})
	mustApply(t, s, Command{Op: OpAssign, App: "stay", Node: "n2"})
	mustApply(t, s, Command{Op: OpDeploy, App: "off"})
	mustApply(t, s, Command{Op: OpStop, App: "off"})

	seen := map[string]Observed{"lost": {At: now.Add(-tm.Wait(tm.Lease)).Add(time.Nanosecond), Lease: tm.Lease}}
	// n1 down: "lost" waits for its holder's lease.
	got := Plan(s, []string{"n2", "n3"}, seen, now, tm)
	want := []Command{{Op: OpAssign, App: "new", Node: "n2", Gen: 0}}
	if !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("n1 down, lease may run: %+v", got)
	}
	seen["lost"] = Observed{At: now.Add(-tm.Wait(tm.Lease)), Lease: tm.Lease}
	got = Plan(s, []string{"n2", "n3"}, seen, now, tm)
	want = []Command{{Op: OpAssign, App: "lost", Node: "n2", Gen: 1}, {Op: OpAssign, App: "new", Node: "n2", Gen: 0}}
	if !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("n1 down, lease over: %+v", got)
	}
	// n1 live: "back" (takeover) moves to it, "stay" (no takeover) stays.
	got = Plan(s, []string{"n1", "n2", "n3"}, seen, now, tm)
	want = []Command{{Op: OpAssign, App: "back", Node: "n1", Gen: 1}, {Op: OpAssign, App: "new", Node: "n2", Gen: 0}}
	if !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("n1 live: %+v", got)
	}
	// Without a liveness observation the leader does not move a holder.
	got = Plan(s, []string{"n2", "n3"}, nil, now, tm)
	want = []Command{{Op: OpAssign, App: "new", Node: "n2", Gen: 0}}
	if !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("no observation: %+v", got)
	}
}

func eqCmd(a, b Command) bool {
	return a.Op == b.Op && a.App == b.App && a.Node == b.Node && a.Gen == b.Gen
}

// Takeover does not move an application back to the node that released
// it (draining, to stop) until ReleasedByFor of renewals have passed since
// the release: that node, restarted, is preferred again then.
func TestPlanTakeoverBackToTheReleaserLater(t *testing.T) {
	tm := testTiming
	now := epoch.Add(time.Hour)
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a", Prefer: []string{"n1", "n2"}, Takeover: true})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1"})
	mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: tm.Lease, Inc: 1, Seq: 1})
	mustApply(t, s, Command{Op: OpRelease, App: "a", Node: "n1", Gen: 1, To: "n2", Inc: 1})
	live := []string{"n1", "n2", "n3"}
	renew := func(n int) {
		for range n {
			mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n2", Gen: 2, Lease: tm.Lease, Inc: 2, Seq: 1})
		}
	}
	need := int(ReleasedByFor / tm.RenewEvery)
	renew(need - 1)
	if got := Plan(s, live, nil, now, tm); len(got) != 0 {
		t.Fatalf("moved back to the releaser after %d renewals: %+v", need-1, got)
	}
	renew(1)
	want := []Command{{Op: OpAssign, App: "a", Node: "n1", Gen: 2}}
	if got := Plan(s, live, nil, now, tm); !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("after %d renewals: %+v, want %+v", need, got, want)
	}
}
