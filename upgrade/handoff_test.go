package upgrade_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/upgrade"
)

// tally counts the ints it is sent: each ask is answered with the count
// after it, so a client that asks without pause sees 1, 2, 3... across a
// handoff if no message is lost, counted twice or reordered.
type tally struct {
	n     int
	fail  bool // export fails
	panic bool // export panics
}

type tallyState struct{ N int }

func (a *tally) Receive(_ *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case int:
		a.n += m
		return a.n, nil
	case string:
		return a.n, nil
	}
	return nil, nil
}

func exportTally(a *tally) (tallyState, error) {
	switch {
	case a.panic:
		panic("export boom")
	case a.fail:
		return tallyState{}, errBoom
	}
	return tallyState{N: a.n}, nil
}

// asker asks ref for +1 without pause until stop, recording each answer
// (or error) in order.
func asker(sys *actor.System, ref func() actor.Ref, stop <-chan struct{}) (done func() ([]int, []error)) {
	var got []int
	var errs []error
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			v, err := sys.Ask(ctx, ref(), 1)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			got = append(got, v.(int))
		}
	}()
	return func() ([]int, []error) { <-fin; return got, errs }
}

func checkContinuous(t *testing.T, got []int, from int) {
	t.Helper()
	for i, v := range got {
		if v != from+i {
			t.Fatalf("answer %d is %d, want %d (lost, doubled or reordered): %v", i, v, from+i, got[max(0, i-3):min(len(got), i+3)])
		}
	}
}

// TestHoldForwardUnderLoad moves a tally's state to a new actor while a
// client asks without pause: every ask is answered and the count is
// continuous (the held asks and the later ones reach the new actor in
// order, answered to the client).
func TestHoldForwardUnderLoad(t *testing.T) {
	sys := system(t, 2, newReports())
	ctx := context.Background()
	old, err := sys.Spawn(ctx, func() actor.Actor { return &tally{} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := asker(sys, func() actor.Ref { return old }, stop)
	// Let some asks through first.
	for {
		v, err := sys.Ask(ctx, old, "get")
		if err != nil {
			t.Fatal(err)
		}
		if v.(int) >= 100 {
			break
		}
	}
	h, st, err := upgrade.Hold(ctx, sys, old, exportTally, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nw, err := sys.Spawn(ctx, func() actor.Actor { return &tally{n: st.N} }, actor.OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Forward(ctx, nw, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Asks reach the new actor through the old ref for a while more.
	for {
		v, err := sys.Ask(ctx, nw, "get")
		if err != nil {
			t.Fatal(err)
		}
		if v.(int) >= st.N+100 {
			break
		}
	}
	close(stop)
	got, errs := done()
	if len(errs) > 0 {
		t.Fatalf("asks failed: %v", errs[0])
	}
	checkContinuous(t, got, 1)
	if len(got) < st.N+100 {
		t.Fatalf("%d answers, want at least %d", len(got), st.N+100)
	}
	// The old ref is a forwarder now: its instance is not a tally.
	if _, ok := inspect(t, sys, old).(*tally); ok {
		t.Fatal("the old ref still runs a tally")
	}
	if err := h.Resume(ctx); !errors.Is(err, upgrade.ErrHoldEnded) {
		t.Fatalf("Resume after Forward: %v, want ErrHoldEnded", err)
	}
}

// TestHoldResumeKeepsHeld: what arrived while held is handled by the old
// instance, in order, once resumed.
func TestHoldResumeKeepsHeld(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	old, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	_, _ = sys.Ask(ctx, old, 5)
	h, st, err := upgrade.Hold(ctx, sys, old, exportTally, upgrade.HoldOptions{})
	if err != nil || st.N != 5 {
		t.Fatalf("hold: %v %+v", err, st)
	}
	type res struct {
		v   any
		err error
	}
	out := make(chan res, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		waitHeld(t, sys, old, i) // one at a time, so that their order is known
		wg.Go(func() {
			v, err := sys.Ask(ctx, old, 1)
			out <- res{v, err}
		})
	}
	waitHeld(t, sys, old, 3)
	select {
	case r := <-out:
		t.Fatalf("an ask was answered while held: %+v", r)
	default:
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(out)
	seen := map[int]bool{}
	for r := range out {
		if r.err != nil {
			t.Fatal(r.err)
		}
		seen[r.v.(int)] = true
	}
	if !seen[6] || !seen[7] || !seen[8] {
		t.Fatalf("answers %v, want 6, 7, 8", seen)
	}
	if v, _ := sys.Ask(ctx, old, "get"); v != 8 {
		t.Fatalf("count %v, want 8", v)
	}
}

// TestHoldExportFailure: an export that fails or panics refuses the hold;
// the actor serves on, its state untouched.
func TestHoldExportFailure(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	for _, a := range []*tally{{fail: true}, {panic: true}} {
		ref, _ := sys.Spawn(ctx, func() actor.Actor { return a })
		_, _ = sys.Ask(ctx, ref, 3)
		_, _, err := upgrade.Hold(ctx, sys, ref, exportTally, upgrade.HoldOptions{})
		if !errors.Is(err, upgrade.ErrRefused) || !errors.Is(err, upgrade.ErrExport) {
			t.Fatalf("hold: %v, want ErrRefused and ErrExport", err)
		}
		if v, err := sys.Ask(ctx, ref, 1); err != nil || v != 4 {
			t.Fatalf("after a failed export: %v %v, want 4", v, err)
		}
	}
	// Not a tally: refused too.
	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &counterV1{} })
	if _, _, err := upgrade.Hold(ctx, sys, ref, exportTally, upgrade.HoldOptions{}); !errors.Is(err, upgrade.ErrWrongVersion) {
		t.Fatalf("hold of another type: %v", err)
	}
}

// TestHoldMaxResumes: a hold nobody ends is resumed at its bound.
func TestHoldMaxResumes(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	h, _, err := upgrade.Hold(ctx, sys, ref, exportTally, upgrade.HoldOptions{Max: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if v, err := sys.Ask(actx, ref, 1); err != nil || v != 1 {
		t.Fatalf("ask of a hold left alone: %v %v", v, err)
	}
	if err := h.Forward(ctx, ref, 0); !errors.Is(err, upgrade.ErrHoldEnded) {
		t.Fatalf("Forward after the bound: %v", err)
	}
}

// TestHoldMaxKillsArmed: an armed hold nobody ends is ended at its bound
// by killing the actor, never resumed (its messages held are not
// handled); a hold armed and then resumed is resumed.
func TestHoldMaxKillsArmed(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	h, _, err := upgrade.Hold(ctx, sys, ref, exportTally, upgrade.HoldOptions{Max: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ended := watchEnd(t, sys, ref)
	if err := h.Arm(ctx); err != nil {
		t.Fatalf("arm: %v", err)
	}
	actx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if v, err := sys.Ask(actx, ref, 1); err == nil {
		t.Fatalf("an armed hold's actor answered %v after its bound: resumed, not killed", v)
	}
	select {
	case <-ended:
	case <-actx.Done():
		t.Fatal("the armed hold's actor did not end at the bound")
	}
	select {
	case <-h.Done():
	case <-actx.Done():
		t.Fatal("the armed hold did not end")
	}
	if err := h.Arm(ctx); !errors.Is(err, upgrade.ErrHoldEnded) {
		t.Fatalf("Arm after the end: %v", err)
	}

	ref2, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	h2, _, err := upgrade.Hold(ctx, sys, ref2, exportTally, upgrade.HoldOptions{Max: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Arm(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h2.Resume(ctx); err != nil {
		t.Fatalf("resume of an armed hold: %v", err)
	}
	if v, err := sys.Ask(actx, ref2, 1); err != nil || v != 1 {
		t.Fatalf("ask after an armed hold's resume: %v %v", v, err)
	}
}

// TestForwarderGraceAndTargetEnd: the forwarder stops at its grace's end,
// and when its target ends; then the old ref is dead.
func TestForwarderGraceAndTargetEnd(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	for _, grace := range []time.Duration{20 * time.Millisecond, time.Hour} {
		old, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
		nw, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
		h, _, err := upgrade.Hold(ctx, sys, old, exportTally, upgrade.HoldOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ended := watchEnd(t, sys, old)
		if err := h.Forward(ctx, nw, grace); err != nil {
			t.Fatal(err)
		}
		if grace == time.Hour {
			if v, err := sys.Ask(ctx, old, 2); err != nil || v != 2 {
				t.Fatalf("forwarded ask: %v %v", v, err)
			}
			_ = sys.Stop(ctx, nw)
		}
		select {
		case <-ended:
		case <-time.After(waitFor):
			t.Fatalf("grace %v: the forwarder did not stop", grace)
		}
	}
}

// watchEnd returns a channel closed once ref ends.
func watchEnd(t *testing.T, sys *actor.System, ref actor.Ref) <-chan struct{} {
	t.Helper()
	ch := make(chan struct{})
	_, err := sys.Spawn(context.Background(), func() actor.Actor { return &endWatch{ref: ref, ch: ch} })
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

type endWatch struct {
	ref actor.Ref
	ch  chan struct{}
}

func (w *endWatch) Start(c *actor.Context) error { return c.Monitor(w.ref) }

func (w *endWatch) Receive(c *actor.Context, msg any) (any, error) {
	if d, ok := msg.(actor.Down); ok && d.Ref == w.ref {
		close(w.ch)
		return nil, c.Stop(c.Self(), nil)
	}
	return nil, nil
}

// waitHeld waits until n messages wait for ref (held), within waitFor.
func waitHeld(t *testing.T, sys *actor.System, ref actor.Ref, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for inspectStash(t, sys, ref) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages held, want %d", inspectStash(t, sys, ref), n)
		}
		time.Sleep(time.Millisecond) // polling the stash's size, with a deadline
	}
}

// inspectStash is how many messages wait for ref (held).
func inspectStash(t *testing.T, sys *actor.System, ref actor.Ref) int {
	t.Helper()
	n := 0
	dbg := seam.Debugger(sys).(interface {
		VisitActors(ctx context.Context, loop int, f func(seam.ActorInfo[actor.Ref, actor.Actor])) error
	})
	err := dbg.VisitActors(context.Background(), ref.Loop(), func(i seam.ActorInfo[actor.Ref, actor.Actor]) {
		if i.Ref == ref {
			n = i.Stashed
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHoldBounded: a held actor holds at most its loop's queue capacity;
// an ask beyond is refused with ErrQueueFull (the hold goes on), and the
// held ones are answered once resumed.
func TestHoldBounded(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, QueueCapacity: 16})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = sys.Shutdown(ctx)
	}()
	ctx := context.Background()
	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	h, _, err := upgrade.Hold(ctx, sys, ref, exportTally, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 16 {
		_ = sys.Send(ref, 1) // one-way: held
	}
	waitHeld(t, sys, ref, 16)
	actx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if _, err := sys.Ask(actx, ref, 1); !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("ask beyond the bound: %v, want ErrQueueFull", err)
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(actx, ref, "get"); err != nil || v != 16 {
		t.Fatalf("after the resume: %v %v, want the 16 held", v, err)
	}
}

// TestEndForward: EndForward stops a forwarder (its grace not passed)
// and returns once it has; what comes after finds its ref dead, and
// EndForward of an ended ref is nil.
func TestEndForward(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	old, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	nw, _ := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
	h, _, err := upgrade.Hold(ctx, sys, old, exportTally, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Forward(ctx, nw, time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(ctx, old, 2); err != nil || v != 2 {
		t.Fatalf("forwarded ask: %v %v", v, err)
	}
	ended := watchEnd(t, sys, old)
	ectx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if err := upgrade.EndForward(ectx, sys, old); err != nil {
		t.Fatalf("EndForward: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(waitFor):
		t.Fatal("the forwarder did not stop")
	}
	if _, err := sys.Ask(ctx, old, 2); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask after EndForward: %v, want ErrDead", err)
	}
	if err := upgrade.EndForward(ectx, sys, old); err != nil {
		t.Fatalf("EndForward of an ended forwarder: %v", err)
	}
}

// TestHeldDone: Held.Done closes when the hold ends by itself, at its
// bound or at the actor's end, and on Resume; a record of holds forgets
// them by it.
func TestHeldDone(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	closed := func(h *upgrade.Held) bool {
		select {
		case <-h.Done():
			return true
		case <-time.After(waitFor):
			return false
		}
	}
	spawn := func() actor.Ref {
		r, err := sys.Spawn(ctx, func() actor.Actor { return &tally{} })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// The bound.
	h, _, err := upgrade.Hold(ctx, sys, spawn(), exportTally, upgrade.HoldOptions{Max: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !closed(h) {
		t.Fatal("Done not closed at the hold's bound")
	}
	// The actor's end, well before the bound.
	r := spawn()
	h, _, err = upgrade.Hold(ctx, sys, r, exportTally, upgrade.HoldOptions{Max: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Kill(ctx, r); err != nil {
		t.Fatal(err)
	}
	if !closed(h) {
		t.Fatal("Done not closed at the held actor's end")
	}
	// Resume.
	h, _, err = upgrade.Hold(ctx, sys, spawn(), exportTally, upgrade.HoldOptions{Max: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed(h) {
		t.Fatal("Done not closed after Resume")
	}
}

// tick is a ticker's periodic message, named by the instance that set it.
type tick struct{ by string }

// ticker sets a periodic tick in Start and records the ticks it gets.
type ticker struct {
	name string
	mine atomic.Int64 // its own ticks
	odd  atomic.Int64 // ticks another instance set
}

func (a *ticker) Start(c *actor.Context) error {
	c.Every(5*time.Millisecond, tick{a.name})
	return nil
}

func (a *ticker) Receive(_ *actor.Context, msg any) (any, error) {
	if m, ok := msg.(tick); ok {
		if m.by == a.name {
			a.mine.Add(1)
		} else {
			a.odd.Add(1)
		}
	}
	return nil, nil
}

// TestForwardLeavesTimersBehind: the old instance's timers do not cross
// to the new one, neither the ticks they fired while it was held nor
// those they would fire later: the new instance gets its own only.
func TestForwardLeavesTimersBehind(t *testing.T) {
	sys := system(t, 2, newReports())
	ctx := context.Background()
	old, err := sys.Spawn(ctx, func() actor.Actor { return &ticker{name: "old"} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := upgrade.Hold(ctx, sys, old, func(*ticker) (int, error) { return 0, nil }, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitHeld(t, sys, old, 2) // ticks fired while held
	nt := &ticker{name: "new"}
	nw, err := sys.Spawn(ctx, func() actor.Actor { return nt }, actor.OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Forward(ctx, nw, time.Hour); err != nil {
		t.Fatal(err)
	}
	// 40 of its own ticks: 200 ms in which the old timer fired 40 times.
	deadline := time.Now().Add(waitFor)
	for nt.mine.Load() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("the new instance got %d of its own ticks", nt.mine.Load())
		}
		time.Sleep(time.Millisecond) // polling its count, with a deadline
	}
	if n := nt.odd.Load(); n > 0 {
		t.Fatalf("the new instance got %d ticks of the old one's timer", n)
	}
}

// afterFuncer sets an AfterFunc in Start; fired is closed when it runs.
type afterFuncer struct{ fired chan struct{} }

func (a *afterFuncer) Start(c *actor.Context) error {
	c.AfterFunc(100*time.Millisecond, func(*actor.Context) { close(a.fired) })
	return nil
}

func (a *afterFuncer) Receive(*actor.Context, any) (any, error) { return nil, nil }

// TestResumeKeepsAfterFunc: a hold that is resumed (a move that failed:
// nothing happened) keeps the instance, and so its AfterFunc callbacks.
func TestResumeKeepsAfterFunc(t *testing.T) {
	sys := system(t, 1, newReports())
	ctx := context.Background()
	fired := make(chan struct{})
	ref, err := sys.Spawn(ctx, func() actor.Actor { return &afterFuncer{fired: fired} })
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := upgrade.Hold(ctx, sys, ref, func(*afterFuncer) (int, error) { return 0, nil }, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
	case <-time.After(waitFor):
		t.Fatal("the resumed instance's AfterFunc never ran")
	}
}

// trapper traps exits and links to link in Start; it counts as tally.
type trapper struct {
	tally
	link actor.Ref
}

func (a *trapper) Start(c *actor.Context) error {
	c.TrapExits(true)
	return c.Link(a.link)
}

// TestForwarderDropsOldNotices: a trapped Exited of a link the old
// instance had, held among its messages, is dropped by the forwarder (the
// link does not cross), and the messages held after it still reach the
// new instance: the forwarder does not stop at it.
func TestForwarderDropsOldNotices(t *testing.T) {
	sys := system(t, 2, newReports())
	ctx := context.Background()
	linked, err := sys.Spawn(ctx, func() actor.Actor { return &tally{} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	old, err := sys.Spawn(ctx, func() actor.Actor { return &trapper{link: linked} }, actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	h, st, err := upgrade.Hold(ctx, sys, old, func(a *trapper) (tallyState, error) { return tallyState{N: a.n}, nil }, upgrade.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Kill(ctx, linked); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, sys, old, 1) // the Exited
	if err := sys.Send(old, 5); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, sys, old, 2)
	seen := make(chan any, 8)
	nw, err := sys.Spawn(ctx, func() actor.Actor { return &noticeTally{tally: tally{n: st.N}, seen: seen} }, actor.OnLoop(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Forward(ctx, nw, time.Hour); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if v, err := sys.Ask(actx, old, 1); err != nil || v != 6 {
		t.Fatalf("an ask through the forwarder after the held Exited: %v %v, want 6", v, err)
	}
	// The Exited was held before the messages the new instance got: had
	// it been forwarded, it would have come first.
	select {
	case m := <-seen:
		t.Fatalf("the new instance got %T, a notice of the old one's link", m)
	default:
	}
}

// noticeTally is a tally that reports every message it does not count.
type noticeTally struct {
	tally
	seen chan<- any
}

func (a *noticeTally) Receive(c *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case int, string:
		return a.tally.Receive(c, msg)
	}
	select {
	case a.seen <- msg:
	default:
	}
	return nil, nil
}
