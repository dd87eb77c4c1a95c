package actor

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
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

// A goroutine that asks an idle loop and would wait long enough runs the
// handler itself (no goroutine switch); one whose timeout is short (to
// catch a slow handler) leaves the handler to the loop's goroutine, so its
// timeout still works.
func TestAskFromGoroutineLendsOnlyWhenPatient(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1})
	r := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) { return goid(), nil }))
	me := goid()
	// inline asks up to n times, until one is handled on this goroutine,
	// and returns how many were. A lent handler slowed down (by the race
	// detector, a loaded machine) stops lending for 1024 asks: n is more.
	inline := func(ask func() (any, error), n int) int {
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
	long, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	cancellable, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	for _, c := range []struct {
		name string
		ask  func() (any, error)
	}{
		{"Ask, 500ms", func() (any, error) { return s.Ask(short, r, 1) }},
		{"Ask, cancellable", func() (any, error) { return s.Ask(cancellable, r, 1) }},
		{"AskTimeout, 500ms", func() (any, error) { return s.AskTimeout(r, 1, 500*time.Millisecond) }},
	} {
		if n := inline(c.ask, 50); n > 0 {
			t.Errorf("%s: ask %d was handled on the asking goroutine", c.name, n)
		}
	}
	for _, c := range []struct {
		name string
		ask  func() (any, error)
	}{
		{"Ask, no deadline", func() (any, error) { return s.Ask(context.Background(), r, 1) }},
		{"Ask, a minute", func() (any, error) { return s.Ask(long, r, 1) }},
		{"AskTimeout, a minute", func() (any, error) { return s.AskTimeout(r, 1, time.Minute) }},
		{"AskTimeout, none", func() (any, error) { return s.AskTimeout(r, 1, 0) }},
	} {
		if inline(c.ask, 3000) == 0 {
			t.Errorf("%s: 3000 asks, none handled on the asking goroutine", c.name)
		}
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

// An actor that asks an actor of another, idle loop and has nothing else
// queued runs the request's handler on its own goroutine: the round trip
// takes no goroutine switch.
func TestCrossLoopAskLendsWhenQuiet(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	echo := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) { return goid(), nil }), OnLoop(1))
	same := false
	for i := 0; i < 3000 && !same; i++ { // past 1024 asks not lent after a slowed-down one
		v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			me := goid()
			rep := c.Defer()
			c.Ask(echo, 1).Then(func(_ *Context, v any, err error) { rep.Reply(v == me, err) })
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		same = v.(bool)
	}
	if !same {
		t.Fatal("3000 cross-loop asks from a quiet loop, none handled on the asker's goroutine")
	}
}

// With Config.StrictDeadlines no ask runs the handler on the asking
// goroutine: not a goroutine's, whatever its deadline, nor a loop's.
func TestStrictDeadlinesNeverLend(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1, StrictDeadlines: true})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(1))
	r := tsSpawn(t, s, tsFn(func(_ *Context, _ any) (any, error) { return goid(), nil }), OnLoop(0))
	me := goid()
	long, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		name string
		ask  func() (any, error)
	}{
		{"Ask, no deadline", func() (any, error) { return s.Ask(context.Background(), r, 1) }},
		{"Ask, a minute", func() (any, error) { return s.Ask(long, r, 1) }},
		{"AskTimeout, a minute", func() (any, error) { return s.AskTimeout(r, 1, time.Minute) }},
		{"AskTimeout, none", func() (any, error) { return s.AskTimeout(r, 1, 0) }},
	} {
		for i := range 200 {
			v, err := c.ask()
			if err != nil {
				t.Fatal(err)
			}
			if v.(uint64) == me {
				t.Fatalf("%s: ask %d was handled on the asking goroutine", c.name, i+1)
			}
		}
	}
	for i := range 3000 { // as many as TestCrossLoopAskLendsWhenQuiet may need
		v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			me := goid()
			rep := c.Defer()
			c.Ask(r, 1).Then(func(_ *Context, v any, err error) { rep.Reply(v == me, err) })
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v.(bool) {
			t.Fatalf("cross-loop ask %d was handled on the asking loop's goroutine", i+1)
		}
	}
}
