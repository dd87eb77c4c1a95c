package remote

import (
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/event"
)

// With Config.Events, a node reports the peers it reaches and loses, and
// the connections both ways, on the bus.
func TestNodeLifecycleEvents(t *testing.T) {
	bus := event.New(event.Config{})
	defer bus.Close()
	stream, err := event.SubscribeMany(bus, []event.Type{
		event.TypeOf[event.NodeUp](), event.TypeOf[event.NodeDown](),
		event.TypeOf[event.ConnOpened](), event.TypeOf[event.ConnClosed](),
	}, event.Buffer(64))
	if err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, "a", Config{Events: bus})
	b := newTestNode(t, "b", Config{})
	b.node.RegisterKind("echo", echoKind)
	r, err := a.node.Spawn(ctxT(t), b.node.Addr(), "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctxT(t), r, "x"); err != nil {
		t.Fatal(err)
	}
	next := func(what string) any {
		t.Helper()
		select {
		case e := <-stream.Out():
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", what)
			return nil
		}
	}
	// a dials b (ConnOpened + NodeUp), b dials a to reply (ConnOpened on a's
	// side, from b); the order between the two directions is not fixed.
	var up, outOpen, inOpen bool
	for !(up && outOpen && inOpen) {
		switch e := next("connection").(type) {
		case event.NodeUp:
			if e.Node != "b" || e.Addr != b.node.Addr() {
				t.Fatalf("NodeUp %+v", e)
			}
			up = true
		case event.ConnOpened:
			if e.Node != "b" || e.Local == "" || e.Remote == "" {
				t.Fatalf("ConnOpened %+v", e)
			}
			if e.Remote == b.node.Addr() {
				outOpen = true
			} else {
				inOpen = true
			}
		default:
			t.Fatalf("unexpected %T %+v before the peer went down", e, e)
		}
	}
	b.close() // b goes away: a loses its dialed connection (and b's)
	var down, outClosed bool
	for !(down && outClosed) {
		switch e := next("loss").(type) {
		case event.NodeDown:
			if e.Node != "b" || !errors.Is(e.Reason, ErrNodeDown) {
				t.Fatalf("NodeDown %+v", e)
			}
			down = true
		case event.ConnClosed:
			if e.Remote == b.node.Addr() {
				outClosed = true
			}
		case event.NodeUp, event.ConnOpened:
			t.Fatalf("unexpected %T %+v after the peer went down", e, e)
		}
	}
}
