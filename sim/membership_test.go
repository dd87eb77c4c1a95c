package sim

import (
	"slices"
	"testing"
	"time"
)

func names(ns []*Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name()
	}
	return out
}

// Simulated membership: each node sees the nodes it reaches, directly or
// through another (indirect probes), after a detection delay; a crash, a
// partition and a restart change the views, and each change reaches the
// node's remote node (PeerUp, PeerDown) and the subscribers.
func TestMembership(t *testing.T) {
	w := New(Config{Seed: 11, Timeline: 2000})
	defer w.Close()
	a, b, c := w.MustAddNode("a", nil), w.MustAddNode("b", nil), w.MustAddNode("c", nil)
	w.EnableMembership(MembershipConfig{})
	var events []MemberEvent
	w.OnMembership(func(e MemberEvent) { events = append(events, e) })
	sees := func(o *Node, want ...string) func() bool {
		return func() bool { return slices.Equal(names(o.Members()), want) }
	}
	if !w.RunUntil(5*time.Second, func() bool { return sees(a, "a", "b", "c")() && sees(c, "a", "b", "c")() }) {
		t.Fatalf("views after the start: a %v, c %v", names(a.Members()), names(c.Members()))
	}

	// One way blocked between a and b: each still reaches the other
	// through c, as memberlist's indirect probes do.
	w.Block(a, b)
	w.Run(5 * time.Second)
	if !sees(a, "a", "b", "c")() || !sees(b, "a", "b", "c")() {
		t.Fatalf("an indirect path: a sees %v, b sees %v", names(a.Members()), names(b.Members()))
	}
	w.Unblock(a, b)

	// A partition isolating a.
	w.Partition(a, b)
	w.Partition(a, c)
	start := w.Now()
	if !w.RunUntil(5*time.Second, func() bool { return sees(a, "a")() && sees(b, "b", "c")() && sees(c, "b", "c")() }) {
		t.Fatalf("views in the partition: a %v, b %v, c %v\n%s", names(a.Members()), names(b.Members()), names(c.Members()), timeline(w))
	}
	if took := w.Now().Sub(start); took < 500*time.Millisecond {
		t.Fatalf("noticed after %v, before the detection delay", took)
	}
	if a.Remote().Stats().PeersDown == 0 {
		t.Fatal("membership did not tell a's remote node (PeerDown)")
	}
	w.Heal(a, b)
	w.Heal(a, c)
	if !w.RunUntil(5*time.Second, func() bool { return sees(a, "a", "b", "c")() && sees(b, "a", "b", "c")() }) {
		t.Fatalf("views after the heal: a %v, b %v", names(a.Members()), names(b.Members()))
	}

	// A crash, then a restart.
	w.Crash(c)
	if !w.RunUntil(5*time.Second, func() bool { return sees(a, "a", "b")() && sees(b, "a", "b")() }) {
		t.Fatalf("views after c crashed: a %v, b %v", names(a.Members()), names(b.Members()))
	}
	if err := w.Restart(c); err != nil {
		t.Fatal(err)
	}
	if !w.RunUntil(5*time.Second, func() bool { return sees(a, "a", "b", "c")() && sees(c, "a", "b", "c")() }) {
		t.Fatalf("views after c restarted: a %v, c %v", names(a.Members()), names(c.Members()))
	}
	fails := 0
	for _, e := range events {
		if !e.Alive && e.Member == c {
			fails++
		}
	}
	if fails != 3 { // a in the partition; a and b after the crash
		t.Fatalf("%d failure events for c, want 3", fails)
	}
}
