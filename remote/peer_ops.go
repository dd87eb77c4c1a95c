package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/actord/actord/actor"
)

// The peer's side of actorPeer: what local actors and goroutines send to
// the peer's node, as frames queued on the peer (enqueue), and the answers
// that come back for them.

func (p *peer) localID(r actor.Ref) (actor.WireID, bool) { return p.n.wire.LocalID(r) }

// senderIDLocked is localID with a one-entry cache, so a stream of messages
// from one actor derives its secret once. The id depends only on the ref,
// so the cache cannot go stale. p.mu held.
func (p *peer) senderIDLocked(r actor.Ref) (actor.WireID, bool) {
	if p.senderOK && r == p.sender {
		return p.senderID, true
	}
	id, ok := p.n.wire.LocalID(r)
	if ok {
		p.sender, p.senderID, p.senderOK = r, id, true
	}
	return id, ok
}

func (p *peer) remoteID(r actor.Ref) (actor.WireID, error) {
	q, id, ok := p.n.wire.Remote(r)
	if !ok || q != actorPeer(p) {
		return id, fmt.Errorf("remote: ref %v is not on node %s", r, p.name())
	}
	return id, nil
}

// Send implements actorPeer.
func (p *peer) Send(to, from actor.Ref, msg any) error {
	if d, ok := msg.(actor.Down); ok {
		return p.sendDownFor(to, d)
	}
	tid, err := p.remoteID(to)
	if err != nil {
		return err
	}
	_, err = p.enqueue(fSend, func(f *frame) {
		f.to, f.payload = tid, msg
		f.from, f.hasFrom = p.senderIDLocked(from)
	})
	return err
}

// SendMany implements seam.Peer: the Send frames of a run of messages are
// queued under one lock, with one decision to write (one write when the
// connection is idle), instead of one of each per message. An actor.Down
// among them goes as Send sends it, in its place.
func (p *peer) SendMany(to, from actor.Ref, msgs []any) (int, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return 0, err
	}
	sent := 0
	for sent < len(msgs) {
		if d, ok := msgs[sent].(actor.Down); ok {
			if err := p.sendDownFor(to, d); err != nil {
				return sent, err
			}
			sent++
			continue
		}
		n, err := p.sendRun(tid, from, msgs[sent:])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// sendRun queues Send frames for msgs up to the first actor.Down, and
// returns how many it queued; an error stops it, what was queued before
// still goes.
func (p *peer) sendRun(tid actor.WireID, from actor.Ref, msgs []any) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fid, hasFrom := p.senderIDLocked(from)
	n, dial := 0, false
	var err error
	for _, m := range msgs {
		if _, ok := m.(actor.Down); ok {
			break
		}
		var f *frame
		var d bool
		if f, d, err = p.admitLocked(fSend, fromLocal); err != nil {
			break
		}
		dial = dial || d
		f.to, f.payload, f.from, f.hasFrom = tid, m, fid, hasFrom
		if err = p.appendLocked(f); err != nil {
			break
		}
		n++
	}
	if n > 0 {
		if h := p.cm(); h != nil {
			h.Traffic(p.n.now()) // once for the batch (a lone Send skips it when it joins a write under way)
		}
		p.sendLocked(dial)
	}
	return n, err
}

// sendDownFor tells a remote watcher that a local actor stopped.
func (p *peer) sendDownFor(watcher actor.Ref, d actor.Down) error {
	wid, err := p.remoteID(watcher)
	if err != nil {
		return err
	}
	tid, ok := p.localID(d.Ref)
	if !ok {
		return fmt.Errorf("remote: Down for non-local ref %v", d.Ref)
	}
	p.sendDown(tid, wid, d.Reason, true) // a local actor stopped
	return nil
}

// sendDown queues a Down frame for watcher (an actor on the peer), beyond
// MaxOutbound with force (a local actor's stop).
func (p *peer) sendDown(target, watcher actor.WireID, reason error, force bool) {
	o := answer
	if force {
		o = forced
	}
	_, _ = p.enqueueOpt(fDown, o, func(f *frame) {
		f.to, f.from = target, watcher
		f.setError(reason)
	})
}

// deliverDown hands a Down from the peer to the local watcher that asked
// for it through this peer.
func (p *peer) deliverDown(target, watcher actor.WireID, reason error) {
	w, ok := p.n.wire.Resolve(watcher)
	if !ok {
		return
	}
	p.mu.Lock()
	ref, found := p.monitors.remove(target, w)
	if found {
		p.addMonitorsLocked(-1)
	}
	p.mu.Unlock()
	if found {
		_ = p.n.wire.DeliverSignal(w, actor.Down{Ref: ref, Reason: reason})
	}
}

// Ask implements actorPeer.
func (p *peer) Ask(to, from actor.Ref, msg any, pidx, pgen uint32) (uint64, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return 0, err
	}
	fid, ok := p.localID(from)
	if !ok {
		return 0, fmt.Errorf("remote: asker %v is not local", from)
	}
	return p.enqueue(fAsk, func(f *frame) {
		f.to, f.from, f.pidx, f.pgen, f.payload = tid, fid, pidx, pgen, msg
	})
}

// Reply implements actorPeer: it answers an ask that came from the peer.
func (p *peer) Reply(to actor.Ref, pidx, pgen uint32, v any, rerr error) {
	_ = p.reply(answer, to, pidx, pgen, v, rerr)
}

// reply is Reply queued as o says (answer, or forced for the outcome of a
// lifecycle request or of a linked spawn, which no bound or timeout may
// drop). It returns why the reply could not be queued, if it could not.
func (p *peer) reply(o origin, to actor.Ref, pidx, pgen uint32, v any, rerr error) error {
	_, id, ok := p.n.wire.Remote(to)
	if !ok {
		return fmt.Errorf("remote: reply to %v, not a remote ref", to)
	}
	fill := func(f *frame) {
		f.loop, f.pidx, f.pgen, f.payload = id.Loop, pidx, pgen, v
		f.setError(rerr)
	}
	_, err := p.enqueueOpt(fReply, o, fill)
	if err != nil && rerr == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNodeDown) {
		// The value could not travel (an unregistered type): say why instead.
		v, rerr = nil, err
		if _, e := p.enqueueOpt(fReply, o, fill); e != nil {
			return e
		}
	}
	return err
}

// call sends a frame, filled in by fill, carrying a fresh goroutine
// correlation (pidx, pgen), and waits for its reply.
func (p *peer) call(ctx context.Context, kind int, fill func(f *frame)) (any, error) {
	ch := make(chan result, 1)
	corr, err := p.startCall(kind, waiter{ch: ch}, fill)
	if errors.Is(err, errSettled) {
		r := <-ch // the loss's answer, already there
		return r.v, r.err
	}
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if kind == fSpawn {
			p.abandonCall(corr, false)
		} else {
			p.endCall(corr)
		}
		return nil, ctx.Err()
	}
}

// maxAbandoned bounds the spawns a peer remembers as abandoned.
const maxAbandoned = 1024

// errSpawnAbandoned is the reason an actor created by an abandoned spawn
// is stopped with.
var errSpawnAbandoned = errors.New("remote: its spawn's caller stopped waiting before the answer came")

// abandonCall forgets the spawn corr, if a reply or a loss did not take
// it meanwhile, and records it as abandoned, in one step: an answer that
// comes after this is known as one nobody waits for (linked: the spawn
// carried a link, whose half the actor's stop takes off the count). It
// returns the waiter it took.
func (p *peer) abandonCall(corr uint64, linked bool) (waiter, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.calls[corr]
	if !ok {
		return w, false
	}
	delete(p.calls, corr)
	p.addCallsLocked(-1)
	if p.abandoned == nil {
		p.abandoned = map[uint64]bool{}
	}
	if len(p.abandonedQ) >= maxAbandoned {
		delete(p.abandoned, p.abandonedQ[0])
		p.abandonedQ = p.abandonedQ[1:]
	}
	p.abandoned[corr] = linked
	p.abandonedQ = append(p.abandonedQ, corr)
	return w, true
}

// takeAbandoned reports whether corr was an abandoned spawn, and a linked
// one, forgetting it.
func (p *peer) takeAbandoned(corr uint64) (found, linked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	linked, found = p.abandoned[corr]
	if !found {
		return false, false
	}
	delete(p.abandoned, corr)
	if i := slices.Index(p.abandonedQ, corr); i >= 0 {
		p.abandonedQ = slices.Delete(p.abandonedQ, i, i+1)
	}
	return true, linked
}

// testCallRecorded, set by a test, runs between a call's recording and its
// sending (where a loss on another goroutine may settle it).
var testCallRecorded func(p *peer)

// errSettled is startCall's error when the request could not be sent but
// its waiter was settled meanwhile (a loss took it): the caller must not
// settle it again.
var errSettled = errors.New("remote: the call was settled while it was being sent")

// startCall records w under a new correlation and sends the request: a
// frame of kind that fill fills. On an error nothing was sent and w is
// forgotten; errSettled if a loss settled w meanwhile.
func (p *peer) startCall(kind int, w waiter, fill func(f *frame)) (uint64, error) {
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[uint64]waiter{}
	}
	p.nextCall++
	corr := p.nextCall
	p.calls[corr] = w
	p.addCallsLocked(1)
	p.mu.Unlock()
	if testCallRecorded != nil {
		testCallRecorded(p)
	}
	pidx, pgen := uint32(corr), uint32(corr>>32)
	if _, err := p.enqueue(kind, func(f *frame) { fill(f); f.pidx, f.pgen = pidx, pgen }); err != nil {
		if _, ok := p.endCall(corr); !ok {
			return 0, errSettled
		}
		return 0, err
	}
	return corr, nil
}

// endCall forgets the call corr, if a reply or a loss did not take it
// meanwhile, and returns its waiter.
func (p *peer) endCall(corr uint64) (waiter, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.calls[corr]
	if ok {
		delete(p.calls, corr)
		p.addCallsLocked(-1)
	}
	return w, ok
}

func (p *peer) completeAsk(corr uint64, v any, err error) {
	if w, ok := p.endCall(corr); ok {
		w.settle(v, err)
		return
	}
	// The answer to a spawn nobody waits for any more: the actor it made
	// would run unknown to all (supervised by none), so it is stopped.
	if r, ok := v.(actor.Ref); ok && err == nil {
		if found, linked := p.takeAbandoned(corr); found {
			p.n.stats.spawnsStopped.Add(1)
			if linked {
				p.addLinks(1) // the actor's half, which its exit takes off
			}
			_ = p.stopForced(r, errSpawnAbandoned)
		}
	}
}

// AskWait implements actorPeer: a blocking ask from a plain goroutine.
func (p *peer) AskWait(ctx context.Context, to actor.Ref, msg any) (any, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return nil, err
	}
	return p.call(ctx, fAsk, func(f *frame) {
		f.to, f.from, f.payload = tid, actor.WireID{Loop: goroutineLoop}, msg
	})
}

func (p *peer) spawn(ctx context.Context, kind string, args any) (any, error) {
	return p.call(ctx, fSpawn, func(f *frame) { f.kindName, f.payload = kind, args })
}

// monitorIDs returns the wire ids of a monitor's target (on the peer) and
// watcher (here).
func (p *peer) monitorIDs(target, watcher actor.Ref) (tid, wid actor.WireID, err error) {
	if tid, err = p.remoteID(target); err != nil {
		return tid, wid, err
	}
	wid, ok := p.localID(watcher)
	if !ok {
		return tid, wid, fmt.Errorf("remote: watcher %v is not local", watcher)
	}
	return tid, wid, nil
}

// Monitor implements actorPeer.
func (p *peer) Monitor(target, watcher actor.Ref) error {
	tid, wid, err := p.monitorIDs(target, watcher)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.link.down != nil {
		// As a monitor of an actor on a node known down: Down at once (the
		// attempt counts as a use: it asks for a redial).
		_, down := p.link.admit(fromLocal, p.n.now())
		p.n.stats.downRefused.Add(1)
		p.syncRetryLocked()
		p.mu.Unlock()
		return p.n.wire.DeliverSignal(watcher, actor.Down{Ref: target, Reason: down})
	}
	added := p.monitors.add(tid, target, watcher)
	if added {
		p.addMonitorsLocked(1)
	}
	p.mu.Unlock()
	if !added {
		return nil
	}
	_, err = p.enqueue(fMonitor, func(f *frame) { f.to, f.from = tid, wid })
	if err == nil {
		return nil
	}
	p.mu.Lock()
	_, mine := p.monitors.remove(tid, watcher) // still registered: no loss has answered it with a Down
	if mine {
		p.addMonitorsLocked(-1)
	}
	p.mu.Unlock()
	switch {
	case !mine:
		return nil // lost() delivered its Down
	case errors.Is(err, ErrNodeDown):
		return p.n.wire.DeliverSignal(watcher, actor.Down{Ref: target, Reason: err})
	}
	return err
}

// Demonitor implements actorPeer.
func (p *peer) Demonitor(target, watcher actor.Ref) error {
	tid, wid, err := p.monitorIDs(target, watcher)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if _, ok := p.monitors.remove(tid, watcher); ok {
		p.addMonitorsLocked(-1)
	}
	p.mu.Unlock()
	_, err = p.enqueue(fDemonitor, func(f *frame) { f.to, f.from = tid, wid })
	return err
}

// Stop implements actorPeer.
func (p *peer) Stop(target actor.Ref, reason error) error {
	tid, err := p.remoteID(target)
	if err != nil {
		return err
	}
	_, err = p.enqueue(fStop, func(f *frame) { f.to = tid; f.setError(reason) })
	return err
}

// stopForced is Stop queued even past MaxOutbound: a stop refused there
// would leave an actor running that nobody knows of.
func (p *peer) stopForced(target actor.Ref, reason error) error {
	tid, err := p.remoteID(target)
	if err != nil {
		return err
	}
	_, err = p.enqueueOpt(fStop, forced, func(f *frame) { f.to = tid; f.setError(reason) })
	return err
}

// linkIDs returns the wire ids of a remote target and a local actor.
func (p *peer) linkIDs(target, local actor.Ref) (tid, lid actor.WireID, err error) {
	if tid, err = p.remoteID(target); err != nil {
		return tid, lid, err
	}
	lid, ok := p.localID(local)
	if !ok {
		return tid, lid, fmt.Errorf("remote: %v is not a local actor", local)
	}
	return tid, lid, nil
}

// Link implements actorPeer: the other node links target to from.
func (p *peer) Link(target, from actor.Ref) (uint64, error) {
	return p.linkFrom(fromLocal, target, from)
}

// linkFrom queues a link request from o (fromLocal, or forced for the
// confirmation of a linked spawn, which no bound may refuse: the actor
// is made and linked over there).
func (p *peer) linkFrom(o origin, target, from actor.Ref) (uint64, error) {
	tid, fid, err := p.linkIDs(target, from)
	if err != nil {
		return 0, err
	}
	return p.enqueueOpt(fLink, o, func(f *frame) {
		f.to, f.from = tid, fid
		p.addLinksLocked(1) // under p.mu, with the epoch: a loss after it ends it
	})
}

// currentEpoch is the epoch of the current (or next) connection.
func (p *peer) currentEpoch() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.epoch
}

// Unlink implements actorPeer.
func (p *peer) Unlink(target, from actor.Ref) error {
	tid, fid, err := p.linkIDs(target, from)
	if err != nil {
		return err
	}
	_, err = p.enqueue(fUnlink, func(f *frame) { f.to, f.from = tid, fid; p.addLinksLocked(-1) })
	return err
}

// Exit implements actorPeer: an exit signal from the local actor from to
// the remote actor to.
func (p *peer) Exit(to, from actor.Ref, reason error, link bool) error {
	tid, fid, err := p.linkIDs(to, from)
	if err != nil {
		return err
	}
	o := fromLocal // Context.Exit or Kill
	if link {
		o = forced // a link's exit signal: a local actor stopped
	}
	return p.sendExit(tid, fid, reason, link, o)
}

// sendExit queues an fExit frame (see enqueueOpt for o).
func (p *peer) sendExit(to, from actor.WireID, reason error, link bool, o origin) error {
	flag := uint64(0)
	if link {
		flag = 1
	}
	_, err := p.enqueueOpt(fExit, o, func(f *frame) {
		f.to, f.from, f.link = to, from, flag
		f.setError(reason)
		if link {
			p.addLinksLocked(-1) // the local end of a link stopped, or never was
		}
	})
	return err
}
