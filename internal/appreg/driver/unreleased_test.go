package driver

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
)

// unrelRunner is the sim's runner, logging, by node and application, its
// Unreleased and Stop calls in order (the sim runs one thing at a time).
type unrelRunner struct {
	runner
	log map[string][]string
}

func (r unrelRunner) Unreleased(c *actor.Context, app string, dropped func(*actor.Context)) {
	r.log[r.node+" "+app] = append(r.log[r.node+" "+app], "unreleased")
	dropped(c)
}

func (r unrelRunner) Stop(c *actor.Context, app string) {
	r.log[r.node+" "+app] = append(r.log[r.node+" "+app], "stop")
	r.runner.Stop(c, app)
}

func (r unrelRunner) HandOver(c *actor.Context, app string, done func(*actor.Context, []byte, bool)) {
	r.runner.Stop(c, app)
	done(c, []byte("records of "+r.node), true)
}

func unrelCluster(t *testing.T, seed uint64) (*simCluster, map[string][]string) {
	log := map[string][]string{}
	c := newSimCluster(t, seed, 3, func(cfg *Config) {
		cfg.Runner = unrelRunner{runner: cfg.Runner.(runner), log: log}
	})
	c.propose(appreg.Command{Op: appreg.OpDeploy, App: "a", Prefer: []string{"n1"}})
	c.runUntil("a on n1", 20*time.Second, func() bool { return c.runsOn("a", "n1") })
	return c, log
}

// TestHandoverFailedBeforeItsProposalIsUnreleased: a handover that fails
// after the Runner's done but before the driver proposed the release with
// its records tells the Runner (Unreleased), before it stops what is left:
// the release proposed instead records nothing, and the new holder starts
// afresh what the records named.
func TestHandoverFailedBeforeItsProposalIsUnreleased(t *testing.T) {
	c, log := unrelCluster(t, 80)
	BeforeReleaseHook = func(string) bool { return true }
	t.Cleanup(func() { BeforeReleaseHook = nil })
	rel := askLater(t, c.node("n1"), c.drivers["n1"], Release{App: "a", To: "n3"}, 20*time.Second)
	c.runUntil("the release answered", 30*time.Second, func() bool { return len(rel) > 0 })
	if err := <-rel; !errors.Is(err, ErrHandoverFailed) {
		t.Fatalf("release: %v, want ErrHandoverFailed", err)
	}
	if got := log["n1 a"]; !slices.Equal(got, []string{"unreleased", "stop"}) {
		t.Fatalf("n1's runner got %v, want Unreleased then Stop", got)
	}
}

// TestHandoverFailedAfterItsProposalIsNotUnreleased: once the driver has
// proposed the release with the records, a handover that fails (here the
// holder is cut off, and its lease ends) is stopped, not Unreleased: the
// release may have committed, and the new holder be adopting what it
// names.
func TestHandoverFailedAfterItsProposalIsNotUnreleased(t *testing.T) {
	c, log := unrelCluster(t, 81)
	n1 := c.node("n1")
	rel := askLater(t, n1, c.drivers["n1"], Release{App: "a", To: "n3"}, 20*time.Second)
	c.w.Partition(n1, c.node("n2"))
	c.w.Partition(n1, c.node("n3"))
	c.runUntil("the release answered", 30*time.Second, func() bool { return len(rel) > 0 })
	if err := <-rel; err != nil {
		t.Fatalf("release: %v, want proposed", err)
	}
	c.runUntil("n1's handover stopped", 30*time.Second, func() bool { return len(log["n1 a"]) > 0 })
	if got := log["n1 a"]; slices.Contains(got, "unreleased") {
		t.Fatalf("n1's runner got %v: Unreleased after the release was proposed", got)
	}
}
