package actor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A handler that panics while it runs on the asking goroutine (a lent
// ask) crashes its actor exactly as on its loop's goroutine: the asker
// gets the *CrashError, OnCrash and a monitor hear of the crash, the panic
// does not reach the asker, and the loop goes on serving.
func TestLentHandlerPanicTakesTheCrashPath(t *testing.T) {
	crashes := make(chan *Crash, 8)
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, OnCrash: func(cr *Crash) { crashes <- cr }})
	downs := make(chan Down, 8)
	watcher := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if d, ok := msg.(Down); ok {
			downs <- d
		}
		return nil, nil
	}))
	echo := tsSpawn(t, s, tsEcho())
	me := goid()
	lent := false
	for i := 0; i < 3000 && !lent; i++ { // past 1024 asks not lent after a slowed-down one
		var ranOn atomic.Uint64
		crasher := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) {
			ranOn.Store(goid())
			panic("boom")
		}))
		if _, err := tsDoIn(t, s, watcher, func(c *Context) (any, error) { return nil, c.Monitor(crasher) }); err != nil {
			t.Fatal(err)
		}
		_, err := s.Ask(context.Background(), crasher, 1)
		var ce *CrashError
		if !errors.As(err, &ce) || ce.Value != "boom" || ce.Actor != crasher {
			t.Fatalf("ask of a crashing handler: %v, want its *CrashError", err)
		}
		lent = ranOn.Load() == me
		if cr := tsRecv(t, crashes, "OnCrash"); cr.Actor != crasher || cr.Value != "boom" {
			t.Fatalf("OnCrash got %+v", cr)
		}
		d := tsRecv(t, downs, "the monitor's Down")
		if d.Ref != crasher || !errors.As(d.Reason, &ce) {
			t.Fatalf("Down %+v, want the crash of %v", d, crasher)
		}
		if v, err := tsAsk(t, s, echo, i); err != nil || v != i {
			t.Fatalf("the loop after a crash: %v, %v", v, err)
		}
	}
	if !lent {
		t.Fatal("3000 asks of a crashing handler, none ran it on the asking goroutine")
	}
}

// The same from an actor of another loop (with Config.LendTimedAsks,
// PostFrom lends the target's handler to the asking loop's goroutine): the
// asker's promise gets the *CrashError and the asking loop goes on.
func TestLentCrossLoopHandlerPanic(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1, LendTimedAsks: true, OnCrash: func(*Crash) {}})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	lent := false
	for i := 0; i < 3000 && !lent; i++ {
		var ranOn atomic.Uint64
		crasher := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) {
			ranOn.Store(goid())
			panic("boom")
		}), OnLoop(1))
		v, err := tsDoOnLoop(t, s, drv, func(c *Context) (any, error) {
			me := goid()
			rep := c.Defer()
			c.Ask(crasher, 1).Then(func(_ *Context, _ any, err error) {
				var ce *CrashError
				if !errors.As(err, &ce) || ce.Value != "boom" {
					rep.Reply(nil, err)
					return
				}
				rep.Reply(ranOn.Load() == me, nil)
			})
			return nil, nil
		})
		if err != nil {
			t.Fatalf("the asking actor's ask of a crashing handler: %v, want its *CrashError", err)
		}
		lent = v.(bool)
	}
	if !lent {
		t.Fatal("3000 asks of a crashing handler from a quiet loop, none ran it on the asker's goroutine")
	}
}

// A panic that escapes the actor's own recovery (here a panicking event
// hook) while a handler runs on the asking goroutine is raised by the
// loop's goroutine, as it would have been had the handler run there: with
// ExternalLoops, Serve panics with it (a goroutine supervisor would serve
// the loop again), not the asker's Ask, which gets its answer once the
// loop is served again and handles the request on its own goroutine.
func TestLentHandlerEscapingPanicRaisedByServe(t *testing.T) {
	var asker atomic.Uint64 // the asking goroutine
	var fire atomic.Bool    // the hook panics for the next ask handled
	var fired atomic.Bool   // it did
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, ExternalLoops: true, Hook: func(e *Event) {
		if e.Kind == EventAsk && fire.CompareAndSwap(true, false) {
			fired.Store(true)
			panic("hook boom")
		}
	}})
	svc := s.LoopServices()[0]
	served := make(chan any, 4) // how each Serve ended: its panic, or its error
	serve := func() {
		go func() {
			defer func() {
				if v := recover(); v != nil {
					served <- v
				}
			}()
			served <- svc.Serve(context.Background())
		}()
	}
	serve()
	r := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if goid() == asker.Load() {
			fire.Store(true) // lent: the hook of this handler panics
		}
		return msg, nil
	}))
	type answer struct {
		n        int
		v        any
		err      error
		panicked any
	}
	got := make(chan answer, 1)
	go func() {
		asker.Store(goid())
		var a answer
		defer func() {
			a.panicked = recover()
			got <- a
		}()
		for a.n = 1; a.n <= 3000; a.n++ { // until one is lent
			a.v, a.err = s.Ask(context.Background(), r, a.n)
			if a.err != nil || a.v != a.n || fired.Load() {
				return
			}
		}
	}()
	var a answer
	select {
	case v := <-served:
		if v != "hook boom" {
			t.Fatalf("Serve ended with %v, want the hook's panic", v)
		}
		serve() // as a supervisor would
		a = tsRecv(t, got, "the asker's answer")
	case a = <-got:
		if fired.Load() {
			t.Fatalf("ask %d: answered before its loop was served again: %v, %v, panic %v", a.n, a.v, a.err, a.panicked)
		}
	case <-time.After(tsWait):
		t.Fatal("neither Serve nor the asker ended")
	}
	if a.panicked != nil {
		t.Fatalf("ask %d: the asker panicked with %v", a.n, a.panicked)
	}
	if a.n > 3000 {
		t.Fatal("3000 asks, none ran the handler on the asking goroutine")
	}
	if a.err != nil || a.v != a.n {
		t.Fatalf("ask %d: %v, %v; want its answer", a.n, a.v, a.err)
	}
}

// A supervised actor whose lent handler panics is suspended and its parent
// gets Crashed, as on its loop; the parent's Restart brings it back.
func TestLentHandlerPanicReachesTheSupervisor(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, OnCrash: func(*Crash) {}})
	crashed := make(chan Crashed, 8)
	parent := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		if cr, ok := msg.(Crashed); ok {
			crashed <- cr
			return nil, c.Restart(cr.Child)
		}
		return nil, nil
	}))
	var ranOn atomic.Uint64
	v, err := tsDoIn(t, s, parent, func(c *Context) (any, error) {
		return c.Spawn(tsFn(func(_ *Context, msg any) (any, error) {
			if msg == "boom" {
				ranOn.Store(goid())
				panic("boom")
			}
			return msg, nil
		}), Supervised())
	})
	if err != nil {
		t.Fatal(err)
	}
	child := v.(Ref)
	me := goid()
	lent := false
	for i := 0; i < 3000 && !lent; i++ {
		_, err := s.Ask(context.Background(), child, "boom")
		var ce *CrashError
		if !errors.As(err, &ce) || ce.Value != "boom" {
			t.Fatalf("ask of a crashing handler: %v, want its *CrashError", err)
		}
		lent = ranOn.Load() == me
		if cr := tsRecv(t, crashed, "the parent's Crashed"); cr.Child != child {
			t.Fatalf("Crashed %+v, want child %v", cr, child)
		}
		if v, err := tsAsk(t, s, child, i); err != nil || v != i {
			t.Fatalf("the restarted child: %v, %v", v, err)
		}
	}
	if !lent {
		t.Fatal("3000 asks of a crashing handler, none ran it on the asking goroutine")
	}
}
