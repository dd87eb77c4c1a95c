// Package counter is the actor kind of the customd example, shared by the
// daemon binary that hosts it and the clients that spawn it: its spawn
// arguments (Args), its messages (Add, and the strings "incr" and "get")
// and RegisterTypes, which both sides call.
package counter

import (
	"errors"
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Args are a counter's spawn arguments. From a client they travel as a
// msgpack map of these field names; the daemon decodes them into Args
// (daemon.Kind).
type Args struct {
	Start int64 // the first value
	Step  int64 // what "incr" adds; not 0
}

// Add asks a counter to add N; the reply is the new value (int64).
type Add struct{ N int64 }

// ErrZeroStep is New's answer to a Step of 0.
var ErrZeroStep = errors.New("counter: step 0")

// RegisterTypes registers the counter's message types on n, under the
// same names on the daemon and on its clients.
func RegisterTypes(n *remote.Node) error {
	return remote.Register[Add](n, "customd.counter.Add")
}

// New makes a counter from its arguments: "incr" adds Step, Add adds N,
// "get" reads; every one replies with the value (int64).
func New(a Args) (actor.Factory, error) {
	if a.Step == 0 {
		return nil, ErrZeroStep
	}
	return func() actor.Actor { return &counter{n: a.Start, step: a.Step} }, nil
}

type counter struct{ n, step int64 }

func (c *counter) Receive(_ *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Add:
		c.n += m.N
	case string:
		switch m {
		case "incr":
			c.n += c.step
		case "get":
		default:
			return nil, fmt.Errorf("counter: unknown request %q", m)
		}
	default:
		return nil, fmt.Errorf("counter: unknown message %T", msg)
	}
	return c.n, nil
}
