package actor

import (
	"context"
	"time"

	"github.com/actord/actord/internal/seam"
)

// mailbox is the way from a Ref to its actor: every operation on a Ref
// (by a Context, a System or the runtime itself) is one call of it, on
// r.box(). It has two implementations: the actor's loop (*loopState,
// mailbox_loop.go) for an actor of this node, and the actor's node
// (*remoteTarget, mailbox_peer.go, which calls the transport's peer) for
// one of another node; noMailbox stands for the zero Ref. Which one a Ref
// holds is fixed when the Ref is made, and Ref.box is the only code that
// looks: the package decides between local and remote nowhere else.
//
// to (or target) is the Ref the call was made on; from is the actor on
// whose behalf it is made (the zero Ref for a plain goroutine or the
// runtime). o says where the call comes from, which a loop needs to choose
// a queue (see origin).
//
// Adding an operation: a method here, its loop implementation, its peer
// implementation (a seam.Peer method and, in package remote, a frame), and a
// Context or System method that is one call of it (docs/architecture.md).
type mailbox interface {
	// send queues a one-way message.
	send(o origin, to, from Ref, msg any) error
	// sendMany queues the one-way messages msgs in order, stopping at the
	// first refused: it returns how many were queued and why it stopped.
	sendMany(o origin, to, from Ref, msgs []any) (int, error)
	// notify queues a runtime notification (a Down): in order with from's
	// messages, and, when to's queue is full, on its control queue rather
	// than lost.
	notify(o origin, to Ref, msg any) error
	// ask queues a request whose reply settles promise (pidx, pgen) of
	// from's loop, o.ls (for a remote actor, through wire.Settle).
	ask(o origin, to, from Ref, msg any, pidx, pgen uint32) error
	// askWait asks from a plain goroutine of system s and waits for the
	// reply, until ctx is done.
	askWait(ctx context.Context, s *System, to Ref, msg any) (any, error)
	// askTimeout is askWait bounded by d rather than a context.
	askTimeout(s *System, to Ref, msg any, d time.Duration) (any, error)
	// sendWait sends one way from a plain goroutine, waiting for room
	// while the target's queue is full, until ctx is done.
	sendWait(ctx context.Context, to Ref, msg any) error
	// awaitRoom arranges for wake to run once when the queue that refused
	// a send to the target may have room again; false (and no wake) if it
	// has room now or cannot tell (Context.AwaitRoom).
	awaitRoom(o origin, wake func()) bool
	// lifecycleWait carries out an acknowledged lifecycle request from a
	// plain goroutine of system s and waits for its outcome.
	lifecycleWait(ctx context.Context, s *System, r Ref, q seam.LifecycleRequest) (any, error)
	// forward hands on the message e, addressed to e.to, with its sender
	// and reply route (Context.Forward).
	forward(o origin, e envelope) error
	// reply answers the request with correlation (pidx, pgen) that the
	// actor to (an asker) sent.
	reply(to Ref, pidx, pgen uint32, v any, err error)
	// halt stops to with reason (Context.Stop).
	halt(o origin, to Ref, reason error) error
	// exit sends to the exit signal of from, with reason: one that
	// Context.Exit sent (link false; a reason matching ErrKilled is a
	// kill), or that of a linked actor that stopped (link true).
	exit(o origin, to, from Ref, reason error, link bool) error
	// monitor asks for a Down to watcher when target stops; demonitor
	// cancels it.
	monitor(o origin, target, watcher Ref) error
	demonitor(o origin, target, watcher Ref) error
	// link and unlink make and remove the link between the running actor
	// of c and r, both halves.
	link(c *Context, r Ref) error
	unlink(c *Context, r Ref) error
	// acknowledge runs a lifecycle request (StopAsync, SuspendAsync,
	// RestartAsync, AliveAsync) for r and settles p, of c's loop, with its
	// outcome. An error means nothing was queued: the caller settles p
	// with it.
	acknowledge(c *Context, p Promise, r Ref, a ack) error
	// inspect runs f inside the actor r, on its loop, for a goroutine of
	// system s (System.Inspect).
	inspect(ctx context.Context, s *System, r Ref, f func(*Context, Actor)) error
	// loopIndex and format describe the Ref, for Ref.Loop and Ref.String.
	loopIndex() int
	format(idx, gen uint32) string
}

// origin is where an operation on a Ref comes from, which decides how a
// loop queues it (see loopState.enqueue): an actor running on loop ls, or,
// when ls is nil, a goroutine of no loop, which posts as how says.
type origin struct {
	ls  *loopState
	how postHow
	// lend: an ask from loop ls may borrow an idle target loop once the
	// asking handler returns (loop.PostFrom); see Config.LendTimedAsks.
	lend bool
}

// postHow is how a goroutine that is no loop's posts to a loop.
type postHow uint8

const (
	// postWake queues and wakes the loop (a plain goroutine).
	postWake postHow = iota
	// postRun runs the loop's pass on the calling goroutine if the loop is
	// idle, else wakes it (loop.PostRun): a transport's network goroutine.
	postRun
	// postQuiet queues without waking; the caller Kicks the loop later
	// (loop.PostQuiet): a transport queueing one network read.
	postQuiet
)

// fromNet and fromNetQuiet are the origins of requests a transport
// delivers (wire).
var (
	fromNet      = origin{how: postRun}
	fromNetQuiet = origin{how: postQuiet}
)

// ack is an acknowledged lifecycle request (lifecycle.go): op runs on r's
// loop, with late set if the request got there after its deadline, or
// with no deadline at all (brutal). deadOK makes a dead r an answer
// (ErrDead as the value) rather than an error.
type ack struct {
	req     seam.LifecycleRequest // what a transport carries to another node
	timeout time.Duration         // > 0: deadline; < 0: brutal; 0: none
	deadOK  bool
	op      func(t *loopState, s *slot, late bool) (any, error)
}

// noMailbox is the zero Ref's: every operation fails with ErrInvalidRef.
type noMailbox struct{}

func (noMailbox) send(origin, Ref, Ref, any) error                { return ErrInvalidRef }
func (noMailbox) notify(origin, Ref, any) error                   { return ErrInvalidRef }
func (noMailbox) sendMany(origin, Ref, Ref, []any) (int, error)   { return 0, ErrInvalidRef }
func (noMailbox) ask(origin, Ref, Ref, any, uint32, uint32) error { return ErrInvalidRef }
func (noMailbox) forward(origin, envelope) error                  { return ErrInvalidRef }
func (noMailbox) reply(Ref, uint32, uint32, any, error)           {}
func (noMailbox) halt(origin, Ref, error) error                   { return ErrInvalidRef }
func (noMailbox) exit(origin, Ref, Ref, error, bool) error        { return ErrInvalidRef }
func (noMailbox) monitor(origin, Ref, Ref) error                  { return ErrInvalidRef }
func (noMailbox) demonitor(origin, Ref, Ref) error                { return ErrInvalidRef }
func (noMailbox) link(*Context, Ref) error                        { return ErrInvalidRef }
func (noMailbox) unlink(*Context, Ref) error                      { return ErrInvalidRef }
func (noMailbox) acknowledge(*Context, Promise, Ref, ack) error   { return ErrInvalidRef }
func (noMailbox) loopIndex() int                                  { return -1 }
func (noMailbox) format(uint32, uint32) string                    { return "<nil>" }
func (noMailbox) askWait(context.Context, *System, Ref, any) (any, error) {
	return nil, ErrInvalidRef
}
func (noMailbox) sendWait(context.Context, Ref, any) error { return ErrInvalidRef }
func (noMailbox) awaitRoom(origin, func()) bool            { return false }
func (noMailbox) askTimeout(*System, Ref, any, time.Duration) (any, error) {
	return nil, ErrInvalidRef
}
func (noMailbox) lifecycleWait(context.Context, *System, Ref, seam.LifecycleRequest) (any, error) {
	return nil, ErrInvalidRef
}
func (noMailbox) inspect(context.Context, *System, Ref, func(*Context, Actor)) error {
	return ErrInvalidRef
}
