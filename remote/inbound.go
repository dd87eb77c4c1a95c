package remote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/bugs"
	"github.com/actord/actord/internal/seam"
)

// deliver posts a message into a loop, waiting up to DeliverWait while the
// loop's queue is full (see Config.DeliverWait).
func (n *Node) deliver(ic *inConn, post func() error) error {
	err := post()
	if err == nil || !errors.Is(err, actor.ErrQueueFull) {
		return err
	}
	ic.unhold(n.now()) // other senders to the node must not wait for this wait
	ic.kickAll(n)      // what this read queued must drain for room to appear
	if n.clk != nil {
		// Simulated: the loops run on this goroutine; run them until
		// there is room, as their own goroutines would meanwhile.
		for i := 0; i < 1<<16 && errors.Is(err, actor.ErrQueueFull) && n.sys.Step(); i++ {
			err = post()
		}
		return err
	}
	deadline := time.Now().Add(n.cfg.DeliverWait)
	for i := 0; ; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
		if err = post(); err == nil || !errors.Is(err, actor.ErrQueueFull) || time.Now().After(deadline) {
			return err
		}
	}
}

// readFrames drains every complete frame from c, handing each body (valid
// only during the call) to handle. It reports an error (and the caller
// closes the connection) for an oversized frame or when handle fails.
func readFrames(c stream, max int, handle func(body []byte) error) error {
	for {
		h, err := c.Peek(4)
		if err != nil {
			return nil // fewer than 4 bytes: wait for more
		}
		size := int(binary.BigEndian.Uint32(h))
		if size > max {
			return fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, size, max)
		}
		if c.InboundBuffered() < 4+size {
			return nil
		}
		buf, err := c.Peek(4 + size)
		if err != nil {
			return nil
		}
		herr := handle(buf[4:])
		_, _ = c.Discard(4 + size)
		if herr != nil {
			return herr
		}
	}
}

// inConn is the state of an accepted connection.
type inConn struct {
	conn       netConn
	sess       *session
	fr         *frameReader
	f          frame
	hello      bool
	remoteName string
	namedAs    atomic.Pointer[string] // remoteName, for the heartbeat goroutine's log
	epoch      uint64
	state      *inState
	from       *peer // the peer to answer through (its listen address)
	lastHeard  atomic.Int64
	out        []byte // pongs and welcome, written on the loop
	wbuf       []byte // out, sealed
	localAddr  string
	remoteAddr string
	// the last target id whose secret checked out, so a stream to one
	// actor is verified once (loop goroutine only)
	lastTo  actor.WireID
	lastRef actor.Ref
	lastOK  bool
	// the last sender's ref, so a stream from one actor is interned once
	lastFromID  actor.WireID
	lastFromRef actor.Ref
	// one local actor per loop that messages were queued to during this
	// read, to kick at its end (kickAll)
	kick []actor.Ref
	// frame bytes read, and acknowledged to the sender (ackInbound)
	acks inAcks
	// lifecycle requests of this connection not yet answered (see
	// maxLifecycles)
	lifecycles atomic.Int32
	// the connection's place among the unauthenticated ones and its
	// handshake deadline, until its Hello is accepted (then nil)
	pre *preAuth
	// data: a frame other than a Ping was read in this OnTraffic
	data bool
	// holding: this read holds from's frames (peer.hold)
	holding bool
	// cut: this node lost its own connection to the node and ended this
	// one with it (peer.cutLocked): no more of its frames are handled, and
	// a link that its frames asked for and that a loop has not made yet is
	// not made. Set under from.mu.
	cut atomic.Bool
	inc uint64 // the incarnation its Hello named
}

// queued notes that a message was queued (quietly) for to's loop.
func (ic *inConn) queued(to actor.Ref) {
	for _, r := range ic.kick {
		if r.Loop() == to.Loop() {
			return
		}
	}
	ic.kick = append(ic.kick, to)
}

// unhold ends the read's hold of from's frames, if it holds them; now is
// when the read began.
func (ic *inConn) unhold(now time.Time) {
	if ic.holding {
		ic.holding = false
		ic.from.unhold(now)
	}
}

// kickAll makes the loops messages were queued to handle them.
func (ic *inConn) kickAll(n *Node) {
	for i, r := range ic.kick {
		n.wire.Kick(r)
		ic.kick[i] = actor.Ref{}
	}
	ic.kick = ic.kick[:0]
}

// remoteFrom is actorWire.RemoteRef for the sender of a frame, with a one-entry
// cache: interning takes a lock and a map lookup. The cached ref keeps the
// interned one alive, so equal ids still give equal refs.
func (ic *inConn) remoteFrom(n *Node, id actor.WireID) actor.Ref {
	if !ic.lastFromRef.IsZero() && id == ic.lastFromID {
		return ic.lastFromRef
	}
	r := n.wire.RemoteRef(ic.from, id)
	ic.lastFromID, ic.lastFromRef = id, r
	return r
}

// resolve is actorWire.Resolve with a one-entry cache of the last verified id:
// only an id equal, secret included, to one already verified skips the check.
func (ic *inConn) resolve(n *Node, id actor.WireID) (actor.Ref, bool) {
	if ic.lastOK && id == ic.lastTo {
		return ic.lastRef, true
	}
	r, ok := n.wire.Resolve(id)
	if ok {
		ic.lastTo, ic.lastRef, ic.lastOK = id, r, true
	}
	return r, ok
}

// resolveTo is resolve for the target of a frame: an interned target's
// secret is checked once per define, its result kept with the index
// (intern.go), so a forged id's index stays refused.
func (ic *inConn) resolveTo(n *Node, f *frame) (actor.Ref, bool) {
	if !f.toIn {
		return ic.resolve(n, f.to)
	}
	e := &ic.fr.ids.to.ents[f.toIdx]
	if !e.resolved {
		e.ref, e.ok = n.wire.Resolve(e.id)
		e.resolved = true
	}
	return e.ref, e.ok
}

// listening records the listen address and announces it.
func (n *Node) listening(addr string) {
	n.addr.Store(addr)
	n.log.Info("remote: node listening", "addr", addr)
	select {
	case <-n.ready:
	default:
		close(n.ready)
	}
}

// inOpened sets up a connection accepted (and admitted: pa) by the driver;
// nil means the driver closes it.
func (n *Node) inOpened(c netConn, pa *preAuth) *inConn {
	hs, err := n.sec.handshake(false)
	if err != nil {
		pa.authenticated()
		n.log.Error("remote: cannot start a handshake", "err", err)
		return nil
	}
	sess := newSession(hs, n.helloLimit())
	sess.budget = &n.buffered
	// the address read now, while the connection is open: the heartbeat
	// goroutine logs it and sorts by it, and may run after the driver let
	// the connection go
	ic := &inConn{conn: c, sess: sess, fr: newFrameReader(n, nil), pre: pa, remoteAddr: c.RemoteAddr().String()}
	ic.lastHeard.Store(n.now().UnixNano())
	n.stats.opened.Add(1)
	n.mu.Lock()
	n.inbound[ic] = struct{}{}
	n.mu.Unlock()
	pa.start(c) // its close, at the deadline, comes after the driver holds ic
	return ic
}

// inClosed is called once an accepted connection closed.
func (n *Node) inClosed(ic *inConn, err error) {
	n.stats.closed.Add(1)
	n.inboundClosed(ic)
	if ic.pre != nil {
		ic.pre.authenticated() // gives its place back
	}
	ic.sess.release()
	ic.fr.release()
	if ic.hello {
		n.ev.connClosed(ic.remoteName, ic.localAddr, ic.remoteAddr, err)
	}
}

// inTraffic reads what arrived on an accepted connection and writes the
// answers due on it; an error means the driver closes it.
func (n *Node) inTraffic(ic *inConn) error {
	c := ic.conn
	now := n.now()
	ic.lastHeard.Store(now.UnixNano())
	ic.out = ic.out[:0]
	buffered := c.InboundBuffered()
	handshake := func(msg []byte) ([]byte, error) { return ic.sess.handshakeStep(false, msg) }
	var replies []byte
	var err error
	if ic.hello && ic.from != nil {
		ic.holding = ic.from.hold()
	}
	for {
		// Records are decrypted up to what the session may hold, then
		// parsed into frames, which makes room for more.
		var r []byte
		var more bool
		r, more, err = ic.sess.records(c, handshake, true)
		replies = append(replies, r...)
		if err != nil || !ic.sess.ready() {
			break
		}
		held := ic.sess.InboundBuffered()
		if err = n.readInbound(ic); err != nil || !more {
			break
		}
		if ic.sess.InboundBuffered() >= held { // cannot happen: a full session holds a whole frame
			err = fmt.Errorf("%w: no frame in %d bytes of plaintext", ErrFrameTooLarge, held)
			break
		}
	}
	ic.sess.compact()
	ic.kickAll(n)
	ic.traffic(now)
	ic.ackInbound(ackEvery)
	n.stats.bytesIn.Add(uint64(buffered - c.InboundBuffered()))
	if len(ic.out) > 0 && ic.sess.tx != nil {
		replies = seal(append(ic.wbuf[:0], replies...), ic.sess.tx, ic.out)
		ic.wbuf = replies
	}
	if len(replies) > 0 {
		_, _ = c.Write(replies)
	}
	ic.unhold(now)
	switch {
	case err == nil, err == errCut: // closed on purpose (peer.cutLocked)
	case errors.Is(err, ErrBufferLimit):
		n.stats.bufferLimited.Add(1)
		n.log.Warn("remote: closing connection", "peer", ic.remoteName, "remote_addr", hostOf(c.RemoteAddr()), "reason", err)
	default:
		n.stats.badFrames.Add(1)
		n.log.Warn("remote: closing connection", "peer", ic.remoteName, "remote_addr", hostOf(c.RemoteAddr()), "reason", err)
	}
	return err
}

// helloLimit bounds the frames before the Hello.
func (n *Node) helloLimit() int { return min(maxHelloFrame, n.cfg.MaxFrame) }

// errHelloDone stops readFrames at an accepted Hello, so the frames after
// it are read with the limits of an authenticated connection.
var errHelloDone = errors.New("hello accepted")

// readInbound handles the complete frames an accepted connection's session
// holds. Until the Hello is accepted, frames are limited to maxHelloFrame.
func (n *Node) readInbound(ic *inConn) error {
	handle := func(body []byte) error {
		n.stats.framesIn.Add(1)
		ic.acks.read(len(body))
		if err := ic.fr.parse(body, &ic.f); err != nil {
			return err
		}
		if err := n.handleInbound(ic, &ic.f); err != nil {
			return err
		}
		if ic.pre != nil && ic.hello {
			return errHelloDone
		}
		return nil
	}
	if ic.pre == nil {
		return readFrames(ic.sess, n.cfg.MaxFrame, handle)
	}
	err := readFrames(ic.sess, n.helloLimit(), handle)
	if err != errHelloDone {
		return err
	}
	ic.pre.authenticated()
	ic.pre = nil
	ic.sess.setMaxFrame(n.cfg.MaxFrame)
	return readFrames(ic.sess, n.cfg.MaxFrame, handle)
}

// errCut closes a connection this node cut (peer.cutLocked).
var errCut = errors.New("remote: connection cut: this node lost its own connection to the node")

// handleInbound acts on one frame from an accepted connection: the Hello
// first, then the frames of the node it names.
func (n *Node) handleInbound(ic *inConn, f *frame) error {
	if !ic.hello {
		return n.handleHello(ic, f)
	}
	if ic.cut.Load() {
		return errCut
	}
	if ic.state.epoch.Load() != ic.epoch {
		return fmt.Errorf("remote: connection from %s superseded by a newer one", ic.remoteName)
	}
	ic.data = ic.data || f.kind != fPing
	switch f.kind {
	case fSend:
		ic.from.heardData()
		n.inSend(ic, f)
	case fBatch:
		ic.from.heardData()
		n.inBatch(ic, f)
	case fAsk:
		ic.from.heardData()
		n.inAsk(ic, f)
	case fReply:
		ic.from.heardData()
		n.inReply(ic, f)
	case fPing:
		ic.ackInbound(1)
		ic.out = appendControl(ic.out, &frame{kind: fPong, seq: f.seq})
	case fMonitor:
		watcher := n.wire.RemoteRef(ic.from, f.from)
		peer, targetID, watcherID := ic.from, f.to, f.from
		// never echo a corrected secret; an answer, so it may be refused
		noproc := func() { peer.sendDown(targetID, watcherID, actor.ErrDead, false) }
		if target, ok := n.wire.Resolve(f.to); !ok || n.wire.MonitorLocal(target, watcher, noproc) != nil {
			noproc()
		}
	case fDemonitor:
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.DemonitorLocal(target, n.wire.RemoteRef(ic.from, f.from))
		}
	case fStop:
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.StopLocal(target, decodeError(ic.remoteName, f.code, f.msg))
		}
	case fDown:
		ic.from.deliverDown(f.to, f.from, decodeError(ic.remoteName, f.code, f.msg))
	case fLink:
		n.inLink(ic, f)
	case fUnlink:
		ic.from.addLinks(-1)
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.UnlinkLocal(target, ic.remoteFrom(n, f.from))
		}
	case fExit:
		if f.link == 1 {
			ic.from.addLinks(-1) // the peer's end of a link stopped
		}
		if to, ok := ic.resolve(n, f.to); ok {
			from := ic.remoteFrom(n, f.from)
			if f.link == 1 {
				// The owner's node answered a linked spawn with the
				// owner's exit instead of confirming it: settled.
				n.spawns.confirm(to, from)
			}
			_ = n.wire.SignalLocal(to, from, decodeError(ic.remoteName, f.code, f.msg), f.link == 1)
		}
	case fSpawn:
		n.inSpawn(ic, f)
	case fResolve:
		n.inResolve(ic, f)
	case fLifecycle:
		n.inLifecycle(ic, f)
	case fGoodbye:
		return fmt.Errorf("remote: %s said goodbye: %v", ic.remoteName, decodeError(ic.remoteName, f.code, f.msg))
	default:
		return bad(fmt.Sprintf("unexpected frame kind %d on an accepted connection", f.kind), nil)
	}
	return nil
}

// handleHello checks the first frame of an accepted connection, the node's
// Hello, and answers it with Welcome.
func (n *Node) handleHello(ic *inConn, f *frame) error {
	if f.kind != fHello {
		return bad(fmt.Sprintf("frame kind %d before hello", f.kind), nil)
	}
	if f.version != protocolVersion {
		ic.out = appendControl(ic.out, &frame{kind: fGoodbye, code: codeVersion, msg: fmt.Sprintf("protocol version %d, want %d", f.version, protocolVersion)})
		return fmt.Errorf("%w: peer %s speaks %d", ErrVersion, f.name, f.version)
	}
	if f.addr == "" || f.addr == n.Addr() {
		return bad("hello with bad listen address "+f.addr, nil)
	}
	if err := n.authorize(f.name, ic.sess.peerKey); err != nil {
		return err
	}
	from, err := n.boundedPeer(f.addr, f.name)
	if err != nil {
		return err
	}
	st, renewed, replaced, err := n.incarnation(inKey{f.name, f.incarnation}, f.addr, ic.sess.peerKey, f.epoch)
	if err != nil {
		return err
	}
	if len(replaced) > 0 {
		// The node restarted: links with its old incarnation's actors
		// end (and a connection the old one welcomed closes) before
		// this connection's frames can make new ones.
		from.replaced(f.incarnation, f.name, replaced)
	}
	if f.cutInc == n.inc && f.cutEpoch != 0 && from.reachedKey(ic.sess.peerKey) {
		// The node lost its connection to this one and ended, with it,
		// this node's connection to it up to epoch cutEpoch: if that one
		// is still this node's current connection (its close has not
		// arrived), it is lost now, before any frame of the new
		// connection can make links on the far side of the pair. Only
		// the node this node's connection reached may say so, not one
		// that merely claims its address.
		from.cutBy(f.cutEpoch, f.name)
	}
	ic.hello, ic.remoteName, ic.epoch, ic.state, ic.inc = true, f.name, f.epoch, st, f.incarnation
	name := f.name
	ic.namedAs.Store(&name)
	ic.localAddr = ic.conn.LocalAddr().String() // remoteAddr: set at open
	n.ev.connOpened(f.name, ic.localAddr, ic.remoteAddr)
	ic.from = from
	ic.fr.setFrom(n, ic.from)
	from.claimOpened(ic)
	if renewed {
		// The node lost its connection here and dialed again: what it
		// sent meanwhile may be lost, so the links its actors made with
		// local actors end as they did on its side (peer.lost), before
		// this connection's frames can make new ones. The links local
		// actors made end with this node's own connection (peer.lost),
		// which the node cut when it lost its own (see cutBy above).
		from.endLinks()
		n.wire.BreakMarkedLinks(from, st.mark, fmt.Errorf("%w: %s: connection lost", ErrNodeDown, f.name))
	}
	ic.out = appendControl(ic.out, &frame{kind: fWelcome, version: protocolVersion, name: n.name, incarnation: n.inc, maxFrame: uint64(n.cfg.MaxFrame)})
	return nil
}

// incarnation records a connection of epoch from the incarnation key
// (incarnations.hello).
// It returns too the marks of the incarnations of the node it replaced
// (incarnations.supersede).
func (n *Node) incarnation(key inKey, addr string, static []byte, epoch uint64) (st *inState, renewed bool, replaced []uint64, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if replaced, err = n.remotes.supersede(key, addr, static); err != nil {
		return nil, false, nil, err
	}
	if st, renewed, err = n.remotes.hello(key, epoch); err == nil && st.key == nil {
		n.nextMark = n.nextMark%(1<<(64-seam.LinkEpochBits)-1) + 1
		st.addr, st.key, st.mark = addr, append([]byte(nil), static...), n.nextMark
	}
	return st, renewed, replaced, err
}

// supersedeWelcomed records that this node's dial to addr was welcomed
// by incarnation key, authenticated with static: as a Hello of it would,
// it replaces the node's other incarnations (incarnations.supersede) and
// returns their marks; it fails for an incarnation already replaced.
func (n *Node) supersedeWelcomed(key inKey, addr string, static []byte) ([]uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remotes.supersede(key, addr, static)
}

// inSend delivers a one-way message.
func (n *Node) inSend(ic *inConn, f *frame) {
	to, ok := ic.resolveTo(n, f)
	if !ok || f.payloadErr != nil {
		n.stats.dropped.Add(1)
		return
	}
	var from actor.Ref
	if f.hasFrom {
		from = ic.remoteFrom(n, f.from)
	}
	if _, isDown := f.payload.(actor.Down); isDown {
		return // Downs travel as fDown frames only
	}
	if err := n.deliver(ic, func() error { return n.wire.QueueSend(to, from, f.payload) }); err != nil {
		n.stats.dropped.Add(1)
	} else {
		ic.queued(to)
	}
}

// inAsk delivers a request, or answers it with why it cannot be.
func (n *Node) inAsk(ic *inConn, f *frame) {
	from := ic.remoteFrom(n, f.from)
	to, ok := ic.resolveTo(n, f)
	switch {
	case !ok:
		ic.from.Reply(from, f.pidx, f.pgen, nil, actor.ErrDead)
	case f.payloadErr != nil:
		ic.from.Reply(from, f.pidx, f.pgen, nil, f.payloadErr)
	default:
		if err := n.deliver(ic, func() error { return n.wire.QueueAsk(to, from, f.payload, f.pidx, f.pgen) }); err != nil {
			ic.from.Reply(from, f.pidx, f.pgen, nil, err)
		} else {
			ic.queued(to)
		}
	}
}

// inReply settles an ask this node sent, if the reply comes from the node
// it was sent to.
func (n *Node) inReply(ic *inConn, f *frame) {
	if !ic.mayAnswer() {
		// Another node that claims the address in its Hello: a reply names
		// its ask by numbers that can be guessed, so only the node this one
		// asked may settle it.
		n.stats.dropped.Add(1)
		n.log.Warn("remote: dropping a reply from a node that is not the one asked", "peer", ic.remoteName, "remote_addr", ic.remoteAddr)
		return
	}
	err := decodeError(ic.remoteName, f.code, f.msg)
	v := f.payload
	if err == nil && f.payloadErr != nil {
		v, err = nil, f.payloadErr
	}
	if r, ok := v.(reason); ok { // an error as the value (acknowledged.go)
		v = decodeError(ic.remoteName, r.Code, r.Msg)
	}
	if f.loop == goroutineLoop {
		ic.from.completeAsk(uint64(f.pgen)<<32|uint64(f.pidx), v, err)
	} else {
		n.wire.Settle(f.loop, f.pidx, f.pgen, v, err)
	}
}

// inLink makes the local half of a link the other node made, or answers
// that the target is dead.
func (n *Node) inLink(ic *inConn, f *frame) {
	epoch, ok := ic.linkEpoch()
	if !ok {
		return // from an incarnation that restarted: its actors are gone
	}
	target, ok := n.wire.Resolve(f.to)
	from := ic.remoteFrom(n, f.from)
	// The owner of a linked spawn confirms it with a link request: its
	// half is already counted (spawnLinked).
	count := !ok || !n.spawns.confirm(target, from)
	n.linkHalf(ic.from, target, ok, count, from, f.from, f.to, epoch)
}

// linkEpoch returns the epoch function of a link half made at the request
// of the node on ic (seam's LinkLocal), or false if ic's incarnation was
// replaced. The half is marked with the incarnation that made it, so that
// it ends when that incarnation is replaced (peer.replaced). The epoch is
// read on the target's loop, under the peer's lock: a request whose
// connection was cut (peer.cutLocked) or superseded since it was read
// makes no half, as the other node ended its own.
func (ic *inConn) linkEpoch() (func() (uint64, bool), bool) {
	peer, st := ic.from, ic.state
	if st == nil || st.replaced.Load() {
		return nil, false
	}
	return func() (uint64, bool) {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		if ic.cut.Load() || st.replaced.Load() || st.epoch.Load() != ic.epoch {
			return 0, false
		}
		return st.mark<<seam.LinkEpochBits | peer.link.epoch, true
	}, true
}

// linkHalf makes the local actor target's half (ok: target is one) of a
// link with from, an actor of peer's node (fromID and toID as they came
// on the wire), or answers that target is dead; count: the link is new to
// the connection manager's estimate.
func (n *Node) linkHalf(peer *peer, target actor.Ref, ok, count bool, from actor.Ref, fromID, toID actor.WireID, epoch func() (uint64, bool)) {
	// noproc, from the id as it came: never echo a corrected secret
	noproc := func() { _ = peer.sendExit(fromID, toID, actor.ErrDead, true, answer) } // ends the count too
	if count {
		peer.addLinks(1)
	}
	if !ok || n.wire.LinkLocal(target, from, epoch, noproc) != nil {
		noproc()
		return
	}
	// This half of the link ends when this node's own connection to the
	// linking node is lost (peer.lost): make sure there is one, with its
	// heartbeat, even if nothing else is sent there.
	if !bugs.NoDialBack {
		peer.ensureConnected()
	}
}

// inSpawn spawns an actor of a registered kind, if the requester may, and
// answers with its ref. A request that names an owner (Node.SpawnLinkAsync)
// makes the new actor with its half of a link with the owner (and the
// owner as its parent) in the same step, as a link request from the owner
// would make it (linkHalf): if the connection the request came on was lost
// by then, no actor is made, since the owner's node will never learn of
// it; once made, the half ends as any link's with that node, so an answer
// lost with its connection takes the actor down with it instead of leaving
// it running, supervised by nobody.
func (n *Node) inSpawn(ic *inConn, f *frame) {
	proxy := n.wire.RemoteRef(ic.from, actor.WireID{Loop: goroutineLoop})
	if f.payloadErr != nil {
		ic.from.Reply(proxy, f.pidx, f.pgen, nil, f.payloadErr)
		return
	}
	var owner actor.Ref
	var epoch func() (uint64, bool)
	if f.hasFrom {
		var ok bool
		if epoch, ok = ic.linkEpoch(); !ok {
			return // from an incarnation that restarted: nobody waits for the answer
		}
		owner = ic.remoteFrom(n, f.from)
	}
	n.mu.Lock()
	k, ok := n.kinds[f.kindName]
	n.mu.Unlock()
	if ok && n.cfg.AuthorizeSpawn != nil {
		if err := n.cfg.AuthorizeSpawn(ic.remoteName, append([]byte(nil), ic.sess.peerKey...), f.kindName); err != nil {
			n.log.Info("remote: spawn refused", "peer", ic.remoteName, "kind", f.kindName, "reason", err)
			ok = false
		}
	}
	if !ok {
		ic.from.Reply(proxy, f.pidx, f.pgen, nil, fmt.Errorf("%w: %q on node %s", ErrUnknownKind, f.kindName, n.name))
		return
	}
	pidx, pgen, args, peer, name := f.pidx, f.pgen, f.payload, ic.from, ic.remoteName
	n.offNetwork(func() { // spawning waits for Start: off the network loop
		fac, err := k(args)
		var r actor.Ref
		if err == nil && epoch != nil {
			n.spawnLinked(peer, name, proxy, pidx, pgen, fac, owner, epoch)
			return
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout+5*time.Second)
			r, err = n.sys.Spawn(ctx, fac)
			cancel()
		}
		peer.Reply(proxy, pidx, pgen, r, err)
	})
}

// inResolve answers a sturdy-ref request, at most maxResolving at once.
func (n *Node) inResolve(ic *inConn, f *frame) {
	proxy := n.wire.RemoteRef(ic.from, actor.WireID{Loop: goroutineLoop})
	req, _ := f.payload.([]byte)
	pidx, pgen := f.pidx, f.pgen
	if n.resolving.Add(1) > maxResolving {
		n.resolving.Add(-1)
		ic.from.Reply(proxy, pidx, pgen, nil, fmt.Errorf("%w: node %s is resolving %d sturdy refs", actor.ErrQueueFull, n.name, maxResolving))
		return
	}
	n.offNetwork(func() { // a Diffie-Hellman per request: off the network loop
		defer n.resolving.Add(-1)
		if sealed, ok := n.answer(req); ok {
			ic.from.Reply(proxy, pidx, pgen, sealed, nil)
			return
		}
		ic.from.Reply(proxy, pidx, pgen, nil, fmt.Errorf("%w: sturdy ref not exported on node %s", actor.ErrDead, n.name))
	})
}

// offNetwork runs f on a goroutine of its own, so that the network loop
// does not wait for it; a simulated node (one with a clock of the
// simulator's) runs it as an event of its clock instead, so a run stays
// reproducible: the simulator's goroutine is the only one.
func (n *Node) offNetwork(f func()) {
	if n.clk != nil {
		n.afterFunc(0, f)
		return
	}
	go f()
}
