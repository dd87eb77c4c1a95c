package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/event"
)

// Every daemon has one event bus: its actors, remote node, cluster
// membership and services emit on it, and applications subscribe to it.
func ExampleDaemon_Bus() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "actord-example")
	defer os.RemoveAll(dir)
	d, err := daemon.Start(ctx, daemon.Config{
		Name: "a", Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: daemon.Off,
		DataDir: filepath.Join(dir, "data"), Loops: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Shutdown(context.Background())

	// Membership is stateful: a subscriber gets the current one at once.
	members, _ := event.Subscribe[event.Membership](d.Bus())
	for _, m := range (<-members.Out()).Members {
		fmt.Println("member", m.Name, "self:", m.Self)
	}

	// The actor system's lifecycle, filtered by a query.
	crashes, _ := event.Subscribe[event.ActorCrashed](d.Bus(), event.MatchQuery("Loop = 0"))
	ref, _ := d.System().Spawn(ctx, func() actor.Actor { return fragile{} })
	d.System().Send(ref, "hello")
	c := <-crashes.Out()
	fmt.Println("crashed:", c.Actor == ref, c.Crash.Value)
	// Output:
	// member a self: true
	// crashed: true oops
}

type fragile struct{}

func (fragile) Receive(*actor.Context, any) (any, error) { panic("oops") }

// A kind with typed arguments: a client's arguments travel as msgpack and
// reach the kind's function decoded into its argument type.
func ExampleKind() {
	type greeting struct {
		Word  string
		Times int
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "actord-example")
	defer os.RemoveAll(dir)
	d, err := daemon.Start(ctx, daemon.Config{
		Name: "a", Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: daemon.Off,
		DataDir: filepath.Join(dir, "data"), Loops: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Kinds: daemon.Kinds{"greeter": daemon.Kind(func(g greeting) (actor.Factory, error) {
			return func() actor.Actor { return greeter(strings.Repeat(g.Word+" ", g.Times)) }, nil
		})},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Shutdown(context.Background())

	capability, _ := client.ReadCapabilityFile(d.Info().CapabilityFile)
	c, err := client.Dial(ctx, capability, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ref, err := c.Spawn(ctx, "", "greeter", greeting{Word: "hello", Times: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := c.Ask(ctx, ref, "world")
	fmt.Println(v)
	_, err = c.Spawn(ctx, "", "greeter", "hello")
	fmt.Println(errors.Is(err, client.ErrSpawn))
	// Output:
	// hello hello world
	// true
}

type greeter string

func (g greeter) Receive(_ *actor.Context, msg any) (any, error) {
	return string(g) + fmt.Sprint(msg), nil
}
