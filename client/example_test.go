package client_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	"github.com/actord/actord/daemon"
)

// Start a daemon in-process with a cluster key, register an echo kind on
// its gateway, dial the daemon with the capability from its file and the
// cluster key, spawn an echo actor and ask it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "actord-example")
	defer os.RemoveAll(dir)

	// The cluster key: only nodes holding it can connect to the daemon.
	// Readable by its owner only, or the daemon and the client refuse it.
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(rand.Text()+"\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	// The daemon (normally `actord run --cluster-key-file ...`, in another
	// process or machine).
	d, err := daemon.Start(ctx, daemon.Config{
		Name: "a", Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: daemon.Off,
		DataDir: filepath.Join(dir, "data"), Loops: 1, ClusterKeyFile: keyFile,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Shutdown(context.Background())
	d.Gateway().RegisterKind("echo", func(args any) (actor.Factory, error) {
		return func() actor.Actor { return echoActor{} }, nil
	})

	// The client: whoever can read the capability file, and holds the
	// cluster key, may use the daemon.
	capability, err := client.ReadCapabilityFile(d.Info().CapabilityFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := client.Dial(ctx, capability, client.Options{ClusterKeyFile: keyFile})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	members, err := c.Members(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range members {
		fmt.Println("member", m.Name, "self:", m.Self)
	}
	ref, err := c.Spawn(ctx, "a", "echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	reply, err := c.Ask(ctx, ref, "hello")
	fmt.Println(reply, err)
	// Output:
	// member a self: true
	// hello <nil>
}

type echoActor struct{}

func (echoActor) Receive(c *actor.Context, msg any) (any, error) { return msg, nil }
