package quorum_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// A quorum call made by an actor allocates nothing per ask: the asks'
// continuations, the thrifty timer and the Future's continuation go
// through the promise seam as the call's method or the caller's func. Once
// calls have settled and their asks have all been answered, the next calls
// reuse them: a call then allocates only its replies (Replies.Values,
// which a result may keep) and a thrifty call its deferred ask.
func TestAskAllocs(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // the pool outlives no more than two collections
	for _, tc := range []struct {
		name    string
		thrifty bool
		want    float64 // the replies; a thrifty call's deferred ask
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
			done := make(chan int, 1024)
			then := func(_ *actor.Context, n int, err error) {
				if err != nil {
					t.Error(err)
				}
				done <- n
			}
			var allocs, bytes float64
			d := spawn(t, sys, func(c *actor.Context, msg any) (any, error) {
				if msg == "warm" { // calls to reuse, once settled
					for range 300 {
						quorum.Ask(c, cfg, 1, spec).Then(then)
					}
					return nil, nil
				}
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				allocs = testing.AllocsPerRun(100, func() { quorum.Ask(c, cfg, 1, spec).Then(then) })
				runtime.ReadMemStats(&after)
				bytes = float64(after.TotalAlloc-before.TotalAlloc) / 101
				return nil, nil
			}, actor.OnLoop(0))
			for _, m := range []string{"warm", "measure"} {
				if _, err := sys.Ask(t.Context(), d, m); err != nil {
					t.Fatal(err)
				}
				n := 300
				if m == "measure" {
					n = 101
				}
				for range n {
					if got := <-done; got != 2 {
						t.Fatalf("a call settled with %d replies, want 2", got)
					}
				}
			}
			if allocs > tc.want {
				t.Errorf("%v allocations per call, want %v", allocs, tc.want)
			}
			if bytes > 200 {
				t.Errorf("%.0f bytes allocated per call: the settled calls were not reused", bytes)
			}
		})
	}
}
