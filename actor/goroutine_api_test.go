package actor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSystemStopAndKill: from a plain goroutine, Stop returns once the
// actor has stopped (Terminate run, ref dead, Down sent), Kill once it is
// dead without Terminate; both return nil for a dead actor, and a ctx that
// ends first returns its error while the stop still happens.
func TestSystemStopAndKill(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	ctx := context.Background()
	a := &lcActor{terminated: make(chan error, 1), blocked: make(chan struct{}, 1), release: make(chan struct{})}
	r := tsSpawn(t, s, func() Actor { return a }, OnLoop(1))
	if err := s.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Terminate has returned by now: its report is already there.
	select {
	case why := <-a.terminated:
		if why != nil {
			t.Fatalf("Terminate(%v), want the normal reason", why)
		}
	default:
		t.Fatal("Stop returned before Terminate ran")
	}
	if _, err := s.Ask(ctx, r, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("ask after Stop: %v, want ErrDead", err)
	}
	if err := s.Stop(ctx, r); err != nil {
		t.Fatalf("Stop of a dead actor: %v", err)
	}

	b := &lcActor{terminated: make(chan error, 1)}
	r2 := tsSpawn(t, s, func() Actor { return b }, OnLoop(0))
	if err := s.Kill(ctx, r2); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	tsNone(t, b.terminated, "Terminate after Kill")
	if _, err := s.Ask(ctx, r2, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("ask after Kill: %v, want ErrDead", err)
	}

	// The loop is held: Stop gives up with ctx's error; the stop happens
	// when the loop is free.
	c := &lcActor{terminated: make(chan error, 1), blocked: make(chan struct{}, 1), release: make(chan struct{})}
	r3 := tsSpawn(t, s, func() Actor { return c }, OnLoop(1))
	if err := s.Send(r3, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, c.blocked, "the handler holding the loop")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Stop(short, r3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop on a held loop: %v, want the context's error", err)
	}
	close(c.release)
	tsRecv(t, c.terminated, "the stop after the loop was freed")

	var zero Ref
	if err := s.Stop(ctx, zero); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("Stop of the zero Ref: %v", err)
	}
	other := tsSystem(t, Config{Loops: 1})
	if err := other.Stop(ctx, tsSpawn(t, s, tsEcho())); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("Stop of another system's actor: %v", err)
	}
}

// slowCounter counts messages, holding its loop while gate is closed.
type slowCounter struct {
	n    atomic.Int64
	gate chan struct{}
}

func (a *slowCounter) Receive(_ *Context, msg any) (any, error) {
	if msg == "hold" {
		<-a.gate
	}
	a.n.Add(1)
	return nil, nil
}

// TestSendWaitPacesProducers: producers that SendWait into a full queue
// wait instead of failing, and every message arrives; a ctx that ends
// while the queue stays full fails the send with ctx's error.
func TestSendWaitPacesProducers(t *testing.T) {
	const producers, each = 4, 500
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, QueueCapacity: 8})
	a := &slowCounter{gate: make(chan struct{})}
	r := tsSpawn(t, s, func() Actor { return a })
	ctx := context.Background()
	if err := s.Send(r, "hold"); err != nil {
		t.Fatal(err)
	}
	// Filled to the brim, a plain Send is refused.
	for {
		if err := s.Send(r, 0); errors.Is(err, ErrQueueFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.SendWait(short, r, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendWait on a held, full queue: %v, want the context's error", err)
	}
	sent := a.n.Load() // nothing handled yet: the loop is held
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := s.SendWait(ctx, r, 1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(a.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SendWait: %v", err)
	}
	// Every message of the producers arrives, after the ones queued
	// before them.
	want := int64(producers * each)
	deadline := time.Now().Add(tsWait)
	for a.n.Load()-sent < want {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d, want at least %d", a.n.Load()-sent, want)
		}
		time.Sleep(time.Millisecond) // polling a counter, not synchronisation
	}
	var zero Ref
	if err := s.SendWait(ctx, zero, 1); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("SendWait to the zero Ref: %v", err)
	}
}

// failingStart fails its Start when fail is set, reporting Terminates.
type failingStart struct {
	fail                bool
	started, terminated *atomic.Int64
}

func (a *failingStart) Start(*Context) error {
	if a.fail {
		return errBoom
	}
	a.started.Add(1)
	return nil
}
func (a *failingStart) Receive(_ *Context, msg any) (any, error) { return msg, nil }
func (a *failingStart) Terminate(*Context, error)                { a.terminated.Add(1) }

var errBoom = errors.New("start failed")

// TestSpawnMany: n actors spread over the loops in order, all alive; with
// OnLoop all on one loop; a Start that fails stops every actor started
// and returns its error.
func TestSpawnMany(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	ctx := context.Background()
	refs, err := s.SpawnMany(ctx, 101, tsEcho())
	if err != nil || len(refs) != 101 {
		t.Fatalf("SpawnMany: %d refs, %v", len(refs), err)
	}
	seen := map[Ref]bool{}
	for i, r := range refs {
		if r.Loop() != i%2 || seen[r] {
			t.Fatalf("ref %d = %v: loop %d, duplicate %v", i, r, r.Loop(), seen[r])
		}
		seen[r] = true
		if v, err := s.Ask(ctx, r, i); err != nil || v != i {
			t.Fatalf("ask %v: %v, %v", r, v, err)
		}
	}
	refs, err = s.SpawnMany(ctx, 5, tsEcho(), OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if r.Loop() != 1 {
			t.Fatalf("OnLoop(1): %v", r)
		}
	}
	if refs, err := s.SpawnMany(ctx, 0, tsEcho()); refs != nil || err != nil {
		t.Fatalf("SpawnMany of 0: %v, %v", refs, err)
	}

	// The 7th Start fails: none of the others survives.
	var started, terminated, made atomic.Int64
	before := s.Stats()
	refs, err = s.SpawnMany(ctx, 20, func() Actor {
		return &failingStart{fail: made.Add(1) == 7, started: &started, terminated: &terminated}
	})
	if !errors.Is(err, errBoom) || refs != nil {
		t.Fatalf("SpawnMany with a failing Start: %v refs, %v", len(refs), err)
	}
	// Every actor that started is stopped, its Terminate run; the loops'
	// live counts come back.
	deadline := time.Now().Add(tsWait)
	for started.Load() < 6 || terminated.Load() != started.Load() || liveActors(s) != liveOf(before) {
		if time.Now().After(deadline) {
			t.Fatalf("after a failed SpawnMany: %d started, %d Terminates, %d live (was %d)", started.Load(), terminated.Load(), liveActors(s), liveOf(before))
		}
		time.Sleep(time.Millisecond) // polling counters, not synchronisation
	}
}

func liveActors(s *System) int64 { return liveOf(s.Stats()) }

func liveOf(st []Stats) int64 {
	var n int64
	for _, x := range st {
		n += x.Actors
	}
	return n
}

// TestSystemAskTimeout: a reply in time is returned; none in time is ErrTimeout
// (and the late reply is not taken by the next call, which reuses the
// pooled timer that fired).
func TestSystemAskTimeout(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1})
	gate := make(chan struct{})
	r := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "hold" {
			<-gate
			return "late", nil
		}
		return msg, nil
	}))
	if v, err := s.AskTimeout(r, 1, time.Minute); err != nil || v != 1 {
		t.Fatalf("AskTimeout: %v, %v", v, err)
	}
	if v, err := s.AskTimeout(r, "hold", 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("AskTimeout of a held actor: %v, %v; want ErrTimeout", v, err)
	}
	close(gate)
	for i := range 3 {
		if v, err := s.AskTimeout(r, i, time.Minute); err != nil || v != i {
			t.Fatalf("AskTimeout after a timeout: %v, %v; want %d", v, err, i)
		}
	}
	if v, err := s.AskTimeout(r, 7, 0); err != nil || v != 7 {
		t.Fatalf("AskTimeout without a timeout: %v, %v", v, err)
	}
	var zero Ref
	if _, err := s.AskTimeout(zero, 1, time.Second); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("AskTimeout of the zero Ref: %v", err)
	}
}

// AwaitRoom on an actor of this node settles at the next pass of its loop;
// on the zero Ref at once.
func TestAwaitRoomLocal(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	target := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { return nil, nil }), OnLoop(1))
	waiter := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		r := c.Defer()
		c.AwaitRoom(msg.(Ref)).Then(func(*Context, any, error) { r.Reply("room", nil) })
		return nil, nil
	}), OnLoop(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range []Ref{target, waiter, {}} {
		if v, err := s.Ask(ctx, waiter, r); err != nil || v != "room" {
			t.Fatalf("AwaitRoom(%v): %v, %v", r, v, err)
		}
	}
}

// TestSendManyInOrder: a batch reaches the actor in order and whole, from
// a plain goroutine, from an actor on another loop and from one on the
// same loop; the zero Ref queues nothing.
func TestSendManyInOrder(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	got := make(chan int, 1024)
	r := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		got <- msg.(int)
		return nil, nil
	}), OnLoop(1))
	batch := func(from int) []any {
		msgs := make([]any, 100)
		for i := range msgs {
			msgs[i] = from + i
		}
		return msgs
	}
	// Each batch goes to a parked loop, which only a wake-up gets going.
	parked := func() {
		t.Helper()
		deadline := time.Now().Add(tsWait)
		for !s.loops[1].loop.Stats().Parked {
			if time.Now().After(deadline) {
				t.Fatal("loop 1 never parked")
			}
			runtime.Gosched()
		}
	}
	check := func(what string, from int) {
		t.Helper()
		for i := range 100 {
			if v := tsRecv(t, got, what); v != from+i {
				t.Fatalf("%s: message %d is %d, want %d", what, i, v, from+i)
			}
		}
	}
	parked()
	if n, err := s.SendMany(r, batch(0)); n != 100 || err != nil {
		t.Fatalf("System.SendMany: %d, %v", n, err)
	}
	check("from a goroutine", 0)
	for l, from := range []int{1000, 2000} { // the other loop, then the same loop
		drv := tsSpawn(t, s, tsDriver(), OnLoop(l))
		n, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			if l == 0 {
				parked()
			}
			return c.SendMany(r, batch(from))
		})
		if n != 100 || err != nil {
			t.Fatalf("Context.SendMany from loop %d: %v, %v", l, n, err)
		}
		check("from an actor", from)
	}
	var zero Ref
	if n, err := s.SendMany(zero, batch(0)); n != 0 || !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("SendMany to the zero Ref: %d, %v", n, err)
	}
	if n, err := s.SendMany(r, nil); n != 0 || err != nil {
		t.Fatalf("an empty batch: %d, %v", n, err)
	}
}

// TestSendManyStopsAtFullQueue: into a queue with room for fewer than the
// batch, SendMany queues a prefix, says ErrQueueFull, and exactly that
// prefix arrives, in order, once the loop runs again.
func TestSendManyStopsAtFullQueue(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, QueueCapacity: 8})
	gate := make(chan struct{})
	held := make(chan struct{}, 1)
	got := make(chan int, 64)
	r := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "hold" {
			held <- struct{}{}
			<-gate
			return nil, nil
		}
		got <- msg.(int)
		return nil, nil
	}))
	if err := s.Send(r, "hold"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, held, "the handler holding the loop")
	msgs := make([]any, 32)
	for i := range msgs {
		msgs[i] = i
	}
	n, err := s.SendMany(r, msgs)
	if !errors.Is(err, ErrQueueFull) || n == 0 || n >= len(msgs) {
		t.Fatalf("SendMany into a queue of 8: %d queued, %v; want a prefix and ErrQueueFull", n, err)
	}
	close(gate)
	for i := range n {
		if v := tsRecv(t, got, "a queued message"); v != i {
			t.Fatalf("message %d is %d", i, v)
		}
	}
	tsNone(t, got, "a message past the refused one")
}

// spawnProbe reports its Start and Terminate, and can hold its Start.
type spawnProbe struct {
	started    chan Ref
	hold       chan struct{}
	terminated chan error
}

func (p *spawnProbe) Start(c *Context) error {
	p.started <- c.Self()
	if p.hold != nil {
		<-p.hold
	}
	return nil
}

func (p *spawnProbe) Terminate(_ *Context, why error) { p.terminated <- why }

func (p *spawnProbe) Receive(*Context, any) (any, error) { return nil, nil }

// TestSpawnGivenUpLeavesNoActor: a Spawn whose ctx ends before the loop
// got to it makes no actor, and one whose ctx ends while Start runs stops
// the actor once Start returns (Terminate runs with ctx's error): the
// caller, told the spawn failed, holds no ref, so nothing else could.
func TestSpawnGivenUpLeavesNoActor(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1})
	// The loop is held by a handler: the spawn waits behind it.
	gate := make(chan struct{})
	held := make(chan struct{}, 1)
	blocker := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) {
		held <- struct{}{}
		<-gate
		return nil, nil
	}))
	if err := s.Send(blocker, "hold"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, held, "the handler holding the loop")
	p := &spawnProbe{started: make(chan Ref, 1), terminated: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Spawn(ctx, func() Actor { return p }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Spawn behind a held loop: %v, want the context's error", err)
	}
	close(gate)
	// A round trip through the loop: the given-up spawn was before it.
	if _, err := tsAsk(t, s, tsSpawn(t, s, tsEcho()), "x"); err != nil {
		t.Fatal(err)
	}
	tsNone(t, p.started, "a Start for a spawn given up")

	// Given up while Start runs: the actor is stopped once Start returns.
	q := &spawnProbe{started: make(chan Ref, 1), hold: make(chan struct{}), terminated: make(chan error, 1)}
	ctx2, cancel2 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Spawn(ctx2, func() Actor { return q })
		errc <- err
	}()
	r := tsRecv(t, q.started, "the Start")
	cancel2()
	if err := tsRecv(t, errc, "Spawn's return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Spawn cancelled during Start: %v", err)
	}
	close(q.hold)
	if why := tsRecv(t, q.terminated, "the Terminate of the actor nobody holds"); !errors.Is(why, context.Canceled) {
		t.Fatalf("Terminate(%v), want the context's error", why)
	}
	if _, err := s.Ask(context.Background(), r, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("ask of the stopped actor: %v, want ErrDead", err)
	}
}
