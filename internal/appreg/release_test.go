package appreg

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A release moves the assignment as a compare-and-set on the holder's
// generation, records the handover for the next generation only, and is
// clean only when every accepted renewal of the generation was the
// releasing process's.
func TestReleaseIsCompareAndSetAndCleanOnlyForOneIncarnation(t *testing.T) {
	setup := func(incs ...uint64) *State {
		s := NewState()
		mustApply(t, s, Command{Op: OpDeploy, App: "a"})
		mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1"})
		for _, inc := range incs {
			mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second, Inc: inc})
		}
		return s
	}
	rel := Command{Op: OpRelease, App: "a", Node: "n1", Gen: 1, Inc: 7, To: "n2", Clean: true, Handover: []byte("kids")}
	for _, tc := range []struct {
		name  string
		incs  []uint64
		clean bool
	}{
		{"own renewals", []uint64{7, 7}, true},
		{"no renewal of its generation", nil, false},
		{"another process renewed last", []uint64{7, 8}, false},
		{"another process renewed first", []uint64{8, 7}, false},
		{"only another process renewed", []uint64{8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(tc.incs...)
			mustApply(t, s, rel)
			a, _ := s.App("a")
			if a.Node != "n2" || a.Gen != 2 || a.HandoverGen != 2 || string(a.Handover) != "kids" || a.ReleasedBy != "n1" {
				t.Fatalf("after release: %+v", a)
			}
			if got := a.CleanGen == a.Gen; got != tc.clean {
				t.Fatalf("clean %v, want %v (%+v)", got, tc.clean, a)
			}
			// The same release again (a duplicate, or one proposed again
			// and committed late) is refused: the generation moved on.
			if err := s.Apply(s.Index()+1, rel); !errors.Is(err, ErrNotAssigned) {
				t.Fatalf("duplicate release: %v, want ErrNotAssigned", err)
			}
		})
	}
	s := setup(7)
	bad := rel
	bad.To = "n1"
	if err := s.Apply(s.Index()+1, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("release to itself: %v", err)
	}
	bad = rel
	bad.Handover = []byte(strings.Repeat("x", MaxHandoverSize+1))
	if _, err := EncodeCommand(bad); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized handover: %v", err)
	}
	mustApply(t, s, Command{Op: OpStop, App: "a"})
	if err := s.Apply(s.Index()+1, rel); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("release while stopped: %v", err)
	}
}

// release holds app on node from and releases it to node to, as a
// daemon's driver does once the instance has stopped; it returns the
// generation released.
func (c *tcluster) release(app, from, to string, handover []byte) uint64 {
	c.t.Helper()
	return c.releaseEnded(app, from, to, handover, true)
}

// releaseEnded is release, saying whether the instance is known to have
// ended.
func (c *tcluster) releaseEnded(app, from, to string, handover []byte, ended bool) uint64 {
	c.t.Helper()
	gen := c.hold(app, from)
	c.releaseHeld(app, from, to, gen, handover, ended)
	return gen
}

// hold holds app on node from (Hold): its instance runs on, for the
// checker, until releaseHeld says it ended, or until its lease ends.
func (c *tcluster) hold(app, from string) uint64 {
	c.t.Helper()
	n := c.node(from)
	gen, err := n.r.Hold(app, n.nodeNow(c))
	if err != nil {
		c.t.Fatalf("hold %s on %s: %v", app, from, err)
	}
	if n.r.MayRun(app, n.nodeNow(c)) {
		c.t.Fatalf("%s still may run %s after Hold", from, app)
	}
	c.holding[app] = from
	return gen
}

// releaseHeld releases app, held on from in generation gen; ended says
// whether its instance has ended (then the checker no longer counts it).
func (c *tcluster) releaseHeld(app, from, to string, gen uint64, handover []byte, ended bool) {
	c.t.Helper()
	n := c.node(from)
	if ended {
		delete(c.holding, app)
	}
	// Proposed at once if a leader is known; otherwise at the next ticks.
	if err := n.r.Release(app, gen, to, handover, ended, n.nodeNow(c)); err != nil && !errors.Is(err, ErrNoLeader) {
		c.t.Fatalf("release %s on %s: %v", app, from, err)
	}
	c.collect(n)
}

// A graceful release: the next holder starts as soon as it has a lease,
// well before the wait a failover needs, and gets the handover; the
// checker sees no two instances at any step, under message loss,
// duplication and reordering.
func TestReleaseHandsOverWithoutTheWait(t *testing.T) {
	seeds(t, 6, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed, withFaults(0.05, 0.05, time.Millisecond, 5*time.Millisecond))
		c.deploy("a", true, "n1", "n2")
		c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
		c.run(time.Duration(c.rng.Int64N(int64(testTiming.RenewEvery))))
		at := c.real
		gen := c.release("a", "n1", "n3", []byte("kids"))
		c.runUntil("a on n3", 5*time.Second, func() bool { return c.runner("a") == "n3" })
		took := c.real - at
		// A commit of the release and one of the new holder's renewal,
		// against a wait of 443 ms from the last renewal of n1, which
		// is at most RenewEvery old.
		if limit := testTiming.Lease / 2; took >= limit {
			t.Fatalf("handover took %v, not under %v (the wait is %v)", took, limit, testTiming.Wait(testTiming.Lease))
		}
		var g Grant
		for _, x := range c.node("n3").r.Grants(c.node("n3").nodeNow(c)) {
			if x.App == "a" {
				g = x
			}
		}
		if g.Gen != gen+1 || string(g.Handover) != "kids" {
			t.Fatalf("grant on n3: %+v", g)
		}
		// Takeover does not bring it back to the node that released it.
		c.run(2 * time.Second)
		if c.runner("a") != "n3" || c.starts["a"] != 2 {
			t.Fatalf("after the handover: runners %v starts %v", c.runners, c.starts)
		}
		t.Logf("handed over in %v (a failover waits %v)", took, testTiming.Wait(testTiming.Lease))
	})
}

// The release is lost (the releaser is cut off as it proposes it) and
// arrives late, after the leader moved the application as from a dead
// holder: at no step do two nodes run it, the releaser does not run it
// again, and the late release is refused.
func TestReleaseLostOrLate(t *testing.T) {
	seeds(t, 6, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n1")
		c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
		c.isolate("n1")
		gen := c.release("a", "n1", "n2", nil)
		c.runUntil("a moved", 10*time.Second, func() bool { r := c.runner("a"); return r != "" && r != "n1" })
		moved := c.runner("a")
		c.heal()
		c.run(2 * time.Second)
		if c.runner("a") != moved || c.starts["a"] != 2 {
			t.Fatalf("after the heal: runners %v starts %v", c.runners, c.starts)
		}
		a, _ := c.node("n1").r.State().App("a")
		if a.CleanGen != 0 || a.HandoverGen != 0 {
			t.Fatalf("the late release applied: %+v", a)
		}
		// A copy of it delayed past all this (held in the network) is
		// refused when it finally commits.
		n1 := c.node("n1")
		late := Command{Op: OpRelease, App: "a", Node: "n1", Gen: gen, Inc: n1.inc, To: "n2", Clean: true}
		if err := c.propose(late); !errors.Is(err, ErrNotAssigned) {
			t.Fatalf("late release: %v, want ErrNotAssigned", err)
		}
		c.run(time.Second)
		if c.runner("a") != moved {
			t.Fatalf("after the late release: runners %v", c.runners)
		}
	})
}

// A holder that has not waited out the previous holder's lease (a
// takeover whose old holder hears nobody, so it runs on) releases at
// once: the release is not clean, and the next holder waits for the old
// holder's lease as a failover does. Were it taken as clean, the checker
// would see two instances.
func TestReleaseBeforeTheWaitIsNotClean(t *testing.T) {
	seeds(t, 6, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", true, "n1", "n2")
		c.runUntil("a on n1", 5*time.Second, func() bool { return c.runner("a") == "n1" })
		c.isolate("n1")
		c.runUntil("a on n2", 10*time.Second, func() bool { return c.runner("a") == "n2" })
		c.run(time.Duration(c.rng.Int64N(int64(testTiming.RenewEvery))))
		on2, _ := c.node("n2").r.State().App("a")
		c.heal()
		c.deafen("n2")
		n1 := c.node("n1")
		c.runUntil("n1 assigned", 10*time.Second, func() bool {
			a, _ := n1.r.State().App("a")
			// Renewed by n1 in its generation: Apply alone would not
			// make the release clean otherwise.
			return a.Node == "n1" && a.Gen > on2.Gen && a.RenewGen == a.Gen && a.RenewInc == n1.inc
		})
		if n1.r.MayRun("a", n1.nodeNow(c)) {
			t.Fatalf("n1 runs a before its wait: the scenario does not test the wait")
		}
		c.release("a", "n1", "n3", nil)
		c.runUntil("a on n3", 10*time.Second, func() bool { return c.runner("a") == "n3" })
		if a, _ := c.node("n3").r.State().App("a"); a.CleanGen == a.Gen {
			t.Fatalf("a release before the wait was clean: %+v", a)
		}
	})
}

// A release whose instance is not known to have ended (its stop was not
// acknowledged) is not clean: the next holder waits for the lease as
// after a failover.
func TestReleaseOfAnInstanceNotKnownEndedWaits(t *testing.T) {
	seeds(t, 3, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n1")
		c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
		at := c.real
		c.releaseEnded("a", "n1", "n2", nil, false)
		c.runUntil("a on n2", 10*time.Second, func() bool { return c.runner("a") == "n2" })
		// The wait counts from n1's last renewal, at most RenewEvery
		// before the release, on a clock up to Drift fast: at least
		// 322 ms of real time; a clean release takes about 20.
		if took, min := c.real-at, testTiming.Lease/2; took < min {
			t.Fatalf("n2 started %v after the release, not after the wait (at least %v)", took, min)
		}
		if a, _ := c.node("n2").r.State().App("a"); a.CleanGen == a.Gen {
			t.Fatalf("clean: %+v", a)
		}
	})
}

// A held instance still ending keeps its lease, renewed until the
// release, however long that takes: nobody else runs the application
// meanwhile, and the release then hands it over.
func TestHeldGenerationIsRenewedUntilTheRelease(t *testing.T) {
	seeds(t, 3, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n1")
		c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
		gen := c.hold("a", "n1")
		c.run(3 * testTiming.Lease)
		n1 := c.node("n1")
		if _, ok := n1.r.HeldUntil("a", n1.nodeNow(c)); !ok || c.runner("a") != "n1" {
			t.Fatalf("the held instance lost its lease: runners %v", c.runners)
		}
		c.releaseHeld("a", "n1", "n2", gen, nil, true)
		c.runUntil("a on n2", 5*time.Second, func() bool { return c.runner("a") == "n2" })
		if _, ok := n1.r.HeldUntil("a", n1.nodeNow(c)); ok {
			t.Fatal("n1 still holds a lease after its release")
		}
	})
}

// A holder cut off while its instance is still ending loses its lease as
// any other: the checker counts the held instance until the lease's end
// (when the driver stops it), and the failover starts only after it.
func TestHeldInstanceOfACutOffHolderEndsWithItsLease(t *testing.T) {
	seeds(t, 6, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n1")
		c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
		c.hold("a", "n1")
		c.isolate("n1")
		c.runUntil("a moved", 10*time.Second, func() bool { r := c.runner("a"); return r != "" && r != "n1" })
		if c.holding["a"] != "" {
			t.Fatalf("n1's held instance still counted: %v", c.holding)
		}
	})
}

// A release names a member: applications run on members only.
func TestReleaseToANonMemberRefused(t *testing.T) {
	c := newCluster(t, 3, 1)
	c.deploy("a", false, "n1")
	c.runUntil("a on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
	gen := c.hold("a", "n1")
	n1 := c.node("n1")
	if err := n1.r.Release("a", gen, "n9", nil, true, n1.nodeNow(c)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("release to a non-member: %v, want ErrNotMember", err)
	}
}

// What a release recorded is kept only for the generation it made: an
// assignment past it drops it (a record is not 8 KiB bigger for good).
func TestHandoverDroppedPastItsGeneration(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a"})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1", Gen: 0})
	mustApply(t, s, Command{Op: OpRelease, App: "a", Node: "n1", Gen: 1, To: "n2", Handover: []byte("kids")})
	if a, _ := s.App("a"); string(a.Handover) != "kids" || a.HandoverGen != 2 {
		t.Fatalf("after the release: %+v", a)
	}
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n3", Gen: 2})
	if a, _ := s.App("a"); a.Handover != nil || a.HandoverGen != 2 {
		t.Fatalf("after an assignment past it: %+v", a)
	}
}

// The releaser is kept from takeover only while the application stays
// with the holders releases gave it to: an assignment (here a failover of
// the new holder to n3) clears ReleasedBy, and takeover may move the
// application back to n1, preferred, at once.
func TestReleasedByClearedByAssign(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a", Prefer: []string{"n1", "n3"}, Takeover: true})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1", Gen: 0})
	mustApply(t, s, Command{Op: OpRelease, App: "a", Node: "n1", Gen: 1, To: "n2"})
	live := []string{"n1", "n2", "n3"}
	if got := Plan(s, live, nil, epoch, testTiming); len(got) != 0 {
		t.Fatalf("right after the release: %+v, want no move", got)
	}
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n3", Gen: 2})
	if a, _ := s.App("a"); a.ReleasedBy != "" {
		t.Fatalf("after an assignment: ReleasedBy %q, want cleared", a.ReleasedBy)
	}
	want := []Command{{Op: OpAssign, App: "a", Node: "n1", Gen: 3}}
	if got := Plan(s, live, nil, epoch, testTiming); !slices.EqualFunc(got, want, eqCmd) {
		t.Fatalf("after the assignment: %+v, want %+v", got, want)
	}
}
