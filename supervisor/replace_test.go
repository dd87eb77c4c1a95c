package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ReplaceChild: a remote child's instance is replaced by one made on
// another node (a move with its state): the supervisor runs the new one,
// the old one's end is not the child's, the replacement is not a restart
// (with MaxR 1 a crash afterwards is restarted, not given up on), and a
// request naming another instance or child, or processed past its
// deadline, is refused.
func TestReplaceChild(t *testing.T) {
	n := newThreeNodes(t)
	sup := spawnSup(t, n.a.sys, Spec{MaxR: 1, MaxT: time.Hour, Cluster: n.cluster(),
		Children: []ChildSpec{RemoteWorker("x", Remote{Kind: probeKind, Args: "x", Place: func(c Candidates) (string, error) {
			return n.b.addr(), nil
		}})}})
	before := waitChildren(t, n.a.sys, sup, "x running", running("x"))
	old := refOf(before, "x")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	nw, err := n.cluster().Spawn(ctx, n.c.addr(), probeKind, "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ReplaceChild{{ID: "x", Old: nw, New: nw}, {ID: "y", Old: old, New: nw}, {ID: "x", Old: old},
		{ID: "x", Old: old, New: nw, Node: n.c.addr(), Deadline: time.Now().Add(-time.Millisecond)}} {
		if _, err := ask(t, n.a.sys, sup, bad); !errors.Is(err, ErrNotReplaced) {
			t.Fatalf("%+v: %v, want ErrNotReplaced", bad, err)
		}
	}
	if _, err := ask(t, n.a.sys, sup, ReplaceChild{ID: "x", Old: old, New: nw, Node: n.c.addr()}); err != nil {
		t.Fatal(err)
	}
	after := children(t, n.a.sys, sup)
	if refOf(after, "x") != nw || nodeOf(after, "x") != n.c.addr() {
		t.Fatalf("after the replacement: %+v, want x = %v on c", after, nw)
	}
	// The old instance's end is not the child's.
	if err := n.a.sys.Stop(ctx, old); err != nil {
		t.Fatal(err)
	}
	if got := children(t, n.a.sys, sup); refOf(got, "x") != nw || !running("x")(got) {
		t.Fatalf("after the old instance stopped: %+v", got)
	}
	// Not a restart: one crash is still allowed (MaxR 1).
	send(t, n.a.sys, nw, "crash")
	again := waitChildren(t, n.a.sys, sup, "x restarted", func(ch []ChildInfo) bool {
		return running("x")(ch) && refOf(ch, "x") != nw
	})
	if nodeOf(again, "x") != n.b.addr() {
		t.Fatalf("x restarted on %s, want b (as its placement says)", nodeOf(again, "x"))
	}
	if _, err := ask(t, n.a.sys, sup, WhichChildren{}); err != nil {
		t.Fatalf("the supervisor gave up: %v", err)
	}
}
