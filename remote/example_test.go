package remote_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// startNode starts a node of its own actor system on a free loopback port.
func startNode(ctx context.Context, name string, key []byte) (*actor.System, *remote.Node, func()) {
	sys := actor.NewSystem(actor.Config{})
	n := remote.New(sys, remote.Config{Name: name, ClusterKey: key, Logger: slog.New(slog.DiscardHandler)})
	stop, err := n.Start(ctx)
	if err != nil {
		panic(err)
	}
	return sys, n, func() { stop(); _ = sys.Shutdown(ctx) }
}

// greeter answers a name with its greeting.
type greeter struct{ greeting string }

func (g *greeter) Receive(c *actor.Context, msg any) (any, error) {
	name, ok := msg.(string)
	if !ok {
		return nil, actor.ErrUnknownMessage
	}
	return g.greeting + ", " + name, nil
}

// Two nodes in one process: node a spawns an actor of a kind registered on
// node b and asks it, as it would ask a local actor.
func Example() {
	ctx := context.Background()
	key := []byte("example cluster key of 32 bytes!") // from remote.ReadClusterKey in production
	sysA, a, stopA := startNode(ctx, "a", key)
	defer stopA()
	_, b, stopB := startNode(ctx, "b", key)
	defer stopB()

	b.RegisterKind("greeter", func(args any) (actor.Factory, error) {
		greeting, _ := args.(string)
		return func() actor.Actor { return &greeter{greeting: greeting} }, nil
	})
	g, err := a.Spawn(ctx, b.Addr(), "greeter", "hello")
	if err != nil {
		panic(err)
	}
	v, err := sysA.Ask(ctx, g, "world")
	fmt.Println(v, err, g.IsRemote())
	// Output: hello, world <nil> true
}

var errOutOfStock = errors.New("out of stock")

// watcherActor links to the actor it is sent and reports the exit signal
// it traps.
type watcherActor struct{ done chan<- actor.Exited }

func (w *watcherActor) Start(c *actor.Context) error {
	c.TrapExits(true)
	return nil
}

func (w *watcherActor) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Ref:
		return nil, c.Link(m)
	case actor.Exited:
		w.done <- m
	}
	return nil, nil
}

// quitter stops with errOutOfStock when asked to.
type quitter struct{}

func (quitter) Receive(c *actor.Context, msg any) (any, error) {
	return nil, c.Stop(c.Self(), errOutOfStock)
}

// A link across nodes: when the actor on node b stops, the actor linked to
// it on node a gets its exit signal (here trapped as actor.Exited), with a
// reason that keeps its identity because both nodes registered it.
func Example_link() {
	ctx := context.Background()
	if err := remote.RegisterError("example.ErrOutOfStock", errOutOfStock); err != nil {
		panic(err)
	}
	key := []byte("example cluster key of 32 bytes!")
	sysA, a, stopA := startNode(ctx, "a", key)
	defer stopA()
	_, b, stopB := startNode(ctx, "b", key)
	defer stopB()

	b.RegisterKind("quitter", func(any) (actor.Factory, error) {
		return func() actor.Actor { return quitter{} }, nil
	})
	q, err := a.Spawn(ctx, b.Addr(), "quitter", nil)
	if err != nil {
		panic(err)
	}
	done := make(chan actor.Exited, 1)
	w, err := sysA.Spawn(ctx, func() actor.Actor { return &watcherActor{done: done} })
	if err != nil {
		panic(err)
	}
	if _, err := sysA.Ask(ctx, w, q); err != nil { // w links to q
		panic(err)
	}
	// q stops as it answers this; w's link request reached node b before it
	if _, err := sysA.Ask(ctx, q, "stop"); err != nil {
		panic(err)
	}
	e := <-done
	fmt.Println(e.From == q, errors.Is(e.Reason, errOutOfStock))
	// Output: true true
}

// A sturdy ref: node b exports an actor under a name and gives out the
// string; node a, which only has the string, turns it into a live ref.
func Example_sturdyRef() {
	ctx := context.Background()
	key := []byte("example cluster key of 32 bytes!")
	sysA, a, stopA := startNode(ctx, "a", key)
	defer stopA()
	sysB, b, stopB := startNode(ctx, "b", key)
	defer stopB()

	g, err := sysB.Spawn(ctx, func() actor.Actor { return &greeter{greeting: "welcome"} })
	if err != nil {
		panic(err)
	}
	s, err := b.Export("greeter", 1, g) // write it in a config file, a database, an email...
	if err != nil {
		panic(err)
	}
	r, err := a.Resolve(ctx, s)
	if err != nil {
		panic(err)
	}
	v, err := sysA.Ask(ctx, r, "back")
	fmt.Println(v, err)

	b.Export("greeter", 2, g) // a new generation revokes the old string
	_, err = a.Resolve(ctx, s)
	fmt.Println(errors.Is(err, actor.ErrDead))
	// Output:
	// welcome, back <nil>
	// true
}
