package remote

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

var (
	errRegistered   = errors.New("test: a registered application error")
	errUnregistered = errors.New("test: an unregistered application error")
)

func init() {
	if err := RegisterError("remote_test.errRegistered", errRegistered); err != nil {
		panic(err)
	}
}

// Application errors registered with RegisterError keep their identity
// across nodes, in ask replies (wrapped or not) and in Down reasons; others
// travel as text; the runtime's sentinels still win.
func TestRegisteredErrorsKeepIdentity(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "registered":
			return nil, fmt.Errorf("while doing it: %w", errRegistered)
		case "unregistered":
			return nil, errUnregistered
		case "both":
			return nil, errors.Join(errRegistered, actor.ErrTimeout)
		case "quit":
			return nil, c.Stop(c.Self(), errRegistered)
		}
		return msg, nil
	})
	_, err := a.sys.Ask(ctxT(t), r, "registered")
	var re *Error
	if !errors.Is(err, errRegistered) || !errors.As(err, &re) || re.Msg != "while doing it: "+errRegistered.Error() {
		t.Fatalf("registered error across nodes: %v (%T)", err, err)
	}
	if _, err := a.sys.Ask(ctxT(t), r, "unregistered"); errors.Is(err, errUnregistered) || err == nil || !errors.As(err, &re) || re.Msg != errUnregistered.Error() {
		t.Fatalf("unregistered error across nodes: %v", err)
	}
	if _, err := a.sys.Ask(ctxT(t), r, "both"); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("an error matching a runtime sentinel and a registered one: %v, want the runtime's", err)
	}
	// A Down reason.
	dn := make(chan actor.Down, 1)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, r)
	if _, err := a.sys.Ask(ctxT(t), r, "sync"); err != nil { // the monitor is in place
		t.Fatal(err)
	}
	if err := a.sys.Send(r, "quit"); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, dn, 10*time.Second, "the Down"); !errors.Is(d.Reason, errRegistered) {
		t.Fatalf("Down reason %v, want errRegistered", d.Reason)
	}
	// Registering again: the same pair is fine, another sentinel is not.
	if err := RegisterError("remote_test.errRegistered", errRegistered); err != nil {
		t.Fatalf("re-registering the same pair: %v", err)
	}
	if err := RegisterError("remote_test.errRegistered", errUnregistered); err == nil {
		t.Fatal("a name registered for another sentinel was accepted")
	}
	if err := RegisterError("", errUnregistered); err == nil {
		t.Fatal("an empty name was accepted")
	}
}

// A message larger than one write batch (maxBatch) sent on an idle
// connection arrives whole without waiting for later traffic: no heartbeat
// here to flush what the first, direct write left queued.
func TestLargeMessageOnIdleConnection(t *testing.T) {
	quiet := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", quiet)
	b := newTestNode(t, "b", quiet)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		if p, ok := msg.([]byte); ok {
			return len(p), nil
		}
		return msg, nil
	})
	big := make([]byte, 3*maxBatch+12345)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := a.sys.Ask(ctx, r, big)
		cancel()
		if err != nil || v != len(big) {
			t.Fatalf("round %d: ask with %d bytes = %v, %v", i, len(big), v, err)
		}
	}
}
