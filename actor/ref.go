package actor

import "fmt"

// Ref names one actor. It is the only authority to message the actor: a Ref
// cannot be built from raw numbers outside this package, only obtained by
// spawning the actor or receiving the Ref in a message.
//
// A Ref names a slot and a generation. A supervisor restart keeps both, so
// refs held by others reach the new instance. Once the actor stops, the
// slot's generation moves on and the Ref is dead forever: messages to it fail
// with ErrDead and never reach a later actor in the same slot.
//
// Refs are small values, comparable with ==, and usable as map keys. The zero
// Ref is invalid.
type Ref struct {
	l   *loopState    // local actor: its loop
	r   *remoteTarget // remote actor: its node and wire identity
	idx uint32
	gen uint32
}

// IsZero reports whether r is the zero (invalid) Ref.
func (r Ref) IsZero() bool { return r.l == nil && r.r == nil }

// Loop returns the index of the loop the actor lives on (on its own node),
// or -1 for the zero Ref.
func (r Ref) Loop() int {
	switch {
	case r.l != nil:
		return r.l.id
	case r.r != nil:
		return int(r.r.id.Loop)
	}
	return -1
}

// String renders r as <loop.slot.generation> for a local actor,
// <node/loop.slot.generation> for a remote one, or <nil>.
func (r Ref) String() string {
	switch {
	case r.l != nil:
		return fmt.Sprintf("<%d.%d.%d>", r.l.id, r.idx, r.gen)
	case r.r != nil:
		return fmt.Sprintf("<%s/%d.%d.%d>", r.r.peer.Node(), r.r.id.Loop, r.idx, r.gen)
	}
	return "<nil>"
}

// ID returns the ref's loop, slot and generation numbers, for logs and
// debuggers. They identify the actor but confer no authority: there is no way
// back from them to a Ref.
func (r Ref) ID() (loop int, slot, gen uint32) { return r.Loop(), r.idx, r.gen }
