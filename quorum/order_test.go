package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// seqs reads n reports from seen and returns, per replica name, the
// sequence numbers in the order the replica got them.
func seqs(t *testing.T, seen <-chan string, n int) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for range n {
		s := recv(t, seen, "a request")
		f := strings.Fields(s) // "name op seq"
		k, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatal(s, err)
		}
		out[f[0]] = append(out[f[0]], k)
	}
	return out
}

func checkOrdered(t *testing.T, got map[string][]int, names []string, calls int) {
	t.Helper()
	for _, name := range names {
		s := got[name]
		if len(s) != calls {
			t.Errorf("%s got %d requests, want %d", name, len(s), calls)
		}
		for i := 1; i < len(s); i++ {
			if s[i] < s[i-1] {
				t.Errorf("%s got call %d after call %d: %v", name, s[i], s[i-1], s)
				break
			}
		}
	}
}

// Calls made one after the other by one goroutine reach every node in that
// order, even though each returns after the first reply (the asks to the
// other nodes are still on their way).
func TestOrderFromAGoroutine(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	const calls = 300
	seen := make(chan string, 3*calls)
	names := []string{"a", "b", "c"}
	var refs []actor.Ref
	for i, name := range names {
		refs = append(refs, spawnReplica(t, sys, &replica{name: name, seen: seen}, actor.OnLoop(i)))
	}
	cfg := config(t, m, nil, refs...)
	first := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](1)}
	ctx := ctxT(t)
	for i := range calls {
		if _, err := quorum.Call(ctx, m.Caller(), cfg, read{Seq: i}, first); err != nil {
			t.Fatal(err)
		}
	}
	checkOrdered(t, seqs(t, seen, 3*calls), names, calls)
}

// The same from an actor: its calls, made in one turn or over several, go
// out in order.
func TestOrderFromAnActor(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	const calls = 100
	seen := make(chan string, 3*calls)
	names := []string{"a", "b", "c"}
	var refs []actor.Ref
	for i, name := range names {
		refs = append(refs, spawnReplica(t, sys, &replica{name: name, seen: seen}, actor.OnLoop(i)))
	}
	cfg := config(t, m, nil, refs...)
	first := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](1)}
	done := inActor(t, sys, func(c *actor.Context, out chan<- error) {
		var next func(c *actor.Context, i int)
		next = func(c *actor.Context, i int) {
			if i == calls {
				out <- nil
				return
			}
			// Two calls per turn, the next pair after the first reply.
			quorum.Ask(c, cfg, read{Seq: i}, first).Then(func(*actor.Context, []quorum.Reply[state], error) {})
			quorum.Ask(c, cfg, read{Seq: i + 1}, first).Then(func(c *actor.Context, _ []quorum.Reply[state], err error) {
				if err != nil {
					out <- err
					return
				}
				next(c, i+2)
			})
		}
		next(c, 0)
	})
	if err := recv(t, done, "the calls"); err != nil {
		t.Fatal(err)
	}
	checkOrdered(t, seqs(t, seen, 3*calls), names, calls)
}

// thriftyFixture: replicas a and b hold their replies; c answers at once
// but its last ask failed, so thrifty calls leave it for last.
func thriftyFixture(t *testing.T) (*actor.System, *quorum.Manager, quorum.Configuration, []actor.Ref, chan string) {
	sys := newSystem(t)
	m := newManager(t, sys)
	seen := make(chan string, 64)
	a := spawnReplica(t, sys, &replica{name: "a", seen: seen, hold: true}, actor.OnLoop(1))
	b := spawnReplica(t, sys, &replica{name: "b", seen: seen, hold: true}, actor.OnLoop(1))
	cr := &replica{name: "c", fail: errors.New("warming up")}
	c := spawnReplica(t, sys, cr, actor.OnLoop(0))
	only := config(t, m, nil, c)
	if _, err := quorum.Call(ctxT(t), m.Caller(), only, read{}, quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](1)}); err == nil {
		t.Fatal("the warm-up did not fail")
	}
	if st := only.Node(0).Stats(); !st.Failing || st.Failures != 1 {
		t.Fatalf("c's stats after a failure: %+v", st)
	}
	cr.fail, cr.seen = nil, seen // c is idle: the next message it gets orders this
	return sys, m, config(t, m, nil, a, b, c), []actor.Ref{a, b, c}, seen
}

// A thrifty call's deferred ask to a node goes out before the caller's next
// message to that node, so the node sees the calls in order.
func TestThriftyKeepsOrder(t *testing.T) {
	sys, m, cfg, refs, seen := thriftyFixture(t)
	two := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](2), Thrifty: time.Minute}
	one := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](1)}
	type res = result[[]quorum.Reply[state]]
	out := inActor(t, sys, func(c *actor.Context, out chan<- res) {
		// Call 1 asks a and b (c is left for later); call 2 asks all three.
		quorum.Ask(c, cfg, read{Seq: 1}, two).Then(func(c *actor.Context, rs []quorum.Reply[state], err error) { out <- res{rs, err} })
		quorum.Ask(c, cfg, read{Seq: 2}, one).Then(func(c *actor.Context, rs []quorum.Reply[state], err error) { out <- res{rs, err} })
	})
	// c answered call 2 (and call 1, whose ask went out first).
	r2 := recv(t, out, "call 2")
	if r2.err != nil || r2.v[0].Node.Ref() != refs[2] {
		t.Fatalf("call 2: %+v %v", r2.v, r2.err)
	}
	var cSaw []string
	for len(cSaw) < 2 {
		if s := recv(t, seen, "c's requests"); strings.HasPrefix(s, "c ") {
			cSaw = append(cSaw, s)
		}
	}
	if cSaw[0] != "c read 1" || cSaw[1] != "c read 2" {
		t.Fatalf("c saw %v, want call 1 then call 2", cSaw)
	}
	_ = sys.Send(refs[0], release{})
	if r1 := recv(t, out, "call 1"); r1.err != nil || len(r1.v) != 2 {
		t.Fatalf("call 1: %+v %v", r1.v, r1.err)
	}
	_ = sys.Send(refs[1], release{})
	if n := m.DeferredQueued(); n != 0 {
		t.Fatalf("%d deferred asks left", n)
	}
}

func TestThrifty(t *testing.T) {
	sys, m, cfg, refs, seen := thriftyFixture(t)
	_ = sys.Send(refs[0], release{}) // a and b answer now
	_ = sys.Send(refs[1], release{})
	type res = []quorum.Reply[state]
	maj := quorum.Collect[read, state](quorum.Read)
	ctx := ctxT(t)
	// The fastest quorum, a and b, answers: c is never asked.
	rs, err := quorum.Call(ctx, m.Caller(), cfg, read{Seq: 1}, quorum.Spec[read, state, res]{Quorum: maj, Thrifty: time.Minute})
	if err != nil || len(rs) != 2 {
		t.Fatalf("thrifty call: %v %v", rs, err)
	}
	for _, r := range rs {
		if r.Node.Ref() == refs[2] {
			t.Fatal("c was asked")
		}
	}
	if got := seqs(t, seen, 2); len(got["c"]) != 0 {
		t.Fatalf("c saw %v", got)
	}
	if n := m.DeferredQueued(); n != 0 {
		t.Fatalf("%d deferred asks left", n)
	}
	for i, r := range refs[:2] {
		if st := cfg.Node(i).Stats(); st.Replies != 1 || st.Latency <= 0 || st.Failing {
			t.Fatalf("stats of %v: %+v", r, st)
		}
	}

	// b is gone: its failure makes the call ask c at once (well before
	// the minute).
	cfgDead, err := cfg.Replace(refs[1], deadRef(t, sys))
	if err != nil {
		t.Fatal(err)
	}
	rs, err = quorum.Call(ctx, m.Caller(), cfgDead, read{Seq: 2}, quorum.Spec[read, state, res]{Quorum: maj, Thrifty: time.Minute})
	if err != nil || len(rs) != 2 {
		t.Fatalf("thrifty call with b dead: %v %v", rs, err)
	}
	if st := cfgDead.Node(1).Stats(); !st.Failing || !errors.Is(st.LastErr, actor.ErrDead) {
		t.Fatalf("stats of the dead node: %+v", st)
	}

	// a is silent: after the thrifty delay c is asked.
	silent := spawnReplica(t, sys, &replica{name: "s", hold: true})
	cfgSilent, err := cfg.Replace(refs[0], silent)
	if err != nil {
		t.Fatal(err)
	}
	// Make the silent node look fast: it has never been asked, so it is
	// ranked first with b.
	rs, err = quorum.Call(ctx, m.Caller(), cfgSilent, read{Seq: 3}, quorum.Spec[read, state, res]{Quorum: maj, Thrifty: 10 * time.Millisecond})
	if err != nil || len(rs) != 2 {
		t.Fatalf("thrifty call with a silent node: %v %v", rs, err)
	}
	_ = sys.Send(silent, release{})
	// From an actor, the same.
	out := inActor(t, sys, func(c *actor.Context, out chan<- result[res]) {
		quorum.Ask(c, cfgSilent, read{Seq: 4}, quorum.Spec[read, state, res]{Quorum: maj, Thrifty: 10 * time.Millisecond}).
			Then(func(c *actor.Context, rs res, err error) { out <- result[res]{rs, err} })
	})
	if r := recv(t, out, "the thrifty call from an actor"); r.err != nil || len(r.v) != 2 {
		t.Fatalf("from an actor: %v %v", r.v, r.err)
	}
}

func TestCorrectableFromAnActor(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	var refs []actor.Ref
	for i := range 3 {
		refs = append(refs, spawnReplica(t, sys, &replica{name: fmt.Sprint(i), st: state{5, "v"}, hold: true}, actor.OnLoop(1)))
	}
	cfg := config(t, m, nil, refs...)
	spec := quorum.CorrectableSpec[read, state, state]{Levels: quorum.MatchingLevels[read](3, func(s state) int { return s.TS })}
	updates := inActor(t, sys, func(c *actor.Context, out chan<- quorum.Update[state]) {
		quorum.AskCorrectable(c, cfg, read{}, spec, func(c *actor.Context, u quorum.Update[state]) { out <- u })
	})
	for i, r := range refs {
		if err := sys.Send(r, release{}); err != nil {
			t.Fatal(err)
		}
		u := recv(t, updates, "an update")
		if u.Level != i+1 || u.Final != (i == 2) || u.Err != nil || u.Value != (state{5, "v"}) {
			t.Fatalf("update %d: %+v", i, u)
		}
	}
	// A correctable call that cannot reach its final level settles with
	// its best when the replies are in.
	cfg2 := config(t, m, nil, spawnReplica(t, sys, &replica{st: state{1, "a"}}), deadRef(t, sys))
	updates = inActor(t, sys, func(c *actor.Context, out chan<- quorum.Update[state]) {
		quorum.AskCorrectable(c, cfg2, read{}, spec, func(c *actor.Context, u quorum.Update[state]) { out <- u })
	})
	u := recv(t, updates, "an update")
	if !u.Final {
		u = recv(t, updates, "the final update")
	}
	if !u.Final || u.Level != 1 || u.Err != nil || u.Value.V != "a" {
		t.Fatalf("final update %+v", u)
	}
}

func TestCorrectableFromAGoroutine(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	var refs []actor.Ref
	for i := range 3 {
		refs = append(refs, spawnReplica(t, sys, &replica{name: fmt.Sprint(i), st: state{5, "v"}, hold: true}, actor.OnLoop(1)))
	}
	cfg := config(t, m, nil, refs...)
	spec := quorum.CorrectableSpec[read, state, state]{Levels: quorum.MatchingLevels[read](3, func(s state) int { return s.TS })}
	cr := quorum.CallCorrectable(ctxT(t), m.Caller(), cfg, read{}, spec)
	if _, level, err := cr.Get(); level != 0 || err != nil {
		t.Fatalf("before any reply: level %d, %v", level, err)
	}
	for i, r := range refs {
		w := cr.Watch(i + 1)
		if err := sys.Send(r, release{}); err != nil {
			t.Fatal(err)
		}
		recv(t, w, fmt.Sprint("level ", i+1))
		if v, level, err := cr.Get(); level < i+1 || err != nil || v != (state{5, "v"}) {
			t.Fatalf("level %d: %+v %d %v", i+1, v, level, err)
		}
	}
	recv(t, cr.Done(), "the end")

	// Cancelled: it settles with the context's error.
	held := spawnReplica(t, sys, &replica{hold: true})
	ctx, cancel := context.WithCancel(context.Background())
	cr = quorum.CallCorrectable(ctx, m.Caller(), config(t, m, nil, held), read{}, spec)
	cancel()
	recv(t, cr.Done(), "the cancelled call")
	if _, _, err := cr.Get(); !errors.Is(err, context.Canceled) || !errors.Is(err, quorum.ErrNoQuorum) {
		t.Fatalf("cancelled: %v", err)
	}
	_ = sys.Send(held, release{})
}

// waitHeld waits until the holding replica r holds n replies.
func waitHeld(t *testing.T, sys *actor.System, r actor.Ref, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		held := heldBy(t, sys, r)
		if held >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v holds %d replies, want %d", r, held, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// heldBy is how many requests the holding replica r holds.
func heldBy(t *testing.T, sys *actor.System, r actor.Ref) int {
	t.Helper()
	var held int
	if err := sys.Inspect(ctxT(t), r, func(_ *actor.Context, a actor.Actor) { held = len(a.(*replica).held) }); err != nil {
		t.Fatal(err)
	}
	return held
}

func TestCallerFromGoroutines(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	h := spawnReplica(t, sys, &replica{hold: true})
	ok := spawnReplica(t, sys, &replica{st: state{1, "x"}})
	cfg := config(t, m, nil, ok, h)
	type res = []quorum.Reply[state]
	all := quorum.Spec[read, state, res]{Quorum: quorum.All[read, state]()}

	// A context cancelled while the call waits.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := quorum.Call(ctx, m.Caller(), cfg, read{}, all)
		errc <- err
	}()
	waitHeld(t, sys, h, 1) // the call waits
	cancel()
	if err := recv(t, errc, "the cancelled call"); !errors.Is(err, context.Canceled) || !errors.Is(err, quorum.ErrNoQuorum) {
		t.Fatalf("cancelled call: %v", err)
	}
	// A deadline bounds the asks.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := quorum.Call(dctx, m.Caller(), cfg, read{}, all); !errors.Is(err, quorum.ErrNoQuorum) {
		t.Fatalf("call past its deadline: %v", err)
	}

	// A quorum function that panics fails its call, not the Caller.
	bad := quorum.Spec[read, state, res]{Quorum: func(_ read, rs *quorum.Replies[state]) (res, bool, error) {
		if rs.Len() > 0 {
			panic("bug in the quorum function")
		}
		return nil, false, nil
	}}
	only := config(t, m, nil, ok)
	if _, err := quorum.Call(ctxT(t), m.Caller(), only, read{}, bad); !errors.Is(err, quorum.ErrPanic) {
		t.Fatalf("panicking quorum function: %v", err)
	}
	extra, err := m.NewCaller(actor.OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*quorum.Caller{m.Caller(), extra} {
		if rs, err := quorum.Call(ctxT(t), cl, only, read{}, all); err != nil || len(rs) != 1 {
			t.Fatalf("call after the panic: %v %v", rs, err)
		}
	}

	// Close fails the call in flight and the later ones.
	before := heldBy(t, sys, h) // the deadline's call may not have reached h
	go func() {
		_, err := quorum.Call(context.Background(), extra, cfg, read{}, all)
		errc <- err
	}()
	waitHeld(t, sys, h, before+1) // this call waits
	if err := m.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errc, "the call in flight"); !errors.Is(err, quorum.ErrClosed) {
		t.Fatalf("call in flight at Close: %v", err)
	}
	if _, err := quorum.Call(ctxT(t), m.Caller(), cfg, read{}, all); !errors.Is(err, quorum.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	if _, err := m.NewCaller(); !errors.Is(err, quorum.ErrClosed) {
		t.Fatalf("NewCaller after Close: %v", err)
	}
	_ = sys.Send(h, release{})
}

// A thrifty call from an actor times itself inside that actor: once the
// delay has passed without a quorum it asks the other nodes, and the
// actor's Receive gets no message of it.
func TestThriftyTimerInAnActor(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	// Never asked, all three rank alike: the first two go first, and the
	// first of them never answers.
	cfg := config(t, m, nil,
		spawnReplica(t, sys, &replica{name: "silent", hold: true}, actor.OnLoop(1)),
		spawnReplica(t, sys, &replica{name: "b", st: state{1, "b"}}, actor.OnLoop(1)),
		spawnReplica(t, sys, &replica{name: "c", st: state{1, "c"}}, actor.OnLoop(1)))
	type res = []quorum.Reply[state]
	spec := quorum.Spec[read, state, res]{Quorum: quorum.Collect[read, state](quorum.Read), Thrifty: 10 * time.Millisecond, Timeout: time.Hour}
	out := make(chan result[res], 1)
	others := make(chan any, 16)
	r := spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "go":
			quorum.Ask(c, cfg, read{Seq: 1}, spec).Then(func(_ *actor.Context, rs res, err error) { out <- result[res]{rs, err} })
		case "ping":
		default:
			others <- msg
		}
		return nil, nil
	}, actor.OnLoop(0))
	if err := sys.Send(r, "go"); err != nil {
		t.Fatal(err)
	}
	got := recv(t, out, "the thrifty call")
	if got.err != nil || len(got.v) != 2 {
		t.Fatalf("thrifty call with a silent node: %v %v", got.v, got.err)
	}
	for _, rep := range got.v {
		if rep.Node.Ref() == cfg.Node(0).Ref() {
			t.Fatal("the silent node replied")
		}
	}
	if _, err := sys.Ask(ctxT(t), r, "ping"); err != nil { // after anything the call sent r
		t.Fatal(err)
	}
	select {
	case msg := <-others:
		t.Fatalf("the call's timer sent the actor %T", msg)
	default:
	}
}
