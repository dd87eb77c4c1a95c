package remote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/thejerf/suture/v4"
)

// A Node is a suture service: it serves under a supervisor and stops, closed
// for good, when the supervisor's context ends.
func TestNodeRunsUnderSuture(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Watchdog: -1})
	defer sys.Shutdown(context.Background())
	n := New(sys, Config{Name: "sutured", HeartbeatInterval: 50 * time.Millisecond})
	root := suture.New("root", suture.Spec{Timeout: 5 * time.Second})
	root.Add(n)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("node never listened under suture")
	}
	// It serves: another node asks an actor spawned through it.
	other := newTestNode(t, "other", Config{})
	n.RegisterKind("echo", echoKind)
	r, err := other.node.Spawn(ctxT(t), n.Addr(), "echo", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if v, err := other.sys.Ask(ctxT(t), r, "via suture"); err != nil || v != "via suture" {
		cancel()
		t.Fatalf("ask = %v, %v", v, err)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("supervisor returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor did not stop")
	}
	if err := n.Serve(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after the supervisor stopped = %v, want ErrClosed", err)
	}
}
