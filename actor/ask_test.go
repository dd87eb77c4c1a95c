package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/loop"
)

// tsDeferrer defers every request and hands its Reply to the test.
func tsDeferrer(replies chan<- *Reply) Factory {
	return tsFn(func(c *Context, msg any) (any, error) {
		replies <- c.Defer()
		return "ignored", nil
	})
}

func TestAskAcrossLoopsContinuationInsideAsker(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	doubler := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) { return msg.(int) * 2, nil }), OnLoop(1))
	type asker struct {
		sum   int
		loops []int
	}
	a := tsSpawn(t, s, func() Actor {
		me := &asker{}
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "go":
				rep := c.Defer()
				self := c.Self()
				c.Ask(doubler, 21).Then(func(c *Context, v any, err error) {
					if c.Self() != self {
						t.Errorf("continuation runs as %v, want %v", c.Self(), self)
					}
					me.loops = append(me.loops, c.Loop())
					if err == nil {
						me.sum += v.(int)
					}
					rep.Reply(v, err)
				})
				return nil, nil
			case "sum":
				return []any{me.sum, append([]int(nil), me.loops...)}, nil
			}
			return nil, Unhandled(msg)
		}}
	}, OnLoop(0))
	for range 3 {
		if v, err := tsAsk(t, s, a, "go"); err != nil || v != 42 {
			t.Fatalf("ask across loops = %v, %v", v, err)
		}
	}
	v, err := tsAsk(t, s, a, "sum")
	if err != nil {
		t.Fatal(err)
	}
	got := v.([]any)
	if got[0] != 126 || fmt.Sprint(got[1]) != "[0 0 0]" {
		t.Fatalf("asker state after 3 continuations = %v, want sum 126 on loop 0 each time", got)
	}
	// Unknown messages fail with ErrUnknownMessage naming the type.
	if _, err := tsAsk(t, s, a, 3.5); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("unknown message = %v", err)
	}
}

func TestAskTimeout(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, AskTimeout: 30 * time.Millisecond})
	replies := make(chan *Reply, 8)
	silent := tsSpawn(t, s, tsDeferrer(replies), OnLoop(1))
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	ask := func(custom bool) error {
		_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			rep := c.Defer()
			var p Promise
			if custom {
				p = c.AskTimeout(silent, "q", 20*time.Millisecond)
			} else {
				p = c.Ask(silent, "q")
			}
			p.Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
			return nil, nil
		})
		return err
	}
	if err := ask(false); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Ask to a receiver that never replies = %v, want ErrTimeout", err)
	}
	if err := ask(true); !errors.Is(err, ErrTimeout) {
		t.Fatalf("AskTimeout to a receiver that never replies = %v, want ErrTimeout", err)
	}
	// Late replies after the timeout go nowhere and break nothing.
	tsRecv(t, replies, "reply handle").Reply("late", nil)
	tsRecv(t, replies, "reply handle").Reply("late", nil)
	if v, err := tsDoIn(t, s, drv, func(*Context) (any, error) { return "ok", nil }); err != nil || v != "ok" {
		t.Fatalf("asker after late replies: %v, %v", v, err)
	}
}

// Manual mode makes the timing exact: a no-deadline ask waits through any
// amount of clock time, a default one times out, and a reply after the
// timeout is discarded without settling the promise twice.
func TestAskNoDeadlineAndLateReplyManual(t *testing.T) {
	fc := loop.NewFakeClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	s := tsSystem(t, Config{Loops: 2, Manual: true, Clock: fc, AskTimeout: time.Second})
	replies := make(chan *Reply, 8)
	b := tsSpawn(t, s, tsDeferrer(replies), OnLoop(1))
	type res struct {
		tag string
		v   any
		err error
	}
	var results []res // the manual system runs on this goroutine
	a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		tag := msg.(string)
		var p Promise
		if tag == "nodeadline" {
			p = c.AskTimeout(b, tag, 0)
		} else {
			p = c.Ask(b, tag)
		}
		p.Then(func(_ *Context, v any, err error) { results = append(results, res{tag, v, err}) })
		return nil, nil
	}), OnLoop(0))
	start := fc.Now()
	for _, m := range []string{"nodeadline", "default"} {
		if err := s.Send(a, m); err != nil {
			t.Fatal(err)
		}
	}
	s.RunUntilIdle(1000)
	if len(results) != 1 || results[0].tag != "default" || !errors.Is(results[0].err, ErrTimeout) {
		t.Fatalf("after running idle: %+v, want only the default ask, timed out", results)
	}
	if d := fc.Now().Sub(start); d != time.Second {
		t.Fatalf("the clock moved %v, want exactly the 1s ask timeout", d)
	}
	noDeadline := tsRecv(t, replies, "first reply handle")
	late := tsRecv(t, replies, "second reply handle")

	fc.Advance(24 * time.Hour)
	s.RunUntilIdle(1000)
	if len(results) != 1 {
		t.Fatalf("no-deadline ask settled without a reply: %+v", results)
	}
	late.Reply("too late", nil) // the ask timed out: discarded
	noDeadline.Reply("finally", nil)
	s.RunUntilIdle(1000)
	if len(results) != 2 || results[1].tag != "nodeadline" || results[1].v != "finally" || results[1].err != nil {
		t.Fatalf("results %+v, want the no-deadline ask answered once with 'finally'", results)
	}
	// Nothing left to run, nothing settled twice.
	if n := s.RunUntilIdle(1000); n != 0 || len(results) != 2 {
		t.Fatalf("%d more events and results %+v", n, results)
	}
	for _, ls := range s.loops {
		if ls.promises.pending != 0 {
			t.Errorf("loop %d: %d promises still pending", ls.id, ls.promises.pending)
		}
	}
}

func TestDeferredReplyAfterOwnAsk(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	cc := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) { return msg.(string) + "+c", nil }), OnLoop(1))
	bb := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		rep := c.Defer()
		c.Ask(cc, msg.(string)+"+b").Then(func(_ *Context, v any, err error) {
			if err != nil {
				rep.Reply(nil, err)
				return
			}
			rep.Reply(v.(string)+"+reply", nil)
		})
		return "not this", nil
	}), OnLoop(0))
	// From a goroutine and from an actor.
	if v, err := tsAsk(t, s, bb, "sys"); err != nil || v != "sys+b+c+reply" {
		t.Fatalf("System.Ask deferred = %v, %v", v, err)
	}
	drv := tsSpawn(t, s, tsDriver(), OnLoop(1))
	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.Ask(bb, "act").Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if err != nil || v != "act+b+c+reply" {
		t.Fatalf("Context.Ask deferred = %v, %v", v, err)
	}
}

// tsSquares spawns n actors alternating over the loops; actor i replies i*i,
// or fails with fail[i] if set.
func tsSquares(t *testing.T, s *System, n int, fail map[int]error) []Ref {
	refs := make([]Ref, n)
	for i := range refs {
		refs[i] = tsSpawn(t, s, tsFn(func(*Context, any) (any, error) {
			if err := fail[i]; err != nil {
				return nil, err
			}
			return i * i, nil
		}), OnLoop(i))
	}
	return refs
}

// tsGather asks every ref from inside drv and combines the promises with
// combine (Context.All or Context.First).
func tsGather(t *testing.T, s *System, drv Ref, refs []Ref, first bool) (any, error) {
	return tsDoIn(t, s, drv, func(c *Context) (any, error) {
		ps := make([]Promise, len(refs))
		for i, r := range refs {
			ps[i] = c.Ask(r, "go")
		}
		var p Promise
		if first {
			p = c.First(ps...)
		} else {
			p = c.All(ps...)
		}
		rep := c.Defer()
		self := c.Self()
		p.Then(func(c *Context, v any, err error) {
			if c.Self() != self {
				t.Errorf("All/First continuation runs as %v", c.Self())
			}
			rep.Reply(v, err)
		})
		return nil, nil
	})
}

func TestAllMapReduce(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	refs := tsSquares(t, s, 8, nil)
	v, err := tsGather(t, s, drv, refs, false)
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	vals := v.([]any)
	sum := 0
	for i, x := range vals {
		if x != i*i {
			t.Fatalf("All results %v are not in order", vals)
		}
		sum += x.(int)
	}
	if len(vals) != 8 || sum != 140 {
		t.Fatalf("All = %v", vals)
	}
	// All of nothing is an empty success.
	v, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.All().Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if err != nil || len(v.([]any)) != 0 {
		t.Fatalf("All() = %v, %v", v, err)
	}
}

func TestAllFailsWithFirstError(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	errBad := errors.New("bad square")
	refs := tsSquares(t, s, 6, map[int]error{3: errBad})
	if _, err := tsGather(t, s, drv, refs, false); !errors.Is(err, errBad) {
		t.Fatalf("All with one failure = %v, want %v", err, errBad)
	}
	// A crash and a dead actor fail All as well.
	crash := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { panic("all-boom") }), OnLoop(1))
	if _, err := tsGather(t, s, drv, append(refs[:3:3], crash), false); !errors.Is(err, ErrCrashed) {
		t.Fatalf("All with a crash = %v, want ErrCrashed", err)
	}
	if _, err := tsGather(t, s, drv, append(refs[:3:3], crash), false); !errors.Is(err, ErrDead) {
		t.Fatalf("All with a dead actor = %v, want ErrDead", err)
	}
}

func TestFirst(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	drv := tsSpawn(t, s, tsDriver())
	e0, e1, e2 := errors.New("e0"), errors.New("e1"), errors.New("e2")
	// On one loop the replies come back in the order asked.
	refs := tsSquares(t, s, 4, map[int]error{0: e0, 1: e1})
	v, err := tsGather(t, s, drv, refs, true)
	if err != nil || v != 4 {
		t.Fatalf("First = %v, %v; want the first success, 4", v, err)
	}
	refs = tsSquares(t, s, 3, map[int]error{0: e0, 1: e1, 2: e2})
	if _, err := tsGather(t, s, drv, refs, true); !errors.Is(err, e2) {
		t.Fatalf("First with all failing = %v, want the last error %v", err, e2)
	}
	// Across loops: one success among failures still wins.
	s2 := tsSystem(t, Config{Loops: 2})
	drv2 := tsSpawn(t, s2, tsDriver(), OnLoop(0))
	refs = tsSquares(t, s2, 5, map[int]error{0: e0, 2: e2, 3: e1, 4: e1})
	if v, err := tsGather(t, s2, drv2, refs, true); err != nil || v != 1 {
		t.Fatalf("First across loops = %v, %v; want 1", v, err)
	}
}

func TestSystemAskFailures(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	replies := make(chan *Reply, 1)
	silent := tsSpawn(t, s, tsDeferrer(replies))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Ask(ctx, silent, "q"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("System.Ask with ctx timeout = %v, want context.DeadlineExceeded", err)
	}
	// The late reply lands in the abandoned channel and harms no later ask.
	tsRecv(t, replies, "reply handle").Reply("late", nil)
	echo := tsSpawn(t, s, tsEcho(), OnLoop(0))
	for i := range 20 {
		if v, err := tsAsk(t, s, echo, i); err != nil || v != i {
			t.Fatalf("ask %d after a late reply = %v, %v", i, v, err)
		}
	}

	drv := tsSpawn(t, s, tsDriver(), OnLoop(0)) // a local stop is done when tsStop returns
	tsStop(t, s, drv, echo, nil)
	if _, err := tsAsk(t, s, echo, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("System.Ask dead ref = %v, want ErrDead", err)
	}
	if err := s.Send(echo, "x"); err != nil {
		t.Fatalf("System.Send dead ref = %v, want nil (accepted, then dropped)", err)
	}
	if _, err := tsAsk(t, s, Ref{}, "x"); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("System.Ask zero ref = %v", err)
	}
	if err := s.Send(Ref{}, "x"); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("System.Send zero ref = %v", err)
	}
	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		sendErr := c.Send(Ref{}, "x")
		c.Ask(Ref{}, "x").Then(func(_ *Context, _ any, err error) { rep.Reply([]error{sendErr, err}, nil) })
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.([]error); !errors.Is(errs[0], ErrInvalidRef) || !errors.Is(errs[1], ErrInvalidRef) {
		t.Fatalf("Context.Send/Ask zero ref = %v", errs)
	}
}

type tsSeq struct{ src, n int }

// Per-sender FIFO: an actor on another loop and goroutines each send a
// numbered sequence; the receiver sees every sequence strictly increasing.
func TestPerSenderOrdering(t *testing.T) {
	const n = 10000
	const senders = 3 // one actor, two goroutines
	s := tsSystem(t, Config{Loops: 2, QueueCapacity: 1 << 16})
	type report struct {
		counts [senders]int
		bad    string
	}
	done := make(chan report, 1)
	recv := tsSpawn(t, s, func() Actor {
		var r report
		last := [senders]int{-1, -1, -1}
		finished := 0
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			m := msg.(tsSeq)
			if m.n == -1 {
				if finished++; finished == senders {
					done <- r
				}
				return nil, nil
			}
			if m.n != last[m.src]+1 && r.bad == "" {
				r.bad = fmt.Sprintf("sender %d: %d after %d", m.src, m.n, last[m.src])
			}
			last[m.src] = m.n
			r.counts[m.src]++
			return nil, nil
		}}
	}, OnLoop(1))
	sender := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		for i := range n {
			if err := c.Send(recv, tsSeq{0, i}); err != nil {
				return nil, err
			}
		}
		return nil, c.Send(recv, tsSeq{0, -1})
	}), OnLoop(0))
	if err := s.Send(sender, "go"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for src := 1; src < senders; src++ {
		wg.Go(func() {
			for i := range n {
				if err := s.Send(recv, tsSeq{src, i}); err != nil {
					errs <- err
					return
				}
			}
			errs <- s.Send(recv, tsSeq{src, -1})
		})
	}
	wg.Wait()
	for range senders - 1 {
		if err := <-errs; err != nil {
			t.Fatalf("goroutine send: %v", err)
		}
	}
	r := tsRecv(t, done, "all sequences")
	if r.bad != "" {
		t.Fatalf("reordered: %s", r.bad)
	}
	for i, c := range r.counts {
		if c != n {
			t.Fatalf("sender %d: %d messages arrived, want %d", i, c, n)
		}
	}
}

func TestStalePromise(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Manual: true, Clock: loop.NewFakeClock(time.Unix(0, 0))})
	echo := tsSpawn(t, s, tsEcho())
	var kept []Promise
	type res struct {
		name string
		v    any
		err  error
	}
	var got []res
	record := func(name string) Continuation {
		return func(_ *Context, v any, err error) { got = append(got, res{name, v, err}) }
	}
	drv := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch msg {
		case "twice":
			p := c.Ask(echo, "v")
			p.Then(record("first"))
			p.Then(record("second"))
		case "keep":
			kept = append(kept, c.Ask(echo, "kept"), c.Ask(Ref{}, "settled-now"))
			pr, resolve := c.Promise()
			resolve("mine", nil)
			resolve("again", nil) // ignored
			kept = append(kept, pr)
		case "later":
			for i, p := range kept {
				p.Then(record(fmt.Sprint("later", i)))
			}
		}
		return nil, nil
	}))
	if _, err := s.Ask(t.Context(), drv, "twice"); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100)
	if len(got) != 2 {
		t.Fatalf("Then twice ran %d continuations: %+v", len(got), got)
	}
	for _, r := range got {
		switch r.name {
		case "first":
			if r.v != "v" || r.err != nil {
				t.Errorf("first Then got %v, %v", r.v, r.err)
			}
		case "second":
			if !errors.Is(r.err, ErrStalePromise) {
				t.Errorf("second Then got %v, %v; want ErrStalePromise", r.v, r.err)
			}
		}
	}

	got = nil
	if _, err := s.Ask(t.Context(), drv, "keep"); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100) // the kept ask's reply arrives with no continuation
	if _, err := s.Ask(t.Context(), drv, "later"); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100)
	if len(got) != 3 {
		t.Fatalf("Then in a later turn ran %d continuations: %+v", len(got), got)
	}
	for _, r := range got {
		if !errors.Is(r.err, ErrStalePromise) || r.v != nil {
			t.Errorf("%s: Then on a promise settled in an earlier turn got %v, %v; want ErrStalePromise", r.name, r.v, r.err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Then on the zero Promise did not panic")
		}
	}()
	var zero Promise
	if !zero.IsZero() {
		t.Error("zero Promise is not IsZero")
	}
	zero.Then(record("zero"))
}

func TestPromiseResolvedInLaterTurn(t *testing.T) {
	// A promise made with Context.Promise and resolved from a later handler
	// of the same actor runs its continuation in that actor.
	s := tsSystem(t, Config{Loops: 1})
	got := make(chan any, 2)
	a := tsSpawn(t, s, func() Actor {
		var resolve func(any, error)
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "make":
				var p Promise
				p, resolve = c.Promise()
				self := c.Self()
				p.Then(func(c *Context, v any, err error) {
					if c.Self() != self {
						t.Errorf("continuation as %v", c.Self())
					}
					got <- v
				})
			case "resolve":
				resolve("resolved", nil)
			}
			return nil, nil
		}}
	})
	for _, m := range []string{"make", "resolve"} {
		if _, err := tsAsk(t, s, a, m); err != nil {
			t.Fatal(err)
		}
	}
	if v := tsRecv(t, got, "continuation of a promise resolved in a later turn"); v != "resolved" {
		t.Fatalf("continuation got %v", v)
	}
}

// A promise made through the promise seam (what quorum uses) settles
// with its Resolve, from a later handler of the same actor: the first
// Resolve only; the zero Promise is ignored; making and settling one
// allocates nothing.
func TestPromiseSeam(t *testing.T) {
	pv := seam.Promises().(interface {
		New(c *Context) Promise
		Resolve(p Promise, v any, err error)
	})
	s := tsSystem(t, Config{Loops: 1})
	got := make(chan any, 2)
	var allocs float64
	a := tsSpawn(t, s, func() Actor {
		var p Promise
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "make":
				p = pv.New(c)
				p.Then(func(_ *Context, v any, err error) { got <- v })
				pv.Resolve(Promise{}, "nothing", nil)
			case "resolve":
				pv.Resolve(p, "first", nil)
				pv.Resolve(p, "second", nil)
			case "allocs":
				allocs = testing.AllocsPerRun(100, func() { pv.Resolve(pv.New(c), nil, nil) })
			}
			return nil, nil
		}}
	})
	for _, m := range []string{"make", "resolve", "allocs"} {
		if _, err := tsAsk(t, s, a, m); err != nil {
			t.Fatal(err)
		}
	}
	if v := tsRecv(t, got, "continuation of a promise resolved through the seam"); v != "first" {
		t.Fatalf("continuation got %v, want first", v)
	}
	select {
	case v := <-got:
		t.Fatalf("a second settlement ran the continuation again: %v", v)
	default:
	}
	if allocs != 0 {
		t.Errorf("New and Resolve: %v allocations, want 0", allocs)
	}
}

// A promise made with ExternalPromise is settled from another goroutine;
// its continuation runs in the actor, with the first settlement only.
func TestExternalPromise(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	got := make(chan any, 4)
	settles := make(chan func(any, error), 1)
	a := tsSpawn(t, s, func() Actor {
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			p, settle := c.ExternalPromise()
			self := c.Self()
			p.Then(func(c *Context, v any, err error) {
				if c.Self() != self || c.Loop() != 1 {
					t.Errorf("continuation as %v on loop %d", c.Self(), c.Loop())
				}
				got <- v
			})
			settles <- settle
			return nil, nil
		}}
	}, OnLoop(1))
	if _, err := tsAsk(t, s, a, "make"); err != nil {
		t.Fatal(err)
	}
	settle := <-settles
	done := make(chan struct{})
	go func() {
		defer close(done)
		settle("first", nil)
		settle("second", nil)
	}()
	<-done
	if v := tsRecv(t, got, "continuation of an external promise"); v != "first" {
		t.Fatalf("continuation got %v", v)
	}
	// A later settlement is ignored: the next continuation to arrive is
	// that of a second promise, settled after the first.
	if _, err := tsAsk(t, s, a, "make"); err != nil {
		t.Fatal(err)
	}
	settle2 := <-settles
	settle("late", nil)
	settle2("next", nil)
	if v := tsRecv(t, got, "continuation of the second promise"); v != "next" {
		t.Fatalf("continuation got %v, want next (a promise settled twice)", v)
	}
	// Settling a promise of an actor that stopped does nothing.
	if _, err := tsAsk(t, s, a, "make"); err != nil {
		t.Fatal(err)
	}
	settle3 := <-settles
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	settle3("after stop", nil)
	// A round trip through the same loop: the settlement was handled.
	b := tsSpawn(t, s, func() Actor {
		return &tsActor{recv: func(*Context, any) (any, error) { return nil, nil }}
	}, OnLoop(1))
	if _, err := tsAsk(t, s, b, "flush"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		t.Fatalf("a stopped actor's continuation ran with %v", v)
	default:
	}
}

// ---------------------------------------------------------------------------
// Blocking work.

func TestBlocking(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(1))
	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		self := c.Self()
		c.Blocking(func() (any, error) { return 7, nil }).Then(func(c *Context, v any, err error) {
			if c.Self() != self || c.Loop() != 1 {
				t.Errorf("Blocking continuation runs as %v on loop %d", c.Self(), c.Loop())
			}
			rep.Reply(v, err)
		})
		return nil, nil
	})
	if err != nil || v != 7 {
		t.Fatalf("Blocking = %v, %v", v, err)
	}
	errJob := errors.New("job failed")
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.Blocking(func() (any, error) { return nil, errJob }).Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if !errors.Is(err, errJob) {
		t.Fatalf("Blocking error = %v", err)
	}
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.Blocking(func() (any, error) { panic("job-boom") }).Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	var ce *CrashError
	if !errors.As(err, &ce) || ce.Value != "job-boom" || ce.Actor != drv {
		t.Fatalf("Blocking panic = %v, want *CrashError with the value", err)
	}
	// The actor survives a panic in its job.
	if v, err := tsDoIn(t, s, drv, func(*Context) (any, error) { return "alive", nil }); err != nil || v != "alive" {
		t.Fatalf("after job panic: %v, %v", v, err)
	}
}

func TestBlockingPoolFull(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Workers: 1, WorkerQueue: 1})
	drv := tsSpawn(t, s, tsDriver())
	started := make(chan struct{}, 2)
	unblock := make(chan struct{})
	job := func() (any, error) {
		started <- struct{}{}
		<-unblock
		return "done", nil
	}
	unblocked := false
	defer func() {
		if !unblocked {
			close(unblock)
		}
	}()
	results := make(chan error, 3)
	submit := func() {
		t.Helper()
		if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			c.Blocking(job).Then(func(_ *Context, _ any, err error) { results <- err })
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	submit()
	tsRecv(t, started, "first job to start") // the only worker is busy
	submit()                                 // sits in the queue of 1
	_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.Blocking(job).Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if !errors.Is(err, ErrPoolFull) {
		t.Fatalf("Blocking on a saturated pool = %v, want ErrPoolFull", err)
	}
	close(unblock)
	unblocked = true
	for range 2 {
		if err := tsRecv(t, results, "accepted jobs"); err != nil {
			t.Fatalf("accepted job: %v", err)
		}
	}
}

// seamCall is one run of a seamRec's Continue.
type seamCall struct {
	self Ref
	arg  int
	v    any
	err  error
}

// seamRec records the runs of its Continue, as the promise seam makes them.
type seamRec chan seamCall

func (r seamRec) Continue(c *Context, arg int, v any, err error) {
	r <- seamCall{c.Self(), arg, v, err}
}

// The promise seam's Then and AfterFunc run an object's method with the
// argument given, inside the actor, with the rules of Promise.Then and
// Context.AfterFunc, and allocate nothing.
func TestPromiseSeamCont(t *testing.T) {
	pv := seam.Promises().(interface {
		New(c *Context) Promise
		Resolve(p Promise, v any, err error)
		Then(p Promise, k seam.Cont[*Context], arg int)
		AfterFunc(c *Context, d time.Duration, k seam.Cont[*Context], arg int) Timer
	})
	s := tsSystem(t, Config{Loops: 1})
	rec := make(seamRec, 512)
	echo := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) { return msg, nil }))
	var allocs float64
	a := tsSpawn(t, s, func() Actor {
		var p Promise
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "resolve":
				p = pv.New(c)
				pv.Then(p, rec, 1)
				pv.Resolve(p, "resolved", nil)
			case "stale":
				pv.Then(p, rec, 2) // p's continuation ran: too late
			case "ask":
				pv.Then(c.Ask(echo, "echo"), rec, 3)
			case "timers":
				pv.AfterFunc(c, 2*time.Millisecond, rec, 4)
				pv.AfterFunc(c, time.Millisecond, rec, 5).Cancel()
			case "allocs":
				allocs = testing.AllocsPerRun(100, func() { pv.Then(c.Ask(echo, "echo"), rec, 6) })
			}
			return nil, nil
		}}
	})
	want := []seamCall{
		{a, 1, "resolved", nil},
		{a, 2, nil, ErrStalePromise},
		{a, 3, "echo", nil},
		{a, 4, nil, nil},
	}
	for i, m := range []string{"resolve", "stale", "ask", "timers"} {
		if _, err := tsAsk(t, s, a, m); err != nil {
			t.Fatal(err)
		}
		if got := tsRecv(t, rec, m); got != want[i] {
			t.Fatalf("%s: Continue got %+v, want %+v", m, got, want[i])
		}
	}
	if _, err := tsAsk(t, s, a, "allocs"); err != nil {
		t.Fatal(err)
	}
	for range 101 {
		if got := tsRecv(t, rec, "allocs"); got.arg != 6 {
			t.Fatalf("Continue got %+v, want the ask's (6): the cancelled timer ran", got)
		}
	}
	if allocs != 0 {
		t.Errorf("an ask with the seam's continuation: %v allocations, want 0", allocs)
	}
}
