package sim

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// A supervisor's remote children run under the simulator (their starts
// wait on no goroutine): a supervisor on node a places two children over
// b and c; a power loss of the node of one of them makes it exit with a
// node-down reason, and the supervisor starts it again on the node left.
// The same seed replays the same run.
func TestRemoteChildren(t *testing.T) {
	first := playRemoteChildren(t, 11)
	if again := playRemoteChildren(t, 11); again != first {
		t.Fatalf("the same seed differs:\n%s\n%s", first, again)
	}
	if other := playRemoteChildren(t, 12); other == first {
		t.Fatalf("seeds 11 and 12 give the same run: %s", first)
	}
}

func playRemoteChildren(t *testing.T, seed uint64) string {
	w := New(Config{Seed: seed})
	defer w.Close()
	kind := func(n *Node) error {
		n.Remote().RegisterKind("worker", func(any) (actor.Factory, error) {
			return func() actor.Actor { return fn(func(c *actor.Context, msg any) (any, error) { return msg, nil }) }, nil
		})
		return nil
	}
	a := w.MustAddNode("a", kind)
	b := w.MustAddNode("b", kind)
	c := w.MustAddNode("c", kind)
	sup, err := a.Spawn(supervisor.New(supervisor.Spec{
		Cluster: remote.NewNodeSet(a.Remote(), b.Addr(), c.Addr()),
		MaxR:    10, MaxT: time.Minute,
		Children: []supervisor.ChildSpec{
			supervisor.RemoteWorker("w1", supervisor.Remote{Kind: "worker", StartTimeout: 2 * time.Second}),
			supervisor.RemoteWorker("w2", supervisor.Remote{Kind: "worker", StartTimeout: 2 * time.Second}),
		},
		Logger: slog.New(slog.DiscardHandler),
	}))
	if err != nil {
		t.Fatal(err)
	}
	children := func() []supervisor.ChildInfo {
		v, err := a.Ask(sup, supervisor.WhichChildren{}, time.Second)
		if err != nil {
			t.Fatalf("seed %d: WhichChildren: %v", seed, err)
		}
		return v.([]supervisor.ChildInfo)
	}
	running := func(avoid string) bool {
		for _, ci := range children() {
			if !ci.Running || ci.Node == "" || ci.Node == avoid {
				return false
			}
		}
		return true
	}
	if !w.RunUntil(10*time.Second, func() bool { return running("") }) {
		t.Fatalf("seed %d: the remote children did not start: %+v", seed, children())
	}
	start := children()
	if start[0].Node == start[1].Node {
		t.Fatalf("seed %d: both children on %s: the default placement spreads them", seed, start[0].Node)
	}
	if v, err := a.Ask(start[0].Ref, "ping", time.Second); v != "ping" || err != nil {
		t.Fatalf("seed %d: the child on %s answered %v, %v", seed, start[0].Node, v, err)
	}
	lost := b
	if start[0].Node == c.Addr() {
		lost = c
	}
	w.Crash(lost)
	if !w.RunUntil(30*time.Second, func() bool { return running(lost.Addr()) }) {
		t.Fatalf("seed %d: w1 was not started again away from %s: %+v", seed, lost.Name(), children())
	}
	after := children()
	if after[0].Ref == start[0].Ref {
		t.Fatalf("seed %d: w1 kept its ref after its node's loss", seed)
	}
	if v, err := a.Ask(after[0].Ref, "pong", time.Second); v != "pong" || err != nil {
		t.Fatalf("seed %d: the restarted child answered %v, %v", seed, v, err)
	}
	var counts supervisor.ChildCounts
	if v, err := a.Ask(sup, supervisor.CountChildren{}, time.Second); err != nil {
		t.Fatal(err)
	} else {
		counts = v.(supervisor.ChildCounts)
	}
	if counts.Active != 2 {
		t.Fatalf("seed %d: %d children active, want 2", seed, counts.Active)
	}
	return fmt.Sprintf("%s w1 %s -> %s", w.Summary(), start[0].Node, after[0].Node)
}
