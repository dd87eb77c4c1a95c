package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/supervisor"
)

// TestMoveRefusedByAnExitingRootResumes: the root lets go of its children
// (Detach, as for a handover) while a child's move is under way, and
// answers the move's ReplaceChild with ErrExiting: a definite refusal,
// nothing replaced. The old instance resumes (not killed with the new
// one), its state kept.
func TestMoveRefusedByAnExitingRootResumes(t *testing.T) {
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	inc(t, a.sys, child.ref)
	to := other(child.node)
	root := rootOf(a, "store")
	moveImportedHook = func(actor.Ref) {
		if _, err := a.sys.Ask(context.Background(), root, supervisor.Detach{}); err != nil {
			t.Errorf("detach: %v", err)
		}
	}
	defer func() { moveImportedHook = nil }()
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: to})
	if r.Result.Code != gateway.MoveFailed || !strings.Contains(r.Err().Error(), supervisor.ErrExiting.Error()) {
		t.Fatalf("move: %v, want a refusal with %v", r.Err(), supervisor.ErrExiting)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.sys.Ask(ctx, child.ref, "inc"); err != nil {
		t.Fatalf("the old instance was not resumed after a definite refusal (ErrExiting): %v", err)
	}
}

// TestMoveWaitsOutAHandover: while a root's handover claims its
// application, a move of one of its children is refused as busy (the
// root, letting go of its children, would refuse the new instance); the
// claim ended, it moves.
func TestMoveWaitsOutAHandover(t *testing.T) {
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unclaim, err := a.apps.claimApp(ctx, "store")
	if err != nil {
		t.Fatal(err)
	}
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: other(child.node)})
	if r.Result.Code != gateway.AppBusy {
		t.Fatalf("move during a handover: %v, want busy", r.Err())
	}
	// A handover waits for a move (or upgrade) under way.
	a.apps.mu.Lock()
	a.apps.claimed["other"] = 0
	a.apps.mu.Unlock()
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	if _, err := a.apps.claimApp(sctx, "other"); err == nil {
		t.Fatal("a handover claimed an application a move runs")
	}
	unclaim()
	if r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: other(child.node)}); r.Err() != nil {
		t.Fatalf("move after the handover's claim: %v", r.Err())
	}
}

// TestHandOverExcludesAMove: a move of a child asked while its root is
// handed over (here: once the root has let go of its children) is
// refused as busy, not tried against a root that would refuse it.
func TestHandOverExcludesAMove(t *testing.T) {
	a, _, _, _, _ := handoverRig(t)
	codes := make(chan int, 1)
	handoverHoldingHook = func([]handoverChild, map[string]actor.Ref) {
		r := moveCall(t, a, gateway.MoveChild{App: "shop", Child: "w1", To: "c"})
		codes <- r.Result.Code
	}
	t.Cleanup(func() { handoverHoldingHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.handOverRoots(ctx); err != nil {
		t.Fatalf("handover: %v", err)
	}
	select {
	case c := <-codes:
		if c != gateway.AppBusy {
			t.Fatalf("a move during the handover: code %d, want %d", c, gateway.AppBusy)
		}
	case <-ctx.Done():
		t.Fatal("no move tried")
	}
}

// TestMoveCancelsALostImport: the target made the new instance, but its
// answer was lost (mvUnknown): the mover cancels the move's import there,
// so the instance made is killed (not left tied to the root, with the
// state, beside the old one, which resumes); an import for a cancelled
// move is refused, and only a member may cancel.
func TestMoveCancelsALostImport(t *testing.T) {
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	n := inc(t, a.sys, child.ref)
	var made actor.Ref
	moveImportLostHook = func(r childReleased) childReleased {
		made = r.Ref
		return childReleased{Code: mvUnknown, Msg: "lost (test)"}
	}
	defer func() { moveImportLostHook = nil }()
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: other(child.node)})
	if r.Result.Code != gateway.MoveTargetDown {
		t.Fatalf("move: %v, want the target's outcome unknown", r.Err())
	}
	t.Logf("move: %v", r.Err())
	if made.IsZero() {
		t.Fatal("no instance made")
	}
	eventually(t, 10*time.Second, "the instance made for the cancelled move killed", func() bool { return !isAliveAny(a, made) })
	if got := inc(t, a.sys, child.ref); got != n+1 {
		t.Fatalf("the old instance resumed with %d, want %d", got, n+1)
	}
	// Cancelled: a late import for the move is refused, here on a.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.sys.Ask(ctx, a.gw.ref, localCancel{cancelImport{Move: "m1"}}); err != nil {
		t.Fatal(err)
	}
	v, err := a.sys.Ask(ctx, a.gw.ref, localImport{spawnImport{Kind: "tally", Args: map[string]any{"name": "late"}, Move: "m1"}})
	if rel, _ := v.(childReleased); err != nil || rel.Code != mvFailed {
		t.Fatalf("an import for a cancelled move: %+v, %v", v, err)
	}
}

func isAliveAny(a *Daemon, ref actor.Ref) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.sys.Ask(ctx, ref, "inc")
	return err == nil
}

// TestImportsBounded: a gateway remembers at most maxImports moves'
// imports; one import per move; a cancelled move's import is refused,
// and a cancel past the bound is refused too; a record ends with its
// timer.
func TestImportsBounded(t *testing.T) {
	r := newTiesRig(t)
	var im imports
	do := func(f func(c *actor.Context) any) any { return r.do(f) }
	for i := range maxImports {
		if ok, _ := do(func(c *actor.Context) any { _, ok := im.begin(c, fmt.Sprint(i)); return ok }).(bool); !ok {
			t.Fatalf("import %d refused within the bound", i)
		}
	}
	if ok, _ := do(func(c *actor.Context) any { _, ok := im.begin(c, "past"); return ok }).(bool); ok {
		t.Fatal("an import past the bound")
	}
	if err, _ := do(func(c *actor.Context) any { return im.cancel(c, "past") }).(error); !errors.Is(err, errTooManyImports) {
		t.Fatalf("a cancel past the bound: %v", err)
	}
	if ok, _ := do(func(c *actor.Context) any { _, ok := im.begin(c, "0"); return ok }).(bool); ok {
		t.Fatal("a second import for one move")
	}
	do(func(*actor.Context) any { im.forget(importForget{Move: "0", Seq: im.m["0"].seq}); return nil })
	if err, _ := do(func(c *actor.Context) any { return im.cancel(c, "0") }).(error); err != nil {
		t.Fatal(err)
	}
	if ok, _ := do(func(c *actor.Context) any { _, ok := im.begin(c, "0"); return ok }).(bool); ok {
		t.Fatal("an import for a cancelled move")
	}
}

// A root's refusal after the hold was armed, then a resume that fails:
// the armed hold kills the old instance at its bound (its state lost),
// and the reply says so rather than a plain refusal.
func TestMoveRefusedResumeFailedSaysKilled(t *testing.T) {
	defer func(m time.Duration) { holdMax = m }(holdMax)
	holdMax = 3 * time.Second
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	root := rootOf(a, "store")
	moveImportedHook = func(actor.Ref) {
		if _, err := a.sys.Ask(context.Background(), root, supervisor.Detach{}); err != nil {
			t.Errorf("detach: %v", err)
		}
	}
	moveReleaseHook = func(m childRelease, real func() childReleased) childReleased {
		if m.Resume {
			return childReleased{Code: mvUnknown, Msg: "test: no answer"}
		}
		return real()
	}
	defer func() { moveImportedHook, moveReleaseHook = nil, nil }()
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: other(child.node)})
	if r.Result.Code != gateway.MoveFailed || !strings.Contains(r.Result.Msg, "did not take the new instance") ||
		!strings.Contains(r.Result.Msg, "not resumed") || !strings.Contains(r.Result.Msg, "its state lost") {
		t.Fatalf("move: %v, want a refusal that says the old instance is killed at its bound", r.Err())
	}
	eventually(t, holdMax+10*time.Second, "the old instance killed at its armed hold's bound", func() bool {
		return !isAliveAny(a, child.ref)
	})
}

// An arm whose answer is lost (applied all the same), then a resume that
// fails: the reply says the old instance may be killed at its bound (it
// is), not that it resumes by itself.
func TestMoveArmUnansweredSaysMaybeKilled(t *testing.T) {
	defer func(m time.Duration) { holdMax = m }(holdMax)
	holdMax = 3 * time.Second
	f := &moveFixture{}
	a, _, _ := moveCluster(t, f, storeSpec("store", "tally", "t1"))
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	child := kids["t1"]
	moveReleaseHook = func(m childRelease, real func() childReleased) childReleased {
		switch {
		case m.Arm:
			real() // applied, its answer lost
			return childReleased{Code: mvUnknown, Msg: "test: answer lost"}
		case m.Resume:
			return childReleased{Code: mvUnknown, Msg: "test: no answer"}
		}
		return real()
	}
	defer func() { moveReleaseHook = nil }()
	r := moveCall(t, a, gateway.MoveChild{App: "store", Child: "t1", To: other(child.node)})
	if r.Result.Code != gateway.MoveFailed || !strings.Contains(r.Result.Msg, "arming the hold") ||
		!strings.Contains(r.Result.Msg, "may have been armed") {
		t.Fatalf("move: %v, want a failed arm that says the old instance may be killed at its bound", r.Err())
	}
	eventually(t, holdMax+10*time.Second, "the old instance killed at its armed hold's bound", func() bool {
		return !isAliveAny(a, child.ref)
	})
}
