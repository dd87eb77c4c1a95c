package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/actord/actord/actor"
)

// Batch frames: N one-way messages from one sender to one actor, of one
// type, in one frame (docs/remote.md, "Batch frames"). The sender never
// decides to batch: a Send queued right behind a Send or a batch for the
// same target, from the same sender, with a payload of the same type, that
// is still unwritten, joins it (outbox.appendFrame). So a SendMany, and a
// saturating sender whose messages queue while a write is under way,
// become few frames; an isolated Send, written at once, stays a Send. The
// receiver checks the target once and queues the run with one reservation
// of the target's loop queue (inBatch).

// fBatch is the batch frame's kind: [20, to, from|nil, typeID, value1, ...,
// valueN], to and from interned as in a Send. It has no fixed length, so
// it is not in frameFields; its canonical array header is array 16.
const fBatch = 20

const (
	// maxBatchMsgs bounds the messages of one batch frame, on both sides:
	// a longer one is malformed.
	maxBatchMsgs = 1024
	// maxBatchFrame is the length (prefix included) past which a sender
	// does not grow a batch frame, nor past the receiver's MaxFrame, which
	// its Welcome says (outbox.batchMax): it bounds the bytes moved when a
	// Send becomes a batch, and the run one frame delivers. Under 16 KiB, the
	// rest of a frame and a whole record fit the receiver's pooled
	// plaintext buffer (plainChunk); 64 KiB frames made it allocate a
	// larger one over and over (30 bytes per message).
	maxBatchFrame = 16 << 10
)

// batchTail is the last frame of an outbox's buffer while a Send may join
// it: a Send (n 1) or a batch frame (n > 1) whose to, from and type are
// these. n 0: none may.
type batchTail struct {
	start    int // the frame's length prefix in outbox.buf
	n        int
	to, from actor.WireID
	hasFrom  bool
	typ      uint64
}

// joins reports whether f, a Send, may join the tail frame, which must
// also still be unwritten (at or after sent).
func (t *batchTail) joins(f *frame, sent int) bool {
	return t.n > 0 && t.n < maxBatchMsgs && t.start >= sent &&
		f.to == t.to && f.hasFrom == t.hasFrom && (!f.hasFrom || f.from == t.from)
}

// extendBatch appends v, the payload of a Send that joins t (t.joins), to
// the frame t describes at the end of buf, turning a Send into a batch
// frame, and returns the longer buffer. limit bounds the frame's length,
// prefix included (outbox.batchMax). It reports false, with buf unchanged,
// when v is of another type (or nil): the Send then goes as a frame of its
// own. When v would grow the frame past limit, the value already encoded
// becomes a Send frame of its own, which t then describes (newFrame true):
// a payload's encoder, which may be user code, runs once per Send. An
// error is the one the Send's own frame would have failed with.
//
// The interned ids need no new entry: the frame named them, and no frame
// was queued after it.
func (fw *frameWriter) extendBatch(buf []byte, t *batchTail, v any, limit int) (out []byte, ok, newFrame bool, err error) {
	if v == nil {
		return buf, false, false, nil
	}
	ti, found := fw.reg.ofValue(v)
	if !found || ti.id != t.typ {
		return buf, false, false, nil
	}
	end := len(buf)
	fw.w.b = buf
	defer func() {
		if r := recover(); r != nil { // a payload's own encoder (user code)
			fw.w.b = nil
			panic(r)
		}
	}()
	if err := fw.value(v, ti); err != nil {
		out, fw.w.b = fw.w.b[:end], nil
		return out, true, false, err
	}
	b := fw.w.b
	fw.w.b = nil
	grow := 0
	if t.n == 1 {
		grow = 2 // fixarray becomes array 16
	}
	if len(b)+grow-t.start > limit {
		return fw.sendAround(b, end, t, limit), true, true, nil
	}
	if t.n == 1 {
		b = append(b, 0, 0)
		body := b[t.start+4:]
		copy(body[3:], body[1:len(body)-2])
		body[0] = 0xdc
	}
	t.n++
	body := b[t.start+4:]
	binary.BigEndian.PutUint16(body[1:], uint16(4+t.n))
	body[3] = fBatch
	binary.BigEndian.PutUint32(b[t.start:], uint32(len(body)))
	return b, true, false, nil
}

// sendAround makes the value encoded at b[at:] a Send frame with t's to,
// from and type, the bytes fw.appendFrame writes for it, and makes t that
// frame (n 0 if it is past limit itself). The header is appended after the
// value, then the two swap places in place.
func (fw *frameWriter) sendAround(b []byte, at int, t *batchTail, limit int) []byte {
	vlen := len(b) - at
	b = append(b, 0, 0, 0, 0, 0x95, fSend)
	toI, toK := fw.ids.to.intern(t.to)
	b = appendInterned(b, toI, toK, &t.to)
	if t.hasFrom {
		fromI, fromK := fw.ids.from.intern(t.from)
		b = appendInterned(b, fromI, fromK, &t.from)
	} else {
		b = append(b, 0xc0)
	}
	b = appendUint(b, t.typ)
	fw.lastType = t.typ
	f := b[at:] // value, header: reverse each, then the whole, to make it header, value
	slices.Reverse(f[:vlen])
	slices.Reverse(f[vlen:])
	slices.Reverse(f)
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	t.start, t.n = at, 1
	if len(f) > limit {
		t.n = 0
	}
	return b
}

// writeBatch appends f.batch, one or more payloads of one registered type,
// as one batch frame (the form extendBatch makes). Tests use it; a peer's
// batches come from extendBatch.
func (fw *frameWriter) writeBatch(f *frame) error {
	if len(f.batch) == 0 || len(f.batch) > maxBatchMsgs || f.batch[0] == nil {
		return fmt.Errorf("remote: a batch of %d messages", len(f.batch))
	}
	ti, ok := fw.reg.ofValue(f.batch[0])
	if !ok {
		return fmt.Errorf("%w: %T (register it with remote.Register)", ErrUnknownType, f.batch[0])
	}
	start := len(fw.w.b)
	fw.w.b = append(fw.w.b, 0, 0, 0, 0, 0xdc, byte((4+len(f.batch))>>8), byte(4+len(f.batch)), fBatch)
	toI, toK := fw.ids.to.intern(f.to)
	fw.w.b = appendInterned(fw.w.b, toI, toK, &f.to)
	var fromI uint16
	var fromK internKind
	if f.hasFrom {
		fromI, fromK = fw.ids.from.intern(f.from)
		fw.w.b = appendInterned(fw.w.b, fromI, fromK, &f.from)
	} else {
		fw.w.b = append(fw.w.b, 0xc0)
	}
	fw.w.b = appendUint(fw.w.b, ti.id)
	for _, v := range f.batch {
		vi, ok := fw.reg.ofValue(v)
		err := fmt.Errorf("remote: a batch of %T and %T", f.batch[0], v)
		if ok && vi.id == ti.id {
			err = fw.value(v, ti)
		}
		if err != nil {
			fw.w.b = fw.w.b[:start]
			fw.ids.to.undo(toI, toK)
			if f.hasFrom {
				fw.ids.from.undo(fromI, fromK)
			}
			return err
		}
	}
	binary.BigEndian.PutUint32(fw.w.b[start:], uint32(len(fw.w.b)-start-4))
	return nil
}

// batchFields reads the fields of a batch frame of n array elements after
// its kind, into f: to, from, the type and the values, each checked
// (checkValue) and decoded as a Send's payload is, into f.batch. A frame
// whose count is out of bounds, or whose values do not parse as values to
// the frame's end, is malformed; an unknown type sets f.payloadErr, and a
// value of it, one nested too deep or one that does not decode is left
// out of f.batch and counted in f.batchBad: each is dropped alone, as its
// Send would be.
func (fr *frameReader) batchFields(n int, f *frame) error {
	if m := n - 4; m < 1 || m > maxBatchMsgs {
		return fmt.Errorf("batch of %d messages (1 to %d)", m, maxBatchMsgs)
	}
	if err := fr.field(fldToIn, f); err != nil {
		return err
	}
	if err := fr.field(fldFromInOpt, f); err != nil {
		return err
	}
	id, err := fr.uint64()
	if err != nil {
		return fmt.Errorf("batch type: %w", err)
	}
	if id == 0 {
		return errors.New("batch of nil payloads")
	}
	f.typeID = id
	ti, ok := fr.typeOf(id)
	if !ok {
		f.payloadErr = fmt.Errorf("%w: id %#x", ErrUnknownType, id)
	}
	vs := fr.batchBuf[:0]
	for i := range n - 4 {
		start := fr.pos()
		end, err := checkValue(fr.buf, start, 0)
		deep := errors.Is(err, errTooDeep)
		if deep { // a value a Send would carry, dropped alone as its Send would be
			end, err = skipValue(fr.buf, start)
		}
		if err != nil {
			fr.batchBuf = vs
			return fmt.Errorf("batch value %d: %w", i, err)
		}
		switch {
		case !ok || deep:
			f.batchBad++
			fr.skipTo(end)
		case fr.lazy != nil && ti.lazy:
			vs = append(vs, fr.lazy.take(fr.buf[start:end], ti, fr.r.ctx))
			fr.skipTo(end)
		default:
			v, err := decodeValue(fr.dec, &fr.r, fr.buf, start, end, ti)
			if err != nil {
				f.batchBad++
				continue
			}
			vs = append(vs, v)
		}
	}
	fr.batchBuf = vs
	if len(vs) > 0 { // else nil: a frame compares equal whatever the buffer's past
		f.batch = vs
	}
	return nil
}

// inBatch delivers the messages of a batch frame: the target checked once,
// the run queued with as few reservations of its loop's queue as room
// allows. A full queue is waited for as for single Sends (deliver), and
// what a wait gives up on is dropped one message at a time, each counted,
// as N Sends would be.
func (n *Node) inBatch(ic *inConn, f *frame) {
	msgs := f.batch
	defer clear(msgs) // the reader's buffer: keep no message reachable
	to, ok := ic.resolveTo(n, f)
	if !ok || f.payloadErr != nil {
		n.stats.dropped.Add(uint64(len(msgs) + f.batchBad))
		return
	}
	if f.batchBad > 0 {
		n.stats.dropped.Add(uint64(f.batchBad))
	}
	if len(msgs) == 0 {
		return
	}
	if _, isDown := msgs[0].(actor.Down); isDown {
		return // Downs travel as fDown frames only (and all the batch is of one type)
	}
	var from actor.Ref
	if f.hasFrom {
		from = ic.remoteFrom(n, f.from)
	}
	for len(msgs) > 0 {
		err := n.deliver(ic, func() error {
			k, err := n.wire.QueueSendMany(to, from, msgs)
			if k > 0 {
				msgs = msgs[k:]
				ic.queued(to)
				return nil // progress: the rest is tried at once
			}
			return err
		})
		switch {
		case err == nil:
		case errors.Is(err, actor.ErrQueueFull): // the wait gave up on this one
			n.stats.dropped.Add(1)
			msgs = msgs[1:]
		default: // the target's loop is gone: so is every later message
			n.stats.dropped.Add(uint64(len(msgs)))
			return
		}
	}
}
