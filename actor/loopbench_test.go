package actor

import (
	"context"
	"testing"
)

// Benchmarks of the mailbox paths on one loop: everything happens on the
// loop's goroutine, so no goroutine hand-off or wake-up is timed and the
// numbers move less with the machine's load than the cross-loop ones.

// sendDriver sends left messages to target, in batches that leave room in
// the local queue (its "next" message queues behind each batch).
type sendDriver struct {
	target Ref
	left   int
}

type nextBatch struct{}

func (d *sendDriver) Receive(c *Context, msg any) (any, error) {
	k := min(d.left, 1024)
	for range k {
		if err := c.Send(d.target, theMsg); err != nil {
			return nil, err
		}
	}
	if d.left -= k; d.left > 0 {
		return nil, c.Send(c.Self(), nextBatch{})
	}
	return nil, nil
}

// BenchmarkSendSameLoop: one op = a Context.Send to an actor of the same
// loop and its delivery.
func BenchmarkSendSameLoop(b *testing.B) {
	s := benchSystem(b, 1)
	a := &countActor{want: int64(b.N), done: make(chan struct{})}
	target := mustSpawn(b, s, func() Actor { return a }, OnLoop(0))
	d := &sendDriver{target: target, left: b.N}
	drv := mustSpawn(b, s, func() Actor { return d }, OnLoop(0))
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.Send(drv, nextBatch{}); err != nil {
		b.Fatal(err)
	}
	<-a.done
}

// BenchmarkAskSameLoop: one op = an ask round trip between two actors of
// the same loop, one in flight: the ask, its delivery, the reply and the
// continuation.
func BenchmarkAskSameLoop(b *testing.B) { benchAskSameLoop(b, benchEcho{}) }

// benchAskSameLoop measures ask round trips from a pingActor to target,
// both on loop 0.
func benchAskSameLoop(b *testing.B, target Actor) {
	s := NewSystem(Config{Loops: 1, Watchdog: -1})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	pong := mustSpawn(b, s, func() Actor { return target }, OnLoop(0))
	p := &pingActor{peer: pong, done: make(chan struct{})}
	ping := mustSpawn(b, s, func() Actor { return p }, OnLoop(0))
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
}

// deferEcho answers each ask through a deferred Reply, at once.
type deferEcho struct{}

func (deferEcho) Receive(c *Context, msg any) (any, error) {
	c.Defer().Reply(msg, nil)
	return nil, nil
}

// BenchmarkDeferAskSameLoop: BenchmarkAskSameLoop with a target that
// answers through Context.Defer: the difference is the cost of a Reply.
func BenchmarkDeferAskSameLoop(b *testing.B) { benchAskSameLoop(b, deferEcho{}) }
