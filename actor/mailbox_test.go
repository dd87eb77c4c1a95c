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
	"unsafe"

	"github.com/actord/actord/internal/seam"
)

// Tests of the mailbox: every operation on a Ref goes through the Ref's
// mailbox, the loop's for a local actor and the peer's for a remote one.
// The remote side is exercised here with a fake nodePeer; package remote tests
// the real one.

// tsPeer is a nodePeer that records its calls.
type tsPeer struct {
	mu    sync.Mutex
	calls []string
	epoch uint64
	asks  chan [2]uint32 // (pidx, pgen) of each Ask
	reply chan any       // values of each Reply
}

func newTSPeer() *tsPeer {
	return &tsPeer{epoch: 7, asks: make(chan [2]uint32, 4), reply: make(chan any, 4)}
}

func (p *tsPeer) record(format string, args ...any) {
	p.mu.Lock()
	p.calls = append(p.calls, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *tsPeer) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

func (p *tsPeer) Send(to, from Ref, msg any) error {
	p.record("Send %v %v %v", to, from, msg)
	return nil
}

func (p *tsPeer) SendMany(to, from Ref, msgs []any) (int, error) {
	p.record("SendMany %v %v %v", to, from, msgs)
	return len(msgs), nil
}

func (p *tsPeer) Ask(to, from Ref, msg any, pidx, pgen uint32) (uint64, error) {
	p.record("Ask %v %v %v", to, from, msg)
	p.asks <- [2]uint32{pidx, pgen}
	return p.epoch, nil
}

func (p *tsPeer) Lifecycle(to, from Ref, req seam.LifecycleRequest, pidx, pgen uint32) (uint64, error) {
	p.record("Lifecycle %v %v %d %v %v", to, from, req.Op, req.Reason, req.Timeout)
	p.asks <- [2]uint32{pidx, pgen}
	return p.epoch, nil
}

func (p *tsPeer) LifecycleWait(_ context.Context, to Ref, req seam.LifecycleRequest) (any, error) {
	p.record("LifecycleWait %v %d %v %v", to, req.Op, req.Reason, req.Timeout)
	return nil, nil
}

func (p *tsPeer) Reply(to Ref, pidx, pgen uint32, v any, err error) {
	p.record("Reply %v %d %d %v %v", to, pidx, pgen, v, err)
	p.reply <- v
}

func (p *tsPeer) AwaitRoom(func()) bool { p.record("AwaitRoom"); return false }

func (p *tsPeer) AskWait(_ context.Context, to Ref, msg any) (any, error) {
	p.record("AskWait %v %v", to, msg)
	return "waited", nil
}

func (p *tsPeer) Monitor(target, watcher Ref) error {
	p.record("Monitor %v %v", target, watcher)
	return nil
}

func (p *tsPeer) Demonitor(target, watcher Ref) error {
	p.record("Demonitor %v %v", target, watcher)
	return nil
}

func (p *tsPeer) Stop(target Ref, reason error) error {
	p.record("Stop %v %v", target, reason)
	return nil
}

func (p *tsPeer) Link(target, from Ref) (uint64, error) {
	p.record("Link %v %v", target, from)
	return p.epoch, nil
}

func (p *tsPeer) Unlink(target, from Ref) error {
	p.record("Unlink %v %v", target, from)
	return nil
}

func (p *tsPeer) Exit(to, from Ref, reason error, link bool) error {
	p.record("Exit %v %v %v %v", to, from, reason, link)
	return nil
}

func (p *tsPeer) Node() string { return "far" }

// TestRefIsThreeWords: a Ref stays as small as it was with two pointers
// (one interface, slot and generation), and comparable.
func TestRefIsThreeWords(t *testing.T) {
	if got, want := unsafe.Sizeof(Ref{}), 3*unsafe.Sizeof(uintptr(0)); got > want {
		t.Fatalf("Ref is %d bytes, want at most %d", got, want)
	}
	s := tsSystem(t, Config{Loops: 1})
	p := newTSPeer()
	id := WireID{Loop: 2, Slot: 5, Gen: 1}
	a, b := s.wire.RemoteRef(p, id), s.wire.RemoteRef(p, id)
	if a != b || !a.IsRemote() {
		t.Fatalf("two refs of one remote actor: %v == %v is false, or not remote", a, b)
	}
	m := map[Ref]int{a: 1}
	if m[b] != 1 {
		t.Fatal("a remote ref is not usable as a map key")
	}
	if a.String() != "<far/2.5.1>" || a.Loop() != 2 {
		t.Fatalf("String %q Loop %d", a.String(), a.Loop())
	}
	l := tsSpawn(t, s, tsEcho())
	if l.IsRemote() || l == a || l.Loop() != 0 {
		t.Fatalf("local ref %v: remote %v, loop %d", l, l.IsRemote(), l.Loop())
	}
	var zero Ref
	if zero.String() != "<nil>" || zero.Loop() != -1 || zero.IsRemote() || !zero.IsZero() {
		t.Fatalf("zero ref: %q %d %v %v", zero.String(), zero.Loop(), zero.IsRemote(), zero.IsZero())
	}
}

// TestRemoteRefOperationsReachThePeer: each operation of a Context and a
// System on a remote ref is one call of its Peer, with the refs and values
// given; the operations the remote layer does not carry fail with
// ErrNotLocal (the synchronous ones) or ErrRemoteUnsupported.
func TestRemoteRefOperationsReachThePeer(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	p := newTSPeer()
	far := s.wire.RemoteRef(p, WireID{Loop: 1, Slot: 9, Gen: 3})
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	do := func(f func(c *Context) error) error {
		_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, f(c) })
		return err
	}
	expect := func(what string, want ...string) {
		t.Helper()
		got := p.take()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: peer calls %q, want %q", what, got, want)
		}
	}
	boom := errors.New("boom")
	steps := []struct {
		what string
		op   func(c *Context) error
		want string
	}{
		{"Send", func(c *Context) error { return c.Send(far, "m") }, fmt.Sprintf("Send %v %v m", far, drv)},
		{"SendMany", func(c *Context) error {
			_, err := c.SendMany(far, []any{"a", "b"})
			return err
		}, fmt.Sprintf("SendMany %v %v [a b]", far, drv)},
		{"Stop", func(c *Context) error { return c.Stop(far, boom) }, fmt.Sprintf("Stop %v boom", far)},
		{"Monitor", func(c *Context) error { return c.Monitor(far) }, fmt.Sprintf("Monitor %v %v", far, drv)},
		{"Demonitor", func(c *Context) error { return c.Demonitor(far) }, fmt.Sprintf("Demonitor %v %v", far, drv)},
		{"Link", func(c *Context) error { return c.Link(far) }, fmt.Sprintf("Link %v %v", far, drv)},
		{"Link twice", func(c *Context) error { return c.Link(far) }, ""},
		{"Unlink", func(c *Context) error { return c.Unlink(far) }, fmt.Sprintf("Unlink %v %v", far, drv)},
		{"Unlink twice", func(c *Context) error { return c.Unlink(far) }, ""},
		{"Exit", func(c *Context) error { return c.Exit(far, boom) }, fmt.Sprintf("Exit %v %v boom false", far, drv)},
		{"Exit killed", func(c *Context) error { return c.Exit(far, fmt.Errorf("w: %w", ErrKilled)) },
			fmt.Sprintf("Exit %v %v %v false", far, drv, ErrKilled)},
		{"Kill", func(c *Context) error { return c.Kill(far) }, fmt.Sprintf("Exit %v %v %v false", far, drv, ErrKilled)},
	}
	for _, st := range steps {
		if err := do(st.op); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if st.want == "" {
			expect(st.what)
		} else {
			expect(st.what, st.want)
		}
	}

	// Ask: the Peer gets the promise's correlation; wire.Settle answers it.
	got := make(chan any, 1)
	if err := do(func(c *Context) error {
		c.AskTimeout(far, "q", 0).Then(func(_ *Context, v any, err error) {
			if err != nil {
				v = err
			}
			got <- v
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	corr := tsRecv(t, p.asks, "the Ask")
	expect("Ask", fmt.Sprintf("Ask %v %v q", far, drv))
	s.wire.Settle(0, corr[0], corr[1], "answer", nil)
	if v := tsRecv(t, got, "the answer"); v != "answer" {
		t.Fatalf("ask settled with %v", v)
	}

	// A lost connection fails the asks that went out on it.
	if err := do(func(c *Context) error {
		c.AskTimeout(far, "q2", 0).Then(func(_ *Context, v any, err error) { got <- err })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tsRecv(t, p.asks, "the second Ask")
	p.take()
	s.wire.FailPeer(p, p.epoch, boom)
	if v := tsRecv(t, got, "the failure"); v != boom {
		t.Fatalf("ask failed with %v, want %v", v, boom)
	}

	// What the remote layer does not carry.
	refused := []struct {
		what string
		op   func(c *Context) error
		want error
	}{
		{"Call", func(c *Context) error { _, err := c.Call(far, "m"); return err }, ErrNotLocal},
		{"Restart", func(c *Context) error { return c.Restart(far) }, ErrNotLocal},
		{"Suspend", func(c *Context) error { return c.Suspend(far, nil) }, ErrNotLocal},
	}
	for _, r := range refused {
		if err := do(r.op); !errors.Is(err, r.want) {
			t.Fatalf("%s of a remote ref: %v, want %v", r.what, err, r.want)
		}
	}
	// Acknowledged lifecycle requests go to the peer, and the answer the
	// transport settles is the promise's outcome.
	for _, tc := range []struct {
		name string
		ack  func(c *Context) Promise
		want string
	}{
		{"StopAsync", func(c *Context) Promise { return c.StopAsync(far, boom, time.Second) }, fmt.Sprintf("Lifecycle %v %v 1 boom 1s", far, drv)},
		{"SuspendAsync", func(c *Context) Promise { return c.SuspendAsync(far, boom, -1) }, fmt.Sprintf("Lifecycle %v %v 2 boom -1ns", far, drv)},
		{"RestartAsync", func(c *Context) Promise { return c.RestartAsync(far) }, fmt.Sprintf("Lifecycle %v %v 3 <nil> 0s", far, drv)},
		{"AliveAsync", func(c *Context) Promise { return c.AliveAsync(far) }, fmt.Sprintf("Lifecycle %v %v 4 <nil> 0s", far, drv)},
	} {
		if err := do(func(c *Context) error {
			tc.ack(c).Then(func(_ *Context, v any, err error) { got <- [2]any{v, err} })
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		corr := tsRecv(t, p.asks, tc.name)
		expect(tc.name, tc.want)
		(&s.wire).Settle(0, corr[0], corr[1], ErrKilled, nil)
		if v := tsRecv(t, got, tc.name+"'s outcome"); v != [2]any{ErrKilled, nil} {
			t.Fatalf("%s settled with %v, want the value the transport settled", tc.name, v)
		}
	}
	if err := s.Inspect(context.Background(), far, func(*Context, Actor) {}); err != ErrRemoteUnsupported {
		t.Fatalf("Inspect of a remote ref: %v", err)
	}
	if err := do(func(c *Context) error {
		return c.Forward(far)
	}); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("Forward to a remote ref: %v", err)
	}
	p.take()

	// From a plain goroutine.
	if err := s.Send(far, "g"); err != nil {
		t.Fatal(err)
	}
	expect("System.Send", fmt.Sprintf("Send %v %v g", far, Ref{}))
	if v, err := s.Ask(context.Background(), far, "gq"); v != "waited" || err != nil {
		t.Fatalf("System.Ask: %v, %v", v, err)
	}
	expect("System.Ask", fmt.Sprintf("AskWait %v gq", far))
}

// TestRemoteCallersGetTheirAnswersThroughThePeer: what a local actor sends
// back to a remote actor goes through the Peer: the reply to its ask, the
// Down of a monitored actor, the exit signal of a linked one.
func TestRemoteCallersGetTheirAnswersThroughThePeer(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	p := newTSPeer()
	w := &s.wire
	far := w.RemoteRef(p, WireID{Loop: 0, Slot: 4, Gen: 2})
	echo := tsSpawn(t, s, tsEcho(), OnLoop(1))
	if err := w.DeliverAsk(echo, far, "hi", 11, 12); err != nil {
		t.Fatal(err)
	}
	if v := tsRecv(t, p.reply, "the reply"); v != "hi" {
		t.Fatalf("reply %v", v)
	}
	if got, want := p.take(), fmt.Sprintf("Reply %v 11 12 hi <nil>", far); len(got) != 1 || got[0] != want {
		t.Fatalf("peer calls %q, want %q", got, want)
	}

	target := tsSpawn(t, s, tsEcho(), OnLoop(1))
	if err := w.MonitorLocal(target, far, func() { t.Error("noproc for a live actor") }); err != nil {
		t.Fatal(err)
	}
	if err := w.LinkLocal(target, far, func() (uint64, bool) { return 1, true }, func() { t.Error("noproc for a live actor") }); err != nil {
		t.Fatal(err)
	}
	// Both requests are ordered before this ask.
	if _, err := tsAsk(t, s, target, "sync"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := w.StopLocal(target, boom); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("Send %v %v %v", far, Ref{}, Down{Ref: target, Reason: boom}),
		fmt.Sprintf("Exit %v %v boom true", far, target),
	}
	deadline := time.Now().Add(tsWait)
	var got []string
	for len(got) < len(want) && time.Now().Before(deadline) {
		got = append(got, p.take()...)
		time.Sleep(time.Millisecond) // polling with a deadline
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("peer calls %q, want %q", got, want)
	}
}

// TestZeroRefIsInvalidEverywhere: every operation on the zero Ref fails with
// ErrInvalidRef.
func TestZeroRefIsInvalidEverywhere(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	drv := tsSpawn(t, s, tsDriver())
	var z Ref
	ops := map[string]func(c *Context) error{
		"Send":      func(c *Context) error { return c.Send(z, 1) },
		"Call":      func(c *Context) error { _, err := c.Call(z, 1); return err },
		"Stop":      func(c *Context) error { return c.Stop(z, nil) },
		"Kill":      func(c *Context) error { return c.Kill(z) },
		"Exit":      func(c *Context) error { return c.Exit(z, errors.New("x")) },
		"Monitor":   func(c *Context) error { return c.Monitor(z) },
		"Demonitor": func(c *Context) error { return c.Demonitor(z) },
		"Link":      func(c *Context) error { return c.Link(z) },
		"Unlink":    func(c *Context) error { return c.Unlink(z) },
		"Restart":   func(c *Context) error { return c.Restart(z) },
		"Suspend":   func(c *Context) error { return c.Suspend(z, nil) },
		"Forward":   func(c *Context) error { return c.Forward(z) },
	}
	for name, op := range ops {
		if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) { return nil, op(c) }); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("%s of the zero Ref: %v", name, err)
		}
	}
	got := make(chan error, 1)
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		c.Ask(z, 1).Then(func(_ *Context, _ any, err error) { got <- err })
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tsRecv(t, got, "the ask"); err != ErrInvalidRef {
		t.Errorf("Ask of the zero Ref: %v", err)
	}
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		c.StopAsync(z, nil, 0).Then(func(_ *Context, _ any, err error) { got <- err })
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tsRecv(t, got, "the stop"); err != ErrInvalidRef {
		t.Errorf("StopAsync of the zero Ref: %v", err)
	}
	if err := s.Send(z, 1); err != ErrInvalidRef {
		t.Errorf("System.Send: %v", err)
	}
	if _, err := s.Ask(context.Background(), z, 1); err != ErrInvalidRef {
		t.Errorf("System.Ask: %v", err)
	}
	if err := s.Inspect(context.Background(), z, func(*Context, Actor) {}); err != ErrInvalidRef {
		t.Errorf("System.Inspect: %v", err)
	}
}

// holdingPeer is a peer that holds its system, and a ref through it (as
// a transport's peer does: its node, the targets of its monitors).
type holdingPeer struct {
	*tsPeer
	sys  *System
	held Ref
}

// A system whose actors hold remote refs is collected once it is shut
// down and dropped, manual or not: an interned ref's cleanup must not hold
// the system (it held the wire and the peer, so the system, whose actors
// held the ref: neither was ever collected).
func TestSystemWithRemoteRefsIsCollected(t *testing.T) {
	for _, manual := range []bool{false, true} {
		var freed atomic.Bool
		func() {
			s := NewSystem(Config{Loops: 1, Manual: manual, Watchdog: -1})
			p := &holdingPeer{tsPeer: newTSPeer(), sys: s}
			far := s.wire.RemoteRef(p, WireID{Loop: 1, Slot: 9, Gen: 3})
			p.held = far
			var r Ref
			var err error
			spawn := func() {
				r, err = s.Spawn(context.Background(), tsFn(func(*Context, any) (any, error) { _ = far; return nil, nil })) // holds far
			}
			if manual {
				done := make(chan struct{})
				go func() { spawn(); close(done) }()
				for {
					s.RunUntilIdle(1 << 10)
					select {
					case <-done:
					default:
						continue
					}
					break
				}
			} else {
				spawn()
			}
			if err != nil || r.IsZero() {
				t.Fatal(err)
			}
			runtime.AddCleanup(s, func(b *atomic.Bool) { b.Store(true) }, &freed)
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !freed.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("manual %v: the shut-down system was never collected", manual)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
}
