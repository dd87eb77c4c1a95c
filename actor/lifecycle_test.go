package actor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// tsWatcher forwards every Down it receives to downs and runs tsDo messages.
func tsWatcher(downs chan<- Down) Factory {
	return tsFn(func(_ *Context, msg any) (any, error) {
		if d, ok := msg.(Down); ok {
			downs <- d
			return nil, nil
		}
		return nil, Unhandled(msg)
	})
}

// tsMonitor makes the watcher w monitor every ref in rs. A monitor of an
// actor on another loop is registered asynchronously; barrier, a dead ref on
// the same loop as the targets, makes it synchronous: its Down (ErrDead) is
// answered after the earlier registrations.
func tsMonitor(t *testing.T, s *System, w Ref, downs <-chan Down, barrier Ref, rs ...Ref) {
	t.Helper()
	if _, err := tsDoIn(t, s, w, func(c *Context) (any, error) {
		for _, r := range rs {
			if err := c.Monitor(r); err != nil {
				return nil, err
			}
		}
		if !barrier.IsZero() {
			return nil, c.Monitor(barrier)
		}
		return nil, nil
	}); err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	if !barrier.IsZero() {
		if d := tsRecv(t, downs, "barrier Down"); d.Ref != barrier || !errors.Is(d.Reason, ErrDead) {
			t.Fatalf("barrier Down = %+v", d)
		}
	}
}

// tsDeadRef returns a stopped actor's ref on loop l.
func tsDeadRef(t *testing.T, s *System, l int) Ref {
	t.Helper()
	r := tsSpawn(t, s, tsDriver(), OnLoop(l))
	// A self-stop completes before the reply is sent.
	if _, err := tsDoIn(t, s, r, func(c *Context) (any, error) { return nil, c.Stop(c.Self(), nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := tsAsk(t, s, r, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("stopped actor answers %v", err)
	}
	return r
}

func TestCrashContained(t *testing.T) {
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 2, OnCrash: func(c *Crash) { crashes <- c }})
	target := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		if msg == "boom" {
			panic(fmt.Errorf("wrapped: %w", context.Canceled))
		}
		return msg, nil
	}), OnLoop(0), Name("target"))
	neighbour := tsSpawn(t, s, tsEcho(), OnLoop(0))
	downs := make(chan Down, 8)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(1))
	tsMonitor(t, s, w, downs, tsDeadRef(t, s, 0), target)

	_, err := tsAsk(t, s, target, "boom")
	var ce *CrashError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCrashed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("asker of a panicking handler got %v, want *CrashError", err)
	}
	if ce.Actor != target || len(ce.Stack) == 0 {
		t.Fatalf("CrashError = %+v", ce)
	}
	cr := tsRecv(t, crashes, "OnCrash")
	if cr.Actor != target || cr.Name != "target" || cr.Loop != 0 || cr.Msg != "boom" || len(cr.Stack) == 0 ||
		cr.Supervised || cr.Value != ce.Value || cr.Time.IsZero() {
		t.Fatalf("Crash = %+v", cr)
	}
	// The loop and its other actors keep working.
	for i := range 10 {
		if v, err := tsAsk(t, s, neighbour, i); err != nil || v != i {
			t.Fatalf("neighbour after crash: %v, %v", v, err)
		}
	}
	// Not supervised: the crashed actor is stopped, its monitors told.
	if _, err := tsAsk(t, s, target, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("crashed actor answers %v, want ErrDead", err)
	}
	d := tsRecv(t, downs, "Down of the crashed actor")
	if d.Ref != target || !errors.As(d.Reason, &ce) || ce.Actor != target {
		t.Fatalf("Down = %+v, want the *CrashError as reason", d)
	}
	// A crash from a one-way message is contained too.
	if err := s.Send(neighbour, tsDo(func(*Context) (any, error) { panic("send-boom") })); err != nil {
		t.Fatal(err)
	}
	if cr := tsRecv(t, crashes, "OnCrash for a send"); cr.Value != "send-boom" || cr.Actor != neighbour {
		t.Fatalf("Crash = %+v", cr)
	}
}

// Deferring a reply and then panicking must still fail the asker.
func TestDeferThenPanicFailsAsker(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(*Crash) {}})
	replies := make(chan *Reply, 1)
	a := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		replies <- c.Defer()
		panic("deferred-boom")
	}))
	_, err := tsAsk(t, s, a, "x")
	var ce *CrashError
	if !errors.As(err, &ce) || ce.Value != "deferred-boom" {
		t.Fatalf("ask of a handler that deferred then panicked = %v, want *CrashError", err)
	}
	tsRecv(t, replies, "reply handle").Reply("late", nil) // must be ignored
}

type tsChildLog struct {
	instance int64
	log      []int
}

func TestSupervisedChildRestart(t *testing.T) {
	crashes := make(chan *Crash, 8)
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(c *Crash) { crashes <- c }})
	type early struct {
		child Ref
		v     any
		err   error
	}
	crashed := make(chan Crashed, 4)
	earlies := make(chan early, 4)
	parent := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		m, ok := msg.(Crashed)
		if !ok {
			return nil, Unhandled(msg)
		}
		// Asking the suspended child: held until it is restarted or stopped.
		c.Ask(m.Child, "log").Then(func(_ *Context, v any, err error) { earlies <- early{m.Child, v, err} })
		crashed <- m
		return nil, nil
	}))
	var starts atomic.Int64
	childFactory := func() Actor {
		st := &tsChildLog{instance: starts.Add(1)}
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch m := msg.(type) {
			case string:
				if m == "crash" {
					panic("sup-boom")
				}
				return tsChildLog{st.instance, append([]int(nil), st.log...)}, nil
			case int:
				st.log = append(st.log, m)
			}
			return nil, nil
		}}
	}
	spawnChild := func() Ref {
		v, err := tsDoIn(t, s, parent, func(c *Context) (any, error) { return c.Spawn(childFactory, Supervised()) })
		if err != nil {
			t.Fatal(err)
		}
		return v.(Ref)
	}
	child := spawnChild()

	for _, m := range []any{"crash", 1, 2, 3} {
		if err := s.Send(child, m); err != nil {
			t.Fatal(err)
		}
	}
	m := tsRecv(t, crashed, "Crashed at the parent")
	cr := tsRecv(t, crashes, "OnCrash")
	if m.Child != child || m.Crash == nil || m.Crash.Msg != "crash" || m.Crash.Value != "sup-boom" || !m.Crash.Supervised || cr != m.Crash {
		t.Fatalf("Crashed = %+v, crash %+v", m, m.Crash)
	}
	// Suspended: a synchronous Call is refused, nothing is delivered yet.
	_, err := tsDoIn(t, s, parent, func(c *Context) (any, error) { return c.Call(child, "log") })
	if !errors.Is(err, ErrCrashed) {
		t.Fatalf("Call to a suspended child = %v, want ErrCrashed", err)
	}
	tsNone(t, earlies, "answer from a suspended child")

	if _, err := tsDoIn(t, s, parent, func(c *Context) (any, error) { return nil, c.Restart(child) }); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	e := tsRecv(t, earlies, "the ask held while suspended")
	if e.err != nil || e.v.(tsChildLog).instance != 2 {
		t.Fatalf("held ask answered %+v, want the new instance's answer", e)
	}
	v, err := tsAsk(t, s, child, "log") // the old ref reaches the new instance
	if err != nil {
		t.Fatal(err)
	}
	got := v.(tsChildLog)
	if got.instance != 2 || fmt.Sprint(got.log) != "[1 2 3]" {
		t.Fatalf("after restart: instance %d log %v; want instance 2 with [1 2 3] (in order, crash not redelivered)", got.instance, got.log)
	}
	if starts.Load() != 2 {
		t.Fatalf("%d instances started, want 2", starts.Load())
	}
	tsNone(t, crashed, "second crash")

	// Restarting a live actor runs Terminate(ErrRestart) is covered below;
	// here: the parent stops a suspended child instead, and what was held
	// for it fails with ErrDead.
	child2 := spawnChild()
	if err := s.Send(child2, "crash"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, crashed, "second child's Crashed")
	tsRecv(t, crashes, "second child's OnCrash")
	tsStop(t, s, parent, child2, nil)
	if e := tsRecv(t, earlies, "held ask of a stopped child"); e.child != child2 || !errors.Is(e.err, ErrDead) {
		t.Fatalf("held ask of a stopped child = %+v, want ErrDead", e)
	}
	if _, err := tsAsk(t, s, child2, "log"); !errors.Is(err, ErrDead) {
		t.Fatalf("stopped child answers %v", err)
	}
	if _, err := tsDoIn(t, s, parent, func(c *Context) (any, error) { return nil, c.Restart(child2) }); !errors.Is(err, ErrDead) {
		t.Fatalf("Restart of a stopped child = %v, want ErrDead", err)
	}
}

// A supervised child whose parent is gone has nobody to restart it: a crash
// stops it (instead of suspending it for ever).
func TestSupervisedChildOfDeadParentStops(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(*Crash) {}})
	parent := tsSpawn(t, s, tsDriver())
	v, err := tsDoIn(t, s, parent, func(c *Context) (any, error) {
		return c.Spawn(tsFn(func(*Context, any) (any, error) { panic("orphan-boom") }), Supervised())
	})
	if err != nil {
		t.Fatal(err)
	}
	child := v.(Ref)
	if _, err := tsDoIn(t, s, parent, func(c *Context) (any, error) { return nil, c.Stop(c.Self(), nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := tsAsk(t, s, child, "x"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("orphan crash = %v, want ErrCrashed", err)
	}
	if _, err := tsAsk(t, s, child, "y"); !errors.Is(err, ErrDead) {
		t.Fatalf("orphan after its crash = %v, want ErrDead (stopped, not suspended)", err)
	}
}

func TestRestartLiveActor(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	terms := make(chan error, 4)
	var starts atomic.Int64
	f := func() Actor {
		n := starts.Add(1)
		return &tsActor{
			recv: func(*Context, any) (any, error) { return n, nil },
			term: func(_ *Context, reason error) { terms <- reason },
		}
	}
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	r := tsSpawn(t, s, f, OnLoop(0))
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Restart(r) }); err != nil {
		t.Fatal(err)
	}
	if reason := tsRecv(t, terms, "Terminate"); !errors.Is(reason, ErrRestart) {
		t.Fatalf("Terminate on restart: %v, want ErrRestart", reason)
	}
	if v, err := tsAsk(t, s, r, "n"); err != nil || v != int64(2) {
		t.Fatalf("after restart the ref reaches instance %v (%v), want 2", v, err)
	}
	far := tsSpawn(t, s, f, OnLoop(1))
	_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Restart(far) })
	if !errors.Is(err, ErrNotLocal) {
		t.Fatalf("Restart of another loop's actor = %v", err)
	}
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Restart(c.Self()) })
	if !errors.Is(err, ErrCycle) {
		t.Fatalf("Restart of oneself = %v, want ErrCycle", err)
	}
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Restart(Ref{}) })
	if !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("Restart of the zero ref = %v", err)
	}
}

func TestContinuationPanicIsCrashOfOwner(t *testing.T) {
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 2, OnCrash: func(c *Crash) { crashes <- c }})
	echo := tsSpawn(t, s, tsEcho(), OnLoop(1))
	owner := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		c.Ask(echo, "reply").Then(func(*Context, any, error) { panic("cont-boom") })
		return nil, nil
	}), OnLoop(0))
	if err := s.Send(owner, "go"); err != nil {
		t.Fatal(err)
	}
	cr := tsRecv(t, crashes, "OnCrash")
	if cr.Actor != owner || cr.Value != "cont-boom" || cr.Loop != 0 {
		t.Fatalf("Crash = %+v, want a crash of the promise's owner", cr)
	}
	if _, err := tsAsk(t, s, owner, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("owner after its continuation panicked: %v, want ErrDead", err)
	}
	if v, err := tsAsk(t, s, echo, "ok"); err != nil || v != "ok" {
		t.Fatalf("the replier is unaffected: %v, %v", v, err)
	}
}

func TestSpawnStartFailures(t *testing.T) {
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(c *Crash) { crashes <- c }})
	ctx := context.Background()
	r, err := s.Spawn(ctx, func() Actor {
		return &tsActor{start: func(*Context) error { panic("start-boom") }}
	})
	var ce *CrashError
	if !errors.As(err, &ce) || ce.Value != "start-boom" || !r.IsZero() {
		t.Fatalf("Spawn with panicking Start = %v, %v; want *CrashError", r, err)
	}
	if cr := tsRecv(t, crashes, "OnCrash for Start"); cr.Value != "start-boom" {
		t.Fatalf("Crash = %+v", cr)
	}
	errStart := errors.New("start refused")
	if r, err := s.Spawn(ctx, func() Actor {
		return &tsActor{start: func(*Context) error { return errStart }}
	}); !errors.Is(err, errStart) || !r.IsZero() {
		t.Fatalf("Spawn with failing Start = %v, %v", r, err)
	}
	if _, err := s.Spawn(ctx, nil); !errors.Is(err, ErrNilActor) {
		t.Fatalf("Spawn(nil) = %v", err)
	}
	if _, err := s.Spawn(ctx, func() Actor { return nil }); !errors.Is(err, ErrNilActor) {
		t.Fatalf("Spawn of a nil actor = %v", err)
	}
	if n := s.Stats()[0].Actors; n != 0 {
		t.Fatalf("failed spawns left %d actors", n)
	}
	// From a handler, too.
	drv := tsSpawn(t, s, tsDriver())
	_, err = tsDoIn(t, s, drv, func(c *Context) (any, error) {
		return c.Spawn(func() Actor { return &tsActor{start: func(*Context) error { return errStart }} })
	})
	if !errors.Is(err, errStart) {
		t.Fatalf("Context.Spawn with failing Start = %v", err)
	}
	// Start runs as the new actor, before Spawn returns.
	var self, parent Ref
	child, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		return c.Spawn(func() Actor {
			return &tsActor{start: func(c *Context) error {
				self, parent = c.Self(), c.Parent()
				return nil
			}}
		})
	})
	if err != nil || child != self || parent != drv {
		t.Fatalf("Start saw Self %v Parent %v; spawned %v (%v) by %v", self, parent, child, err, drv)
	}
}

func TestStopRefDeadForeverSlotReuse(t *testing.T) {
	rec := &tsRecorder{}
	s := tsSystem(t, Config{Loops: 1, Hook: rec.hook})
	drv := tsSpawn(t, s, tsDriver())
	counter := func() Actor {
		n := 0
		return &tsActor{recv: func(_ *Context, msg any) (any, error) {
			if msg == "count" {
				return n, nil
			}
			n++
			return nil, nil
		}}
	}
	old := tsSpawn(t, s, counter)
	tsStop(t, s, drv, old, nil)
	tsStop(t, s, drv, old, nil) // stopping a dead actor is not an error
	nu := tsSpawn(t, s, counter)
	_, oldSlot, oldGen := old.ID()
	_, newSlot, newGen := nu.ID()
	if oldSlot != newSlot || oldGen == newGen || old == nu || old.String() == nu.String() {
		t.Fatalf("old %v new %v: want the same slot with another generation", old, nu)
	}
	if err := s.Send(old, "for the old one"); err != nil {
		t.Fatalf("Send to a dead ref: %v", err)
	}
	_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		if err := c.Send(old, "from an actor"); err != nil {
			return nil, err
		}
		_, err := c.Call(old, "call")
		return nil, err
	})
	if !errors.Is(err, ErrDead) {
		t.Fatalf("Call to the old ref = %v, want ErrDead", err)
	}
	if _, err := tsAsk(t, s, old, "ask"); !errors.Is(err, ErrDead) {
		t.Fatalf("Ask to the old ref = %v, want ErrDead", err)
	}
	if v, err := tsAsk(t, s, nu, "count"); err != nil || v != 0 {
		t.Fatalf("the new actor in the reused slot got %v messages (%v), want 0", v, err)
	}
	// The actor's Send went to its loop's local queue, which a pass drains
	// only after the rest of its inbound batch: wait for the third drop.
	countDrops := func() int {
		drops := 0
		for _, e := range rec.events() {
			if e.Kind == EventDropped && e.To == old && errors.Is(e.Err, ErrDead) {
				drops++
			}
		}
		return drops
	}
	deadline := time.Now().Add(5 * time.Second)
	drops := countDrops()
	for drops < 3 && time.Now().Before(deadline) {
		runtime.Gosched()
		drops = countDrops()
	}
	if drops != 3 {
		t.Fatalf("%d drops reported for the old ref, want 3", drops)
	}
}

func TestTerminateAndDownReasons(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	type term struct {
		self   Ref
		reason error
	}
	terms := make(chan term, 4)
	f := func() Actor {
		return &tsActor{term: func(c *Context, reason error) { terms <- term{c.Self(), reason} }}
	}
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	downs := make(chan Down, 4)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
	errX := errors.New("reason x")
	for _, tc := range []struct {
		loop   int
		reason error
	}{{0, errX}, {1, errX}, {0, nil}, {1, nil}} {
		r := tsSpawn(t, s, f, OnLoop(tc.loop))
		tsMonitor(t, s, w, downs, Ref{}, r)
		tsStop(t, s, drv, r, tc.reason) // cross-loop stops queue behind the monitor
		tm := tsRecv(t, terms, "Terminate")
		if tm.self != r || tm.reason != tc.reason {
			t.Fatalf("Terminate(%v) as %v; want reason %v as %v", tm.reason, tm.self, tc.reason, r)
		}
		d := tsRecv(t, downs, "Down")
		if d.Ref != r || d.Reason != tc.reason {
			t.Fatalf("Down = %+v, want %v with reason %v", d, r, tc.reason)
		}
	}
}

func TestSelfStopCompletesAfterHandler(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	var mu sync.Mutex
	var steps []string
	step := func(x string) {
		mu.Lock()
		steps = append(steps, x)
		mu.Unlock()
	}
	errBye := errors.New("bye")
	a := tsSpawn(t, s, func() Actor {
		return &tsActor{
			recv: func(c *Context, msg any) (any, error) {
				if err := c.Stop(c.Self(), errBye); err != nil {
					return nil, err
				}
				// Still running: the stop waits for the handler to return.
				v, err := c.Call(c.Self(), "x")
				step(fmt.Sprintf("after-stop self-call %v %v", v, errors.Is(err, ErrCycle)))
				return "bye", nil
			},
			term: func(_ *Context, reason error) { step("terminate " + reason.Error()) },
		}
	})
	downs := make(chan Down, 1)
	w := tsSpawn(t, s, tsWatcher(downs))
	tsMonitor(t, s, w, downs, Ref{}, a)
	v, err := tsAsk(t, s, a, "quit")
	if err != nil || v != "bye" {
		t.Fatalf("self-stopping handler replied %v, %v", v, err)
	}
	mu.Lock()
	got := fmt.Sprint(steps)
	mu.Unlock()
	if got != "[after-stop self-call <nil> true terminate bye]" {
		t.Fatalf("steps %s", got)
	}
	if d := tsRecv(t, downs, "Down"); d.Ref != a || d.Reason != errBye {
		t.Fatalf("Down = %+v", d)
	}
	if _, err := tsAsk(t, s, a, "x"); !errors.Is(err, ErrDead) {
		t.Fatalf("after self-stop: %v", err)
	}
}

func TestMonitorDemonitor(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	downs := make(chan Down, 16)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	spawn := func(l int) Ref { return tsSpawn(t, s, tsEcho(), OnLoop(l)) }
	expect := func(r Ref, reason error) {
		t.Helper()
		d := tsRecv(t, downs, "Down")
		if d.Ref != r || !errors.Is(d.Reason, reason) {
			t.Fatalf("Down = %+v, want %v with %v", d, r, reason)
		}
	}
	errA, errB := errors.New("a"), errors.New("b")

	// Local and remote targets.
	local, remote := spawn(0), spawn(1)
	tsMonitor(t, s, w, downs, Ref{}, local, remote)
	tsStop(t, s, drv, local, errA)
	expect(local, errA)
	tsStop(t, s, drv, remote, errB)
	expect(remote, errB)

	// Monitoring a dead actor gives Down with ErrDead at once.
	tsMonitor(t, s, w, downs, Ref{}, local)
	expect(local, ErrDead)
	tsMonitor(t, s, w, downs, Ref{}, remote)
	expect(remote, ErrDead)

	// Demonitor: no Down. Downs from one loop arrive in order, so the first
	// one must be t4's.
	for _, l := range []int{0, 1} {
		t3, t4 := spawn(l), spawn(l)
		tsMonitor(t, s, w, downs, Ref{}, t3, t4)
		if _, err := tsDoIn(t, s, w, func(c *Context) (any, error) { return nil, c.Demonitor(t3) }); err != nil {
			t.Fatal(err)
		}
		_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			return nil, errors.Join(c.Stop(t3, errA), c.Stop(t4, errB))
		})
		if err != nil {
			t.Fatal(err)
		}
		expect(t4, errB)
	}

	// Monitoring twice gives one Down.
	t5, t6 := spawn(0), spawn(0)
	tsMonitor(t, s, w, downs, Ref{}, t5, t5, t6)
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		return nil, errors.Join(c.Stop(t5, nil), c.Stop(t6, nil))
	}); err != nil {
		t.Fatal(err)
	}
	expect(t5, nil)
	if d := tsRecv(t, downs, "Down"); d.Ref != t6 {
		t.Fatalf("second Down for %v, want %v (a duplicate for the double monitor?)", d.Ref, t6)
	}

	_, err := tsDoIn(t, s, w, func(c *Context) (any, error) { return nil, errors.Join(c.Monitor(Ref{}), c.Demonitor(Ref{})) })
	if !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("Monitor/Demonitor zero ref = %v", err)
	}
	tsNone(t, downs, "extra Down")
}

func TestShutdown(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	type term struct {
		name   string
		reason error
	}
	terms := make(chan term, 16)
	named := func(name string) Factory {
		return func() Actor {
			return &tsActor{term: func(_ *Context, reason error) { terms <- term{name, reason} }}
		}
	}
	for _, n := range []string{"a0", "b0", "c0"} {
		tsSpawn(t, s, named(n), OnLoop(0))
	}
	tsSpawn(t, s, named("d1"), OnLoop(1))
	got := make(chan struct{}, 1)
	silent := tsSpawn(t, s, func() Actor {
		return &tsActor{
			recv: func(c *Context, _ any) (any, error) {
				holdReply(c.Defer()) // never answered
				got <- struct{}{}
				return nil, nil
			},
			term: func(_ *Context, reason error) { terms <- term{"silent", reason} },
		}
	}, OnLoop(1))
	pending := make(chan error, 1)
	go func() {
		_, err := s.Ask(context.Background(), silent, "never") // no deadline
		pending <- err
	}()
	tsRecv(t, got, "the ask to be deferred")

	ctx, cancel := context.WithTimeout(context.Background(), tsWait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := tsRecv(t, pending, "pending System.Ask"); !errors.Is(err, ErrShutdown) {
		t.Fatalf("pending System.Ask = %v, want ErrShutdown", err)
	}
	var order []string
	for range 5 {
		tm := tsRecv(t, terms, "Terminate at shutdown")
		if !errors.Is(tm.reason, ErrShutdown) {
			t.Fatalf("%s terminated with %v, want ErrShutdown", tm.name, tm.reason)
		}
		order = append(order, tm.name)
	}
	if fmt.Sprint(order[:3]) != "[c0 b0 a0]" {
		t.Fatalf("terminate order %v; want loop 0 newest first", order)
	}
	if _, err := s.Spawn(ctx, tsEcho()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Spawn after Shutdown = %v", err)
	}
	if err := s.Send(silent, "x"); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Send after Shutdown = %v", err)
	}
	if _, err := s.Ask(ctx, silent, "x"); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Ask after Shutdown = %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for _, st := range s.Stats() {
		if st.Actors != 0 {
			t.Fatalf("loop %d still has %d actors", st.Loop, st.Actors)
		}
	}
	goleak.VerifyNone(t)
}

// A Terminate that stops its own actor with another reason chooses the
// reason its monitors and links see (as an Erlang process trapping exits
// may exit with a reason of its own when told to shut down), and StopAsync
// settles with it; StopAsync of an actor already dead settles with ErrDead
// as its value and no error.
func TestTerminateChoosesExitReason(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	errOwn := errors.New("own reason")
	chooser := func() Actor {
		return &tsActor{term: func(c *Context, reason error) {
			if errors.Is(reason, ErrShutdown) {
				_ = c.Stop(c.Self(), errOwn)
			}
		}}
	}
	downs := make(chan Down, 4)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
	exits := make(chan Exited, 4)
	trap := tsSpawn(t, s, tsTrapper(exits), OnLoop(0))
	results := make(chan any, 4)
	for _, l := range []int{0, 1} {
		r := tsSpawn(t, s, chooser, OnLoop(l))
		tsMonitor(t, s, w, downs, tsDeadRef(t, s, l), r)
		if _, err := tsDoIn(t, s, trap, func(c *Context) (any, error) { return nil, c.Link(r) }); err != nil {
			t.Fatal(err)
		}
		if _, err := tsAsk(t, s, r, tsDo(func(*Context) (any, error) { return nil, nil })); err != nil {
			t.Fatal(err) // the link, made from loop 0, is in place
		}
		if _, err := tsDoIn(t, s, trap, func(c *Context) (any, error) {
			c.StopAsync(r, ErrShutdown, time.Second).Then(func(_ *Context, v any, err error) {
				if err != nil {
					v = err
				}
				results <- v
			})
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if v := tsRecv(t, results, "StopAsync"); v != errOwn {
			t.Fatalf("loop %d: StopAsync settled with %v, want the reason Terminate chose", l, v)
		}
		if d := tsRecv(t, downs, "Down"); d.Ref != r || d.Reason != errOwn {
			t.Fatalf("loop %d: Down %+v, want the reason Terminate chose", l, d)
		}
		if e := tsRecv(t, exits, "Exited"); e.From != r || e.Reason != errOwn {
			t.Fatalf("loop %d: Exited %+v, want the reason Terminate chose", l, e)
		}
		// Stopping it again: already dead.
		if _, err := tsDoIn(t, s, trap, func(c *Context) (any, error) {
			c.StopAsync(r, ErrShutdown, time.Second).Then(func(_ *Context, v any, err error) {
				if err != nil {
					v = err
				}
				results <- v
			})
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if v := tsRecv(t, results, "StopAsync of a dead actor"); v != ErrDead {
			t.Fatalf("loop %d: StopAsync of a dead actor settled with %v, want the value ErrDead", l, v)
		}
	}
}

// AliveAsync tells live and suspended actors from dead ones, on any loop,
// without touching them.
func TestAliveAsync(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	alive := func(r Ref) error {
		t.Helper()
		res := make(chan error, 1)
		if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
			c.AliveAsync(r).Then(func(_ *Context, _ any, err error) { res <- err })
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		return tsRecv(t, res, "AliveAsync")
	}
	for _, l := range []int{0, 1} {
		r := tsSpawn(t, s, tsEcho(), OnLoop(l))
		if err := alive(r); err != nil {
			t.Fatalf("loop %d: live actor: %v", l, err)
		}
		if v, err := tsAsk(t, s, r, "still here"); err != nil || v != "still here" {
			t.Fatalf("loop %d: the probed actor: %v %v", l, v, err)
		}
		if err := alive(tsDeadRef(t, s, l)); !errors.Is(err, ErrDead) {
			t.Fatalf("loop %d: dead actor: %v", l, err)
		}
	}
	if err := alive(Ref{}); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("zero ref: %v", err)
	}
}
