package actor

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every System
// a test makes is shut down by tsSystem's cleanup, and Shutdown must wait for
// its loops, watchdog and workers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ---------------------------------------------------------------------------
// Helpers shared by the test files of this package. Their names start with ts
// so that they cannot collide with other test files of the package.

// tsWait is how long a test waits for something that should happen promptly.
const tsWait = 5 * time.Second

// tsActor is an actor made of functions. recv handles messages other than
// tsDo; start and term, when set, are its Start and Terminate methods.
type tsActor struct {
	recv  func(c *Context, msg any) (any, error)
	start func(c *Context) error
	term  func(c *Context, reason error)
}

// tsDo is a message that makes any tsActor run the function in its handler
// and reply with its result. It lets a test act from inside an actor.
type tsDo func(c *Context) (any, error)

func (a *tsActor) Receive(c *Context, msg any) (any, error) {
	if f, ok := msg.(tsDo); ok {
		return f(c)
	}
	if a.recv == nil {
		return nil, Unhandled(msg)
	}
	return a.recv(c, msg)
}

func (a *tsActor) Start(c *Context) error {
	if a.start != nil {
		return a.start(c)
	}
	return nil
}

func (a *tsActor) Terminate(c *Context, reason error) {
	if a.term != nil {
		a.term(c, reason)
	}
}

// tsFn returns a factory of tsActors handling messages with recv.
func tsFn(recv func(c *Context, msg any) (any, error)) Factory {
	return func() Actor { return &tsActor{recv: recv} }
}

// tsDriver is a factory of actors that only run tsDo messages.
func tsDriver() Factory { return func() Actor { return &tsActor{} } }

// tsEcho replies with the message it gets.
func tsEcho() Factory {
	return tsFn(func(_ *Context, msg any) (any, error) { return msg, nil })
}

// tsSystem starts a System for one test, logging nowhere unless cfg says
// otherwise, and shuts it down when the test ends.
func tsSystem(t testing.TB, cfg Config) *System {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := NewSystem(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// tsSpawn spawns a top-level actor or fails the test.
func tsSpawn(t testing.TB, s *System, f Factory, opts ...SpawnOption) Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tsWait)
	defer cancel()
	r, err := s.Spawn(ctx, f, opts...)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	if r.IsZero() {
		t.Fatal("Spawn returned the zero Ref without an error")
	}
	return r
}

// tsAsk asks from the test goroutine with a deadline.
func tsAsk(t testing.TB, s *System, to Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tsWait)
	defer cancel()
	v, err := s.Ask(ctx, to, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ask %v %v: no reply within %v", to, msg, tsWait)
	}
	return v, err
}

// tsDoIn runs f inside the actor in (a tsActor) and returns its result.
func tsDoIn(t testing.TB, s *System, in Ref, f func(c *Context) (any, error)) (any, error) {
	t.Helper()
	return tsAsk(t, s, in, tsDo(f))
}

// tsRecv waits for a value on ch, failing the test after tsWait.
func tsRecv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(tsWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// tsNone checks that ch holds nothing right now.
func tsNone[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// tsStop stops r from inside the actor via, which must be a tsActor. When r
// is on another loop than via, the stop is only queued when tsStop returns.
func tsStop(t testing.TB, s *System, via, r Ref, reason error) {
	t.Helper()
	if _, err := tsDoIn(t, s, via, func(c *Context) (any, error) { return nil, c.Stop(r, reason) }); err != nil {
		t.Fatalf("Stop %v: %v", r, err)
	}
}

// tsLoopOf replies with the loop its handler runs on.
func tsLoopOf() Factory {
	return tsFn(func(c *Context, _ any) (any, error) { return c.Loop(), nil })
}

// tsBlocker is an actor that, on the message "block", signals entered and
// waits for release; it records every other message in order.
type tsBlocker struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	got     []any
}

func newTSBlocker() *tsBlocker {
	return &tsBlocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *tsBlocker) factory() Factory {
	return tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "block" {
			b.entered <- struct{}{}
			<-b.release
			return "released", nil
		}
		b.mu.Lock()
		b.got = append(b.got, msg)
		b.mu.Unlock()
		return msg, nil
	})
}

func (b *tsBlocker) received() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]any(nil), b.got...)
}

// ---------------------------------------------------------------------------
// Loop group and placement.

func TestLoopsAndOnLoopPlacement(t *testing.T) {
	s := tsSystem(t, Config{Loops: 3})
	if s.Loops() != 3 {
		t.Fatalf("Loops() = %d, want 3", s.Loops())
	}
	if n := len(s.Stats()); n != 3 {
		t.Fatalf("len(Stats()) = %d, want 3", n)
	}
	for i, want := range []int{0, 1, 2, 0, 1} {
		r := tsSpawn(t, s, tsLoopOf(), OnLoop(i))
		if r.Loop() != want {
			t.Errorf("OnLoop(%d): ref on loop %d, want %d", i, r.Loop(), want)
		}
		v, err := tsAsk(t, s, r, "where")
		if err != nil || v != want {
			t.Errorf("OnLoop(%d): handler ran on loop %v (%v), want %d", i, v, err, want)
		}
		if l, _, _ := r.ID(); l != want {
			t.Errorf("OnLoop(%d): ID loop %d, want %d", i, l, want)
		}
	}
	// A negative index is taken as its absolute value.
	if r := tsSpawn(t, s, tsLoopOf(), OnLoop(-2)); r.Loop() != 2 {
		t.Errorf("OnLoop(-2): loop %d, want 2", r.Loop())
	}
	var zero Ref
	if zero.Loop() != -1 || !zero.IsZero() || zero.String() != "<nil>" {
		t.Errorf("zero Ref: Loop %d IsZero %v String %q", zero.Loop(), zero.IsZero(), zero.String())
	}
	st := s.Stats()
	if st[0].Actors != 2 || st[1].Actors != 2 || st[2].Actors != 2 {
		t.Errorf("actors per loop = %d %d %d, want 2 2 2", st[0].Actors, st[1].Actors, st[2].Actors)
	}
}

func TestLeastLoadedPicksEmptierLoop(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	for range 3 {
		tsSpawn(t, s, tsEcho(), OnLoop(0))
	}
	// Loop 0 holds 3 actors, loop 1 none: least loaded goes to 1 until
	// they are even, and a spawn with no option is least loaded too.
	for i, want := range []int{1, 1, 1, 0} {
		var r Ref
		if i%2 == 0 {
			r = tsSpawn(t, s, tsEcho(), LeastLoaded())
		} else {
			r = tsSpawn(t, s, tsEcho())
		}
		if r.Loop() != want {
			t.Fatalf("spawn %d: loop %d, want %d (stats %+v)", i, r.Loop(), want, s.Stats())
		}
	}

	// Queued messages count as load: loop 0 and 1 now have 4 and 3 actors;
	// pile messages up in loop 1's inbound queue behind a blocked handler.
	b := newTSBlocker()
	blocker := tsSpawn(t, s, b.factory(), OnLoop(1)) // 4 and 4
	if err := s.Send(blocker, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, b.entered, "blocker to enter its handler")
	defer close(b.release)
	for i := range 5 {
		if err := s.Send(blocker, i); err != nil {
			t.Fatal(err)
		}
	}
	// Loop 1 is blocked: picking it would make this Spawn time out.
	if r := tsSpawn(t, s, tsEcho(), LeastLoaded()); r.Loop() != 0 {
		t.Fatalf("with 5 messages queued on loop 1, least loaded chose loop %d", r.Loop())
	}
}

func TestChildrenSpawnOnParentLoopAndCallSync(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	parent := tsSpawn(t, s, func() Actor {
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			return "parent got " + msg.(string), nil
		}}
	}, OnLoop(1))
	child := func() Actor {
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "ping":
				return "pong", nil
			case "call-parent":
				return c.Call(c.Parent(), "hello")
			}
			return nil, Unhandled(msg)
		}}
	}
	v, err := tsDoIn(t, s, parent, func(c *Context) (any, error) {
		kid, err := c.Spawn(child, Name("kid"))
		if err != nil {
			return nil, err
		}
		if kid.Loop() != c.Loop() {
			t.Errorf("child on loop %d, parent on %d", kid.Loop(), c.Loop())
		}
		v, err := c.Call(kid, "ping")
		if err != nil || v != "pong" {
			t.Errorf("parent Call child = %v, %v", v, err)
		}
		return kid, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kid := v.(Ref)
	if kid.Loop() != 1 {
		t.Fatalf("child on loop %d, want 1", kid.Loop())
	}
	// The child calls its parent synchronously in a later turn.
	v, err = tsAsk(t, s, kid, "call-parent")
	if err != nil || v != "parent got hello" {
		t.Fatalf("child Call parent = %v, %v", v, err)
	}
	v, _ = tsDoIn(t, s, kid, func(c *Context) (any, error) { return []any{c.Parent(), c.Name(), c.Self()}, nil })
	got := v.([]any)
	if got[0] != parent || got[1] != "kid" || got[2] != kid {
		t.Fatalf("child Parent/Name/Self = %v, want %v kid %v", got, parent, kid)
	}
}

func TestSpawnOnOtherLoopFromHandler(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	v, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		r, err := c.Spawn(tsLoopOf(), OnLoop(1))
		return r, err
	})
	if !errors.Is(err, ErrNotLocal) || !v.(Ref).IsZero() {
		t.Fatalf("Spawn(OnLoop(other)) from a handler = %v, %v; want zero Ref, ErrNotLocal", v, err)
	}
	if n := s.Stats()[1].Actors; n != 0 {
		t.Fatalf("refused spawn left %d actors on loop 1", n)
	}

	type answer struct {
		child  Ref
		loop   any
		parent any
	}
	v, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.SpawnAsync(func() Actor {
			return &tsActor{recv: func(c *Context, msg any) (any, error) {
				if msg == "parent" {
					return c.Parent(), nil
				}
				return c.Loop(), nil
			}}
		}, OnLoop(1)).Then(func(c *Context, v any, err error) {
			if err != nil {
				rep.Reply(nil, err)
				return
			}
			child := v.(Ref)
			c.Ask(child, "loop").Then(func(c *Context, l any, err error) {
				c.Ask(child, "parent").Then(func(_ *Context, p any, err2 error) {
					rep.Reply(answer{child, l, p}, errors.Join(err, err2))
				})
			})
		})
		return nil, nil
	})
	if err != nil {
		t.Fatalf("SpawnAsync(OnLoop(1)): %v", err)
	}
	a := v.(answer)
	if a.child.Loop() != 1 || a.loop != 1 || a.parent != drv {
		t.Fatalf("SpawnAsync child %v ran on loop %v with parent %v; want loop 1, parent %v", a.child, a.loop, a.parent, drv)
	}
	// The ref is usable from anywhere.
	if v, err := tsAsk(t, s, a.child, "loop"); err != nil || v != 1 {
		t.Fatalf("Ask SpawnAsync child = %v, %v", v, err)
	}

	// SpawnAsync on the caller's own loop works too, and Start errors come
	// back through the promise.
	errStart := errors.New("no start")
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		rep := c.Defer()
		c.SpawnAsync(func() Actor {
			return &tsActor{start: func(*Context) error { return errStart }}
		}, OnLoop(1)).Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if !errors.Is(err, errStart) {
		t.Fatalf("SpawnAsync with failing Start: err %v, want %v", err, errStart)
	}
}

// ---------------------------------------------------------------------------
// Bounded queues: a full queue refuses at once, nothing blocks.

func TestInboundQueueFull(t *testing.T) {
	const capacity = 4
	s := tsSystem(t, Config{Loops: 2, QueueCapacity: capacity, Watchdog: -1})
	b := newTSBlocker()
	drained := make(chan struct{})
	var want atomic.Int64 // how many queued messages to wait for
	target := tsSpawn(t, s, func() Actor {
		inner := b.factory()().(*tsActor)
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			v, err := inner.recv(c, msg)
			if int64(len(b.received())) == want.Load() {
				close(drained)
			}
			return v, err
		}}
	}, OnLoop(0))
	other := tsSpawn(t, s, tsDriver(), OnLoop(1))

	want.Store(-1)
	if err := s.Send(target, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, b.entered, "target to block")
	released := false
	defer func() {
		if !released {
			close(b.release)
		}
	}()

	accepted := 0
	var err error
	for i := 0; i < 10*capacity; i++ {
		if err = s.Send(target, accepted); err != nil {
			break
		}
		accepted++
	}
	// The event being handled may still hold its cell until its batch ends.
	if !errors.Is(err, ErrQueueFull) || accepted < capacity-1 || accepted > capacity {
		t.Fatalf("System.Send accepted %d then returned %v; want %d (or %d) then ErrQueueFull", accepted, err, capacity, capacity-1)
	}
	if _, err := tsAsk(t, s, target, "ask"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("System.Ask into a full queue = %v, want ErrQueueFull", err)
	}

	// From an actor on another loop: Send fails at once, Ask's promise fails
	// with ErrQueueFull, and that loop keeps running.
	v, err := tsDoIn(t, s, other, func(c *Context) (any, error) {
		sendErr := c.Send(target, "from-actor")
		rep := c.Defer()
		c.Ask(target, "ask-from-actor").Then(func(_ *Context, _ any, askErr error) {
			rep.Reply([]error{sendErr, askErr}, nil)
		})
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	errs := v.([]error)
	if !errors.Is(errs[0], ErrQueueFull) || !errors.Is(errs[1], ErrQueueFull) {
		t.Fatalf("Context.Send, Context.Ask into a full queue = %v, %v; want ErrQueueFull twice", errs[0], errs[1])
	}

	want.Store(int64(accepted))
	close(b.release)
	released = true
	tsRecv(t, drained, "queued messages to be delivered")
	got := b.received()
	for i, m := range got {
		if m != i {
			t.Fatalf("delivered %v, want 0..%d in order", got, accepted-1)
		}
	}
	// The loop frees queue room once its batch ends: retry until then.
	deadline := time.Now().Add(tsWait)
	for {
		v, err := tsAsk(t, s, target, "after")
		if errors.Is(err, ErrQueueFull) && time.Now().Before(deadline) {
			runtime.Gosched()
			continue
		}
		if err != nil || v != "after" {
			t.Fatalf("Ask after draining = %v, %v", v, err)
		}
		break
	}
}

func TestLocalQueueFull(t *testing.T) {
	const capacity = 4
	s := tsSystem(t, Config{Loops: 1, QueueCapacity: capacity})
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch m := msg.(type) {
		case string: // flood itself
			var err error
			n := 0
			for ; n < 10*capacity; n++ {
				if err = c.Send(c.Self(), n); err != nil {
					break
				}
			}
			return n, err
		case int:
			mu.Lock()
			got = append(got, m)
			if len(got) == capacity {
				close(done)
			}
			mu.Unlock()
		}
		return nil, nil
	}))
	n, err := tsAsk(t, s, a, "flood")
	if !errors.Is(err, ErrQueueFull) || n != capacity {
		t.Fatalf("self sends accepted %v then %v; want %d then ErrQueueFull", n, err, capacity)
	}
	tsRecv(t, done, "self-sent messages")
	mu.Lock()
	defer mu.Unlock()
	for i, m := range got {
		if m != i {
			t.Fatalf("self-sent messages delivered as %v", got)
		}
	}
}

// ---------------------------------------------------------------------------
// Event hook.

type tsEvent struct {
	Seq  uint64
	Loop int
	Kind EventKind
	From Ref
	To   Ref
	Msg  any
	Err  error
	Cr   *Crash
}

type tsRecorder struct {
	mu  sync.Mutex
	evs []tsEvent
}

func (r *tsRecorder) hook(e *Event) {
	r.mu.Lock()
	r.evs = append(r.evs, tsEvent{e.Seq, e.Loop, e.Kind, e.From, e.To, e.Msg, e.Err, e.Crash})
	r.mu.Unlock()
}

func (r *tsRecorder) events() []tsEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tsEvent(nil), r.evs...)
}

func (r *tsRecorder) find(kind EventKind, msg any) (tsEvent, bool) {
	for _, e := range r.events() {
		if e.Kind == kind && e.Msg == msg {
			return e, true
		}
	}
	return tsEvent{}, false
}

func TestEventHook(t *testing.T) {
	rec := &tsRecorder{}
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 2, Hook: rec.hook, OnCrash: func(c *Crash) { crashes <- c }})
	a := tsSpawn(t, s, tsDriver(), OnLoop(0))
	b := tsSpawn(t, s, tsEcho(), OnLoop(0))
	crasher := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "crash" {
			panic("hook-boom")
		}
		return msg, nil
	}), OnLoop(1))

	if e, ok := rec.find(EventSpawn, nil); !ok || e.To != a || e.Loop != 0 {
		t.Errorf("first spawn event %+v (found %v), want To %v", e, ok, a)
	}

	// Send from a goroutine: From is zero.
	if err := s.Send(b, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tsAsk(t, s, b, "sync"); err != nil { // same sender, same queue: s1 was handled first
		t.Fatal(err)
	}
	if e, ok := rec.find(EventSend, "s1"); !ok || e.To != b || !e.From.IsZero() || e.Loop != 0 || e.Err != nil {
		t.Errorf("send event %+v (found %v), want To %v, no From", e, ok, b)
	}
	if e, ok := rec.find(EventAsk, "sync"); !ok || e.To != b || !e.From.IsZero() {
		t.Errorf("ask event %+v (found %v), want To %v", e, ok, b)
	}

	// Call and Ask from an actor: From is the actor.
	_, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		if _, err := c.Call(b, "c1"); err != nil {
			return nil, err
		}
		if err := c.Send(b, "s2"); err != nil {
			return nil, err
		}
		rep := c.Defer()
		c.Ask(crasher, "a1").Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := rec.find(EventCall, "c1"); !ok || e.From != a || e.To != b || e.Loop != 0 {
		t.Errorf("call event %+v (found %v), want From %v To %v", e, ok, a, b)
	}
	if e, ok := rec.find(EventAsk, "a1"); !ok || e.From != a || e.To != crasher || e.Loop != 1 {
		t.Errorf("ask event %+v (found %v), want From %v To %v on loop 1", e, ok, a, crasher)
	}
	// The continuation replied before its event was reported: any later
	// event of loop 0 comes after that report.
	if _, err := tsAsk(t, s, b, "sync2"); err != nil {
		t.Fatal(err)
	}
	if e, ok := rec.find(EventContinuation, "a1"); !ok || e.To != a || e.Loop != 0 {
		t.Errorf("continuation event %+v (found %v), want To %v on loop 0", e, ok, a)
	}
	if e, ok := rec.find(EventSend, "s2"); !ok || e.From != a || e.To != b {
		t.Errorf("send event %+v (found %v), want From %v To %v", e, ok, a, b)
	}

	// A crash: EventCrash with the *CrashError, then the ask, then the stop.
	_, err = tsAsk(t, s, crasher, "crash")
	var ce *CrashError
	if !errors.As(err, &ce) {
		t.Fatalf("Ask crasher = %v, want *CrashError", err)
	}
	e, ok := rec.find(EventCrash, "crash")
	if !ok || e.To != crasher || e.Loop != 1 || !errors.Is(e.Err, ErrCrashed) || e.Cr == nil || e.Cr.Value != "hook-boom" {
		t.Errorf("crash event %+v (found %v)", e, ok)
	}
	if e, ok := rec.find(EventAsk, "crash"); !ok || !errors.Is(e.Err, ErrCrashed) {
		t.Errorf("ask event of the crashing message %+v (found %v), want Err ErrCrashed", e, ok)
	}
	stopped := false
	for _, e := range rec.events() {
		if e.Kind == EventStop && e.To == crasher {
			stopped = errors.Is(e.Err, ErrCrashed)
		}
	}
	if !stopped {
		t.Error("no stop event with the crash as reason")
	}
	tsRecv(t, crashes, "OnCrash")

	// Dropped: a send to a dead actor.
	if err := s.Send(crasher, "to-dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := tsAsk(t, s, crasher, "dead?"); !errors.Is(err, ErrDead) {
		t.Fatalf("Ask a crashed actor = %v, want ErrDead", err)
	}
	if e, ok := rec.find(EventDropped, "to-dead"); !ok || !errors.Is(e.Err, ErrDead) || e.To != crasher {
		t.Errorf("dropped event %+v (found %v)", e, ok)
	}

	// Seq counts each loop's events from 1 without gaps.
	next := map[int]uint64{}
	for _, e := range rec.events() {
		next[e.Loop]++
		if e.Seq != next[e.Loop] {
			t.Fatalf("loop %d: event %v has Seq %d, want %d", e.Loop, e.Kind, e.Seq, next[e.Loop])
		}
	}
	if next[0] < 5 || next[1] < 4 {
		t.Fatalf("too few events: %v", next)
	}
	for k := EventSend; k <= EventDropped; k++ {
		if k.String() == "unknown" || k.String() == "" {
			t.Errorf("EventKind(%d).String() = %q", k, k.String())
		}
	}
	if EventKind(200).String() != "unknown" {
		t.Errorf("EventKind(200).String() = %q", EventKind(200).String())
	}
}

// ---------------------------------------------------------------------------
// Watchdog.

func TestWatchdogReportsStall(t *testing.T) {
	type stall struct {
		loop int
		d    time.Duration
	}
	stalls := make(chan stall, 16)
	s := tsSystem(t, Config{Loops: 2, Watchdog: 50 * time.Millisecond, OnStall: func(loop int, d time.Duration) {
		select {
		case stalls <- stall{loop, d}:
		default:
		}
	}})
	b := newTSBlocker()
	r := tsSpawn(t, s, b.factory(), OnLoop(1))
	if err := s.Send(r, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, b.entered, "handler to block")
	defer close(b.release)
	for {
		st := tsRecv(t, stalls, "OnStall for loop 1")
		if st.loop != 1 {
			// Only a starved machine makes an idle loop look stalled.
			t.Logf("OnStall(%d, %v) for the idle loop", st.loop, st.d)
			continue
		}
		if st.d < 50*time.Millisecond {
			t.Fatalf("OnStall(1, %v), want at least the 50ms budget", st.d)
		}
		break
	}
	b.release <- struct{}{} // unblock now; the deferred close is then a no-op for the handler
	// The loop works again.
	if v, err := tsAsk(t, s, r, "x"); err != nil || v != "x" {
		t.Fatalf("after stall: %v, %v", v, err)
	}
}
