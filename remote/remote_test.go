package remote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// testNode is a System with a Node, both shut down at the end of the test.
type testNode struct {
	sys  *actor.System
	node *Node
	stop func()
}

func newTestNode(t testing.TB, name string, cfg Config) *testNode {
	t.Helper()
	return newTestNodeOf(t, name, cfg, actor.Config{})
}

// newTestNodeOf is newTestNode on a System made with acfg (its loops,
// watchdog and crash handler set as newTestNode's).
func newTestNodeOf(t testing.TB, name string, cfg Config, acfg actor.Config) *testNode {
	t.Helper()
	acfg.Loops, acfg.Watchdog, acfg.OnCrash = 2, -1, func(*actor.Crash) {}
	sys := actor.NewSystem(acfg)
	cfg.Name = name
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 50 * time.Millisecond
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 500 * time.Millisecond
	}
	n := New(sys, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{sys: sys, node: n, stop: stop}
	t.Cleanup(tn.close)
	return tn
}

func (tn *testNode) close() {
	if tn.stop != nil {
		tn.stop()
		tn.stop = nil
	}
	_ = tn.sys.Shutdown(context.Background())
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func spawn(t testing.TB, sys *actor.System, f fnActor, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return f }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func echo(c *actor.Context, msg any) (any, error) { return msg, nil }

// A Kind that spawns echo actors, so a test can get a ref to a remote actor.
func echoKind(any) (actor.Factory, error) {
	return func() actor.Actor { return fnActor(echo) }, nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAskAcrossNodes(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	b.node.RegisterKind("echo", echoKind)
	ctx := ctxT(t)
	r, err := a.node.Spawn(ctx, b.node.Addr(), "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsRemote() {
		t.Fatalf("spawned ref %v is not remote", r)
	}
	v, err := a.sys.Ask(ctx, r, "hello")
	if err != nil || v != "hello" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	// From an actor, with a continuation on the asker's loop.
	got := make(chan any, 1)
	asker := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		c.Ask(r, int64(42)).Then(func(c *actor.Context, v any, err error) {
			if err != nil {
				got <- err
				return
			}
			got <- v
		})
		return nil, nil
	})
	if err := a.sys.Send(asker, "go"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != int64(42) {
			t.Fatalf("actor ask got %v", v)
		}
	case <-ctx.Done():
		t.Fatal("no reply")
	}
	// Call to a remote ref fails at once.
	caller := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return c.Call(r, "x") })
	if _, err := a.sys.Ask(ctx, caller, "go"); !errors.Is(err, actor.ErrNotLocal) {
		t.Fatalf("Call to remote: %v, want ErrNotLocal", err)
	}
}
