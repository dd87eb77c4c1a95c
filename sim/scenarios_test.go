package sim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Scenarios of remote/'s socket tests (links, monitors, reconnect, node
// down, slow peer) under the simulator, with faults that real sockets
// cannot produce on demand: a one-way partition, a machine that loses
// power and comes back with the same identity, a peer slowed to a crawl.

// watcher is an actor that traps exits and records the Downs and exit
// signals it gets, by the ref they name.
type watcher struct {
	downs, exits map[actor.Ref][]error
}

func newWatcher() *watcher {
	return &watcher{downs: map[actor.Ref][]error{}, exits: map[actor.Ref][]error{}}
}

type (
	watchLink    struct{ to actor.Ref }
	watchMonitor struct{ to actor.Ref }
	watchTrap    struct{}
)

func (wt *watcher) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case watchLink:
		c.TrapExits(true)
		return nil, c.Link(m.to)
	case watchMonitor:
		return nil, c.Monitor(m.to)
	case watchTrap:
		c.TrapExits(true)
	case actor.Down:
		wt.downs[m.Ref] = append(wt.downs[m.Ref], m.Reason)
	case actor.Exited:
		wt.exits[m.From] = append(wt.exits[m.From], m.Reason)
	}
	return nil, nil
}

func spawnOrFail(t *testing.T, n *Node, a actor.Actor) actor.Ref {
	t.Helper()
	r, err := n.Spawn(func() actor.Actor { return a })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func refOrFail(t *testing.T, w *World, r actor.Ref, owner, viewer *Node) actor.Ref {
	t.Helper()
	rr, err := w.Ref(r, owner, viewer)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func timeline(w *World) string { return strings.Join(w.Timeline(), "\n") }

// A one-way partition: b's segments to a are dropped. a hears nothing from
// b, declares it down after the heartbeat timeout and ends its link and
// monitor at once; b, which still hears a, learns when a's connection to
// it closes. After the block, the nodes reconnect and a new link works.
func TestScenarioOneWayPartition(t *testing.T) {
	w := New(Config{Seed: 3, Timeline: 4000})
	defer w.Close()
	a, b := w.MustAddNode("a", nil), w.MustAddNode("b", nil)
	wa := newWatcher()
	ra := spawnOrFail(t, a, wa)
	wb := newWatcher()
	rb := spawnOrFail(t, b, wb)
	_ = b.Send(rb, watchTrap{}) // b's half records the exit signal rather than stopping
	rbA := refOrFail(t, w, rb, b, a)
	if err := a.Send(ra, watchLink{rbA}); err != nil {
		t.Fatal(err)
	}
	_ = a.Send(ra, watchMonitor{rbA})
	w.Run(500 * time.Millisecond)

	w.Block(b, a)
	start := w.Now()
	if !w.RunUntil(10*time.Second, func() bool { return len(wa.exits[rbA]) == 1 && len(wa.downs[rbA]) == 1 }) {
		t.Fatalf("a did not end its link and monitor: exits %v downs %v\n%s", wa.exits, wa.downs, timeline(w))
	}
	if took := w.Now().Sub(start); took < time.Second {
		t.Fatalf("a declared b down after %v, before its heartbeat timeout", took)
	}
	raB := refOrFail(t, w, ra, a, b)
	if !w.RunUntil(10*time.Second, func() bool { return len(wb.exits[raB]) == 1 }) {
		t.Fatalf("b kept its half of the link: exits %v\n%s", wb.exits, timeline(w))
	}
	for _, errs := range [][]error{wa.exits[rbA], wa.downs[rbA], wb.exits[raB]} {
		if !errors.Is(errs[0], remote.ErrNodeDown) {
			t.Fatalf("reason %v, want node down", errs[0])
		}
	}

	w.Unblock(b, a)
	w.Run(2 * time.Second)
	rb2 := refOrFail(t, w, spawnOrFail(t, b, newWatcher()), b, a)
	v, err := a.Ask(rb2, "ping", 3*time.Second)
	if err != nil {
		t.Fatalf("after the block: %v %v\n%s", v, err, timeline(w))
	}
	t.Log(w.Summary())
}

// A machine loses power and comes back with the same name, key and
// address: the other node learns of the crash by its heartbeat timeout
// (no reset: nobody answers), ends its link and monitor with node down,
// and reaches the new incarnation afterwards; the old ref stays dead.
func TestScenarioCrashRestart(t *testing.T) {
	w := New(Config{Seed: 5, Timeline: 4000})
	defer w.Close()
	echo := fn(func(c *actor.Context, msg any) (any, error) { return msg, nil })
	var served actor.Ref
	init := func(n *Node) error {
		r, err := n.Spawn(func() actor.Actor { return echo })
		served = r
		return err
	}
	a := w.MustAddNode("a", nil)
	b := w.MustAddNode("b", init)
	wa := newWatcher()
	ra := spawnOrFail(t, a, wa)
	old := refOrFail(t, w, served, b, a)
	_ = a.Send(ra, watchLink{old})
	_ = a.Send(ra, watchMonitor{old})
	if v, err := a.Ask(old, "x", time.Second); err != nil || v != "x" {
		t.Fatalf("before the crash: %v %v", v, err)
	}

	w.Crash(b)
	start := w.Now()
	if !w.RunUntil(10*time.Second, func() bool { return len(wa.exits[old]) == 1 && len(wa.downs[old]) == 1 }) {
		t.Fatalf("no node-down after the crash: %v %v\n%s", wa.exits, wa.downs, timeline(w))
	}
	if took := w.Now().Sub(start); took < time.Second {
		t.Fatalf("b down after %v: a crashed machine sends no reset", took)
	}
	if err := w.Restart(b); err != nil {
		t.Fatal(err)
	}
	fresh := refOrFail(t, w, served, b, a)
	var v any
	var err error
	for i := 0; i < 20; i++ { // refused at once while b is known down, until a redial
		if v, err = a.Ask(fresh, "y", time.Second); err == nil {
			break
		}
		w.Run(200 * time.Millisecond)
	}
	if err != nil || v != "y" {
		t.Fatalf("the new incarnation: %v %v\n%s", v, err, timeline(w))
	}
	if _, err := a.Ask(old, "z", time.Second); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the old incarnation's ref answered: %v", err)
	}
	if len(wa.exits[old]) != 1 || len(wa.downs[old]) != 1 {
		t.Fatalf("signals repeated: %v %v", wa.exits, wa.downs)
	}
}

// A slow peer: every loop event on b takes 50 ms of virtual time, so a's
// asks time out while b's network still answers heartbeats (b is not
// declared down); once b is fast again, asks are answered.
func TestScenarioSlowPeer(t *testing.T) {
	w := New(Config{Seed: 9, Timeline: 4000})
	defer w.Close()
	a, b := w.MustAddNode("a", nil), w.MustAddNode("b", nil)
	echo := fn(func(c *actor.Context, msg any) (any, error) { return msg, nil })
	r := refOrFail(t, w, spawnOrFail(t, b, echo), b, a)
	if _, err := a.Ask(r, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	// A backlog on the slowed b, then an ask that waits behind it.
	b.SetSlow(50 * time.Millisecond)
	for i := 0; i < 100; i++ {
		_ = a.Send(r, i)
	}
	_, err := a.Ask(r, 2, 500*time.Millisecond)
	if !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("ask to a slow peer: %v, want a timeout\n%s", err, timeline(w))
	}
	if downs := a.Remote().Stats().PeersDown; downs != 0 {
		t.Fatalf("a slow peer was declared down %d times", downs)
	}
	b.SetSlow(0)
	w.Run(time.Second)
	if v, err := a.Ask(r, 3, time.Second); err != nil || v != 3 {
		t.Fatalf("after the slowness: %v %v", v, err)
	}
}
