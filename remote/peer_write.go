package remote

import (
	"time"

	"github.com/actord/actord/internal/tsc"
)

// The peer's outbound stream: frames queued in plaintext, sealed and
// written in batches (directly when the connection is idle, through gnet
// otherwise), kept until the peer acknowledges them.

// maxBatch bounds what one write hands to gnet: gnet copies whatever the
// socket does not take at once into its own buffer, so handing it the whole
// queue (up to MaxOutbound) under load cost a copy of every byte; the rest
// waits here for the write's completion.
const maxBatch = 512 << 10

// flushLocked hands the queued bytes to the driver in one write; the next batch
// goes when that write completes, so frames queued meanwhile share a write.
//
// With direct (a sender found the connection idle: no write in flight,
// nothing held by gnet) and no write in the last directGap, it writes from
// the calling goroutine (netConn.tryWrite: with gnet, through the node's own descriptor of the socket),
// without waiting: an isolated message (a request, a reply) then reaches the
// socket with no hand-off to gnet's loop, a thread wake-up saved each way.
// Frames that follow within directGap are part of a burst and go through
// gnet, one write per batch. Whatever the socket did not take goes through
// gnet too, in order, since nothing else is in flight.
func (p *peer) flushLocked(direct bool) {
	if p.tx == nil { // the handshake is not done
		p.flushing = false
		return
	}
	plain := p.ob.next(maxBatch)
	if plain == nil { // nothing queued
		p.flushing = false
		return
	}
	out := seal(p.sealBuf[:0], p.tx, plain)
	if p.conn.direct() && p.directNow(direct) {
		n := p.conn.tryWrite(out)
		p.n.stats.bytesOut.Add(uint64(n))
		p.lastDirect = n == len(out)
		if n == len(out) {
			p.sealBuf = out[:0]
			if p.ob.unwritten() > 0 {
				p.flushLocked(false) // more than one batch was queued: the rest goes through gnet
			}
			return
		}
		out = out[n:]
	}
	p.lastDirect = false
	p.sealBuf = nil
	p.flushing = true
	p.netHeld += len(out)
	p.n.stats.bytesOut.Add(uint64(len(out)))
	p.writeLocked(out)
}

// directNow reports whether a batch goes out directly (see flushLocked),
// and records the write's time. Only a connection that can write
// directly reads the clock. Two kinds of write are answers, not part of a
// burst, however soon after the last write they come (a round trip shorter
// than directGap would otherwise send every request and reply through
// gnet's loop, a thread wake-up and two more system calls each):
//   - the write at the end of a read from the node (unhold), which carries
//     every frame the read's handlers queued;
//   - the first write after a data frame from the node (heard) when the
//     last write went out directly too: an exchange of one message at a
//     time. After a write through gnet (a burst, or many exchanges at
//     once) heard does not count, so that one lone frame does not go ahead
//     of each batch.
func (p *peer) directNow(direct bool) bool {
	if p.answering {
		// the read's time: no clock read for the write that ends it,
		// which answers what was heard
		p.lastWrite = p.answerAt
		if p.heard.Load() {
			p.heard.Store(false)
		}
		return direct && p.netHeld == 0
	}
	now := int64(time.Since(monoBase))
	burst := now-p.lastWrite < int64(directGap)
	p.lastWrite = now
	if p.heard.Load() {
		p.heard.Store(false)
		if p.lastDirect {
			burst = false
		}
	}
	return direct && !burst && p.netHeld == 0
}

// heardData notes that a data frame arrived from the node (see directNow).
func (p *peer) heardData() {
	if !p.heard.Load() {
		p.heard.Store(true)
	}
}

// hold makes the frames queued for the node wait, unwritten, until unhold:
// a network goroutine holds the peer of the node it reads from while it
// handles a read, so that what the read's handlers answer (replies, the
// next request of an exchange) goes out in one write at its end, directly,
// as gnet writes what its own handlers answer. It reports whether it held
// the peer: only a connection that can write directly is held.
func (p *peer) hold() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || !p.conn.direct() {
		return false
	}
	if p.holds == 0 {
		p.holdStart = tsc.Read()
	}
	p.holds++
	return true
}

// maxHold is how long a hold makes frames wait: a read whose handling
// takes longer (a slow handler lent to the network goroutine, which a
// hold cannot interrupt) lets the frames queued after that go out as if
// there were no hold, so a slow handler does not delay what the node's
// other goroutines send.
const maxHold = 100 * time.Microsecond

// holdExpired reports whether the current hold began over maxHold ago. It
// reads the clock, but only while a hold makes a frame wait, and then the
// tick counter (package tsc): a hold's age is real time whatever the
// node's clock, and this runs once per frame an exchange answers.
func (p *peer) holdExpired() bool {
	return tsc.Since(p.holdStart) > maxHold
}

// unhold ends a hold, writing what was queued meanwhile; now is when the
// read began (the write's time for the next burst's test, directNow).
func (p *peer) unhold(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holds--
	if p.holds > 0 || !p.held {
		return
	}
	p.held = false
	if p.heldData {
		p.heldData = false
		if h := p.cm(); h != nil {
			h.Traffic(now)
		}
	}
	if p.conn != nil && !p.flushing {
		p.answering, p.answerAt = true, int64(now.Sub(monoBase))
		p.flushLocked(true)
		p.answering = false
	}
}

// acked records the peer's acknowledgement of the first upto bytes of
// connection epoch's stream (outbox.acked).
func (p *peer) acked(epoch, upto uint64) error {
	p.mu.Lock()
	err := p.ob.acked(epoch, upto)
	var wake []func()
	if len(p.roomWaiters) > 0 && p.ob.unacked() <= p.n.cfg.MaxOutbound/2 {
		wake = p.roomWaiters
		p.roomWaiters = nil
	}
	p.mu.Unlock()
	for _, f := range wake {
		f()
	}
	return err
}

// maxRoomWaiters bounds the senders one peer wakes (AwaitRoom); past it
// they poll.
const maxRoomWaiters = 4096

// AwaitRoom implements seam.Peer. The waiters wake when the unacknowledged
// bytes are down to half of MaxOutbound, so that a woken sender has room
// for more than one frame, or when the connection is lost.
func (p *peer) AwaitRoom(wake func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ob.admit(false) != obFull || len(p.roomWaiters) >= maxRoomWaiters {
		return false
	}
	p.roomWaiters = append(p.roomWaiters, wake)
	return true
}

// writeLocked hands out to gnet. gnet buffers without bound what the socket
// does not take, so the completion notes how much it still holds (netHeld,
// counted against MaxOutbound) before the next batch goes. An empty out
// only refreshes netHeld.
func (p *peer) writeLocked(out []byte) {
	if p.writeDone == nil {
		p.writeDone = p.written // bound once: a write allocates no closure
	}
	if err := p.conn.asyncWrite(out, p.writeDone); err != nil {
		p.flushing = false
	}
}

// written is a write's completion, on c's callback goroutine.
func (p *peer) written(c netConn, out []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if out != nil {
		p.sealBuf = out[:0] // reuse it: regrowing a buffer per batch cost 25% of CPU
	}
	if err != nil || p.conn != c {
		p.flushing = false
		return
	}
	p.netHeld = c.OutboundBuffered() // on c's loop: exact
	p.flushLocked(false)
}

// directGap separates isolated messages, written directly, from bursts,
// batched through gnet (see flushLocked). Measured with BenchmarkRemotePingPong
// and BenchmarkRemoteThroughput.
const directGap = 20 * time.Microsecond

// monoBase anchors the monotonic readings of flushLocked.
var monoBase = time.Now()
