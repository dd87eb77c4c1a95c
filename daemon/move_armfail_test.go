package daemon

import (
	"context"
	"testing"
	"time"
)

// TestFailedArmResumesAtTheBound: an arm that fails leaves the hold
// unarmed. The mover then resumes the child without asking the root, and
// says it resumes at its hold's bound should that resume fail: the bound
// must resume it with its state, not kill it as an armed hold.
func TestFailedArmResumesAtTheBound(t *testing.T) {
	defer func(m time.Duration) { holdMax = m }(holdMax)
	holdMax = time.Second
	f := &moveFixture{}
	d := start(t, f.config(t, "a"))
	ref := appCall(t, d, SpawnKind{Kind: "tally", Args: map[string]any{"name": "t"}}).(SpawnResult).Ref
	if n := inc(t, d.System(), ref); n != 1 {
		t.Fatalf("first inc: %d", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held := d.holdChild(ctx, childHold{Ref: ref, Kind: "tally"})
	if held.Code != mvOK {
		t.Fatalf("hold: %+v", held)
	}
	done, stop := context.WithCancel(context.Background())
	stop() // the arm's wait ends at once: it fails
	if r := d.releaseChild(done, childRelease{Token: held.Token, Arm: true}); r.Code == mvOK {
		t.Fatalf("arm with an ended context: %+v, want it failed", r)
	}
	// No resume: the bound ends the hold; the child answers on from its
	// state (2), where an armed hold's bound would have killed it.
	if n := inc(t, d.System(), ref); n != 2 {
		t.Fatalf("after the bound: %d, want 2 (resumed with its state)", n)
	}
}
