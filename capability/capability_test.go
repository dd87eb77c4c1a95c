package capability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

func TestAllowedPassesRejectedStops(t *testing.T) {
	sys := newSys(t, 2)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target, Allow[get](), Allow[put](), Allow[int]())
	fr := f.Ref()
	if fr == target || fr.IsZero() {
		t.Fatalf("facet ref %v", fr)
	}

	if _, err := sys.Ask(ctx, fr, put{"a", "1"}); err != nil {
		t.Fatalf("put through facet: %v", err)
	}
	if v, err := sys.Ask(ctx, fr, get{"a"}); err != nil || v != "1" {
		t.Fatalf("get through facet = %v, %v", v, err)
	}
	// The target's own error comes back unchanged.
	if _, err := sys.Ask(ctx, fr, get{"nope"}); !errors.Is(err, errNoKey) {
		t.Fatalf("get missing key through facet: %v, want errNoKey", err)
	}
	// A type the facet does not admit never reaches the target.
	_, err := sys.Ask(ctx, fr, del{"a"})
	if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "capability.del") {
		t.Fatalf("del through facet: %v, want ErrNotPermitted naming the type", err)
	}
	if err := sys.Send(fr, del{"a"}); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(ctx, fr, get{"a"}); err != nil || v != "1" {
		t.Fatalf("after rejected deletes: get = %v, %v", v, err)
	}
	// The target saw put, get, get, get and this count: 5.
	if v, err := sys.Ask(ctx, fr, 0); err != nil || v != 5 {
		t.Fatalf("target saw %v messages (%v), want 5", v, err)
	}
	// The facet is still alive and usable after rejections.
	if f.Revoked() {
		t.Fatal("Revoked before Revoke")
	}
}

func TestNoRulesAdmitsNothing(t *testing.T) {
	sys := newSys(t, 1)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target)
	for _, m := range []any{get{"a"}, put{"a", "b"}, 0, "x", nil} {
		if _, err := sys.Ask(ctx, f.Ref(), m); !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("%#v through an empty facet: %v", m, err)
		}
	}
	if v, err := sys.Ask(ctx, target, 0); err != nil || v != 1 {
		t.Fatalf("target saw %v messages (%v), want only this one", v, err)
	}
}

func TestAllowIfChecksContents(t *testing.T) {
	sys := newSys(t, 1)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target,
		AllowIf(func(m get) bool { return strings.HasPrefix(m.key, "pub/") }),
		AllowIf(func(m put) bool {
			if m.key == "panic" {
				panic("bad rule")
			}
			return strings.HasPrefix(m.key, "pub/")
		}))
	if _, err := sys.Ask(ctx, target, put{"secret", "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Ask(ctx, f.Ref(), put{"pub/a", "1"}); err != nil {
		t.Fatalf("admitted put: %v", err)
	}
	if v, err := sys.Ask(ctx, f.Ref(), get{"pub/a"}); err != nil || v != "1" {
		t.Fatalf("admitted get = %v, %v", v, err)
	}
	if _, err := sys.Ask(ctx, f.Ref(), get{"secret"}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("get outside the prefix: %v", err)
	}
	// A panicking rule fails closed and does not crash the facet.
	_, err := sys.Ask(ctx, f.Ref(), put{"panic", "x"})
	if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "bad rule") {
		t.Fatalf("panicking rule: %v", err)
	}
	if v, err := sys.Ask(ctx, f.Ref(), get{"pub/a"}); err != nil || v != "1" {
		t.Fatalf("after a panicking rule: %v, %v", v, err)
	}
}

func TestAllowInterfaceType(t *testing.T) {
	sys := newSys(t, 1)
	ctx := ctxT(t)
	echo := spawn(t, sys, func(c *actor.Context, msg any) (any, error) { return fmt.Sprint(msg), nil })
	f := mustFacet(t, sys, echo, Allow[fmt.Stringer]())
	if v, err := sys.Ask(ctx, f.Ref(), time.Second); err != nil || v != "1s" {
		t.Fatalf("Stringer through facet = %v, %v", v, err)
	}
	if _, err := sys.Ask(ctx, f.Ref(), 7); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("int through Stringer facet: %v", err)
	}
}

func TestZeroTarget(t *testing.T) {
	sys := newSys(t, 1)
	if _, err := Spawn(ctxT(t), sys, actor.Ref{}, Allow[get]()); !errors.Is(err, actor.ErrInvalidRef) {
		t.Fatalf("Spawn(zero) = %v, want ErrInvalidRef", err)
	}
	d := driver(t, sys, 0)
	r := do(t, sys, d, func(c *actor.Context, done func(any, error)) {
		_, err := New(c, actor.Ref{})
		done(nil, err)
	})
	if !errors.Is(r.err, actor.ErrInvalidRef) {
		t.Fatalf("New(zero) = %v, want ErrInvalidRef", r.err)
	}
	r = do(t, sys, d, func(c *actor.Context, done func(any, error)) {
		NewAsync(c, actor.Ref{}).Then(func(_ *actor.Context, v any, err error) { done(v, err) })
	})
	if !errors.Is(r.err, actor.ErrInvalidRef) {
		t.Fatalf("NewAsync(zero) = %v, want ErrInvalidRef", r.err)
	}
}

// Revoking from a plain goroutine while the holder runs on another loop: the
// holder's next ask fails exactly like one to a dead actor, and the facet
// actor is gone.
func TestRevokeFromAnotherLoop(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	holder := driver(t, sys, 1)
	base := actors(sys)
	f := mustFacet(t, sys, target, Allow[get](), Allow[put]())
	if got := actors(sys); got != base+1 {
		t.Fatalf("a facet costs %d actors, want 1", got-base)
	}
	down := watch(t, sys, f.Ref())
	if r := askFrom(t, sys, holder, f.Ref(), put{"k", "v"}, wait); r.err != nil {
		t.Fatalf("ask before revoke: %v", r.err)
	}

	f.Revoke()
	f.Revoke() // twice is fine
	if !f.Revoked() {
		t.Fatal("Revoked() = false after Revoke")
	}
	r := askFrom(t, sys, holder, f.Ref(), get{"k"}, wait)
	if !errors.Is(r.err, actor.ErrDead) {
		t.Fatalf("ask after revoke: %v, %v; want ErrDead", r.v, r.err)
	}
	if d := awaitDown(t, down); !errors.Is(d.Reason, ErrRevoked) {
		t.Fatalf("facet Down reason %v, want ErrRevoked", d.Reason)
	}
	// Dead now in every way: asks, calls, monitors; the target lives on.
	r = askFrom(t, sys, holder, f.Ref(), get{"k"}, wait)
	if !errors.Is(r.err, actor.ErrDead) {
		t.Fatalf("ask after stop: %v", r.err)
	}
	if d := awaitDown(t, watch(t, sys, f.Ref())); !errors.Is(d.Reason, actor.ErrDead) {
		t.Fatalf("monitor after revoke: %v, want ErrDead", d.Reason)
	}
	if v, err := sys.Ask(ctxT(t), target, get{"k"}); err != nil || v != "v" {
		t.Fatalf("target after revoke: %v, %v", v, err)
	}
	if got := actors(sys); got != base+2 { // the two watchers
		t.Fatalf("%d actors after revoke, want %d", got, base+2)
	}
	f.Revoke() // after the facet stopped: still fine
}

// A grantor actor makes a facet with New, hands it to a holder, and revokes
// it from its own handler; the holder's asks then fail as dead.
func TestRevokeFromActor(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 1)
	grantor := driver(t, sys, 0)
	holder := driver(t, sys, 1)
	var f *Facet
	do(t, sys, grantor, func(c *actor.Context, done func(any, error)) {
		var err error
		f, err = New(c, target, Allow[put]())
		done(nil, err)
	})
	if f.Ref().Loop() != 0 {
		t.Fatalf("New placed the facet on loop %d, want the caller's 0", f.Ref().Loop())
	}
	down := watch(t, sys, f.Ref())
	if r := askFrom(t, sys, holder, f.Ref(), put{"a", "b"}, wait); r.err != nil {
		t.Fatal(r.err)
	}
	do(t, sys, grantor, func(c *actor.Context, done func(any, error)) { f.Revoke(); done(nil, nil) })
	if r := askFrom(t, sys, holder, f.Ref(), put{"a", "c"}, wait); !errors.Is(r.err, actor.ErrDead) {
		t.Fatalf("ask after revoke: %v", r.err)
	}
	awaitDown(t, down)
	if v, err := sys.Ask(ctxT(t), target, get{"a"}); err != nil || v != "b" {
		t.Fatalf("a = %v, %v; the put after revoke must not have passed", v, err)
	}
}

// Revoke right after the facet starts, before it has armed its wake-up,
// and with nobody messaging it: it still stops.
func TestRevokeAtOnceStops(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	base := actors(sys)
	for i := 0; i < 50; i++ {
		f := mustFacet(t, sys, target, Allow[get]())
		down := watch(t, sys, f.Ref())
		f.Revoke()
		if d := awaitDown(t, down); !errors.Is(d.Reason, ErrRevoked) {
			t.Fatalf("Down reason %v", d.Reason)
		}
	}
	if got := actors(sys); got != base+50 { // the watchers
		t.Fatalf("%d actors left, want %d", got, base+50)
	}
}

// Revoke races with asks from several goroutines: every ask either passes
// (it was forwarded before the revocation) or fails as dead; none hangs and
// nothing passes after Revoke has returned.
func TestRevokeConcurrentWithAsks(t *testing.T) {
	sys := newSys(t, 4)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target, Allow[put](), Allow[get]())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := sys.Ask(ctx, f.Ref(), put{fmt.Sprint(g), fmt.Sprint(i)})
				if errors.Is(err, actor.ErrDead) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		go f.Revoke()
	}
	f.Revoke()
	// Nothing passes once Revoke has returned.
	if _, err := sys.Ask(ctx, f.Ref(), put{"after", "x"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask after revoke: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ask during revoke: %v", err)
	}
	if _, err := sys.Ask(ctx, target, get{"after"}); !errors.Is(err, errNoKey) {
		t.Fatalf("a put after Revoke reached the target: %v", err)
	}
}

func TestTargetStopped(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	base := actors(sys)
	f := mustFacet(t, sys, target, Allow[get]())
	down := watch(t, sys, f.Ref())
	stopper := driver(t, sys, 1)
	do(t, sys, stopper, func(c *actor.Context, done func(any, error)) { done(nil, c.Stop(target, nil)) })
	if d := awaitDown(t, down); d.Reason != nil {
		t.Fatalf("facet of a normally stopped target: Down reason %v, want nil", d.Reason)
	}
	if _, err := sys.Ask(ctxT(t), f.Ref(), get{"a"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("ask after target stop: %v", err)
	}
	if got := actors(sys); got != base+1 { // target and facet gone; watcher and stopper remain
		t.Fatalf("%d actors, want %d", got, base+1)
	}
	f.Revoke() // revoking a dead facet is fine
}

func TestTargetCrashed(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target, Allow[boom](), Allow[get]())
	down := watch(t, sys, f.Ref())
	holder := driver(t, sys, 1)
	r := askFrom(t, sys, holder, f.Ref(), boom{}, wait)
	var ce *actor.CrashError
	if !errors.Is(r.err, actor.ErrCrashed) || !errors.As(r.err, &ce) || ce.Value != "boom" {
		t.Fatalf("crash through facet: %v, want the target's *CrashError", r.err)
	}
	if d := awaitDown(t, down); !errors.Is(d.Reason, ErrTargetDown) || errors.Is(d.Reason, actor.ErrCrashed) {
		t.Fatalf("Down reason %v, want ErrTargetDown without the crash", d.Reason)
	}
	if r := askFrom(t, sys, holder, f.Ref(), get{"a"}, wait); !errors.Is(r.err, actor.ErrDead) {
		t.Fatalf("ask after target crash: %v", r.err)
	}
}

func TestFacetOfDeadTarget(t *testing.T) {
	sys := newSys(t, 1)
	target := spawnStore(t, sys, 0)
	d := driver(t, sys, 0)
	do(t, sys, d, func(c *actor.Context, done func(any, error)) { done(nil, c.Stop(target, nil)) })
	f := mustFacet(t, sys, target, Allow[get]())
	if dn := awaitDown(t, watch(t, sys, f.Ref())); !errors.Is(dn.Reason, ErrTargetDown) && !errors.Is(dn.Reason, actor.ErrDead) {
		t.Fatalf("Down reason %v", dn.Reason)
	}
}

func TestAskTimeoutThroughFacet(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	holder := driver(t, sys, 1)

	// The holder's deadline applies through the facet.
	f := mustFacet(t, sys, target, Allow[stall](), Allow[later]())
	start := time.Now()
	r := askFrom(t, sys, holder, f.Ref(), stall{}, 50*time.Millisecond)
	if !errors.Is(r.err, actor.ErrTimeout) {
		t.Fatalf("stalled ask through facet: %v, want ErrTimeout", r.err)
	}
	if el := time.Since(start); el > wait/2 {
		t.Fatalf("timeout took %v", el)
	}
	// A target that defers its reply is answered through the facet.
	if r := askFrom(t, sys, holder, f.Ref(), later{"ok"}, wait); r.err != nil || r.v != "ok" {
		t.Fatalf("deferred reply through facet = %v, %v", r.v, r.err)
	}

	// The facet's own forward deadline applies to a holder without one.
	g := mustFacet(t, sys, target, Allow[stall](), ForwardTimeout(30*time.Millisecond))
	if _, err := sys.Ask(ctxT(t), g.Ref(), stall{}); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("ForwardTimeout: %v, want ErrTimeout", err)
	}
	// And a ForwardTimeout of 0 (none) leaves the holder's deadline in charge.
	h := mustFacet(t, sys, target, Allow[stall](), ForwardTimeout(-1))
	if r := askFrom(t, sys, holder, h.Ref(), stall{}, 30*time.Millisecond); !errors.Is(r.err, actor.ErrTimeout) {
		t.Fatalf("no forward deadline: %v", r.err)
	}
	h.Revoke()
	awaitDown(t, watch(t, sys, h.Ref()))
}

// Sends and asks a holder makes through one facet reach the target in order,
// for every placement and both forwarding modes.
func TestOrderingThroughFacet(t *testing.T) {
	for _, tc := range []struct {
		name         string
		holder, targ int
		opts         []Option
	}{
		{"same-loop", 0, 0, nil},
		{"cross-loop", 1, 0, nil},
		{"same-loop-sync", 0, 0, []Option{Synchronous()}},
		{"cross-loop-sync", 1, 0, []Option{Synchronous()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := newSys(t, 2)
			target := spawnStore(t, sys, tc.targ)
			f := mustFacet(t, sys, target, append(tc.opts, Allow[appendN](), Allow[logOf]())...)
			holder := driver(t, sys, tc.holder)
			const n = 2000
			r := do(t, sys, holder, func(c *actor.Context, done func(any, error)) {
				for i := 0; i < n; i++ {
					if i%100 == 50 {
						c.Ask(f.Ref(), appendN{i}) // an ask now and then, result ignored
						continue
					}
					if err := c.Send(f.Ref(), appendN{i}); err != nil {
						done(nil, err)
						return
					}
				}
				c.Ask(f.Ref(), logOf{}).Then(func(_ *actor.Context, v any, err error) { done(v, err) })
			})
			if r.err != nil {
				t.Fatal(r.err)
			}
			log := r.v.([]int)
			if len(log) != n {
				t.Fatalf("target got %d messages, want %d", len(log), n)
			}
			for i, v := range log {
				if v != i {
					t.Fatalf("message %d arrived at position %d", v, i)
				}
			}
		})
	}
}

func TestFacetOfFacet(t *testing.T) {
	sys := newSys(t, 2)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	base := actors(sys)
	inner := mustFacet(t, sys, target, Allow[get](), Allow[put]())
	outer := mustFacet(t, sys, inner.Ref(), Allow[get](), Allow[del]())
	innerDown, outerDown := watch(t, sys, inner.Ref()), watch(t, sys, outer.Ref())
	if _, err := sys.Ask(ctx, inner.Ref(), put{"k", "v"}); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(ctx, outer.Ref(), get{"k"}); err != nil || v != "v" {
		t.Fatalf("get through two facets = %v, %v", v, err)
	}
	if _, err := sys.Ask(ctx, outer.Ref(), put{"k", "w"}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("put through outer: %v", err) // outer narrows
	}
	if _, err := sys.Ask(ctx, outer.Ref(), del{"k"}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("del through outer: %v", err) // outer cannot widen inner
	}
	if v, err := sys.Ask(ctx, target, get{"k"}); err != nil || v != "v" {
		t.Fatalf("target: %v, %v", v, err)
	}
	// Revoking the inner facet kills the outer one too.
	inner.Revoke()
	if d := awaitDown(t, innerDown); !errors.Is(d.Reason, ErrRevoked) {
		t.Fatalf("inner Down %v", d.Reason)
	}
	if d := awaitDown(t, outerDown); !errors.Is(d.Reason, ErrTargetDown) {
		t.Fatalf("outer Down %v, want ErrTargetDown", d.Reason)
	}
	if _, err := sys.Ask(ctx, outer.Ref(), get{"k"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("outer after inner revoked: %v", err)
	}
	if got := actors(sys); got != base+2 { // the watchers
		t.Fatalf("%d actors, want %d", got, base+2)
	}
}

func TestFacetOfFacetRevokeOuter(t *testing.T) {
	sys := newSys(t, 1)
	ctx := ctxT(t)
	target := spawnStore(t, sys, 0)
	inner := mustFacet(t, sys, target, Allow[get](), Allow[put](), Synchronous())
	outer := mustFacet(t, sys, inner.Ref(), Allow[get](), Synchronous())
	if _, err := sys.Ask(ctx, inner.Ref(), put{"k", "v"}); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(ctx, outer.Ref(), get{"k"}); err != nil || v != "v" {
		t.Fatalf("sync chain: %v, %v", v, err)
	}
	outer.Revoke()
	if _, err := sys.Ask(ctx, outer.Ref(), get{"k"}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("outer after revoke: %v", err)
	}
	if v, err := sys.Ask(ctx, inner.Ref(), get{"k"}); err != nil || v != "v" {
		t.Fatalf("inner after outer revoked: %v, %v", v, err)
	}
}

func TestSynchronous(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target, Allow[get](), Allow[put](), Allow[boom](), Allow[stall](), Synchronous())
	holder := driver(t, sys, 0)
	// A holder on the facet's loop may Call a synchronous facet.
	r := do(t, sys, holder, func(c *actor.Context, done func(any, error)) {
		if _, err := c.Call(f.Ref(), put{"a", "1"}); err != nil {
			done(nil, err)
			return
		}
		done(c.Call(f.Ref(), get{"a"}))
	})
	if r.err != nil || r.v != "1" {
		t.Fatalf("Call through synchronous facet = %v, %v", r.v, r.err)
	}
	r = do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(c.Call(f.Ref(), get{"zz"})) })
	if !errors.Is(r.err, errNoKey) {
		t.Fatalf("target error through Call: %v", r.err)
	}
	r = do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(c.Call(f.Ref(), del{"a"})) })
	if !errors.Is(r.err, ErrNotPermitted) {
		t.Fatalf("rejected Call: %v", r.err)
	}
	// A target that defers cannot be forwarded synchronously.
	r = do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(c.Call(f.Ref(), stall{})) })
	if !errors.Is(r.err, actor.ErrDeferredCall) {
		t.Fatalf("deferring target: %v, want ErrDeferredCall", r.err)
	}
	// An asynchronous facet cannot be Called (it defers); Ask works.
	g := mustFacet(t, sys, target, Allow[get]())
	r = do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(c.Call(g.Ref(), get{"a"})) })
	if !errors.Is(r.err, actor.ErrDeferredCall) {
		t.Fatalf("Call of an async facet: %v", r.err)
	}
	// A crash through a synchronous facet.
	down := watch(t, sys, f.Ref())
	r = askFrom(t, sys, holder, f.Ref(), boom{}, wait)
	if !errors.Is(r.err, actor.ErrCrashed) {
		t.Fatalf("crash through sync facet: %v", r.err)
	}
	if d := awaitDown(t, down); !errors.Is(d.Reason, ErrTargetDown) {
		t.Fatalf("sync facet Down %v", d.Reason)
	}
}

func TestNewAsync(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 1)
	grantor := driver(t, sys, 0)
	r := do(t, sys, grantor, func(c *actor.Context, done func(any, error)) {
		NewAsync(c, target, Allow[get](), Allow[put](), Synchronous()).Then(func(_ *actor.Context, v any, err error) { done(v, err) })
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	f := r.v.(*Facet)
	if f.Ref().Loop() != 1 {
		t.Fatalf("NewAsync placed the facet on loop %d, want the target's 1", f.Ref().Loop())
	}
	ctx := ctxT(t)
	if _, err := sys.Ask(ctx, f.Ref(), put{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	if v, err := sys.Ask(ctx, f.Ref(), get{"x"}); err != nil || v != "y" {
		t.Fatalf("get = %v, %v", v, err)
	}
	f.Revoke()
	awaitDown(t, watch(t, sys, f.Ref()))
}

// A holder may stop the facet it holds (any ref allows that) but the target
// survives, and the grantor's handle stays harmless.
func TestHolderStopsFacetNotTarget(t *testing.T) {
	sys := newSys(t, 2)
	target := spawnStore(t, sys, 0)
	f := mustFacet(t, sys, target, Allow[get]())
	down := watch(t, sys, f.Ref())
	holder := driver(t, sys, 1)
	do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(nil, c.Kill(f.Ref())) })
	awaitDown(t, down)
	if _, err := sys.Ask(ctxT(t), target, 0); err != nil {
		t.Fatalf("target after its facet was killed: %v", err)
	}
	f.Revoke()
}

// A Down naming some other actor is an ordinary message to the facet.
func TestForeignDownIsForwarded(t *testing.T) {
	sys := newSys(t, 1)
	ctx := ctxT(t)
	other := spawnStore(t, sys, 0)
	target := spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
		if d, ok := msg.(actor.Down); ok && d.Ref == other {
			return "seen", nil
		}
		return nil, nil
	})
	f := mustFacet(t, sys, target, Allow[actor.Down]())
	if v, err := sys.Ask(ctx, f.Ref(), actor.Down{Ref: other}); err != nil || v != "seen" {
		t.Fatalf("foreign Down through facet = %v, %v", v, err)
	}
	if v, err := sys.Ask(ctx, other, 0); err != nil || v != 1 {
		t.Fatalf("other: %v, %v", v, err)
	}
}

func TestShutdownWithFacets(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	target, err := sys.Spawn(context.Background(), func() actor.Actor { return newStore() })
	if err != nil {
		t.Fatal(err)
	}
	var fs []*Facet
	for i := 0; i < 10; i++ {
		f, err := Spawn(context.Background(), sys, target, Allow[stall]())
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
		_ = sys.Send(f.Ref(), stall{})
	}
	if err := sys.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		f.Revoke() // after shutdown: harmless
	}
	if _, err := Spawn(context.Background(), sys, target); !errors.Is(err, actor.ErrShutdown) {
		t.Fatalf("Spawn after shutdown: %v", err)
	}
}
