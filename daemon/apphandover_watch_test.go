package daemon

import (
	"testing"
	"time"

	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
)

// reassigned tells an assignment past the release's generation (or a
// removal) from a release and from an application not known yet.
func TestHandOverReassigned(t *testing.T) {
	st := func(a ...appreg.App) driver.Status { return driver.Status{Apps: a} }
	for _, tc := range []struct {
		name string
		st   driver.Status
		want bool
	}{
		{"not listed (a replica behind)", st(), false},
		{"released, not moved on", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 5, HandoverGen: 5}), false},
		{"assigned afresh", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 6, HandoverGen: 5}), true},
		{"assigned instead of the release", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 5, HandoverGen: 3}), true},
		{"not moved yet", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 4, HandoverGen: 3}), false},
		{"released again further", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 7, HandoverGen: 7}), false},
		{"removed", st(appreg.App{Name: "x", Desired: appreg.Removed, Gen: 5, HandoverGen: 5}), true},
	} {
		if got := reassigned(tc.st, "x", 5); got != tc.want {
			t.Errorf("%s: reassigned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A watch of held children ends when its daemon stops, and the stop
// waits for it: no goroutine of the daemon outlives it.
func TestHandOverWatchJoinedOnStop(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	d := start(t, cfg)
	// A child whose gateway is not known: its query fails, and the watch
	// asks again until its end.
	w := d.watchHandOff("shop", 3, []heldKid{{node: "nowhere", ref: d.gw.ref}})
	select {
	case <-w.done:
		t.Fatalf("the watch ended by itself: %v", w.err)
	case <-time.After(100 * time.Millisecond): // it goes on: a failed query is no outcome
	}
	if err := d.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the daemon stopped before the watch ended")
	}
	if w.err == nil {
		t.Error("a watch ended by the daemon's stop reported the children adopted")
	}
}
