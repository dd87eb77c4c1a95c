package daemon

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Kinds are the actor kinds a daemon hosts for its clients, by name
// (Config.Kinds): a client holding the daemon's capability spawns them
// with client.Client.Spawn, on this daemon or through another member's
// gateway. Make typed ones with Kind; any remote.Kind works too.
type Kinds map[string]remote.Kind

// Kind makes a kind whose spawn arguments are of type A, so that f gets
// them typed, as remote.RegisterKindOf does for the kinds of a remote
// node. Arguments reach a kind in one of three forms, all accepted:
//
//   - nil (no arguments): f gets the zero A;
//   - an A (an in-process call, or a registered A sent with
//     remote.SpawnOf): f gets it as it is;
//   - anything else, such as the plain msgpack values (map[string]any,
//     []any, string, int64 ...) that a gateway decodes a client's arguments
//     into: re-encoded with msgpack and decoded into A, strictly (a struct
//     field the arguments name but A lacks is an error). A struct travels
//     from a client as a map of its field names, so give the client the
//     same type, or one with the same field names and msgpack tags.
//
// Arguments that do not decode into A fail with an error matching
// remote.ErrKindArgs that names A and msgpack's reason; the gateway adds
// the kind's name, and the client gets it all in an error matching
// client.ErrSpawn. The arguments come from the network: the remote node
// bounded them (its MaxFrame, the lengths and nesting a payload may
// declare) before they got here, and decoding them again allocates no more
// than they already hold. actor.Ref fields do not survive the plain form
// (a gateway decodes them as arrays): pass refs in a message once the
// actor runs.
func Kind[A any](f func(args A) (actor.Factory, error)) remote.Kind {
	return func(args any) (actor.Factory, error) {
		a, err := argsOf[A](args)
		if err != nil {
			return nil, err
		}
		return f(a)
	}
}

// argsOf turns a kind's arguments into an A (see Kind).
func argsOf[A any](args any) (A, error) {
	var a A
	switch v := args.(type) {
	case nil:
		return a, nil
	case A:
		return v, nil
	}
	fail := func(err error) (A, error) {
		var zero A
		return zero, fmt.Errorf("%w: want %v, got %T: %w", remote.ErrKindArgs, reflect.TypeFor[A](), args, err)
	}
	b, err := msgpack.Marshal(args)
	if err != nil {
		return fail(err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(&a); err != nil {
		return fail(err)
	}
	return a, nil
}
