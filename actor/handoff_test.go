package actor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// tsSlow asks an echo actor to spin for a while before answering, so
// that short deadlines expire.
type tsSlow struct{ v int }

// tsEchoSpin echoes its message; a tsSlow after spinning past 2 ms.
func tsEchoSpin() Factory {
	return tsFn(func(_ *Context, msg any) (any, error) {
		if m, ok := msg.(tsSlow); ok {
			for start := time.Now(); time.Since(start) < 2*time.Millisecond; {
			}
			return m.v, nil
		}
		return msg, nil
	})
}

// tsChain is a request to an asker: make n asks, one after the other, to
// random echoes with random deadlines, then answer with what it saw.
type tsChain struct{ n int }

// Asks from actors of three loops to each other and from goroutines, all
// at once, with deadlines that expire and deadlines that do not, while the
// loops lend their passes to askers (loop.PostFrom, loop.PostAwait): every
// ask settles exactly once (its continuation runs once, with the echo of
// its own value or ErrTimeout), every goroutine's ask returns its own
// value or a timeout, and none waits forever (a lost wake-up would leave
// a chain unfinished).
func TestAskHandoffStress(t *testing.T) {
	const (
		loops      = 3
		chainLen   = 300
		goroutines = 4
		each       = 300
	)
	s := tsSystem(t, Config{Loops: loops})
	echoes := make([]Ref, loops)
	for i := range echoes {
		echoes[i] = tsSpawn(t, s, tsEchoSpin(), OnLoop(i))
	}
	type summary struct {
		replies, timeouts int
		bad               string
	}
	asker := func(seed uint64) Factory {
		return func() Actor {
			rnd := rand.New(rand.NewPCG(seed, 1))
			runs := map[int]int{} // continuation runs per ask
			var sum summary
			var left int
			var rep *Reply
			var next func(c *Context)
			next = func(c *Context) {
				id := left
				var msg any = id
				d := time.Duration(0) // no deadline
				switch rnd.IntN(8) {
				case 0:
					msg, d = tsSlow{id}, 200*time.Microsecond // expires
				case 1, 2:
					d = 50 * time.Microsecond // may expire
				case 3, 4:
					d = time.Minute
				}
				c.AskTimeout(echoes[rnd.IntN(loops)], msg, d).Then(func(c *Context, v any, err error) {
					if runs[id]++; runs[id] > 1 && sum.bad == "" {
						sum.bad = fmt.Sprintf("ask %d settled %d times", id, runs[id])
					}
					switch {
					case err == nil && v == id:
						sum.replies++
					case errors.Is(err, ErrTimeout):
						sum.timeouts++
					case sum.bad == "":
						sum.bad = fmt.Sprintf("ask %d settled with %v, %v", id, v, err)
					}
					if left--; left == 0 {
						rep.Reply(sum, nil)
						return
					}
					next(c)
				})
			}
			return &tsActor{recv: func(c *Context, msg any) (any, error) {
				left, rep = msg.(tsChain).n, c.Defer()
				next(c)
				return nil, nil
			}}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, loops+goroutines)
	for i := range loops {
		a := tsSpawn(t, s, asker(uint64(i)), OnLoop(i))
		wg.Go(func() {
			v, err := s.Ask(ctx, a, tsChain{chainLen})
			if err != nil {
				errs <- fmt.Errorf("chain on loop %d: %w", i, err)
				return
			}
			sum := v.(summary)
			if sum.bad != "" || sum.replies+sum.timeouts != chainLen {
				errs <- fmt.Errorf("chain on loop %d: %+v", i, sum)
			}
		})
	}
	for g := range goroutines {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 2))
			for k := range each {
				v := g*each + k
				var msg any = v
				to := echoes[rnd.IntN(loops)]
				var got any
				var err error
				switch rnd.IntN(4) {
				case 0:
					msg = tsSlow{v}
					got, err = s.AskTimeout(to, msg, 100*time.Microsecond)
				case 1:
					got, err = s.AskTimeout(to, msg, time.Minute)
				case 2:
					actx, acancel := context.WithTimeout(ctx, 50*time.Microsecond)
					got, err = s.Ask(actx, to, msg)
					acancel()
				default:
					got, err = s.Ask(ctx, to, msg)
				}
				switch {
				case err == nil && got == v:
				case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
				default:
					errs <- fmt.Errorf("goroutine %d ask %d: %v, %v", g, v, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Ask/reply between two loops, one in flight, without deadlines: the
// asker's loop runs the target's pass when the target is parked
// (loop.PostFrom), and nothing else wakes either loop, so a hand-off that
// were lost would leave the ping-pong waiting forever.
func TestAskPingPongNoDeadline(t *testing.T) {
	const rounds = 5000
	s := tsSystem(t, Config{Loops: 2})
	pong := tsSpawn(t, s, tsEcho(), OnLoop(1))
	ping := tsSpawn(t, s, func() Actor {
		var left, got int
		var rep *Reply
		var next func(c *Context)
		next = func(c *Context) {
			c.AskTimeout(pong, left, 0).Then(func(c *Context, v any, err error) {
				if err != nil || v != left {
					rep.Reply(nil, fmt.Errorf("ask %d: %v, %v", left, v, err))
					return
				}
				got++
				if left--; left == 0 {
					rep.Reply(got, nil)
					return
				}
				next(c)
			})
		}
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			left, rep = msg.(int), c.Defer()
			next(c)
			return nil, nil
		}}
	}, OnLoop(0))
	ctx, cancel := context.WithTimeout(context.Background(), tsWait)
	defer cancel()
	v, err := s.Ask(ctx, ping, rounds)
	if err != nil || v != rounds {
		t.Fatalf("ping-pong = %v, %v; want %d replies", v, err, rounds)
	}
}

// A short deadline is kept to the letter even when the target's loop is
// parked: the asker does not run that loop's pass (it could not leave a
// blocked handler), so a held handler times out a goroutine's AskTimeout,
// a goroutine's Ask with a context deadline, and an actor's AskTimeout
// from another loop, on time.
func TestShortDeadlineAskDoesNotRunTarget(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2, Watchdog: -1})
	gate := make(chan struct{})
	defer close(gate)
	held := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		<-gate
		return msg, nil
	}), OnLoop(1))
	drv := tsSpawn(t, s, tsDriver(), OnLoop(0))
	parked := func() {
		t.Helper()
		deadline := time.Now().Add(tsWait)
		for !s.loops[1].loop.Stats().Parked {
			if time.Now().After(deadline) {
				t.Fatal("loop 1 never parked")
			}
			time.Sleep(100 * time.Microsecond) // polling a condition, with a deadline
		}
	}
	asks := []struct {
		name string
		ask  func() error
	}{
		{"System.AskTimeout", func() error {
			_, err := s.AskTimeout(held, 1, 20*time.Millisecond)
			return err
		}},
		{"System.Ask", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := s.Ask(ctx, held, 1)
			if errors.Is(err, context.DeadlineExceeded) {
				err = ErrTimeout
			}
			return err
		}},
		{"Context.AskTimeout", func() error {
			_, err := tsDoIn(t, s, drv, func(c *Context) (any, error) {
				rep := c.Defer()
				c.AskTimeout(held, 1, 20*time.Millisecond).Then(func(_ *Context, v any, err error) { rep.Reply(v, err) })
				return nil, nil
			})
			return err
		}},
	}
	// Each ask leaves the held handler blocked: one loop 1 per ask.
	for i, a := range asks {
		if i > 0 {
			gate <- struct{}{} // let the previous held handler return
		}
		parked()
		done := make(chan error, 1)
		go func() { done <- a.ask() }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("%s to a held handler: %v, want ErrTimeout", a.name, err)
			}
		case <-time.After(tsWait):
			t.Fatalf("%s to a held handler on a parked loop did not time out: it ran the handler itself", a.name)
		}
	}
	gate <- struct{}{}
}

// until agrees with time.Until for deadlines with and without a monotonic
// reading.
func TestUntil(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 0, 50 * time.Millisecond, time.Hour} {
		for _, dl := range []time.Time{time.Now().Add(d), time.Now().Add(d).Round(0)} {
			want := time.Until(dl)
			got := until(dl)
			if diff := got - want; diff < -time.Second || diff > time.Second {
				t.Errorf("until(now%+v) = %v, time.Until = %v", d, got, want)
			}
		}
	}
}
