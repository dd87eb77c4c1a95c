package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/loop"
)

type tsHop struct{ N, From int }

// tsScenario runs a fixed scenario on a manual two-loop system seeded with
// seed and returns the events its hook saw. Actors on both loops pass hops
// around, choosing the next actor and the way to reach it (Send, Ask with a
// continuation, or a timer) with c.Rand().
func tsScenario(t *testing.T, seed uint64) []string {
	t.Helper()
	var out []string
	hook := func(e *Event) {
		out = append(out, fmt.Sprintf("%d %d %v %s %s %s", e.Seq, e.Loop, e.Kind, e.To.String(), fmt.Sprint(e.Msg), e.Start.Format(time.StampMilli)))
	}
	fc := loop.NewFakeClock(tsT0)
	s := NewSystem(Config{Loops: 2, Manual: true, Clock: fc, Seed: seed, Hook: hook,
		Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	const n = 6
	peers := make([]Ref, n)
	for i := range peers {
		var err error
		peers[i], err = s.Spawn(ctx, tsFn(func(c *Context, msg any) (any, error) {
			m := msg.(tsHop)
			if m.N <= 0 {
				return m.N, nil
			}
			next := peers[c.Rand().IntN(n)]
			h := tsHop{m.N - 1, i}
			switch c.Rand().IntN(3) {
			case 0:
				_ = c.Send(next, h)
			case 1:
				c.After(time.Duration(1+c.Rand().IntN(100))*time.Millisecond, h)
			case 2:
				c.Ask(next, h).Then(func(c *Context, v any, err error) {
					_ = c.Send(peers[c.Rand().IntN(n)], tsHop{0, i})
				})
			}
			return m.N, nil
		}), OnLoop(i%2))
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range peers {
		if err := s.Send(p, tsHop{50, -1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.RunUntilIdle(1_000_000); n == 1_000_000 {
		t.Fatal("scenario did not finish")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministicReplay(t *testing.T) {
	a := tsScenario(t, 42)
	b := tsScenario(t, 42)
	if len(a) < 300 {
		t.Fatalf("scenario produced only %d events", len(a))
	}
	kinds := map[string]int{}
	for _, e := range a {
		kinds[strings.Fields(e)[2]]++
	}
	for _, k := range []EventKind{EventSpawn, EventSend, EventAsk, EventTimer, EventContinuation, EventStop} {
		if kinds[k.String()] == 0 {
			t.Errorf("scenario has no %v events: %v", k, kinds)
		}
	}
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d events", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed diverges at event %d:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	c := tsScenario(t, 43)
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Fatal("a different seed gave the same sequence of events")
	}
}

func TestManualStepping(t *testing.T) {
	s, fc := tsManual(t, 2)
	if s.Step() {
		t.Fatal("Step on an idle system reported an event")
	}
	if n := s.RunUntilIdle(100); n != 0 {
		t.Fatalf("RunUntilIdle on an idle system handled %d events", n)
	}
	var got []any
	a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		got = append(got, msg)
		return nil, nil
	}), OnLoop(1))
	for i := range 3 {
		if err := s.Send(a, i); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 0 {
		t.Fatal("a manual system ran a handler before being stepped")
	}
	if !s.Step() || len(got) != 1 {
		t.Fatalf("one Step handled %d messages", len(got))
	}
	if n := s.RunUntilIdle(1); n != 1 || len(got) != 2 {
		t.Fatalf("RunUntilIdle(1) = %d with %d handled", n, len(got))
	}
	if n := s.RunUntilIdle(100); n != 1 || fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("RunUntilIdle = %d, handled %v", n, got)
	}
	// An ask nobody will answer ends when the system is idle, not never.
	replies := make(chan *Reply, 1)
	silent := tsSpawn(t, s, tsDeferrer(replies))
	start := fc.Now()
	_, err := s.Ask(context.Background(), silent, "q")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("manual Ask with nobody answering = %v, want ErrTimeout", err)
	}
	if !fc.Now().Equal(start) {
		t.Fatalf("manual Ask moved the clock by %v", fc.Now().Sub(start))
	}
	// A non-manual system cannot be stepped.
	live := tsSystem(t, Config{Loops: 1})
	if live.Step() || live.RunUntilIdle(10) != 0 {
		t.Fatal("Step on a running system reported an event")
	}
}

// Event.Start is on the loop's clock, Event.Duration on the wall clock: with
// a fake clock set in the past, a handler's duration is still small.
func TestEventTimesWithFakeClock(t *testing.T) {
	var evs []Event
	fc := loop.NewFakeClock(tsT0)
	s := tsSystem(t, Config{Loops: 1, Manual: true, Clock: fc, Hook: func(e *Event) { evs = append(evs, *e) }})
	a := tsSpawn(t, s, tsEcho())
	drv := tsSpawn(t, s, tsDriver())
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		c.Ask(a, "q").Then(func(*Context, any, error) {})
		return c.Call(a, "c")
	}); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100)
	n := 0
	for _, e := range evs {
		switch e.Kind {
		case EventAsk, EventCall, EventContinuation:
			n++
			if !e.Start.Equal(fc.Now()) && !e.Start.Equal(tsT0) {
				t.Errorf("%v event Start %v, want on the fake clock", e.Kind, e.Start)
			}
			if e.Duration < 0 || e.Duration > time.Minute {
				t.Errorf("%v event Duration %v, want the handler's wall-clock run time", e.Kind, e.Duration)
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d handler events", n)
	}
}
