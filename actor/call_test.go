package actor

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/loop"
)

func TestCallReturnsReply(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	adder := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		return []any{msg.(int) + 1, c.Sender(), c.Self()}, nil
	}), OnLoop(0))
	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(adder, 41) })
	if err != nil {
		t.Fatal(err)
	}
	got := v.([]any)
	if got[0] != 42 || got[1] != drv || got[2] != adder {
		t.Fatalf("Call = %v, want [42 %v %v]", got, drv, adder)
	}
	// A handler error comes back as is.
	errNo := errors.New("no")
	refuser := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { return "partial", errNo }), OnLoop(0))
	v, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(refuser, 1) })
	if !errors.Is(err, errNo) || v != "partial" {
		t.Fatalf("Call to a refusing handler = %v, %v", v, err)
	}
}

func TestCallNested(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	cc := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { return "c", nil }))
	bb := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		v, err := c.Call(cc, "to-c")
		if err != nil {
			return nil, err
		}
		// The context is restored after a nested call.
		if c.Sender().IsZero() {
			return nil, errors.New("B lost its sender after calling C")
		}
		return "b" + v.(string), nil
	}))
	aa := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		self := c.Self()
		v, err := c.Call(bb, "to-b")
		if err != nil {
			return nil, err
		}
		if c.Self() != self {
			return nil, errors.New("A's Self changed across a nested call")
		}
		return "a" + v.(string), nil
	}))
	if v, err := tsAsk(t, s, aa, "go"); err != nil || v != "abc" {
		t.Fatalf("A->B->C = %v, %v; want abc", v, err)
	}
}

func TestCallCycle(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	entries := 0 // touched only on the loop; read after an Ask round trip
	var bb Ref
	aa := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		entries++
		if msg == "reenter" {
			return "re-entered", nil
		}
		v, err := c.Call(bb, c.Self())
		if err != nil {
			return nil, err
		}
		// Calling oneself is a cycle too.
		_, selfErr := c.Call(c.Self(), "reenter")
		return []any{v, selfErr}, nil
	}))
	bb = tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		v, err := c.Call(msg.(Ref), "reenter")
		return []any{v, err}, nil
	}))
	v, err := tsAsk(t, s, aa, "start")
	if err != nil {
		t.Fatal(err)
	}
	got := v.([]any)
	inner := got[0].([]any)
	if inner[0] != nil || !errors.Is(inner[1].(error), ErrCycle) {
		t.Fatalf("B calling A while A calls B = %v, %v; want nil, ErrCycle", inner[0], inner[1])
	}
	if !errors.Is(got[1].(error), ErrCycle) {
		t.Fatalf("A calling itself = %v, want ErrCycle", got[1])
	}
	if v, _ := tsDoIn(t, s, aa, func(*Context) (any, error) { return entries, nil }); v != 1 {
		t.Fatalf("A was entered %v times, want 1 (no re-entry)", v)
	}
	// With no cycle, B can call A.
	v, err = tsAsk(t, s, bb, aa)
	if err != nil || v.([]any)[0] != "re-entered" {
		t.Fatalf("B calls idle A = %v, %v", v, err)
	}
}

func TestCallNotLocalDeadInvalid(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	ran := make(chan struct{}, 1)
	far := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) {
		ran <- struct{}{}
		return nil, nil
	}), OnLoop(1))
	near := tsSpawn(t, s, tsEcho(), OnLoop(0))

	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		start := time.Now()
		_, err := c.Call(far, "x")
		if d := time.Since(start); d > time.Second {
			t.Errorf("Call to another loop took %v", d)
		}
		return nil, err
	})
	if !errors.Is(err, ErrNotLocal) || v != nil {
		t.Fatalf("Call to another loop = %v, %v; want ErrNotLocal", v, err)
	}
	tsNone(t, ran, "handler run by a refused Call")

	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(Ref{}, "x") })
	if !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("Call zero Ref = %v, want ErrInvalidRef", err)
	}

	tsStop(t, s, drv, near, nil)
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(near, "x") })
	if !errors.Is(err, ErrDead) {
		t.Fatalf("Call stopped actor = %v, want ErrDead", err)
	}
}

func TestCallTargetPanics(t *testing.T) {
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(c *Crash) { crashes <- c }})
	drv := tsSpawn(t, s, tsDriver())
	bomb := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "eof" {
			panic(io.EOF)
		}
		panic("call-boom")
	}), Name("bomb"))
	bomb2 := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) { panic(io.EOF) }))

	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		v, err := c.Call(bomb, "x")
		if v != nil {
			t.Errorf("crashed Call returned value %v", v)
		}
		// The caller keeps running and can still call others.
		_, err2 := c.Call(bomb2, "eof")
		return []error{err, err2}, nil
	})
	if err != nil {
		t.Fatalf("caller failed: %v", err)
	}
	errs := v.([]error)
	var ce *CrashError
	if !errors.Is(errs[0], ErrCrashed) || !errors.As(errs[0], &ce) {
		t.Fatalf("Call to panicking target = %v, want *CrashError", errs[0])
	}
	if ce.Value != "call-boom" || ce.Actor != bomb || len(ce.Stack) == 0 || !strings.Contains(ce.Error(), "call-boom") {
		t.Fatalf("CrashError = %+v", ce)
	}
	if !errors.Is(errs[1], io.EOF) || !errors.Is(errs[1], ErrCrashed) {
		t.Fatalf("panic(io.EOF) gives %v; want it to match io.EOF and ErrCrashed", errs[1])
	}
	cr := tsRecv(t, crashes, "OnCrash")
	if cr.Actor != bomb || cr.Name != "bomb" || cr.Msg != "x" || cr.From != drv || cr.Value != "call-boom" || len(cr.Stack) == 0 {
		t.Fatalf("Crash = %+v", cr)
	}
	// Unsupervised: the target is gone.
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(bomb, "x") })
	if !errors.Is(err, ErrDead) {
		t.Fatalf("Call after crash = %v, want ErrDead", err)
	}
}

func TestCallDeferIsRefused(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	drv := tsSpawn(t, s, tsDriver())
	replies := make(chan *Reply, 1)
	deferrer := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		replies <- c.Defer()
		return "ignored", nil
	}))
	_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return c.Call(deferrer, "x") })
	if !errors.Is(err, ErrDeferredCall) {
		t.Fatalf("Defer in a Call = %v, want ErrDeferredCall", err)
	}
	r := tsRecv(t, replies, "Reply handle")
	r.Reply("late", nil) // discarded, must not panic
	r.Reply("twice", nil)
	var nilReply *Reply
	nilReply.Reply(nil, nil)
}

type tsPtrMsg struct{ n int }

func TestCallZeroAllocs(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Manual: true, Clock: loop.NewFakeClock(time.Unix(0, 0))})
	out := &tsPtrMsg{}
	target, err := s.Spawn(t.Context(), tsFn(func(_ *Context, msg any) (any, error) {
		out.n = msg.(*tsPtrMsg).n + 1
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := s.Spawn(t.Context(), tsDriver())
	if err != nil {
		t.Fatal(err)
	}
	in := &tsPtrMsg{n: 1}
	v, err := s.Ask(t.Context(), drv, tsDo(func(c *Context) (any, error) {
		var v any
		var err error
		allocs := testing.AllocsPerRun(1000, func() { v, err = c.Call(target, in) })
		if err != nil || v != out || out.n != 2 {
			t.Errorf("Call = %v, %v", v, err)
		}
		return allocs, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if v.(float64) != 0 {
		t.Fatalf("Call with pointer message and reply: %v allocs per call, want 0", v)
	}
}
