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
	// The actor's mailbox (mailbox.go), set once when the Ref is made: its
	// loop for an actor of this node, its node and wire identity for one
	// of another node; neither for the zero Ref. Two typed pointers rather
	// than one interface field: the same 24 bytes, but == and map hashing
	// of a Ref compare memory instead of going through the interface's
	// type (BenchmarkRefAsMapKey).
	l   *loopState
	r   *remoteTarget
	idx uint32
	gen uint32
}

// box returns the mailbox every operation on r goes through. It is the one
// place that tells a local actor from a remote one, and the zero Ref from
// both: the rest of the package calls r.box() and never asks.
func (r Ref) box() mailbox {
	if r.l != nil {
		return r.l
	}
	if r.r != nil {
		return r.r
	}
	return noMailbox{}
}

// send and ask are box().send and box().ask for the two hottest
// operations, with the same decision written out so that a local target
// is a static call the compiler can inline into rather than a call
// through the interface (BenchmarkFanIn: 32.5 ns/op before the mailbox,
// 36.8 with the interface call). They belong with box: the decision is
// made here and nowhere else.
func (r Ref) send(o origin, from Ref, msg any) error {
	if l := r.l; l != nil {
		if o.ls == nil && o.how == postWake { // a plain goroutine: one post, as before the mailbox
			return postErr(l.loop.Post(envelope{kind: kSend, to: r, from: from, msg: msg}))
		}
		return l.send(o, r, from, msg)
	}
	return r.box().send(o, r, from, msg)
}

func (r Ref) ask(o origin, from Ref, msg any, pidx, pgen uint32) error {
	if r.l != nil {
		return r.l.ask(o, r, from, msg, pidx, pgen)
	}
	return r.box().ask(o, r, from, msg, pidx, pgen)
}

// on reports whether r names an actor of loop l.
func (r Ref) on(l *loopState) bool { return r.l == l }

// IsZero reports whether r is the zero (invalid) Ref.
func (r Ref) IsZero() bool { return r.l == nil && r.r == nil }

// IsRemote reports whether r names an actor on another node.
func (r Ref) IsRemote() bool { return r.r != nil }

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
