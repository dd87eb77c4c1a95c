// Package seam is how the sibling packages of actor (remote, debug) reach
// the parts of an actor.System that applications have no use for: the
// transport's entry into the loops, and the debugger's walk over a loop's
// actors. Package actor keeps them off its exported API and hands them out
// here, through hooks its init sets. This package does not import actor
// (actor imports it), so the types that must name actor.Ref or actor.Actor
// take them as type parameters, and the hooks return the implementation as
// an any that each consumer asserts, once, to the small interface it
// declares where it uses it.
package seam

import (
	"context"
	"time"
)

// Peer is a transport's handle on another node, instantiated as
// Peer[actor.Ref]. The runtime calls it to send to actors on that node; the
// transport implements it (package remote). Every method must be safe from
// any goroutine and must not block: a full outbound queue is an error
// (actor.ErrQueueFull), not a wait. The System's side of the other direction
// (what the transport delivers to local actors) is the value Wire returns.
type Peer[Ref any] interface {
	// Lifecycle carries an acknowledged lifecycle request for the remote
	// actor to from the local actor from, to be handed to the wire's
	// LifecycleLocal on to's node; its outcome comes back like a reply,
	// through the wire's Settle(from's loop, pidx, pgen, ...). It returns
	// the connection epoch it went out on, as Ask.
	Lifecycle(to, from Ref, req LifecycleRequest, pidx, pgen uint32) (epoch uint64, err error)
	// LifecycleWait is Lifecycle from a plain goroutine: it waits for the
	// outcome, until ctx is done.
	LifecycleWait(ctx context.Context, to Ref, req LifecycleRequest) (any, error)
	// Send delivers msg one way to the remote actor to; from is the local
	// sender (zero from a plain goroutine).
	Send(to, from Ref, msg any) error
	// SendMany is Send of each of msgs in order, stopping at the first
	// refused; it returns how many were sent. One batch costs the
	// transport one queueing step rather than one per message.
	SendMany(to, from Ref, msgs []any) (int, error)
	// Ask sends a request whose reply the transport must hand back with
	// the wire's Settle(from's loop, pidx, pgen, ...). It returns the
	// connection epoch the request went out on, so that the wire's FailPeer
	// can fail exactly the asks that may have been lost.
	Ask(to, from Ref, msg any, pidx, pgen uint32) (epoch uint64, err error)
	// Reply answers a request that came from the remote actor to (or from
	// the remote node's goroutine-ask proxy) with correlation (pidx, pgen).
	Reply(to Ref, pidx, pgen uint32, v any, err error)
	// AskWait is a blocking ask from a plain goroutine.
	AskWait(ctx context.Context, to Ref, msg any) (any, error)
	// Monitor asks the remote node to send Down to watcher when target
	// stops; Demonitor cancels it. If the node is or goes down, the
	// transport delivers Down with its node-down error itself.
	Monitor(target, watcher Ref) error
	Demonitor(target, watcher Ref) error
	// Stop asks the remote node to stop target.
	Stop(target Ref, reason error) error
	// Link asks the remote node to link its actor target to the local
	// actor from (the other half of the link is kept by from's loop); if
	// target is dead, the transport delivers from an exit signal with
	// actor.ErrDead, as the wire's LinkLocal does. It returns the
	// connection epoch the request went out on (see the wire's
	// BreakLinks). Unlink removes that half.
	Link(target, from Ref) (epoch uint64, err error)
	Unlink(target, from Ref) error
	// Exit sends the remote actor to an exit signal from the local actor
	// from, to be handed to the wire's SignalLocal on to's node with the
	// same reason and link flag.
	Exit(to, from Ref, reason error, link bool) error
	// AwaitRoom arranges for wake to run once, on a goroutine of the
	// transport and under none of its locks, when the outbound queue
	// that refused a send (actor.ErrQueueFull) has room again, or its
	// connection was lost (the next send then says so). It reports false,
	// and will not call wake, if there is room now or too many wait
	// already: the caller tries again at once or after a pause.
	AwaitRoom(wake func()) bool
	// Node names the peer, for logs and Ref.String.
	Node() string
}

// Wire returns the transport seam of sys, an *actor.System: the value
// through which a transport delivers what the network brings to the
// System's actors, turns wire identities into Refs and back, and tells the
// System that a connection was lost (its methods are documented in
// actor/wire.go). Package actor sets it at init; it panics for anything
// but an *actor.System.
var Wire func(sys any) any

// ActorInfo describes one actor of a loop, instantiated as
// ActorInfo[actor.Ref, actor.Actor], for debuggers (see Debugger).
type ActorInfo[Ref, Actor any] struct {
	Ref         Ref
	Name        string // its actor.Name, if any
	Parent      Ref    // the actor that spawned it, or the zero Ref
	Actor       Actor  // the current instance; nil while suspended. Use it only inside the callback
	Suspended   bool   // crashed and waiting for its supervisor (see actor.Supervised)
	Stashed     int    // messages held for it while suspended
	Incarnation uint32 // bumped at every start and crash
}

// Debugger returns the debugger seam of sys, an *actor.System: a value
// with the method
//
//	VisitActors(ctx context.Context, loop int, f func(ActorInfo[actor.Ref, actor.Actor])) error
//
// documented in actor/inspect.go. Package actor sets it at init; it panics
// for anything but an *actor.System.
var Debugger func(sys any) any

// LifecycleOp names an acknowledged lifecycle request.
type LifecycleOp uint8

// The acknowledged lifecycle requests: actor.Context's StopAsync,
// SuspendAsync, RestartAsync and AliveAsync (and System.Stop and Kill).
const (
	LifecycleStop LifecycleOp = iota + 1
	LifecycleSuspend
	LifecycleRestart
	LifecycleAlive
)

// LifecycleRequest is an acknowledged lifecycle request as a transport
// carries it to another node (Peer.Lifecycle, the wire's LifecycleLocal).
// Reason is the stop or suspend reason; Timeout is as for StopAsync (> 0
// a deadline, < 0 at once without Terminate, 0 none).
type LifecycleRequest struct {
	Op      LifecycleOp
	Reason  error
	Timeout time.Duration
}

// Sim is set by package actor's init: Sim(sys) returns, as an any, the
// simulator's view of sys (a *actor.System in manual mode), with the
// methods
//
//	NextTimer() (time.Time, bool)        // earliest timer of any loop, on its clock
//	Queued() bool                        // an event is queued on some loop (timers aside)
//	SetBlocking(run func(job func()) error) // Context.Blocking jobs go to run, not to the pool
var Sim func(sys any) any

// Promises is set by package actor's init: Promises() returns, as an any,
// the promise view, with the methods
//
//	New(c *actor.Context) actor.Promise                // Context.Promise's promise, without its resolve closure
//	Resolve(p actor.Promise, v any, err error)         // settle it: on its loop, the first call only
//	Then(p actor.Promise, k Cont[*actor.Context], arg int)  // Promise.Then of k.Continue with arg
//	AfterFunc(c *actor.Context, d time.Duration, k Cont[*actor.Context], arg int) actor.Timer // Context.AfterFunc of k.Continue(c, arg, nil, nil)
var Promises func() any

// Cont is a continuation that costs no closure, instantiated as
// Cont[*actor.Context]: a pointer (a quorum call, say) whose method runs
// with an argument the promise keeps (the position of the node asked).
type Cont[Context any] interface {
	Continue(c Context, arg int, v any, err error)
}

// RemoteChild is a supervisor's child running on another node, as the
// debugger shows it: package supervisor's supervisor actor has a method
// RemoteChildren() []RemoteChild that package debug reads between events.
type RemoteChild struct {
	ID         string // the child's id in its spec
	Ref        string // its ref, e.g. "<b/0.3.1>"
	Node       string // the address of its node
	Supervisor bool   // it is a supervisor itself
}

// LinkEpochBits: the epoch a transport gives a link (seam.Peer.Link's, or
// the wire's LinkLocal's) is a connection epoch in its low LinkEpochBits
// bits and, above them, a mark naming what made the link (0 for the links
// local actors make; package remote marks the halves another node's
// actors make with that node's incarnation). The wire's BreakLinks
// compares the low bits only; BreakMarkedLinks ends the links of a mark.
const LinkEpochBits = 40

// Lazy is a message that a transport read from the network and left
// encoded: the wire's QueueSend and QueueAsk take a *Lazy as msg, and the
// target's loop decodes it (Dec.DecodeLazy) just before the handler
// runs, so that decoding is not done on the network goroutine. Handlers,
// hooks and Forward never see a *Lazy: they see the decoded value. Raw and
// Type belong to the transport; the runtime only passes them back.
type Lazy struct {
	Raw  []byte      // the encoded value (the transport keeps it unchanged until decoded)
	Type any         // the transport's description of the value's type
	Dec  LazyDecoder // decodes it
}

// LazyDecoder decodes a Lazy on the target's loop. scratch is the loop's
// own slot for the decoder's state (nil on first use, kept by the loop for
// the next call): a loop decodes one message at a time, so the state needs
// no lock. A failure is an error naming the cause; the runtime then
// handles the message as one its target could not take: an ask is
// answered with the error, a one-way message is dropped and reported to
// the hooks (EventDropped). count is true when a failure drops a one-way
// message that was bound for a handler (the decoder counts it); false for
// an ask, and for a message decoded only to be shown to the hooks.
type LazyDecoder interface {
	DecodeLazy(l *Lazy, scratch *any, count bool) (any, error)
}
