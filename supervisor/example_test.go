package supervisor_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/supervisor"
)

// worker prints its lifecycle and crashes on "crash".
type worker struct{ name string }

func (w *worker) Start(*actor.Context) error { fmt.Println("start", w.name); return nil }

func (w *worker) Terminate(_ *actor.Context, reason error) { fmt.Println("stop", w.name, "-", reason) }

func (w *worker) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "crash" {
		panic("boom")
	}
	return w.name + " got " + fmt.Sprint(msg), nil
}

func newWorker(name string) actor.Factory {
	return func() actor.Actor { return &worker{name: name} }
}

// A one_for_all supervisor of three workers: when "db" crashes, the others
// are stopped (in reverse start order) and all three are started again (in
// start order). Refs stay valid across the restart.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	// A manually stepped system makes the output deterministic; with a
	// running system the same happens on the loop's goroutine.
	sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Logger: quiet, OnCrash: func(*actor.Crash) {}})
	defer sys.Shutdown(context.Background())
	ctx := context.Background()

	sup, err := sys.Spawn(ctx, supervisor.New(supervisor.Spec{
		Name:     "app",
		Strategy: supervisor.OneForAll,
		MaxR:     3, // at most 3 restarts...
		MaxT:     0, // ...in the default 5 s
		Logger:   quiet,
		Children: []supervisor.ChildSpec{
			supervisor.Worker("db", newWorker("db")),
			supervisor.Worker("cache", newWorker("cache")),
			supervisor.Worker("web", newWorker("web")),
		},
	}))
	if err != nil {
		panic(err)
	}
	v, _ := sys.Ask(ctx, sup, supervisor.WhichChildren{})
	db := v.([]supervisor.ChildInfo)[0].Ref

	fmt.Println("-- db crashes")
	_, err = sys.Ask(ctx, db, "crash")
	fmt.Println("asker got:", err != nil)
	sys.RunUntilIdle(1000)                // let the supervisor do its work
	reply, _ := sys.Ask(ctx, db, "hello") // the old ref reaches the new instance
	fmt.Println(reply)

	fmt.Println("-- orderly shutdown")
	_, _ = sys.Ask(ctx, sup, supervisor.Shutdown{})

	// Output:
	// start db
	// start cache
	// start web
	// -- db crashes
	// asker got: true
	// stop web - actor: restarting
	// stop cache - actor: restarting
	// start db
	// start cache
	// start web
	// db got hello
	// -- orderly shutdown
	// stop web - actor: system shut down
	// stop cache - actor: system shut down
	// stop db - actor: system shut down
}
