package remote

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/memnet"
)

// memWorld is nodes on one memnet.Network, their systems in manual mode:
// the whole cluster runs on the test's goroutine, on virtual time.
type memWorld struct {
	t     *testing.T
	nw    *memnet.Network
	sys   []*actor.System
	nodes []*Node
	trace []string
}

func newMemWorld(t *testing.T, seed uint64, hosts ...string) *memWorld {
	w := &memWorld{t: t, nw: memnet.New(seed, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
	w.nw.Trace(func(at time.Time, s string) { w.trace = append(w.trace, "net "+at.Format("15:04:05.000000")+" "+s) })
	keys := mrand.New(mrand.NewPCG(seed, 1))
	quiet := slog.New(slog.DiscardHandler)
	for i, h := range hosts {
		sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Clock: w.nw, Seed: seed, Watchdog: -1,
			Logger: quiet, OnCrash: func(*actor.Crash) {}})
		key := make([]byte, 32)
		for j := range key {
			key[j] = byte(keys.Uint32())
		}
		n := newMemNode(sys, Config{
			Name: fmt.Sprintf("n%d", i), Listen: h + ":7000", Logger: quiet, PrivateKey: key,
			HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second,
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: 400 * time.Millisecond, DialTimeout: time.Second,
		}, w.nw, nil)
		if err := n.startMem(); err != nil {
			t.Fatal(err)
		}
		w.sys, w.nodes = append(w.sys, sys), append(w.nodes, n)
	}
	return w
}

// logf adds a line to the trace, stamped with the virtual time.
func (w *memWorld) logf(format string, a ...any) {
	w.trace = append(w.trace, w.nw.Now().Format("15:04:05.000000")+" "+fmt.Sprintf(format, a...))
}

// settle runs the systems until none has anything to do.
func (w *memWorld) settle() {
	for {
		busy := false
		for _, s := range w.sys {
			if s.RunUntilIdle(1<<16) > 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
}

// run runs the world for d of virtual time.
func (w *memWorld) run(d time.Duration) {
	end := w.nw.Now().Add(d)
	for {
		w.settle()
		at, ok := w.nw.Next()
		if !ok || at.After(end) {
			break
		}
		w.nw.Step()
	}
	w.nw.RunFor(end.Sub(w.nw.Now()))
	w.settle()
}

// close stops the nodes and the systems, draining what that schedules.
func (w *memWorld) close() {
	for _, n := range w.nodes {
		n.stopMem()
	}
	w.run(time.Minute)
	for _, s := range w.sys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Shutdown(ctx); err != nil {
			w.t.Errorf("Shutdown: %v", err)
		}
		cancel()
	}
}

// spawnOn spawns f on node i's system and returns its ref as node from sees it.
func (w *memWorld) spawnOn(i, from int, f fnActor) actor.Ref {
	w.t.Helper()
	r, err := w.sys[i].Spawn(context.Background(), func() actor.Actor { return f })
	if err != nil {
		w.t.Fatal(err)
	}
	if i == from {
		return r
	}
	node, addr, id, ok := w.nodes[i].ExportRef(r)
	if !ok {
		w.t.Fatalf("cannot export %v", r)
	}
	rr, err := w.nodes[from].ImportRef(node, addr, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return rr
}

type (
	simAsk struct {
		to actor.Ref
		v  string
	}
	simSend struct {
		to actor.Ref
		v  string
	}
	simMon struct {
		to   actor.Ref
		name string
	}
)

// simReason names an error for the trace without its addresses' ports.
func simReason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNodeDown):
		return "node down"
	case errors.Is(err, ErrNotSent):
		return "not sent"
	}
	return err.Error()
}

// runMemCluster is the scenario: three nodes; node 0 asks, sends to and
// monitors actors on nodes 1 and 2; a partition between 0 and 1 makes 1 down
// after the heartbeat timeout (2 stays up); after the heal, 0 reaches 1 again;
// a cut of the connections between 0 and 2 makes 2 down at once, and 0
// reaches it again.
// It returns the trace: every network event and every outcome, in order.
func runMemCluster(t *testing.T, seed uint64) []string {
	w := newMemWorld(t, seed, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	defer w.close()
	echo1 := w.spawnOn(1, 0, func(c *actor.Context, msg any) (any, error) { return msg, nil })
	echo2 := w.spawnOn(2, 0, func(c *actor.Context, msg any) (any, error) { return msg, nil })
	sink := w.spawnOn(1, 0, func(c *actor.Context, msg any) (any, error) {
		w.logf("n1 received %v", msg)
		return nil, nil
	})
	names := map[actor.Ref]string{echo1: "echo1", echo2: "echo2"}
	var replies, downs int
	driver := w.spawnOn(0, 0, func(c *actor.Context, msg any) (any, error) {
		switch m := msg.(type) {
		case simAsk:
			c.Ask(m.to, m.v).Then(func(c *actor.Context, v any, err error) {
				if err == nil {
					replies++
				}
				w.logf("n0 ask %s: %v %s", m.v, v, simReason(err))
			})
		case simSend:
			w.logf("n0 send %s: %s", m.v, simReason(c.Send(m.to, m.v)))
		case simMon:
			w.logf("n0 monitor %s: %s", m.name, simReason(c.Monitor(m.to)))
		case actor.Down:
			downs++
			w.logf("n0 down %s: %s", names[m.Ref], simReason(m.Reason))
		}
		return nil, nil
	})
	do := func(m any) {
		if err := w.sys[0].Send(driver, m); err != nil {
			t.Fatal(err)
		}
	}

	w.run(10 * time.Millisecond)
	do(simMon{echo1, "echo1"})
	do(simMon{echo2, "echo2"})
	do(simAsk{echo1, "a1"})
	do(simAsk{echo2, "a2"})
	do(simSend{sink, "s1"})
	w.run(time.Second)
	if replies != 2 {
		t.Fatalf("replies before the partition = %d, want 2\n%s", replies, strings.Join(w.trace, "\n"))
	}

	w.logf("partition n0 n1")
	w.nw.Partition("10.0.0.1", "10.0.0.2")
	start := w.nw.Now()
	for downs == 0 && w.nw.Now().Sub(start) < 10*time.Second {
		w.run(100 * time.Millisecond)
	}
	if downs != 1 {
		t.Fatalf("downs after the partition = %d, want 1 (echo1)\n%s", downs, strings.Join(w.trace, "\n"))
	}
	if took := w.nw.Now().Sub(start); took < time.Second {
		t.Fatalf("node down after %v, before the heartbeat timeout", took)
	}
	do(simAsk{echo2, "a3"}) // the other node is still up
	w.run(time.Second)
	if replies != 3 {
		t.Fatalf("replies from n2 during the partition = %d, want 3\n%s", replies, strings.Join(w.trace, "\n"))
	}

	w.logf("heal n0 n1")
	w.nw.Heal("10.0.0.1", "10.0.0.2")
	for i := 0; replies == 3 && i < 50; i++ { // asks fail at once while n1 is known down, until a redial
		do(simAsk{echo1, fmt.Sprintf("r%d", i)})
		w.run(200 * time.Millisecond)
	}
	if replies != 4 {
		t.Fatalf("no reply from n1 after the heal\n%s", strings.Join(w.trace, "\n"))
	}
	do(simSend{sink, "s2"})
	w.run(time.Second)

	// A cut resets the connections at once: n2 is down without waiting
	// for the heartbeat timeout.
	w.logf("cut n0 n2")
	w.nw.Cut("10.0.0.1", "10.0.0.3")
	w.run(10 * time.Millisecond)
	if downs != 2 {
		t.Fatalf("downs after the cut = %d, want 2 (echo1, echo2)\n%s", downs, strings.Join(w.trace, "\n"))
	}
	for i := 0; replies == 4 && i < 50; i++ {
		do(simAsk{echo2, fmt.Sprintf("c%d", i)})
		w.run(200 * time.Millisecond)
	}
	if replies != 5 {
		t.Fatalf("no reply from n2 after the cut\n%s", strings.Join(w.trace, "\n"))
	}
	return w.trace
}

// The same remote.Node code on the in-memory driver: a three-node cluster
// with asks, sends, monitors, a partition that leads to node down after
// the heartbeat timeout and a heal with reconnect, on virtual time, in one
// goroutine. The same seed gives the same trace, event for event.
func TestMemnetClusterReproducible(t *testing.T) {
	const seed = 16
	wall := time.Now()
	a := runMemCluster(t, seed)
	b := runMemCluster(t, seed)
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("runs with seed %d differ at event %d:\n  %s\n  %s", seed, i, a[i], b[i])
			}
		}
		t.Fatalf("runs with seed %d differ in length: %d and %d events", seed, len(a), len(b))
	}
	for _, want := range []string{"n1 received s1", "n0 down echo1: node down", "n1 received s2", "n0 down echo2: node down"} {
		if !slices.ContainsFunc(a, func(s string) bool { return strings.HasSuffix(s, want) }) {
			t.Errorf("no %q in the trace", want)
		}
	}
	c := runMemCluster(t, seed+1)
	if slices.Equal(a, c) {
		t.Errorf("seeds %d and %d gave the same trace", seed, seed+1)
	}
	if testing.Verbose() {
		t.Log("trace:\n" + strings.Join(a, "\n"))
	}
	t.Logf("sim seed=%d events=%d digest=%x (wall %v)", seed, len(a), sha256.Sum256([]byte(strings.Join(a, "\n"))), time.Since(wall))
}
