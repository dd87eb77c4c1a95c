package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// A move whose ReplaceChild the root defers (the root busy restarting
// another child on another daemon, its start held until gate opens).
type lateReplace struct {
	a             *Daemon
	ds            map[string]*Daemon
	child, busy   placedChild
	to            string
	newRef        actor.Ref
	open          func()
	before        int64 // t1's count before the move
	replaceSentAt chan time.Time
}

func newLateReplace(t *testing.T, restart string) *lateReplace {
	f := &moveFixture{}
	spec := storeSpec("store", "tally", "t1", "t2")
	spec.Children[0].Restart = restart
	a, b, c := moveCluster(t, f, spec)
	l := &lateReplace{a: a, ds: map[string]*Daemon{"a": a, "b": b, "c": c}, replaceSentAt: make(chan time.Time, 1)}
	kids, err := placed(a, "store")
	if err != nil {
		t.Fatal(err)
	}
	l.child, l.busy = kids["t1"], kids["t2"]
	l.before = inc(t, a.sys, l.child.ref)
	l.to = other(l.child.node, "a")

	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() { close(entered) })
		<-gate
	}
	var release sync.Once
	l.open = func() { release.Do(func() { close(gate) }) }
	t.Cleanup(l.open)
	moveImportedHook = func(ref actor.Ref) {
		l.newRef = ref
		// The root restarts t2 remotely, its start held: an operation
		// under way, behind which the root defers the ReplaceChild.
		rootSpawnHook.Store(&hook)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.sys.Kill(ctx, l.busy.ref); err != nil {
			t.Errorf("killing t2: %v", err)
		}
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Errorf("the root did not start t2 again")
		}
	}
	moveReplaceHook = func(deadline time.Time) { l.replaceSentAt <- deadline }
	t.Cleanup(func() { moveImportedHook, moveReplaceHook = nil, nil; rootSpawnHook.Store(nil) })
	return l
}

// alive reports whether ref, of any daemon, is alive (held included: an
// Inspect of a held actor waits for its hold to end).
func (l *lateReplace) alive(ref actor.Ref) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.a.apps.alive(ctx, ref) == nil
}

// shorten sets the move's bounds for the test.
func shorten(t *testing.T, replace, answer time.Duration) {
	oldR, oldA := replaceTimeout, replaceAnswerWait
	replaceTimeout, replaceAnswerWait = replace, answer
	t.Cleanup(func() { replaceTimeout, replaceAnswerWait = oldR, oldA })
}

// The root defers the ReplaceChild past its deadline but answers within
// the mover's wait for the answer: it refuses it (late), the outcome is
// known, and the old instance resumes with its state, not restarted.
func TestMoveChildReplaceAnsweredLate(t *testing.T) {
	shorten(t, 300*time.Millisecond, 10*time.Second)
	l := newLateReplace(t, "")
	go func() {
		deadline := <-l.replaceSentAt
		<-time.After(time.Until(deadline) + 100*time.Millisecond) // past the deadline, well before the answer wait's end
		l.open()
	}()
	r := moveCall(t, l.a, gateway.MoveChild{App: "store", Child: "t1", To: l.to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "did not take the new instance") {
		t.Fatalf("move: %v", r.Err())
	}
	rootSpawnHook.Store(nil)
	if n := inc(t, l.a.sys, l.child.ref); n != l.before+1 {
		t.Errorf("the old instance counts %d after the move, want %d (resumed with its state)", n, l.before+1)
	}
	kids, err := placed(l.a, "store")
	if err != nil {
		t.Fatal(err)
	}
	if kids["t1"].ref != l.child.ref {
		t.Errorf("the root runs t1 as %v, want the old instance %v", kids["t1"].ref, l.child.ref)
	}
	if l.alive(l.newRef) {
		t.Errorf("the new instance %v runs on", l.newRef)
	}
}

// A move whose ReplaceChild the root defers past the mover's wait (also
// for its answer): the outcome is unknown, so both instances are killed,
// and the root, once it comes to the request, refuses it (past its
// deadline) and restarts the child afresh. The old instance must not run
// on, resumed, beside the root's; the reply says what happened to each.
func TestMoveChildReplaceUnanswered(t *testing.T) {
	shorten(t, 300*time.Millisecond, 300*time.Millisecond)
	l := newLateReplace(t, "")
	r := moveCall(t, l.a, gateway.MoveChild{App: "store", Child: "t1", To: l.to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "the old instance on "+l.child.node+" was killed") ||
		!strings.Contains(r.Result.Msg, "the new instance on "+l.to+" was killed") || !strings.Contains(r.Result.Msg, "restarts the child afresh") {
		t.Errorf("move: %v", r.Err())
	}
	rootSpawnHook.Store(nil)
	l.open()
	// The root comes to the deferred request (before this listing, asked
	// after it) and runs t1: no other instance of t1 runs beside it.
	var now placedChild
	eventually(t, 30*time.Second, "t1 running", func() bool {
		kids, err := placed(l.a, "store")
		if err != nil {
			return false
		}
		k, ok := kids["t1"]
		now = k
		return ok
	})
	if now.ref != l.child.ref && l.alive(l.child.ref) {
		t.Errorf("the old instance %v runs on beside the root's t1 %v", l.child.ref, now.ref)
	}
	if now.ref != l.newRef && l.alive(l.newRef) {
		t.Errorf("the new instance %v runs on beside the root's t1 %v", l.newRef, now.ref)
	}
	if now.ref == l.child.ref || now.ref == l.newRef {
		t.Errorf("the root runs %v, not t1 afresh", now.ref)
	}
}

// The same for a temporary child: its root does not restart it, and the
// reply says it is gone rather than restarted.
func TestMoveChildReplaceUnansweredTemporary(t *testing.T) {
	shorten(t, 300*time.Millisecond, 300*time.Millisecond)
	l := newLateReplace(t, "temporary")
	r := moveCall(t, l.a, gateway.MoveChild{App: "store", Child: "t1", To: l.to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "temporary") || strings.Contains(r.Result.Msg, "restarts the child") {
		t.Errorf("move: %v", r.Err())
	}
	rootSpawnHook.Store(nil)
	l.open()
	eventually(t, 30*time.Second, "t2 back and t1 gone", func() bool {
		kids, err := placed(l.a, "store")
		_, t1 := kids["t1"]
		_, t2 := kids["t2"]
		return err == nil && t2 && !t1
	})
}

// The old instance's kill fails after the root's silence (its daemon
// slow, say): the reply says so, and the held instance is killed at its
// hold's bound rather than resumed (the root may run the new one).
func TestMoveChildReplaceUnansweredOldNotKilled(t *testing.T) {
	shorten(t, 300*time.Millisecond, 300*time.Millisecond)
	defer func(m time.Duration) { holdMax = m }(holdMax)
	holdMax = 5 * time.Second
	moveKillOldHook = func() error { return errors.New("test: no answer") }
	defer func() { moveKillOldHook = nil }()
	l := newLateReplace(t, "")
	r := moveCall(t, l.a, gateway.MoveChild{App: "store", Child: "t1", To: l.to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "the old instance on "+l.child.node+" was not killed") ||
		!strings.Contains(r.Result.Msg, "killed at its hold's bound") {
		t.Errorf("move: %v", r.Err())
	}
	rootSpawnHook.Store(nil)
	l.open()
	if !l.alive(l.child.ref) {
		t.Fatal("the old instance is not alive before its hold's bound: the test does not test it")
	}
	eventually(t, holdMax+10*time.Second, "the held old instance killed at its bound", func() bool {
		return !l.alive(l.child.ref)
	})
}

// busyQuote is the refusal past maxMoveCalls as docs/upgrades.md quotes it.
const busyQuote = "running 4 moves, evacuations or drains"

// A gateway runs at most maxMoveCalls drains (and moves) at once: the
// next is refused with AppRetry rather than started beside them.
func TestDrainCallsBounded(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	d := start(t, cfg)
	eventually(t, 20*time.Second, "the registry answers", func() bool {
		return appCall(t, d, gateway.ListApps{}).(gateway.AppList).Result.Code == gateway.AppOK
	})
	in, gate := make(chan struct{}, maxMoveCalls+1), make(chan struct{})
	drainListHook = func(*gateway.AppList) {
		in <- struct{}{}
		<-gate
	}
	var closeGate sync.Once
	open := func() { closeGate.Do(func() { close(gate) }) }
	defer func() { open(); drainListHook = nil }()
	drain := func() gateway.DrainResult {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := d.sys.Ask(ctx, d.Gateway().Ref(), gateway.Drain{})
		if err != nil {
			t.Error(err)
			return gateway.DrainResult{}
		}
		return v.(gateway.DrainResult)
	}
	done := make(chan gateway.DrainResult, maxMoveCalls)
	for range maxMoveCalls {
		go func() { done <- drain() }()
	}
	for i := range maxMoveCalls {
		select {
		case <-in:
		case <-time.After(20 * time.Second):
			t.Fatalf("%d drains of %d under way", i, maxMoveCalls)
		}
	}
	extra := make(chan gateway.DrainResult, 1)
	go func() { extra <- drain() }()
	select {
	case r := <-extra:
		if r.Result.Code != gateway.AppRetry || !strings.Contains(r.Result.Msg, busyQuote) {
			t.Errorf("drain past the bound: %+v, want AppRetry, %q", r.Result, busyQuote)
		}
	case <-in:
		t.Error("a drain past the bound was started")
	case <-time.After(20 * time.Second):
		t.Error("a drain past the bound got no answer")
	}
	// A move past the bound is refused in the same words (the docs quote
	// them).
	mctx, mcancel := context.WithTimeout(context.Background(), 20*time.Second)
	v, err := d.sys.Ask(mctx, d.Gateway().Ref(), gateway.MoveChild{App: "shop", Child: "c"})
	mcancel()
	if r, _ := v.(gateway.MoveResult); err != nil || r.Result.Code != gateway.AppRetry || !strings.Contains(r.Result.Msg, busyQuote) {
		t.Errorf("move past the bound: %+v, %v; want AppRetry, %q", v, err, busyQuote)
	}
	open()
	for range maxMoveCalls {
		if r := <-done; r.Result.Code != gateway.AppOK {
			t.Errorf("drain within the bound: %+v", r.Result)
		}
	}
}

// The new instance's kill fails after the root's silence: the root may
// have taken it, so the reply does not say that the root restarts the
// child afresh.
func TestMoveChildReplaceUnansweredNewNotKilled(t *testing.T) {
	shorten(t, 300*time.Millisecond, 300*time.Millisecond)
	moveKillNewHook = func() error { return errors.New("test: no answer") }
	defer func() { moveKillNewHook = nil }()
	l := newLateReplace(t, "")
	r := moveCall(t, l.a, gateway.MoveChild{App: "store", Child: "t1", To: l.to})
	if !errors.Is(r.Err(), gateway.ErrMoveFailed) || !strings.Contains(r.Result.Msg, "the new instance on "+l.to+" was not killed") ||
		strings.Contains(r.Result.Msg, "; the root restarts the child afresh") || !strings.Contains(r.Result.Msg, "if the root took the new instance") {
		t.Errorf("move: %v", r.Err())
	}
}
