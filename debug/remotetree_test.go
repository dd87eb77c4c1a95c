package debug_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// startIdleNode starts a system and a remote node named name, with the
// kind "idle" registered, stopped when the test ends.
func startIdleNode(t *testing.T, name string, acfg actor.Config) (*actor.System, *remote.Node) {
	t.Helper()
	sys := actor.NewSystem(acfg)
	n := remote.New(sys, remote.Config{Name: name, Logger: quietLogger(), HeartbeatInterval: time.Second, HeartbeatTimeout: 30 * time.Second})
	remote.RegisterKindOf(n, "idle", func(string) (actor.Factory, error) {
		return func() actor.Actor { return benchEcho{} }, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); _ = sys.Shutdown(context.Background()) })
	return sys, n
}

// The tree shows a supervisor's children on other nodes, with the node
// each runs on, after its local ones.
func TestTreeShowsRemoteChildren(t *testing.T) {
	acfg := actor.Config{Loops: 1, Watchdog: -1, Logger: quietLogger(), OnCrash: func(*actor.Crash) {}}
	rec := debug.Install(&acfg, debug.Config{})
	sysA, a := startIdleNode(t, "a", acfg)
	if err := rec.Attach(sysA); err != nil {
		t.Fatal(err)
	}
	_, b := startIdleNode(t, "b", actor.Config{Loops: 1, Watchdog: -1, Logger: quietLogger()})
	sup, err := sysA.Spawn(context.Background(), supervisor.New(supervisor.Spec{
		Name: "app", MaxR: 10, MaxT: time.Minute, Logger: quietLogger(), Cluster: remote.NewNodeSet(a, b.Addr()),
		Children: []supervisor.ChildSpec{
			supervisor.Worker("local", func() actor.Actor { return benchEcho{} }),
			supervisor.RemoteWorker("far", supervisor.Remote{Kind: "idle", Args: "far", Node: b.Addr()}),
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	var farRef actor.Ref
	deadline := time.Now().Add(20 * time.Second)
	for farRef.IsZero() {
		v, err := sysA.Ask(context.Background(), sup, supervisor.WhichChildren{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range v.([]supervisor.ChildInfo) {
			if c.ID == "far" && c.Running {
				farRef = c.Ref
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote child never ran: %+v", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	actors, _, err := rec.Actors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var app *debug.Node
	for _, n := range debug.Tree(actors) {
		if n.Path == "app" {
			app = n
		}
	}
	if app == nil || len(app.Children) != 2 {
		j, _ := json.Marshal(debug.Tree(actors))
		t.Fatalf("tree: %s", j)
	}
	far := app.Children[1]
	if app.Children[0].Path != "app/local" || far.Path != "app/far" || far.Status != "remote" || far.Node != b.Addr() || far.ID != farRef.String() {
		t.Fatalf("app's children: %+v and %+v; want app/local, then app/far on %s (%v)", *app.Children[0], *far, b.Addr(), farRef)
	}
}

// A child spawned for a supervisor of another node has that supervisor as
// its parent: its node's dump names it with its node, never as the local
// actor that has the same numbers.
func TestDumpNamesRemoteParentWithItsNode(t *testing.T) {
	sysA, a := startIdleNode(t, "a", actor.Config{Loops: 1, Watchdog: -1, Logger: quietLogger()})
	bcfg := actor.Config{Loops: 1, Watchdog: -1, Logger: quietLogger(), OnCrash: func(*actor.Crash) {}}
	rec := debug.Install(&bcfg, debug.Config{})
	sysB, b := startIdleNode(t, "b", bcfg)
	if err := rec.Attach(sysB); err != nil {
		t.Fatal(err)
	}
	sup, err := sysA.Spawn(context.Background(), supervisor.New(supervisor.Spec{
		Name: "app", MaxR: 10, MaxT: time.Minute, Logger: quietLogger(), Cluster: remote.NewNodeSet(a, b.Addr()),
		Children: []supervisor.ChildSpec{
			supervisor.RemoteWorker("far", supervisor.Remote{Kind: "idle", Args: "far", Node: b.Addr()}),
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	name, addr, id, ok := a.ExportRef(sup)
	if !ok {
		t.Fatal("cannot export the supervisor")
	}
	owner, err := b.ImportRef(name, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		actors, _, err := rec.Actors(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range actors {
			if x.Type == "debug_test.benchEcho" {
				if x.Parent != owner.String() {
					t.Fatalf("the child's parent is %q, want the supervisor of node a, %q", x.Parent, owner)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote child never ran on b: %+v", actors)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
