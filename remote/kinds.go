package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/actord/actord/actor"
)

// ErrKindArgs means a remote spawn's arguments are not of the type its
// kind takes (RegisterKindOf).
var ErrKindArgs = errors.New("remote: spawn arguments of the wrong type")

// RegisterKindOf registers a kind whose spawn arguments are of type A, so
// that f gets them typed: a spawn with arguments of another type fails with
// an error naming both types (ErrKindArgs on this node; on the spawning node
// an *Error with its message), and one without arguments gives f the zero
// A. A must be registered (Register) under the same name on both nodes, as
// any message type; the common types already are.
func RegisterKindOf[A any](n *Node, name string, f func(args A) (actor.Factory, error)) {
	n.RegisterKind(name, func(args any) (actor.Factory, error) {
		if args == nil {
			var zero A
			return f(zero)
		}
		a, ok := args.(A)
		if !ok {
			return nil, fmt.Errorf("%w: kind %q takes %v, got %T", ErrKindArgs, name, reflect.TypeFor[A](), args)
		}
		return f(a)
	})
}

// SpawnOf is Node.Spawn with arguments typed as the kind registered with
// RegisterKindOf[A] takes them.
func SpawnOf[A any](ctx context.Context, n *Node, addr, kind string, args A) (actor.Ref, error) {
	return n.Spawn(ctx, addr, kind, args)
}
