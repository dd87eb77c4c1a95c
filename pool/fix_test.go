package pool

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

func (p *Pool) liveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// panicky panics in its Start.
type panicky struct{}

func (panicky) Start(c *actor.Context) error                   { panic("cannot start") }
func (panicky) Receive(c *actor.Context, msg any) (any, error) { return nil, nil }

// Workers whose start fails (with an error or a panic) and that are
// replaced again and again leave nothing in the pool's table of live
// workers.
func TestFailedStartsAreNotTracked(t *testing.T) {
	for name, f := range map[string]actor.Factory{
		"error": func() actor.Actor { fail := 1; return flaky{&fail} },
		"panic": func() actor.Actor { return panicky{} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			p, err := New(Config{Logger: quiet, New: f})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0)); err != nil {
				t.Fatal(err)
			}
			end := e.clk.Now().Add(2 * time.Second)
			for i := 0; i < 100000 && e.clk.Now().Before(end); i++ {
				e.sys.Step()
			}
			if st := p.Stats(); st.StartFailed < 5 {
				t.Fatalf("only %d failed starts", st.StartFailed)
			}
			if n := p.liveCount(); n != 0 {
				t.Fatalf("%d workers tracked after %d failed starts, want 0", n, p.Stats().StartFailed)
			}
		})
	}
}

// named answers with its name ("pool/ID"), stops itself on a quitKey, and
// fails its start when its start number is in fail.
type named struct {
	n    int
	fail func(n int) bool
}

func (w named) Start(c *actor.Context) error {
	if w.fail(w.n) {
		return errors.New("cannot start")
	}
	return nil
}

func (w named) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(quitKey); ok {
		return nil, c.Stop(c.Self(), errors.New("quit"))
	}
	return c.Name(), nil
}

// A worker that ends is replaced under its own ID even when a smaller ID
// is free (here that of a worker whose start failed), so that its keys come
// back to the replacement and no other key moves.
func TestReplacementTakesTheEndedID(t *testing.T) {
	e := newEnv(t, 1)
	starts := 0
	p, err := New(Config{Logger: quiet, Strategy: ConsistentHash, Scale: ScaleConfig{Min: 3, Max: 3},
		New: func() actor.Actor {
			starts++
			// The second start fails, and those after the replacement: the
			// Min rule's later starts do not change the ring.
			return named{starts, func(n int) bool { return n == 2 || n >= 5 }}
		}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := e.sys.Spawn(context.Background(), p.Factory(), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	e.until("two started, one failed", 1000, func() bool { return p.Stats().Started == 2 && p.Stats().StartFailed == 1 })
	owner := func() map[string]string {
		out := map[string]string{}
		for k := range 60 {
			key := fmt.Sprint("k", k)
			v, err := e.ask(pool, keyed(key))
			if err != nil {
				t.Fatal(err)
			}
			out[key] = v.(string)
		}
		return out
	}
	before := owner()
	var victimKey string
	for k, w := range before {
		if w == "pool/3" {
			victimKey = k
		}
	}
	if victimKey == "" {
		t.Fatalf("no key on pool/3: %v", before)
	}
	if _, err := e.ask(pool, quitKey(victimKey)); err != nil {
		t.Fatal(err)
	}
	e.until("the replacement", 1000, func() bool { return p.Stats().Started == 3 && p.Stats().Workers == 2 })
	after := owner()
	for k, w := range before {
		if after[k] != w {
			t.Fatalf("key %s moved from %s to %s: the replacement should take the ended worker's ID", k, w, after[k])
		}
	}
}
