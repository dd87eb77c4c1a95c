package appreg

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// seeds runs f over n seeds; APPREG_SEEDS=N runs N instead (a longer sweep).
func seeds(t *testing.T, n int, f func(t *testing.T, seed uint64)) {
	if v, err := strconv.Atoi(os.Getenv("APPREG_SEEDS")); err == nil && v > 0 {
		n = v
	}
	for seed := range uint64(n) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { f(t, seed) })
	}
}

func TestDeployAssignsAndSpreads(t *testing.T) {
	seeds(t, 3, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n2")
		c.runUntil("a runs on n2", 5*time.Second, func() bool { return c.runner("a") == "n2" })
		c.deploy("b", false)
		c.runUntil("b runs", 5*time.Second, func() bool { return c.runner("b") != "" })
		c.deploy("c", false)
		c.runUntil("c runs", 5*time.Second, func() bool { return c.runner("c") != "" })
		// Spread: one application per node.
		got := map[string]bool{c.runner("a"): true, c.runner("b"): true, c.runner("c"): true}
		if len(got) != 3 {
			t.Fatalf("not spread: a on %s, b on %s, c on %s", c.runner("a"), c.runner("b"), c.runner("c"))
		}
		c.run(2 * time.Second) // leases are renewed: nothing moves
		if c.runner("a") != "n2" || c.starts["a"] != 1 || c.starts["b"] != 1 || c.starts["c"] != 1 {
			t.Fatalf("moved or restarted while healthy: runners %v starts %v", c.runners, c.starts)
		}
	})
}

// The holder is cut off from everyone: it must stop on its own clock before
// the majority starts the application elsewhere. The clocks are set against
// the guarantee: the holder's runs slow (its lease lasts longest in real
// time), the others' fast (their waits end soonest).
func TestFailoverIsolatedHolderStopsFirst(t *testing.T) {
	seeds(t, 4, func(t *testing.T, seed uint64) {
		slow, fast := 1-testTiming.Drift, 1+testTiming.Drift
		c := newCluster(t, 5, seed, withRates(slow, fast, fast, fast, fast))
		c.deploy("a", false, "n1", "n2")
		c.runUntil("a runs on n1", 5*time.Second, func() bool { return c.runner("a") == "n1" })
		c.run(time.Duration(c.rng.Int64N(int64(testTiming.RenewEvery)))) // cut at any phase of the renewals
		cutAt := c.real
		c.isolate("n1")
		// Bounded: n1 stops within its lease, in real time at most
		// Lease/(1-Drift) after its last renewal, itself before the cut.
		c.runUntil("n1 stops", time.Duration(float64(testTiming.Lease)/slow)+testStep, func() bool { return c.runner("a") != "n1" })
		stoppedAt := c.real
		c.runUntil("a runs on n2", 10*time.Second, func() bool { return c.runner("a") == "n2" })
		if c.real-cutAt > 3*time.Second {
			t.Fatalf("failover took %v", c.real-cutAt)
		}
		t.Logf("cut at %v, n1 stopped after %v, n2 started after %v", cutAt, stoppedAt-cutAt, c.real-cutAt)
	})
}

// The holder is also the leader, and crashes: the new leader moves the
// application a liveness window (two election timeouts) after it last heard
// the old leader, not a window after its own election, which would add an
// election timeout or more to every failover of a leader's applications.
func TestLeaderHolderCrashMovesFromItsLastHeartbeat(t *testing.T) {
	seeds(t, 40, func(t *testing.T, seed uint64) {
		const ticks = 20 // E = 200 ms; the lease's wait (277 ms) is shorter than 2E
		e := ticks * testTick
		tm := Timing{Lease: 250 * time.Millisecond, RenewEvery: 50 * time.Millisecond, Drift: 0.05, Margin: time.Millisecond}
		c := newCluster(t, 3, seed, withTiming(tm, ticks))
		c.runUntil("a leader", 5*time.Second, func() bool { return c.leader() != nil })
		ld := c.leader().name
		c.deploy("a", false, ld)
		c.runUntil("a runs on the leader", 5*time.Second, func() bool { return c.runner("a") == ld })
		c.run(time.Duration(c.rng.Int64N(int64(tm.RenewEvery)))) // crash at any phase of the renewals
		if l := c.leader(); l == nil || l.name != ld {
			t.Fatalf("the leader changed from %s while all were up", ld)
		}
		crashAt := c.real
		c.crash(ld)
		c.runUntil("a new leader", 5*time.Second, func() bool { return c.leader() != nil })
		elected := c.real - crashAt
		c.runUntil("a runs on a survivor", 5*time.Second, func() bool { r := c.runner("a"); return r != "" && r != ld })
		took := c.real - crashAt
		// Judged from its last heartbeat, the old leader is not live 2E
		// after the crash; judged from the election (at least E after
		// the crash, more after a split vote), 2E after that. A tick, a
		// commit and a renewal's round come on top: allow E/2.
		if limit := max(elected, 2*e) + e/2; took >= limit {
			t.Fatalf("failover of the leader's application took %v (new leader after %v), not under %v", took, elected, limit)
		}
		t.Logf("leader %s crashed; a new leader after %v; a ran on %s after %v", ld, elected, c.runner("a"), took)
	})
}

// A partition splits 2 from 3: the minority stops the instance it ran, the
// majority runs exactly one; after the heal there is still one.
func TestPartitionMinorityStopsMajorityRuns(t *testing.T) {
	seeds(t, 4, func(t *testing.T, seed uint64) {
		c := newCluster(t, 5, seed)
		c.deploy("a", false, "n1")
		c.deploy("b", false, "n4")
		c.runUntil("a on n1, b on n4", 5*time.Second, func() bool { return c.runner("a") == "n1" && c.runner("b") == "n4" })
		minority, majority := []string{"n1", "n2"}, []string{"n3", "n4", "n5"}
		c.partition(minority, majority)
		c.runUntil("a moves to the majority", 10*time.Second, func() bool {
			r := c.runner("a")
			return r == "n3" || r == "n4" || r == "n5"
		})
		// The minority runs nothing for as long as the partition lasts.
		for end := c.real + 3*time.Second; c.real < end; {
			c.step()
			for _, n := range minority {
				if c.runner("a") == n || c.runner("b") == n {
					t.Fatalf("at %v: %s in the minority runs an application: %v", c.real, n, c.runners)
				}
			}
		}
		if c.runner("b") != "n4" || c.starts["b"] != 1 {
			t.Fatalf("b, in the majority all along, moved or restarted: %v starts %v", c.runners, c.starts)
		}
		c.heal()
		c.run(3 * time.Second)
		if r := c.runner("a"); r == "" || r == "n1" || r == "n2" {
			t.Fatalf("after the heal a runs on %q; without takeover it stays where it went", r)
		}
		c.runUntil("replicas converge", 5*time.Second, c.converged)
	})
}

func TestTakeoverWhenPreferredReturns(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			seeds(t, 3, func(t *testing.T, seed uint64) {
				c := newCluster(t, 3, seed)
				c.deploy("a", takeover, "n1", "n2")
				c.runUntil("a on n1", 5*time.Second, func() bool { return c.runner("a") == "n1" })
				c.isolate("n1")
				c.runUntil("a on n2", 10*time.Second, func() bool { return c.runner("a") == "n2" })
				c.heal()
				if takeover {
					// The move goes through the new holder's wait: n2
					// stops first (checked at every step).
					c.runUntil("a back on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
					c.run(2 * time.Second)
					if c.runner("a") != "n1" {
						t.Fatalf("a left n1 again: %v", c.runners)
					}
					return
				}
				c.run(5 * time.Second)
				if c.runner("a") != "n2" || c.starts["a"] != 2 {
					t.Fatalf("without takeover a should stay on n2: runners %v starts %v", c.runners, c.starts)
				}
			})
		})
	}
}

// Takeover while the old holder hears nobody but everyone hears it: the
// leader takes it for live and moves the application to the preferred node
// at once; the old holder learns nothing and runs on until its lease ends.
// The new holder's own wait is what keeps them apart.
func TestTakeoverOldHolderCannotHear(t *testing.T) {
	seeds(t, 4, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", true, "n1", "n2")
		c.runUntil("a on n1", 5*time.Second, func() bool { return c.runner("a") == "n1" })
		c.isolate("n1")
		c.runUntil("a on n2", 10*time.Second, func() bool { return c.runner("a") == "n2" })
		c.run(time.Duration(c.rng.Int64N(int64(testTiming.RenewEvery))))
		c.heal()
		c.deafen("n2")
		c.runUntil("a back on n1", 10*time.Second, func() bool { return c.runner("a") == "n1" })
	})
}

// The holder hears nobody but everyone hears it (it campaigns): the leader
// must not take it for live, or its application would never fail over.
func TestDeafHolderFailsOver(t *testing.T) {
	seeds(t, 4, func(t *testing.T, seed uint64) {
		c := newCluster(t, 3, seed)
		c.deploy("a", false, "n1", "n2")
		c.runUntil("a on n1", 5*time.Second, func() bool { return c.runner("a") == "n1" })
		c.deafen("n1")
		c.runUntil("a on n2", 5*time.Second, func() bool { return c.runner("a") == "n2" })
	})
}

// A replica restarted from its store has its log: the registry as it was
// (before it hears from anyone), then what it missed. Snapshots every few
// entries, so the restart goes through a compacted store and the catch-up
// through a snapshot sent by the leader.
func TestRestartFromStore(t *testing.T) {
	for _, store := range []string{"mem", "bolt"} {
		t.Run(store, func(t *testing.T) { testRestartFromStore(t, store == "bolt") })
	}
}

func testRestartFromStore(t *testing.T, bolt bool) {
	seeds(t, 3, func(t *testing.T, seed uint64) {
		opts := []copt{withSnapshotEvery(8)}
		if bolt {
			opts = append(opts, withBolt(t.TempDir()))
		}
		c := newCluster(t, 3, seed, opts...)
		c.deploy("a", true, "n3")
		c.deploy("b", false, "n1")
		c.runUntil("a on n3", 5*time.Second, func() bool { return c.runner("a") == "n3" })
		c.runUntil("n3 applied b", 5*time.Second, func() bool { _, ok := c.node("n3").r.State().App("b"); return ok })
		c.crash("n3")
		c.deploy("c", false, "n2")
		c.runUntil("a fails over", 10*time.Second, func() bool { r := c.runner("a"); return r != "" && r != "n3" })
		c.run(2 * time.Second) // renewals: many entries, more snapshots

		c.restart("n3")
		n3 := c.node("n3")
		for _, app := range []string{"a", "b"} {
			if _, ok := n3.r.State().App(app); !ok {
				t.Fatalf("restarted n3 lost %s from its store", app)
			}
		}
		if n3.r.MayRun("a", n3.nodeNow(c)) {
			t.Fatal("restarted n3 may run a before renewing")
		}
		c.runUntil("n3 catches up", 5*time.Second, func() bool { _, ok := n3.r.State().App("c"); return ok })
		// a prefers n3 and takes over: the restarted node runs its
		// application again.
		c.runUntil("a back on n3", 10*time.Second, func() bool { return c.runner("a") == "n3" })
		c.runUntil("replicas converge", 5*time.Second, c.converged)
	})
}

// Heavy duplication, reordering and loss, random isolations, deaf nodes,
// partitions, crashes and restarts, and a stream of commands: the invariant holds at every step, and after the heal the
// replicas converge with every application desired running running once.
func TestDuplicatesReorderingLoss(t *testing.T) {
	n := 8
	if raceOn {
		n = 3
	}
	seeds(t, n, func(t *testing.T, seed uint64) { randomFaults(t, seed) })
}

// The same seed gives the same run: elections are timed from a seeded
// source (raft's own timer draws from crypto/rand).
func TestSeedReplays(t *testing.T) {
	a, b := randomFaults(t, 2), randomFaults(t, 2)
	if string(a) != string(b) {
		t.Fatalf("two runs of one seed differ:\n%s\n%s", a, b)
	}
}

func randomFaults(t *testing.T, seed uint64) []byte {
	{
		c := newCluster(t, 5, seed, withFaults(0.1, 0.3, time.Millisecond, 40*time.Millisecond), withSnapshotEvery(50))
		apps := []string{"a", "b", "c", "d"}
		down := ""
		for range 40 {
			app := apps[c.rng.IntN(len(apps))]
			var cmd Command
			switch c.rng.IntN(6) {
			case 0, 1, 2:
				cmd = Command{Op: OpDeploy, App: app, Prefer: []string{fmt.Sprintf("n%d", 1+c.rng.IntN(5))}, Takeover: c.rng.IntN(2) == 0}
			case 3:
				cmd = Command{Op: OpStop, App: app}
			case 4:
				cmd = Command{Op: OpStart, App: app}
			case 5:
				cmd = Command{Op: OpRemove, App: app}
			}
			switch c.rng.IntN(8) {
			case 0:
				c.heal()
				c.isolate(fmt.Sprintf("n%d", 1+c.rng.IntN(5)))
			case 1:
				c.heal()
				c.deafen(fmt.Sprintf("n%d", 1+c.rng.IntN(5)))
			case 2:
				if down != "" {
					break // with a node down, a 2-3 split leaves no majority
				}
				c.heal()
				c.partition([]string{"n1", "n2"}, []string{"n3", "n4", "n5"})
			case 3: // a crash, or a restart of the crashed node
				if down != "" {
					c.restart(down)
					down = ""
				} else {
					c.heal() // a crash and a 2-3 split leave no majority
					down = fmt.Sprintf("n%d", 1+c.rng.IntN(5))
					c.crash(down)
				}
			}
			_ = c.propose(cmd) // rejections (unknown app) are fine
			c.run(time.Duration(c.rng.Int64N(int64(time.Second))))
		}
		c.heal()
		if down != "" {
			c.restart(down)
		}
		c.runUntil("replicas converge", 10*time.Second, c.converged)
		c.runUntil("every running application runs", 10*time.Second, func() bool {
			for _, a := range c.nodes[0].r.State().Apps() {
				if (a.Desired == Running) != (c.runner(a.Name) != "") {
					return false
				}
			}
			return true
		})
		return c.trace
	}
}

// A replica observes a renewal when its entry came into its log; an entry
// replaced at its index (a deposed leader's, overwritten by its successor's)
// is observed when the replacement came, never at the replaced entry's
// earlier arrival, which could precede the replacement's proposal.
func TestRenewalObservedOnArrivalOfTheEntryApplied(t *testing.T) {
	entry := func(t *testing.T, idx, term uint64, c Command) *pb.Entry {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		return &pb.Entry{Index: new(idx), Term: new(term), Type: pb.EntryNormal.Enum(), Data: b}
	}
	app := func(from, term, index, logTerm, commit uint64, ents ...*pb.Entry) *pb.Message {
		return &pb.Message{Type: pb.MsgApp.Enum(), From: new(from), To: new(uint64(2)), Term: new(term),
			Index: new(index), LogTerm: new(logTerm), Commit: new(commit), Entries: ents}
	}
	members := []Member{{1, "n1"}, {2, "n2"}, {3, "n3"}}
	renew := func(seq uint64) Command {
		return Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: testTiming.Lease, Inc: 1, Seq: seq}
	}
	for _, replaced := range []bool{false, true} {
		t.Run(fmt.Sprint("replaced=", replaced), func(t *testing.T) {
			t1 := epoch
			r, err := NewReplica(Config{ID: 2, Members: members, Store: &MemStore{}, Timing: testTiming,
				TickInterval: testTick, Incarnation: 7}, t1)
			if err != nil {
				t.Fatal(err)
			}
			step := func(m *pb.Message, now time.Time) {
				t.Helper()
				if err := r.Step(m, now); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Ready(); err != nil {
					t.Fatal(err)
				}
			}
			// Leader n1, term 1: deploy, assign to n1, a renewal; the
			// first two committed.
			step(app(1, 1, 0, 0, 2,
				entry(t, 1, 1, Command{Op: OpDeploy, App: "a"}),
				entry(t, 2, 1, Command{Op: OpAssign, App: "a", Node: "n1", Gen: 0}),
				entry(t, 3, 1, renew(1))), t1)
			if _, ok := r.State().App("a"); !ok || r.seen["a"].At.IsZero() {
				t.Fatalf("the assignment was not applied: seen %v", r.seen)
			}
			t2 := t1.Add(10 * time.Second)
			if replaced {
				// n3 leads term 2 and overwrites index 3 with a renewal
				// proposed later, and commits it.
				step(app(3, 2, 2, 1, 3, entry(t, 3, 2, renew(2))), t2)
			} else {
				step(app(1, 1, 3, 1, 3), t2) // n1 commits index 3
			}
			want := t1
			if replaced {
				want = t2
			}
			o, ok := r.lastRenew["a"]
			if !ok || !o.At.Equal(want) || !r.seen["a"].At.Equal(want) {
				t.Fatalf("renewal observed at %v (seen %v), want %v", o.At, r.seen["a"].At, want)
			}
			if len(r.appended) != 0 {
				t.Fatalf("arrival times kept after apply: %v", r.appended)
			}
		})
	}
}
