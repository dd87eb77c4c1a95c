package actor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/actord/actord/internal/seam"
)

// The remote side of the mailbox: how an operation on a Ref of another
// node reaches its actor, through the transport's peer (package remote).
// The transport delivers it on the other node through that node's wire,
// which hands it to the loop's side of the mailbox (mailbox_loop.go).

// nodePeer is a transport's handle on another node (package remote
// implements it): what a remote target calls. It is declared in
// internal/seam, where the transport can name it without this package
// exporting it.
type nodePeer = seam.Peer[Ref]

// ErrRemoteUnsupported means an Inspect named an actor of another node:
// the remote layer does not carry a function to run. It matches
// ErrNotLocal.
var ErrRemoteUnsupported = fmt.Errorf("%w: not yet supported for a remote ref", ErrNotLocal)

// remoteTarget is the mailbox of an actor of another node: the peer that
// reaches its node and its wire identity there. Refs to one remote actor
// through one peer share one remoteTarget (wire.RemoteRef), so they
// compare equal.
type remoteTarget struct {
	peer nodePeer
	id   WireID
}

func (t *remoteTarget) send(_ origin, to, from Ref, msg any) error {
	return t.peer.Send(to, from, msg)
}

func (t *remoteTarget) sendMany(_ origin, to, from Ref, msgs []any) (int, error) {
	return t.peer.SendMany(to, from, msgs)
}

func (t *remoteTarget) notify(_ origin, to Ref, msg any) error {
	return t.peer.Send(to, Ref{}, msg)
}

// ask records the peer and the connection epoch in the asker's promise, so
// that a lost connection fails it (wire.FailPeer).
func (t *remoteTarget) ask(o origin, to, from Ref, msg any, pidx, pgen uint32) error {
	epoch, err := t.peer.Ask(to, from, msg, pidx, pgen)
	if err != nil {
		return err
	}
	if o.ls != nil {
		pe := &o.ls.promises.entries[pidx]
		pe.peer, pe.epoch = t.peer, epoch
	}
	return nil
}

func (t *remoteTarget) askWait(ctx context.Context, _ *System, to Ref, msg any) (any, error) {
	return t.peer.AskWait(ctx, to, msg)
}

func (t *remoteTarget) awaitRoom(_ origin, wake func()) bool { return t.peer.AwaitRoom(wake) }

// sendWait waits for room after a send refused for a full outbound
// buffer, until ctx is done.
func (t *remoteTarget) sendWait(ctx context.Context, to Ref, msg any) error {
	return retryFull(ctx, t.peer, func() error { return t.peer.Send(to, Ref{}, msg) })
}

// askTimeout waits for room after an ask refused for a full outbound
// buffer within d, as sendWait does, then waits for the reply in what is
// left of d.
func (t *remoteTarget) askTimeout(_ *System, to Ref, msg any, d time.Duration) (any, error) {
	ctx, cancel := timeoutContext(d)
	defer cancel()
	var v any
	err := retryFull(ctx, t.peer, func() (err error) {
		v, err = t.peer.AskWait(ctx, to, msg)
		return err
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil, ErrTimeout
	}
	return v, err
}

// retryFull calls try until it fails with something other than
// ErrQueueFull; ctx's error when ctx ends first. Between tries it parks
// until peer's outbound queue has room (AwaitRoom), or, when the peer
// cannot say (the refusal came from the other node, too many wait),
// pauses (50 µs, doubling to 5 ms).
func retryFull(ctx context.Context, peer nodePeer, try func() error) error {
	pause := 50 * time.Microsecond
	var timer *time.Timer
	for {
		if err := try(); !errors.Is(err, ErrQueueFull) {
			return err
		}
		room := make(chan struct{})
		if peer.AwaitRoom(func() { close(room) }) {
			select {
			case <-room:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if timer == nil {
			timer = time.NewTimer(pause)
			defer timer.Stop()
		} else {
			timer.Reset(pause)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

func (t *remoteTarget) lifecycleWait(ctx context.Context, _ *System, r Ref, q seam.LifecycleRequest) (any, error) {
	return t.peer.LifecycleWait(ctx, r, q)
}

func (t *remoteTarget) forward(_ origin, e envelope) error {
	return fmt.Errorf("%w: Forward to %v on another node", ErrNotLocal, e.to)
}

func (t *remoteTarget) reply(to Ref, pidx, pgen uint32, v any, err error) {
	t.peer.Reply(to, pidx, pgen, v, err)
}

func (t *remoteTarget) halt(_ origin, to Ref, reason error) error {
	return t.peer.Stop(to, reason)
}

func (t *remoteTarget) exit(_ origin, to, from Ref, reason error, link bool) error {
	return t.peer.Exit(to, from, reason, link)
}

func (t *remoteTarget) monitor(_ origin, target, watcher Ref) error {
	return t.peer.Monitor(target, watcher)
}

func (t *remoteTarget) demonitor(_ origin, target, watcher Ref) error {
	return t.peer.Demonitor(target, watcher)
}

// link asks r's node for its half and keeps c's half here, with the
// connection epoch the request went out on (see wire.BreakLinks).
func (t *remoteTarget) link(c *Context, r Ref) error {
	for _, x := range c.slot.links {
		if x == r {
			return nil
		}
	}
	epoch, err := t.peer.Link(r, c.self)
	if err != nil {
		return err
	}
	c.slot.addRemoteLink(r, epoch)
	return nil
}

func (t *remoteTarget) unlink(c *Context, r Ref) error {
	if !c.slot.removeLink(r) {
		return nil
	}
	return t.peer.Unlink(r, c.self)
}

// acknowledge sends the request to r's node, which applies its deadline
// from the request's arrival and answers with the outcome. The promise is
// failed like an ask's when the connection is lost (Wire.FailPeer), and
// with ErrTimeout if no answer came within twice the request's timeout
// (r's node or the network is stuck: r may or may not have stopped).
func (t *remoteTarget) acknowledge(c *Context, p Promise, r Ref, a ack) error {
	ls := c.ls
	epoch, err := t.peer.Lifecycle(r, c.self, a.req, p.idx, p.gen)
	if err != nil {
		return err
	}
	pe := &ls.promises.entries[p.idx]
	pe.peer, pe.epoch = t.peer, epoch
	if a.timeout > 0 {
		pe.deadlined = true
		ls.loop.Schedule(ls.loop.Now().Add(remoteAckWait(a.timeout)), envelope{kind: kDeadline, pidx: p.idx, pgen: p.gen})
	}
	return nil
}

// remoteAckWait is how long an acknowledged request with timeout d waits
// for another node's answer: the node applies d itself, so the answer
// (ErrKilled as the value, when the stop became a kill) normally comes
// first; twice d leaves room for the network.
func remoteAckWait(d time.Duration) time.Duration {
	if d > math.MaxInt64/2 {
		return d
	}
	return 2 * d
}

func (t *remoteTarget) inspect(context.Context, *System, Ref, func(*Context, Actor)) error {
	return ErrRemoteUnsupported
}

func (t *remoteTarget) loopIndex() int { return int(t.id.Loop) }

func (t *remoteTarget) format(idx, gen uint32) string {
	return fmt.Sprintf("<%s/%d.%d.%d>", t.peer.Node(), t.id.Loop, idx, gen)
}
