package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// pdResult is what an ask ended with.
type pdResult struct {
	v   any
	err error
}

// TestPeerDownFailsAsksAndMonitors checks that a peer reported down by the
// membership layer fails, at once and with ErrNodeDown and the given
// reason, the asks (from an actor and from a goroutine) that are pending
// on it and fires the monitors of its actors, although its connection is
// healthy (heartbeats would not notice for 30 s); and that the node then
// reconnects to the peer, which is still there.
func TestPeerDownFailsAsksAndMonitors(t *testing.T) {
	slow := Config{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 30 * time.Second}
	a := newTestNode(t, "a", slow)
	b := newTestNode(t, "b", slow)
	arrived := make(chan any, 4)
	b.node.RegisterKind("hold", func(any) (actor.Factory, error) {
		return func() actor.Actor {
			return fnActor(func(c *actor.Context, msg any) (any, error) {
				holdReply(c.Defer()) // never answered
				arrived <- msg
				return nil, nil
			})
		}, nil
	})
	b.node.RegisterKind("echo", echoKind)
	ctx := ctxT(t)
	held, err := a.node.Spawn(ctx, b.node.Addr(), "hold", nil)
	if err != nil {
		t.Fatal(err)
	}

	// A goroutine ask with no deadline: only a node-down can end it.
	goAsk := make(chan pdResult, 1)
	go func() {
		v, err := a.sys.Ask(context.Background(), held, "from goroutine")
		goAsk <- pdResult{v, err}
	}()
	// An actor's ask with a deadline far beyond the test's.
	actorAsk := make(chan pdResult, 1)
	downs := make(chan actor.Down, 1)
	client, err := a.sys.Spawn(ctx, func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			switch m := msg.(type) {
			case string:
				c.AskTimeout(held, m, time.Hour).Then(func(_ *actor.Context, v any, err error) {
					actorAsk <- pdResult{v, err}
				})
				return nil, c.Monitor(held)
			case actor.Down:
				downs <- m
			}
			return nil, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctx, client, "from actor"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // both asks reached b: they are pending there, not queued here
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("asks did not reach the held actor")
		}
	}

	if a.node.PeerDown("127.0.0.1:1", errors.New("nobody")) {
		t.Fatal("PeerDown of an unknown address reported a peer")
	}
	select {
	case r := <-goAsk:
		t.Fatalf("goroutine ask ended before PeerDown: %v, %v", r.v, r.err)
	default:
	}

	reason := errors.New("cluster: member b failed")
	start := time.Now()
	if !a.node.PeerDown(b.node.Addr(), reason) {
		t.Fatal("PeerDown did not know b")
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrNodeDown) || !errors.Is(err, reason) {
			t.Fatalf("%s: %v, want ErrNodeDown wrapping %q", what, err, reason)
		}
	}
	wait := time.NewTimer(2 * time.Second)
	defer wait.Stop()
	for range 3 {
		select {
		case r := <-goAsk:
			check("goroutine ask", r.err)
		case r := <-actorAsk:
			check("actor ask", r.err)
		case d := <-downs:
			if d.Ref != held {
				t.Fatalf("Down for %v, want %v", d.Ref, held)
			}
			check("monitor", d.Reason)
		case <-wait.C:
			t.Fatal("PeerDown did not fail every pending ask and monitor within 2s")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("PeerDown took %v to fail the pending work", el)
	}

	// b is alive after all: the node redials and new work goes through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := a.node.Spawn(ctx, b.node.Addr(), "echo", nil)
		if err == nil {
			var v any
			if v, err = a.sys.Ask(ctx, r, "again"); err == nil && v == "again" {
				break
			}
		}
		if !errors.Is(err, ErrNodeDown) || time.Now().After(deadline) {
			t.Fatalf("after PeerDown, b unreachable: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the redial's backoff, not a synchronisation
	}
}

// TestPeerDownWithoutReason checks the error when no reason is given.
func TestPeerDownWithoutReason(t *testing.T) {
	a := newTestNode(t, "a", Config{HeartbeatTimeout: 30 * time.Second})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: 30 * time.Second})
	arrived := make(chan struct{}, 1)
	b.node.RegisterKind("hold", func(any) (actor.Factory, error) {
		return func() actor.Actor {
			return fnActor(func(c *actor.Context, msg any) (any, error) {
				holdReply(c.Defer())
				arrived <- struct{}{}
				return nil, nil
			})
		}, nil
	})
	ctx := ctxT(t)
	held, err := a.node.Spawn(ctx, b.node.Addr(), "hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { _, err := a.sys.Ask(ctx, held, "x"); res <- err }()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("ask did not reach b")
	}
	if !a.node.PeerDown(b.node.Addr(), nil) {
		t.Fatal("PeerDown did not know b")
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrNodeDown) || !strings.Contains(err.Error(), "reported down") {
			t.Fatalf("ask: %v, want ErrNodeDown ... reported down", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("PeerDown did not fail the pending ask")
	}
}
