package supervisor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Remote children: a supervisor on node a, children on nodes b and c, all
// three nodes in this process over 127.0.0.1. The probes of every node log
// to one recorder, and a supervisor waits for the acknowledgement of each
// remote stop before its next step, so the order of the lines is the order
// of the steps.

const probeKind = "test.probe"

var refText = regexp.MustCompile(`<[^>]*>`)

type testNode struct {
	sys  *actor.System
	node *remote.Node
	stop func() // stops the node's network (its system keeps running)
}

func (tn *testNode) addr() string { return tn.node.Addr() }

type threeNodes struct {
	a, b, c *testNode
	rec     *recorder
	reps    *reports // a's supervisor reports
}

// newThreeNodes starts three nodes that know each other as members (as the
// cluster package tells them: PeerUp), each able to spawn probes.
func newThreeNodes(t *testing.T) *threeNodes {
	t.Helper()
	tn := &threeNodes{rec: newRecorder(), reps: newReports()}
	mk := func(name string, hook actor.Hook) *testNode {
		sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, Logger: quiet, OnCrash: func(*actor.Crash) {}, LifecycleHook: hook})
		n := remote.New(sys, remote.Config{Name: name, Logger: quiet,
			// Failures are detected by lost connections here, not by
			// heartbeats: a generous timeout keeps a slow run from
			// declaring a node down.
			HeartbeatInterval: time.Second, HeartbeatTimeout: 30 * time.Second})
		remote.RegisterKindOf(n, probeKind, func(id string) (actor.Factory, error) { return probeF(tn.rec, id), nil })
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		stop, err := n.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x := &testNode{sys: sys, node: n, stop: stop}
		t.Cleanup(func() {
			x.stopNet()
			shutdown(t, sys)
		})
		return x
	}
	tn.a, tn.b, tn.c = mk("a", tn.reps.hook), mk("b", nil), mk("c", nil)
	for _, x := range []*testNode{tn.a, tn.b, tn.c} {
		for _, y := range []*testNode{tn.a, tn.b, tn.c} {
			if x != y {
				x.node.PeerUp(y.addr())
			}
		}
	}
	return tn
}

func (tn *testNode) stopNet() {
	if tn.stop != nil {
		tn.stop()
		tn.stop = nil
	}
}

// cluster is the NodeSet of a's peers.
func (n *threeNodes) cluster() Cluster {
	return remote.NewNodeSet(n.a.node, n.b.addr(), n.c.addr())
}

func remoteProbe(id, node string) ChildSpec {
	return RemoteWorker(id, Remote{Kind: probeKind, Args: id, Node: node})
}

// waitChildren polls a supervisor until ok accepts its children.
func waitChildren(t *testing.T, s *actor.System, sup actor.Ref, what string, ok func([]ChildInfo) bool) []ChildInfo {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ch := children(t, s, sup)
		if ok(ch) {
			return ch
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; children %+v", what, ch)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func running(ids ...string) func([]ChildInfo) bool {
	return func(ch []ChildInfo) bool {
		var got []string
		for _, c := range ch {
			if c.Running {
				got = append(got, c.ID)
			}
		}
		return slices.Equal(got, ids)
	}
}

// waitLines waits until the recorder has logged n lines (since the last
// take) and returns them.
func waitLines(t *testing.T, rec *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		rec.mu.Lock()
		k := len(rec.lines)
		rec.mu.Unlock()
		if k >= n {
			return rec.take()
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d lines; got %q", n, rec.take())
		}
		select {
		case <-rec.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func expectWait(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	got := waitLines(t, rec, len(want))
	for i, l := range got {
		got[i] = refText.ReplaceAllString(l, "<ref>")
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("log:\n got  %q\n want %q", got, want)
	}
}

func nodeOf(ch []ChildInfo, id string) string {
	for _, c := range ch {
		if c.ID == id {
			return c.Node
		}
	}
	return ""
}

func refOf(ch []ChildInfo, id string) actor.Ref {
	for _, c := range ch {
		if c.ID == id {
			return c.Ref
		}
	}
	return actor.Ref{}
}

// Every strategy with a child on each of three nodes: the local child l on
// a, b on node b, c on node c. A crash of b takes down and restarts what the
// strategy says, remote siblings included, in OTP's order: stops in reverse
// start order, each acknowledged before the next step, then starts in start
// order; a remote child's restart is a fresh spawn (a new ref).
func TestRemoteChildrenStrategies(t *testing.T) {
	for _, tc := range []struct {
		strategy Strategy
		want     []string
	}{
		{OneForOne, []string{"start b"}},
		{OneForAll, []string{"stop c shutdown", "stop l restart", "start l", "start b", "start c"}},
		{RestForOne, []string{"stop c shutdown", "start b", "start c"}},
	} {
		t.Run(tc.strategy.String(), func(t *testing.T) {
			n := newThreeNodes(t)
			sup := spawnSup(t, n.a.sys, Spec{Strategy: tc.strategy, MaxR: 10, MaxT: time.Hour, Cluster: n.cluster(),
				Children: []ChildSpec{Worker("l", probeF(n.rec, "l")), remoteProbe("b", n.b.addr()), remoteProbe("c", n.c.addr())}})
			expectWait(t, n.rec, "start l", "start b", "start c")
			before := waitChildren(t, n.a.sys, sup, "all running", running("l", "b", "c"))
			if nodeOf(before, "b") != n.b.addr() || nodeOf(before, "c") != n.c.addr() || nodeOf(before, "l") != "" {
				t.Fatalf("children on the wrong nodes: %+v", before)
			}
			if !refOf(before, "b").IsRemote() {
				t.Fatalf("b is not remote: %v", refOf(before, "b"))
			}
			send(t, n.a.sys, refOf(before, "b"), "crash")
			// A remote child is not suspended by a crash (it is not its
			// node's supervised child): it stops, its Terminate runs.
			expectWait(t, n.rec, append([]string{crashLine("b")}, tc.want...)...)
			after := waitChildren(t, n.a.sys, sup, "all running again", running("l", "b", "c"))
			if refOf(after, "b") == refOf(before, "b") {
				t.Fatal("b kept its ref: not a fresh remote spawn")
			}
			if v, err := ask(t, n.a.sys, refOf(after, "b"), "ping"); err != nil || v != "pong b" {
				t.Fatalf("new b answers %v, %v", v, err)
			}
			// An orderly shutdown stops the remote children too, in
			// reverse start order, each acknowledged.
			if _, err := ask(t, n.a.sys, sup, Shutdown{}); err != nil {
				t.Fatal(err)
			}
			expectWait(t, n.rec, "stop c shutdown", "stop b shutdown", "stop l shutdown")
		})
	}
}

// SimpleOneForOne with a remote template: StartChild passes each child its
// own Remote (arguments); the default placement spreads them over the live
// nodes, and a crashed one is restarted by a fresh spawn.
func TestRemoteChildrenSimpleOneForOne(t *testing.T) {
	n := newThreeNodes(t)
	sup := spawnSup(t, n.a.sys, Spec{Strategy: SimpleOneForOne, MaxR: 10, MaxT: time.Hour, Cluster: n.cluster(),
		Children: []ChildSpec{RemoteWorker("w", Remote{Kind: probeKind})}})
	var refs []actor.Ref
	for _, id := range []string{"w1", "w2"} {
		v, err := ask(t, n.a.sys, sup, StartChild{Spec: ChildSpec{Remote: Remote{Kind: probeKind, Args: id}}})
		if err != nil {
			t.Fatalf("StartChild %s: %v", id, err)
		}
		refs = append(refs, v.(actor.Ref))
	}
	expectWait(t, n.rec, "start w1", "start w2")
	ch := children(t, n.a.sys, sup)
	nodes := []string{ch[0].Node, ch[1].Node}
	slices.Sort(nodes)
	want := []string{n.b.addr(), n.c.addr()}
	slices.Sort(want)
	if !slices.Equal(nodes, want) {
		t.Fatalf("children on %v, want spread over %v", nodes, want)
	}
	send(t, n.a.sys, refs[0], "crash")
	expectWait(t, n.rec, crashLine("w1"), "start w1")
	if _, err := ask(t, n.a.sys, sup, TerminateChild{Ref: refs[1]}); err != nil {
		t.Fatal(err)
	}
	expectWait(t, n.rec, "stop w2 shutdown")
}

// A remote child that does not end within its shutdown timeout (its loop
// is stuck in a handler) is reported killed, and the supervisor goes on;
// the child then ends without its Terminate when its loop gets to the
// request.
func TestRemoteChildShutdownTimeoutKills(t *testing.T) {
	n := newThreeNodes(t)
	cs := remoteProbe("b", n.b.addr())
	cs.Shutdown = 50 * time.Millisecond
	sup := spawnSup(t, n.a.sys, Spec{Cluster: n.cluster(), Children: []ChildSpec{cs, remoteProbe("c", n.c.addr())}})
	expectWait(t, n.rec, "start b", "start c")
	b := refOf(children(t, n.a.sys, sup), "b")
	// Watch b from its own node (before its loop is blocked, so that the
	// monitor is in place before the stop reaches it).
	dn := make(chan actor.Down, 1)
	lb := n.localOf(t, n.b, b)
	w := spawn(t, n.b.sys, watcherF(dn))
	if _, err := ask(t, n.b.sys, w, doMsg(func(c *actor.Context) (any, error) { return nil, c.Monitor(lb) })); err != nil {
		t.Fatal(err)
	}
	blk := blockMsg{entered: make(chan struct{}), release: make(chan struct{})}
	// b's loop is on node b: block it from there (a blockMsg cannot cross).
	if err := n.b.sys.Send(lb, blk); err != nil {
		t.Fatal(err)
	}
	<-blk.entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_, err := n.a.sys.Ask(ctx, sup, Shutdown{})
		shut <- err
	}()
	// The stop request reaches b's node, queued behind the blocked
	// handler: b's own deadline for it counts from then.
	loopB, _, _ := lb.ID()
	var arrived time.Time
	waitUntil(t, "the stop request at b's loop", func() bool {
		if n.b.sys.Stats()[loopB].Control > 0 {
			arrived = time.Now()
			return true
		}
		return false
	})
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	rep := n.reps.wait(t, ChildKilled)
	if rep.ChildID != "b" {
		t.Fatalf("killed %q, want b", rep.ChildID)
	}
	expectWait(t, n.rec, "stop c shutdown")
	// b is released once its own deadline for the stop has passed too
	// (on a loaded machine the request may reach b well after the
	// supervisor sent it): b is then killed, not stopped.
	waitUntil(t, "b's deadline for the stop", func() bool { return time.Since(arrived) > 2*cs.Shutdown })
	close(blk.release)
	select {
	case d := <-dn:
		if !errors.Is(d.Reason, actor.ErrKilled) {
			t.Fatalf("b ended with %v, want killed", d.Reason)
		}
	case <-time.After(waitFor):
		t.Fatal("b never ended")
	}
	if got := n.rec.take(); len(got) != 0 {
		t.Fatalf("b's Terminate ran: %q", got)
	}
}

// localOf turns a's remote ref r to an actor of tn into tn's own ref to it.
func (n *threeNodes) localOf(t *testing.T, tn *testNode, r actor.Ref) actor.Ref {
	t.Helper()
	name, addr, id, ok := n.a.node.ExportRef(r)
	if !ok || addr != tn.addr() {
		t.Fatalf("%v is not a ref to an actor of %s", r, tn.node.Name())
	}
	l, err := tn.node.ImportRef(name, addr, id)
	if err != nil || l.IsZero() || l.IsRemote() {
		t.Fatalf("import %v on %s: %v, %v", r, tn.node.Name(), l, err)
	}
	return l
}

// A node whose network stops takes its children with it: each counts as an
// exit with a reason matching remote.ErrNodeDown, is restarted on another
// live node, and counts towards the restart intensity.
func TestRemoteChildNodeDownRestartsElsewhere(t *testing.T) {
	n := newThreeNodes(t)
	sup := spawnSup(t, n.a.sys, Spec{MaxR: 1, MaxT: time.Hour, Cluster: n.cluster(),
		Children: []ChildSpec{
			RemoteWorker("x", Remote{Kind: probeKind, Args: "x"}),
			RemoteWorker("y", Remote{Kind: probeKind, Args: "y"}),
		}})
	before := waitChildren(t, n.a.sys, sup, "x and y running", running("x", "y"))
	if nodeOf(before, "x") == nodeOf(before, "y") {
		t.Fatalf("x and y both on %s: not spread", nodeOf(before, "x"))
	}
	byAddr := map[string]*testNode{n.b.addr(): n.b, n.c.addr(): n.c}
	lost, other := nodeOf(before, "x"), nodeOf(before, "y")
	n.rec.take()

	byAddr[lost].stopNet()

	exit := n.reps.wait(t, ChildExited)
	if exit.ChildID != "x" || !errors.Is(exit.Reason, remote.ErrNodeDown) {
		t.Fatalf("exit report %s: %v, want x with a node-down reason", exit.ChildID, exit.Reason)
	}
	after := waitChildren(t, n.a.sys, sup, "x restarted", func(ch []ChildInfo) bool {
		return running("x", "y")(ch) && refOf(ch, "x") != refOf(before, "x")
	})
	if nodeOf(after, "x") != other {
		t.Fatalf("x restarted on %s, want %s (the live node)", nodeOf(after, "x"), other)
	}
	// That restart counted: one more (MaxR 1) makes the supervisor give up.
	send(t, n.a.sys, refOf(after, "y"), "crash")
	rep := n.reps.wait(t, GaveUp)
	if !errors.Is(rep.Reason, ErrTooManyRestarts) {
		t.Fatalf("gave up with %v", rep.Reason)
	}
}

// Node failures alone exhaust the intensity: the supervisor gives up
// (ErrTooManyRestarts) and its parent sees the child supervisor end with
// that reason.
func TestRemoteNodeFailuresEscalate(t *testing.T) {
	n := newThreeNodes(t)
	inner := Spec{MaxR: 1, MaxT: time.Hour, Cluster: n.cluster(), Logger: quiet,
		Children: []ChildSpec{
			RemoteWorker("x", Remote{Kind: probeKind, Args: "x"}),
			RemoteWorker("y", Remote{Kind: probeKind, Args: "y"}),
		}}
	sub := Sub("inner", inner)
	sub.Restart = Transient // a give-up is a shutdown: not restarted, so the test sees it once
	top := spawnSup(t, n.a.sys, Spec{Name: "top", Children: []ChildSpec{sub}})
	innerRef := refOf(children(t, n.a.sys, top), "inner")
	before := waitChildren(t, n.a.sys, innerRef, "x and y running", running("x", "y"))
	byAddr := map[string]*testNode{n.b.addr(): n.b, n.c.addr(): n.c}
	first, second := byAddr[nodeOf(before, "x")], byAddr[nodeOf(before, "y")]

	first.stopNet() // x restarts on the second node: one restart
	waitChildren(t, n.a.sys, innerRef, "x moved", func(ch []ChildInfo) bool {
		return running("x", "y")(ch) && nodeOf(ch, "x") == second.addr()
	})
	second.stopNet() // both exit: a second restart is one too many

	var gaveUp, exited *Report
	deadline := time.After(waitFor)
	for gaveUp == nil || exited == nil {
		select {
		case rep := <-n.reps.ch:
			switch {
			case rep.Kind == GaveUp && rep.Supervisor == "top/inner":
				gaveUp = rep
			case rep.Kind == ChildExited && rep.Supervisor == "top" && rep.ChildID == "inner":
				exited = rep
			}
		case <-deadline:
			t.Fatalf("no give-up and escalation; reports %v", n.reps.kinds())
		}
	}
	for _, r := range []*Report{gaveUp, exited} {
		if !errors.Is(r.Reason, ErrTooManyRestarts) || !strings.Contains(r.Reason.Error(), "node down") {
			t.Fatalf("%v report: %v, want too many restarts after a node down", r.Kind, r.Reason)
		}
	}
	if ch := children(t, n.a.sys, top); ch[0].Running {
		t.Fatalf("inner still running: %+v", ch)
	}
}

// crashLine is the line a probe's Terminate logs after a crash.
func crashLine(id string) string {
	return fmt.Sprintf("stop %s actor <ref> crashed: crash %s", id, id)
}

// A child supervisor started on another node follows its parent as a local
// one does: when the parent is killed, or the parent's node is lost (as in
// a partition, once the child's side sees it), the remote subtree stops in
// order instead of running on without a supervisor.
func TestRemoteChildSupervisorFollowsParent(t *testing.T) {
	for _, how := range []string{"parent killed", "parent's node lost"} {
		t.Run(how, func(t *testing.T) {
			n := newThreeNodes(t)
			remote.RegisterKindOf(n.b.node, "test.subtree", func(string) (actor.Factory, error) {
				return New(Spec{Name: "sub", Logger: quiet, Children: workers(n.rec, "p1", "p2")}), nil
			})
			top := spawnSup(t, n.a.sys, Spec{Cluster: n.cluster(), Children: []ChildSpec{
				{ID: "sub", Supervisor: true, Remote: Remote{Kind: "test.subtree", Node: n.b.addr()}},
			}})
			expectWait(t, n.rec, "start p1", "start p2")
			sub := waitChildren(t, n.a.sys, top, "sub running", running("sub"))[0].Ref
			// The parent introduced itself right after linking, before
			// this ask on the same connection: the answer (any) means
			// the introduction was handled.
			_, _ = ask(t, n.a.sys, sub, "sync")
			if how == "parent killed" {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				if err := n.a.sys.Kill(ctx, top); err != nil {
					t.Fatal(err)
				}
			} else {
				n.a.stopNet()
			}
			expectWait(t, n.rec, "stop p2 shutdown", "stop p1 shutdown")
		})
	}
}
