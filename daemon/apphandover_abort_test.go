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
