package remote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// spawned is what a SpawnAsync's done got, and how often it ran.
type spawned struct {
	ref   actor.Ref
	err   error
	calls int
}

func (s *spawned) done(r actor.Ref, err error) { s.ref, s.err = r, err; s.calls++ }

// SpawnAsync on the in-memory network, with no goroutine waiting: a spawn
// answered, an unknown kind refused, a spawn across a partition timed out
// on the virtual clock, and one whose node is lost failed with the loss;
// done runs once in each case.
func TestSpawnAsync(t *testing.T) {
	w := newMemWorld(t, 5, "10.0.0.1", "10.0.0.2")
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	b.RegisterKind("echo", echoKind)

	var ok spawned
	a.SpawnAsync(b.Addr(), "echo", nil, time.Second, ok.done)
	w.run(500 * time.Millisecond)
	if ok.calls != 1 || ok.err != nil || !ok.ref.IsRemote() {
		t.Fatalf("spawn: done ran %d times with %v, %v; want once with a remote ref", ok.calls, ok.ref, ok.err)
	}
	var reply spawned
	w.sys[0].Send(w.spawnOn(0, 0, func(c *actor.Context, msg any) (any, error) {
		if msg == "go" {
			c.Ask(ok.ref, "ping").Then(func(c *actor.Context, v any, err error) { reply.err, reply.calls = err, 1 })
		}
		return nil, nil
	}), "go")
	w.run(500 * time.Millisecond)
	if reply.calls != 1 || reply.err != nil {
		t.Fatalf("the spawned actor did not answer: %v", reply.err)
	}

	var unknown spawned
	a.SpawnAsync(b.Addr(), "nosuchkind", nil, time.Second, unknown.done)
	w.run(500 * time.Millisecond)
	if unknown.calls != 1 || !errors.Is(unknown.err, ErrUnknownKind) {
		t.Fatalf("unknown kind: done ran %d times with %v; want once with ErrUnknownKind", unknown.calls, unknown.err)
	}

	var slow spawned
	w.nw.Partition("10.0.0.1", "10.0.0.2")
	a.SpawnAsync(b.Addr(), "echo", nil, 300*time.Millisecond, slow.done)
	w.run(200 * time.Millisecond)
	if slow.calls != 0 {
		t.Fatalf("done ran before the timeout: %v", slow.err)
	}
	w.run(200 * time.Millisecond)
	if slow.calls != 1 || !errors.Is(slow.err, context.DeadlineExceeded) {
		t.Fatalf("partitioned: done ran %d times with %v; want once with DeadlineExceeded", slow.calls, slow.err)
	}

	// Lost: the heartbeats time out (1 s) before the spawn's own 10 s.
	var lost spawned
	a.SpawnAsync(b.Addr(), "echo", nil, 10*time.Second, lost.done)
	w.run(3 * time.Second)
	if lost.calls != 1 || lost.err == nil || errors.Is(lost.err, context.DeadlineExceeded) {
		t.Fatalf("node lost: done ran %d times with %v; want once with the loss", lost.calls, lost.err)
	}
	w.nw.Heal("10.0.0.1", "10.0.0.2")
	w.run(12 * time.Second) // past every timer armed above
	for _, s := range []*spawned{&ok, &unknown, &slow, &lost} {
		if s.calls != 1 {
			t.Fatalf("a done ran %d times", s.calls)
		}
	}

	var bad spawned
	a.SpawnAsync(b.Addr(), "echo", nil, 0, bad.done)
	if bad.calls != 1 || bad.err == nil {
		t.Fatalf("zero timeout: done ran %d times with %v; want once, at once, with an error", bad.calls, bad.err)
	}
}

// counted is an actor that counts the live instances of its kind.
type counted struct{ live *int }

func (c counted) Start(*actor.Context) error               { *c.live++; return nil }
func (c counted) Terminate(*actor.Context, error)          { *c.live-- }
func (c counted) Receive(*actor.Context, any) (any, error) { return nil, nil }

// An answer that comes after its spawn's caller stopped waiting names an
// actor nobody knows of: the node stops it. Here the answer is slow (the
// way back from B takes 500 ms), and the spawn times out after 200 ms.
func TestLateSpawnAnswerStopsTheActor(t *testing.T) {
	w := newMemWorld(t, 9, "10.0.0.1", "10.0.0.2")
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	live := 0
	b.RegisterKind("counted", func(any) (actor.Factory, error) {
		return func() actor.Actor { return counted{live: &live} }, nil
	})
	var first spawned // connects the nodes
	a.SpawnAsync(b.Addr(), "counted", nil, time.Second, first.done)
	w.run(time.Second)
	if first.err != nil || live != 1 {
		t.Fatalf("spawn: %v; %d live, want 1", first.err, live)
	}
	w.nw.SetLinkLatency("10.0.0.2", "10.0.0.1", 500*time.Millisecond, 500*time.Millisecond)
	var late spawned
	a.SpawnAsync(b.Addr(), "counted", nil, 200*time.Millisecond, late.done)
	w.run(300 * time.Millisecond)
	if late.calls != 1 || !errors.Is(late.err, context.DeadlineExceeded) {
		t.Fatalf("done ran %d times with %v; want once with DeadlineExceeded", late.calls, late.err)
	}
	if live != 2 {
		t.Fatalf("%d live on B, want 2 (the late one made, its answer on the way)", live)
	}
	w.run(time.Second) // the answer arrives; A stops the actor it names
	w.nw.ClearLinkLatency("10.0.0.2", "10.0.0.1")
	if live != 1 {
		t.Fatalf("%d actors live on B, want 1: the abandoned spawn's actor still runs", live)
	}
	if n := a.Stats().SpawnsStopped; n != 1 {
		t.Fatalf("SpawnsStopped = %d, want 1", n)
	}
}

// A loss that settles a SpawnAsync between its recording and its sending
// (on another goroutine in production; here a test hook) makes its send
// fail too: done still runs once.
func TestSpawnAsyncLostWhileSending(t *testing.T) {
	w := newMemWorld(t, 4, "10.0.0.1", "10.0.0.2")
	defer w.close()
	a, b := w.nodes[0], w.nodes[1]
	b.RegisterKind("echo", echoKind)
	var first spawned
	a.SpawnAsync(b.Addr(), "echo", nil, time.Second, first.done)
	w.run(500 * time.Millisecond)
	if first.err != nil {
		t.Fatal(first.err)
	}
	testCallRecorded = func(p *peer) {
		p.mu.Lock()
		epoch := p.link.epoch
		p.mu.Unlock()
		p.lost(epoch, errors.New("test: connection reset"))
	}
	defer func() { testCallRecorded = nil }()
	var lost spawned
	a.SpawnAsync(b.Addr(), "echo", nil, time.Second, lost.done)
	testCallRecorded = nil
	w.run(2 * time.Second)
	if lost.calls != 1 || lost.err == nil {
		t.Fatalf("done ran %d times with %v; want once with the loss", lost.calls, lost.err)
	}
}
