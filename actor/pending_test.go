package actor

import (
	"context"
	"errors"
	"testing"
)

// An actor that deferred asks and then ends without answering them: the
// runtime answers for it, so even an asker without a deadline learns the
// outcome. Stop gives ErrDead (with the reason), a crash its *CrashError, a
// restart ErrRestart; a later Reply does nothing.
func TestDeferredAsksFailWhenTheIncarnationEnds(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	driver := tsSpawn(t, s, tsDriver())
	boom := errors.New("boom")
	type result struct {
		v   any
		err error
	}
	askNoDeadline := func(r Ref, msg any) <-chan result {
		ch := make(chan result, 1)
		go func() {
			v, err := s.Ask(context.Background(), r, msg) // no deadline: only an answer ends it
			ch <- result{v, err}
		}()
		return ch
	}
	cases := []struct {
		name  string
		end   func(t *testing.T, r Ref)
		check func(err error) bool
	}{
		{"stop", func(t *testing.T, r Ref) { tsStop(t, s, driver, r, boom) },
			func(err error) bool { return errors.Is(err, ErrDead) && errors.Is(err, boom) }},
		{"normal stop", func(t *testing.T, r Ref) { tsStop(t, s, driver, r, nil) },
			func(err error) bool { return errors.Is(err, ErrDead) }},
		{"crash", func(t *testing.T, r Ref) { _ = s.Send(r, "panic") },
			func(err error) bool {
				var ce *CrashError
				return errors.As(err, &ce) && errors.Is(err, ErrCrashed)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			replies := make(chan *Reply, 64)
			r := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
				switch msg {
				case "panic":
					panic("deliberate")
				case "answered":
					c.Defer().Reply("done", nil) // answered at once: must stay answered
					return nil, nil
				}
				replies <- c.Defer()
				return nil, nil
			}), OnLoop(1))
			// Enough answered deferrals to make the runtime prune its list.
			for range 40 {
				if v, err := tsAsk(t, s, r, "answered"); v != "done" || err != nil {
					t.Fatalf("answered ask = %v, %v", v, err)
				}
			}
			pending := []<-chan result{askNoDeadline(r, 1), askNoDeadline(r, 2)}
			reps := []*Reply{tsRecv(t, replies, "first deferral"), tsRecv(t, replies, "second deferral")}
			tc.end(t, r)
			for i, ch := range pending {
				res := tsRecv(t, ch, "the deferred ask to be answered by the runtime")
				if res.v != nil || !tc.check(res.err) {
					t.Fatalf("deferred ask %d = %v, %v", i, res.v, res.err)
				}
			}
			for _, rep := range reps {
				rep.Reply("late", nil) // does nothing
			}
		})
	}
}
