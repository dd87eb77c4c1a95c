package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// A quorum function of the user's: settle once two replies carry the same
// timestamp.
func twoSame(_ read, rs *quorum.Replies[state]) (state, bool, error) {
	seen := map[int]int{}
	for _, r := range rs.Values() {
		if seen[r.Value.TS]++; seen[r.Value.TS] == 2 {
			return r.Value, true, nil
		}
	}
	if rs.Pending() == 0 {
		return state{}, false, errors.New("no two replies agree")
	}
	return state{}, false, nil
}

func TestAskWithUserQuorumFunction(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	// Three replicas at TS 1, 2, 2: the call settles once both 2s are in,
	// whatever the order.
	cfg := config(t, m, nil,
		spawnReplica(t, sys, &replica{st: state{1, "old"}}),
		spawnReplica(t, sys, &replica{st: state{2, "new"}}, actor.OnLoop(1)),
		spawnReplica(t, sys, &replica{st: state{2, "new"}}))
	out := inActor(t, sys, func(c *actor.Context, out chan<- result[state]) {
		quorum.Ask(c, cfg, read{}, quorum.Spec[read, state, state]{Quorum: twoSame}).Then(func(c *actor.Context, s state, err error) {
			out <- result[state]{s, err}
		})
	})
	if r := recv(t, out, "the call"); r.err != nil || r.v != (state{2, "new"}) {
		t.Fatalf("got %+v, %v", r.v, r.err)
	}

	// With three different timestamps the function gives up once all
	// replies are in, and its error is the Cause.
	cfg2 := config(t, m, nil,
		spawnReplica(t, sys, &replica{st: state{1, "a"}}),
		spawnReplica(t, sys, &replica{st: state{2, "b"}}),
		spawnReplica(t, sys, &replica{st: state{3, "c"}}))
	out = inActor(t, sys, func(c *actor.Context, out chan<- result[state]) {
		quorum.Ask(c, cfg2, read{}, quorum.Spec[read, state, state]{Quorum: twoSame}).Then(func(c *actor.Context, s state, err error) {
			out <- result[state]{s, err}
		})
	})
	r := recv(t, out, "the failed call")
	if qe := quorumErr(t, r.err); qe.Replies != 3 || qe.Asked != 3 || !strings.Contains(qe.Cause.Error(), "no two replies agree") {
		t.Fatalf("error %+v", qe)
	}
}

// Highest picks the newest reply of a majority; the same Spec on a grid
// configuration waits for a grid quorum instead.
func TestBuiltinFunctionsAndSwitchingSystems(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	var refs []actor.Ref
	var reps []*replica
	for i := range 4 {
		r := &replica{name: fmt.Sprint(i), st: state{i, fmt.Sprint("v", i)}}
		reps = append(reps, r)
		refs = append(refs, spawnReplica(t, sys, r))
	}
	newest := quorum.Spec[read, state, state]{Quorum: quorum.Highest[read](quorum.Read, newer)}
	call := func(cfg quorum.Configuration) result[state] {
		return recv(t, inActor(t, sys, func(c *actor.Context, out chan<- result[state]) {
			quorum.Ask(c, cfg, read{}, newest).Then(func(c *actor.Context, s state, err error) { out <- result[state]{s, err} })
		}), "a read")
	}
	maj := config(t, m, quorum.Majority(), refs...)
	if r := call(maj); r.err != nil || r.v.TS < 1 {
		// 3 of 4 replied: the newest of any 3 has TS >= 1.
		t.Fatalf("majority read: %+v %v", r.v, r.err)
	}
	// 2×2 grid: a read quorum has a node of each column (0 or 2, 1 or 3).
	// Make nodes 1 and 3 (column 1) fail: no read quorum can form.
	reps[1].fail, reps[3].fail = errors.New("disk gone"), errors.New("disk gone")
	grid, err := maj.WithSystem(quorum.Grid(2))
	if err != nil {
		t.Fatal(err)
	}
	r := call(grid)
	qe := quorumErr(t, r.err)
	if !errors.Is(r.err, quorum.ErrUnreachable) || len(qe.Failures) != 2 {
		t.Fatalf("grid read without column 1: %v", r.err)
	}
	// The majority configuration cannot get 3 of 4 either.
	if r := call(maj); !errors.Is(r.err, quorum.ErrUnreachable) {
		t.Fatalf("majority read with 2 of 4 failing: %v", r.err)
	}
	// A threshold of 2 for reads makes it.
	th, _ := maj.WithSystem(quorum.Threshold(2, 4))
	if r := call(th); r.err != nil || r.v.TS != 2 {
		t.Fatalf("threshold read: %+v, %v", r.v, r.err)
	}
}

func TestCountAllAndFailures(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	ok1 := spawnReplica(t, sys, &replica{st: state{1, "x"}})
	ok2 := spawnReplica(t, sys, &replica{st: state{1, "x"}}, actor.OnLoop(1))
	held := &replica{hold: true}
	slow := spawnReplica(t, sys, held, actor.OnLoop(1))
	dead := deadRef(t, sys)
	crasher := func() actor.Ref { return spawn(t, sys, func(*actor.Context, any) (any, error) { panic("boom") }) }
	wrongType := spawn(t, sys, func(*actor.Context, any) (any, error) { return "not a state", nil })
	cfg := config(t, m, nil, ok1, slow, dead, crasher(), ok2, wrongType)

	run := func(spec quorum.Spec[read, state, []quorum.Reply[state]]) result[[]quorum.Reply[state]] {
		return recv(t, inActor(t, sys, func(c *actor.Context, out chan<- result[[]quorum.Reply[state]]) {
			quorum.Ask(c, cfg, read{}, spec).Then(func(c *actor.Context, rs []quorum.Reply[state], err error) {
				out <- result[[]quorum.Reply[state]]{rs, err}
			})
		}), "a call")
	}
	// Two replies: the silent one is not waited for.
	r := run(quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](2), Timeout: time.Minute})
	if r.err != nil || len(r.v) != 2 {
		t.Fatalf("count 2: %v %v", r.v, r.err)
	}
	for _, rep := range r.v {
		if rep.Node.Ref() != ok1 && rep.Node.Ref() != ok2 {
			t.Fatalf("a reply from %v", rep.Node)
		}
	}
	// Three: the dead, the crashed and the badly typed fail at once, the
	// slow one could still make it; then a fourth failure-free reply is
	// impossible: Count(4) fails without waiting for the slow one.
	cfg = config(t, m, nil, ok1, slow, dead, crasher(), ok2, wrongType)
	r = run(quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](4), Timeout: time.Minute})
	qe := quorumErr(t, r.err)
	if !errors.Is(r.err, quorum.ErrUnreachable) || !errors.Is(r.err, actor.ErrDead) || !errors.Is(r.err, actor.ErrCrashed) ||
		!errors.Is(r.err, quorum.ErrBadReply) || errors.Is(r.err, actor.ErrTimeout) || len(qe.Failures) != 3 {
		t.Fatalf("count 4 of 6 with 3 failing: %v", r.err)
	}
	// All fails at the first failure.
	r = run(quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.All[read, state](), Timeout: time.Minute})
	if !errors.Is(r.err, quorum.ErrUnreachable) {
		t.Fatalf("all: %v", r.err)
	}
	// A short timeout fails the silent one with ErrTimeout.
	cfg = config(t, m, nil, ok1, slow)
	r = run(quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.All[read, state](), Timeout: 20 * time.Millisecond})
	if !errors.Is(r.err, actor.ErrTimeout) {
		t.Fatalf("all with a silent node: %v", r.err)
	}
	if err := sys.Send(slow, release{}); err != nil {
		t.Fatal(err)
	}
	// The zero configuration and a missing quorum function fail at once.
	if r := run(quorum.Spec[read, state, []quorum.Reply[state]]{}); !errors.Is(r.err, quorum.ErrBadSpec) {
		t.Fatalf("no function: %v", r.err)
	}
	cfg = quorum.Configuration{}
	if r := run(quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](1)}); !errors.Is(r.err, quorum.ErrBadSpec) {
		t.Fatalf("zero configuration: %v", r.err)
	}
}

// A byzantine configuration of 4 tolerates one liar: a read settles on the
// value that f+1 = 2 replicas agree on, even when the liar answers first.
func TestByzantineQuorumWithALyingReplica(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	honest := state{7, "the truth"}
	liar := spawnReplica(t, sys, &replica{name: "liar", lie: true, st: honest}, actor.OnLoop(0))
	held := []*replica{{name: "h1", st: honest, hold: true}, {name: "h2", st: honest, hold: true}, {name: "h3", st: honest, hold: true}}
	var refs []actor.Ref
	for _, r := range held {
		refs = append(refs, spawnReplica(t, sys, r, actor.OnLoop(1)))
	}
	byz := quorum.Byzantine(1)
	cfg := config(t, m, byz, append([]actor.Ref{liar}, refs...)...)
	vouched := quorum.Spec[read, state, state]{Quorum: quorum.Matching[read](quorum.Read, byz.F()+1, func(s state) state { return s })}
	out := inActor(t, sys, func(c *actor.Context, out chan<- result[state]) {
		quorum.Ask(c, cfg, read{}, vouched).Then(func(c *actor.Context, s state, err error) { out <- result[state]{s, err} })
	})
	// The liar has answered; release one honest replica: 2 replies, not a
	// quorum and no two agree. Then a second: 3 replies, a quorum, and
	// two honest ones match.
	for _, r := range refs[:2] {
		if err := sys.Send(r, release{}); err != nil {
			t.Fatal(err)
		}
	}
	if r := recv(t, out, "the byzantine read"); r.err != nil || r.v != honest {
		t.Fatalf("byzantine read: %+v, %v", r.v, r.err)
	}
	if err := sys.Send(refs[2], release{}); err != nil {
		t.Fatal(err)
	}

	// Two liars of four are more than f=1: with one honest node dead they
	// can agree with nobody, and the call fails rather than believe one.
	l2 := spawnReplica(t, sys, &replica{name: "liar2", lie: true, st: state{8, "x"}})
	cfg2 := config(t, m, byz, liar, l2, refs[0], deadRef(t, sys))
	out = inActor(t, sys, func(c *actor.Context, out chan<- result[state]) {
		quorum.Ask(c, cfg2, read{}, vouched).Then(func(c *actor.Context, s state, err error) { out <- result[state]{s, err} })
	})
	if r := recv(t, out, "the read with two liars"); !errors.Is(r.err, quorum.ErrUnreachable) {
		t.Fatalf("two liars: %+v, %v", r.v, r.err)
	}
}

// PerNode gives each node its own message, or skips it: the call then
// neither asks nor waits for it.
func TestPerNodeRequests(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	seen := make(chan string, 16)
	var refs []actor.Ref
	for i := range 3 {
		refs = append(refs, spawnReplica(t, sys, &replica{name: fmt.Sprint("r", i), seen: seen}))
	}
	cfg := config(t, m, nil, refs...)
	skipSecond := func(req write, n *quorum.Node) (write, bool) {
		i := cfg.Index(n.Ref())
		if i == 1 {
			return write{}, false
		}
		req.V = fmt.Sprintf("%s for r%d", req.V, i)
		return req, true
	}
	type res = []quorum.Reply[state]
	out := inActor(t, sys, func(c *actor.Context, out chan<- result[res]) {
		quorum.Ask(c, cfg, write{Seq: 1, TS: 1, V: "v"}, quorum.Spec[write, state, res]{
			Quorum: func(_ write, rs *quorum.Replies[state]) (res, bool, error) {
				if rs.Asked() != 2 {
					return nil, false, fmt.Errorf("asked %d, want 2", rs.Asked())
				}
				return quorum.All[write, state]()(write{}, rs)
			},
			PerNode: skipSecond,
		}).Then(func(c *actor.Context, rs res, err error) { out <- result[res]{rs, err} })
	})
	r := recv(t, out, "the per-node call")
	if r.err != nil || len(r.v) != 2 {
		t.Fatalf("per-node call: %v, %v", r.v, r.err)
	}
	for _, rep := range r.v {
		want := fmt.Sprintf("v for r%d", cfg.Index(rep.Node.Ref()))
		if rep.Value.V != want {
			t.Errorf("%v stored %q, want %q", rep.Node, rep.Value.V, want)
		}
	}
	got := []string{<-seen, <-seen}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r0 write 1", "r2 write 1"}) {
		t.Fatalf("seen %v", got)
	}
	select {
	case s := <-seen:
		t.Fatalf("the skipped node got a request: %s", s)
	default:
	}

	// Skipping every node: All settles at once with nothing.
	none := func(write, *quorum.Node) (write, bool) { return write{}, false }
	out = inActor(t, sys, func(c *actor.Context, out chan<- result[res]) {
		quorum.Ask(c, cfg, write{}, quorum.Spec[write, state, res]{Quorum: quorum.All[write, state](), PerNode: none}).
			Then(func(c *actor.Context, rs res, err error) { out <- result[res]{rs, err} })
	})
	if r := recv(t, out, "the empty call"); r.err != nil || len(r.v) != 0 {
		t.Fatalf("all of none: %v %v", r.v, r.err)
	}
}

func TestMulticast(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	seen := make(chan string, 16)
	var refs []actor.Ref
	for i := range 3 {
		refs = append(refs, spawnReplica(t, sys, &replica{name: fmt.Sprint("r", i), seen: seen}, actor.OnLoop(i)))
	}
	cfg := config(t, m, nil, append(refs, deadRef(t, sys))...)
	out := inActor(t, sys, func(c *actor.Context, out chan<- error) {
		out <- quorum.Multicast(c, cfg, write{Seq: 1}, func(w write, n *quorum.Node) (write, bool) {
			return w, n.Ref() != refs[2]
		})
	})
	if err := recv(t, out, "the multicast"); err != nil {
		t.Fatal(err) // a send to a dead actor is accepted
	}
	got := []string{recv(t, seen, "r0 or r1"), recv(t, seen, "r0 or r1")}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r0 write 1", "r1 write 1"}) {
		t.Fatalf("seen %v", got)
	}
	// From a goroutine.
	if err := quorum.CallMulticast(ctxT(t), m.Caller(), cfg, write{Seq: 2}, nil); err != nil {
		t.Fatal(err)
	}
	got = []string{recv(t, seen, "a"), recv(t, seen, "b"), recv(t, seen, "c")}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r0 write 2", "r1 write 2", "r2 write 2"}) {
		t.Fatalf("seen %v", got)
	}
}

// ManagerConfig.OnFailure hears of a failed ask even when it comes after
// its call settled, which the call's result cannot report.
func TestOnFailureAfterTheCallSettled(t *testing.T) {
	sys := newSystem(t)
	type failure struct {
		ref actor.Ref
		err error
	}
	failures := make(chan failure, 4)
	m, err := quorum.NewManager(sys, quorum.ManagerConfig{OnFailure: func(n *quorum.Node, err error) {
		failures <- failure{n.Ref(), err}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	boom := errors.New("boom")
	ok1 := spawnReplica(t, sys, &replica{st: state{1, "x"}})
	ok2 := spawnReplica(t, sys, &replica{st: state{1, "x"}}, actor.OnLoop(1))
	late := spawnReplica(t, sys, &replica{hold: true, fail: boom}, actor.OnLoop(1))
	cfg := config(t, m, nil, ok1, late, ok2)
	spec := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](2), Timeout: time.Minute}
	if rs, err := quorum.Call(context.Background(), m.Caller(), cfg, read{}, spec); err != nil || len(rs) != 2 {
		t.Fatalf("count 2: %v %v", rs, err)
	}
	select {
	case f := <-failures:
		t.Fatalf("a failure before the late node answered: %v %v", f.ref, f.err)
	default:
	}
	if err := sys.Send(late, release{}); err != nil {
		t.Fatal(err)
	}
	f := recv(t, failures, "the late failure")
	if f.ref != late || !errors.Is(f.err, boom) {
		t.Fatalf("OnFailure(%v, %v), want the late node's %v", f.ref, f.err, boom)
	}
	if st := cfg.Node(cfg.Index(late)).Stats(); !st.Failing {
		t.Fatalf("the late node's stats when OnFailure ran: %+v", st)
	}
}

// A panicking OnFailure takes neither the call nor its caller down: the
// next calls through the same Caller are answered.
func TestOnFailurePanicContained(t *testing.T) {
	sys := newSystem(t)
	m, err := quorum.NewManager(sys, quorum.ManagerConfig{OnFailure: func(*quorum.Node, error) { panic("hook") }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	ok1 := spawnReplica(t, sys, &replica{st: state{1, "x"}})
	ok2 := spawnReplica(t, sys, &replica{st: state{1, "x"}}, actor.OnLoop(1))
	bad := spawnReplica(t, sys, &replica{fail: errors.New("boom")}, actor.OnLoop(1))
	cfg := config(t, m, nil, bad, ok1, ok2)
	spec := quorum.Spec[read, state, []quorum.Reply[state]]{Quorum: quorum.Count[read, state](2), Timeout: 5 * time.Second}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := quorum.Call(ctx, m.Caller(), cfg, read{}, spec)
		cancel()
		if err != nil || len(rs) != 2 {
			t.Fatalf("call %d: %v %v", i, rs, err)
		}
	}
}
