package remote

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/internal/bugs"
)

// peer is this node's side of another node, found by its listen address. It
// owns the connection this node dials to it, which carries everything this
// node sends there: messages, asks, replies, monitors. (The connection the
// other node dials here carries the other direction.) It implements
// actorPeer.
type peer struct {
	n    *Node
	addr string

	mu       sync.Mutex
	nameMu   sync.Mutex // guards nodeName; a leaf lock: names are read while encoding refs under mu
	nodeName string
	// roomWaiters wake once the outbox has room (AwaitRoom). Under mu.
	roomWaiters []func()
	// link is the connection's protocol state (link.go): epochs, known
	// down, retries, claims, deadlines. The rest of peer is I/O.
	link *link
	// retryTimer fires at link.retryAt (syncRetryLocked).
	retryTimer timer
	retryFor   time.Time // the retryAt retryTimer is armed for
	conn       netConn   // nil unless connected
	// ob is the outbound stream's delivery state (outbox.go): queued,
	// written and acknowledged bytes, the bound, what a loss loses.
	ob        outbox
	fw        *frameWriter                 // encodes the frames ob queues; nil until first used
	tx        *transportCipher             // seals ob's batches; nil until the connection's handshake is done
	peerKey   []byte                       // the static key the current connection's handshake authenticated (nil before)
	pinned    []byte                       // the only key a connection may authenticate, once a sturdy ref was resolved through this peer
	sealBuf   []byte                       // reused for sealed batches; nil while one is in flight
	writeDone func(netConn, []byte, error) // p.written, bound once
	fullErr   error                        // what enqueue returns when the queue is full
	flushing  bool
	netHeld   int   // bytes handed to the driver, perhaps not in the socket yet (an upper bound): they count against MaxOutbound
	lastWrite int64 // when flushLocked last wrote (ns since monoBase)
	// heard: a data frame (Send, Ask, Reply) arrived from the node since
	// this peer last wrote, so the next write answers it and is not part of
	// a burst (directNow). Set by the network goroutines reading the node's
	// connections.
	heard atomic.Bool
	// lastDirect: the last batch went out directly, whole (directNow).
	lastDirect bool
	// holds: network goroutines handling a read from the node hold the
	// frames queued meanwhile (hold), held records that some wait, and
	// answering marks the write at the hold's end (unhold).
	holds     int
	holdStart int64 // when the first of the holds began (tsc.Read)
	held      bool
	answering bool
	answerAt  int64             // the time of the read that ends (unhold), as lastWrite
	heldData  bool              // a held frame is data: traffic, recorded at unhold
	out       frame             // the frame being queued (enqueueOpt), reused
	calls     map[uint64]waiter // goroutine asks and spawns by correlation
	nextCall  uint64
	// spawns whose caller stopped waiting (timeout, cancel): an answer
	// that still comes names an actor nobody knows of, which is stopped
	// (abandonCall). At most maxAbandoned, the oldest forgotten first.
	abandoned map[uint64]bool // abandoned spawns: linked or not
	// spawnsWaiting counts the peer's linked spawns made here and not yet
	// confirmed (spawnlink.go).
	spawnsWaiting atomic.Int64
	abandonedQ    []uint64
	monitors      watches // local actors' monitors of the peer's actors
	lastHeard     atomic.Int64
	// answerKey is the static key the current connection authenticated,
	// for the network loops reading connections from the peer: only a
	// connection from that same node may answer what was asked over this
	// one (see inConn.mayAnswer). Nil while not connected.
	answerKey atomic.Pointer[[]byte]
	// addresses of the current connection, for events
	localAddr, remoteAddr string
	// one-entry cache of the last sender's wire id (senderIDLocked)
	sender   actor.Ref
	senderID actor.WireID
	senderOK bool
	// cmh is the connection manager's handle (connmgr.go): nil while the
	// manager does not track the peer. Traffic and usage are recorded on it.
	cmh atomic.Pointer[connmgr.Peer]
	// links estimates the live links between local actors and the peer's,
	// for the connection manager (addLinksLocked).
	links int64
	// ins are the connections the peer's node dialed here whose Hello was
	// accepted, in the order they were, until closed: a loss of this
	// node's own connection cuts them (cutLocked).
	ins []*inConn
}

type result struct {
	v   any
	err error
}

// waiter is a call waiting for its reply: a goroutine on ch, or a
// callback (Node.SpawnAsync).
type waiter struct {
	ch chan result
	fn func(v any, err error)
}

func (w waiter) settle(v any, err error) {
	if w.fn != nil {
		w.fn(v, err)
		return
	}
	w.ch <- result{v, err}
}

func newPeer(n *Node, addr, name string) *peer {
	// A peer is created for every node a decoded ref names; its encoder and
	// tables come with its first use, so one that is never used costs a few
	// hundred bytes (and Config.MaxPeers bounds how many there are).
	p := &peer{n: n, addr: addr, nodeName: name}
	p.ob.max = n.cfg.MaxOutbound
	p.link = newLink(&n.linkCfg, p.name, n.now())
	return p
}

func (p *peer) name() string {
	p.nameMu.Lock()
	defer p.nameMu.Unlock()
	if p.nodeName == "" {
		return p.addr
	}
	return p.nodeName
}

func (p *peer) setName(name string) {
	p.nameMu.Lock()
	p.nodeName = name
	p.nameMu.Unlock()
}

// Node implements actorPeer.
func (p *peer) Node() string { return p.name() }

// origin says why a frame is sent, which decides what happens when there is
// no connection (see enqueueOpt).
type origin uint8

const (
	// fromLocal: a local actor or goroutine asked for it (Send, Ask, Spawn,
	// Monitor, Link, Stop, Exit, Resolve). It dials if need be, and fails at
	// once while the peer is known down.
	fromLocal origin = iota
	// answer: a reply to the peer, or a signal it subscribed to (a Down, a
	// link's exit signal, the answer to its Monitor or Link). It never makes
	// this node dial an address for the peer's sake unless the peer has a
	// connection open here claiming that address (see mayAnswerLocked), and
	// it is dropped while the peer is down: the peer learns of the loss on
	// its side.
	answer
	// forced: an answer that is queued even beyond MaxOutbound (the signals
	// of a local actor's stop; see enqueueOpt).
	forced
)

// enqueue encodes one frame of kind, its fields filled in by fill (under
// the peer's lock), and queues it for the connection, dialing if there is
// none. It fails with actor.ErrQueueFull beyond MaxOutbound, with
// ErrNodeDown (and the reason) while the peer is known down, and with
// ErrClosed after close; an encoding error leaves nothing queued. It
// returns the epoch the frame belongs to.
func (p *peer) enqueue(kind int, fill func(f *frame)) (uint64, error) {
	return p.enqueueOpt(kind, fromLocal, fill)
}

// enqueueOpt is enqueue; a forced frame is queued even beyond MaxOutbound.
// Only the signals of a local actor's stop are forced (its Downs and the
// exit signals to its links); answers to another node's requests are not.
// The outbox decides (outbox.admit); past forcedLimit times MaxOutbound
// the peer is disconnected (and declared lost).
func (p *peer) enqueueOpt(kind int, o origin, fill func(f *frame)) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, dial, err := p.admitLocked(kind, o)
	if err != nil {
		return 0, err
	}
	fill(f)
	if err := p.appendLocked(f); err != nil {
		return 0, err
	}
	if h := p.cm(); h != nil && kind != fPing {
		// Data, not heartbeats: the connection manager's traffic recency.
		// A frame that joins a write under way is counted with the frame
		// that started it (at most one write's time earlier), so that a
		// stream reads the clock once per write, not per frame; one held
		// (hold) at the hold's end, with the read's time.
		switch {
		case p.n.clk != nil || p.conn == nil || !p.flushing && p.holds == 0:
			h.Traffic(p.n.now())
		case p.holds > 0 && !p.flushing:
			p.heldData = true
		}
	}
	p.sendLocked(dial)
	return p.link.epoch, nil
}

// admitLocked decides whether a frame of kind from o may be queued now
// (the link's state, the outbox's bound) and returns the frame to fill,
// p.out, and whether the link wants a dial. Its errors are enqueue's.
func (p *peer) admitLocked(kind int, o origin) (*frame, bool, error) {
	if p.n.closing.Load() {
		return nil, false, ErrClosed
	}
	// The clock is read only when needed: time.Now costs about as much as
	// the rest of a send where the clock is paravirtualised (kvm-clock).
	var dial bool
	var err error
	if !p.link.queues(o) {
		dial, err = p.link.admit(o, p.n.now())
	}
	if err != nil {
		if o == fromLocal && errors.Is(err, ErrNotSent) {
			p.n.stats.downRefused.Add(1)
			p.syncRetryLocked()
		}
		return nil, false, err
	}
	if p.fw == nil {
		p.fw = newFrameWriter(p.n)
	}
	switch p.ob.admit(o == forced) {
	case obOverflow:
		// A peer that reads nothing while a stop's signals pile up is let
		// go, as one that stopped answering heartbeats would be.
		p.n.stats.refused.Add(1)
		if p.conn != nil {
			_ = p.conn.Close() // asynchronous: OnClose declares the peer lost
		}
		return nil, false, fmt.Errorf("%w: %s reads nothing: %d bytes queued for it, signals included", ErrNodeDown, p.nameLocked(), p.ob.unacked())
	case obFull:
		p.n.stats.refused.Add(1)
		if p.conn != nil && !p.flushing && p.netHeld > 0 {
			p.flushing = true
			p.writeLocked(nil) // learn whether gnet has drained meanwhile
		}
		if p.fullErr == nil { // made once: a sender retrying in a loop must not pay for formatting
			p.fullErr = fmt.Errorf("%w: outbound queue for node %s at its limit (%d bytes)", actor.ErrQueueFull, p.nameLocked(), p.n.cfg.MaxOutbound)
		}
		return nil, false, p.fullErr
	}
	f := &p.out
	*f = frame{kind: uint64(kind)}
	return f, dial, nil
}

// appendLocked encodes f, filled, into the outbox.
func (p *peer) appendLocked(f *frame) error {
	joined, err := p.ob.appendFrame(p.fw, f)
	f.payload = nil // do not keep the message reachable
	if err != nil {
		return err
	}
	if !joined { // a message that joins a batch frame is no frame of its own
		p.n.stats.framesOut.Add(1)
	}
	return nil
}

// sendLocked starts what the queued frames need: the dial the link asked
// for, or a write if none is under way.
func (p *peer) sendLocked(dial bool) {
	switch {
	case dial:
		p.dialLocked()
	case p.conn != nil && !p.flushing:
		if p.holds > 0 && !p.holdExpired() { // written at the hold's end (unhold)
			p.held = true
			return
		}
		p.flushLocked(true)
	}
}

func (p *peer) nameLocked() string { return p.name() }

// dialLocked starts a connection attempt, as the link decided. The Hello
// goes first on the new connection, before anything queued for it.
func (p *peer) dialLocked() {
	if !p.link.idle() || p.link.closed {
		return
	}
	epoch := p.link.startDial(p.n.now())
	p.syncRetryLocked()
	if p.fw == nil {
		p.fw = newFrameWriter(p.n)
	}
	p.ob.begin(epoch, p.fw, &frame{kind: fHello, version: protocolVersion, name: p.n.name, incarnation: p.n.inc, addr: p.n.Addr(), epoch: epoch,
		cutInc: p.link.cutInc, cutEpoch: p.link.cutEpoch})
	p.n.stats.dials.Add(1)
	p.n.dial(p, epoch)
}

// syncRetryLocked arms the retry timer for the link's retryAt, or stops it
// when the link has none.
func (p *peer) syncRetryLocked() {
	at := p.link.retryAt
	if at.Equal(p.retryFor) {
		return
	}
	if p.retryTimer != nil {
		p.retryTimer.Stop()
		p.retryTimer = nil
	}
	p.retryFor = at
	if at.IsZero() {
		return
	}
	p.retryTimer = p.n.afterFunc(at.Sub(p.n.now()), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.retryFor != at {
			return // re-armed or stopped meanwhile
		}
		p.retryTimer, p.retryFor = nil, time.Time{}
		if p.n.closing.Load() {
			return
		}
		if p.link.retry(p.n.now()) {
			p.dialLocked()
		}
	})
}

// opened is called on the connection's callback goroutine when the dialed
// connection is up.
func (p *peer) opened(c netConn, epoch uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.n.now()
	if !p.link.opened(epoch, now) {
		return false
	}
	p.conn = c
	p.netHeld = 0
	p.lastHeard.Store(now.UnixNano())
	p.n.stats.opened.Add(1)
	p.localAddr, p.remoteAddr = c.LocalAddr().String(), c.RemoteAddr().String()
	p.flushLocked(false)
	return true
}

// secured is called on the connection's callback goroutine when the dialed connection's handshake
// completes: last is the handshake's final record, which goes before the
// frames queued meanwhile, sealed with tx.
func (p *peer) secured(c netConn, epoch uint64, last []byte, tx *transportCipher, key []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != c {
		return
	}
	if err := p.link.secured(epoch, key, p.pinned); err != nil {
		if errors.Is(err, errStaleConn) {
			return
		}
		// Nothing is sent on it (the frames queued carry refs' secrets and
		// answers meant for another node); closing makes the peer lost.
		p.n.log.Warn("remote: closing connection: "+err.Error(), "peer", p.addr, "key", fmt.Sprintf("%x", key))
		_ = c.Close()
		return
	}
	_, _ = c.Write(last) // on c's loop: before anything written after it
	p.n.stats.bytesOut.Add(uint64(len(last)))
	p.netHeld = c.OutboundBuffered()
	p.tx, p.peerKey = tx, key
	p.answerKey.Store(&key)
	p.flushLocked(false)
}

// welcomed records the peer's name from its Welcome: the handshake is done,
// the peer is up. maxFrame, the largest frame the peer reads, bounds the
// batch frames queued for this connection from now on.
func (p *peer) welcomed(epoch uint64, name string, inc, maxFrame uint64) error {
	p.mu.Lock()
	key := p.peerKey
	p.mu.Unlock()
	// A Welcome from a new incarnation replaces the old ones as its Hello
	// would (whichever comes first), before this connection is up.
	marks, err := p.n.supersedeWelcomed(inKey{name, inc}, p.addr, key)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if err := p.link.welcomed(epoch, inc); err != nil {
		p.mu.Unlock()
		return err // the driver closes the stale connection
	}
	p.ob.welcomed(epoch, maxFrame)
	local, remote := p.localAddr, p.remoteAddr
	p.mu.Unlock()
	if len(marks) > 0 {
		p.replaced(inc, name, marks) // the connection just welcomed is kept
	}
	p.setName(name)
	p.n.cmConnected(p, epoch, p.n.now())
	p.n.ev.connOpened(name, local, remote)
	p.n.ev.nodeUp(name, p.addr)
	return nil
}

// replaced ends what this node holds of the old incarnations (marks) of
// the peer's node once incarnation inc of it has connected here or
// welcomed this node's dial: a dialed connection another incarnation
// welcomed (link.replaced; its loss ends the links made on it), and the
// link halves the old incarnations' actors made here. Links made on a
// connection the new incarnation welcomed are kept.
func (p *peer) replaced(inc uint64, name string, marks []uint64) {
	reason := fmt.Errorf("%w: %s: restarted (a new incarnation connected)", ErrNodeDown, name)
	p.mu.Lock()
	stale, conn, epoch := p.link.replaced(inc), p.conn, p.link.epoch
	p.mu.Unlock()
	if stale {
		if conn != nil {
			_ = conn.Close()
		}
		p.lost(epoch, reason)
	}
	for _, m := range marks {
		p.n.wire.BreakMarkedLinks(p, m, reason)
	}
}

// lost ends connection epoch: the one-way messages the peer did not
// acknowledge are reported as dead letters, other queued frames are
// discarded, and the asks, calls and monitors that depended on the peer
// fail with err. The peer is then known down (local sends fail at once with
// err) until a connection is welcomed again; a retry, after a backoff,
// dials again if anything wants the peer (see link.retry).
func (p *peer) lost(epoch uint64, err error) {
	p.mu.Lock()
	wasUp := p.conn != nil
	welcomed := p.link.phase == linkUp
	now := p.n.now()
	if !p.link.lost(epoch, err, now, p.n.jitter()) {
		p.mu.Unlock()
		return
	}
	// A no-op after a trim decision; a Connected of epoch still to come
	// from welcomed (it reports after releasing p.mu) is then stale.
	_ = p.n.conns.m.Disconnected(p.addr, epoch, now)
	p.syncRetryLocked()
	// A connection that was up ends the other node's connections with it
	// (the cut). One that never got its Welcome (a failed dial, a
	// handshake that did not finish) ends nothing of the other node's:
	// only the links local actors made on it end, and the other node
	// ends its halves of those when that connection closes there. Cutting
	// then would make a node that cannot dial the other, while the other
	// can dial it, cut that node's connection at every failed dial.
	var cut []*inConn
	if welcomed && !bugs.NoCut {
		cut = p.cutLocked()
	}
	local, remote := p.localAddr, p.remoteAddr
	c := p.conn
	p.conn, p.flushing = nil, false
	p.tx, p.peerKey = nil, nil
	p.answerKey.Store(nil)
	p.netHeld = 0
	var ids *outTables
	if p.fw != nil {
		ids = &p.fw.ids
	}
	dead := p.ob.lost(ids)
	if bugs.SilentLoss {
		dead = deadLetters{}
	}
	// Counted before the refusals below become visible: a sender that sees
	// ErrNodeDown finds its lost messages counted.
	p.n.stats.deadLetters.Add(uint64(dead.total))
	calls := p.calls
	p.calls = nil
	p.addCallsLocked(-len(calls))
	p.addMonitorsLocked(-p.monitors.count())
	mons := p.monitors.lost()
	p.addLinksLocked(-p.links) // BreakLinks below ends them all
	closed := p.link.closed || p.n.closing.Load()
	wake := p.roomWaiters // what waited for room learns of the loss by trying again
	p.roomWaiters = nil
	p.mu.Unlock()
	for _, f := range wake {
		f()
	}
	p.n.reportDeadLetters(p, dead, err)
	if c != nil {
		c.release() // gnet: the socket closes once its descriptor and ours both are
	}
	for _, ic := range cut {
		_ = ic.conn.Close()
	}

	p.n.stats.peersDown.Add(1)
	if wasUp && !closed && !trimmed(err) { // a trim is logged by peer.trim
		p.n.log.Warn("remote: peer down", "peer", p.name(), "addr", p.addr, "reason", err)
	}
	if welcomed {
		p.n.ev.connClosed(p.name(), local, remote, err)
		p.n.ev.nodeDown(p.name(), p.addr, err)
	}
	p.n.wire.FailPeer(p, epoch, err)
	if welcomed || bugs.NoCut {
		p.n.wire.BreakLinks(p, epoch, err)
	} else {
		p.n.wire.BreakOwnLinks(p, epoch, err)
	}
	// In the order made: a callback's effects (a reply posted to a loop)
	// must not follow the map's random order, or a simulated run would not
	// replay.
	for _, corr := range slices.Sorted(maps.Keys(calls)) {
		calls[corr].settle(nil, err)
	}
	for _, d := range downsOf(mons) {
		_ = p.n.wire.DeliverSignal(d.watcher, actor.Down{Ref: d.target, Reason: err})
	}
}

// cutLocked ends, with this node's own connection to the peer, the
// connections the peer's node dialed here: a pair of nodes keeps one
// connection each way, and a loss of either ends both, as the loss of
// Erlang's one connection per pair does. So both nodes end the links
// between their actors whichever connection broke: the other node learns
// of the loss from its own connection's close (or from the cut named in
// this node's next Hello: cutBy), and no frame of the cut connections is
// handled after the links here ended (inConn.cut, read by inLink's epoch
// under p.mu). It returns the connections to close.
func (p *peer) cutLocked() []*inConn {
	var cut []*inConn
	for _, ic := range p.ins {
		if ic.cut.Swap(true) {
			continue
		}
		// Recorded for the next Hello: a connection of the node this
		// node's own connection reached (the same key), if it got that
		// far; not one from a node that only claimed the address.
		if ic.state != nil && !ic.state.replaced.Load() && (p.peerKey == nil || bytes.Equal(p.peerKey, ic.sess.peerKey)) {
			p.link.recordCut(ic.inc, ic.epoch)
		}
		cut = append(cut, ic)
	}
	return cut
}

// reachedKey reports whether key is the one this node's current
// connection to the peer authenticated.
func (p *peer) reachedKey(key []byte) bool {
	k := p.answerKey.Load()
	return k != nil && bytes.Equal(*k, key)
}

// cutBy is told by a Hello of the peer's node that it cut this node's
// connections to it up to epoch (cutLocked there): if this node's current
// connection is one of them, it is lost now, as its close (on its way) will
// say.
func (p *peer) cutBy(epoch uint64, name string) {
	p.mu.Lock()
	if p.link.epoch > epoch || p.link.closed {
		p.mu.Unlock()
		return
	}
	conn, e := p.conn, p.link.epoch
	p.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	p.lost(e, fmt.Errorf("%w: %s: it lost its connection to this node", ErrNodeDown, name))
}

// heartbeat pings a connected peer and declares it down when it has been
// silent past the timeout.
func (p *peer) heartbeat(now time.Time, seq uint64) {
	p.mu.Lock()
	conn, epoch := p.conn, p.link.epoch
	handshake := p.link.phase == linkHandshake
	err := p.link.expired(now, time.Unix(0, p.lastHeard.Load()))
	p.mu.Unlock()
	if conn == nil {
		return
	}
	if err != nil {
		if handshake {
			p.n.stats.handshakeTimeouts.Add(1)
		}
		_ = conn.Close()
		p.lost(epoch, err)
		return
	}
	_, _ = p.enqueueOpt(fPing, answer, func(f *frame) { f.seq = seq })
}

// close ends the peer for good (node shutdown).
func (p *peer) close() {
	p.mu.Lock()
	p.link.closed = true
	p.link.retryAt = time.Time{}
	p.syncRetryLocked()
	conn, epoch := p.conn, p.link.epoch
	p.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	p.lost(epoch, fmt.Errorf("%w: %s: local node closed", ErrNodeDown, p.name()))
	p.mu.Lock()
	fw := p.fw
	p.ob.release()
	p.mu.Unlock()
	if fw != nil {
		fw.release()
	}
}

// connectedKey returns the static key of the node this peer's current
// connection authenticated, or nil when there is no connection.
func (p *peer) connectedKey() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peerKey
}

// pin makes key the only one this peer's connections may authenticate from
// now on (Node.Resolve). It fails, pinning nothing, unless the current
// connection authenticated key, and if another key is pinned already: one
// check under the lock, so no reconnection slips in between.
func (p *peer) pin(key []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !bytes.Equal(p.peerKey, key) {
		return fmt.Errorf("the node at %s (key %x) is not the one the sturdy ref names", p.addr, p.peerKey)
	}
	if p.pinned != nil && !bytes.Equal(p.pinned, key) {
		return fmt.Errorf("the peer at %s is pinned to another key", p.addr)
	}
	p.pinned = append([]byte(nil), key...)
	return nil
}

// ensureConnected dials the peer if there is no connection (nor a dial or
// a retry under way), so that its heartbeat watches the node; as an answer
// to the node, so only as link.mayAnswer allows.
func (p *peer) ensureConnected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.link.ensureConnected(p.n.now()) {
		p.dialLocked()
	}
}
