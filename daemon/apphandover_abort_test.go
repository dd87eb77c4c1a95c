package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"

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

// TestHandOverFailedBeforeItsReleaseWaitsForTheDrop: as above, with the
// drop of the held w1 slow (its gateway far): the release without the
// records, which lets the next holder start w1 afresh, is proposed only
// once the drop is answered, so the held w1 is dead when the fresh one
// starts.
func TestHandOverFailedBeforeItsReleaseWaitsForTheDrop(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	driver.BeforeReleaseHook = func(string) bool { return true }
	dropHeldHook = func(heldKid) { time.Sleep(2 * time.Second) } // a slow drop, not a synchronisation
	t.Cleanup(func() { driver.BeforeReleaseHook, dropHeldHook = nil, nil })
	heldAlive := make(chan bool, 1)
	log.setOnStart(func(name string, k int) {
		if name == "w1" && k == n+1 {
			heldAlive <- isAlive(b, first)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.handOverRoots(ctx); err == nil {
		t.Fatal("the handover succeeded although it failed before its release")
	}
	select {
	case alive := <-heldAlive:
		if alive {
			t.Fatalf("w1's fresh copy started while the held %v still ran", first)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("w1 was not started afresh")
	}
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

// TestHandoverRecordsFitWithTheirClaims: the records a root's handover
// holds children for still fit in the release once each carries its
// hold's claim: a child held whose record fell off the release would run
// beside the new root's fresh copy for its hold's minute.
func TestHandoverRecordsFitWithTheirClaims(t *testing.T) {
	var recs []handoverChild
	for i := range 200 {
		recs = append(recs, handoverChild{ID: fmt.Sprintf("child-%03d", i), Kind: "counter", Node: "node-b", Addr: "127.0.0.1:40000", Wire: actor.WireID{Slot: uint32(i), Gen: 1, Secret: [16]byte{1, 2, 3}}})
	}
	fit := fitHandover(recs)
	if _, bare := encodeHandover(recs); len(fit) == 0 || len(fit) >= len(bare) {
		t.Fatalf("%d records fit with their claims, %d without: the claims must cost room", len(fit), len(bare))
	}
	held := slices.Clone(fit)
	for i := range held {
		held[i].Claim = unguessable()
	}
	b, kept := encodeHandover(held)
	if len(kept) != len(held) || len(b) > appreg.MaxHandoverSize {
		t.Fatalf("%d of %d held children in the release (%d bytes)", len(kept), len(held), len(b))
	}
}

// TestHeldChildOffTheReleaseIsDropped: a child held whose record does
// not fit in the release (here made too large once held) is in no
// release: it is dropped before the new root starts it afresh, not kept
// for a watch that sees a release and nothing wrong.
func TestHeldChildOffTheReleaseIsDropped(t *testing.T) {
	a, b, _, log, _ := handoverRig(t)
	first, n := log.last("w1")
	handoverHeldHook = func(held []handoverChild) {
		for i := range held {
			held[i].Kind = strings.Repeat("k", appreg.MaxHandoverSize)
		}
	}
	t.Cleanup(func() { handoverHeldHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	t.Logf("handover: %+v, %v", hs, err)
	eventually(t, 30*time.Second, "w1 started afresh", func() bool { return len(log.all("w1")) > n })
	// The drop is asked before the release: a few seconds at most, not
	// the hold's minute.
	eventually(t, 5*time.Second, "the held w1, off the release, dead", func() bool { return !isAlive(b, first) })
}
