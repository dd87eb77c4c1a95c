package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// Failure-path tests of package remote: location transparency, errors that
// keep their identity across nodes, capability secrets, ordering, failure
// detection, reconnection, remote spawn and a three-node chain. The codec,
// malformed-input, fake-peer and backpressure tests are in wire_test.go.

// ---- helpers ----------------------------------------------------------------

var kindSeq atomic.Int64

// remoteActor spawns an actor running f on node on, from node from, through
// a remote spawn, and returns from's (remote) ref to it.
func remoteActor(t testing.TB, from, on *testNode, f fnActor) actor.Ref {
	t.Helper()
	name := fmt.Sprintf("test-kind-%d", kindSeq.Add(1))
	on.node.RegisterKind(name, func(any) (actor.Factory, error) {
		return func() actor.Actor { return f }, nil
	})
	r, err := from.node.Spawn(ctxT(t), on.node.Addr(), name, nil)
	if err != nil {
		t.Fatalf("remote spawn on %s: %v", on.node.Name(), err)
	}
	if !r.IsRemote() {
		t.Fatalf("remote spawn returned a local ref %v", r)
	}
	return r
}

// localOf returns, on node on, the local ref of the actor that from's
// remote ref r names.
func localOf(t testing.TB, from, on *testNode, r actor.Ref) actor.Ref {
	t.Helper()
	_, id, ok := wireOf(from.sys).Remote(r)
	if !ok {
		t.Fatalf("%v is not remote", r)
	}
	l, ok := wireOf(on.sys).Resolve(id)
	if !ok {
		t.Fatalf("%v does not resolve on %s", r, on.node.Name())
	}
	return l
}

// recv waits for a value on ch, failing the test after d.
func recv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		panic("unreachable")
	}
}

// nothing asserts that ch holds nothing right now.
func nothing[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond) // polling, not synchronisation
	}
}

// askReq asks an asker actor to ask req.to (with req.timeout).
type askReq struct {
	to      actor.Ref
	msg     any
	timeout time.Duration
}

type askRes struct {
	v   any
	err error
}

// asker spawns an actor on tn that, for each askReq it gets, asks from its
// loop and sends the outcome seen by the continuation to out.
func asker(t testing.TB, tn *testNode, out chan<- askRes) actor.Ref {
	return spawn(t, tn.sys, func(c *actor.Context, msg any) (any, error) {
		if q, ok := msg.(askReq); ok {
			c.AskTimeout(q.to, q.msg, q.timeout).Then(func(c *actor.Context, v any, err error) {
				out <- askRes{v, err}
			})
		}
		return nil, nil
	})
}

type unwatch struct{ r actor.Ref }

// watcher spawns an actor on tn that monitors every ref it is sent,
// demonitors on unwatch, and forwards the Downs it gets to out.
func watcher(t testing.TB, tn *testNode, out chan<- actor.Down) actor.Ref {
	return spawn(t, tn.sys, func(c *actor.Context, msg any) (any, error) {
		switch m := msg.(type) {
		case actor.Ref:
			return nil, c.Monitor(m)
		case unwatch:
			return nil, c.Demonitor(m.r)
		case actor.Down:
			out <- m
		}
		return nil, nil
	})
}

// monitorVia makes watcher w monitor r and waits until the monitor request
// has been made (not necessarily acknowledged by the remote node).
func monitorVia(t testing.TB, tn *testNode, w, r actor.Ref) {
	t.Helper()
	if _, err := tn.sys.Ask(ctxT(t), w, r); err != nil {
		t.Fatalf("monitor %v: %v", r, err)
	}
}

// deferForever is a handler that never answers asks, and reports each
// message it gets on got.
func deferForever(got chan<- any) fnActor {
	return func(c *actor.Context, msg any) (any, error) {
		holdReply(c.Defer())
		if got != nil {
			got <- msg
		}
		return nil, nil
	}
}

// recorder is a handler that reports every message on got and echoes it.
func recorder(got chan<- any) fnActor {
	return func(c *actor.Context, msg any) (any, error) {
		got <- msg
		return msg, nil
	}
}

func remoteErr(t testing.TB, err error) *Error {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *remote.Error", err, err)
	}
	return re
}

// ---- 1. location transparency ------------------------------------------------

type refMsg struct {
	Ref actor.Ref
	N   int
}

type verdict struct {
	Same, Remote, Self bool
}

func TestRemoteSendAndAsk(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 16)
	r := remoteActor(t, a, b, recorder(got))
	ctx := ctxT(t)

	// Send from a goroutine.
	if err := a.sys.Send(r, "one-way"); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, 5*time.Second, "one-way message"); v != "one-way" {
		t.Fatalf("got %v", v)
	}
	// Send from an actor.
	sender := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Send(r, msg) })
	if _, err := a.sys.Ask(ctx, sender, int64(7)); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, 5*time.Second, "one-way from actor"); v != int64(7) {
		t.Fatalf("got %v", v)
	}
	// Ask from a goroutine, then from an actor with a continuation.
	if v, err := a.sys.Ask(ctx, r, "q"); err != nil || v != "q" {
		t.Fatalf("goroutine ask = %v, %v", v, err)
	}
	<-got
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	if err := a.sys.Send(ak, askReq{r, 3.5, 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if x := recv(t, res, 5*time.Second, "actor ask"); x.err != nil || x.v != 3.5 {
		t.Fatalf("actor ask = %v, %v", x.v, x.err)
	}
	// Call to a remote ref fails at once.
	caller := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return c.Call(r, "x") })
	if _, err := a.sys.Ask(ctx, caller, "go"); !errors.Is(err, actor.ErrNotLocal) {
		t.Fatalf("Call to remote: %v, want ErrNotLocal", err)
	}
}

func TestRemoteAskTimeoutAndDeferredReply(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 16)
	forever := remoteActor(t, a, b, deferForever(got))

	// From an actor: AskTimeout settles with ErrTimeout.
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	start := time.Now()
	if err := a.sys.Send(ak, askReq{forever, "never", 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	x := recv(t, res, 10*time.Second, "ask timeout")
	if !errors.Is(x.err, actor.ErrTimeout) {
		t.Fatalf("ask to a deferring remote actor: %v, %v; want ErrTimeout", x.v, x.err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("timed out after %v, before its deadline", el)
	}
	recv(t, got, 5*time.Second, "the deferred ask")
	// From a goroutine: the context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := a.sys.Ask(ctx, forever, "never")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("goroutine ask to a deferring actor: %v", err)
	}
	recv(t, got, 5*time.Second, "the deferred ask")

	// A deferred reply answered later reaches both kinds of asker.
	held := make(chan *actor.Reply, 2)
	later := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		held <- c.Defer()
		return nil, nil
	})
	gres := make(chan askRes, 1)
	go func() {
		v, err := a.sys.Ask(ctxT(t), later, "g")
		gres <- askRes{v, err}
	}()
	if err := a.sys.Send(ak, askReq{later, "a", 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r1 := recv(t, held, 5*time.Second, "first deferred ask")
	r2 := recv(t, held, 5*time.Second, "second deferred ask")
	nothing(t, gres, "goroutine reply before the deferred answer")
	nothing(t, res, "actor reply before the deferred answer")
	r1.Reply("late", nil)
	r2.Reply("late", nil)
	if x := recv(t, gres, 5*time.Second, "deferred goroutine reply"); x.err != nil || x.v != "late" {
		t.Fatalf("deferred goroutine reply = %v, %v", x.v, x.err)
	}
	if x := recv(t, res, 5*time.Second, "deferred actor reply"); x.err != nil || x.v != "late" {
		t.Fatalf("deferred actor reply = %v, %v", x.v, x.err)
	}
}

func TestRemoteRefsInsideMessages(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	for _, n := range []*Node{a.node, b.node} {
		if err := Register[refMsg](n, "test.refMsg"); err != nil {
			t.Fatal(err)
		}
		if err := Register[verdict](n, "test.verdict"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	// A local actor on A that the actor on B will ask back.
	incr := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		if n, ok := msg.(int); ok {
			return n + 1, nil
		}
		return nil, actor.Unhandled(msg)
	})
	var first actor.Ref
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		m, ok := msg.(refMsg)
		if !ok {
			return nil, actor.Unhandled(msg)
		}
		switch m.N {
		case 0: // compare with the first decoded ref
			return verdict{Same: m.Ref == first, Remote: m.Ref.IsRemote(), Self: m.Ref == c.Self()}, nil
		default: // ask back through the decoded ref
			if first.IsZero() {
				first = m.Ref
			}
			rep := c.Defer()
			c.Ask(m.Ref, m.N).Then(func(c *actor.Context, v any, err error) { rep.Reply(v, err) })
			return nil, nil
		}
	})
	v, err := a.sys.Ask(ctx, r, refMsg{Ref: incr, N: 41})
	if err != nil || v != 42 {
		t.Fatalf("ask back through a ref sent in a message = %v, %v", v, err)
	}
	v, err = a.sys.Ask(ctx, r, refMsg{Ref: incr, N: 0})
	if err != nil {
		t.Fatal(err)
	}
	if vd := v.(verdict); !vd.Same || !vd.Remote || vd.Self {
		t.Fatalf("decoding the same ref twice: %+v, want equal remote refs", vd)
	}
	// A ref of B's own actor comes back to B as its local ref.
	v, err = a.sys.Ask(ctx, r, refMsg{Ref: r, N: 0})
	if err != nil {
		t.Fatal(err)
	}
	if vd := v.(verdict); !vd.Self || vd.Remote {
		t.Fatalf("B's own ref decoded on B: %+v, want its local self ref", vd)
	}
	// And a ref travelling back to A in a reply is the ref A already has.
	echoR := remoteActor(t, a, b, echo)
	v, err = a.sys.Ask(ctx, echoR, refMsg{Ref: r, N: 5})
	if err != nil {
		t.Fatal(err)
	}
	if back := v.(refMsg).Ref; back != r {
		t.Fatalf("ref round trip A->B->A: %v != %v", back, r)
	}
	v, err = a.sys.Ask(ctx, echoR, incr)
	if err != nil || v != incr {
		t.Fatalf("A's local ref round trip: %v, %v; want %v", v, err, incr)
	}
}

// ---- 2. errors keep their identity ---------------------------------------------

type unregistered struct{ X int }
type onlyOnA struct{ X int }

func TestRemoteErrorsKeepIdentity(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	if err := Register[onlyOnA](a.node, "test.onlyOnA"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	actorAsk := func(to actor.Ref, msg any) askRes {
		t.Helper()
		if err := a.sys.Send(ak, askReq{to, msg, 10 * time.Second}); err != nil {
			t.Fatal(err)
		}
		return recv(t, res, 15*time.Second, "actor ask")
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v (%T), want %v", what, err, err, want)
		}
	}

	picky := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "panic":
			panic("boom")
		case "unregistered reply":
			return unregistered{1}, nil
		case "onlyOnA reply":
			return onlyOnA{2}, nil // B cannot encode it either
		case "ok":
			return "ok", nil
		}
		return nil, actor.Unhandled(msg)
	})

	_, err := a.sys.Ask(ctx, picky, int64(1))
	check("unhandled (goroutine ask)", err, actor.ErrUnknownMessage)
	if re := remoteErr(t, err); re.Node != "b" || !strings.Contains(re.Msg, "int64") {
		t.Fatalf("remote error %+v: want node b and the handler's message", re)
	}
	check("unhandled (actor ask)", actorAsk(picky, int64(1)).err, actor.ErrUnknownMessage)

	// Unregistered on the sender: refused at once, nothing sent.
	framesOut := a.node.Stats().FramesOut
	_, err = a.sys.Ask(ctx, picky, unregistered{})
	check("unregistered ask", err, ErrUnknownType)
	check("unregistered send", a.sys.Send(picky, unregistered{}), ErrUnknownType)
	check("unregistered actor ask", actorAsk(picky, unregistered{}).err, ErrUnknownType)
	if d := a.node.Stats().FramesOut - framesOut; d > 3 { // heartbeats may go meanwhile
		t.Fatalf("%d frames went out for unregistered messages", d)
	}

	// Registered on A, unknown on B: the ask is answered with the error and
	// the connection stays up.
	opened := a.node.Stats().ConnsOpened
	_, err = a.sys.Ask(ctx, picky, onlyOnA{1})
	check("type unknown on receiver", err, ErrUnknownType)
	check("type unknown on receiver (actor ask)", actorAsk(picky, onlyOnA{1}).err, ErrUnknownType)
	dropped := b.node.Stats().Dropped
	if err := a.sys.Send(picky, onlyOnA{1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to drop the send of an unknown type", func() bool { return b.node.Stats().Dropped > dropped })
	if v, err := a.sys.Ask(ctx, picky, "ok"); err != nil || v != "ok" {
		t.Fatalf("ask after an unknown type = %v, %v", v, err)
	}
	if st := a.node.Stats(); st.ConnsOpened != opened || st.BadFrames != 0 {
		t.Fatalf("unknown type cost a connection: %+v", st)
	}

	// A reply value that cannot travel: the asker gets an error, not a hang.
	_, err = a.sys.Ask(ctx, picky, "unregistered reply")
	check("unregistered reply", err, ErrUnknownType)
	check("unregistered reply (actor ask)", actorAsk(picky, "unregistered reply").err, ErrUnknownType)
	_, err = a.sys.Ask(ctx, picky, "onlyOnA reply")
	check("reply type unknown on the replier", err, ErrUnknownType)

	// A reply type B knows but A does not.
	if err := Register[unregistered](b.node, "test.unregistered"); err != nil {
		t.Fatal(err)
	}
	_, err = a.sys.Ask(ctx, picky, "unregistered reply")
	check("reply type unknown on the asker", err, ErrUnknownType)
	check("reply type unknown on the asker (actor ask)", actorAsk(picky, "unregistered reply").err, ErrUnknownType)
	if v, err := a.sys.Ask(ctx, picky, "ok"); err != nil || v != "ok" {
		t.Fatalf("ask after an undecodable reply = %v, %v", v, err)
	}

	// A crash is ErrCrashed on the asker; the crashed actor is then dead.
	_, err = a.sys.Ask(ctx, picky, "panic")
	check("crash", err, actor.ErrCrashed)
	if !strings.Contains(err.Error(), "boom") {
		t.Fatalf("crash error %q does not carry the panic value", err)
	}
	_, err = a.sys.Ask(ctx, picky, "ok")
	check("ask to the crashed actor", err, actor.ErrDead)
	check("actor ask to the crashed actor", actorAsk(picky, "ok").err, actor.ErrDead)
	if st := a.node.Stats(); st.ConnsOpened != opened || st.BadFrames != 0 || st.PeersDown != 0 {
		t.Fatalf("error replies cost a connection: %+v", st)
	}
}

type mismatched struct{ A string }
type mismatched2 struct{ A []int }

// anyField has an interface field, which msgpack cannot decode twice.
type anyField struct{ Args any }

// One name, two different types on two nodes: the receiver cannot decode the
// payload; the ask gets an error and the connection survives.
func TestRemotePayloadDecodeError(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	if err := Register[mismatched](a.node, "test.mismatched"); err != nil {
		t.Fatal(err)
	}
	if err := Register[mismatched2](b.node, "test.mismatched"); err != nil {
		t.Fatal(err)
	}
	r := remoteActor(t, a, b, echo)
	ctx := ctxT(t)
	_, err := a.sys.Ask(ctx, r, mismatched{"x"})
	if !errors.Is(err, ErrBadFrame) {
		t.Fatalf("undecodable payload: %v, want ErrBadFrame", err)
	}
	if v, err := a.sys.Ask(ctx, r, "still up"); err != nil || v != "still up" {
		t.Fatalf("ask after an undecodable payload = %v, %v", v, err)
	}
	if st := b.node.Stats(); st.BadFrames != 0 {
		t.Fatalf("an undecodable payload closed a connection: %+v", st)
	}
}

// ---- 3. capability secrets -----------------------------------------------------

func TestRemoteForgedRefs(t *testing.T) {
	// A Down here must say "stopped", never "node down": no failure
	// detection on a loaded machine.
	cfg := Config{HeartbeatTimeout: 30 * time.Second}
	a := newTestNode(t, "a", cfg)
	b := newTestNode(t, "b", cfg)
	got := make(chan any, 64)
	target := remoteActor(t, a, b, recorder(got))
	otherGot := make(chan any, 64)
	other := remoteActor(t, a, b, recorder(otherGot))
	deadR := remoteActor(t, a, b, echo)
	ctx := ctxT(t)

	p, id, ok := wireOf(a.sys).Remote(target)
	if !ok {
		t.Fatal("not remote")
	}
	// The legitimate WireID as B sees it is the one A holds.
	if lid, ok := wireOf(b.sys).LocalID(localOf(t, a, b, target)); !ok || lid != id {
		t.Fatalf("LocalID on B %+v != wire id on A %+v", lid, id)
	}
	_, oid, _ := wireOf(a.sys).Remote(other)

	// A genuinely dead actor, for comparison.
	stopper := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(msg.(actor.Ref), nil) })
	dn := make(chan actor.Down, 4)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, deadR)
	// The monitor is in place once a later ask is answered: on B, a Stop
	// from the network goes ahead of queued requests, and could otherwise
	// overtake the monitor (its Down would then say ErrDead).
	if _, err := a.sys.Ask(ctx, deadR, "sync"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctx, stopper, deadR); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, dn, 5*time.Second, "Down of the stopped actor"); d.Ref != deadR || d.Reason != nil {
		t.Fatalf("Down = %+v, want ref %v and a nil reason", d, deadR)
	}
	_, deadErr := a.sys.Ask(ctx, deadR, "x")
	if !errors.Is(deadErr, actor.ErrDead) {
		t.Fatalf("ask to a stopped actor: %v", deadErr)
	}
	deadRE := remoteErr(t, deadErr)

	flip := id
	flip.Secret[5] ^= 0x10
	wrongGen := id
	wrongGen.Gen++
	swapped := oid
	swapped.Secret = id.Secret // another live actor's slot with this actor's secret
	zero := id
	zero.Secret = [16]byte{}
	badLoop := id
	badLoop.Loop = 77
	forged := map[string]actor.WireID{"flipped secret bit": flip, "wrong gen": wrongGen,
		"other actor's slot": swapped, "zero secret": zero, "nonexistent loop": badLoop}

	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	for name, fid := range forged {
		fr := wireOf(a.sys).RemoteRef(p, fid)
		if fr == target {
			t.Fatalf("%s: forged ref == the real one", name)
		}
		_, err := a.sys.Ask(ctx, fr, "x")
		if !errors.Is(err, actor.ErrDead) {
			t.Fatalf("%s: ask = %v, want ErrDead", name, err)
		}
		re := remoteErr(t, err)
		if re.Code != deadRE.Code || re.Msg != deadRE.Msg || err.Error() != deadErr.Error() {
			t.Fatalf("%s: forged ref answered %q (code %d), a dead actor %q (code %d)", name, err, re.Code, deadErr, deadRE.Code)
		}
		if err := a.sys.Send(ak, askReq{fr, "x", 10 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if x := recv(t, res, 15*time.Second, "actor ask to a forged ref"); !errors.Is(x.err, actor.ErrDead) || x.err.Error() != deadErr.Error() {
			t.Fatalf("%s: actor ask = %v, want %v", name, x.err, deadErr)
		}
		dropped := b.node.Stats().Dropped
		if err := a.sys.Send(fr, "forged"); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		// A marker through the real refs, on the same connection, after.
		if err := a.sys.Send(target, "marker"); err != nil {
			t.Fatal(err)
		}
		if err := a.sys.Send(other, "marker"); err != nil {
			t.Fatal(err)
		}
		if v := recv(t, got, 5*time.Second, "marker"); v != "marker" {
			t.Fatalf("%s: the target received %v", name, v)
		}
		if v := recv(t, otherGot, 5*time.Second, "marker"); v != "marker" {
			t.Fatalf("%s: the other actor received %v", name, v)
		}
		if st := b.node.Stats(); st.Dropped != dropped+1 {
			t.Fatalf("%s: Dropped %d -> %d, want +1", name, dropped, st.Dropped)
		}
		// Monitoring a forged ref: Down with ErrDead, promptly.
		monitorVia(t, a, w, fr)
		d := recv(t, dn, 5*time.Second, "Down of a forged ref")
		if d.Ref != fr || !errors.Is(d.Reason, actor.ErrDead) {
			t.Fatalf("%s: Down = %+v, want ref %v and ErrDead", name, d, fr)
		}
	}
	// Monitoring the genuinely dead ref: the same.
	monitorVia(t, a, w, deadR)
	if d := recv(t, dn, 5*time.Second, "Down of a dead ref"); d.Ref != deadR || !errors.Is(d.Reason, actor.ErrDead) {
		t.Fatalf("Down = %+v, want ErrDead", d)
	}
	if st := b.node.Stats(); st.BadFrames != 0 {
		t.Fatalf("forged refs closed a connection: %+v", st)
	}
}

// A stopped actor's ref, replayed after a new actor took its slot, does not
// reach the new actor.
func TestRemoteReplayedRefAfterSlotReuse(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	oldGot := make(chan any, 16)
	old := remoteActor(t, a, b, recorder(oldGot))
	ctx := ctxT(t)
	p, oldID, _ := wireOf(a.sys).Remote(old)
	oldLocal := localOf(t, a, b, old)
	if _, err := a.sys.Ask(ctx, old, "alive"); err != nil {
		t.Fatal(err)
	}
	<-oldGot
	dn := make(chan actor.Down, 1)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, old)
	stopper := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(msg.(actor.Ref), nil) })
	if _, err := a.sys.Ask(ctx, stopper, old); err != nil {
		t.Fatal(err)
	}
	recv(t, dn, 5*time.Second, "Down of the stopped actor")

	// Spawn on B until one lands in the old slot.
	newGot := make(chan any, 64)
	var reused actor.Ref
	for i := 0; i < 64 && reused.IsZero(); i++ {
		r := spawn(t, b.sys, recorder(newGot), actor.OnLoop(oldLocal.Loop()))
		if id, _ := wireOf(b.sys).LocalID(r); id.Slot == oldID.Slot && id.Loop == oldID.Loop {
			if id.Gen == oldID.Gen {
				t.Fatalf("slot reused with the same generation %d", id.Gen)
			}
			reused = r
		}
	}
	if reused.IsZero() {
		t.Fatal("no new actor reused the stopped actor's slot")
	}
	// The replayed ref: dead, and the new actor never sees its messages.
	if _, err := a.sys.Ask(ctx, old, "replayed"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask through the replayed ref: %v, want ErrDead", err)
	}
	if err := a.sys.Send(old, "replayed"); err != nil {
		t.Fatal(err)
	}
	// The stopped actor's id with the new generation but the old secret.
	regen := oldID
	rid, _ := wireOf(b.sys).LocalID(reused)
	regen.Gen = rid.Gen
	forged := wireOf(a.sys).RemoteRef(p, regen)
	if _, err := a.sys.Ask(ctx, forged, "regen"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask with the new generation and old secret: %v, want ErrDead", err)
	}
	if err := a.sys.Send(forged, "regen"); err != nil {
		t.Fatal(err)
	}
	// The legitimate new ref, handed out by B in a reply, works.
	giver := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) { return reused, nil })
	v, err := a.sys.Ask(ctx, giver, "give")
	if err != nil {
		t.Fatal(err)
	}
	newR := v.(actor.Ref)
	if newR == old || newR == forged {
		t.Fatal("the new actor's ref == a replayed one")
	}
	if err := a.sys.Send(newR, "marker"); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, newGot, 5*time.Second, "marker"); v != "marker" {
		t.Fatalf("the new actor in the reused slot got %v", v)
	}
	nothing(t, oldGot, "message for the stopped actor")
}

// ---- 4. ordering ----------------------------------------------------------------

func TestRemoteOrdering(t *testing.T) {
	const n = 10000
	// No failure detection wanted here: a loaded machine must not declare
	// the peer down (and lose the tail as dead letters) mid-test.
	cfg := Config{HeartbeatTimeout: 30 * time.Second}
	a := newTestNode(t, "a", cfg)
	b := newTestNode(t, "b", cfg)
	type outcome struct {
		count int
		err   error
	}
	sink := func(done chan<- outcome) fnActor {
		next := 0
		return func(c *actor.Context, msg any) (any, error) {
			i, ok := msg.(int)
			switch {
			case next < 0:
			case !ok:
				done <- outcome{next, fmt.Errorf("unexpected %T %v", msg, msg)}
				next = -1
			case i != next:
				done <- outcome{next, fmt.Errorf("got #%d, want #%d", i, next)}
				next = -1 // report once
			default:
				next++
				if next == n {
					done <- outcome{next, nil}
				}
			}
			return nil, nil
		}
	}
	check := func(what string, done <-chan outcome) {
		t.Helper()
		var o outcome
		select {
		case o = <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: not all %d within 60 s; a: %+v; b: %+v", what, n, a.node.Stats(), b.node.Stats())
		}
		if o.err != nil || o.count != n {
			t.Fatalf("%s: %d in order, %v", what, o.count, o.err)
		}
		if st := b.node.Stats(); st.Dropped != 0 {
			t.Fatalf("%s: %d dropped", what, st.Dropped)
		}
	}

	done := make(chan outcome, 2)
	r := remoteActor(t, a, b, sink(done))
	errc := make(chan error, 1)
	src := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		for i := range n {
			if err := c.Send(r, i); err != nil {
				errc <- fmt.Errorf("send #%d: %w", i, err)
				return nil, nil
			}
		}
		errc <- nil
		return nil, nil
	})
	if err := a.sys.Send(src, "go"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errc, 30*time.Second, "the sender"); err != nil {
		t.Fatal(err)
	}
	check("from an actor", done)

	done2 := make(chan outcome, 2)
	r2 := remoteActor(t, a, b, sink(done2))
	for i := range n {
		if err := a.sys.Send(r2, i); err != nil {
			t.Fatalf("send #%d: %v", i, err)
		}
	}
	check("from a goroutine", done2)
}

// ---- 5. failure detection ----------------------------------------------------------

// Node B is stopped with asks pending and monitors set: the asks fail with
// ErrNodeDown and the monitors fire with it.
func TestRemotePeerKilledMidStream(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 16)
	r := remoteActor(t, a, b, deferForever(got))
	other := remoteActor(t, a, b, echo)
	dn := make(chan actor.Down, 4)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, r)
	monitorVia(t, a, w, other)
	res := make(chan askRes, 8)
	ak := asker(t, a, res)
	for i := range 3 {
		go func() {
			_, err := a.sys.Ask(context.Background(), r, i) // no deadline: only node-down ends it
			res <- askRes{nil, err}
		}()
		if err := a.sys.Send(ak, askReq{r, 10 + i, time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	for range 6 {
		recv(t, got, 5*time.Second, "an ask reaching B")
	}
	// Stream one-way traffic while B goes away.
	stopStream := make(chan struct{})
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		for i := 0; ; i++ {
			select {
			case <-stopStream:
				return
			default:
			}
			_ = a.sys.Send(other, i)
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // pacing, not synchronisation
			}
		}
	}()
	hbTimeout := a.node.cfg.HeartbeatTimeout
	killed := time.Now()
	b.stop()
	b.stop = nil
	for range 6 {
		x := recv(t, res, hbTimeout+10*time.Second, "a pending ask to fail")
		if !errors.Is(x.err, ErrNodeDown) {
			t.Fatalf("pending ask: %v, want ErrNodeDown", x.err)
		}
	}
	for range 2 {
		d := recv(t, dn, hbTimeout+10*time.Second, "Down from the dead node")
		if (d.Ref != r && d.Ref != other) || !errors.Is(d.Reason, ErrNodeDown) {
			t.Fatalf("Down = %+v, want ErrNodeDown", d)
		}
	}
	if el := time.Since(killed); el > hbTimeout+5*time.Second {
		t.Fatalf("failure detected after %v", el)
	}
	close(stopStream)
	<-streamed
	// New asks fail too (the node is unreachable), and not by hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.sys.Ask(ctx, other, "x"); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("ask to a dead node: %v, want ErrNodeDown", err)
	}
	if a.node.Stats().PeersDown == 0 {
		t.Fatal("PeersDown not counted")
	}
}

// A monitor of a remote actor fires with the stop reason (normal, custom,
// shutdown, crash) and names the monitored ref; a demonitored actor's stop
// sends nothing.
func TestRemoteMonitorReasons(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	custom := errors.New("custom reason")
	quitter := func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "normal":
			return nil, c.Stop(c.Self(), nil)
		case "custom":
			return nil, c.Stop(c.Self(), custom)
		case "shutdown":
			return nil, c.Stop(c.Self(), actor.ErrShutdown)
		case "crash":
			panic("crash reason")
		}
		return msg, nil
	}
	dn := make(chan actor.Down, 4)
	w := watcher(t, a, dn)
	for _, tc := range []struct {
		msg  string
		want func(error) bool
	}{
		{"normal", func(err error) bool { return err == nil }},
		{"custom", func(err error) bool { return err != nil && strings.Contains(err.Error(), custom.Error()) }},
		{"shutdown", func(err error) bool { return errors.Is(err, actor.ErrShutdown) }},
		{"crash", func(err error) bool { return errors.Is(err, actor.ErrCrashed) }},
	} {
		r := remoteActor(t, a, b, quitter)
		monitorVia(t, a, w, r)
		monitorVia(t, a, w, r) // twice: one Down
		// The monitor is in place once a later ask is answered (same connection).
		if _, err := a.sys.Ask(ctxT(t), r, "sync"); err != nil {
			t.Fatal(err)
		}
		if err := a.sys.Send(r, tc.msg); err != nil {
			t.Fatal(err)
		}
		d := recv(t, dn, 5*time.Second, "Down "+tc.msg)
		if d.Ref != r || !tc.want(d.Reason) {
			t.Fatalf("%s: Down = %+v (reason %v), want ref %v", tc.msg, d, d.Reason, r)
		}
		// Monitor then demonitor another actor: its stop sends no Down.
		r2 := remoteActor(t, a, b, quitter)
		monitorVia(t, a, w, r2)
		if _, err := a.sys.Ask(ctxT(t), w, unwatch{r2}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.sys.Ask(ctxT(t), r2, "sync"); err != nil {
			t.Fatal(err)
		}
		if err := a.sys.Send(r2, "normal"); err != nil {
			t.Fatal(err)
		}
		// A third monitored actor's Down arrives after r2's would have.
		r3 := remoteActor(t, a, b, quitter)
		monitorVia(t, a, w, r3)
		if _, err := a.sys.Ask(ctxT(t), r3, "sync"); err != nil {
			t.Fatal(err)
		}
		if err := a.sys.Send(r3, "normal"); err != nil {
			t.Fatal(err)
		}
		if d := recv(t, dn, 5*time.Second, "Down of r3"); d.Ref != r3 {
			t.Fatalf("Down after demonitor: %+v", d)
		}
	}
	nothing(t, dn, "extra Down")
}

// ---- 6. reconnect -------------------------------------------------------------------

// startAt starts a node listening on addr, retrying while the port is busy.
func startAt(t testing.TB, name, addr string, cfg Config) *testNode {
	t.Helper()
	cfg.Listen = addr
	cfg.Name = name
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 50 * time.Millisecond
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 500 * time.Millisecond
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
		n := New(sys, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stop, err := n.Start(ctx)
		cancel()
		if err == nil {
			tn := &testNode{sys: sys, node: n, stop: stop}
			t.Cleanup(tn.close)
			return tn
		}
		_ = sys.Shutdown(context.Background())
		if time.Now().After(deadline) {
			t.Fatalf("restart on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // port still bound: retry
	}
}

func TestRemoteReconnectAfterRestart(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMax: 200 * time.Millisecond})
	b := newTestNode(t, "b", Config{})
	oldGot := make(chan any, 16)
	newGot := make(chan any, 16)
	b.node.RegisterKind("rec", func(any) (actor.Factory, error) {
		return func() actor.Actor { return recorder(oldGot) }, nil
	})
	ctx := ctxT(t)
	addr := b.node.Addr()
	old, err := a.node.Spawn(ctx, addr, "rec", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := a.sys.Ask(ctx, old, "hi"); err != nil || v != "hi" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	<-oldGot
	dn := make(chan actor.Down, 1)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, old)

	b.close()
	if d := recv(t, dn, 10*time.Second, "Down of the stopped node"); d.Ref != old || !errors.Is(d.Reason, ErrNodeDown) {
		t.Fatalf("Down = %+v, want ErrNodeDown", d)
	}
	// While B is away, asks fail with ErrNodeDown (the dial fails).
	if _, err := a.sys.Ask(ctx, old, "away"); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("ask while the node is down: %v, want ErrNodeDown", err)
	}

	b2 := startAt(t, "b", addr, Config{})
	b2.node.RegisterKind("rec", func(any) (actor.Factory, error) {
		return func() actor.Actor { return recorder(newGot) }, nil
	})
	// A reaches the new B without operator action (its peer redials).
	var fresh actor.Ref
	waitFor(t, 20*time.Second, "a spawn on the restarted node", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		fresh, err = a.node.Spawn(sctx, addr, "rec", nil)
		if err != nil && !errors.Is(err, ErrNodeDown) {
			t.Fatalf("spawn on the restarted node: %v", err)
		}
		return err == nil
	})
	if v, err := a.sys.Ask(ctx, fresh, "new"); err != nil || v != "new" {
		t.Fatalf("ask to the new incarnation = %v, %v", v, err)
	}
	<-newGot
	_, oid, _ := wireOf(a.sys).Remote(old)
	_, nid, _ := wireOf(a.sys).Remote(fresh)
	t.Logf("old id %d.%d.%d, new id %d.%d.%d", oid.Loop, oid.Slot, oid.Gen, nid.Loop, nid.Slot, nid.Gen)

	// Old refs are dead on the new incarnation, even when a new actor holds
	// their slot and generation.
	if _, err := a.sys.Ask(ctx, old, "stale"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask through a ref of the previous incarnation: %v, want ErrDead", err)
	}
	dropped := b2.node.Stats().Dropped
	if err := a.sys.Send(old, "stale"); err != nil {
		t.Fatal(err)
	}
	if err := a.sys.Send(fresh, "marker"); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, newGot, 5*time.Second, "marker"); v != "marker" {
		t.Fatalf("the new actor got %v", v)
	}
	if b2.node.Stats().Dropped != dropped+1 {
		t.Fatalf("the stale send was not dropped: %+v", b2.node.Stats())
	}
	// Monitoring an old ref: Down with ErrDead.
	monitorVia(t, a, w, old)
	if d := recv(t, dn, 5*time.Second, "Down of a stale ref"); !errors.Is(d.Reason, actor.ErrDead) {
		t.Fatalf("Down = %+v, want ErrDead", d)
	}
	// Traffic in the other direction works too: B2 asks an actor on A.
	incr := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return msg.(int) + 1, nil })
	fwd := remoteActor(t, a, b2, func(c *actor.Context, msg any) (any, error) {
		r := msg.(actor.Ref)
		rep := c.Defer()
		c.Ask(r, 1).Then(func(c *actor.Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if v, err := a.sys.Ask(ctx, fwd, incr); err != nil || v != 2 {
		t.Fatalf("B2 asking A = %v, %v", v, err)
	}
	nothing(t, oldGot, "message for the old incarnation")
}

// ---- 9. three nodes --------------------------------------------------------------------

type relay struct {
	Next actor.Ref
	Msg  string
}

func TestRemoteThreeNodes(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	c := newTestNode(t, "c", Config{})
	for _, tn := range []*testNode{a, b, c} {
		if err := Register[relay](tn.node, "test.relay"); err != nil {
			t.Fatal(err)
		}
	}
	cHeld := make(chan *actor.Reply, 1)
	onC := remoteActor(t, a, c, func(ctx *actor.Context, msg any) (any, error) {
		if m, ok := msg.(relay); !ok || m.Msg != "a>b" {
			return nil, fmt.Errorf("C got %v", msg)
		}
		cHeld <- ctx.Defer() // the test answers later, from its goroutine
		return nil, nil
	})
	onB := remoteActor(t, a, b, func(ctx *actor.Context, msg any) (any, error) {
		m := msg.(relay)
		if !m.Next.IsRemote() {
			return nil, fmt.Errorf("the ref of C's actor decoded on B as %v", m.Next)
		}
		rep := ctx.Defer()
		ctx.AskTimeout(m.Next, relay{Msg: m.Msg + ">b"}, 10*time.Second).Then(func(ctx *actor.Context, v any, err error) {
			if err != nil {
				rep.Reply(nil, err)
				return
			}
			rep.Reply(v.(string)+">b", nil)
		})
		return nil, nil
	})
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	if err := a.sys.Send(ak, askReq{onB, relay{Next: onC, Msg: "a"}, 15 * time.Second}); err != nil {
		t.Fatal(err)
	}
	rep := recv(t, cHeld, 10*time.Second, "the ask to reach C")
	nothing(t, res, "a reply before C answered")
	rep.Reply("c", nil)
	x := recv(t, res, 10*time.Second, "the reply at A")
	if x.err != nil || x.v != "c>b" {
		t.Fatalf("A->B->C = %v, %v", x.v, x.err)
	}
	// Errors flow back through the chain too.
	if err := a.sys.Send(ak, askReq{onB, relay{Next: onC, Msg: "a"}, 15 * time.Second}); err != nil {
		t.Fatal(err)
	}
	recv(t, cHeld, 10*time.Second, "the second ask to reach C").Reply(nil, actor.ErrPoolFull)
	if x := recv(t, res, 10*time.Second, "the error at A"); !errors.Is(x.err, actor.ErrPoolFull) {
		t.Fatalf("error through A->B->C: %v, want ErrPoolFull", x.err)
	}
	// B dialed C itself, from the ref it got in the message.
	if c.node.Stats().ConnsOpened < 2 {
		t.Fatalf("C saw %d connections, want one from A and one from B", c.node.Stats().ConnsOpened)
	}
}

// Refs to actors on B travel in frames to C while refs to actors on C travel
// in frames to B, concurrently, and refs of B's actors go back to B: encoding
// a ref reads its peer's name while the frame's own peer is locked, which
// must neither self-deadlock nor deadlock two peers against each other.
func TestRemoteRefsCrossingPeers(t *testing.T) {
	a := newTestNode(t, "a", Config{HeartbeatTimeout: 30 * time.Second})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: 30 * time.Second})
	c := newTestNode(t, "c", Config{HeartbeatTimeout: 30 * time.Second})
	for _, tn := range []*testNode{a, b, c} {
		if err := Register[refMsg](tn.node, "test.refMsg"); err != nil {
			t.Fatal(err)
		}
	}
	onB := remoteActor(t, a, b, echo)
	onC := remoteActor(t, a, c, echo)
	const n = 2000
	errc := make(chan error, 4)
	for _, pair := range [][2]actor.Ref{{onB, onC}, {onC, onB}, {onB, onB}, {onC, onC}} {
		go func() {
			for i := range n {
				if err := a.sys.Send(pair[0], refMsg{Ref: pair[1], N: i}); err != nil && !errors.Is(err, actor.ErrQueueFull) {
					errc <- err
					return
				}
			}
			v, err := a.sys.Ask(context.Background(), pair[0], refMsg{Ref: pair[1]})
			if err == nil && v.(refMsg).Ref != pair[1] {
				err = fmt.Errorf("ref came back as %v", v.(refMsg).Ref)
			}
			errc <- err
		}()
	}
	for range 4 {
		if err := recv(t, errc, 30*time.Second, "the senders (a deadlock?)"); err != nil {
			t.Fatal(err)
		}
	}
}

// ---- 10. remote spawn ----------------------------------------------------------------------

type failStart struct{ err error }

func (f failStart) Receive(*actor.Context, any) (any, error) { return nil, nil }
func (f failStart) Start(*actor.Context) error {
	if f.err == nil {
		panic("start panicked")
	}
	return f.err
}

func TestRemoteSpawnErrors(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	b.node.RegisterKind("failstart", func(any) (actor.Factory, error) {
		return func() actor.Actor { return failStart{errors.New("start refused")} }, nil
	})
	b.node.RegisterKind("panicstart", func(any) (actor.Factory, error) {
		return func() actor.Actor { return failStart{} }, nil
	})
	b.node.RegisterKind("badargs", func(args any) (actor.Factory, error) {
		if s, ok := args.(string); !ok || s != "good" {
			return nil, fmt.Errorf("bad args %v", args)
		}
		return func() actor.Actor { return fnActor(echo) }, nil
	})
	ctx := ctxT(t)
	addr := b.node.Addr()
	if _, err := a.node.Spawn(ctx, addr, "nosuchkind", nil); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unknown kind: %v, want ErrUnknownKind", err)
	}
	if _, err := a.node.Spawn(ctx, addr, "failstart", nil); err == nil || !strings.Contains(err.Error(), "start refused") {
		t.Fatalf("failing Start: %v", err)
	}
	if _, err := a.node.Spawn(ctx, addr, "panicstart", nil); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("panicking Start: %v, want ErrCrashed", err)
	}
	if _, err := a.node.Spawn(ctx, addr, "badargs", "bad"); err == nil || !strings.Contains(err.Error(), "bad args") {
		t.Fatalf("kind refusing its args: %v", err)
	}
	if _, err := a.node.Spawn(ctx, addr, "badargs", unregistered{}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unregistered args: %v, want ErrUnknownType", err)
	}
	if err := Register[onlyOnA](a.node, "test.onlyOnA"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.Spawn(ctx, addr, "badargs", onlyOnA{}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("args of a type B does not know: %v, want ErrUnknownType", err)
	}
	r, err := a.node.Spawn(ctx, addr, "badargs", "good")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := a.sys.Ask(ctx, r, "x"); err != nil || v != "x" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	if _, err := a.node.Spawn(ctx, a.node.Addr(), "echo", nil); err == nil {
		t.Fatal("spawn on the node's own address succeeded")
	}
	// A node that is not there: ErrNodeDown, not a hang.
	if _, err := a.node.Spawn(ctx, deadAddr(t), "echo", nil); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("spawn on an unreachable node: %v, want ErrNodeDown", err)
	}
	if st := a.node.Stats(); st.BadFrames != 0 {
		t.Fatalf("spawn errors closed a connection: %+v", st)
	}
}

// held keeps deferred Replies that a test means never to answer reachable:
// a Reply dropped unanswered is answered with actor.ErrNoReply once it is
// garbage collected, which would end the wait the test is about.
var held struct {
	sync.Mutex
	r []*actor.Reply
}

func holdReply(r *actor.Reply) {
	held.Lock()
	held.r = append(held.r, r)
	held.Unlock()
}
