package supervisor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// claimCluster is a Cluster that is an Adopter: it claims the refs in
// alive, refuses the others.
type claimCluster struct {
	Cluster
	mu      sync.Mutex
	alive   map[actor.Ref]bool
	claimed []actor.Ref
}

var errGone = errors.New("gone")

func (c *claimCluster) AdoptAsync(owner, child actor.Ref, _ time.Duration, done func(error)) {
	c.mu.Lock()
	ok := c.alive[child]
	if ok {
		c.claimed = append(c.claimed, child)
	}
	c.mu.Unlock()
	if !ok {
		done(errGone)
		return
	}
	go done(nil)
}

// A supervisor lets go of its remote children (Detach): they neither stop
// nor restart when it ends. A second supervisor adopts the one still
// alive (same ref, no start, linked: its crash is restarted there) and
// starts afresh the one that has gone.
func TestDetachThenAdopt(t *testing.T) {
	n := newThreeNodes(t)
	spec := func(cl Cluster, adopt map[string]Detached) Spec {
		return Spec{MaxR: 10, MaxT: time.Hour, Cluster: cl, Adopt: adopt,
			Children: []ChildSpec{remoteProbe("b", n.b.addr()), remoteProbe("c", n.c.addr())}}
	}
	old := spawnSup(t, n.a.sys, spec(n.cluster(), nil))
	expectWait(t, n.rec, "start b", "start c")
	before := waitChildren(t, n.a.sys, old, "both running", running("b", "c"))
	v, err := ask(t, n.a.sys, old, Detach{})
	if err != nil {
		t.Fatal(err)
	}
	det := v.([]Detached)
	if len(det) != 2 || det[0].ID != "b" || det[0].Ref != refOf(before, "b") || det[0].Node != n.b.addr() || det[1].ID != "c" {
		t.Fatalf("detached %+v, children were %+v", det, before)
	}
	if _, err := ask(t, n.a.sys, old, WhichChildren{}); !errors.Is(err, ErrExiting) {
		t.Fatalf("a detached supervisor answers a request: %v", err)
	}
	// Killed: a child still linked would get the exit signal and end.
	killAndWait(t, n.a.sys, old)
	// Neither child stopped with the supervisor.
	for _, d := range det {
		if v, err := ask(t, n.a.sys, d.Ref, "ping"); err != nil || v != "pong "+d.ID {
			t.Fatalf("%s after its supervisor ended: %v %v", d.ID, v, err)
		}
	}
	if got := n.rec.take(); len(got) != 0 {
		t.Fatalf("children stopped or restarted with the detached supervisor: %q", got)
	}
	// c goes meanwhile; the cluster refuses to claim it.
	stopAndWait(t, n.a.sys, det[1].Ref)
	expectWait(t, n.rec, "stop c normal")
	cl := &claimCluster{Cluster: n.cluster(), alive: map[actor.Ref]bool{det[0].Ref: true}}
	adopt := map[string]Detached{"b": det[0], "c": det[1]}
	sup := spawnSup(t, n.a.sys, spec(cl, adopt))
	expectWait(t, n.rec, "start c")
	after := waitChildren(t, n.a.sys, sup, "both running", running("b", "c"))
	if refOf(after, "b") != det[0].Ref || nodeOf(after, "b") != n.b.addr() || refOf(after, "c") == det[1].Ref {
		t.Fatalf("after adoption %+v, detached %+v", after, det)
	}
	// c was started, not linked dead and restarted: no exit, no restart
	// counted.
	for _, k := range n.reps.kinds() {
		if strings.Contains(strings.ToLower(k), "exit") {
			t.Fatalf("a child exited under the new supervisor: reports %v", n.reps.kinds())
		}
	}
	// Linked: b's crash is b's supervisor's to restart.
	send(t, n.a.sys, det[0].Ref, "crash")
	expectWait(t, n.rec, crashLine("b"), "start b")
	waitChildren(t, n.a.sys, sup, "b restarted", func(ch []ChildInfo) bool {
		return running("b", "c")(ch) && refOf(ch, "b") != det[0].Ref
	})
	if _, err := ask(t, n.a.sys, sup, Shutdown{}); err != nil {
		t.Fatal(err)
	}
	expectWait(t, n.rec, "stop c shutdown", "stop b shutdown")
}

// stopAndWait stops r (any node) and waits for it to have ended.
func stopAndWait(t *testing.T, s *actor.System, r actor.Ref) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Stop(ctx, r); err != nil {
		t.Fatalf("stop %v: %v", r, err)
	}
}

// killAndWait kills r and waits for it to have ended.
func killAndWait(t *testing.T, s *actor.System, r actor.Ref) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Kill(ctx, r); err != nil {
		t.Fatalf("kill %v: %v", r, err)
	}
}
