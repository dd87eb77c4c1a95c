package actor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// goid is the id of the calling goroutine, from its stack header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// inlineAsks asks up to n times, until one is handled on the calling
// goroutine (the handler replies with goid), and returns how many were
// asked then (0: none was). A lent handler slowed down (by the race
// detector, a loaded machine) stops lending for 1024 asks: n is more.
func inlineAsks(t *testing.T, ask func() (any, error), n int) int {
	t.Helper()
	me := goid()
	for i := range n {
		v, err := ask()
		if err != nil {
			t.Fatal(err)
		}
		if v.(uint64) == me {
			return i + 1
		}
	}
	return 0
}

// A goroutine that asks an idle loop and would wait without bound anyway
// (a context that can neither time out nor be cancelled) runs the handler
// itself (no goroutine switch). Every other ask leaves the handler to the
// loop's goroutine by default, so its deadline holds; with
// Config.LendTimedAsks a deadline a second or more away lends too, a
// shorter one or a cancellable context never.
func TestAskFromGoroutineLendsOnlyWhenPatient(t *testing.T) {
	for _, lendTimed := range []bool{false, true} {
		t.Run(fmt.Sprintf("LendTimedAsks=%v", lendTimed), func(t *testing.T) {
			s := tsSystem(t, Config{Loops: 1, Watchdog: -1, LendTimedAsks: lendTimed})
			r := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) { return goid(), nil }))
			long, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel2()
			cancellable, cancel3 := context.WithCancel(context.Background())
			defer cancel3()
			type askCase struct {
				name string
				ask  func() (any, error)
			}
			never := []askCase{
				{"Ask, 500ms", func() (any, error) { return s.Ask(short, r, 1) }},
				{"Ask, cancellable", func() (any, error) { return s.Ask(cancellable, r, 1) }},
				{"AskTimeout, 500ms", func() (any, error) { return s.AskTimeout(r, 1, 500*time.Millisecond) }},
			}
			lends := []askCase{
				{"Ask, no deadline", func() (any, error) { return s.Ask(context.Background(), r, 1) }},
				//lint:ignore SA1012 a nil context is tolerated, as it always was
				{"Ask, nil context", func() (any, error) { return s.Ask(nil, r, 1) }},
			}
			timed := []askCase{
				{"Ask, a minute", func() (any, error) { return s.Ask(long, r, 1) }},
				{"AskTimeout, a minute", func() (any, error) { return s.AskTimeout(r, 1, time.Minute) }},
				{"AskTimeout, none", func() (any, error) { return s.AskTimeout(r, 1, 0) }},
			}
			if lendTimed {
				lends = append(lends, timed...)
			} else {
				never = append(never, timed...)
			}
			for _, c := range never {
				if n := inlineAsks(t, c.ask, 200); n > 0 {
					t.Errorf("%s: ask %d was handled on the asking goroutine", c.name, n)
				}
			}
			for _, c := range lends {
				if inlineAsks(t, c.ask, 3000) == 0 {
					t.Errorf("%s: 3000 asks, none handled on the asking goroutine", c.name)
				}
			}
		})
	}
}

// By default a goroutine that holds a lock the handler takes and asks
// with a timeout (a second, as long as Config.LendTimedAsks would lend
// for) gets ErrTimeout, as when the handler runs on its loop: it is not
// lent the handler, which would wait for the caller's lock forever.
func TestAskTimeoutWithAHeldLockTimesOut(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1})
	var mu sync.Mutex
	var locking atomic.Bool
	r := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) {
		if locking.Load() {
			mu.Lock()
			defer mu.Unlock()
		}
		return nil, nil
	}))
	if _, err := tsAsk(t, s, r, 0); err != nil { // the loop is idle after it
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		mu.Lock()
		locking.Store(true)
		_, err := s.AskTimeout(r, 1, time.Second)
		locking.Store(false)
		mu.Unlock()
		done <- err
	}()
	if err := tsRecv(t, done, "AskTimeout with the handler's lock held"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("AskTimeout with the handler's lock held: %v, want ErrTimeout", err)
	}
}

// AskTimeout's lazy timer: a wait with a shorter timeout than the one the
// timer is armed for still times out on time, and a waiter whose timer
// fired for an earlier wait re-arms for the current one.
func TestAskTimeoutShorterThanArmed(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1})
	gate := make(chan struct{})
	defer close(gate)
	hold := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		rep := c.Defer()
		go func() { <-gate; rep.Reply(nil, nil) }()
		return nil, nil
	}))
	echo := tsSpawn(t, s, tsEcho())
	// Arm the pooled waiters' timers far ahead.
	for range 10 {
		if _, err := s.AskTimeout(echo, 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []time.Duration{20 * time.Millisecond, 5 * time.Millisecond} {
		start := time.Now()
		_, err := s.AskTimeout(hold, 1, d)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("AskTimeout(%v) of a held ask: %v, want ErrTimeout", d, err)
		}
		if el := time.Since(start); el > d+tsWait/2 {
			t.Fatalf("AskTimeout(%v) timed out after %v", d, el)
		}
	}
	// After the timeouts, a waiter whose timer fires for a wait already
	// answered leaves the next wait on its own deadline.
	for range 3 {
		if v, err := s.AskTimeout(echo, 2, 10*time.Millisecond); err != nil || v != 2 {
			t.Fatalf("AskTimeout after timeouts: %v, %v", v, err)
		}
	}
}

// tsDoOnLoop runs f inside the actor in (a tsActor) on its own loop's
// goroutine and returns its result: it asks with a context that can be
// cancelled and has no deadline, which never lends in's loop to the
// asking goroutine. (A loop lent to a goroutine does not lend on: a
// cross-loop ask from f would never lend.)
func tsDoOnLoop(t testing.TB, s *System, in Ref, f func(c *Context) (any, error)) (any, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.AfterFunc(tsWait, cancel)
	defer timer.Stop()
	v, err := s.Ask(ctx, in, tsDo(f))
	if errors.Is(err, context.Canceled) {
		t.Fatalf("Ask %v: no reply within %v", in, tsWait)
	}
	return v, err
}

// crossLoopInline has the actor drv ask target (which replies with goid)
// with ask, up to n times, until the target's handler runs on drv's
// goroutine, and returns how many asks that took (0: none did).
func crossLoopInline(t *testing.T, s *System, drv Ref, ask func(c *Context) Promise, n int) int {
	t.Helper()
	for i := range n {
		v, err := tsDoOnLoop(t, s, drv, func(c *Context) (any, error) {
			me := goid()
			rep := c.Defer()
			ask(c).Then(func(_ *Context, v any, err error) { rep.Reply(v == me, err) })
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v.(bool) {
			return i + 1
		}
	}
	return 0
}

// With Config.LendTimedAsks, an actor that asks an actor of another, idle
// loop (with a timeout of a second or more, as Context.Ask's default) and
// has nothing else queued runs the request's handler on its own
// goroutine: the round trip takes no goroutine switch. A shorter timeout
// never lends, nor does any cross-loop ask by default.
func TestCrossLoopAskLendsWhenQuiet(t *testing.T) {
	for _, lendTimed := range []bool{false, true} {
		t.Run(fmt.Sprintf("LendTimedAsks=%v", lendTimed), func(t *testing.T) {
			s := tsSystem(t, Config{Loops: 2, Watchdog: -1, LendTimedAsks: lendTimed})
			drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
			echo := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) { return goid(), nil }), OnLoop(1))
			short := func(c *Context) Promise { return c.AskTimeout(echo, 1, 500*time.Millisecond) }
			if n := crossLoopInline(t, s, drv, short, 200); n > 0 {
				t.Errorf("Context.AskTimeout(500ms): ask %d was handled on the asking loop's goroutine", n)
			}
			for _, c := range []struct {
				name string
				ask  func(c *Context) Promise
			}{
				{"Context.Ask", func(c *Context) Promise { return c.Ask(echo, 1) }},
				{"Context.AskTimeout(0)", func(c *Context) Promise { return c.AskTimeout(echo, 1, 0) }},
			} {
				n := crossLoopInline(t, s, drv, c.ask, map[bool]int{false: 200, true: 3000}[lendTimed])
				switch {
				case lendTimed && n == 0:
					t.Errorf("%s: 3000 cross-loop asks from a quiet loop, none handled on the asker's goroutine", c.name)
				case !lendTimed && n > 0:
					t.Errorf("%s: ask %d was handled on the asking loop's goroutine", c.name, n)
				}
			}
		})
	}
}
