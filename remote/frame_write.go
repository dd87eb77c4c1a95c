package remote

import (
	"encoding/binary"
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// bufWriter appends to a byte slice; msgpack encodes into it. ctx is the
// node whose connection the bytes are for: refs inside payloads are
// encoded with it (see encodeRefValue), found through the encoder's writer
// rather than a process-wide table.
type bufWriter struct {
	b   []byte
	ctx *codecCtx
}

func (w *bufWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bufWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }
func (w *bufWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// frameWriter encodes frames into a buffer. It is not safe for concurrent
// use; a peer guards its own with a mutex.
type frameWriter struct {
	w   bufWriter
	enc *msgpack.Encoder
	reg *registry
	// ids interns the actor ids of Send and Ask frames for the connection
	// stream being written (intern.go)
	ids outTables
	// lastType is the type id of the last payload written (0: nil), for
	// the batch a Send may start (outbox.appendFrame)
	lastType uint64
}

func newFrameWriter(n *Node) *frameWriter {
	fw := &frameWriter{reg: n.reg}
	fw.ids.to.cap, fw.ids.from.cap = n.idCap, n.idCap
	fw.w.ctx = &codecCtx{n: n}
	fw.enc = msgpack.NewEncoder(&fw.w)
	fw.enc.UseCompactInts(true)
	return fw
}

// release is kept for symmetry with the reader: nothing to undo.
func (fw *frameWriter) release() {}

// write appends f as one frame of kind f.kind, its fields as frameFields
// lists them, its interned ids by fw's tables. Only a payload can fail to
// encode (an unregistered type); then nothing is appended, and no index
// is defined.
func (fw *frameWriter) write(f *frame) error {
	if f.kind == fBatch {
		return fw.writeBatch(f)
	}
	k := int(f.kind)
	start := len(fw.w.b)
	// length (patched below), fixarray header, kind: what msgpack writes
	fw.w.b = append(fw.w.b, 0, 0, 0, 0, 0x90|byte(fieldCount[k]), byte(k))
	var toI, fromI uint16
	var toK, fromK internKind
	defer func() {
		// A payload's own encoder may panic (user code): the ids this
		// frame interned must not stay defined without the frame.
		if r := recover(); r != nil {
			fw.w.b = fw.w.b[:start]
			fw.ids.to.undo(toI, toK)
			fw.ids.from.undo(fromI, fromK)
			panic(r)
		}
	}()
	for _, fl := range frameFields[k] {
		switch fl {
		case fldPayload:
			if err := fw.payload(f.payload); err != nil {
				fw.w.b = fw.w.b[:start]
				fw.ids.to.undo(toI, toK)
				fw.ids.from.undo(fromI, fromK)
				return err
			}
		case fldToIn:
			toI, toK = fw.ids.to.intern(f.to)
			fw.w.b = appendInterned(fw.w.b, toI, toK, &f.to)
		case fldFromIn:
			fromI, fromK = fw.ids.from.intern(f.from)
			fw.w.b = appendInterned(fw.w.b, fromI, fromK, &f.from)
		case fldFromInOpt:
			if !f.hasFrom {
				fw.w.b = append(fw.w.b, 0xc0) // nil
				continue
			}
			fromI, fromK = fw.ids.from.intern(f.from)
			fw.w.b = appendInterned(fw.w.b, fromI, fromK, &f.from)
		default:
			fw.w.b = appendField(fw.w.b, fl, f)
		}
	}
	binary.BigEndian.PutUint32(fw.w.b[start:], uint32(len(fw.w.b)-start-4))
	return nil
}

// appendFrame appends f to dst as write does and returns the longer slice;
// the writer keeps no reference to dst. On an error nothing is appended.
func (fw *frameWriter) appendFrame(dst []byte, f *frame) ([]byte, error) {
	fw.w.b = dst
	err := fw.write(f)
	dst, fw.w.b = fw.w.b, nil
	return dst, err
}

// appendControl appends f, a frame without a payload (Welcome, Pong, Ack,
// Goodbye), to dst.
func appendControl(dst []byte, f *frame) []byte {
	k := int(f.kind)
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0x90|byte(fieldCount[k]), byte(k))
	for _, fl := range frameFields[k] {
		if fl == fldPayload {
			panic(fmt.Sprintf("remote: appendControl of frame kind %d, which has a payload", k))
		}
		dst = appendField(dst, fl, f)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// appendField appends the field fl of f (any but a payload), by hand: the
// bytes msgpack's encoder writes with compact integers.
func appendField(b []byte, fl field, f *frame) []byte {
	switch fl {
	case fldVersion:
		return appendUint(b, f.version)
	case fldName:
		return appendStr(b, f.name)
	case fldIncarnation:
		return appendUint(b, f.incarnation)
	case fldAddr:
		return appendStr(b, f.addr)
	case fldEpoch:
		return appendUint(b, f.epoch)
	case fldSeq:
		return appendUint(b, f.seq)
	case fldCutInc:
		return appendUint(b, f.cutInc)
	case fldCutEpoch:
		return appendUint(b, f.cutEpoch)
	case fldMaxFrame:
		return appendUint(b, f.maxFrame)
	case fldTo:
		return appendID(b, f.to)
	case fldFrom:
		return appendID(b, f.from)
	case fldFromOpt:
		if !f.hasFrom {
			return append(b, 0xc0) // nil
		}
		return appendID(b, f.from)
	case fldLoop:
		return appendUint(b, uint64(f.loop))
	case fldPidx:
		return appendUint(b, uint64(f.pidx))
	case fldPgen:
		return appendUint(b, uint64(f.pgen))
	case fldCode:
		return appendUint(b, f.code)
	case fldMsg:
		return appendStr(b, f.msg)
	case fldKindName:
		return appendStr(b, f.kindName)
	case fldLink:
		return appendUint(b, f.link)
	case fldOp:
		return appendUint(b, f.op)
	case fldTimeout:
		return appendUint(b, f.timeout)
	}
	panic(fmt.Sprintf("remote: no encoding for frame field %d", fl))
}

// appendID appends an actor id, [loop, slot, gen, secret], by hand: the
// same bytes as msgpack's encoder (compact unsigned integers, bin 8),
// without the allocation that passing the secret through its interface
// costs.
func appendID(b []byte, id actor.WireID) []byte {
	b = append(b, 0x94)
	b = appendUint(b, uint64(id.Loop))
	b = appendUint(b, uint64(id.Slot))
	b = appendUint(b, uint64(id.Gen))
	b = append(b, 0xc4, byte(len(id.Secret)))
	return append(b, id.Secret[:]...)
}

// appendInterned appends an interned id: its index alone, or, for a define,
// [index, loop, slot, gen, secret].
func appendInterned(b []byte, i uint16, kind internKind, id *actor.WireID) []byte {
	if kind == internUse {
		return appendUint(b, uint64(i))
	}
	b = append(b, 0x95)
	b = appendUint(b, uint64(i))
	b = appendUint(b, uint64(id.Loop))
	b = appendUint(b, uint64(id.Slot))
	b = appendUint(b, uint64(id.Gen))
	b = append(b, 0xc4, byte(len(id.Secret)))
	return append(b, id.Secret[:]...)
}

// appendStr appends s as msgpack fixstr, str 8, 16 or 32, as msgpack's
// encoder does.
func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n <= 31:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

// appendBin appends b as msgpack bin 8, 16 or 32, as msgpack's encoder does.
func appendBin(dst, b []byte) []byte {
	switch n := len(b); {
	case n <= 0xff:
		dst = append(dst, 0xc4, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xc5, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

// appendUint appends v as the shortest msgpack unsigned integer.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= 0xff:
		return append(b, 0xcc, byte(v))
	case v <= 0xffff:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xcf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// payload writes [typeID, value]; nil is type 0 with a nil value.
func (fw *frameWriter) payload(v any) error {
	fw.lastType = 0
	if v == nil {
		_ = fw.enc.EncodeUint(0)
		return fw.enc.EncodeNil()
	}
	ti, ok := fw.reg.ofValue(v)
	if !ok {
		return fmt.Errorf("%w: %T (register it with remote.Register)", ErrUnknownType, v)
	}
	fw.w.b = appendUint(fw.w.b, ti.id)
	fw.lastType = ti.id
	return fw.value(v, ti)
}

// value writes v, of the registered type ti, without its type id.
func (fw *frameWriter) value(v any, ti *typeInfo) error {
	if b, ok := v.([]byte); ok && b != nil { // the commonest payload, by hand
		fw.w.b = appendBin(fw.w.b, b)
		return nil
	}
	if ti.plan != nil { // a plain struct: an interface holds a pointer to it
		fw.w.b = ti.plan.append(fw.w.b, dataOf(&v))
		return nil
	}
	return fw.enc.Encode(v)
}
