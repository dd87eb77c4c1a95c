package event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// fnActor adapts a function to an actor.Actor.
type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// run is a message that makes a driver actor run a function in its handler.
type run func(c *actor.Context) (any, error)

// barrier is answered by a collector after everything sent to it before.
type barrier struct{}

func driver() actor.Actor {
	return fnActor(func(c *actor.Context, msg any) (any, error) {
		if f, ok := msg.(run); ok {
			return f(c)
		}
		return nil, actor.Unhandled(msg)
	})
}

// collector forwards every message but barriers to out (which must have
// room) and answers barriers, so a test can tell that nothing more came.
func collector(out chan<- any) actor.Factory {
	return func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			if _, ok := msg.(barrier); ok {
				return "ok", nil
			}
			out <- msg
			return nil, nil
		})
	}
}

// blocker blocks its loop when told to, until gate is closed.
func blocker(entered chan<- struct{}, gate <-chan struct{}) actor.Factory {
	return func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			entered <- struct{}{}
			<-gate
			return nil, nil
		})
	}
}

func newSystem(t *testing.T, cfg actor.Config) *actor.System {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnCrash == nil {
		cfg.OnCrash = func(*actor.Crash) {}
	}
	sys := actor.NewSystem(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := sys.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return sys
}

func spawn(t *testing.T, sys *actor.System, f actor.Factory, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := sys.Spawn(ctx, f, opts...)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	return r
}

func ask(t *testing.T, sys *actor.System, to actor.Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return sys.Ask(ctx, to, msg)
}

// settle waits until everything sent to the collector c before is handled.
// A full queue (the loop is still draining a burst) is retried.
func settle(t *testing.T, sys *actor.System, c actor.Ref) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		v, err := ask(t, sys, c, barrier{})
		if errors.Is(err, actor.ErrQueueFull) && time.Now().Before(deadline) {
			runtime.Gosched()
			continue
		}
		if err != nil || v != "ok" {
			t.Fatalf("barrier: %v %v", v, err)
		}
		return
	}
}

func noMore(t *testing.T, ch <-chan any) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %#v", v)
	default:
	}
}

func TestActorDeliveryInOrder(t *testing.T) {
	sys := newSystem(t, actor.Config{Loops: 2, Watchdog: -1})
	b := New(Config{})
	defer b.Close()
	opens := must(NewEmitter[Opened](b))(t)
	closes := must(NewEmitter[Closed](b))(t)
	out := make(chan any, 2048)
	c := spawn(t, sys, collector(out), actor.OnLoop(1))
	s := must(SubscribeActor(b, sys, c, []Type{TypeOf[Opened](), TypeOf[Closed]()}))(t)
	const n = 500
	// Emitted from a loop goroutine (loop 0), delivered to loop 1.
	d := spawn(t, sys, driver, actor.OnLoop(0))
	if _, err := ask(t, sys, d, run(func(*actor.Context) (any, error) {
		for i := range n {
			if err := opens.Emit(Opened{Conn: i}); err != nil {
				return nil, err
			}
			if err := closes.Emit(Closed{Conn: i}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if ev := recv(t, out, "open"); fmt.Sprint(ev) != fmt.Sprint(Opened{Conn: i}) {
			t.Fatalf("message %d = %#v, want Opened %d", 2*i, ev, i)
		}
		if ev := recv(t, out, "close"); ev != (Closed{Conn: i}) {
			t.Fatalf("message %d = %#v, want Closed %d", 2*i+1, ev, i)
		}
	}
	if s.Err() != nil || s.Dropped() != 0 {
		t.Fatalf("err %v, dropped %d", s.Err(), s.Dropped())
	}
	s.Unsubscribe()
	_ = closes.Emit(Closed{Conn: -1})
	settle(t, sys, c)
	noMore(t, out)
	waitDone(t, s, ErrUnsubscribed)
}

// Each policy, when the actor's loop queue fills during a burst.
func TestActorSlowPolicies(t *testing.T) {
	for _, policy := range []SlowPolicy{Cancel, Drop, Notify} {
		t.Run(policy.String(), func(t *testing.T) {
			sys := newSystem(t, actor.Config{Loops: 2, QueueCapacity: 16, Watchdog: -1})
			b := New(Config{})
			defer b.Close()
			em := must(NewEmitter[Tick](b))(t)
			out := make(chan any, 1024)
			c := spawn(t, sys, collector(out), actor.OnLoop(1))
			entered, gate := make(chan struct{}, 1), make(chan struct{})
			blk := spawn(t, sys, blocker(entered, gate), actor.OnLoop(1))
			var told []Overflow
			opt := OnSlow(policy)
			if policy == Notify {
				opt = OnSlowNotify(func(o Overflow) { told = append(told, o) })
			}
			s := must(SubscribeActor(b, sys, c, []Type{TypeOf[Tick]()}, opt))(t)

			if err := sys.Send(blk, "block"); err != nil {
				t.Fatal(err)
			}
			recv(t, entered, "blocker")
			const burst = 200
			for i := range burst {
				if err := em.Emit(Tick{i}); err != nil {
					t.Fatalf("Emit: %v", err)
				}
			}
			close(gate)
			settle(t, sys, c)
			var got []int
			for len(out) > 0 {
				got = append(got, (<-out).(Tick).N)
			}
			if len(got) == 0 || len(got) == burst {
				t.Fatalf("%d of %d delivered: the queue never filled or took nothing", len(got), burst)
			}
			switch policy {
			case Cancel:
				for i, n := range got {
					if n != i {
						t.Fatalf("delivered %v: not an unbroken prefix", got)
					}
				}
				waitDone(t, s, ErrOutOfCapacity)
				if !errors.Is(s.Err(), actor.ErrQueueFull) || s.Dropped() != 1 {
					t.Fatalf("Err %v, dropped %d", s.Err(), s.Dropped())
				}
			case Drop, Notify:
				for i := 1; i < len(got); i++ {
					if got[i] <= got[i-1] {
						t.Fatalf("delivered out of order: %v", got)
					}
				}
				if d := s.Dropped(); d != uint64(burst-len(got)) {
					t.Fatalf("Dropped() = %d, delivered %d of %d", d, len(got), burst)
				}
				if !isOpen(s) {
					t.Fatalf("subscription ended: %v", s.Err())
				}
				_ = em.Emit(Tick{burst})
				if ev := recv(t, out, "after the burst"); ev != (Tick{burst}) {
					t.Fatalf("after the burst got %#v", ev)
				}
			}
			if policy == Notify {
				if uint64(len(told)) != s.Dropped() || !errors.Is(told[0].Err, actor.ErrQueueFull) || told[0].Sub != s {
					t.Fatalf("notified %d times (dropped %d), first %+v", len(told), s.Dropped(), told[0])
				}
			} else if len(told) != 0 {
				t.Fatal("callback called without the Notify policy")
			}
		})
	}
}

func TestActorSubscriptionEndsAtShutdown(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Watchdog: -1, Logger: slog.New(slog.DiscardHandler)})
	b := New(Config{})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	out := make(chan any, 8)
	c := spawn(t, sys, collector(out))
	s := must(SubscribeActor(b, sys, c, []Type{TypeOf[Tick]()}))(t)
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := em.Emit(Tick{1}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, ErrSubscriberGone)
	if !errors.Is(s.Err(), actor.ErrShutdown) {
		t.Fatalf("Err() = %v, want it to wrap actor.ErrShutdown", s.Err())
	}
	if b.Subscriptions() != 0 {
		t.Fatal("ended subscription still counted")
	}
	if _, err := SubscribeActor(b, sys, actor.Ref{}, []Type{TypeOf[Tick]()}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero ref: %v", err)
	}
	if _, err := SubscribeActor(b, nil, c, []Type{TypeOf[Tick]()}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil system: %v", err)
	}
}

// runtimeEvents returns, in order, the first n runtime events about actor r
// from s, skipping the others.
func runtimeEvents(t *testing.T, s *Stream[any], r actor.Ref, n int) []any {
	t.Helper()
	var got []any
	for len(got) < n {
		ev := recv(t, s.Out(), fmt.Sprintf("runtime event %d of %v", len(got), r))
		var about actor.Ref
		switch ev := ev.(type) {
		case ActorSpawned:
			about = ev.Actor
		case ActorStopped:
			about = ev.Actor
		case ActorCrashed:
			about = ev.Actor
		case ActorRestarted:
			about = ev.Actor
		}
		if about == r {
			got = append(got, ev)
		}
	}
	return got
}

func TestRuntimeBridge(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	rt := must(NewRuntime(b))(t)
	for _, ty := range []Type{TypeOf[ActorSpawned](), TypeOf[ActorStopped](), TypeOf[ActorCrashed](),
		TypeOf[ActorRestarted](), TypeOf[LoopOverloaded]()} {
		if !b.HasEmitter(ty) {
			t.Fatalf("no emitter of %v", ty)
		}
	}
	var prev atomic.Int64
	cfg := rt.Install(actor.Config{Loops: 2, Watchdog: -1, Hook: func(*actor.Event) { prev.Add(1) }})
	sys := newSystem(t, cfg)
	s := must(SubscribeMany(b, []Type{TypeOf[ActorSpawned](), TypeOf[ActorStopped](),
		TypeOf[ActorCrashed](), TypeOf[ActorRestarted]()}, Buffer(1024)))(t)
	spawned := must(Subscribe[ActorSpawned](b, Buffer(64)))(t)

	// Spawn and stop.
	d := spawn(t, sys, driver, actor.OnLoop(0))
	a := spawn(t, sys, collector(make(chan any, 1)), actor.OnLoop(1))
	if ev := runtimeEvents(t, s, a, 1)[0]; ev != (ActorSpawned{Actor: a, Loop: 1, Time: ev.(ActorSpawned).Time}) {
		t.Fatalf("spawn event %+v", ev)
	}
	if ev := recv(t, spawned.Out(), "typed spawn"); ev.Actor != d {
		t.Fatalf("typed stream: first spawn %v, want the driver %v", ev.Actor, d)
	}
	stopReason := errors.New("done with it")
	if _, err := ask(t, sys, d, run(func(c *actor.Context) (any, error) { return nil, c.Stop(a, stopReason) })); err != nil {
		t.Fatal(err)
	}
	if ev := runtimeEvents(t, s, a, 1)[0].(ActorStopped); ev.Reason != stopReason || ev.Loop != 1 {
		t.Fatalf("stop event %+v", ev)
	}

	// Crash of an unsupervised actor: crashed, then stopped.
	boom := spawn(t, sys, func() actor.Actor {
		return fnActor(func(*actor.Context, any) (any, error) { panic("boom") })
	}, actor.Name("boom"))
	if _, err := ask(t, sys, boom, "x"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("ask a crashing actor: %v", err)
	}
	evs := runtimeEvents(t, s, boom, 3)
	cr, ok1 := evs[1].(ActorCrashed)
	st, ok2 := evs[2].(ActorStopped)
	if _, ok0 := evs[0].(ActorSpawned); !ok0 || !ok1 || !ok2 {
		t.Fatalf("events of a crash: %#v", evs)
	}
	if cr.Crash == nil || cr.Crash.Value != "boom" || cr.Crash.Name != "boom" || !errors.Is(st.Reason, actor.ErrCrashed) {
		t.Fatalf("crash %+v, stop %+v", cr, st)
	}

	// Crash of a supervised child that its parent restarts.
	childCh := make(chan actor.Ref, 1)
	parent := spawn(t, sys, func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			switch msg := msg.(type) {
			case string:
				r, err := c.Spawn(func() actor.Actor {
					return fnActor(func(*actor.Context, any) (any, error) { panic("child") })
				}, actor.Supervised())
				childCh <- r
				return nil, err
			case actor.Crashed:
				return nil, c.Restart(msg.Child)
			}
			return nil, nil
		})
	})
	if _, err := ask(t, sys, parent, "spawn"); err != nil {
		t.Fatal(err)
	}
	child := recv(t, childCh, "child")
	if err := sys.Send(child, "crash"); err != nil {
		t.Fatal(err)
	}
	evs = runtimeEvents(t, s, child, 3)
	if sp, ok := evs[0].(ActorSpawned); !ok || sp.Parent != parent {
		t.Fatalf("child spawn %#v", evs[0])
	}
	if cr, ok := evs[1].(ActorCrashed); !ok || !cr.Crash.Supervised {
		t.Fatalf("child crash %#v", evs[1])
	}
	if _, ok := evs[2].(ActorRestarted); !ok {
		t.Fatalf("after the crash %#v, want ActorRestarted", evs[2])
	}
	if prev.Load() == 0 {
		t.Fatal("Install dropped the hook the config already had")
	}

	// An actor subscription ends when its actor stops.
	out := make(chan any, 8)
	sub := spawn(t, sys, collector(out))
	as := must(SubscribeActor(b, sys, sub, []Type{TypeOf[Tick]()}))(t)
	if _, err := ask(t, sys, d, run(func(c *actor.Context) (any, error) { return nil, c.Stop(sub, nil) })); err != nil {
		t.Fatal(err)
	}
	waitDone(t, as, ErrSubscriberGone)

	// Shutdown stops the rest with actor.ErrShutdown.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := sys.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := runtimeEvents(t, s, d, 1)[0].(ActorStopped); !errors.Is(ev.Reason, actor.ErrShutdown) {
		t.Fatalf("driver stop at shutdown: %+v", ev)
	}

	rt.Close()
	rt.Close()
	if HasEmitter[ActorSpawned](b) {
		t.Fatal("emitter still registered after Runtime.Close")
	}
}

// A stalled loop is reported as LoopOverloaded through OnStall.
func TestRuntimeStall(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	rt := must(NewRuntime(b))(t)
	defer rt.Close()
	var prevStall atomic.Int64
	cfg := rt.Install(actor.Config{Loops: 2, Watchdog: 20 * time.Millisecond,
		OnStall: func(int, time.Duration) { prevStall.Add(1) }})
	sys := newSystem(t, cfg)
	s := must(Subscribe[LoopOverloaded](b, OnSlow(Drop)))(t)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	blk := spawn(t, sys, blocker(entered, gate), actor.OnLoop(1))
	if err := sys.Send(blk, "block"); err != nil {
		t.Fatal(err)
	}
	recv(t, entered, "blocker")
	ev := recv(t, s.Out(), "LoopOverloaded")
	close(gate)
	if ev.Cause != Stalled || ev.Loop != 1 || ev.Stalled < 20*time.Millisecond || ev.Time.IsZero() {
		t.Fatalf("stall event %+v", ev)
	}
	if prevStall.Load() == 0 {
		t.Fatal("Install dropped the OnStall the config already had")
	}
}

// A message dropped for lack of room (the stash of a suspended supervised
// actor overflowing) is reported as LoopOverloaded.
func TestRuntimeQueueFull(t *testing.T) {
	b := New(Config{})
	defer b.Close()
	rt := must(NewRuntime(b))(t)
	defer rt.Close()
	sys := newSystem(t, rt.Install(actor.Config{Loops: 1, QueueCapacity: 16, Watchdog: -1,
		Logger: slog.New(slog.DiscardHandler)}))
	s := must(Subscribe[LoopOverloaded](b, OnSlow(Drop)))(t)
	childCh := make(chan actor.Ref, 1)
	parent := spawn(t, sys, func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) {
			if _, ok := msg.(string); ok {
				r, err := c.Spawn(func() actor.Actor {
					return fnActor(func(*actor.Context, any) (any, error) { panic("child") })
				}, actor.Supervised())
				childCh <- r
				return nil, err
			}
			return nil, nil // Crashed: leave the child suspended
		})
	})
	if _, err := ask(t, sys, parent, "spawn"); err != nil {
		t.Fatal(err)
	}
	child := recv(t, childCh, "child")
	if _, err := ask(t, sys, child, "crash"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("crash: %v", err)
	}
	// The child is suspended: its messages are stashed, up to the queue
	// capacity; the next ones are dropped with ErrQueueFull.
	deadline := time.After(wait)
	for i := 0; ; i++ {
		select {
		case ev := <-s.Out():
			if ev.Cause != QueueFull || ev.Actor != child || ev.Loop != 0 {
				t.Fatalf("overload event %+v", ev)
			}
			return
		case <-deadline:
			t.Fatalf("no LoopOverloaded after %d sends", i)
		default:
			if err := sys.Send(child, i); err != nil && !errors.Is(err, actor.ErrQueueFull) {
				t.Fatal(err)
			}
		}
	}
}

func TestNewRuntimeOnClosedBus(t *testing.T) {
	b := New(Config{})
	b.Close()
	if _, err := NewRuntime(b); !errors.Is(err, ErrBusClosed) {
		t.Fatalf("NewRuntime on a closed bus = %v", err)
	}
	if Stalled.String() != "stalled" || QueueFull.String() != "queue full" || OverloadCause(0).String() != "unknown" {
		t.Fatal("OverloadCause strings")
	}
	if Cancel.String() != "cancel" || Drop.String() != "drop" || Notify.String() != "notify" || SlowPolicy(9).String() != "unknown" {
		t.Fatal("SlowPolicy strings")
	}
}
