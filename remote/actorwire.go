package remote

import (
	"context"
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// How a node reaches its System: package actor keeps its transport seam
// off its exported API and hands it out through internal/seam; what the
// node needs of it is declared here, where it is used.

// actorPeer is what the runtime calls to reach actors of another node:
// *peer implements it.
type actorPeer = seam.Peer[actor.Ref]

var _ actorPeer = (*peer)(nil)

// actorWire is what a node needs of its System's wire: delivering what the
// network brings to local actors, turning wire identities into Refs and
// back, and telling the System that a connection was lost. The methods are
// documented on actor's implementation (actor/wire.go, actor/wireid.go).
type actorWire interface {
	DeliverSignal(to actor.Ref, msg any) error
	QueueSend(to, from actor.Ref, msg any) error
	QueueAsk(to, from actor.Ref, msg any, pidx, pgen uint32) error
	Kick(to actor.Ref)
	Settle(loop uint16, pidx, pgen uint32, v any, err error)
	FailPeer(p actorPeer, epoch uint64, err error)
	MonitorLocal(target, watcher actor.Ref, noproc func()) error
	DemonitorLocal(target, watcher actor.Ref) error
	LinkLocal(target, from actor.Ref, epoch func() (uint64, bool), noproc func()) error
	UnlinkLocal(target, from actor.Ref) error
	LinkSpawned(owner, r actor.Ref, link func() (uint64, error), dead func(), then func(error)) error
	SpawnLinked(ctx context.Context, f actor.Factory, owner actor.Ref, epoch func() (uint64, bool), lost error, spawned func(actor.Ref, error) bool) (actor.Ref, error)
	SignalLocal(to, from actor.Ref, reason error, link bool) error
	BreakLinks(p actorPeer, epoch uint64, reason error)
	BreakMarkedLinks(p actorPeer, mark uint64, reason error)
	BreakOwnLinks(p actorPeer, epoch uint64, reason error)
	StopLocal(target actor.Ref, reason error) error
	LifecycleLocal(target actor.Ref, req seam.LifecycleRequest, done func(v any, err error)) error
	LocalID(r actor.Ref) (actor.WireID, bool)
	Resolve(id actor.WireID) (actor.Ref, bool)
	RemoteRef(p actorPeer, id actor.WireID) actor.Ref
	RemoteRefs(p actorPeer) int
	Remote(r actor.Ref) (actorPeer, actor.WireID, bool)
}

// wireOf returns sys's wire. It asserts once per node, not per message; it
// can only fail if package actor's wire and actorWire disagree, which every
// test that makes a node would show.
func wireOf(sys *actor.System) actorWire {
	w, ok := seam.Wire(sys).(actorWire)
	if !ok {
		panic(fmt.Sprintf("remote: the actor runtime's wire %T lacks a method remote needs (actorWire)", seam.Wire(sys)))
	}
	return w
}

// goroutineLoop is the Loop of a WireID that names no actor but a plain
// goroutine waiting in a blocking ask; its (pidx, pgen) correlation is the
// transport's own.
const goroutineLoop = 0xFFFF
