package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
	"github.com/actord/actord/remote"
)

type node struct {
	sys  *actor.System
	node *remote.Node
	stop func()
}

func startNode(t testing.TB, name string) *node {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	n := remote.New(sys, remote.Config{Name: name, HeartbeatInterval: 50 * time.Millisecond,
		HeartbeatTimeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	for _, err := range []error{
		remote.Register[read](n, "quorum_test.read"),
		remote.Register[state](n, "quorum_test.state"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	stop, err := n.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{sys: sys, node: n}
	nd.stop = func() {
		if stop != nil {
			stop()
			stop = nil
			_ = sys.Shutdown(context.Background())
		}
	}
	t.Cleanup(nd.stop)
	return nd
}

// Replicas on three other nodes, one of which goes away: a majority still
// answers, and the down node's failure says what happened.
func TestAcrossNodesWithANodeDown(t *testing.T) {
	client := startNode(t, "client")
	m := newManager(t, client.sys)
	var refs []actor.Ref
	var nodes []*node
	for i := range 3 {
		nd := startNode(t, fmt.Sprintf("replica-%d", i))
		nd.node.RegisterKind("replica", func(any) (actor.Factory, error) {
			return func() actor.Actor { return &replica{name: fmt.Sprint(i), st: state{i, fmt.Sprint("v", i)}} }, nil
		})
		r, err := client.node.Spawn(context.Background(), nd.node.Addr(), "replica", nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes, refs = append(nodes, nd), append(refs, r)
	}
	cfg := config(t, m, nil, refs...)
	nodes[2].stop()

	newest := quorum.Spec[read, state, state]{Quorum: quorum.Highest[read](quorum.Read, newer)}
	got, err := quorum.Call(ctxT(t), m.Caller(), cfg, read{}, newest)
	if err != nil || got.TS != 1 {
		t.Fatalf("majority of 3 with one node down: %+v, %v", got, err)
	}
	all := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.All[read, state]()}
	_, err = quorum.Call(ctxT(t), m.Caller(), cfg, read{}, all)
	if qe := quorumErr(t, err); len(qe.Failures) != 1 || qe.Failures[0].Node.Ref() != refs[2] || !errors.Is(err, remote.ErrNodeDown) {
		t.Fatalf("all of 3 with one node down: %v", err)
	}
	if st := cfg.Node(2).Stats(); !errors.Is(st.LastErr, remote.ErrNodeDown) || !st.Failing {
		t.Fatalf("stats of the down node: %+v", st)
	}
	// From an actor of the client node.
	out := inActor(t, client.sys, func(c *actor.Context, out chan<- result[state]) {
		quorum.Ask(c, cfg, read{}, newest).Then(func(c *actor.Context, s state, err error) { out <- result[state]{s, err} })
	})
	if r := recv(t, out, "the call from an actor"); r.err != nil || r.v.TS != 1 {
		t.Fatalf("from an actor: %+v %v", r.v, r.err)
	}
}
