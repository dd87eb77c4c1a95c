package sim

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

type tick struct{}

// timerAtStart arms a timer of no delay in its Start.
type timerAtStart struct{ fired *bool }

func (a timerAtStart) Start(c *actor.Context) error { c.After(0, tick{}); return nil }
func (a timerAtStart) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(tick); ok {
		*a.fired = true
	}
	return nil, nil
}

// A node that ran out of work is stepped again when a timer becomes due
// without anything queued: a spawn from the test runs the actor's Start
// at once (manual mode), and a timer it arms for now must run.
func TestTimerArmedFromOutsideRuns(t *testing.T) {
	w := New(Config{Seed: 3})
	defer w.Close()
	a := w.MustAddNode("a", nil)
	w.Run(time.Second)
	fired := false
	if _, err := a.Spawn(func() actor.Actor { return timerAtStart{fired: &fired} }); err != nil {
		t.Fatal(err)
	}
	w.Run(time.Second)
	if !fired {
		t.Fatal("the timer armed at the spawn did not run")
	}
}
