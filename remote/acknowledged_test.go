package remote

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// lifeProbe is a remote actor for lifecycle tests: it reports its Start
// and Terminate, and records what it receives.
type lifeProbe struct {
	started    chan<- struct{}
	terminated chan<- error
	got        chan<- any
}

func (p *lifeProbe) Start(*actor.Context) error { p.started <- struct{}{}; return nil }

func (p *lifeProbe) Terminate(_ *actor.Context, reason error) { p.terminated <- reason }

func (p *lifeProbe) Receive(_ *actor.Context, msg any) (any, error) {
	p.got <- msg
	return msg, nil
}

// lifecycleOf asks a driver actor on tn to make one lifecycle request and
// returns its outcome.
func lifecycleOf(t *testing.T, tn *testNode, drv actor.Ref, out chan askRes, f func(c *actor.Context) actor.Promise) askRes {
	t.Helper()
	if err := tn.sys.Send(drv, f); err != nil {
		t.Fatal(err)
	}
	return recv(t, out, 5*time.Second, "a lifecycle outcome")
}

// TestRemoteAcknowledgedLifecycle: StopAsync, SuspendAsync, RestartAsync
// and AliveAsync work on an actor of another node as on a local one, with
// the outcome carried back (an error value keeps its identity), and fail
// with the node-down error when the node is lost.
func TestRemoteAcknowledgedLifecycle(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	started, terminated, got := make(chan struct{}, 4), make(chan error, 4), make(chan any, 4)
	b.node.RegisterKind("life", func(any) (actor.Factory, error) {
		return func() actor.Actor { return &lifeProbe{started, terminated, got} }, nil
	})
	r, err := a.node.Spawn(ctxT(t), b.node.Addr(), "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, started, 5*time.Second, "the first Start")
	out := make(chan askRes, 1)
	drv := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		msg.(func(*actor.Context) actor.Promise)(c).Then(func(_ *actor.Context, v any, err error) { out <- askRes{v, err} })
		return nil, nil
	})
	ok := func(what string, res askRes) {
		t.Helper()
		if res.err != nil || res.v != nil {
			t.Fatalf("%s: %v, %v", what, res.v, res.err)
		}
	}

	ok("AliveAsync", lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.AliveAsync(r) }))
	ok("SuspendAsync", lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.SuspendAsync(r, errLinkTest, time.Second) }))
	if why := recv(t, terminated, 5*time.Second, "Terminate on suspend"); why == nil || !strings.Contains(why.Error(), errLinkTest.Error()) {
		t.Fatalf("suspended with %v, want %v", why, errLinkTest)
	}
	ok("AliveAsync while suspended", lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.AliveAsync(r) }))
	if err := a.sys.Send(r, "held"); err != nil {
		t.Fatal(err)
	}
	ok("RestartAsync", lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.RestartAsync(r) }))
	recv(t, started, 5*time.Second, "the Start of the restart")
	if m := recv(t, got, 5*time.Second, "the message held while suspended"); m != "held" {
		t.Fatalf("got %v", m)
	}

	res := lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.StopAsync(r, actor.ErrShutdown, time.Second) })
	if e, isErr := res.v.(error); res.err != nil || !isErr || !errors.Is(e, actor.ErrShutdown) {
		t.Fatalf("StopAsync: %v, %v; want the value ErrShutdown", res.v, res.err)
	}
	if why := recv(t, terminated, 5*time.Second, "Terminate on stop"); !errors.Is(why, actor.ErrShutdown) {
		t.Fatalf("stopped with %v", why)
	}
	res = lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.StopAsync(r, nil, time.Second) })
	if e, isErr := res.v.(error); res.err != nil || !isErr || !errors.Is(e, actor.ErrDead) {
		t.Fatalf("StopAsync of a dead actor: %v, %v; want the value ErrDead", res.v, res.err)
	}
	if res := lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.AliveAsync(r) }); !errors.Is(res.err, actor.ErrDead) {
		t.Fatalf("AliveAsync of a dead actor: %v, %v", res.v, res.err)
	}

	// A brutal stop kills: no Terminate, ErrKilled as the value.
	r2, err := a.node.Spawn(ctxT(t), b.node.Addr(), "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, started, 5*time.Second, "the second actor's Start")
	res = lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.StopAsync(r2, actor.ErrShutdown, -1) })
	if e, isErr := res.v.(error); res.err != nil || !isErr || !errors.Is(e, actor.ErrKilled) {
		t.Fatalf("brutal StopAsync: %v, %v; want the value ErrKilled", res.v, res.err)
	}
	nothing(t, terminated, "Terminate after a kill")

	// A forged id is a dead actor, not a way to learn anything.
	p, id, _ := wireOf(a.sys).Remote(r)
	id.Secret[3] ^= 1
	forged := wireOf(a.sys).RemoteRef(p, id)
	if res := lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.AliveAsync(forged) }); !errors.Is(res.err, actor.ErrDead) {
		t.Fatalf("AliveAsync of a forged ref: %v, %v", res.v, res.err)
	}

	// The node goes away: a request fails with the node-down error.
	r3, err := a.node.Spawn(ctxT(t), b.node.Addr(), "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, started, 5*time.Second, "the third actor's Start")
	b.close()
	res = lifecycleOf(t, a, drv, out, func(c *actor.Context) actor.Promise { return c.StopAsync(r3, nil, time.Minute) })
	if !errors.Is(res.err, ErrNodeDown) {
		t.Fatalf("StopAsync on a node that went away: %v, %v; want ErrNodeDown", res.v, res.err)
	}
}

// TestRemoteFromGoroutine: System.Stop, Kill, SendWait and AskTimeout from
// a plain goroutine on actors of another node.
func TestRemoteFromGoroutine(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	started, terminated, got := make(chan struct{}, 4), make(chan error, 4), make(chan any, 4)
	b.node.RegisterKind("life", func(any) (actor.Factory, error) {
		return func() actor.Actor { return &lifeProbe{started, terminated, got} }, nil
	})
	ctx := ctxT(t)
	spawnLife := func() actor.Ref {
		r, err := a.node.Spawn(ctx, b.node.Addr(), "life", nil)
		if err != nil {
			t.Fatal(err)
		}
		recv(t, started, 5*time.Second, "Start")
		return r
	}
	r := spawnLife()
	if err := a.sys.SendWait(ctx, r, "one-way"); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, got, 5*time.Second, "the message"); m != "one-way" {
		t.Fatalf("got %v", m)
	}
	if v, err := a.sys.AskTimeout(r, "q", 5*time.Second); err != nil || v != "q" {
		t.Fatalf("AskTimeout: %v, %v", v, err)
	}
	<-got
	if err := a.sys.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case why := <-terminated:
		if why != nil {
			t.Fatalf("Terminate(%v), want the normal reason", why)
		}
	default:
		t.Fatal("Stop returned before Terminate ran")
	}
	if err := a.sys.Stop(ctx, r); err != nil {
		t.Fatalf("Stop of a dead remote actor: %v", err)
	}
	r2 := spawnLife()
	if err := a.sys.Kill(ctx, r2); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	nothing(t, terminated, "Terminate after Kill")
	if _, err := a.sys.Ask(ctx, r2, "x"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask after Kill: %v, want ErrDead", err)
	}
}

// TestRemoteLifecycleRequestsBounded: a node carries out at most
// maxLifecycles lifecycle requests of one connection at once (they take
// the target loop's unbounded control queue); the rest are refused with
// ErrQueueFull, and the ones taken are answered when the loop is free.
func TestRemoteLifecycleRequestsBounded(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	held, gate := make(chan struct{}, 1), make(chan struct{})
	r := remoteActor(t, a, b, func(_ *actor.Context, msg any) (any, error) {
		if msg == "hold" {
			held <- struct{}{}
			<-gate
		}
		return msg, nil
	})
	// Held from b's own side: a message from the network may run on b's
	// network goroutine (an idle loop is lent to it), and holding that
	// would stop b's heartbeats.
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	if err := b.sys.Send(localOf(t, a, b, r), "hold"); err != nil {
		t.Fatal(err)
	}
	recv(t, held, 5*time.Second, "the target's loop held")
	const extra = 20
	out := make(chan error, maxLifecycles+extra)
	drv := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		for range maxLifecycles + extra {
			c.AliveAsync(r).Then(func(_ *actor.Context, _ any, err error) { out <- err })
		}
		return nil, nil
	})
	if err := a.sys.Send(drv, "go"); err != nil {
		t.Fatal(err)
	}
	for range extra {
		if err := recv(t, out, 5*time.Second, "a refusal"); !errors.Is(err, actor.ErrQueueFull) {
			t.Fatalf("beyond the bound: %v, want ErrQueueFull", err)
		}
	}
	nothing(t, out, "an answer while the loop is held")
	release()
	for range maxLifecycles {
		if err := recv(t, out, 5*time.Second, "an answer"); err != nil {
			t.Fatalf("within the bound: %v", err)
		}
	}
}
