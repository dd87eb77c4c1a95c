package quorum_test

import (
	"runtime"
	"testing"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// heldEcho answers each ask with its request once it gets "release".
type heldEcho struct{ held []func() }

func (h *heldEcho) Receive(c *actor.Context, msg any) (any, error) {
	if msg == "release" {
		for _, f := range h.held {
			f()
		}
		h.held = nil
		return nil, nil
	}
	rep := c.Defer()
	h.held = append(h.held, func() { rep.Reply(msg, nil) })
	return nil, nil
}

// driver runs what the test sends it (a func) inside an actor.
func driver(c *actor.Context, msg any) (any, error) {
	msg.(func(*actor.Context))(c)
	return nil, nil
}

// A call is reused only once every continuation of its asks has run: a
// reply that comes after the call settled is counted by that call, never
// by a later call that would have taken its place.
func TestPooledCallWaitsForLateReplies(t *testing.T) {
	// One P: a call put back is the next one taken (sync.Pool's slots are
	// per P), so a call reused too early would be B.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	sys := newSystem(t)
	m := newManager(t, sys)
	held := &heldEcho{}
	h, err := sys.Spawn(t.Context(), func() actor.Actor { return held }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, m, nil, spawn(t, sys, answer, actor.OnLoop(0)), spawn(t, sys, answer, actor.OnLoop(0)), h)
	need := func(k int) quorum.Spec[int, int, []int] {
		return quorum.Spec[int, int, []int]{Quorum: func(_ int, rs *quorum.Replies[int]) ([]int, bool, error) {
			var vs []int
			for _, r := range rs.Values() {
				vs = append(vs, r.Value)
			}
			return vs, len(vs) >= k, nil
		}}
	}
	res := make(chan []int, 2)
	d := spawn(t, sys, driver, actor.OnLoop(0))
	run := func(f func(c *actor.Context)) {
		t.Helper()
		if _, err := sys.Ask(t.Context(), d, f); err != nil {
			t.Fatal(err)
		}
	}
	record := func(_ *actor.Context, vs []int, err error) {
		if err != nil {
			t.Error(err)
		}
		res <- vs
	}
	// A settles with the two fast replies (its third is held) and starts
	// B, which waits for all three; the held node answers A's ask, then B's.
	run(func(c *actor.Context) {
		quorum.Ask(c, cfg, 1, need(2)).Then(func(c *actor.Context, vs []int, err error) {
			record(c, vs, err)
			quorum.Ask(c, cfg, 2, need(3)).Then(record)
		})
	})
	if vs := recv(t, res, "A's result"); len(vs) != 2 || vs[0] != 1 || vs[1] != 1 {
		t.Fatalf("A settled with %v, want [1 1]", vs)
	}
	if _, err := sys.Ask(t.Context(), h, "release"); err != nil {
		t.Fatal(err)
	}
	if vs := recv(t, res, "B's result"); len(vs) != 3 || vs[0] != 2 || vs[1] != 2 || vs[2] != 2 {
		t.Fatalf("B settled with %v, want [2 2 2]: A's late reply reached B", vs)
	}
}

// A result that keeps the call's replies (Collect) keeps them after the
// call is reused.
func TestPooledCallResultKept(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	cfg := config(t, m, nil, spawn(t, sys, answer, actor.OnLoop(0)), spawn(t, sys, answer, actor.OnLoop(0)), spawn(t, sys, answer, actor.OnLoop(0)))
	spec := quorum.Spec[int, int, []quorum.Reply[int]]{Quorum: quorum.All[int, int]()} // its result is the call's replies
	const n = 50
	results := make(chan []quorum.Reply[int], n)
	d := spawn(t, sys, driver, actor.OnLoop(0))
	var next func(c *actor.Context, i int)
	next = func(c *actor.Context, i int) {
		quorum.Ask(c, cfg, i, spec).Then(func(c *actor.Context, rs []quorum.Reply[int], err error) {
			if err != nil {
				t.Error(err)
			}
			results <- rs
			if i+1 < n {
				next(c, i+1)
			}
		})
	}
	if _, err := sys.Ask(t.Context(), d, func(c *actor.Context) { next(c, 0) }); err != nil {
		t.Fatal(err)
	}
	var kept [][]quorum.Reply[int]
	for range n {
		kept = append(kept, <-results)
	}
	for i, rs := range kept {
		if len(rs) != 3 {
			t.Fatalf("call %d: %d replies, want 3", i, len(rs))
		}
		for _, r := range rs {
			if r.Value != i {
				t.Fatalf("call %d's result now holds %d: its replies were reused", i, r.Value)
			}
		}
	}
}
