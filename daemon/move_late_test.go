package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// A move whose ReplaceChild the root defers past the mover's wait (the
// root busy restarting another child on another daemon): the outcome is
// unknown, so both instances are killed, and the root, once it comes to
// the request, refuses it (past its deadline) and restarts the child
// afresh. The old instance must not run on, resumed, beside the root's.
func TestMoveChildReplaceUnanswered(t *testing.T) {
	f := &moveFixture{}
	a, b, c := moveCluster(t, f, storeSpec("store", "tally", "t1", "t2"))
	ds := map[string]*Daemon{"a": a, "b": b, "c": c}
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child, busy := kids["t1"], kids["t2"]
	inc(t, a.sys, child.ref)
	to := other(child.node, "a")

	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() { close(entered) })
		<-gate
	}
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	defer open()
	oldTimeout := replaceTimeout
	replaceTimeout = 300 * time.Millisecond
	defer func() { replaceTimeout = oldTimeout }()
	var newRef actor.Ref
	moveImportedHook = func(ref actor.Ref) {
		newRef = ref
		// The root restarts t2 remotely, its start held: an operation
		// under way, behind which the root defers the ReplaceChild.
		rootSpawnHook.Store(&hook)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.sys.Kill(ctx, busy.ref); err != nil {
			t.Errorf("killing t2: %v", err)
		}
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Errorf("the root did not start t2 again")
		}
	}
	defer func() { moveImportedHook = nil; rootSpawnHook.Store(nil) }()

	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "both instances were killed") {
		t.Errorf("move: %v", r.Err())
	}
	rootSpawnHook.Store(nil)
	open()
	// The root comes to the deferred request (before this listing, asked
	// after it) and runs t1: no other instance of t1 runs beside it.
	var now placedChild
	eventually(t, 30*time.Second, "t1 running", func() bool {
		kids, err := placed(a, "store")
		if err != nil {
			return false
		}
		k, ok := kids["t1"]
		now = k
		return ok
	})
	if now.ref != child.ref && isAlive(ds[child.node], child.ref) {
		t.Errorf("the old instance %v runs on beside the root's t1 %v", child.ref, now.ref)
	}
	if now.ref != newRef && isAlive(ds[to], newRef) {
		t.Errorf("the new instance %v runs on beside the root's t1 %v", newRef, now.ref)
	}
	if now.ref == child.ref || now.ref == newRef {
		t.Errorf("the root runs %v, not t1 afresh", now.ref)
	}
}
