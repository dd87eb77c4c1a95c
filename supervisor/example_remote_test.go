package supervisor_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// greeter answers a name with its greeting, and crashes on "crash".
type greeter struct{ greeting string }

func (g *greeter) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "crash" {
		panic("boom")
	}
	return fmt.Sprintf("%s, %v", g.greeting, msg), nil
}

// startNode starts a node of its own actor system on a free loopback port.
func startNode(ctx context.Context, name string) (*actor.System, *remote.Node, func()) {
	quiet := slog.New(slog.DiscardHandler)
	sys := actor.NewSystem(actor.Config{Logger: quiet, OnCrash: func(*actor.Crash) {}})
	n := remote.New(sys, remote.Config{Name: name, Logger: quiet,
		ClusterKey: []byte("example cluster key of 32 bytes!")})
	stop, err := n.Start(ctx)
	if err != nil {
		panic(err)
	}
	return sys, n, func() { stop(); _ = sys.Shutdown(ctx) }
}

// child waits until the supervisor's only child runs with another ref than
// old, and returns it.
func child(sys *actor.System, sup, old actor.Ref) supervisor.ChildInfo {
	for {
		v, err := sys.Ask(context.Background(), sup, supervisor.WhichChildren{})
		if err != nil {
			panic(err)
		}
		if ci := v.([]supervisor.ChildInfo)[0]; ci.Running && ci.Ref != old {
			return ci
		}
		time.Sleep(time.Millisecond)
	}
}

// A supervisor on node a with a child on node b, made there from a kind
// registered on b. When the child crashes, the supervisor starts a new one
// (a fresh spawn: a new ref); when b's node goes down, the child counts as
// exited with a reason matching remote.ErrNodeDown and is restarted on
// another live node of the cluster.
func Example_remoteChild() {
	ctx := context.Background()
	sysA, a, stopA := startNode(ctx, "a")
	defer stopA()
	_, b, stopB := startNode(ctx, "b")
	defer stopB()
	remote.RegisterKindOf(b, "greeter", func(greeting string) (actor.Factory, error) {
		return func() actor.Actor { return &greeter{greeting: greeting} }, nil
	})

	sup, err := sysA.Spawn(ctx, supervisor.New(supervisor.Spec{
		Cluster: remote.NewNodeSet(a, b.Addr()), // the nodes children may go to
		Children: []supervisor.ChildSpec{
			supervisor.RemoteWorker("greeter", supervisor.Remote{Kind: "greeter", Args: "hello"}),
		},
		Logger: slog.New(slog.DiscardHandler),
	}))
	if err != nil {
		panic(err)
	}
	first := child(sysA, sup, actor.Ref{}) // remote children start asynchronously
	v, _ := sysA.Ask(ctx, first.Ref, "world")
	fmt.Println(v, first.Node == b.Addr())

	_ = sysA.Send(first.Ref, "crash")
	second := child(sysA, sup, first.Ref)
	v, _ = sysA.Ask(ctx, second.Ref, "again")
	fmt.Println(v)
	// Output:
	// hello, world true
	// hello, again
}
