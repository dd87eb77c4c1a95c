package actor

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
	// m is the way to the actor (mailbox.go): its loop (*loopState) for
	// an actor of this node, its node and wire identity (*remoteTarget)
	// for one of another node, nil for the zero Ref.
	m   mailbox
	idx uint32
	gen uint32
}

// box returns the mailbox every operation on r goes through. It is the one
// place that tells a local actor from a remote one, and the zero Ref from
// both: the rest of the package calls r.box() and never asks.
func (r Ref) box() mailbox {
	if r.m == nil {
		return noMailbox{}
	}
	return r.m
}

// on reports whether r names an actor of loop l.
func (r Ref) on(l *loopState) bool { return r.m == mailbox(l) }

// IsZero reports whether r is the zero (invalid) Ref.
func (r Ref) IsZero() bool { return r.m == nil }

// IsRemote reports whether r names an actor on another node.
func (r Ref) IsRemote() bool {
	_, ok := r.m.(*remoteTarget)
	return ok
}

// Loop returns the index of the loop the actor lives on (on its own node),
// or -1 for the zero Ref.
func (r Ref) Loop() int { return r.box().loopIndex() }

// String renders r as <loop.slot.generation> for a local actor,
// <node/loop.slot.generation> for a remote one, or <nil>.
func (r Ref) String() string { return r.box().format(r.idx, r.gen) }

// ID returns the ref's loop, slot and generation numbers, for logs and
// debuggers. They identify the actor but confer no authority: there is no way
// back from them to a Ref.
func (r Ref) ID() (loop int, slot, gen uint32) { return r.Loop(), r.idx, r.gen }
