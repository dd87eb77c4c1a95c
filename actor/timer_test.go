package actor

import (
	"testing"
	"time"

	"github.com/actord/actord/loop"
)

var tsT0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type tsFire struct {
	msg    any
	at     time.Time
	sender Ref
}

// tsTimed is an actor that records every non-tsDo message with the loop time.
func tsTimed(fires *[]tsFire) Factory {
	return tsFn(func(c *Context, msg any) (any, error) {
		*fires = append(*fires, tsFire{msg, c.Now(), c.Sender()})
		return nil, nil
	})
}

func tsManual(t *testing.T, loops int) (*System, *loop.FakeClock) {
	fc := loop.NewFakeClock(tsT0)
	return tsSystem(t, Config{Loops: loops, Manual: true, Clock: fc}), fc
}

func TestAfterFiresOnce(t *testing.T) {
	s, fc := tsManual(t, 1)
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	v, err := tsDoIn(t, s, a, func(c *Context) (any, error) { return c.After(10*time.Second, "tick"), nil })
	if err != nil {
		t.Fatal(err)
	}
	tm := v.(Timer)
	s.RunUntilIdle(100)
	if len(fires) != 1 || fires[0].msg != "tick" || !fires[0].at.Equal(tsT0.Add(10*time.Second)) || !fires[0].sender.IsZero() {
		t.Fatalf("fires %+v, want one tick at +10s with no sender", fires)
	}
	fc.Advance(time.Hour)
	s.RunUntilIdle(100)
	if len(fires) != 1 {
		t.Fatalf("one-shot timer fired %d times", len(fires))
	}
	if v, _ := tsDoIn(t, s, a, func(*Context) (any, error) { return tm.Cancel(), nil }); v != false {
		t.Fatal("Cancel of a fired one-shot timer reported true")
	}
	if (Timer{}).Cancel() {
		t.Fatal("Cancel of the zero Timer reported true")
	}
}

func TestEveryFiresUntilCancel(t *testing.T) {
	s, _ := tsManual(t, 1)
	var ticks []time.Time
	var tm Timer
	cancelled := []bool{}
	a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch msg {
		case "arm":
			tm = c.Every(time.Second, "tick")
		case "tick":
			ticks = append(ticks, c.Now())
			if len(ticks) == 5 {
				cancelled = append(cancelled, tm.Cancel(), tm.Cancel())
			}
		}
		return nil, nil
	}))
	if err := s.Send(a, "arm"); err != nil {
		t.Fatal(err)
	}
	if n := s.RunUntilIdle(1000); n >= 1000 {
		t.Fatalf("periodic timer still running after Cancel (%d events)", n)
	}
	if len(ticks) != 5 {
		t.Fatalf("%d ticks, want 5", len(ticks))
	}
	for i, at := range ticks {
		if !at.Equal(tsT0.Add(time.Duration(i+1) * time.Second)) {
			t.Fatalf("tick %d at %v, want +%ds", i, at.Sub(tsT0), i+1)
		}
	}
	if len(cancelled) != 2 || !cancelled[0] || cancelled[1] {
		t.Fatalf("Cancel, Cancel = %v; want true, false", cancelled)
	}
	v, _ := tsDoIn(t, s, a, func(c *Context) (v any, err error) {
		defer func() { v = recover() }()
		c.Every(0, "x")
		return nil, nil
	})
	if v == nil {
		t.Fatal("Every with a zero period did not panic")
	}
}

func TestEverySkipsWhenBehind(t *testing.T) {
	s, fc := tsManual(t, 1)
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) { return c.Every(time.Second, "tick"), nil }); err != nil {
		t.Fatal(err)
	}
	fc.Advance(10*time.Second + 500*time.Millisecond)
	for range 2 {
		if !s.Step() {
			t.Fatal("Step found nothing to do")
		}
	}
	if len(fires) != 2 || !fires[0].at.Equal(tsT0.Add(10500*time.Millisecond)) || !fires[1].at.Equal(tsT0.Add(11500*time.Millisecond)) {
		for _, f := range fires {
			t.Logf("fired at +%v", f.at.Sub(tsT0))
		}
		t.Fatalf("a periodic timer that fell behind fired %d times; want one now and the next a period later", len(fires))
	}
}

func TestCancelBeforeFire(t *testing.T) {
	s, _ := tsManual(t, 1)
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	v, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		tm := c.After(5*time.Second, "never")
		return []bool{tm.Cancel(), tm.Cancel()}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.([]bool); !got[0] || got[1] {
		t.Fatalf("Cancel, Cancel before firing = %v, want true, false", got[:2])
	}
	s.RunUntilIdle(100)
	if len(fires) != 0 {
		t.Fatalf("cancelled timers delivered %+v", fires)
	}
	// Cancelling in a later turn works too.
	v, _ = tsDoIn(t, s, a, func(c *Context) (any, error) { return c.After(time.Second, "later"), nil })
	if ok, _ := tsDoIn(t, s, a, func(*Context) (any, error) { return v.(Timer).Cancel(), nil }); ok != true {
		t.Fatal("Cancel in a later turn reported false")
	}
	s.RunUntilIdle(100)
	if len(fires) != 0 {
		t.Fatalf("cancelled timer delivered %+v", fires)
	}
}

func TestTimersOfStoppedActorDoNotFire(t *testing.T) {
	s, _ := tsManual(t, 1)
	var fires []tsFire
	drv := tsSpawn(t, s, tsDriver())
	a := tsSpawn(t, s, tsTimed(&fires))
	if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		c.After(time.Second, "once")
		c.Every(time.Second, "tick")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	tsStop(t, s, drv, a, nil)
	b := tsSpawn(t, s, tsTimed(&fires)) // reuses a's slot
	_, slotA, _ := a.ID()
	_, slotB, _ := b.ID()
	if slotA != slotB {
		t.Fatalf("b %v did not reuse a's slot %v", b, a)
	}
	if n := s.RunUntilIdle(100); n >= 100 {
		t.Fatalf("timers of a stopped actor keep firing (%d events)", n)
	}
	if len(fires) != 0 {
		t.Fatalf("timers of a stopped actor delivered %+v", fires)
	}
	if n := s.loops[0].timers.active; n != 0 {
		t.Fatalf("%d timers still active", n)
	}
}

func TestAfterRealClock(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	got := make(chan any, 8)
	a := tsSpawn(t, s, func() Actor {
		n := 0
		var tm Timer
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "arm":
				c.After(20*time.Millisecond, "after")
				tm = c.Every(5*time.Millisecond, "every")
			case "every":
				if n++; n == 3 {
					tm.Cancel()
					got <- "every x3"
				}
			default:
				got <- msg
			}
			return nil, nil
		}}
	}, OnLoop(1))
	start := time.Now()
	if err := s.Send(a, "arm"); err != nil {
		t.Fatal(err)
	}
	seen := map[any]bool{}
	for range 2 {
		seen[tsRecv(t, got, "timer")] = true
	}
	if !seen["after"] || !seen["every x3"] {
		t.Fatalf("timers delivered %v", seen)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("timers fired after %v, too early", d)
	}
	tsNone(t, got, "extra timer message")
}

// 10k timers on one loop fire in deadline order, ties in scheduling order,
// each exactly at its deadline; cancelling most of them (which compacts the
// loop's timer heap) leaves the rest in order.
func TestManyTimersFireInDeadlineOrder(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(map[bool]string{false: "all", true: "cancel2of3"}[cancel], func(t *testing.T) {
			const n = 10000
			s, _ := tsManual(t, 1)
			deadlines := make([]time.Time, n)
			type fire struct {
				i  int
				at time.Time
			}
			var fires []fire
			a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
				fires = append(fires, fire{msg.(int), c.Now()})
				return nil, nil
			}))
			v, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
				timers := make([]Timer, n)
				for i := range timers {
					d := time.Duration(c.Rand().IntN(2000)) * time.Millisecond
					deadlines[i] = c.Now().Add(d)
					timers[i] = c.After(d, i)
				}
				cancelled := 0
				if cancel {
					for i, tm := range timers {
						if i%3 != 0 && tm.Cancel() {
							cancelled++
						}
					}
				}
				return cancelled, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := n
			if cancel {
				want = (n + 2) / 3
				if v != n-want {
					t.Fatalf("%v cancels succeeded, want %d", v, n-want)
				}
			}
			s.RunUntilIdle(10 * n)
			if len(fires) != want {
				t.Fatalf("%d timers fired, want %d", len(fires), want)
			}
			for k, f := range fires {
				if cancel && f.i%3 != 0 {
					t.Fatalf("cancelled timer %d fired", f.i)
				}
				if !f.at.Equal(deadlines[f.i]) {
					t.Fatalf("timer %d fired at %v, deadline %v", f.i, f.at, deadlines[f.i])
				}
				if k > 0 {
					p := fires[k-1]
					if f.at.Before(p.at) || (f.at.Equal(p.at) && f.i < p.i) {
						t.Fatalf("timer %d (at %v) fired after timer %d (at %v)", f.i, f.at, p.i, p.at)
					}
				}
			}
			ls := s.loops[0]
			if ls.garbage != 0 || ls.loop.Timers() != 0 || ls.timers.active != 0 {
				t.Fatalf("after all fired: garbage %d, heap %d, active %d; want 0 0 0", ls.garbage, ls.loop.Timers(), ls.timers.active)
			}
		})
	}
}

// AfterFunc runs its function inside the actor that set it, at its time on
// the loop's clock, without a message to the actor's Receive.
func TestAfterFuncRunsInsideActor(t *testing.T) {
	s, _ := tsManual(t, 1)
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	type run struct {
		self, sender Ref
		at           time.Time
	}
	var runs []run
	v, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		c.AfterFunc(10*time.Second, func(c *Context) { runs = append(runs, run{c.Self(), c.Sender(), c.Now()}) })
		tm := c.AfterFunc(5*time.Second, func(*Context) { t.Error("a cancelled AfterFunc ran") })
		return []bool{tm.Cancel(), tm.Cancel()}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.([]bool); !got[0] || got[1] {
		t.Fatalf("Cancel, Cancel = %v, want true, false", got)
	}
	s.RunUntilIdle(100)
	if len(runs) != 1 || runs[0].self != a || !runs[0].sender.IsZero() || !runs[0].at.Equal(tsT0.Add(10*time.Second)) {
		t.Fatalf("runs %+v, want one inside %v at +10s", runs, a)
	}
	if len(fires) != 0 {
		t.Fatalf("AfterFunc delivered messages %+v", fires)
	}
	if n := s.loops[0].timers.active; n != 0 {
		t.Fatalf("%d timers still active", n)
	}
}

// An AfterFunc belongs to the instance of the actor that set it: a restart
// or a stop drops it.
func TestAfterFuncDroppedWithItsActor(t *testing.T) {
	s, _ := tsManual(t, 1)
	drv := tsSpawn(t, s, tsDriver())
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	ran := 0
	set := func(c *Context) (any, error) {
		c.AfterFunc(time.Second, func(*Context) { ran++ })
		return nil, nil
	}
	if _, err := tsDoIn(t, s, a, set); err != nil {
		t.Fatal(err)
	}
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Restart(a) }); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100)
	if ran != 0 {
		t.Fatal("an AfterFunc of a restarted actor's old instance ran")
	}
	if _, err := tsDoIn(t, s, a, set); err != nil {
		t.Fatal(err)
	}
	tsStop(t, s, drv, a, nil)
	s.RunUntilIdle(100)
	if ran != 0 {
		t.Fatal("an AfterFunc of a stopped actor ran")
	}
	if n := s.loops[0].timers.active; n != 0 {
		t.Fatalf("%d timers still active", n)
	}
}

// An upgrade that replaces the instance drops the AfterFuncs the old one
// set: they are closures over it.
func TestAfterFuncDroppedByUpgrade(t *testing.T) {
	s, fc := tsManual(t, 1)
	var fires []tsFire
	a := tsSpawn(t, s, tsTimed(&fires))
	ran := false
	if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		c.AfterFunc(time.Second, func(*Context) { ran = true })
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	ls := s.loops[0]
	sl := ls.lookup(a)
	swapped := false
	w := &swapState{r: a, inc: sl.inc, done: func(err error) { swapped = err == nil },
		f: func(_ *Context, _ Actor, f Factory, _ int) (Actor, Factory, error) { return f(), f, nil }}
	sl.upg = w
	ls.finishSwap(w)
	fc.Advance(time.Hour)
	s.RunUntilIdle(100)
	if !swapped {
		t.Fatal("the swap did not finish")
	}
	if ran {
		t.Fatal("an AfterFunc of the replaced instance ran")
	}
}

// TestAfterFuncNilRefused: a nil function is refused at once (a panic),
// rather than scheduled as a message timer delivering nil to Receive.
func TestAfterFuncNilRefused(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	drv := tsSpawn(t, s, tsDriver())
	v, err := tsDoIn(t, s, drv, func(c *Context) (v any, err error) {
		defer func() { v = recover() }()
		c.AfterFunc(time.Millisecond, nil)
		return nil, nil
	})
	if err != nil || v == nil {
		t.Fatalf("AfterFunc(nil): %v, %v; want a panic", v, err)
	}
}
