package actor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/loop"
)

// greeter answers a name with a greeting.
type greeter struct{ greeted int }

func (g *greeter) Receive(c *actor.Context, msg any) (any, error) {
	name, ok := msg.(string)
	if !ok {
		return nil, actor.Unhandled(msg)
	}
	g.greeted++
	return fmt.Sprintf("hello, %s (#%d)", name, g.greeted), nil
}

// A System runs actors on event loops; plain goroutines reach them with Send
// and Ask.
func ExampleSystem() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	g, err := sys.Spawn(ctx, func() actor.Actor { return &greeter{} })
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"Ada", "Grace"} {
		v, err := sys.Ask(ctx, g, name)
		fmt.Println(v, err)
	}
	_, err = sys.Ask(ctx, g, 42)
	fmt.Println(errors.Is(err, actor.ErrUnknownMessage))
	// Output:
	// hello, Ada (#1) <nil>
	// hello, Grace (#2) <nil>
	// true
}

// funcActor adapts a function to an Actor, for short examples.
type funcActor func(c *actor.Context, msg any) (any, error)

func (f funcActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// Call runs another actor of the same loop synchronously, like a function
// call; a panic there comes back as an error.
func ExampleContext_Call() {
	sys := actor.NewSystem(actor.Config{Loops: 1, OnCrash: func(*actor.Crash) {}})
	defer sys.Shutdown(context.Background())
	ctx := context.Background()

	v, err := sys.Ask(ctx, spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		double, _ := c.Spawn(func() actor.Actor {
			return funcActor(func(c *actor.Context, msg any) (any, error) {
				n := msg.(int)
				if n < 0 {
					panic("negative")
				}
				return 2 * n, nil
			})
		})
		a, err1 := c.Call(double, 21)
		_, err2 := c.Call(double, -1)
		return fmt.Sprint(a, " ", err1, " ", errors.Is(err2, actor.ErrCrashed)), nil
	})), "go")
	fmt.Println(v, err)
	// Output: 42 <nil> true <nil>
}

// Ask reaches an actor on any loop; the continuation runs later inside the
// asking actor, which may use its own state.
func ExampleContext_Ask() {
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer sys.Shutdown(context.Background())
	ctx := context.Background()

	g, _ := sys.Spawn(ctx, func() actor.Actor { return &greeter{} }, actor.OnLoop(1))
	asker := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		reply := c.Defer() // answer our own asker once the greeter has answered
		c.Ask(g, "Ada").Then(func(c *actor.Context, v any, err error) {
			reply.Reply(fmt.Sprintf("loop %d got %q", c.Loop(), v), err)
		})
		return nil, nil
	}), actor.OnLoop(0))
	fmt.Println(sys.Ask(ctx, asker, "go"))
	// Output: loop 0 got "hello, Ada (#1)" <nil>
}

// All waits for several asks (map-reduce); AskTimeout bounds each one.
func ExampleContext_All() {
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer sys.Shutdown(context.Background())
	ctx := context.Background()

	square := func() actor.Actor {
		return funcActor(func(c *actor.Context, msg any) (any, error) { n := msg.(int); return n * n, nil })
	}
	var workers []actor.Ref
	for i := range 4 {
		r, _ := sys.Spawn(ctx, square, actor.OnLoop(i))
		workers = append(workers, r)
	}
	sum := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		reply := c.Defer()
		var ps []actor.Promise
		for i, w := range workers {
			ps = append(ps, c.AskTimeout(w, i+1, time.Second))
		}
		c.All(ps...).Then(func(c *actor.Context, v any, err error) {
			total := 0
			for _, x := range v.([]any) {
				total += x.(int)
			}
			reply.Reply(total, err)
		})
		return nil, nil
	}))
	fmt.Println(sys.Ask(ctx, sum, "go"))
	// Output: 30 <nil>
}

// Blocking runs a function off the loop and brings its result back as a
// continuation on the loop.
func ExampleContext_Blocking() {
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer sys.Shutdown(context.Background())

	a := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		reply := c.Defer()
		c.Blocking(func() (any, error) {
			return "read 3 records from disk", nil // stands for a slow call
		}).Then(func(c *actor.Context, v any, err error) { reply.Reply(v, err) })
		return nil, nil
	}))
	fmt.Println(sys.Ask(context.Background(), a, "go"))
	// Output: read 3 records from disk <nil>
}

// A stopped actor's refs are dead forever, and monitors learn why it stopped.
func ExampleContext_Monitor() {
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer sys.Shutdown(context.Background())
	ctx := context.Background()

	downs := make(chan actor.Down, 1)
	target, _ := sys.Spawn(ctx, func() actor.Actor { return &greeter{} })
	watcher := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		switch m := msg.(type) {
		case string:
			return nil, c.Monitor(target)
		case actor.Down:
			downs <- m
		}
		return nil, nil
	}))
	sys.Ask(ctx, watcher, "watch")
	stopper := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		return nil, c.Stop(target, errors.New("retired"))
	}))
	sys.Ask(ctx, stopper, "stop")
	d := <-downs
	fmt.Println(d.Ref == target, d.Reason)
	_, err := sys.Ask(ctx, target, "anyone?")
	fmt.Println(errors.Is(err, actor.ErrDead))
	// Output:
	// true retired
	// true
}

// In manual mode a System has no goroutines: a test drives it event by
// event on a fake clock, and the same seed replays the same run.
func ExampleSystem_Step() {
	clock := loop.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	sys := actor.NewSystem(actor.Config{Loops: 2, Manual: true, Clock: clock, Seed: 7})
	defer sys.Shutdown(context.Background())

	var seen []string
	ticker := spawn(sys, funcActor(func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "start":
			c.Every(time.Second, "tick")
		case "tick":
			seen = append(seen, fmt.Sprintf("%s roll=%d", c.Now().Format("15:04:05"), c.Rand().IntN(6)+1))
		}
		return nil, nil
	}))
	sys.Send(ticker, "start")
	for len(seen) < 3 && sys.Step() {
	}
	fmt.Println(seen)
	// Output: [00:00:01 roll=3 00:00:02 roll=1 00:00:03 roll=4]
}

func spawn(sys *actor.System, a actor.Actor, opts ...actor.SpawnOption) actor.Ref {
	r, err := sys.Spawn(context.Background(), func() actor.Actor { return a }, opts...)
	if err != nil {
		panic(err)
	}
	return r
}
