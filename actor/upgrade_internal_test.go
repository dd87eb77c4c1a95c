package actor

import (
	"context"
	"errors"
	"testing"
)

type swapLogV1 struct{ log []int }

func (a *swapLogV1) Receive(_ *Context, msg any) (any, error) {
	if n, ok := msg.(int); ok {
		a.log = append(a.log, n)
	}
	return nil, nil
}

type swapLogV2 struct{ swapLogV1 }

// A swap that would finish inside one of its actor's own events does not
// fail and leave the messages it held stashed: it keeps holding them and
// finishes as an event of its own, then delivers them to the new instance.
func TestSwapInsideOwnEventRetries(t *testing.T) {
	s := NewSystem(Config{Loops: 1, Manual: true})
	defer func() { _ = s.Shutdown(context.Background()) }()
	r, err := s.Spawn(context.Background(), func() Actor { return &swapLogV1{} })
	if err != nil {
		t.Fatal(err)
	}
	ls := s.loops[0]
	sl := ls.lookup(r)
	got := errors.New("not done")
	w := &swapState{r: r, inc: sl.inc, done: func(err error) { got = err },
		f: func(_ *Context, a Actor, f Factory, _ int) (Actor, Factory, error) {
			return &swapLogV2{*a.(*swapLogV1)}, f, nil
		}}
	sl.upg = w // the swap waits: r's messages are held
	if err := s.Send(r, 1); err != nil {
		t.Fatal(err)
	}
	s.RunUntilIdle(100)
	if len(sl.stash) != 1 {
		t.Fatalf("%d messages held, want 1", len(sl.stash))
	}
	sl.running = true // as if inside one of r's events
	ls.finishSwap(w)
	sl.running = false
	s.RunUntilIdle(100)
	if got != nil {
		t.Fatalf("swap: %v, want done", got)
	}
	v2, ok := sl.actor.(*swapLogV2)
	if !ok || len(v2.log) != 1 || len(sl.stash) != 0 {
		t.Fatalf("after the swap: %T %+v, %d still held", sl.actor, sl.actor, len(sl.stash))
	}
}
