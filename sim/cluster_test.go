package sim

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

var (
	flagSeed  = flag.Uint64("sim.seed", 1, "the seed of TestCluster (and the first of TestSwarm)")
	flagSeeds = flag.Int("sim.seeds", 0, "how many seeds TestSwarm runs (0: 40, or 4 under the race detector)")
	flagTrace = flag.Bool("sim.trace", false, "print the merged timeline of every run")
	// a link ended on one side only fails the swarm (see checker.strictLinks);
	// -sim.strictlinks=false counts such links instead
	flagStrictLinks = flag.Bool("sim.strictlinks", true, "fail on a link that ended on one side only (false: count them)")
	// how much of a failing run's timeline to print
	flagTimeline = flag.Int("sim.timeline", 3000, "lines of a failing seed's timeline to print")
)

// fn adapts a function to actor.Actor.
type fn func(c *actor.Context, msg any) (any, error)

func (f fn) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func reason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, remote.ErrNodeDown):
		return "node down"
	case errors.Is(err, actor.ErrTimeout):
		return "timeout"
	}
	return err.Error()
}

type (
	doAsk struct {
		to   actor.Ref
		name string
	}
	doMonitor struct {
		to   actor.Ref
		name string
	}
)

// cluster is TestCluster's scenario on w: node 0 asks and monitors echo
// actors on nodes 1 and 2; a partition between 0 and 1 makes 1 down
// after the heartbeat timeout while 2 stays up; after the heal 0 reaches
// 1 again; node 2 crashes and restarts with a new incarnation.
func cluster(t *testing.T, w *World) {
	echo := func(*Node) error { return nil }
	n0, n1, n2 := w.MustAddNode("n0", echo), w.MustAddNode("n1", echo), w.MustAddNode("n2", echo)
	spawnEcho := func(n *Node) actor.Ref {
		r, err := n.Spawn(func() actor.Actor { return fn(func(c *actor.Context, msg any) (any, error) { return msg, nil }) })
		if err != nil {
			t.Fatal(err)
		}
		rr, err := w.Ref(r, n, n0)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	e1, e2 := spawnEcho(n1), spawnEcho(n2)
	replies, downs := 0, map[string]int{}
	driver, err := n0.Spawn(func() actor.Actor {
		return fn(func(c *actor.Context, msg any) (any, error) {
			switch m := msg.(type) {
			case doAsk:
				c.Ask(m.to, m.name).Then(func(c *actor.Context, v any, err error) {
					if err == nil {
						replies++
					}
					w.Logf("ask %s: %v %s", m.name, v, reason(err))
				})
			case doMonitor:
				w.Logf("monitor %s: %s", m.name, reason(c.Monitor(m.to)))
			case actor.Down:
				name := map[actor.Ref]string{e1: "e1", e2: "e2"}[m.Ref]
				downs[name]++
				w.Logf("down %s: %s", name, reason(m.Reason))
			}
			return nil, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	do := func(m any) {
		if err := n0.Send(driver, m); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format+"\n%s", append(append([]any{w.Seed()}, a...), strings.Join(w.Timeline(), "\n"))...)
	}

	do(doMonitor{e1, "e1"})
	do(doMonitor{e2, "e2"})
	do(doAsk{e1, "a1"})
	do(doAsk{e2, "a2"})
	if !w.RunUntil(5*time.Second, func() bool { return replies == 2 }) {
		fail("replies before the partition = %d, want 2", replies)
	}

	w.Logf("partition n0 n1")
	w.Partition(n0, n1)
	start := w.Now()
	if !w.RunUntil(10*time.Second, func() bool { return downs["e1"] == 1 }) {
		fail("no down for e1 after the partition")
	}
	if took := w.Now().Sub(start); took < time.Second {
		fail("e1 down after %v, before the heartbeat timeout", took)
	}
	do(doAsk{e2, "a3"})
	if !w.RunUntil(5*time.Second, func() bool { return replies == 3 }) {
		fail("no reply from n2 during the partition")
	}

	w.Logf("heal n0 n1")
	w.Heal(n0, n1)
	for i := 0; replies == 3 && i < 50; i++ { // asks fail at once while n1 is known down, until a redial
		do(doAsk{e1, fmt.Sprintf("r%d", i)})
		w.Run(200 * time.Millisecond)
	}
	if replies != 4 {
		fail("no reply from n1 after the heal")
	}

	w.Logf("crash n2")
	w.Crash(n2)
	if !w.RunUntil(10*time.Second, func() bool { return downs["e2"] == 1 }) {
		fail("no down for e2 after n2 crashed")
	}
	if err := w.Restart(n2); err != nil {
		t.Fatal(err)
	}
	e2b := spawnEcho(n2)
	for i := 0; replies == 4 && i < 50; i++ {
		do(doAsk{e2b, fmt.Sprintf("b%d", i)})
		w.Run(200 * time.Millisecond)
	}
	if replies != 5 {
		fail("no reply from n2's new incarnation")
	}
	do(doAsk{e2, "old"}) // the old incarnation's actor is gone
	w.Run(3 * time.Second)
	if replies != 5 {
		fail("the crashed incarnation's actor answered")
	}
}

// TestCluster runs the scenario with -sim.seed twice and a third time with
// the next seed: the same seed gives the same summary line, bit for bit,
// another seed another one.
func TestCluster(t *testing.T) {
	run := func(seed uint64) string {
		cfg := Config{Seed: seed}
		if *flagTrace {
			cfg.Timeline = 1 << 20
		} else {
			cfg.Timeline = 400
		}
		w := New(cfg)
		defer w.Close()
		wall := time.Now()
		cluster(t, w)
		if *flagTrace {
			t.Log("timeline:\n" + strings.Join(w.Timeline(), "\n"))
		}
		el := time.Since(wall)
		t.Logf("%s (virtual %v in %v, %.0f events/s)", w.Summary(), w.Elapsed().Round(time.Millisecond),
			el.Round(time.Millisecond), float64(w.Events())/el.Seconds())
		return w.Summary()
	}
	a, b := run(*flagSeed), run(*flagSeed)
	if a != b {
		t.Fatalf("two runs of one seed differ:\n  %s\n  %s", a, b)
	}
	fmt.Println(a)
	if c := run(*flagSeed + 1); c == a {
		t.Fatalf("seeds %d and %d gave the same run: %s", *flagSeed, *flagSeed+1, c)
	}
}
