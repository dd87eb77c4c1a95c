package capability

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Wire types of the remote test.
type (
	RGet struct{ Key string }
	RPut struct{ Key, Val string }
)

type remoteNode struct {
	sys  *actor.System
	node *remote.Node
}

func newRemoteNode(t *testing.T, name string) *remoteNode {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	n := remote.New(sys, remote.Config{
		Name:              name,
		HeartbeatInterval: 50 * time.Millisecond,
		HeartbeatTimeout:  2 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	for _, err := range []error{remote.Register[RGet](n, "captest.get"), remote.Register[RPut](n, "captest.put")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		_ = sys.Shutdown(context.Background())
	})
	return &remoteNode{sys: sys, node: n}
}

// kv answers RGet and RPut.
func kv() actor.Actor {
	m := map[string]string{}
	return fnActor(func(c *actor.Context, msg any) (any, error) {
		switch x := msg.(type) {
		case RGet:
			return m[x.Key], nil
		case RPut:
			m[x.Key] = x.Val
			return nil, nil
		}
		return nil, actor.Unhandled(msg)
	})
}

// A facet is a plain actor, so a holder on another node uses it like any
// remote ref: admitted messages pass, others are refused, and after Revoke
// the hosting node answers the facet's ref as a dead actor's.
func TestFacetAcrossNodes(t *testing.T) {
	a := newRemoteNode(t, "a")
	b := newRemoteNode(t, "b")
	ctx := ctxT(t)

	target, err := a.sys.Spawn(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Spawn(ctx, a.sys, target, Allow[RGet]())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctx, target, RPut{"k", "v"}); err != nil {
		t.Fatal(err)
	}
	node, addr, id, ok := a.node.ExportRef(f.Ref())
	if !ok {
		t.Fatal("ExportRef failed")
	}
	held, err := b.node.ImportRef(node, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if !held.IsRemote() {
		t.Fatalf("imported %v is not remote", held)
	}

	if v, err := b.sys.Ask(ctx, held, RGet{"k"}); err != nil || v != "v" {
		t.Fatalf("remote get through facet = %v, %v", v, err)
	}
	// Refused: the wire carries the text, and the identity since both nodes
	// (one process here) registered the sentinel.
	if err := remote.RegisterError("capability.ErrNotPermitted", ErrNotPermitted); err != nil {
		t.Fatal(err)
	}
	_, err = b.sys.Ask(ctx, held, RPut{"k", "w"})
	if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), ErrNotPermitted.Error()) {
		t.Fatalf("remote put through facet: %v, want ErrNotPermitted", err)
	}
	if v, err := a.sys.Ask(ctx, target, RGet{"k"}); err != nil || v != "v" {
		t.Fatalf("target after refused remote put: %v, %v", v, err)
	}

	// A remote monitor of the facet sees it go.
	downs := make(chan actor.Down, 1)
	w := &watcher{target: held, ch: downs}
	if _, err := b.sys.Spawn(ctx, func() actor.Actor { return w }); err != nil {
		t.Fatal(err)
	}
	f.Revoke()
	if _, err := b.sys.Ask(ctx, held, RGet{"k"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("remote ask after revoke: %v, want ErrDead", err)
	}
	awaitDown(t, downs)
	if v, err := a.sys.Ask(ctx, target, RGet{"k"}); err != nil || v != "v" {
		t.Fatalf("target after revoke: %v, %v", v, err)
	}
}

// A facet of a remote target forwards over the wire and dies with it.
func TestFacetOfRemoteTarget(t *testing.T) {
	a := newRemoteNode(t, "a")
	b := newRemoteNode(t, "b")
	ctx := ctxT(t)

	target, err := b.sys.Spawn(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	node, addr, id, ok := b.node.ExportRef(target)
	if !ok {
		t.Fatal("ExportRef failed")
	}
	rt, err := a.node.ImportRef(node, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Spawn(ctx, a.sys, rt, Allow[RGet](), Allow[RPut](), Synchronous())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctx, f.Ref(), RPut{"x", "1"}); err != nil {
		t.Fatalf("put through a facet of a remote target: %v", err)
	}
	if v, err := a.sys.Ask(ctx, f.Ref(), RGet{"x"}); err != nil || v != "1" {
		t.Fatalf("get = %v, %v", v, err)
	}
	down := watch(t, a.sys, f.Ref())
	stopper := driver(t, b.sys, 0)
	do(t, b.sys, stopper, func(c *actor.Context, done func(any, error)) { done(nil, c.Stop(target, errors.New("gone"))) })
	if d := awaitDown(t, down); !errors.Is(d.Reason, ErrTargetDown) {
		t.Fatalf("facet of a stopped remote target: Down %v", d.Reason)
	}
	if _, err := a.sys.Ask(ctx, f.Ref(), RGet{"x"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask after remote target stopped: %v", err)
	}
}
