package actor

import (
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/internal/seam"

	"github.com/actord/actord/loop"
)

// lcActor reports its Terminate and, on "block", holds its loop until
// release is closed.
type lcActor struct {
	terminated chan error
	blocked    chan struct{}
	release    chan struct{}
}

func (a *lcActor) Receive(_ *Context, msg any) (any, error) {
	if msg == "block" {
		a.blocked <- struct{}{}
		<-a.release
	}
	return msg, nil
}

func (a *lcActor) Terminate(_ *Context, reason error) { a.terminated <- reason }

type lcOutcome struct {
	v   any
	err error
}

// TestWireLifecycleLocal: a lifecycle request from another node runs the
// same code as a local StopAsync: its deadline counts from its arrival on
// the loop's clock, and a loop that gets to it late kills (no Terminate,
// ErrKilled as the value); in time, a graceful stop; a target that did
// not resolve answers as a dead actor.
func TestWireLifecycleLocal(t *testing.T) {
	clock := loop.NewFakeClock(time.Unix(1000, 0))
	s := tsSystem(t, Config{Loops: 1, Clock: clock, Watchdog: -1})
	a := &lcActor{terminated: make(chan error, 1), blocked: make(chan struct{}, 1), release: make(chan struct{})}
	r := tsSpawn(t, s, func() Actor { return a })
	w := (&s.wire)
	out := make(chan lcOutcome, 1)
	done := func(v any, err error) { out <- lcOutcome{v, err} }

	// Late: the loop is held past the deadline.
	if err := s.Send(r, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, a.blocked, "the handler holding the loop")
	if err := w.LifecycleLocal(r, seam.LifecycleRequest{Op: seam.LifecycleStop, Reason: ErrShutdown, Timeout: time.Second}, done); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	close(a.release)
	if o := tsRecv(t, out, "the late stop's outcome"); o.v != ErrKilled || o.err != nil {
		t.Fatalf("late stop: %v, %v; want the value ErrKilled", o.v, o.err)
	}
	tsNone(t, a.terminated, "a Terminate after a kill")

	// In time: a graceful stop with the reason.
	b := &lcActor{terminated: make(chan error, 1)}
	r2 := tsSpawn(t, s, func() Actor { return b })
	if err := w.LifecycleLocal(r2, seam.LifecycleRequest{Op: seam.LifecycleStop, Reason: ErrShutdown, Timeout: time.Second}, done); err != nil {
		t.Fatal(err)
	}
	if o := tsRecv(t, out, "the stop's outcome"); o.v != ErrShutdown || o.err != nil {
		t.Fatalf("stop: %v, %v; want the value ErrShutdown", o.v, o.err)
	}
	if why := tsRecv(t, b.terminated, "Terminate"); why != ErrShutdown {
		t.Fatalf("Terminate(%v)", why)
	}

	// Dead targets: a stop answers ErrDead as the value, the others fail.
	for _, target := range []Ref{r2, {}} {
		if err := w.LifecycleLocal(target, seam.LifecycleRequest{Op: seam.LifecycleStop}, done); err != nil {
			t.Fatal(err)
		}
		if o := tsRecv(t, out, "a dead stop"); o.v != ErrDead || o.err != nil {
			t.Fatalf("stop of dead %v: %v, %v", target, o.v, o.err)
		}
		if err := w.LifecycleLocal(target, seam.LifecycleRequest{Op: seam.LifecycleAlive}, done); err != nil {
			t.Fatal(err)
		}
		if o := tsRecv(t, out, "a dead alive"); !errors.Is(o.err, ErrDead) {
			t.Fatalf("alive of dead %v: %v, %v", target, o.v, o.err)
		}
	}
	// An op this node does not know fails and changes nothing.
	r3 := tsSpawn(t, s, tsEcho())
	if err := w.LifecycleLocal(r3, seam.LifecycleRequest{Op: 99}, done); err != nil {
		t.Fatal(err)
	}
	if o := tsRecv(t, out, "an unknown op"); !errors.Is(o.err, ErrUnknownMessage) {
		t.Fatalf("unknown op: %v, %v", o.v, o.err)
	}
	if _, err := tsAsk(t, s, r3, "still here"); err != nil {
		t.Fatalf("after an unknown op: %v", err)
	}
}
