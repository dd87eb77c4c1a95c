package remote

import (
	"cmp"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/event"
)

// This file holds what a node knows of its peers over time: connection
// epochs, the dead letters a loss reveals (outbox.go decides which), which
// nodes claim which address, and when a peer is forgotten.

// nextEpoch returns a connection epoch higher than every one before it.
func (n *Node) nextEpoch() uint64 { return n.epochs.Add(1) }

// Dials made to answer another node (see peer.mayAnswerLocked): at most
// answerDialRate a second, in bursts of answerDialBurst, node-wide.
const (
	answerDialRate  = 10
	answerDialBurst = 20
)

// tokenBucket is a small rate limiter: burst tokens, refilled at rate a
// second.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ackInbound queues an acknowledgement of every frame read on the
// connection so far, if there is anything new and at least least bytes of
// it (inAcks.due); only once the Hello is accepted.
func (ic *inConn) ackInbound(least uint64) {
	if !ic.hello {
		return
	}
	if upto, ok := ic.acks.due(least); ok {
		ic.out = appendControl(ic.out, &frame{kind: fAck, seq: upto})
	}
}

// reportDeadLetters logs what a loss of p's connection lost (counted in
// Stats already) and emits one event.DeadLetter per group. It runs with no
// lock held.
func (n *Node) reportDeadLetters(p *peer, d deadLetters, reason error) {
	if d.total == 0 {
		return
	}
	n.log.Warn("remote: one-way messages lost with the connection", "peer", p.name(), "addr", p.addr, "messages", d.total, "reason", reason)
	if n.ev == nil {
		return
	}
	now := n.now()
	keys := slices.SortedFunc(maps.Keys(d.groups), func(a, b deadKey) int { // not in map order: reproducible runs
		return cmp.Or(compareIDs(a.to, b.to), compareIDs(a.from, b.from), cmp.Compare(a.typ, b.typ))
	})
	for _, k := range keys {
		count := d.groups[k]
		ev := event.DeadLetter{Node: p.name(), Addr: p.addr, To: n.wire.RemoteRef(p, k.to), Count: count, Reason: reason, Time: now}
		if k.hasFrom {
			ev.From, _ = n.wire.Resolve(k.from)
		}
		if ti, ok := n.reg.ofID(k.typ); ok {
			ev.Type = ti.name
		} else if k.typ == 0 {
			ev.Type = "nil"
		}
		n.ev.deadLetter(ev)
	}
	if d.other > 0 {
		n.ev.deadLetter(event.DeadLetter{Node: p.name(), Addr: p.addr, Count: d.other, Reason: reason, Time: now})
	}
}

// claimOpened records that a connection from a node whose Hello says it
// listens at p's address was accepted, authenticated with key; a node seen
// alive that this node knows down is redialed at once (link.claimOpened).
func (p *peer) claimOpened(ic *inConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ins = append(p.ins, ic)
	if p.link.claimOpened(ic.sess.peerKey, p.n.now()) {
		p.dialLocked()
	}
}

// claimClosed undoes claimOpened when that connection closes.
func (p *peer) claimClosed(ic *inConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A closed connection's requests no longer make link halves (inLink's
	// epoch): the node that sent them ends its halves with it, and this
	// node's end of the halves made before (BreakMarkedLinks) may already
	// have run on the loops.
	ic.cut.Store(true)
	if i := slices.Index(p.ins, ic); i >= 0 {
		p.ins = slices.Delete(p.ins, i, i+1)
	}
	p.link.claimClosed(ic.sess.peerKey, p.n.now())
}

// mayAnswer reports whether the connection comes from the node this node
// reached by dialing the address its Hello claims (the same static key):
// only that node may answer what this node asked it. Any node may claim any
// address in its Hello.
func (ic *inConn) mayAnswer() bool { return ic.from.reachedKey(ic.sess.peerKey) }

// inboundClosed is called when an accepted connection closes. When it was
// the last open connection from its node's incarnation, the links that node
// made with local actors end: its side ended them when it lost that
// connection (peer.lost), and it may never dial again to say so.
func (n *Node) inboundClosed(ic *inConn) {
	n.mu.Lock()
	delete(n.inbound, ic)
	end := false
	if ic.state != nil {
		end = n.remotes.closed(ic.state, ic.epoch, n.now())
	}
	n.mu.Unlock()
	if ic.from == nil {
		return
	}
	ic.from.claimClosed(ic)
	if end {
		// The halves of links the node's actors made here; those local
		// actors made end with this node's own connection to it, which
		// the node cut when it lost this one (peer.cutLocked).
		ic.from.endLinks()
		n.wire.BreakMarkedLinks(ic.from, ic.state.mark, fmt.Errorf("%w: %s: its connection closed", ErrNodeDown, ic.remoteName))
	}
}

// PeerUp tells the node that the peer listening at addr is alive, as a
// membership layer (package cluster) learns it from gossip: the node keeps
// a connection to it, redialing at once if it is known down and after every
// later loss, until PeerDown. It reports whether a peer at addr was known
// or could be made (MaxPeers). Safe from any goroutine.
func (n *Node) PeerUp(addr string) bool {
	if addr == "" || addr == n.Addr() {
		return false
	}
	p, err := n.boundedPeer(addr, "")
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.link.peerUp(p.n.now()) {
		p.dialLocked()
	}
	_ = n.conns.m.SetKind(addr, connmgr.Stable) // never trimmed nor forgotten; its link redials it
	return true
}

// sweep runs the connection manager's passes (connmgr.go): lock expiry
// and trimming (not with force), then forgetting the peers nothing needs
// (see Config.ForgetAfter); and it forgets the incarnations whose
// connections all closed long enough ago. With force (MaxPeers reached),
// peers idle for a second go too. It returns how many peers it forgot.
func (n *Node) sweep(now time.Time, force bool) int {
	idle := n.cfg.ForgetAfter
	if force {
		idle = min(idle, time.Second)
	} else {
		n.trim(now)
	}
	var gone []*peer
	n.mu.Lock()
	for _, addr := range n.forgetLocked(now, idle) {
		p := n.peers[addr]
		if p == nil {
			continue
		}
		p.mu.Lock()
		p.link.closed = true // forgotten
		p.cmh.Store(nil)
		p.mu.Unlock()
		delete(n.peers, addr)
		gone = append(gone, p)
	}
	n.trackUntrackedLocked(now)
	// Incarnations: forget those with no open connection after ForgetAfter;
	// past MaxPeers of them, the oldest closed first.
	n.remotes.sweep(now, n.cfg.ForgetAfter, n.cfg.MaxPeers)
	n.mu.Unlock()
	for _, p := range gone {
		p.mu.Lock()
		fw := p.fw
		p.fw = nil
		p.ob.release()
		p.mu.Unlock()
		if fw != nil {
			fw.release()
		}
	}
	n.stats.forgotten.Add(uint64(len(gone)))
	return len(gone)
}

// nudgeGC runs a garbage collection in the background, at most every 10
// s: the peers a full table could let go are held only by refs that nobody
// uses any more, which the collector reclaims (see actorWire.RemoteRefs).
func (n *Node) nudgeGC() {
	if n.clk != nil {
		return // simulated: refs are held for the run (actor.Config.Manual)
	}
	now := time.Now().UnixNano()
	last := n.lastNudge.Load()
	if now-last < int64(10*time.Second) || !n.lastNudge.CompareAndSwap(last, now) {
		return
	}
	go runtime.GC()
}

// forgettable reports whether nothing but refs (checked by the caller)
// could still need the peer: no connection, dial or retry, not known down,
// no pending call or monitor, no connection from it, not a member, and
// unused for idle.
func (p *peer) forgettable(now time.Time, idle time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.forgettable(now, idle) && len(p.calls) == 0 && p.monitors.empty()
}

// compareIDs orders wire ids by loop, slot and generation.
func compareIDs(a, b actor.WireID) int {
	return cmp.Or(cmp.Compare(a.Loop, b.Loop), cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.Gen, b.Gen))
}
