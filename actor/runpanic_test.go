package actor

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// A handler's panic in the middle of a run of queued messages (the loop
// recovers it for the whole run, not per message) is handled once, as a
// crash of its actor: OnCrash once, a supervised actor's parent told
// once, an ask answered with the crash; the messages queued after it, to
// other actors and to the restarted one, are delivered in order, and the
// loop keeps running.
func TestPanicInTheMiddleOfARun(t *testing.T) {
	crashes := make(chan *Crash, 8)
	s := tsSystem(t, Config{Loops: 1, OnCrash: func(c *Crash) { crashes <- c }})
	ctx := context.Background()

	var got []int // the recorder's messages; loop goroutine, then read after done
	done := make(chan struct{})
	rec := tsSpawn(t, s, tsFn(func(_ *Context, msg any) (any, error) {
		switch m := msg.(type) {
		case chan struct{}:
			<-m // hold the loop while the run is queued behind
		case int:
			if got = append(got, m); m == 99 {
				close(done)
			}
		}
		return nil, nil
	}))
	// A parent that restarts its crashing child, counting the crashes.
	told := make(chan Crashed, 8)
	var child Ref
	parent := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		if cr, ok := msg.(Crashed); ok {
			told <- cr
			return nil, c.Restart(cr.Child)
		}
		return nil, nil
	}))
	if _, err := tsDoIn(t, s, parent, func(c *Context) (any, error) {
		var err error
		child, err = c.Spawn(tsFn(func(_ *Context, msg any) (any, error) {
			if msg == "boom" {
				panic("boom")
			}
			return msg, nil
		}), Supervised())
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}

	gate := make(chan struct{})
	mustSend := func(to Ref, msg any) {
		t.Helper()
		if err := s.SendWait(ctx, to, msg); err != nil {
			t.Fatal(err)
		}
	}
	mustSend(rec, gate)
	for i := range 5 {
		mustSend(rec, i)
	}
	mustSend(child, "boom")
	for i := 5; i < 10; i++ {
		mustSend(rec, i)
	}
	mustSend(rec, 99)
	close(gate)
	tsRecv(t, done, "the messages queued after the panic")
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 99}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	cr := tsRecv(t, crashes, "the crash")
	if cr.Actor != child || cr.Value != "boom" || cr.Msg != "boom" || !cr.Supervised {
		t.Fatalf("crash %+v", cr)
	}
	if c := tsRecv(t, told, "the parent's Crashed"); c.Child != child {
		t.Fatalf("Crashed for %v, want %v", c.Child, child)
	}

	// Restarted, the child answers; an ask that panics is answered with
	// the crash; the loop goes on.
	if v, err := tsAsk(t, s, child, "again"); err != nil || v != "again" {
		t.Fatalf("ask after the restart: %v, %v", v, err)
	}
	if _, err := tsAsk(t, s, child, "boom"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("ask that panics: %v, want ErrCrashed", err)
	}
	tsRecv(t, crashes, "the second crash")
	tsRecv(t, told, "the second Crashed")
	if v, err := tsAsk(t, s, child, "after"); err != nil || v != "after" {
		t.Fatalf("ask after the second restart: %v, %v", v, err)
	}
	tsNone(t, crashes, "a third crash")
	tsNone(t, told, "a third Crashed")
}
