package capability

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool (the remote test), started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// wait bounds every wait of a test; nothing here sleeps to synchronise.
const wait = 10 * time.Second

func newSys(t testing.TB, loops int) *actor.System {
	t.Helper()
	s := actor.NewSystem(actor.Config{Loops: loops, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func spawn(t testing.TB, sys *actor.System, f fnActor, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return f }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustFacet(t testing.TB, sys *actor.System, target actor.Ref, opts ...Option) *Facet {
	t.Helper()
	f, err := Spawn(context.Background(), sys, target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Messages of the test target.
type (
	get     struct{ key string }
	put     struct{ key, val string }
	del     struct{ key string }
	appendN struct{ n int }
	logOf   struct{}
	boom    struct{}
	stall   struct{} // deferred, never answered
	later   struct{ v string }
)

var errNoKey = errors.New("no such key")

// store is the target of most tests. It counts every message it sees, so a
// test can tell that a rejected one never reached it.
type store struct {
	kv   map[string]string
	log  []int
	seen int
}

func newStore() *store { return &store{kv: map[string]string{}} }

func (s *store) Receive(c *actor.Context, msg any) (any, error) {
	s.seen++
	switch m := msg.(type) {
	case get:
		v, ok := s.kv[m.key]
		if !ok {
			return nil, errNoKey
		}
		return v, nil
	case put:
		s.kv[m.key] = m.val
		return nil, nil
	case del:
		delete(s.kv, m.key)
		return nil, nil
	case appendN:
		s.log = append(s.log, m.n)
		return nil, nil
	case logOf:
		return append([]int(nil), s.log...), nil
	case boom:
		panic("boom")
	case stall:
		holdReply(c.Defer())
		return nil, nil
	case later:
		// Answer after an ask of our own: a deferred reply.
		r := c.Defer()
		c.Ask(c.Self(), get{key: "x"}).Then(func(_ *actor.Context, _ any, _ error) { r.Reply(m.v, nil) })
		return nil, nil
	case int: // how many messages so far
		return s.seen, nil
	}
	return nil, actor.Unhandled(msg)
}

func spawnStore(t testing.TB, sys *actor.System, loop int) actor.Ref {
	t.Helper()
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return newStore() }, actor.OnLoop(loop))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// watch returns a channel that gets the Down of r. It spawns one actor.
func watch(t testing.TB, sys *actor.System, r actor.Ref) <-chan actor.Down {
	t.Helper()
	ch := make(chan actor.Down, 1)
	w := &watcher{target: r, ch: ch}
	if _, err := sys.Spawn(context.Background(), func() actor.Actor { return w }); err != nil {
		t.Fatal(err)
	}
	return ch
}

type watcher struct {
	target actor.Ref
	ch     chan actor.Down
}

func (w *watcher) Start(c *actor.Context) error { return c.Monitor(w.target) }

func (w *watcher) Receive(c *actor.Context, msg any) (any, error) {
	if d, ok := msg.(actor.Down); ok && d.Ref == w.target {
		w.ch <- d // the watcher lives on (tests count it among the live actors)
	}
	return nil, nil
}

func awaitDown(t testing.TB, ch <-chan actor.Down) actor.Down {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(wait):
		t.Fatal("no Down")
	}
	return actor.Down{}
}

// result is the outcome of an ask made by an actor.
type result struct {
	v   any
	err error
}

// run is a message that makes a driver run a function inside itself.
type run func(c *actor.Context)

// driver runs functions inside an actor on a chosen loop, so a test can act
// as an actor (Ask with continuations, Call, Send in order).
func driver(t testing.TB, sys *actor.System, loop int) actor.Ref {
	t.Helper()
	return spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
		if f, ok := msg.(run); ok {
			f(c)
		}
		return nil, nil
	}, actor.OnLoop(loop))
}

// do runs f inside the driver d and waits for the result f delivers.
func do(t testing.TB, sys *actor.System, d actor.Ref, f func(c *actor.Context, done func(any, error))) result {
	t.Helper()
	ch := make(chan result, 1)
	if err := sys.Send(d, run(func(c *actor.Context) {
		f(c, func(v any, err error) { ch <- result{v, err} })
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("driver did not answer")
	}
	return result{}
}

// askFrom asks to from inside the driver d, with deadline dl.
func askFrom(t testing.TB, sys *actor.System, d, to actor.Ref, msg any, dl time.Duration) result {
	t.Helper()
	return do(t, sys, d, func(c *actor.Context, done func(any, error)) {
		c.AskTimeout(to, msg, dl).Then(func(_ *actor.Context, v any, err error) { done(v, err) })
	})
}

// actors counts the live actors of sys.
func actors(sys *actor.System) int64 {
	var n int64
	for _, s := range sys.Stats() {
		n += s.Actors
	}
	return n
}

// held keeps deferred Replies that a test means never to answer reachable:
// a Reply dropped unanswered is answered with actor.ErrNoReply once it is
// garbage collected, which would end the wait the test is about.
var held struct {
	sync.Mutex
	r []*actor.Reply
}

func holdReply(r *actor.Reply) {
	held.Lock()
	held.r = append(held.r, r)
	held.Unlock()
}
