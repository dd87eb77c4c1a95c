package daemon

import (
	"context"
	"testing"
	"time"

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
