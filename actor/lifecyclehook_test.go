package actor

import (
	"context"
	"testing"
)

// LifecycleHook sees spawns, crashes, drops and stops, and no messages; a full
// Hook set beside it still sees everything, with one sequence for both.
func TestLifecycleHookSkipsMessages(t *testing.T) {
	var life, all []EventKind
	var lifeSeq []uint64
	s := NewSystem(Config{Loops: 1, Manual: true, OnCrash: func(*Crash) {},
		LifecycleHook: func(e *Event) { life = append(life, e.Kind); lifeSeq = append(lifeSeq, e.Seq) },
		Hook:          func(e *Event) { all = append(all, e.Kind) },
	})
	defer s.Shutdown(context.Background())
	ctx := context.Background()
	r, err := s.Spawn(ctx, tsFn(func(c *Context, msg any) (any, error) {
		if msg == "boom" {
			panic("boom")
		}
		return msg, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Ask(ctx, r, "hi"); err != nil || v != "hi" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	s.Send(r, "boom") // crash: an unsupervised actor stops
	s.RunUntilIdle(100)
	s.Send(r, "late") // to a dead actor: dropped
	s.RunUntilIdle(100)
	want := []EventKind{EventSpawn, EventCrash, EventStop, EventDropped}
	if len(life) != len(want) {
		t.Fatalf("lifecycle hook saw %v, want %v", life, want)
	}
	for i := range want {
		if life[i] != want[i] {
			t.Fatalf("lifecycle hook saw %v, want %v", life, want)
		}
	}
	var sawAsk bool
	for _, k := range all {
		sawAsk = sawAsk || k == EventAsk
	}
	if !sawAsk || len(all) <= len(life) {
		t.Fatalf("full hook saw %v: want the ask as well as the lifecycle", all)
	}
	for i := 1; i < len(lifeSeq); i++ {
		if lifeSeq[i] <= lifeSeq[i-1] {
			t.Fatalf("lifecycle Seq not increasing: %v", lifeSeq)
		}
	}
}
