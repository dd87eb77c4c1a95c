package capability

import (
	"errors"
	"testing"

	"github.com/actord/actord/actor"
)

type whoSent struct{}

// A Handoff facet: admitted messages reach the target, which answers the
// asker and sees the original sender; rejected ones are refused; revoking
// makes it dead; a Call cannot be handed off.
func TestHandoff(t *testing.T) {
	sys := newSys(t, 2)
	for _, loop := range []int{0, 1} {
		store := newStore()
		target := spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
			if _, ok := msg.(whoSent); ok {
				return c.Sender(), nil
			}
			return store.Receive(c, msg)
		}, actor.OnLoop(loop))
		f := mustFacet(t, sys, target, Allow[get](), Allow[put](), Allow[whoSent](), Handoff())
		holder := driver(t, sys, 0)
		if r := askFrom(t, sys, holder, f.Ref(), put{"k", "v"}, wait); r.err != nil {
			t.Fatalf("put through a handoff facet: %v", r.err)
		}
		if r := askFrom(t, sys, holder, f.Ref(), get{"k"}, wait); r.err != nil || r.v != "v" {
			t.Fatalf("get through a handoff facet = %v, %v", r.v, r.err)
		}
		if r := askFrom(t, sys, holder, f.Ref(), get{"none"}, wait); !errors.Is(r.err, errNoKey) {
			t.Fatalf("the target's error through a handoff facet: %v", r.err)
		}
		if r := askFrom(t, sys, holder, f.Ref(), whoSent{}, wait); r.err != nil || r.v != holder {
			t.Fatalf("target saw sender %v, want the holder %v", r.v, holder)
		}
		if r := askFrom(t, sys, holder, f.Ref(), del{"k"}, wait); !errors.Is(r.err, ErrNotPermitted) {
			t.Fatalf("rejected message through a handoff facet: %v", r.err)
		}
		if _, ok := store.kv["k"]; !ok {
			t.Fatal("a rejected del reached the target")
		}
		r := do(t, sys, holder, func(c *actor.Context, done func(any, error)) { done(c.Call(f.Ref(), get{"k"})) })
		if loop == 0 && !errors.Is(r.err, actor.ErrNotForwardable) {
			t.Fatalf("Call of a handoff facet: %v, want ErrNotForwardable", r.err)
		}
		f.Revoke()
		if r := askFrom(t, sys, holder, f.Ref(), get{"k"}, wait); !errors.Is(r.err, actor.ErrDead) {
			t.Fatalf("ask after Revoke: %v, want ErrDead", r.err)
		}
	}
}
