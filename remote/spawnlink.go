package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/bugs"
)

// A linked spawn (Node.SpawnLinkAsync) is a three-way exchange: the
// request names the owner; the answer goes out on the new actor's loop in
// the step that made it with its half of the link; the owner's node, once
// it made the owner's half, confirms with a link request. An actor whose
// confirmation does not come within spawnConfirmWithin is stopped: its
// answer was lost (with a connection, or a dial back that never got
// through while the owner's node still reached this one) or came after the
// owner's node gave up, and nobody would ever learn of it.

// errSpawnUnconfirmed is the reason an actor whose linked spawn was never
// confirmed is stopped with.
var errSpawnUnconfirmed = errors.New("remote: its linked spawn was never confirmed by the owner's node")

// maxSpawnsUnconfirmed bounds the linked spawns one peer has waiting for
// their confirmation here; a spawn beyond is refused (actor.ErrQueueFull),
// and other peers' are not.
const maxSpawnsUnconfirmed = 1024

// spawnConfirmWithin is how long a linked spawn's actor waits for its
// owner's confirmation: the longest of a supervisor's default start
// timeout and twice the heartbeat timeout plus a dial.
func (n *Node) spawnConfirmWithin() time.Duration {
	return max(15*time.Second, 2*n.cfg.HeartbeatTimeout+n.cfg.DialTimeout)
}

// unconfirmed is a node's linked-spawn actors waiting for confirmation.
type unconfirmed struct {
	mu sync.Mutex
	m  map[actor.Ref]pendingSpawn
}

type pendingSpawn struct {
	owner actor.Ref
	peer  *peer // whose place it takes (peer.spawnsWaiting)
	t     timer
}

// reserve takes one of p's places for a linked spawn, reporting false
// when none is left; release gives back one not used by waitConfirm.
func reserve(p *peer) bool {
	if p.spawnsWaiting.Add(1) > maxSpawnsUnconfirmed {
		p.spawnsWaiting.Add(-1)
		return false
	}
	return true
}

func release(p *peer) { p.spawnsWaiting.Add(-1) }

// waitConfirm records r, made for owner of p's node, as waiting for its
// confirmation, in the place reserve took; it is stopped if none comes in
// time.
func (n *Node) waitConfirm(p *peer, r, owner actor.Ref) {
	u := &n.spawns
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[actor.Ref]pendingSpawn{}
	}
	t := n.afterFunc(n.spawnConfirmWithin(), func() {
		if u.take(r) {
			n.stats.spawnsUnconfirmed.Add(1)
			_ = n.wire.StopLocal(r, errSpawnUnconfirmed)
		}
	})
	u.m[r] = pendingSpawn{owner: owner, peer: p, t: t}
}

// take removes r's entry, reporting whether there was one.
func (u *unconfirmed) take(r actor.Ref) bool {
	return u.remove(r, func(pendingSpawn) bool { return true })
}

// confirm takes r's entry if from is the owner it waits for (its link
// request, or its exit signal when the owner had ended), stopping its
// timer, and reports whether it did.
func (u *unconfirmed) confirm(r, from actor.Ref) bool {
	return u.remove(r, func(e pendingSpawn) bool {
		if e.owner != from {
			return false
		}
		e.t.Stop()
		return true
	})
}

// remove deletes r's entry, giving back its place, if ok accepts it.
func (u *unconfirmed) remove(r actor.Ref, ok func(pendingSpawn) bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, found := u.m[r]
	if !found || !ok(e) {
		return false
	}
	delete(u.m, r)
	release(e.peer)
	return true
}

// spawnLinked makes the actor of a spawn that names an owner, with its
// half of the link, and answers on the actor's loop in the same step
// (actor's SpawnLinked), so that the answer goes ahead of the actor's
// exit signal (not of what its Start sends): the owner's node makes the
// owner's half before the exit arrives, and the owner gets the actor's
// real reason. The answer is queued even past MaxOutbound (forced): one
// refused would leave the actor linked on this side only. If it cannot
// be queued at all (the peer is down, the node closing), the actor stops
// at once; if it is queued but never confirmed, when its time is up.
func (n *Node) spawnLinked(peer *peer, name string, proxy actor.Ref, pidx, pgen uint32, fac actor.Factory, owner actor.Ref, epoch func() (uint64, bool)) {
	if !reserve(peer) {
		_ = peer.reply(answer, proxy, pidx, pgen, nil, fmt.Errorf("%w: node %s has %d linked spawns of node %s waiting for their confirmation", actor.ErrQueueFull, n.name, maxSpawnsUnconfirmed, name))
		return
	}
	var answered atomic.Bool
	answer := func(r actor.Ref, err error) bool {
		if !answered.CompareAndSwap(false, true) {
			return false // made after the caller gave up: the loop stops it, unlinked
		}
		if err != nil {
			release(peer)
			_ = peer.reply(answer, proxy, pidx, pgen, nil, err)
			return false
		}
		n.waitConfirm(peer, r, owner) // before the answer: a confirmation may come at once
		if qerr := peer.reply(forced, proxy, pidx, pgen, r, nil); qerr != nil {
			if n.spawns.take(r) {
				_ = n.wire.StopLocal(r, fmt.Errorf("%w: %s: the answer to its spawn could not be sent: %v", ErrNodeDown, name, qerr))
			}
			return false
		}
		peer.addLinks(1) // the half made with r; its exit signal takes it off
		if !bugs.NoDialBack {
			peer.ensureConnected() // the half ends with it (see linkHalf)
		}
		return true
	}
	lost := fmt.Errorf("%w: %s: the connection the spawn came on was lost", ErrNodeDown, name)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout+5*time.Second)
	_, err := n.wire.SpawnLinked(ctx, fac, owner, epoch, lost, answer)
	cancel()
	if err != nil {
		answer(actor.Ref{}, err) // the spawn never got to the loop
	}
}
