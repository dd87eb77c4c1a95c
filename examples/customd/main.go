// Command customd is an actord daemon that hosts two kinds of its own: a
// counter (package counter, with typed arguments) and a greeter (a string
// argument). It has the stock actord's command line (package daemon/cli):
//
//	go build ./examples/customd
//	./customd run --data-dir /tmp/c     # then spawn "counter" or "greeter" with package client
//	./customd debug actors --token-file /tmp/c/debug.token
package main

import (
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/daemon/cli"
	"github.com/actord/actord/examples/customd/counter"
)

func main() {
	cli.Main(daemon.Kinds{
		"counter": daemon.Kind(counter.New),
		"greeter": daemon.Kind(greeter),
	}, cli.Types(counter.RegisterTypes))
}

// greeter answers every message with greeting ("hello" if none), a comma
// and the message.
func greeter(greeting string) (actor.Factory, error) {
	if greeting == "" {
		greeting = "hello"
	}
	return func() actor.Actor { return greet(greeting) }, nil
}

type greet string

func (g greet) Receive(_ *actor.Context, msg any) (any, error) {
	return fmt.Sprintf("%s, %v", g, msg), nil
}
