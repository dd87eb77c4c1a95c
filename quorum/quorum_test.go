package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
	"github.com/actord/actord/remote"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func newSystem(t testing.TB) *actor.System {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	return sys
}

func spawn(t testing.TB, sys *actor.System, f fnActor, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return f }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// answer replies with its name and the question.
func answer(name string) fnActor {
	return func(c *actor.Context, msg any) (any, error) { return fmt.Sprintf("%s:%v", name, msg), nil }
}

// silent never answers (its replies are kept, so they are never failed as
// dropped).
func silent(held *[]*actor.Reply) fnActor {
	return func(c *actor.Context, msg any) (any, error) {
		*held = append(*held, c.Defer())
		return nil, nil
	}
}

func crasher(c *actor.Context, msg any) (any, error) { panic("replica crashed") }

// deadRef returns the ref of an actor that has stopped.
func deadRef(t testing.TB, sys *actor.System) actor.Ref {
	t.Helper()
	r := spawn(t, sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(c.Self(), nil) })
	if _, err := sys.Ask(context.Background(), r, "die"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Ask(context.Background(), r, "ping"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("actor still alive: %v", err)
	}
	return r
}

type call struct {
	refs []actor.Ref
	msg  any
	need int
	d    time.Duration
}

type outcome struct {
	v   any
	err error
}

// driver runs quorum.Ask for each call it gets and reports the outcome.
func driver(t testing.TB, sys *actor.System, out chan<- outcome) actor.Ref {
	return spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
		if q, ok := msg.(call); ok {
			quorum.Ask(c, q.refs, q.msg, q.need, q.d).Then(func(_ *actor.Context, v any, err error) {
				out <- outcome{v, err}
			})
		}
		return nil, nil
	}, actor.OnLoop(0))
}

func recv(t testing.TB, ch <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func results(t testing.TB, o outcome) []quorum.Result {
	t.Helper()
	if o.err != nil {
		t.Fatalf("quorum failed: %v", o.err)
	}
	res, ok := o.v.([]quorum.Result)
	if !ok {
		t.Fatalf("value %T, want []quorum.Result", o.v)
	}
	return res
}

func quorumErr(t testing.TB, err error) *quorum.Error {
	t.Helper()
	var qe *quorum.Error
	if !errors.As(err, &qe) || !errors.Is(err, quorum.ErrNoQuorum) {
		t.Fatalf("error %v (%T) is not a *quorum.Error matching ErrNoQuorum", err, err)
	}
	return qe
}

func TestAskSettlesWithTheFirstNeedReplies(t *testing.T) {
	sys := newSystem(t)
	var held []*actor.Reply
	a1, a2, a3 := spawn(t, sys, answer("a1")), spawn(t, sys, answer("a2")), spawn(t, sys, answer("a3"))
	s1, s2 := spawn(t, sys, silent(&held), actor.OnLoop(1)), spawn(t, sys, silent(&held), actor.OnLoop(1))
	out := make(chan outcome, 1)
	d := driver(t, sys, out)
	// The silent ones would hold the call for a minute: it must not wait.
	if err := sys.Send(d, call{[]actor.Ref{a1, s1, a2, s2, a3}, "q", 3, time.Minute}); err != nil {
		t.Fatal(err)
	}
	res := results(t, recv(t, out, "the quorum"))
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	got := map[actor.Ref]any{}
	for _, r := range res {
		got[r.From] = r.Value
	}
	for r, name := range map[actor.Ref]string{a1: "a1", a2: "a2", a3: "a3"} {
		if got[r] != name+":q" {
			t.Errorf("result of %s = %v", name, got[r])
		}
	}
}

func TestAskFailsAsSoonAsTheQuorumIsUnreachable(t *testing.T) {
	sys := newSystem(t)
	var held []*actor.Reply
	dead1, dead2 := deadRef(t, sys), deadRef(t, sys)
	crash := spawn(t, sys, crasher)
	s := spawn(t, sys, silent(&held), actor.OnLoop(1))
	a := spawn(t, sys, answer("a"))
	out := make(chan outcome, 1)
	d := driver(t, sys, out)
	// 3 of 5 needed; 3 fail at once, so the silent one (a minute) is not awaited.
	if err := sys.Send(d, call{[]actor.Ref{dead1, crash, a, s, dead2}, "q", 3, time.Minute}); err != nil {
		t.Fatal(err)
	}
	o := recv(t, out, "the failure")
	qe := quorumErr(t, o.err)
	if qe.Need != 3 || qe.Asked != 5 || len(qe.Failed) != 3 {
		t.Fatalf("error %+v, want need 3 of 5 with 3 failures", qe)
	}
	if !errors.Is(o.err, actor.ErrDead) || !errors.Is(o.err, actor.ErrCrashed) || errors.Is(o.err, actor.ErrTimeout) {
		t.Fatalf("error %v should match ErrDead and ErrCrashed, not ErrTimeout", o.err)
	}
	for _, f := range qe.Failed {
		if f.From != dead1 && f.From != dead2 && f.From != crash {
			t.Fatalf("failure from %v, which should not have failed", f.From)
		}
	}
	if o.v != nil {
		t.Fatalf("value %v with the error", o.v)
	}
}

func TestAskTimesOut(t *testing.T) {
	sys := newSystem(t)
	var held []*actor.Reply
	s1, s2 := spawn(t, sys, silent(&held), actor.OnLoop(1)), spawn(t, sys, silent(&held), actor.OnLoop(1))
	out := make(chan outcome, 1)
	d := driver(t, sys, out)
	if err := sys.Send(d, call{[]actor.Ref{s1, s2}, "q", 1, 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	o := recv(t, out, "the timeout")
	if qe := quorumErr(t, o.err); len(qe.Failed) != 2 || !errors.Is(o.err, actor.ErrTimeout) {
		t.Fatalf("error %v, want 2 timeouts", o.err)
	}
}

func TestAskEdgeCases(t *testing.T) {
	sys := newSystem(t)
	a := spawn(t, sys, answer("a"))
	out := make(chan outcome, 1)
	d := driver(t, sys, out)
	for _, tc := range []struct {
		name string
		refs []actor.Ref
		need int
		ok   bool
	}{
		{"need 0 asks nobody", []actor.Ref{a}, 0, true},
		{"need above the actors", []actor.Ref{a}, 2, false},
		{"no actors", nil, 1, false},
		{"duplicates count twice", []actor.Ref{a, a}, 2, true},
	} {
		if err := sys.Send(d, call{tc.refs, "q", tc.need, time.Second}); err != nil {
			t.Fatal(err)
		}
		o := recv(t, out, tc.name)
		if tc.ok {
			if res := results(t, o); len(res) != max(tc.need, 0) {
				t.Errorf("%s: %d results", tc.name, len(res))
			}
			continue
		}
		if qe := quorumErr(t, o.err); len(qe.Failed) != 0 || qe.Asked != len(tc.refs) {
			t.Errorf("%s: error %+v", tc.name, qe)
		}
	}
}

func TestWait(t *testing.T) {
	sys := newSystem(t)
	var held []*actor.Reply
	a1, a2 := spawn(t, sys, answer("a1")), spawn(t, sys, answer("a2"))
	s := spawn(t, sys, silent(&held), actor.OnLoop(1))
	dead := deadRef(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := quorum.Wait(ctx, sys, []actor.Ref{a1, s, a2}, "q", 2)
	if err != nil || len(res) != 2 {
		t.Fatalf("Wait = %v, %v", res, err)
	}
	// Unreachable: returns on the second failure, without waiting for s.
	_, err = quorum.Wait(ctx, sys, []actor.Ref{dead, s, dead}, "q", 2)
	if qe := quorumErr(t, err); len(qe.Failed) != 2 || !errors.Is(err, actor.ErrDead) {
		t.Fatalf("Wait with two dead: %v", err)
	}
	// The caller's deadline bounds every ask.
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	_, err = quorum.Wait(short, sys, []actor.Ref{s, a1}, "q", 2)
	if qe := quorumErr(t, err); len(qe.Succeeded) != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
	if res, err := quorum.Wait(ctx, sys, nil, "q", 0); err != nil || len(res) != 0 {
		t.Fatalf("Wait need 0: %v, %v", res, err)
	}
}

// ---- across nodes -------------------------------------------------------------

type node struct {
	sys  *actor.System
	node *remote.Node
	stop func()
}

func startNode(t testing.TB, name string) *node {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	n := remote.New(sys, remote.Config{Name: name, HeartbeatInterval: 50 * time.Millisecond,
		HeartbeatTimeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	stop, err := n.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{sys: sys, node: n}
	nd.stop = func() {
		if stop != nil {
			stop()
			stop = nil
			_ = sys.Shutdown(context.Background())
		}
	}
	t.Cleanup(nd.stop)
	return nd
}

func TestQuorumAcrossNodesWithANodeDown(t *testing.T) {
	client := startNode(t, "client")
	var replicas []actor.Ref
	var nodes []*node
	for i := range 3 {
		nd := startNode(t, fmt.Sprintf("replica-%d", i))
		nd.node.RegisterKind("replica", func(any) (actor.Factory, error) {
			return func() actor.Actor { return answer(fmt.Sprintf("r%d", i)) }, nil
		})
		r, err := client.node.Spawn(context.Background(), nd.node.Addr(), "replica", nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes, replicas = append(nodes, nd), append(replicas, r)
	}
	nodes[2].stop() // one replica's node goes away

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := quorum.Wait(ctx, client.sys, replicas, "read", quorum.Majority(len(replicas)))
	if err != nil || len(res) != 2 {
		t.Fatalf("majority of 3 with one node down: %v, %v", res, err)
	}
	for _, r := range res {
		if r.From == replicas[2] {
			t.Fatalf("a reply from the stopped node: %+v", r)
		}
	}
	// All three needed: fails with the down node's error.
	_, err = quorum.Wait(ctx, client.sys, replicas, "read", 3)
	if qe := quorumErr(t, err); len(qe.Failed) != 1 || qe.Failed[0].From != replicas[2] || !errors.Is(err, remote.ErrNodeDown) {
		t.Fatalf("all of 3 with one node down: %v", err)
	}

	// The same from an actor on the client node.
	out := make(chan outcome, 1)
	d := driver(t, client.sys, out)
	if err := client.sys.Send(d, call{replicas, "write", 2, 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if res := results(t, recv(t, out, "the quorum from an actor")); len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
}

// ---- benchmarks -----------------------------------------------------------------

// benchQuorum: one op = one call asking 3 replicas on another loop and
// settling with 2 replies, from an actor; baseline: the same three asks
// joined with Context.All (which waits for all three).
func benchQuorum(b *testing.B, useAll bool) {
	sys := newSystem(b)
	refs := []actor.Ref{
		spawn(b, sys, answer("r1"), actor.OnLoop(1)),
		spawn(b, sys, answer("r2"), actor.OnLoop(1)),
		spawn(b, sys, answer("r3"), actor.OnLoop(1)),
	}
	done := make(chan error, 1)
	left := 0
	var next func(c *actor.Context)
	next = func(c *actor.Context) {
		var p actor.Promise
		if useAll {
			p = c.All(c.Ask(refs[0], 1), c.Ask(refs[1], 1), c.Ask(refs[2], 1))
		} else {
			p = quorum.Ask(c, refs, 1, 2, 0)
		}
		p.Then(func(c *actor.Context, _ any, err error) {
			if left--; err != nil || left == 0 {
				done <- err
				return
			}
			next(c)
		})
	}
	d := spawn(b, sys, func(c *actor.Context, msg any) (any, error) {
		left = msg.(int)
		next(c)
		return nil, nil
	}, actor.OnLoop(0))
	b.ReportAllocs()
	b.ResetTimer()
	if err := sys.Send(d, b.N); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkQuorumAsk(b *testing.B)          { benchQuorum(b, false) }
func BenchmarkBaselineAllOfThree(b *testing.B) { benchQuorum(b, true) }
