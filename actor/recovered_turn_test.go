package actor

import (
	"errors"
	"testing"
)

// A turn whose handler panicked ends as one that returned: the promises
// it settled and attached no continuation to are discarded then
// (Recovered ends the turn), so a Then in the loop's next turn, from
// another actor that was handed one, runs with ErrStalePromise as after
// any other turn, rather than attach to a promise whose turn is over (its
// continuation then ran for the crashed actor, that is, never).
func TestCrashedTurnDiscardsItsSettledPromises(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	var kept Promise // loop goroutine only
	crasher := tsSpawn(t, s, tsFn(func(c *Context, _ any) (any, error) {
		p, resolve := c.Promise()
		resolve("settled", nil) // in its own turn, no continuation
		kept = p
		panic("boom")
	}))
	drv := tsSpawn(t, s, tsDriver())
	if _, err := tsAsk(t, s, crasher, 1); !errors.Is(err, ErrCrashed) {
		t.Fatalf("ask of the crashing actor: %v, want ErrCrashed", err)
	}
	type res struct {
		v   any
		err error
	}
	got := make(chan res, 2)
	if _, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
		kept.Then(func(_ *Context, v any, err error) { got <- res{v, err} })
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The continuation Then queued runs before this next message.
	if _, err := tsDoIn(t, s, drv, func(*Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !errors.Is(r.err, ErrStalePromise) || r.v != nil {
			t.Fatalf("Then after the crashed turn got %v, %v; want ErrStalePromise", r.v, r.err)
		}
	default:
		t.Fatal("Then after the crashed turn never ran its continuation: the crashed turn's settled promise was not discarded")
	}
}
