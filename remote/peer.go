package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/actord/actord/actor"
	"github.com/panjf2000/gnet/v2"
)

// peer is this node's side of another node, found by its listen address. It
// owns the connection this node dials to it, which carries everything this
// node sends there: messages, asks, replies, monitors. (The connection the
// other node dials here carries the other direction.) It implements
// actor.Peer.
type peer struct {
	n    *Node
	addr string

	mu       sync.Mutex
	nameMu   sync.Mutex // guards nodeName; a leaf lock: names are read while encoding refs under mu
	nodeName string
	// link is the connection's protocol state (link.go): epochs, known
	// down, retries, claims, deadlines. The rest of peer is I/O.
	link *link
	// retryTimer fires at link.retryAt (syncRetryLocked).
	retryTimer *time.Timer
	retryFor   time.Time // the retryAt retryTimer is armed for
	conn       gnet.Conn // nil unless connected
	// fw's buffer holds the connection's plaintext stream from base on:
	// bytes before ack the peer acknowledged (dropped once they are half of
	// the buffer), bytes before sent are sealed and written, the rest wait.
	fw        *frameWriter
	base      uint64           // stream offset of fw's first byte (the Hello is at 0)
	ack       int              // bytes of fw's buffer the peer acknowledged (fAck)
	sent      int              // bytes of fw's buffer already sealed and written
	tx        *transportCipher // seals them; nil until the connection's handshake is done
	peerKey   []byte           // the static key the current connection's handshake authenticated (nil before)
	pinned    []byte           // the only key a connection may authenticate, once a sturdy ref was resolved through this peer
	sealBuf   []byte           // reused for sealed batches; nil while one is in flight
	fullErr   error            // what enqueue returns when the queue is full
	flushing  bool
	netHeld   int                    // bytes handed to gnet, perhaps not in the socket yet (an upper bound): they count against MaxOutbound
	wc        net.Conn               // the node's own descriptor of the dialed socket, for direct writes
	wrc       syscall.RawConn        // wc's raw descriptor
	writeFd   func(fd uintptr) bool  // p.writeSome, bound once
	wbuf      []byte                 // what tryWrite is writing
	wn        int                    // how much of it is written
	lastWrite int64                  // when flushLocked last wrote (ns since monoBase)
	out       frame                  // the frame being queued (enqueueOpt), reused
	calls     map[uint64]chan result // goroutine asks and spawns by correlation
	nextCall  uint64
	monitors  map[actor.WireID]*monitor
	lastHeard atomic.Int64
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
}

type result struct {
	v   any
	err error
}

// monitor is a remote actor watched by local actors through this peer.
type monitor struct {
	target   actor.Ref
	watchers map[actor.Ref]struct{}
}

func newPeer(n *Node, addr, name string) *peer {
	// A peer is created for every node a decoded ref names; its encoder and
	// tables come with its first use, so one that is never used costs a few
	// hundred bytes (and Config.MaxPeers bounds how many there are).
	p := &peer{n: n, addr: addr, nodeName: name}
	p.link = newLink(&n.linkCfg, p.name, time.Now())
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

// Node implements actor.Peer.
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

// forcedLimit bounds forced frames (enqueueOpt) to this many times
// MaxOutbound.
const forcedLimit = 4

// enqueueOpt is enqueue; with force the frame is queued even beyond
// MaxOutbound. Only the signals of a local actor's stop are forced (its
// Downs and the exit signals to its links): as locally, they are not
// dropped because a queue is full. Answers to another node's requests are
// not forced. Another node can still make a stop send many signals (by
// linking or monitoring many times), so forced frames stop at forcedLimit
// times MaxOutbound: there, the peer is disconnected (and declared lost).
func (p *peer) enqueueOpt(kind int, o origin, fill func(f *frame)) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n.closing.Load() {
		return 0, ErrClosed
	}
	force := o == forced
	dial, err := p.link.admit(o, time.Now())
	if err != nil {
		if o == fromLocal && errors.Is(err, ErrNotSent) {
			p.n.stats.downRefused.Add(1)
			p.syncRetryLocked()
		}
		return 0, err
	}
	if p.fw == nil {
		p.fw = newFrameWriter(p.n)
	}
	held := p.unackedLocked()
	if force && held >= forcedLimit*p.n.cfg.MaxOutbound {
		// Other nodes can make a stop send many signals (a link or a
		// monitor each): a peer that reads nothing while they pile up is
		// let go, as one that stopped answering heartbeats would be.
		p.n.stats.refused.Add(1)
		if p.conn != nil {
			_ = p.conn.Close() // asynchronous: OnClose declares the peer lost
		}
		return 0, fmt.Errorf("%w: %s reads nothing: %d bytes queued for it, signals included", ErrNodeDown, p.nameLocked(), held)
	}
	if !force && held >= p.n.cfg.MaxOutbound {
		p.n.stats.refused.Add(1)
		if p.conn != nil && !p.flushing && p.netHeld > 0 {
			p.flushing = true
			p.writeLocked(nil) // learn whether gnet has drained meanwhile
		}
		if p.fullErr == nil { // made once: a sender retrying in a loop must not pay for formatting
			p.fullErr = fmt.Errorf("%w: outbound queue for node %s at its limit (%d bytes)", actor.ErrQueueFull, p.nameLocked(), p.n.cfg.MaxOutbound)
		}
		return 0, p.fullErr
	}
	f := &p.out
	*f = frame{kind: uint64(kind)}
	fill(f)
	err = p.fw.write(f)
	f.payload = nil // do not keep the message reachable
	if err != nil {
		return 0, err
	}
	p.n.stats.framesOut.Add(1)
	switch {
	case dial:
		p.dialLocked()
	case p.conn != nil && !p.flushing:
		p.flushLocked(true)
	}
	return p.link.epoch, nil
}

func (p *peer) nameLocked() string { return p.name() }

// unackedLocked is how many bytes of frames the peer has not acknowledged:
// queued, or written and perhaps still in gnet's buffer, the kernel's or
// the network (they count against MaxOutbound).
func (p *peer) unackedLocked() int {
	if p.fw == nil {
		return 0
	}
	return len(p.fw.w.b) - p.ack
}

// queuedLocked is how many bytes of frames wait to be written.
func (p *peer) queuedLocked() int {
	if p.fw == nil {
		return 0
	}
	return len(p.fw.w.b) - p.sent
}

// maxBatch bounds what one write hands to gnet: gnet copies whatever the
// socket does not take at once into its own buffer, so handing it the whole
// queue (up to MaxOutbound) under load cost a copy of every byte; the rest
// waits here for the write's completion.
const maxBatch = 512 << 10

// flushLocked hands the queued bytes to gnet in one write; the next batch
// goes when that write completes, so frames queued meanwhile share a write.
//
// With direct (a sender found the connection idle: no write in flight,
// nothing held by gnet) and no write in the last directGap, it writes from
// the calling goroutine through the node's own descriptor of the socket,
// without waiting: an isolated message (a request, a reply) then reaches the
// socket with no hand-off to gnet's loop, a thread wake-up saved each way.
// Frames that follow within directGap are part of a burst and go through
// gnet, one write per batch. Whatever the socket did not take goes through
// gnet too, in order, since nothing else is in flight.
func (p *peer) flushLocked(direct bool) {
	if p.fw == nil {
		return // never used: nothing queued
	}
	plain := p.fw.w.b[p.sent:]
	if len(plain) == 0 || p.tx == nil { // nothing queued, or the handshake is not done
		p.flushing = false
		return
	}
	plain = plain[:min(len(plain), maxBatch)]
	out := seal(p.sealBuf[:0], p.tx, plain)
	p.sent += len(plain)
	now := int64(time.Since(monoBase))
	burst := now-p.lastWrite < int64(directGap)
	p.lastWrite = now
	if direct && !burst && p.wrc != nil && p.netHeld == 0 {
		n := p.tryWrite(out)
		p.n.stats.bytesOut.Add(uint64(n))
		if n == len(out) {
			p.sealBuf = out[:0]
			if p.queuedLocked() > 0 {
				p.flushLocked(false) // more than one batch was queued: the rest goes through gnet
			}
			return
		}
		out = out[n:]
	}
	p.sealBuf = nil
	p.flushing = true
	p.netHeld += len(out)
	p.n.stats.bytesOut.Add(uint64(len(out)))
	p.writeLocked(out)
}

// trimLocked drops the acknowledged bytes at the front of the buffer once
// they are all of it or half of it, so the buffer does not grow while
// producers keep it from emptying: each byte moves at most once more.
func (p *peer) trimLocked() {
	b := p.fw.w.b
	if p.ack == 0 || p.ack < len(b)/2 {
		return
	}
	n := copy(b, b[p.ack:])
	p.fw.w.b = b[:n]
	p.base += uint64(p.ack)
	p.sent -= p.ack
	p.ack = 0
}

// acked records the peer's acknowledgement of the first upto bytes of
// connection epoch's stream. An acknowledgement of bytes never written is a
// protocol error.
func (p *peer) acked(epoch, upto uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if epoch != p.link.epoch || p.fw == nil {
		return nil
	}
	if upto > p.base+uint64(p.sent) {
		return bad(fmt.Sprintf("acknowledgement of %d bytes, %d written", upto, p.base+uint64(p.sent)), nil)
	}
	if upto <= p.base+uint64(p.ack) {
		return nil // nothing new
	}
	p.ack = int(upto - p.base)
	p.trimLocked()
	return nil
}

// writeLocked hands out to gnet. gnet buffers without bound what the socket
// does not take, so the completion notes how much it still holds (netHeld,
// counted against MaxOutbound) before the next batch goes. An empty out
// only refreshes netHeld.
func (p *peer) writeLocked(out []byte) {
	err := p.conn.AsyncWrite(out, func(c gnet.Conn, err error) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if out != nil {
			p.sealBuf = out[:0] // reuse it: regrowing a buffer per batch cost 25% of CPU
		}
		if err != nil || p.conn != c {
			p.flushing = false
			return nil
		}
		p.netHeld = c.OutboundBuffered() // on c's loop: exact
		p.flushLocked(false)
		return nil
	})
	if err != nil {
		p.flushing = false
	}
}

// directGap separates isolated messages, written directly, from bursts,
// batched through gnet (see flushLocked). Measured with BenchmarkRemotePingPong
// and BenchmarkRemoteThroughput.
const directGap = 20 * time.Microsecond

// monoBase anchors the monotonic readings of flushLocked.
var monoBase = time.Now()

// tryWrite writes as much of b as the socket takes now, without waiting.
// p.mu held (the buffer and count live in p, so no closure is allocated
// per write).
func (p *peer) tryWrite(b []byte) int {
	if p.writeFd == nil {
		p.writeFd = p.writeSome
	}
	p.wbuf, p.wn = b, 0
	_ = p.wrc.Write(p.writeFd)
	n := p.wn
	p.wbuf = nil
	return n
}

// writeSome is tryWrite's raw-descriptor callback.
func (p *peer) writeSome(fd uintptr) bool {
	for p.wn < len(p.wbuf) {
		k, err := syscall.Write(int(fd), p.wbuf[p.wn:])
		if k > 0 {
			p.wn += k
		}
		if err != nil && err != syscall.EINTR {
			break // EAGAIN: the socket is full; the rest goes through gnet
		}
		if k <= 0 && err == nil {
			break
		}
	}
	return true // never wait for writability here
}

// dialLocked starts a connection attempt, as the link decided. The Hello
// goes first on the new connection, before anything queued for it.
func (p *peer) dialLocked() {
	if !p.link.idle() || p.link.closed {
		return
	}
	epoch := p.link.startDial(time.Now())
	p.syncRetryLocked()
	if p.fw == nil {
		p.fw = newFrameWriter(p.n)
	}
	queued := append([]byte(nil), p.fw.w.b[p.sent:]...)
	p.fw.w.b, p.sent, p.ack, p.base = p.fw.w.b[:0], 0, 0, 0
	_ = p.fw.write(&frame{kind: fHello, version: protocolVersion, name: p.n.name, incarnation: p.n.inc, addr: p.n.Addr(), epoch: epoch})
	p.fw.w.b = append(p.fw.w.b, queued...)
	p.n.stats.dials.Add(1)
	go p.dial(epoch)
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
	p.retryTimer = time.AfterFunc(time.Until(at), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.retryFor != at {
			return // re-armed or stopped meanwhile
		}
		p.retryTimer, p.retryFor = nil, time.Time{}
		if p.n.closing.Load() {
			return
		}
		if p.link.retry(time.Now()) {
			p.dialLocked()
		}
	})
}

func (p *peer) dial(epoch uint64) {
	p.n.mu.Lock()
	cli := p.n.cli
	p.n.mu.Unlock()
	var err error
	if cli == nil {
		err = ErrClosed
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), p.n.cfg.DialTimeout)
		var d net.Dialer
		nc, derr := d.DialContext(ctx, "tcp", p.addr)
		cancel()
		err = derr
		var wc net.Conn
		if err == nil {
			// Keep a descriptor of our own for direct writes (flushLocked);
			// gnet gets another for reading, batched writes and closing.
			if wc, err = dupConn(nc); err != nil {
				_ = nc.Close()
			}
		}
		if err == nil {
			// Enroll hands a duplicate of the socket to a gnet loop, closes
			// nc, and returns once OnOpen has run.
			if _, err = cli.EnrollContext(nc, &outConn{p: p, epoch: epoch, wc: wc}); err != nil {
				_ = wc.Close()
			}
		}
	}
	if err != nil {
		p.n.log.Debug("remote: dial failed", "peer", p.addr, "err", err)
		p.lost(epoch, fmt.Errorf("%w: %s: dial: %w", ErrNodeDown, p.addr, err))
	}
}

// opened is called on the gnet loop when the dialed connection is up; wc is
// the node's own descriptor of it, for direct writes.
func (p *peer) opened(c gnet.Conn, epoch uint64, wc net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	rc, err := wc.(syscall.Conn).SyscallConn()
	if err != nil {
		return false
	}
	now := time.Now()
	if !p.link.opened(epoch, now) {
		return false
	}
	p.conn = c
	p.wc, p.wrc = wc, rc
	p.netHeld = 0
	p.lastHeard.Store(now.UnixNano())
	p.n.stats.opened.Add(1)
	p.localAddr, p.remoteAddr = c.LocalAddr().String(), c.RemoteAddr().String()
	p.flushLocked(false)
	return true
}

// secured is called on the gnet loop when the dialed connection's handshake
// completes: last is the handshake's final record, which goes before the
// frames queued meanwhile, sealed with tx.
func (p *peer) secured(c gnet.Conn, epoch uint64, last []byte, tx *transportCipher, key []byte) {
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
// the peer is up.
func (p *peer) welcomed(name string) {
	p.setName(name)
	p.mu.Lock()
	local, remote := p.localAddr, p.remoteAddr
	p.link.welcomed()
	p.mu.Unlock()
	p.n.ev.connOpened(name, local, remote)
	p.n.ev.nodeUp(name, p.addr)
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
	if !p.link.lost(epoch, err, time.Now(), rand.Float64()) {
		p.mu.Unlock()
		return
	}
	p.syncRetryLocked()
	local, remote := p.localAddr, p.remoteAddr
	p.conn, p.flushing = nil, false
	p.tx, p.peerKey = nil, nil
	p.answerKey.Store(nil)
	p.netHeld = 0
	wc := p.wc
	p.wc, p.wrc = nil, nil
	var dead deadLetters
	if p.fw != nil {
		dead = p.n.scanDeadLetters(p.fw.w.b[p.ack:])
		// Counted before the refusals below become visible: a sender that
		// sees ErrNodeDown finds its lost messages counted.
		p.n.stats.deadLetters.Add(uint64(dead.total))
		p.fw.w.b, p.sent, p.ack, p.base = p.fw.w.b[:0], 0, 0, 0
	}
	calls := p.calls
	p.calls = nil
	mons := p.monitors
	p.monitors = nil
	closed := p.link.closed || p.n.closing.Load()
	p.mu.Unlock()
	p.n.reportDeadLetters(p, dead, err)
	if wc != nil {
		_ = wc.Close() // the socket closes once gnet's descriptor and ours both are
	}

	p.n.stats.peersDown.Add(1)
	if wasUp && !closed {
		p.n.log.Warn("remote: peer down", "peer", p.name(), "addr", p.addr, "reason", err)
	}
	if welcomed {
		p.n.ev.connClosed(p.name(), local, remote, err)
		p.n.ev.nodeDown(p.name(), p.addr, err)
	}
	p.n.wire.FailPeer(p, epoch, err)
	p.n.wire.BreakLinks(p, epoch, err)
	for _, ch := range calls {
		ch <- result{nil, err}
	}
	for _, m := range mons {
		for w := range m.watchers {
			_ = p.n.wire.DeliverSignal(w, actor.Down{Ref: m.target, Reason: err})
		}
	}
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
	p.mu.Unlock()
	if fw != nil {
		fw.release()
	}
}

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
	if !ok || q != actor.Peer(p) {
		return id, fmt.Errorf("remote: ref %v is not on node %s", r, p.name())
	}
	return id, nil
}

// Send implements actor.Peer.
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
	m := p.monitors[target]
	var ref actor.Ref
	found := false
	if m != nil {
		if _, found = m.watchers[w]; found {
			ref = m.target
			delete(m.watchers, w)
			if len(m.watchers) == 0 {
				delete(p.monitors, target)
			}
		}
	}
	p.mu.Unlock()
	if found {
		_ = p.n.wire.DeliverSignal(w, actor.Down{Ref: ref, Reason: reason})
	}
}

// Ask implements actor.Peer.
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

// Reply implements actor.Peer: it answers an ask that came from the peer.
func (p *peer) Reply(to actor.Ref, pidx, pgen uint32, v any, rerr error) {
	_, id, ok := p.n.wire.Remote(to)
	if !ok {
		return
	}
	fill := func(f *frame) {
		f.loop, f.pidx, f.pgen, f.payload = id.Loop, pidx, pgen, v
		f.setError(rerr)
	}
	if _, err := p.enqueueOpt(fReply, answer, fill); err != nil && rerr == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNodeDown) {
		// The value could not travel (an unregistered type): say why instead.
		v, rerr = nil, err
		_, _ = p.enqueueOpt(fReply, answer, fill)
	}
}

// call sends a frame, filled in by fill, carrying a fresh goroutine
// correlation (pidx, pgen), and waits for its reply.
func (p *peer) call(ctx context.Context, kind int, fill func(f *frame)) (any, error) {
	ch := make(chan result, 1)
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[uint64]chan result{}
	}
	p.nextCall++
	corr := p.nextCall
	p.calls[corr] = ch
	p.mu.Unlock()
	pidx, pgen := uint32(corr), uint32(corr>>32)
	if _, err := p.enqueue(kind, func(f *frame) { fill(f); f.pidx, f.pgen = pidx, pgen }); err != nil {
		p.mu.Lock()
		delete(p.calls, corr)
		p.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.calls, corr)
		p.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (p *peer) completeAsk(corr uint64, v any, err error) {
	p.mu.Lock()
	ch, ok := p.calls[corr]
	delete(p.calls, corr)
	p.mu.Unlock()
	if ok {
		ch <- result{v, err}
	}
}

// AskWait implements actor.Peer: a blocking ask from a plain goroutine.
func (p *peer) AskWait(ctx context.Context, to actor.Ref, msg any) (any, error) {
	tid, err := p.remoteID(to)
	if err != nil {
		return nil, err
	}
	return p.call(ctx, fAsk, func(f *frame) {
		f.to, f.from, f.payload = tid, actor.WireID{Loop: actor.GoroutineLoop}, msg
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

// Monitor implements actor.Peer.
func (p *peer) Monitor(target, watcher actor.Ref) error {
	tid, wid, err := p.monitorIDs(target, watcher)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.link.down != nil {
		// As a monitor of an actor on a node known down: Down at once (the
		// attempt counts as a use: it asks for a redial).
		_, down := p.link.admit(fromLocal, time.Now())
		p.n.stats.downRefused.Add(1)
		p.syncRetryLocked()
		p.mu.Unlock()
		return p.n.wire.DeliverSignal(watcher, actor.Down{Ref: target, Reason: down})
	}
	if p.monitors == nil {
		p.monitors = map[actor.WireID]*monitor{}
	}
	m := p.monitors[tid]
	if m == nil {
		m = &monitor{target: target, watchers: map[actor.Ref]struct{}{}}
		p.monitors[tid] = m
	}
	_, dup := m.watchers[watcher]
	m.watchers[watcher] = struct{}{}
	p.mu.Unlock()
	if dup {
		return nil
	}
	_, err = p.enqueue(fMonitor, func(f *frame) { f.to, f.from = tid, wid })
	if err == nil {
		return nil
	}
	p.mu.Lock()
	mine := false // still registered: no loss has answered it with a Down
	if m := p.monitors[tid]; m != nil {
		if _, mine = m.watchers[watcher]; mine {
			delete(m.watchers, watcher)
			if len(m.watchers) == 0 {
				delete(p.monitors, tid)
			}
		}
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

// Demonitor implements actor.Peer.
func (p *peer) Demonitor(target, watcher actor.Ref) error {
	tid, wid, err := p.monitorIDs(target, watcher)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if m := p.monitors[tid]; m != nil {
		delete(m.watchers, watcher)
		if len(m.watchers) == 0 {
			delete(p.monitors, tid)
		}
	}
	p.mu.Unlock()
	_, err = p.enqueue(fDemonitor, func(f *frame) { f.to, f.from = tid, wid })
	return err
}

// Stop implements actor.Peer.
func (p *peer) Stop(target actor.Ref, reason error) error {
	tid, err := p.remoteID(target)
	if err != nil {
		return err
	}
	_, err = p.enqueue(fStop, func(f *frame) { f.to = tid; f.setError(reason) })
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

// Link implements actor.Peer: the other node links target to from.
func (p *peer) Link(target, from actor.Ref) (uint64, error) {
	tid, fid, err := p.linkIDs(target, from)
	if err != nil {
		return 0, err
	}
	return p.enqueue(fLink, func(f *frame) { f.to, f.from = tid, fid })
}

// currentEpoch is the epoch of the current (or next) connection.
func (p *peer) currentEpoch() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.epoch
}

// Unlink implements actor.Peer.
func (p *peer) Unlink(target, from actor.Ref) error {
	tid, fid, err := p.linkIDs(target, from)
	if err != nil {
		return err
	}
	_, err = p.enqueue(fUnlink, func(f *frame) { f.to, f.from = tid, fid })
	return err
}

// Exit implements actor.Peer: an exit signal from the local actor from to
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
	})
	return err
}

// clientHandler serves the connections this node dials.
type clientHandler struct {
	gnet.BuiltinEventEngine
	n *Node
}

// outConn is the state of a dialed connection.
type outConn struct {
	p     *peer
	epoch uint64
	wc    net.Conn
	sess  *session
	fr    *frameReader
	f     frame
	up    bool
	err   error // why this node closed it, if it did (OnTraffic)
}

func (h *clientHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	oc, ok := c.Context().(*outConn)
	if !ok {
		return nil, gnet.Close
	}
	oc.fr = newFrameReader(h.n, oc.p)
	hs, err := h.n.sec.handshake(true)
	var first []byte
	if err == nil {
		oc.sess = newSession(hs, maxControlFrame) // only Welcome, Pong and Goodbye come back
		first, err = oc.sess.hello()
	}
	if err != nil {
		h.n.log.Error("remote: cannot start a handshake", "err", err)
		_ = oc.wc.Close()
		return nil, gnet.Close
	}
	if !oc.p.opened(c, oc.epoch, oc.wc) {
		_ = oc.wc.Close()
		return nil, gnet.Close
	}
	oc.up = true
	h.n.stats.bytesOut.Add(uint64(len(first)))
	return first, gnet.None
}

func (h *clientHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	oc, ok := c.Context().(*outConn)
	if !ok {
		return gnet.None
	}
	if oc.fr != nil {
		oc.fr.release()
	}
	if oc.up {
		h.n.stats.closed.Add(1)
	}
	cause := oc.err // this side's reason first (a cluster key mismatch, say)
	if cause == nil {
		cause = err
	}
	if cause == nil {
		cause = errors.New("connection closed")
	}
	if oc.sess != nil && !oc.sess.ready() {
		cause = fmt.Errorf("during the secure handshake: %w", cause)
	}
	oc.p.lost(oc.epoch, fmt.Errorf("%w: %s: %w", ErrNodeDown, oc.p.name(), cause))
	return gnet.None
}

func (h *clientHandler) OnTraffic(c gnet.Conn) gnet.Action {
	n := h.n
	oc := c.Context().(*outConn)
	oc.p.lastHeard.Store(time.Now().UnixNano())
	buffered := c.InboundBuffered()
	wasReady := oc.sess.ready()
	last, err := oc.sess.readRecords(c, func(msg []byte) ([]byte, error) { return oc.sess.handshakeStep(true, msg) })
	n.stats.bytesIn.Add(uint64(buffered - c.InboundBuffered()))
	if err == nil && !wasReady && oc.sess.ready() {
		oc.p.secured(c, oc.epoch, last, oc.sess.tx, oc.sess.peerKey)
	}
	if err == nil && oc.sess.ready() {
		err = oc.readFrames(n)
	}
	if err != nil {
		if !oc.sess.ready() && len(last) > 0 {
			_, _ = c.Write(last) // tells the other node why (keyAlert)
		}
		oc.err = err
		n.stats.badFrames.Add(1)
		n.log.Warn("remote: closing connection", "peer", oc.p.name(), "reason", err)
		return gnet.Close
	}
	return gnet.None
}

// readFrames handles the frames the peer sent on a dialed connection.
func (oc *outConn) readFrames(n *Node) error {
	defer oc.sess.compact()
	return readFrames(oc.sess, maxControlFrame, func(body []byte) error {
		n.stats.framesIn.Add(1)
		if err := oc.fr.parse(body, &oc.f); err != nil {
			return err
		}
		switch oc.f.kind {
		case fWelcome:
			if oc.f.version != protocolVersion {
				return fmt.Errorf("%w: %s speaks %d", ErrVersion, oc.f.name, oc.f.version)
			}
			if err := n.authorize(oc.f.name, oc.sess.peerKey); err != nil {
				return err
			}
			oc.p.welcomed(oc.f.name)
		case fPong:
		case fAck:
			return oc.p.acked(oc.epoch, oc.f.seq)
		case fGoodbye:
			return fmt.Errorf("remote: %s said goodbye: %v", oc.p.name(), decodeError(oc.p.name(), oc.f.code, oc.f.msg))
		default:
			return bad(fmt.Sprintf("unexpected frame kind %d on a dialed connection", oc.f.kind), nil)
		}
		return nil
	})
}

// dupConn returns a second net.Conn on c's socket: a duplicated descriptor,
// non-blocking and registered with Go's poller.
func dupConn(c net.Conn) (net.Conn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("remote: cannot duplicate a %T", c)
	}
	f, err := tc.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FileConn(f)
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
	if p.link.ensureConnected(time.Now()) {
		p.dialLocked()
	}
}
