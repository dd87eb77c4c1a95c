package pool

import (
	"context"
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
