package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/gateway"
)

// TestHandOverGoesOnPastABusyApp: a move or upgrade of one application
// runs here for longer than the drain can wait: the other applications'
// roots are handed over all the same, the busy one is reported busy, and
// the move's claim is not ended by the handover.
func TestHandOverGoesOnPastABusyApp(t *testing.T) {
	a, _, c, _, spec := handoverRig(t)
	zoo := spec
	zoo.Name = "zoo"
	zoo.Children = []AppChild{{Name: "z1", Kind: "kid", Node: "b", Args: map[string]any{"name": "z1"}, Shutdown: "1s"}}
	eventually(t, 20*time.Second, "zoo deployed", func() bool {
		return appCall(t, c, gateway.DeployApp{Spec: zoo}).(gateway.AppResult).Err() == nil
	})
	eventually(t, 20*time.Second, "zoo on a", func() bool { return !rootOf(a, "zoo").IsZero() })
	a.apps.mu.Lock()
	a.apps.claimed["shop"] = 0 // a move of shop's child runs, and will not end in time
	a.apps.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	hs, err := a.handOverRoots(ctx)
	if err == nil {
		t.Fatal("the busy application was reported handed over")
	}
	seen := 0
	for _, h := range hs {
		switch h.App {
		case "zoo":
			seen++
			if h.Err != nil {
				t.Errorf("zoo, not busy, was not handed over: %v", h.Err)
			}
		case "shop":
			seen++
			if !errors.Is(h.Err, errHandoverBusy) {
				t.Errorf("shop: %v, want busy", h.Err)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("outcomes %+v, want shop's and zoo's", hs)
	}
	a.apps.mu.Lock()
	_, moving := a.apps.claimed["shop"]
	a.apps.mu.Unlock()
	if !moving {
		t.Fatal("the handover ended the move's claim of shop")
	}
}

// TestHandOverUnclaimEndsOnlyItsClaim: a handover's claim, ended, is not
// ended again by a late unclaim once another handover claims the same
// application: a move or upgrade must not start under that one.
func TestHandOverUnclaimEndsOnlyItsClaim(t *testing.T) {
	a := &apps{claimed: map[string]uint64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := a.claimApp(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	if _, err := a.claimApp(sctx, "x"); !errors.Is(err, errHandoverBusy) {
		t.Fatalf("claimed twice: %v", err)
	}
	first()
	second, err := a.claimApp(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	first() // late, or twice: not second's
	if _, ok := a.tryClaim("x"); ok {
		t.Fatal("the first claim's end ended the second's: a move or upgrade of x may start under it")
	}
	second()
	if _, ok := a.tryClaim("x"); !ok {
		t.Fatal("the second claim's end did not end it")
	}
}
