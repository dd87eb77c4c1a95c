package actor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// askNoDeadline asks from a goroutine without a deadline: only an answer
// ends it.
func askNoDeadline(s *System, r Ref, msg any) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := s.Ask(context.Background(), r, msg)
		ch <- err
	}()
	return ch
}

// awaitWithGC waits for an answer, running the garbage collector meanwhile
// (a dropped Reply is answered when the collector finds it).
func awaitWithGC(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	deadline := time.Now().Add(tsWait)
	for {
		runtime.GC()
		select {
		case err := <-ch:
			return err
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for %s", what)
		}
	}
}

// A deferred ask whose Reply is dropped unanswered, or held by an actor
// that stops or crashes, is answered with ErrNoReply: even an asker without
// a deadline learns the outcome.
func TestDeferredAskDroppedIsAnswered(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	driver := tsSpawn(t, s, tsDriver())
	type holder struct{ held []*Reply }
	holding := make(chan struct{}, 2)
	r := tsSpawn(t, s, func() Actor {
		h := &holder{}
		return &tsActor{recv: func(c *Context, msg any) (any, error) {
			switch msg {
			case "drop":
				c.Defer() // and forget it
			case "hold":
				h.held = append(h.held, c.Defer())
				holding <- struct{}{}
			case "panic":
				panic("deliberate")
			}
			return nil, nil
		}}
	}, OnLoop(1))
	if err := awaitWithGC(t, askNoDeadline(s, r, "drop"), "a dropped Reply"); !errors.Is(err, ErrNoReply) {
		t.Fatalf("dropped Reply answered %v, want ErrNoReply", err)
	}
	held := []<-chan error{askNoDeadline(s, r, "hold"), askNoDeadline(s, r, "hold")}
	tsRecv(t, holding, "the first hold")
	tsRecv(t, holding, "the second hold")
	tsStop(t, s, driver, r, nil)
	for i, ch := range held {
		if err := awaitWithGC(t, ch, "a Reply held by a stopped actor"); !errors.Is(err, ErrNoReply) {
			t.Fatalf("held Reply %d answered %v, want ErrNoReply", i, err)
		}
	}
}

// A Reply handed to a worker is answered by the worker even after the
// actor crashed: the runtime does not answer for it (the work may well have
// been done, as a durable write acknowledged once on disk).
func TestDeferredAskAnsweredByWorkerAfterCrash(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1})
	handoff := make(chan *Reply, 1)
	r := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		switch msg {
		case "work":
			handoff <- c.Defer()
		case "panic":
			panic("deliberate")
		}
		return nil, nil
	}))
	ans := make(chan result, 1)
	go func() {
		v, err := s.Ask(context.Background(), r, "work")
		ans <- result{v, err}
	}()
	rep := tsRecv(t, handoff, "the Reply")
	if _, err := tsAsk(t, s, r, "panic"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("panic ask: %v", err)
	}
	runtime.GC()
	runtime.GC()
	rep.Reply("done", nil)
	got := tsRecv(t, ans, "the worker's answer")
	if got.v != "done" || got.err != nil {
		t.Fatalf("asker got %v, %v; want the worker's answer", got.v, got.err)
	}
	runtime.GC() // an answered Reply's cleanup must not answer again
	runtime.KeepAlive(rep)
}

// held keeps deferred Replies that a test means never to answer reachable:
// a Reply dropped unanswered is answered with actor.ErrNoReply once it is
// garbage collected, which would end the wait the test is about.
var held struct {
	sync.Mutex
	r []*Reply
}

func holdReply(r *Reply) {
	held.Lock()
	held.r = append(held.r, r)
	held.Unlock()
}
