package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// A move's bounds nest: the steps past the new instance (moveTail) fit in
// the whole move's bound with room for the hold, import and alive check
// before; a failure before the arm (a lost import's cancel, then the
// resume) fits in the tail; a daemon that passes a move on waits past the
// root's whole bound, and a gateway's MoveChild past that.
func TestMoveBoundsNest(t *testing.T) {
	release := releaseTimeout + moveAskSlack
	before := 2*time.Second /* registry */ + 5*time.Second /* children */ + holdTimeout + moveAskSlack + importTimeout + aliveTimeout
	if got := moveTail() + before; got > moveTimeout {
		t.Errorf("a move's steps take up to %v, past its bound %v", got, moveTimeout)
	}
	if got := importTimeout + release; got > moveTail() {
		t.Errorf("a lost import's cancel and the resume take %v, past the reserve %v", got, moveTail())
	}
	if got := release + killTimeout + release; got > moveTail() {
		t.Errorf("a failed arm's kill and resume take %v, past the reserve %v", got, moveTail())
	}
	if moveAtTimeout <= moveTimeout {
		t.Errorf("a forwarding daemon waits %v, not past the root's bound %v", moveAtTimeout, moveTimeout)
	}
	if moveCallTimeout <= moveAtTimeout+2*time.Second {
		t.Errorf("a gateway's MoveChild is bounded by %v, not past a registry query and the forward's wait %v", moveCallTimeout, moveAtTimeout)
	}
}

// A move whose steps before the root's ask (an import that is slow) use
// up its time less what the later steps need stops there: the new
// instance is killed and the old one resumes, within the move's bound;
// the root is not asked (its answer, and the forward or kills after it,
// would run past the bound).
func TestMoveStopsInTimeForItsLastSteps(t *testing.T) {
	shorten(t, 300*time.Millisecond, time.Second)
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	want := inc(t, a.sys, child.ref) + 1
	to := other(child.node)
	start := time.Now()
	bound := moveTail() + 3*time.Second
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(bound))
	defer cancel()
	var made actor.Ref
	moveImportedHook = func(ref actor.Ref) {
		made = ref
		// The import is slow: it ends past the steps' share of the bound.
		time.Sleep(time.Until(start.Add(bound - moveTail() + 200*time.Millisecond)))
	}
	asked := false
	moveReplaceHook = func(time.Time) { asked = true }
	defer func() { moveImportedHook, moveReplaceHook = nil, nil }()
	r := a.MoveChild(ctx, "store", "t1", to)
	took := time.Since(start)
	// Stopped by the alive check's context, or before the arm.
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "deadline exceeded") {
		t.Fatalf("move: %v, want it stopped before the root is asked", r.Err())
	}
	if asked {
		t.Error("the root was asked with too little time left for the steps after it")
	}
	if took > bound {
		t.Errorf("the move took %v, past its bound %v", took, bound)
	}
	if n := inc(t, a.sys, child.ref); n != want {
		t.Errorf("the old instance counts %d, want %d (resumed with its state)", n, want)
	}
	if !made.IsZero() && isAliveAny(a, made) {
		t.Error("the new instance runs on")
	}
}

// A daemon that does not run the root passes a move on only if it can wait
// past the root's whole bound for it: otherwise it could report as not
// tried a move that happened. Refused, nothing is held.
func TestMoveAtNeedsTheRootsWholeBound(t *testing.T) {
	f := &moveFixture{}
	a, b, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	ctx, cancel := context.WithTimeout(context.Background(), moveTimeout)
	defer cancel()
	r := b.MoveChild(ctx, "store", "t1", other(child.node))
	if r.Result.Code != gateway.AppRetry || !strings.Contains(r.Result.Msg, "too little time left") {
		t.Fatalf("move through b with %v left: %+v, want AppRetry", moveTimeout, r.Result)
	}
	now, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	if now["t1"].ref != child.ref {
		t.Errorf("the child moved: %v, was %v", now["t1"].ref, child.ref)
	}
	inc(t, a.sys, child.ref) // not held
}
