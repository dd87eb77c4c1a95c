package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/actord/actord/internal/seam"

	"github.com/actord/actord/actor"
)

// Acknowledged lifecycle requests across nodes (actor.Context.StopAsync,
// SuspendAsync, RestartAsync, AliveAsync on a remote ref): a Lifecycle
// frame out, the target node's outcome back as a Reply.

// opBrutal marks, in a Lifecycle frame's op, a request to be carried out
// at once without Terminate (a negative timeout).
const opBrutal = 0x80

// reason is how a Reply carries an outcome whose value is an error (the
// reason StopAsync reports an actor ended with): the error's wire code and
// message, turned back into an error by the asker (inReply).
type reason struct {
	//lint:ignore U1000 msgpack reads the tag: encode as [code, message]
	_msgpack struct{} `msgpack:",as_array"`
	Code     uint64
	Msg      string
}

// Lifecycle implements actorPeer: it sends an acknowledged lifecycle
// request for the remote actor to, answered like an ask of from.
func (p *peer) Lifecycle(to, from actor.Ref, req seam.LifecycleRequest, pidx, pgen uint32) (uint64, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return 0, err
	}
	fid, ok := p.localID(from)
	if !ok {
		return 0, actor.ErrNotLocal
	}
	return p.enqueue(fLifecycle, func(f *frame) {
		fillLifecycle(f, tid, fid, req)
		f.pidx, f.pgen = pidx, pgen
	})
}

// LifecycleWait implements actorPeer: Lifecycle from a plain goroutine,
// answered like AskWait.
func (p *peer) LifecycleWait(ctx context.Context, to actor.Ref, req seam.LifecycleRequest) (any, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return nil, err
	}
	return p.call(ctx, fLifecycle, func(f *frame) {
		fillLifecycle(f, tid, actor.WireID{Loop: goroutineLoop}, req)
	})
}

// fillLifecycle fills a Lifecycle frame but for its correlation.
func fillLifecycle(f *frame, to, from actor.WireID, req seam.LifecycleRequest) {
	f.to, f.from, f.op = to, from, uint64(req.Op)
	switch {
	case req.Timeout < 0:
		f.op |= opBrutal
	case req.Timeout > 0:
		f.timeout = uint64(req.Timeout)
	}
	f.setError(req.Reason)
}

// inLifecycle carries out a Lifecycle frame for a local actor and answers
// with its outcome. An id that does not resolve is a dead actor.
func (n *Node) inLifecycle(ic *inConn, f *frame) {
	from, peer, pidx, pgen := ic.remoteFrom(n, f.from), ic.from, f.pidx, f.pgen
	req := seam.LifecycleRequest{
		Op:      seam.LifecycleOp(f.op &^ opBrutal),
		Reason:  decodeError(ic.remoteName, f.code, f.msg),
		Timeout: time.Duration(f.timeout),
	}
	if f.op&opBrutal != 0 {
		req.Timeout = -1
	}
	to, ok := ic.resolve(n, f.to)
	if !ok {
		to = actor.Ref{}
	}
	if ic.lifecycles.Add(1) > maxLifecycles {
		ic.lifecycles.Add(-1)
		peer.Reply(from, pidx, pgen, nil, fmt.Errorf("%w: %d lifecycle requests of %s under way", actor.ErrQueueFull, maxLifecycles, ic.remoteName))
		return
	}
	// The outcome is forced past MaxOutbound: the asker may have no
	// deadline (RestartAsync), and the cap above bounds these answers.
	done := func(v any, err error) {
		ic.lifecycles.Add(-1)
		if e, ok := v.(error); ok {
			v = reason{Code: errorCode(e), Msg: e.Error()}
		}
		_ = peer.reply(forced, from, pidx, pgen, v, err)
	}
	if err := n.wire.LifecycleLocal(to, req, done); err != nil {
		ic.lifecycles.Add(-1)
		peer.Reply(from, pidx, pgen, nil, err)
	}
}

// maxLifecycles bounds the lifecycle requests of one connection that a
// node carries out at once: they take the target loop's control queue,
// which refuses nothing, and their answers are forced.
const maxLifecycles = 256
