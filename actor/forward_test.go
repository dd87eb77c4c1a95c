package actor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A proxy forwards; the target answers the original asker and sees the
// original sender.
func TestForwardAskAndSend(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	senders := make(chan Ref, 16)
	target := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		senders <- c.Sender()
		if n, ok := msg.(int); ok {
			return n * 2, nil
		}
		return nil, nil
	}), OnLoop(1))
	proxy := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		if err := c.Forward(target); err != nil {
			return nil, err
		}
		return "ignored", nil // Forward: the return values do not answer
	}), OnLoop(0))
	// From a goroutine: the answer is the target's.
	if v, err := tsAsk(t, s, proxy, 21); err != nil || v != 42 {
		t.Fatalf("ask through a forwarding proxy = %v, %v", v, err)
	}
	if from := tsRecv(t, senders, "the target's sender"); !from.IsZero() {
		t.Fatalf("target saw sender %v for a goroutine ask, want none", from)
	}
	// From an actor: ask and send; the target sees the actor, not the proxy.
	asker := tsSpawn(t, s, tsDriver(), OnLoop(0))
	v, err := tsDoIn(t, s, asker, func(c *Context) (any, error) {
		rep := c.Defer()
		c.Ask(proxy, 5).Then(func(c *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if err != nil || v != 10 {
		t.Fatalf("actor ask through the proxy = %v, %v", v, err)
	}
	if from := tsRecv(t, senders, "the target's sender"); from != asker {
		t.Fatalf("target saw sender %v, want the asker %v", from, asker)
	}
	if _, err := tsDoIn(t, s, asker, func(c *Context) (any, error) { return nil, c.Send(proxy, "one-way") }); err != nil {
		t.Fatal(err)
	}
	if from := tsRecv(t, senders, "the forwarded send"); from != asker {
		t.Fatalf("target saw sender %v for a forwarded send, want %v", from, asker)
	}
}

// Forwarded messages keep their order, across loops and on one loop.
func TestForwardKeepsOrder(t *testing.T) {
	for _, loop := range []int{0, 1} {
		s := tsSystem(t, Config{Loops: 2})
		got := make(chan int, 1000)
		target := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
			got <- msg.(int)
			return nil, nil
		}), OnLoop(loop))
		proxy := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) { return nil, c.Forward(target) }), OnLoop(0))
		sender := tsSpawn(t, s, tsDriver(), OnLoop(0))
		if _, err := tsDoIn(t, s, sender, func(c *Context) (any, error) {
			for i := range 1000 {
				if err := c.Send(proxy, i); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if n := tsRecv(t, got, "a forwarded message"); n != i {
				t.Fatalf("target on loop %d got %d, want %d", loop, n, i)
			}
		}
	}
}

// Where Forward does not apply, and what happens around it.
func TestForwardErrorsAndEdges(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	target := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) { return "from target", nil }), OnLoop(1))
	dead := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) { return nil, nil }), OnLoop(1))
	driver := tsSpawn(t, s, tsDriver(), OnLoop(1)) // on dead's loop: the stop is done when tsStop returns
	tsStop(t, s, driver, dead, nil)
	errs := make(chan error, 8)
	proxy := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch msg {
		case "dead":
			return nil, c.Forward(dead)
		case "zero":
			return nil, c.Forward(Ref{})
		case "twice":
			errs <- c.Forward(target)
			errs <- c.Forward(target)
		case "after defer":
			rep := c.Defer()
			errs <- c.Forward(target)
			rep.Reply("from defer", nil)
		case "defer after":
			errs <- c.Forward(target)
			c.Defer().Reply("from the inert Reply", nil)
		case "crash after":
			errs <- c.Forward(target)
			panic("after forwarding")
		case "timer":
			c.After(time.Millisecond, "fire")
		case "fire":
			errs <- c.Forward(target)
		}
		return "from proxy", nil
	}), OnLoop(0))
	if _, err := tsAsk(t, s, proxy, "dead"); !errors.Is(err, ErrDead) {
		t.Fatalf("forward to a dead actor: %v, want ErrDead at the asker", err)
	}
	if _, err := tsAsk(t, s, proxy, "zero"); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("forward to the zero ref: %v", err)
	}
	if v, err := tsAsk(t, s, proxy, "twice"); v != "from target" || err != nil {
		t.Fatalf("forwarded twice: %v, %v", v, err)
	}
	if e1, e2 := tsRecv(t, errs, "first"), tsRecv(t, errs, "second"); e1 != nil || !errors.Is(e2, ErrNotForwardable) {
		t.Fatalf("Forward twice: %v then %v", e1, e2)
	}
	if v, err := tsAsk(t, s, proxy, "after defer"); v != "from defer" || err != nil {
		t.Fatalf("Forward after Defer: asker got %v, %v", v, err)
	}
	if err := tsRecv(t, errs, "Forward after Defer"); !errors.Is(err, ErrNotForwardable) {
		t.Fatalf("Forward after Defer = %v", err)
	}
	if v, err := tsAsk(t, s, proxy, "defer after"); v != "from target" || err != nil {
		t.Fatalf("Defer after Forward: asker got %v, %v", v, err)
	}
	_ = tsRecv(t, errs, "Forward")
	if v, err := tsAsk(t, s, proxy, "crash after"); v != "from target" || err != nil {
		t.Fatalf("a crash after Forward: asker got %v, %v, want the target's answer", v, err)
	}
	_ = tsRecv(t, errs, "Forward")
	proxy2 := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch msg {
		case "timer":
			c.After(time.Millisecond, "fire")
		case "fire":
			errs <- c.Forward(target)
		case "cont":
			c.Ask(target, 1).Then(func(c *Context, _ any, _ error) { errs <- c.Forward(target) })
		}
		return nil, nil
	}), OnLoop(0))
	_ = s.Send(proxy2, "timer")
	if err := tsRecv(t, errs, "Forward in a timer"); !errors.Is(err, ErrNotForwardable) {
		t.Fatalf("Forward in a timer = %v", err)
	}
	_ = s.Send(proxy2, "cont")
	if err := tsRecv(t, errs, "Forward in a continuation"); !errors.Is(err, ErrNotForwardable) {
		t.Fatalf("Forward in a continuation = %v", err)
	}
	// In a Call: nothing to forward.
	caller := tsSpawn(t, s, tsDriver(), OnLoop(0))
	if _, err := tsDoIn(t, s, caller, func(c *Context) (any, error) {
		_, err := c.Call(proxy2, tsDo(func(c *Context) (any, error) { return nil, c.Forward(target) }))
		if !errors.Is(err, ErrNotForwardable) {
			return nil, errors.New("Forward in a Call: " + errString(err))
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// BenchmarkForwardAsk: one op = an ask from a goroutine answered through a
// proxy on another loop that forwards it, beside the same ask sent to the
// target directly.
func BenchmarkForwardAsk(b *testing.B) {
	s := tsSystem(b, Config{Loops: 2})
	target := tsSpawn(b, s, tsFn(func(c *Context, msg any) (any, error) { return msg, nil }), OnLoop(1))
	proxy := tsSpawn(b, s, tsFn(func(c *Context, msg any) (any, error) { return nil, c.Forward(target) }), OnLoop(0))
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		to   Ref
	}{{"direct", target}, {"forwarded", proxy}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Ask(ctx, bc.to, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
