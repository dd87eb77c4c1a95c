package remote

import (
	"fmt"

	"github.com/actord/actord/actor"
)

// Delivery and backpressure, both ends of a connection, as state machines
// apart from I/O: outbox is the sending side (what is queued, written and
// acknowledged, the bound on it, what a loss loses), inAcks the receiving
// side (when to acknowledge). Neither has goroutines, reads a clock or
// draws a random number; the peer and the accepted connection drive them
// under their locks and do the writes.

// outbox is the sending side of delivery for one peer: the plaintext frame
// stream of the current connection epoch, from the first byte the peer has
// not acknowledged on, how much of it is written, and the bound on what is
// unacknowledged. Its inputs are a frame queued (appendFrame), a batch
// taken for writing (next), an acknowledgement (acked), a new connection
// (begin) and a loss (lost); its outputs are the decision on a frame offered
// (admit), the bytes to write, and the dead letters of a loss.
//
// The stream buffer holds, from base on: bytes before ack, which the peer
// acknowledged (dropped once they are half of the buffer); bytes before
// sent, written; the rest, queued. Bytes not acknowledged, written or not,
// count against max: the peer may not have read them, and they are what a
// loss loses.
type outbox struct {
	max   int    // MaxOutbound
	epoch uint64 // the connection the written bytes went out on; 0 when there is none
	buf   []byte
	base  uint64 // stream offset of buf[0] (the connection's Hello is at 0)
	ack   int    // bytes of buf the peer acknowledged
	sent  int    // bytes of buf taken for writing
	// tail is the last frame queued while a Send may join it (batch.go)
	tail batchTail
	// batchMax bounds the batch frames grown for the connection, length
	// prefix included: maxBatchFrame, or less if its receiver said in its
	// Welcome that it reads smaller frames; 0 (no batches) until then.
	// Frames go out before the Welcome arrives, so a batch is only ever
	// made for a connection whose receiver's limit is known.
	batchMax int
}

// forcedLimit bounds forced frames (see outbox.admit) to this many times
// MaxOutbound.
const forcedLimit = 4

// admission is what admit decides about a frame offered.
type admission uint8

const (
	obQueue    admission = iota // room: queue it
	obFull                      // MaxOutbound unacknowledged: refuse it (actor.ErrQueueFull)
	obOverflow                  // a forced frame past forcedLimit times MaxOutbound: let the peer go
)

// admit decides whether a frame may be queued. A frame is refused (obFull)
// while max bytes are unacknowledged, unless forced: the signals of a local
// actor's stop, which are not dropped for a full queue, as locally. Another
// node can make a stop send many signals (by linking or monitoring many
// times), so forced frames stop at forcedLimit times max (obOverflow): a
// peer that reads nothing while they pile up must be let go.
func (o *outbox) admit(force bool) admission {
	held := o.unacked()
	switch {
	case force && held >= forcedLimit*o.max:
		return obOverflow
	case !force && held >= o.max:
		return obFull
	}
	return obQueue
}

// appendFrame queues f, encoded by fw. Only a payload can fail to encode;
// then nothing is queued. A Send joins the frame before it when that is
// a Send or a batch, still unwritten, for the same target from the same
// sender with a payload of the same type (batch.go); joined says so.
func (o *outbox) appendFrame(fw *frameWriter, f *frame) (joined bool, err error) {
	if f.kind == fSend && o.tail.joins(f, o.sent) {
		b, ok, newFrame, err := fw.extendBatch(o.buf, &o.tail, f.payload, o.batchMax)
		if ok {
			o.buf = b
			return err == nil && !newFrame, err
		}
	}
	start := len(o.buf)
	b, err := fw.appendFrame(o.buf, f)
	o.buf = b
	if err != nil { // nothing appended: the tail may still be joined
		return false, err
	}
	o.tail.n = 0
	if f.kind == fSend && fw.lastType != 0 && len(b)-start <= o.batchMax {
		o.tail = batchTail{start: start, n: 1, to: f.to, from: f.from, hasFrom: f.hasFrom, typ: fw.lastType}
	}
	return false, nil
}

// begin starts the stream of connection epoch: hello (encoded by fw) first,
// then the frames queued for it meanwhile. Whatever an earlier connection
// wrote was settled by its loss (lost).
func (o *outbox) begin(epoch uint64, fw *frameWriter, hello *frame) {
	queued := append([]byte(nil), o.buf[o.sent:]...)
	o.buf, o.sent, o.ack, o.base = o.buf[:0], 0, 0, 0
	o.batchMax = 0                  // until this connection's Welcome (welcomed)
	_, _ = o.appendFrame(fw, hello) // a Hello has no payload: it cannot fail; no Send joins what was queued
	o.buf = append(o.buf, queued...)
	o.epoch = epoch
}

// welcomed records the Welcome of connection epoch: its receiver reads
// frames of up to maxFrame bytes (its Config.MaxFrame), so batch frames
// for it stop there, or at maxBatchFrame if that is less. A Welcome of
// another connection changes nothing.
func (o *outbox) welcomed(epoch, maxFrame uint64) {
	if epoch != o.epoch || o.epoch == 0 {
		return
	}
	o.batchMax = int(min(maxBatchFrame, 4+min(maxFrame, maxBatchFrame)))
}

// next takes up to max queued bytes for writing (nil when none is
// queued); they are counted as written. The slice is valid until the next
// call of any other method.
func (o *outbox) next(max int) []byte {
	b := o.buf[o.sent:]
	if len(b) == 0 {
		return nil
	}
	b = b[:min(len(b), max)]
	o.sent += len(b)
	return b
}

// acked records the peer's acknowledgement, on connection epoch, of the
// first upto bytes of its stream. An acknowledgement of another epoch's
// stream changes nothing (it may arrive after a loss, and must not free
// the bytes of the next connection); one of bytes never written is a
// protocol error.
func (o *outbox) acked(epoch, upto uint64) error {
	if epoch != o.epoch || o.epoch == 0 {
		return nil
	}
	if upto > o.base+uint64(o.sent) {
		return bad(fmt.Sprintf("acknowledgement of %d bytes, %d written", upto, o.base+uint64(o.sent)), nil)
	}
	if upto <= o.base+uint64(o.ack) {
		return nil // nothing new
	}
	o.ack = int(upto - o.base)
	o.trim()
	return nil
}

// trim drops the acknowledged bytes at the front of the buffer once they
// are all of it or half of it, so the buffer does not grow while producers
// keep it from emptying: each byte moves at most once more.
func (o *outbox) trim() {
	if o.ack == 0 || o.ack < len(o.buf)/2 {
		return
	}
	n := copy(o.buf, o.buf[o.ack:])
	o.buf = o.buf[:n]
	o.base += uint64(o.ack)
	o.sent -= o.ack
	o.tail.start -= o.ack
	o.ack = 0
}

// lost ends the stream: every frame the peer did not acknowledge, written
// or only queued, is discarded, and the one-way messages among them are
// returned as dead letters (they may or may not have been delivered). ids
// are the tables the stream's ids were interned in (nil: none was); they
// are emptied with the stream, for the next connection's.
func (o *outbox) lost(ids *outTables) deadLetters {
	d := scanDeadLetters(o.buf[o.ack:], ids)
	o.buf, o.sent, o.ack, o.base = o.buf[:0], 0, 0, 0
	o.epoch = 0
	o.tail.n = 0
	o.batchMax = 0
	if ids != nil {
		ids.reset()
	}
	return d
}

// release drops the buffer (the peer is forgotten).
func (o *outbox) release() { *o = outbox{max: o.max} }

// unacked is how many bytes the peer has not acknowledged: queued, or
// written and perhaps still in the network layer's buffers, the kernel's
// or on the way.
func (o *outbox) unacked() int { return len(o.buf) - o.ack }

// unwritten is how many bytes wait to be written.
func (o *outbox) unwritten() int { return len(o.buf) - o.sent }

// deadLetters is a summary of the one-way messages lost with a connection.
type deadLetters struct {
	groups map[deadKey]int
	other  int // lost beyond maxDeadGroups distinct groups
	total  int
}

type deadKey struct {
	to, from actor.WireID
	hasFrom  bool
	typ      uint64
}

// maxDeadGroups bounds the groups (sender, target, type) one loss reports.
const maxDeadGroups = 1024

// scanDeadLetters walks the frames of stream (whole frames, as queued) and
// counts the one-way messages among them. The frames are the node's own, so
// their fields have the canonical encoding the quick readers expect. Their
// interned ids are read with ids, the tables as they are at the stream's
// end, and the defines of the stream itself: an index used before it was
// redefined in the stream named an id the tables no longer hold, and its
// messages are counted without a group.
func scanDeadLetters(stream []byte, ids *outTables) deadLetters {
	var d deadLetters
	var sc idScan
	if ids == nil {
		ids = &outTables{}
	}
	// First pass: the indexes the stream redefines.
	eachMessage(stream, func(body []byte) {
		var k deadKey
		sc.scan(body, ids, &k, true)
	})
	for i := range sc.to.seen {
		sc.to.seen[i] = false
	}
	for i := range sc.from.seen {
		sc.from.seen[i] = false
	}
	eachMessage(stream, func(body []byte) {
		var k deadKey
		ok := sc.scan(body, ids, &k, false)
		kind, _, count := messageKind(body)
		if kind == fAsk {
			return
		}
		d.total += count
		switch {
		case !ok:
			d.other += count
		case d.groups[k] > 0 || len(d.groups) < maxDeadGroups:
			if d.groups == nil {
				d.groups = map[deadKey]int{}
			}
			d.groups[k] += count
		default:
			d.other += count
		}
	})
	return d
}

// messageKind reads the kind of a frame body of the node's own (canonical:
// a fixarray, or an array 16 for a batch) that carries messages: fSend,
// fAsk or fBatch, else 0; where its fields start, and how many messages it
// carries.
func messageKind(body []byte) (kind byte, fields, count int) {
	switch {
	case len(body) >= 2 && body[0] == 0x95 && body[1] == fSend:
		return fSend, 2, 1
	case len(body) >= 2 && body[0] == 0x97 && body[1] == fAsk:
		return fAsk, 2, 1
	case len(body) >= 4 && body[0] == 0xdc && body[3] == fBatch:
		return fBatch, 4, int(body[1])<<8 | int(body[2]) - 4
	}
	return 0, 0, 0
}

// eachMessage calls fn with the body of every Send, Ask and batch frame of
// stream.
func eachMessage(stream []byte, fn func(body []byte)) {
	for len(stream) >= 4 {
		size := int(uint32(stream[0])<<24 | uint32(stream[1])<<16 | uint32(stream[2])<<8 | uint32(stream[3]))
		if size > len(stream)-4 {
			break
		}
		body := stream[4 : 4+size]
		stream = stream[4+size:]
		if kind, _, _ := messageKind(body); kind != 0 {
			fn(body)
		}
	}
}

// idScan follows the interned ids of a stream (scanDeadLetters).
type idScan struct {
	to, from scanTable
}

// scanTable is one table's state in a scan: the indexes the whole stream
// redefines (redef, from the first pass), and those defined so far, with
// their ids.
type scanTable struct {
	redef map[uint16]bool
	seen  map[uint16]bool
	ids   map[uint16]actor.WireID
}

// id reads an interned id at b[i:] (first: the first pass, which only
// records defines) and returns the position after it and the id, ok false
// if the id is not known.
func (s *scanTable) id(b []byte, i int, t *outIDs, first bool) (next int, id actor.WireID, known, ok bool) {
	if i < len(b) && b[i] == 0x95 {
		x, j, ok := quickUint(b, i+1)
		if !ok {
			return i, id, false, false
		}
		if j, ok = quickIDFields(b, j, &id); !ok {
			return i, id, false, false
		}
		if s.ids == nil {
			s.redef, s.seen, s.ids = map[uint16]bool{}, map[uint16]bool{}, map[uint16]actor.WireID{}
		}
		if first {
			s.redef[uint16(x)] = true
		}
		s.seen[uint16(x)] = true
		s.ids[uint16(x)] = id
		return j, id, true, true
	}
	x, j, ok := quickUint(b, i)
	if !ok {
		return i, id, false, false
	}
	switch {
	case s.seen[uint16(x)]:
		return j, s.ids[uint16(x)], true, true
	case s.redef[uint16(x)]: // defined before the stream, redefined in it since
		return j, id, false, true
	}
	id, known = t.idAt(uint16(x))
	return j, id, known, true
}

// scan reads the target, sender and type of a Send, Ask or batch body into k; it
// reports false if they are not all known.
func (sc *idScan) scan(body []byte, ids *outTables, k *deadKey, first bool) bool {
	kind, i, _ := messageKind(body) // i: after the array header and the kind
	var known, ok bool
	var kt bool
	if i, k.to, kt, ok = sc.to.id(body, i, &ids.to, first); !ok {
		return false
	}
	if i < len(body) && body[i] == 0xc0 {
		i++
		known = kt
	} else {
		var kf bool
		if i, k.from, kf, ok = sc.from.id(body, i, &ids.from, first); !ok {
			return false
		}
		k.hasFrom = true
		known = kt && kf
	}
	if kind == fAsk {
		return false
	}
	k.typ, _, ok = quickUint(body, i)
	return ok && known
}

// ackEvery is how many frame bytes a node reads on a connection before it
// acknowledges them without waiting for the next ping: one small frame per
// 16 KiB under a stream, while a message that the peer handled but had not
// acknowledged when the connection broke is reported as a dead letter
// (perhaps delivered) by the sender.
const ackEvery = 16 << 10

// inAcks is the receiving side of delivery on an accepted connection: the
// frame bytes read, Hello included, and how many of them the sender was
// told of. Inputs: a frame read (read), the end of a read (due with
// ackEvery) and a Ping (due with 1); output: the Ack to send.
type inAcks struct {
	rx, told uint64
}

// read adds one frame, its body of size bytes and its length prefix.
func (a *inAcks) read(size int) { a.rx += uint64(4 + size) }

// due reports whether to acknowledge now, and up to where: when at least
// least bytes arrived since the last acknowledgement (and something did).
// The sender keeps what is not acknowledged, to report it as dead letters
// if the connection breaks.
func (a *inAcks) due(least uint64) (upto uint64, ok bool) {
	if a.rx <= a.told || a.rx-a.told < least {
		return 0, false
	}
	a.told = a.rx
	return a.rx, true
}
