package quorum_test

import (
	"testing"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// A quorum call made by an actor allocates the call and nothing per ask:
// the asks' continuations, the thrifty timer and the Future's continuation
// go through the promise seam as the call's method or the caller's func.
func TestAskAllocs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		thrifty bool
		want    float64 // the call; a thrifty call's deferred ask
	}{{"plain", false, 1}, {"thrifty", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			sys := newSystem(t)
			m := newManager(t, sys)
			// On the caller's loop: nothing runs beside the measured turn.
			refs := []actor.Ref{spawn(t, sys, answer, actor.OnLoop(0)), spawn(t, sys, answer, actor.OnLoop(0)), spawn(t, sys, answer, actor.OnLoop(0))}
			cfg := config(t, m, nil, refs...)
			spec := quorum.Spec[int, int, int]{Quorum: func(_ int, rs *quorum.Replies[int]) (int, bool, error) {
				return rs.Len(), rs.Len() >= 2, nil
			}}
			if tc.thrifty {
				spec.Thrifty = 1e9
			}
			done := make(chan int, 256)
			then := func(_ *actor.Context, n int, err error) {
				if err != nil {
					t.Error(err)
				}
				done <- n
			}
			var allocs float64
			d := spawn(t, sys, func(c *actor.Context, _ any) (any, error) {
				allocs = testing.AllocsPerRun(100, func() { quorum.Ask(c, cfg, 1, spec).Then(then) })
				return nil, nil
			}, actor.OnLoop(0))
			if _, err := sys.Ask(t.Context(), d, "go"); err != nil {
				t.Fatal(err)
			}
			for range 101 {
				if n := <-done; n != 2 {
					t.Fatalf("a call settled with %d replies, want 2", n)
				}
			}
			if allocs > tc.want {
				t.Errorf("%v allocations per call, want %v", allocs, tc.want)
			}
		})
	}
}
