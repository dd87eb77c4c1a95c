package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func newSystem(t testing.TB) *actor.System {
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	return sys
}

func newManager(t testing.TB, sys *actor.System) *quorum.Manager {
	m, err := quorum.NewManager(sys, quorum.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func spawn(t testing.TB, sys *actor.System, f fnActor, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return f }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func config(t testing.TB, m *quorum.Manager, sys quorum.System, refs ...actor.Ref) quorum.Configuration {
	t.Helper()
	cfg, err := m.NewConfiguration(sys, refs...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Messages of the test replicas.
type (
	read  struct{ Seq int }
	write struct {
		Seq int
		TS  int
		V   string
	}
	state struct {
		TS int
		V  string
	}
	release struct{} // a holding replica answers what it holds
)

// replica is a register: read answers its state, write stores a newer one.
// If hold is set, it keeps its replies until it gets release. Every request
// it gets is reported on seen, if set.
type replica struct {
	name string
	st   state
	hold bool
	held []func()
	seen chan<- string
	fail error // if set, every request fails with it
	lie  bool  // answers reads with a made-up value
}

func (r *replica) Receive(c *actor.Context, msg any) (any, error) {
	answer := func(v any, err error) (any, error) {
		if !r.hold {
			return v, err
		}
		rep := c.Defer()
		r.held = append(r.held, func() { rep.Reply(v, err) })
		return nil, nil
	}
	switch m := msg.(type) {
	case read:
		r.report(fmt.Sprintf("read %d", m.Seq))
		if r.fail != nil {
			return answer(nil, r.fail)
		}
		if r.lie {
			return answer(state{TS: r.st.TS + 100, V: "lie from " + r.name}, nil)
		}
		return answer(r.st, nil)
	case write:
		r.report(fmt.Sprintf("write %d", m.Seq))
		if r.fail != nil {
			return answer(nil, r.fail)
		}
		if m.TS > r.st.TS {
			r.st = state{TS: m.TS, V: m.V}
		}
		return answer(r.st, nil)
	case release:
		r.hold = false
		for _, f := range r.held {
			f()
		}
		r.held = nil
		return nil, nil
	}
	return nil, actor.Unhandled(msg)
}

func (r *replica) report(s string) {
	if r.seen != nil {
		r.seen <- r.name + " " + s
	}
}

func spawnReplica(t testing.TB, sys *actor.System, r *replica, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	ref, err := sys.Spawn(context.Background(), func() actor.Actor { return r }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// deadRef returns the ref of an actor that has stopped.
func deadRef(t testing.TB, sys *actor.System) actor.Ref {
	t.Helper()
	r := spawn(t, sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(c.Self(), nil) })
	if _, err := sys.Ask(context.Background(), r, "die"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Ask(context.Background(), r, "ping"); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("actor still alive: %v", err)
	}
	return r
}

// result is the outcome of a call made by a driver actor.
type result[Res any] struct {
	v   Res
	err error
}

// inActor runs f inside a fresh actor (on loop 0) and returns what it
// reports on the channel it gets.
func inActor[T any](t testing.TB, sys *actor.System, f func(c *actor.Context, out chan<- T)) <-chan T {
	t.Helper()
	out := make(chan T, 16)
	var once sync.Once
	r := spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
		once.Do(func() { f(c, out) })
		return nil, nil
	}, actor.OnLoop(0))
	if err := sys.Send(r, "go"); err != nil {
		t.Fatal(err)
	}
	return out
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func quorumErr(t testing.TB, err error) *quorum.Error {
	t.Helper()
	var qe *quorum.Error
	if !errors.As(err, &qe) || !errors.Is(err, quorum.ErrNoQuorum) {
		t.Fatalf("error %v (%T) is not a *quorum.Error matching ErrNoQuorum", err, err)
	}
	return qe
}

func newer(a, b state) bool { return a.TS < b.TS }
