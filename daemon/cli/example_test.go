package cli_test

import (
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/daemon/cli"
)

// A daemon binary that hosts a kind of its own, with actord's command line
// (`run`, `debug`): this is the whole of its main.go but the imports.
// Clients spawn "echo" with client.Client.Spawn; its argument, a string,
// prefixes every reply.
func ExampleMain() {
	cli.Main(daemon.Kinds{
		"echo": daemon.Kind(func(prefix string) (actor.Factory, error) {
			return func() actor.Actor { return echo(prefix) }, nil
		}),
	})
}

type echo string

func (e echo) Receive(_ *actor.Context, msg any) (any, error) {
	return string(e) + fmt.Sprint(msg), nil
}
