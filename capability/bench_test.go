package capability

import (
	"context"
	"testing"

	"github.com/actord/actord/actor"
)

// Benchmarks of a facet hop. Each family has its baseline in the same run: the
// same operation straight to the target. docs/capabilities.md keeps the
// numbers and the command.

type benchMsg struct{ n int }

var theMsg = &benchMsg{n: 1}

type benchEcho struct{}

func (benchEcho) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

// pinger asks its peer n times, one ask in flight, then closes done.
type pinger struct {
	peer actor.Ref
	n    int
	err  error
	done chan struct{}
	cont actor.Continuation
}

type ping struct {
	peer actor.Ref
	n    int
	done chan struct{}
}

func (p *pinger) Start(*actor.Context) error { p.cont = p.onReply; return nil }

func (p *pinger) Receive(c *actor.Context, msg any) (any, error) {
	if m, ok := msg.(ping); ok {
		p.peer, p.n, p.done = m.peer, m.n, m.done
		c.Ask(p.peer, theMsg).Then(p.cont)
	}
	return nil, nil
}

func (p *pinger) onReply(c *actor.Context, _ any, err error) {
	if err != nil {
		p.err = err
		close(p.done)
		return
	}
	p.n--
	if p.n <= 0 {
		close(p.done)
		return
	}
	c.Ask(p.peer, theMsg).Then(p.cont)
}

func benchSys(b *testing.B) *actor.System {
	s := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func benchSpawn(b *testing.B, s *actor.System, f actor.Factory, loop int) actor.Ref {
	r, err := s.Spawn(context.Background(), f, actor.OnLoop(loop))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkAsk: one op = one ask round trip from an actor on loop 0, to a
// target on loop 0 (same) or loop 1 (cross): straight to the target
// (the baseline), through an asynchronous facet, and through a synchronous
// one (which calls the target on its own stack when they share a loop).
func BenchmarkAsk(b *testing.B) {
	for _, place := range []struct {
		name string
		loop int
	}{{"same-loop", 0}, {"cross-loop", 1}} {
		for _, mode := range []string{"direct", "facet", "facet-sync", "facet-handoff"} {
			b.Run(place.name+"/"+mode, func(b *testing.B) {
				s := benchSys(b)
				target := benchSpawn(b, s, func() actor.Actor { return benchEcho{} }, place.loop)
				to := target
				switch mode {
				case "facet":
					f, err := Spawn(context.Background(), s, target, Allow[*benchMsg]())
					if err != nil {
						b.Fatal(err)
					}
					to = f.Ref()
				case "facet-sync":
					f, err := Spawn(context.Background(), s, target, Allow[*benchMsg](), Synchronous())
					if err != nil {
						b.Fatal(err)
					}
					to = f.Ref()
				case "facet-handoff":
					f, err := Spawn(context.Background(), s, target, Allow[*benchMsg](), Handoff())
					if err != nil {
						b.Fatal(err)
					}
					to = f.Ref()
				}
				p := &pinger{}
				pr := benchSpawn(b, s, func() actor.Actor { return p }, 0)
				done := make(chan struct{})
				b.ReportAllocs()
				b.ResetTimer()
				if err := s.Send(pr, ping{peer: to, n: b.N, done: done}); err != nil {
					b.Fatal(err)
				}
				<-done
				b.StopTimer()
				if p.err != nil {
					b.Fatal(p.err)
				}
			})
		}
	}
}

// counterActor counts messages and answers the count.
type counterActor struct{ n int }

func (c *counterActor) Receive(_ *actor.Context, msg any) (any, error) {
	if _, ok := msg.(*benchMsg); ok {
		c.n++
		return nil, nil
	}
	return c.n, nil
}

type burst struct {
	to   actor.Ref
	n    int
	done chan error
}

// sender sends n messages in one turn, then one ask to wait for them all.
type sender struct{}

func (sender) Receive(c *actor.Context, msg any) (any, error) {
	m := msg.(burst)
	for i := 0; i < m.n; i++ {
		if err := c.Send(m.to, theMsg); err != nil {
			m.done <- err
			return nil, nil
		}
	}
	c.AskTimeout(m.to, "count", 0).Then(func(_ *actor.Context, _ any, err error) { m.done <- err })
	return nil, nil
}

// BenchmarkSend: one op = one one-way message from an actor on loop 0 to a
// target on loop 1, in bursts of 1000 (bounded by the queue capacity),
// straight or through a facet on the target's loop.
func BenchmarkSend(b *testing.B) {
	for _, mode := range []string{"direct", "facet", "facet-sync"} {
		b.Run(mode, func(b *testing.B) {
			s := benchSys(b)
			target := benchSpawn(b, s, func() actor.Actor { return &counterActor{} }, 1)
			to := target
			if mode != "direct" {
				opts := []Option{Allow[*benchMsg](), Allow[string]()}
				if mode == "facet-sync" {
					opts = append(opts, Synchronous())
				}
				f, err := Spawn(context.Background(), s, target, opts...)
				if err != nil {
					b.Fatal(err)
				}
				to = f.Ref()
			}
			snd := benchSpawn(b, s, func() actor.Actor { return sender{} }, 0)
			done := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for left := b.N; left > 0; left -= 1000 {
				if err := s.Send(snd, burst{to: to, n: min(left, 1000), done: done}); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
