package driver

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/sim"
)

// The registry's drivers under random faults, VOPR-style: each seed draws a
// schedule of partitions (both ways and one way), connection cuts, latency
// spikes, crashes and restarts (memory lost, store kept), and of client
// commands (deploy, stop, start, remove), over five members with drifting
// clocks. Throughout, no application may start while it runs elsewhere
// (the tracker's ground truth); once everything is healed and restarted,
// every application desired running runs exactly once.
//
// It runs 12 seeds (3 under the race detector); APPREG_SWARM_SEEDS=N runs
// N (a longer sweep), APPREG_SWARM_SEED=S replays one.
func TestSimApplicationsSwarm(t *testing.T) {
	first, n := uint64(1), uint64(12)
	if raceEnabled {
		n = 3
	}
	if v, err := strconv.ParseUint(os.Getenv("APPREG_SWARM_SEEDS"), 10, 64); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.ParseUint(os.Getenv("APPREG_SWARM_SEED"), 10, 64); err == nil {
		first, n = v, 1
	}
	for seed := first; seed < first+n; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newSimCluster(t, 1000+seed, 5)
			c.swarmReplay = fmt.Sprintf("APPREG_SWARM_SEED=%d go test -run 'TestSimApplicationsSwarm' -v ./internal/appreg/driver/", seed)
			t.Log(swarm(c))
		})
	}
}

// swarm runs one seed's schedule on c and returns what it did.
func swarm(c *simCluster) string {
	rng := c.w.Rand()
	nodes := c.nodes
	var log []string
	note := func(format string, a ...any) {
		s := fmt.Sprintf("%v: "+format, append([]any{c.w.Elapsed().Round(time.Millisecond)}, a...)...)
		log = append(log, s)
		c.w.Logf("swarm: %s", s)
	}
	apps := []string{"a", "b", "c", "d"}
	for _, app := range apps[:3] {
		prefer := []string{nodes[rng.IntN(len(nodes))].Name()}
		takeover := rng.IntN(2) == 0
		c.propose(appreg.Command{Op: appreg.OpDeploy, App: app, Prefer: prefer, Takeover: takeover})
		note("deploy %s prefer %v takeover %v", app, prefer, takeover)
	}
	c.runUntil("the first applications run", 30*time.Second, func() bool {
		return c.runsOn("a") && c.runsOn("b") && c.runsOn("c")
	})

	// Slices, not maps: the schedule must not depend on map order.
	var crashed []*sim.Node
	var slowLinks [][2]*sim.Node
	healAll := func() {
		for i, x := range nodes {
			for _, y := range nodes[i+1:] {
				c.w.Heal(x, y)
				c.w.Unblock(x, y)
				c.w.Unblock(y, x)
			}
		}
		for _, l := range slowLinks {
			c.w.ClearLatency(l[0], l[1])
		}
		slowLinks = nil
	}
	restart := func(nd *sim.Node) {
		if err := c.w.Restart(nd); err != nil {
			c.fail("restart %s: %v", nd.Name(), err)
		}
		crashed = slices.DeleteFunc(crashed, func(o *sim.Node) bool { return o == nd })
		for _, o := range nodes {
			if o.Up() {
				c.setPeers(o)
			}
		}
	}
	// tryPropose offers cmd once to each up node's driver: without a
	// leader (a partition may leave none) the command is dropped, and the
	// test's idea of what is desired stays as it was.
	tryPropose := func(cmd appreg.Command) bool {
		for _, nd := range nodes {
			if nd.Up() {
				if _, err := nd.Ask(c.drivers[nd.Name()], Propose{Cmd: cmd}, time.Second); err == nil {
					return true
				}
			}
		}
		return false
	}

	end := c.w.Elapsed() + 40*time.Second
	for c.w.Elapsed() < end {
		c.w.Run(time.Duration(200+rng.IntN(3000)) * time.Millisecond)
		c.checkNoViolation()
		x, y := nodes[rng.IntN(len(nodes))], nodes[rng.IntN(len(nodes))]
		switch r := rng.IntN(100); {
		case r < 20: // a two-way partition of a random side from the rest
			var side []string
			for _, nd := range nodes {
				if rng.IntN(2) == 0 {
					side = append(side, nd.Name())
				}
			}
			for _, p := range nodes {
				for _, q := range nodes {
					if p != q && slices.Contains(side, p.Name()) && !slices.Contains(side, q.Name()) {
						c.w.Partition(p, q)
					}
				}
			}
			note("partition %v from the rest", side)
		case r < 30:
			if x != y {
				c.w.Block(x, y)
				note("block %s -> %s", x.Name(), y.Name())
			}
		case r < 37:
			if x != y {
				c.w.Cut(x, y)
				note("cut %s - %s", x.Name(), y.Name())
			}
		case r < 45:
			if x != y {
				lo := time.Duration(1+rng.IntN(50)) * time.Millisecond
				c.w.SetLatency(x, y, lo, lo+time.Duration(rng.IntN(400))*time.Millisecond)
				slowLinks = append(slowLinks, [2]*sim.Node{x, y})
				note("latency %s -> %s up to %v", x.Name(), y.Name(), lo)
			}
		case r < 57:
			if x.Up() && len(crashed) < 2 {
				c.w.Crash(x)
				crashed = append(crashed, x)
				// Its instances die with it.
				for app, on := range c.tr.running {
					c.tr.running[app] = slices.DeleteFunc(on, func(n string) bool { return n == x.Name() })
				}
				note("crash %s", x.Name())
			}
		case r < 70:
			if len(crashed) > 0 {
				nd := crashed[rng.IntN(len(crashed))]
				restart(nd)
				note("restart %s", nd.Name())
			}
		case r < 82:
			healAll()
			note("heal")
		default: // a client command
			app := apps[rng.IntN(len(apps))]
			ops := []appreg.Op{appreg.OpDeploy, appreg.OpStart, appreg.OpStop, appreg.OpRemove}
			op := ops[rng.IntN(len(ops))]
			cmd := appreg.Command{Op: op, App: app}
			if op == appreg.OpDeploy {
				cmd.Prefer = []string{nodes[rng.IntN(len(nodes))].Name()}
				cmd.Takeover = rng.IntN(2) == 0
			}
			if tryPropose(cmd) {
				note("client %v %s: taken", op, app)
			} else {
				note("client %v %s: no leader took it", op, app)
			}
		}
	}

	// Everything heals and returns: the registry's state decides what must
	// run, and each application desired running runs exactly once.
	healAll()
	for len(crashed) > 0 {
		restart(crashed[0])
	}
	note("heal and restart everything")
	// What must run, as the leader has it (a follower may lag behind).
	want := func() ([]string, bool) {
		var st Status
		found := false
		for i, nd := range nodes {
			v, err := nd.Ask(c.drivers[nd.Name()], GetStatus{}, time.Second)
			if err == nil && v.(Status).Leader == uint64(i+1) {
				st, found = v.(Status), true
				break
			}
		}
		if !found {
			return nil, false
		}
		var out []string
		for _, a := range st.Apps {
			if a.Desired == appreg.Running {
				out = append(out, a.Name)
			}
		}
		return out, true
	}
	var running []string
	c.runUntil("every application desired running runs once", 60*time.Second, func() bool {
		w, ok := want()
		if !ok {
			return false
		}
		for app, on := range c.tr.running {
			if len(on) > 0 && !slices.Contains(w, app) {
				return false // stopped or removed, not yet ended
			}
		}
		for _, app := range w {
			if !c.runsOn(app) {
				return false
			}
		}
		running = w
		return true
	})
	c.checkNoViolation()
	return fmt.Sprintf("%d faults and commands; at the end %v run once each; %s", len(log), running, c.w.Summary())
}
