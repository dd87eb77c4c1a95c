package actor

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/loop"
)

var errLinkBoom = errors.New("link-boom")

// tsTrapper traps exits and forwards every Exited it gets.
func tsTrapper(exits chan<- Exited) Factory {
	return func() Actor {
		return &tsActor{
			start: func(c *Context) error { c.TrapExits(true); return nil },
			recv: func(_ *Context, msg any) (any, error) {
				if e, ok := msg.(Exited); ok {
					exits <- e
					return nil, nil
				}
				return nil, Unhandled(msg)
			},
		}
	}
}

func TestLinkPropagatesAbnormalExit(t *testing.T) {
	for _, loops := range []int{1, 2} {
		s := tsSystem(t, Config{Loops: 2})
		terms := make(chan error, 4)
		a := tsSpawn(t, s, tsDriver(), OnLoop(0))
		b := tsSpawn(t, s, func() Actor {
			return &tsActor{term: func(_ *Context, r error) { terms <- r }}
		}, OnLoop(loops-1))
		downs := make(chan Down, 4)
		w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
		tsMonitor(t, s, w, downs, tsDeadRef(t, s, loops-1), b)
		if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) { return nil, c.Link(b) }); err != nil {
			t.Fatal(err)
		}
		if loops == 2 { // the link is made on b's loop: wait for it with a round trip
			if _, err := tsAsk(t, s, b, tsDo(func(*Context) (any, error) { return nil, nil })); err != nil {
				t.Fatal(err)
			}
		}
		tsStop(t, s, a, a, errLinkBoom)
		if r := tsRecv(t, terms, "b's Terminate"); !errors.Is(r, errLinkBoom) {
			t.Fatalf("linked actor stopped with %v", r)
		}
		if d := tsRecv(t, downs, "b's Down"); d.Ref != b || !errors.Is(d.Reason, errLinkBoom) {
			t.Fatalf("Down %+v", d)
		}
	}
}

func TestLinkNormalExitDoesNotPropagateAndTrap(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	exits := make(chan Exited, 4)
	trapper := tsSpawn(t, s, tsTrapper(exits), OnLoop(1))
	plain := tsSpawn(t, s, tsEcho(), OnLoop(0))
	x := tsSpawn(t, s, tsDriver(), OnLoop(0))
	y := tsSpawn(t, s, tsDriver(), OnLoop(0))
	for _, r := range []Ref{x, y} {
		if _, err := tsDoIn(t, s, r, func(c *Context) (any, error) {
			if err := c.Link(plain); err != nil {
				return nil, err
			}
			return nil, c.Link(trapper)
		}); err != nil {
			t.Fatal(err)
		}
	}
	tsStop(t, s, x, x, nil) // normal: plain survives, trapper told
	if e := tsRecv(t, exits, "Exited of a normal exit"); e.From != x || e.Reason != nil {
		t.Fatalf("Exited %+v", e)
	}
	if v, err := tsAsk(t, s, plain, 1); err != nil || v != 1 {
		t.Fatalf("linked actor after a normal exit: %v %v", v, err)
	}
	tsStop(t, s, y, y, errLinkBoom) // abnormal: plain stops, trapper keeps running
	if e := tsRecv(t, exits, "Exited of an abnormal exit"); e.From != y || !errors.Is(e.Reason, errLinkBoom) {
		t.Fatalf("Exited %+v", e)
	}
	// plain's signal is on loop 0 (the local queue) while trapper's was on
	// loop 1: an ask can reach plain before its signal does, in the same
	// pass. Wait for the stop, bounded.
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := tsAsk(t, s, plain, 1)
		if errors.Is(err, ErrDead) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("linked actor after an abnormal exit: %v", err)
		}
	}
	if _, err := tsAsk(t, s, trapper, tsDo(func(*Context) (any, error) { return "up", nil })); err != nil {
		t.Fatalf("trapping actor: %v", err)
	}
}

func TestUnlinkAndLinkDead(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	a := tsSpawn(t, s, tsDriver(), OnLoop(0))
	b := tsSpawn(t, s, tsEcho(), OnLoop(0))
	if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) {
		if err := c.Link(b); err != nil {
			return nil, err
		}
		return nil, c.Unlink(b)
	}); err != nil {
		t.Fatal(err)
	}
	tsStop(t, s, a, a, errLinkBoom)
	if v, err := tsAsk(t, s, b, 2); err != nil || v != 2 {
		t.Fatalf("unlinked actor: %v %v", v, err)
	}
	dead := tsDeadRef(t, s, 0)
	c0 := tsSpawn(t, s, tsDriver(), OnLoop(0))
	if _, err := tsDoIn(t, s, c0, func(c *Context) (any, error) { return nil, c.Link(dead) }); !errors.Is(err, ErrDead) {
		t.Fatalf("Link to a dead local actor: %v", err)
	}
	// A dead actor of another loop: the linker gets an exit signal (noproc).
	exits := make(chan Exited, 1)
	tr := tsSpawn(t, s, tsTrapper(exits), OnLoop(1))
	if _, err := tsDoIn(t, s, tr, func(c *Context) (any, error) { return nil, c.Link(dead) }); err != nil {
		t.Fatal(err)
	}
	if e := tsRecv(t, exits, "noproc Exited"); e.From != dead || !errors.Is(e.Reason, ErrDead) {
		t.Fatalf("Exited %+v", e)
	}
}

func TestKillSkipsTerminateAndExit(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	terms := make(chan error, 4)
	mk := func() Actor { return &tsActor{term: func(_ *Context, r error) { terms <- r }} }
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	downs := make(chan Down, 4)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
	for _, l := range []int{0, 1} {
		v := tsSpawn(t, s, mk, OnLoop(l))
		tsMonitor(t, s, w, downs, tsDeadRef(t, s, l), v)
		if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Kill(v) }); err != nil {
			t.Fatal(err)
		}
		if d := tsRecv(t, downs, "Down of a killed actor"); d.Ref != v || !errors.Is(d.Reason, ErrKilled) {
			t.Fatalf("Down %+v", d)
		}
		tsNone(t, terms, "Terminate of a killed actor")
	}
	// Exit with a reason stops a non-trapping actor (Terminate runs).
	v := tsSpawn(t, s, mk, OnLoop(1))
	tsMonitor(t, s, w, downs, tsDeadRef(t, s, 1), v)
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Exit(v, errLinkBoom) }); err != nil {
		t.Fatal(err)
	}
	if r := tsRecv(t, terms, "Terminate after Exit"); !errors.Is(r, errLinkBoom) {
		t.Fatalf("Terminate(%v)", r)
	}
	tsRecv(t, downs, "Down after Exit")
}

func TestSuspendAndAsyncLifecycle(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	terms := make(chan error, 8)
	var n int
	mk := func() Actor {
		n++
		i := n
		return &tsActor{
			recv: func(*Context, any) (any, error) { return i, nil },
			term: func(_ *Context, r error) { terms <- r },
		}
	}
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	far := tsSpawn(t, s, mk, OnLoop(1))
	type res struct {
		v   any
		err error
	}
	results := make(chan res, 4)
	then := func(p Promise) {
		p.Then(func(_ *Context, v any, err error) { results <- res{v, err} })
	}
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { then(c.SuspendAsync(far, ErrRestart, time.Second)); return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if r := tsRecv(t, results, "SuspendAsync"); r.err != nil {
		t.Fatal(r.err)
	}
	if r := tsRecv(t, terms, "Terminate on suspend"); !errors.Is(r, ErrRestart) {
		t.Fatal(r)
	}
	// Suspended: asks are held until the restart, then answered by the new instance.
	held := make(chan res, 1)
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		c.Ask(far, "n").Then(func(_ *Context, v any, err error) { held <- res{v, err} })
		then(c.SuspendAsync(far, ErrRestart, time.Second)) // already suspended: no-op
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := tsRecv(t, results, "second SuspendAsync"); r.err == nil {
		t.Fatal("suspending a suspended actor succeeded")
	}
	tsNone(t, held, "answer from a suspended actor")
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { then(c.RestartAsync(far)); return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if r := tsRecv(t, results, "RestartAsync"); r.err != nil {
		t.Fatal(r.err)
	}
	if r := tsRecv(t, held, "held ask"); r.err != nil || r.v != 2 {
		t.Fatalf("held ask answered %+v, want the new instance", r)
	}
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { then(c.StopAsync(far, nil, time.Second)); return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if r := tsRecv(t, results, "StopAsync"); r.err != nil {
		t.Fatal(r.err)
	}
	tsRecv(t, terms, "Terminate on stop")
	if _, err := tsAsk(t, s, far, "n"); !errors.Is(err, ErrDead) {
		t.Fatalf("after StopAsync: %v", err)
	}
	// Local suspend of a running actor's own handler: ErrCycle.
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, c.Suspend(c.Self(), nil) }); !errors.Is(err, ErrCycle) {
		t.Fatalf("Suspend self = %v", err)
	}
}

// A stop that waits past its deadline (the target's loop is busy) fails
// with ErrTimeout and becomes a kill: Terminate does not run.
func TestStopAsyncTimeoutKills(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	terms := make(chan error, 2)
	b := newTSBlocker()
	blocker := tsSpawn(t, s, b.factory(), OnLoop(1))
	victim := tsSpawn(t, s, func() Actor { return &tsActor{term: func(_ *Context, r error) { terms <- r }} }, OnLoop(1))
	downs := make(chan Down, 2)
	w := tsSpawn(t, s, tsWatcher(downs), OnLoop(0))
	tsMonitor(t, s, w, downs, tsDeadRef(t, s, 1), victim)
	if err := s.Send(blocker, "block"); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, b.entered, "blocker entered")
	errs := make(chan error, 1)
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		c.StopAsync(victim, ErrShutdown, 20*time.Millisecond).Then(func(_ *Context, _ any, err error) { errs <- err })
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tsRecv(t, errs, "StopAsync result"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("StopAsync on a stuck loop = %v, want ErrTimeout", err)
	}
	close(b.release)
	if d := tsRecv(t, downs, "Down of the killed actor"); !errors.Is(d.Reason, ErrKilled) {
		t.Fatalf("Down %+v, want ErrKilled", d)
	}
	tsNone(t, terms, "Terminate of an actor killed after its shutdown timeout")
}

func TestReportEvent(t *testing.T) {
	got := make(chan any, 1)
	s := tsSystem(t, Config{Loops: 1, Hook: func(e *Event) {
		if e.Kind == EventReport {
			got <- e.Msg
		}
	}})
	a := tsSpawn(t, s, tsDriver())
	if _, err := tsDoIn(t, s, a, func(c *Context) (any, error) { c.Report("hello"); return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if v := tsRecv(t, got, "report"); v != "hello" || EventReport.String() != "report" {
		t.Fatalf("report %v", v)
	}
}

func TestLazyStacks(t *testing.T) {
	crashes := make(chan *Crash, 1)
	s := tsSystem(t, Config{Loops: 1, LazyStacks: true, OnCrash: func(c *Crash) { crashes <- c }})
	a := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { panic("lazy") }))
	_, err := tsAsk(t, s, a, 1)
	var ce *CrashError
	if !errors.As(err, &ce) || ce.Stack != nil || len(ce.PCs) == 0 {
		t.Fatalf("crash error %+v", ce)
	}
	cr := tsRecv(t, crashes, "crash")
	if txt := string(cr.StackText()); !containsStr(txt, "TestLazyStacks") {
		t.Fatalf("lazy stack does not show the panicking function:\n%s", txt)
	}
}

//go:noinline
func tsDeep(n int, f func()) int {
	if n == 0 {
		f()
		return 0
	}
	var pad [256]byte // grow the stack as it goes
	pad[n%256] = byte(n)
	return tsDeep(n-1, f) + int(pad[n%256])
}

type tsNilDeref struct{ p *int }

//go:noinline
func (x *tsNilDeref) read() int {
	return *x.p // line checked by TestLazyStacksWalk
}

// Lazy stacks are taken by walking frame pointers (on amd64): the stack
// starts at the function that panicked (not in the recovery), goes down to
// the handler, survives a stack that grew, shows the faulting line of a
// nil dereference, and works for a panic in Start too.
func TestLazyStacksWalk(t *testing.T) {
	crashes := make(chan *Crash, 4)
	s := tsSystem(t, Config{Loops: 1, LazyStacks: true, OnCrash: func(c *Crash) { crashes <- c }})
	first := func(txt string) string {
		line, _, _ := strings.Cut(txt, "\n")
		return line
	}
	// A panic at the bottom of a deep recursion.
	a := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) {
		tsDeep(40, func() { panic("deep") })
		return nil, nil
	}))
	if _, err := tsAsk(t, s, a, 1); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	txt := string(tsRecv(t, crashes, "crash").StackText())
	if f := first(txt); !strings.Contains(f, "TestLazyStacksWalk") {
		t.Fatalf("the stack starts at %q, not at the panicking function:\n%s", f, txt)
	}
	if !strings.Contains(txt, "tsDeep") || strings.Contains(txt, "runtime.gopanic") {
		t.Fatalf("stack:\n%s", txt)
	}
	// A nil dereference: the faulting line is shown.
	b := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) {
		return (&tsNilDeref{}).read(), nil
	}))
	if _, err := tsAsk(t, s, b, 1); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	cr := tsRecv(t, crashes, "crash")
	frames := runtime.CallersFrames(cr.PCs)
	found := false
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "tsNilDeref).read") {
			src, _ := os.ReadFile(f.File)
			lines := strings.Split(string(src), "\n")
			if f.Line < 1 || f.Line > len(lines) || !strings.Contains(lines[f.Line-1], "*x.p") {
				t.Fatalf("the faulting frame points at line %d, not at the dereference", f.Line)
			}
			found = true
		}
		if !more {
			break
		}
	}
	if !found {
		t.Fatalf("no frame of the faulting function:\n%s", cr.StackText())
	}
	if txt := string(cr.StackText()); !strings.Contains(txt, "TestLazyStacksWalk") {
		t.Fatalf("the caller of the faulting function is missing:\n%s", txt)
	}
	// A panic in Start.
	_, err := s.Spawn(context.Background(), func() Actor {
		return &tsActor{start: func(*Context) error { panic("in start") }}
	})
	var ce *CrashError
	if !errors.As(err, &ce) || len(ce.PCs) == 0 {
		t.Fatalf("Spawn = %v", err)
	}
	if f := first(string(ce.StackText())); !strings.Contains(f, "TestLazyStacksWalk") {
		t.Fatalf("the start stack starts at %q:\n%s", f, ce.StackText())
	}
	tsRecv(t, crashes, "start crash")
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestExternalLoops(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, ExternalLoops: true})
	svcs := s.LoopServices()
	done := make(chan error, len(svcs))
	ctx, cancel := contextWithCancel()
	for _, l := range svcs {
		go func() { done <- l.Serve(ctx) }()
	}
	a := tsSpawn(t, s, tsEcho(), OnLoop(1))
	if v, err := tsAsk(t, s, a, 7); err != nil || v != 7 {
		t.Fatalf("ask on an external loop: %v %v", v, err)
	}
	// Cancelling the services' context stops them; serving again resumes.
	cancel()
	for range svcs {
		if err := tsRecv(t, done, "Serve return"); err == nil {
			t.Fatal("Serve returned nil on cancel")
		}
	}
	ctx2, cancel2 := contextWithCancel()
	defer cancel2()
	for _, l := range svcs {
		go func() { done <- l.Serve(ctx2) }()
	}
	if v, err := tsAsk(t, s, a, 8); err != nil || v != 8 {
		t.Fatalf("ask after re-serving: %v %v", v, err)
	}
	shutdownCtx, c3 := contextWithCancel()
	defer c3()
	if err := s.Shutdown(shutdownCtx); err != nil {
		t.Fatal(err)
	}
	for range svcs {
		if err := tsRecv(t, done, "Serve return at shutdown"); !errors.Is(err, ErrShutdown) {
			t.Fatalf("Serve at shutdown = %v", err)
		}
	}
	if err := svcs[0].Serve(ctx2); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Serve after shutdown = %v", err)
	}
	_ = loop.ErrClosed
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
