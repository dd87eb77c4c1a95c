package debug_test

import (
	"context"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
)

// BenchmarkCrossLoopPingPong and BenchmarkCrossLoopPingPongTraced: one op =
// one ask/reply round trip between actors on two loops, one in flight
// (a copy of actor.BenchmarkCrossLoopPingPong, which cannot import this
// package), without and with the recorder as the event hook, so that the
// ratio is measured in one run. Each round trip is two recorded events (the
// ask handled on loop 1, the continuation on loop 0), each with its payload
// rendered.

type benchMsg struct{ N int }

var theMsg = &benchMsg{N: 1}

type benchEcho struct{}

func (benchEcho) Receive(c *actor.Context, msg any) (any, error) { return msg, nil }

type pingActor struct {
	peer actor.Ref
	n    int
	err  error
	done chan struct{}
	cont actor.Continuation
}

func (p *pingActor) Start(c *actor.Context) error {
	p.cont = p.onReply
	return nil
}

func (p *pingActor) Receive(c *actor.Context, msg any) (any, error) {
	if n, ok := msg.(int); ok {
		p.n = n
		c.Ask(p.peer, theMsg).Then(p.cont)
	}
	return nil, nil
}

func (p *pingActor) onReply(c *actor.Context, v any, err error) {
	if err != nil {
		p.err = err
		close(p.done)
		return
	}
	if p.n--; p.n <= 0 {
		close(p.done)
		return
	}
	c.Ask(p.peer, theMsg).Then(p.cont)
}

func BenchmarkCrossLoopPingPong(b *testing.B) {
	crossLoopPingPong(b, nil, nil)
}

func BenchmarkCrossLoopPingPongTraced(b *testing.B) {
	crossLoopPingPong(b, &debug.Config{}, nil)
}

// BenchmarkCrossLoopPingPongTracedNoPayload records metadata only.
func BenchmarkCrossLoopPingPongTracedNoPayload(b *testing.B) {
	crossLoopPingPong(b, &debug.Config{NoPayloads: true}, nil)
}

func crossLoopPingPong(b *testing.B, dcfg *debug.Config, hook actor.Hook) {
	cfg := actor.Config{Loops: 2, Watchdog: -1, Hook: hook}
	var rec *debug.Recorder
	if dcfg != nil {
		rec = debug.Install(&cfg, *dcfg)
	}
	s := actor.NewSystem(cfg)
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if rec != nil {
		if err := rec.Attach(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	pong, err := s.Spawn(ctx, func() actor.Actor { return benchEcho{} }, actor.OnLoop(1))
	if err != nil {
		b.Fatal(err)
	}
	p := &pingActor{peer: pong, done: make(chan struct{})}
	ping, err := s.Spawn(ctx, func() actor.Actor { return p }, actor.OnLoop(0))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.Send(ping, b.N); err != nil {
		b.Fatal(err)
	}
	<-p.done
	b.StopTimer()
	if p.err != nil {
		b.Fatal(p.err)
	}
	if rec != nil {
		st := rec.Stats()
		if st[0].Handled+st[1].Handled < uint64(2*b.N) {
			b.Fatalf("recorded %d handler events, want >= %d", st[0].Handled+st[1].Handled, 2*b.N)
		}
	}
}

// BenchmarkCrossLoopPingPongNopHook installs a hook that does nothing: the
// runtime's own cost of reporting events (clock reads per handler).
func BenchmarkCrossLoopPingPongNopHook(b *testing.B) {
	crossLoopPingPong(b, nil, func(*actor.Event) {})
}

// BenchmarkCrossLoopPingPongTracedSmallRing records into a 1024-event ring
// that stays in cache: the difference with Traced is the cost of the cache
// misses of a large ring.
func BenchmarkCrossLoopPingPongTracedSmallRing(b *testing.B) {
	crossLoopPingPong(b, &debug.Config{RingSize: 1024}, nil)
}

// BenchmarkHook is the recorder's own cost per event, without a runtime:
// one handler event with a small struct payload, rendered and recorded.
func BenchmarkHook(b *testing.B) {
	hookBench(b, debug.Config{Loops: 1}, theMsg)
}

// BenchmarkHookNoPayload records the metadata only.
func BenchmarkHookNoPayload(b *testing.B) {
	hookBench(b, debug.Config{Loops: 1, NoPayloads: true}, theMsg)
}

func hookBench(b *testing.B, cfg debug.Config, msg any) {
	rec := debug.New(cfg)
	ev := &actor.Event{Loop: 0, Kind: actor.EventAsk, Msg: msg, Start: time.Now(), Duration: 100}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Seq = uint64(i)
		rec.Hook(ev)
	}
}
