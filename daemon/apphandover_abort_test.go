package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg/driver"
)

// TestHandOverFailedBeforeItsReleaseDropsHeld: the runner has given the
// driver the records of the held children (done), but the handover fails
// before the driver proposes the release with them (a lease's end seen
// while that proposal was queued behind a busy replica): the driver
// proposes a release without them, and the new holder starts every child
// afresh. The held instance must be gone by then, not kept for a watch
// that sees nothing wrong with that release (it is a release).
func TestHandOverFailedBeforeItsReleaseDropsHeld(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	driver.BeforeReleaseHook = func(string) bool { return true }
	t.Cleanup(func() { driver.BeforeReleaseHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.handOverRoots(ctx); err == nil {
		t.Fatal("the handover succeeded although it failed before its release")
	}
	eventually(t, 40*time.Second, "w1 started afresh", func() bool { return len(log.all("w1")) > n })
	// The drop was asked before the release was proposed: a few seconds
	// at most, not the hold's minute.
	eventually(t, 5*time.Second, "the held w1 dead beside the fresh one", func() bool { return !isAlive(b, first) })
}

// TestHandOverOfAStoppedAppDropsHeld: the application is stopped while
// its root is handed over, once its children are held: the release cannot
// commit, the handover fails after the driver had the records, and the
// watch must take the stop as the end of the handover (no root will adopt
// them), not keep the held children for the hold's minute.
func TestHandOverOfAStoppedAppDropsHeld(t *testing.T) {
	a, b, c, log, _ := handoverRig(t)
	first, _ := log.last("w1")
	stopped := make(chan struct{})
	handoverHeldHook = func([]handoverChild) {
		defer close(stopped)
		if err := appCall(t, c, gateway.AppOp{App: "shop", Op: "stop"}).(gateway.AppResult).Err(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if _, err := a.handOverRoots(ctx); err == nil {
		t.Fatal("the handover of a stopped application succeeded")
	}
	<-stopped
	eventually(t, 10*time.Second, "the stopped application's held w1 dead", func() bool { return !isAlive(b, first) })
}

// TestAdoptionAnsweredTooLateIsAbandoned: the new root's adoption of w1
// was made by its gateway, but its answer is lost: the root will start w1
// afresh, so the adopted instance, tied to the root, is abandoned (killed)
// first, not left to run beside the fresh copy until the root ends.
func TestAdoptionAnsweredTooLateIsAbandoned(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	adoptAnswerHook = func(err error) error {
		if err == nil {
			return context.DeadlineExceeded // the tie made, its answer lost
		}
		return err
	}
	t.Cleanup(func() { adoptAnswerHook = nil })
	heldAlive := make(chan bool, 1)
	log.setOnStart(func(name string, k int) {
		if name == "w1" && k == n+1 {
			heldAlive <- isAlive(b, first)
		}
	})
	t.Cleanup(func() { log.setOnStart(nil) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	t.Logf("handover: %+v, %v", hs, err)
	select {
	case alive := <-heldAlive:
		if alive {
			t.Fatalf("w1's fresh copy started while the instance tied to the new root, %v, still ran", first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("w1 not started afresh by b's root")
	}
	if isAlive(b, first) {
		t.Fatalf("the adopted-but-unanswered w1 %v runs beside the fresh one", first)
	}
}
