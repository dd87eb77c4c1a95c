package remote

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"unsafe"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// ctxReader is the body being parsed, and the node whose connection it
// came from: refs inside payloads are decoded with it (see
// decodeRefValue), found through the decoder's reader rather than a
// process-wide table. It is a msgpack bufReader (Read, ReadByte,
// UnreadByte), so the decoder reads it directly.
type ctxReader struct {
	bytes.Reader
	ctx *codecCtx
}

// frameReader decodes frames. One per connection.
type frameReader struct {
	r   ctxReader
	buf []byte // the body being parsed
	dec *msgpack.Decoder
	reg *registry
	max int
	// lazy, once the connection's node is known (setFrom on an accepted
	// connection), leaves the payloads of Send and Ask frames encoded for
	// the target's loop to decode (lazy.go); nil: decoded here
	lazy *lazyAlloc
	// the type of the last payload: a stream of one type is looked up
	// once (an id always names the same typeInfo once registered)
	lastType *typeInfo
	// ids are the connection's interned actor ids (intern.go); the
	// defines of the frame being parsed wait in defTo, defFrom until it
	// parsed whole
	ids            inTables
	defTo, defFrom pendingDefine
	// batchBuf holds the payloads of the last batch frame (frame.batch)
	batchBuf []any
}

func newFrameReader(n *Node, from *peer) *frameReader {
	fr := &frameReader{reg: n.reg, max: n.cfg.MaxFrame}
	fr.r.ctx = &codecCtx{n: n, from: from}
	fr.dec = msgpack.NewDecoder(&fr.r)
	return fr
}

// release is kept for symmetry with the writer: nothing to undo.
func (fr *frameReader) release() {}

// pos is the read position in the body being parsed.
func (fr *frameReader) pos() int { return len(fr.buf) - fr.r.Len() }

// checkString fails if the string or binary value at the read position
// declares more bytes than the body has left. msgpack's decoder does not
// check: it reads a string through a scratch buffer that it keeps, growing
// it towards the declared length (up to 4 GiB) by at least 1 MiB, and a copy
// of the whole buffer, per call. The decoder lives as long as the
// connection, so every frame of a few bytes declaring a huge string would
// add to what the node holds, and to the time the next one takes. Any other
// value is left for the decoder to refuse.
func (fr *frameReader) checkString() error {
	i := fr.pos()
	if i >= len(fr.buf) {
		return nil
	}
	switch c := fr.buf[i]; {
	case c >= 0xa0 && c <= 0xbf, c >= 0xc4 && c <= 0xc6, c >= 0xd9 && c <= 0xdb: // fixstr, bin, str
		_, err := checkValue(fr.buf, i, 0)
		return err
	}
	return nil
}

// declaredLen returns the length that the string or binary value at the
// read position declares (0 for any other value, left for the decoder).
func (fr *frameReader) declaredLen() int {
	b, i := fr.buf, fr.pos()
	if i >= len(b) {
		return 0
	}
	c := b[i]
	w := 0
	switch {
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return int(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb: // str 8, 16, 32
		w = 1 << (c - 0xd9)
	case c >= 0xc4 && c <= 0xc6: // bin 8, 16, 32
		w = 1 << (c - 0xc4)
	default:
		return 0
	}
	n := 0
	for _, x := range b[i+1 : min(i+1+w, len(b))] {
		n = n<<8 | int(x)
	}
	return n
}

// setFrom records which node the connection's frames come from, once
// known, and from then on leaves the payloads of Send and Ask frames for
// the target's loop to decode (lazy.go).
func (fr *frameReader) setFrom(n *Node, from *peer) {
	fr.r.ctx = &codecCtx{n: n, from: from}
	fr.lazy = &lazyAlloc{}
}

func bad(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadFrame, what, err)
	}
	return fmt.Errorf("%w: %s", ErrBadFrame, what)
}

// parse decodes one frame body (without its length prefix), its fields as
// frameFields lists them. An error means the frame is malformed and the
// connection must be closed; a frame whose only fault is its payload comes
// back with payloadErr set instead.
func (fr *frameReader) parse(body []byte, f *frame) (err error) {
	defer func() {
		if r := recover(); r != nil { // the decoder must never take the node down
			err = bad("decoder panic", fmt.Errorf("%v", r))
		}
	}()
	*f = frame{}
	fr.r.Reset(body)
	fr.buf = body
	fr.defTo.set, fr.defFrom.set = false, false
	if i, ok := fr.quickFields(body, f); ok {
		// The commonest frames in their canonical encoding; the payload,
		// if any, as any other frame's.
		fr.skipTo(i)
		if fs := frameFields[f.kind]; fs[len(fs)-1] == fldPayload {
			fr.payload(f)
		}
		if fr.r.Len() != 0 {
			return bad(fmt.Sprintf("%d trailing bytes", fr.r.Len()), nil)
		}
		fr.applyDefines()
		return nil
	}
	*f = frame{}
	fr.defTo.set, fr.defFrom.set = false, false
	if err := fr.parseFields(f); err != nil {
		return err
	}
	fr.applyDefines()
	return nil
}

// applyDefines records the defines of a frame that parsed.
func (fr *frameReader) applyDefines() {
	if d := &fr.defTo; d.set {
		fr.ids.to.define(d.idx, d.id)
	}
	if d := &fr.defFrom; d.set {
		fr.ids.from.define(d.idx, d.id)
	}
}

// parseFields is parse without quickFields, the reader at the start of
// the body and f zero.
func (fr *frameReader) parseFields(f *frame) (err error) {
	n, err := fr.dec.DecodeArrayLen()
	if err != nil {
		return bad("envelope", err)
	}
	if f.kind, err = fr.uint64(); err != nil {
		return bad("kind", err)
	}
	if f.kind == fHello && n != fieldCount[fHello] && n >= 2 {
		// A Hello of another protocol version may have other fields: its
		// version (always first) is read so that the answer names the
		// cause (handleHello: Goodbye with codeVersion).
		if f.version, err = fr.uint64(); err == nil && f.version != protocolVersion {
			return nil
		}
	}
	if f.kind == fBatch {
		if err := fr.batchFields(n, f); err != nil {
			return bad("batch frame", err)
		}
		if fr.r.Len() != 0 {
			return bad(fmt.Sprintf("%d trailing bytes", fr.r.Len()), nil)
		}
		return nil
	}
	if f.kind == 0 || f.kind >= uint64(len(fieldCount)) || n != fieldCount[f.kind] {
		return bad(fmt.Sprintf("kind %d with %d fields", f.kind, n), nil)
	}
	for _, fl := range frameFields[f.kind] {
		if err = fr.field(fl, f); err != nil {
			return bad(fmt.Sprintf("frame kind %d", f.kind), err)
		}
	}
	if fr.r.Len() != 0 {
		return bad(fmt.Sprintf("%d trailing bytes", fr.r.Len()), nil)
	}
	return nil
}

// field decodes the field fl into f.
func (fr *frameReader) field(fl field, f *frame) (err error) {
	switch fl {
	case fldVersion:
		f.version, err = fr.uint64()
	case fldName:
		f.name, err = fr.shortString("node name")
	case fldIncarnation:
		f.incarnation, err = fr.uint64()
	case fldAddr:
		f.addr, err = fr.shortString("listen address")
	case fldEpoch:
		f.epoch, err = fr.uint64()
	case fldSeq:
		f.seq, err = fr.uint64()
	case fldCutInc:
		f.cutInc, err = fr.uint64()
	case fldCutEpoch:
		f.cutEpoch, err = fr.uint64()
	case fldMaxFrame:
		f.maxFrame, err = fr.uint64()
	case fldTo:
		err = fr.id(&f.to)
	case fldFrom:
		err = fr.id(&f.from)
	case fldFromOpt:
		f.hasFrom, err = fr.optID(&f.from)
	case fldToIn:
		f.toIn = true
		err = fr.internedID(&fr.ids.to, &f.to, &f.toIdx, &fr.defTo)
	case fldFromIn:
		f.fromIn = true
		err = fr.internedID(&fr.ids.from, &f.from, &f.fromIdx, &fr.defFrom)
	case fldFromInOpt:
		var c byte
		if c, err = fr.dec.PeekCode(); err == nil && c == 0xc0 { // msgpack nil
			err = fr.dec.DecodeNil()
			break
		}
		f.hasFrom, f.fromIn = true, true
		err = fr.internedID(&fr.ids.from, &f.from, &f.fromIdx, &fr.defFrom)
	case fldLoop:
		var v uint64
		if v, err = fr.uint64(); err == nil && v > 0xFFFF {
			err = fmt.Errorf("loop %d out of range", v)
		}
		f.loop = uint16(v)
	case fldPidx:
		f.pidx, err = fr.uint32()
	case fldPgen:
		f.pgen, err = fr.uint32()
	case fldCode:
		f.code, err = fr.uint64()
	case fldMsg:
		f.msg, err = fr.string()
	case fldKindName:
		f.kindName, err = fr.string()
	case fldLink:
		if f.link, err = fr.uint64(); err == nil && f.link > 1 {
			err = fmt.Errorf("link flag %d", f.link)
		}
	case fldOp:
		if f.op, err = fr.uint64(); err == nil && f.op > 0xFF {
			err = fmt.Errorf("lifecycle op %d", f.op)
		}
	case fldTimeout:
		if f.timeout, err = fr.uint64(); err == nil && f.timeout > math.MaxInt64 {
			err = fmt.Errorf("timeout %d out of range", f.timeout)
		}
	case fldPayload:
		fr.payload(f)
	default:
		err = fmt.Errorf("no decoding for frame field %d", fl)
	}
	return err
}

// uint32 reads an unsigned integer of at most 32 bits.
func (fr *frameReader) uint32() (uint32, error) {
	v, err := fr.uint64()
	if err == nil && v > 0xFFFFFFFF {
		err = fmt.Errorf("value %d out of range", v)
	}
	return uint32(v), err
}

// string reads a string whose declared length fits the body.
func (fr *frameReader) string() (string, error) {
	if err := fr.checkString(); err != nil {
		return "", err
	}
	return fr.dec.DecodeString()
}

// shortString reads a node's name or address: bounded like a ref's, on the
// length declared, before anything is decoded (the remote table, the peers
// and the logs keep them).
func (fr *frameReader) shortString(what string) (string, error) {
	if l := fr.declaredLen(); l > maxRefField {
		return "", fmt.Errorf("%s of %d bytes (max %d)", what, l, maxRefField)
	}
	return fr.string()
}

var (
	typeBytes  = reflect.TypeFor[[]byte]()
	typeString = reflect.TypeFor[string]()
	typeInt64  = reflect.TypeFor[int64]()
	typeUint64 = reflect.TypeFor[uint64]()
	typeInt    = reflect.TypeFor[int]()
	typeBool   = reflect.TypeFor[bool]()
	typeFloat  = reflect.TypeFor[float64]()
	typeDown   = reflect.TypeFor[actor.Down]()
)

// builtin reports whether t is decoded on the network goroutine (not
// lazily, on the target's loop): these cost no more to decode than to copy
// for later. (decodeBuiltin decodes int, bool and float64 without
// reflection too, on the target's loop, where a value that fails to
// decode is reported to the System's hooks as it was when reflection
// decoded them.)
func builtin(t reflect.Type) bool {
	switch t {
	case typeBytes, typeString, typeInt64, typeUint64:
		return true
	}
	return false
}

// decodeBuiltin decodes the commonest payload types without reflection
// (one allocation for the value instead of three).
func decodeBuiltin(d *msgpack.Decoder, t reflect.Type) (any, bool, error) {
	switch t {
	case typeBytes:
		v, err := d.DecodeBytes()
		return v, true, err
	case typeString:
		v, err := d.DecodeString()
		return v, true, err
	case typeInt64:
		v, err := d.DecodeInt64()
		return v, true, err
	case typeUint64:
		v, err := d.DecodeUint64()
		return v, true, err
	case typeInt: // what reflection does: DecodeInt64, converted
		v, err := d.DecodeInt64()
		return int(v), true, err
	case typeBool:
		v, err := d.DecodeBool()
		return v, true, err
	case typeFloat:
		v, err := d.DecodeFloat64()
		return v, true, err
	}
	return nil, false, nil
}

// Hand-written readers for the hot fields. Each decodes the canonical
// encoding (what frameWriter writes) straight from the body and moves the
// read position past it; anything else is left to msgpack's decoder, so
// what is accepted does not change.

// skipTo moves the read position to i.
func (fr *frameReader) skipTo(i int) { _, _ = fr.r.Seek(int64(i), io.SeekStart) }

// quickUint reads an unsigned integer in one of msgpack's unsigned
// encodings at position i, returning the value and the position after it
// (ok false: not one of those, or truncated).
func quickUint(b []byte, i int) (v uint64, next int, ok bool) {
	if i >= len(b) {
		return 0, i, false
	}
	c := b[i]
	var w int
	switch {
	case c <= 0x7f:
		return uint64(c), i + 1, true
	case c == 0xcc:
		w = 1
	case c == 0xcd:
		w = 2
	case c == 0xce:
		w = 4
	case c == 0xcf:
		w = 8
	default:
		return 0, i, false
	}
	if len(b)-i-1 < w {
		return 0, i, false
	}
	if w == 8 { // type ids, mostly
		return binary.BigEndian.Uint64(b[i+1:]), i + 9, true
	}
	for _, x := range b[i+1 : i+1+w] {
		v = v<<8 | uint64(x)
	}
	return v, i + 1 + w, true
}

// uint64 reads an unsigned integer.
func (fr *frameReader) uint64() (uint64, error) {
	if v, next, ok := quickUint(fr.buf, fr.pos()); ok {
		fr.skipTo(next)
		return v, nil
	}
	return fr.dec.DecodeUint64()
}

// quickID reads an actor id in its canonical encoding: fixarray 4, three
// unsigned integers, bin 8 of 16 bytes.
func (fr *frameReader) quickID(id *actor.WireID) bool {
	next, ok := quickIDAt(fr.buf, fr.pos(), id)
	if ok {
		fr.skipTo(next)
	}
	return ok
}

// quickIDAt is quickID at b[i:], returning the position after the id.
func quickIDAt(b []byte, i int, id *actor.WireID) (int, bool) {
	if i >= len(b) || b[i] != 0x94 {
		return i, false
	}
	return quickIDFields(b, i+1, id)
}

// quickInternedAt reads an interned id at b[i:] in its canonical encoding:
// an index that t defines, or a define ([index, loop, slot, gen, secret],
// recorded in d, not yet in t).
func quickInternedAt(b []byte, i int, t *inIDs, id *actor.WireID, idx *uint16, d *pendingDefine) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	if b[i] != 0x95 {
		x, next, ok := quickUint(b, i)
		if !ok || x >= uint64(len(t.ents)) {
			return i, false
		}
		*id, *idx = t.ents[x].id, uint16(x)
		return next, true
	}
	x, next, ok := quickUint(b, i+1)
	if !ok || x >= maxInterned || x > uint64(len(t.ents)) {
		return i, false
	}
	if next, ok = quickIDFields(b, next, id); !ok {
		return i, false
	}
	*idx = uint16(x)
	*d = pendingDefine{idx: uint16(x), id: *id, set: true}
	return next, true
}

// quickIDFields reads the fields of an id, loop, slot, gen and secret, at
// b[i:], returning the position after them.
func quickIDFields(b []byte, i int, id *actor.WireID) (int, bool) {
	loop, i, ok := quickUint(b, i)
	if !ok || loop > 0xFFFF {
		return i, false
	}
	slot, i, ok := quickUint(b, i)
	if !ok || slot > 0xFFFFFFFF {
		return i, false
	}
	gen, i, ok := quickUint(b, i)
	if !ok || gen > 0xFFFFFFFF || len(b)-i < 2+len(id.Secret) || b[i] != 0xc4 || int(b[i+1]) != len(id.Secret) {
		return i, false
	}
	copy(id.Secret[:], b[i+2:])
	id.Loop, id.Slot, id.Gen = uint16(loop), uint32(slot), uint32(gen)
	return i + 2 + len(id.Secret), true
}

// quickFields reads, for the frames of every message (Send, Ask, Reply)
// and the control frames of a busy connection (Ack, Ping, Pong), in their
// canonical encoding (what frameWriter writes), the array header, the kind
// and the fields before the payload, straight from b, and returns where
// the payload (or the end) is. Anything else, and any value that field
// would refuse, is false: parse then reads the frame the general way,
// which accepts what it always did and names the fault.
func (fr *frameReader) quickFields(b []byte, f *frame) (int, bool) {
	if len(b) < 2 || b[0]&0xf0 != 0x90 || b[1] > 0x7f {
		return 0, false
	}
	n, kind, i := int(b[0]&0x0f), uint64(b[1]), 2
	switch kind {
	case fSend, fAsk, fReply, fAck, fPing, fPong:
	default:
		return 0, false
	}
	if n != fieldCount[kind] {
		return 0, false
	}
	f.kind = kind
	var ok bool
	uint32At := func(v *uint32) bool {
		var x uint64
		if x, i, ok = quickUint(b, i); !ok || x > 0xFFFFFFFF {
			return false
		}
		*v = uint32(x)
		return true
	}
	switch kind {
	case fSend: // to, from|nil
		f.toIn = true
		if i, ok = quickInternedAt(b, i, &fr.ids.to, &f.to, &f.toIdx, &fr.defTo); !ok || i >= len(b) {
			return 0, false
		}
		if b[i] == 0xc0 {
			i++
		} else if i, ok = quickInternedAt(b, i, &fr.ids.from, &f.from, &f.fromIdx, &fr.defFrom); !ok {
			return 0, false
		} else {
			f.hasFrom, f.fromIn = true, true
		}
	case fAsk: // to, from, pidx, pgen
		f.toIn, f.fromIn = true, true
		if i, ok = quickInternedAt(b, i, &fr.ids.to, &f.to, &f.toIdx, &fr.defTo); !ok {
			return 0, false
		}
		if i, ok = quickInternedAt(b, i, &fr.ids.from, &f.from, &f.fromIdx, &fr.defFrom); !ok || !uint32At(&f.pidx) || !uint32At(&f.pgen) {
			return 0, false
		}
	case fReply: // loop, pidx, pgen, code, message
		var loop uint64
		if loop, i, ok = quickUint(b, i); !ok || loop > 0xFFFF || !uint32At(&f.pidx) || !uint32At(&f.pgen) {
			return 0, false
		}
		f.loop = uint16(loop)
		if f.code, i, ok = quickUint(b, i); !ok || i >= len(b) || b[i]&0xe0 != 0xa0 { // fixstr
			return 0, false
		}
		l := int(b[i] & 0x1f)
		if len(b)-i-1 < l {
			return 0, false
		}
		if l > 0 {
			f.msg = string(b[i+1 : i+1+l])
		}
		i += 1 + l
	default: // fAck, fPing, fPong: seq
		if f.seq, i, ok = quickUint(b, i); !ok {
			return 0, false
		}
	}
	return i, true
}

// quickBytes reads a bin 8/16/32 at b[i:] whose bytes b holds and
// returns them (not copied) and the position after it.
func quickBytes(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] < 0xc4 || b[i] > 0xc6 {
		return nil, i, false
	}
	w := 1 << (b[i] - 0xc4)
	if len(b)-i-1 < w {
		return nil, i, false
	}
	n := 0
	for _, x := range b[i+1 : i+1+w] {
		n = n<<8 | int(x)
	}
	start := i + 1 + w
	if n > len(b)-start {
		return nil, i, false
	}
	return b[start : start+n : start+n], start + n, true
}

// byteBox is a []byte payload and its bytes in one allocation: the
// interface that carries the payload points to h, which points to d. A
// []byte in an interface otherwise costs two (its bytes, and its header,
// which an interface holds by pointer).
type byteBox[A any] struct {
	h []byte
	d A
}

// boxBytes returns a copy of b in an interface, in one allocation up to
// 232 bytes.
func boxBytes(b []byte) any {
	// Classes close to the allocator's size classes (with the 24-byte
	// header), so that a value keeps little more than two allocations did.
	switch n := len(b); {
	case n <= 8:
		return boxIn(new(byteBox[[8]byte]), b)
	case n <= 24:
		return boxIn(new(byteBox[[24]byte]), b)
	case n <= 40:
		return boxIn(new(byteBox[[40]byte]), b)
	case n <= 72:
		return boxIn(new(byteBox[[72]byte]), b)
	case n <= 136:
		return boxIn(new(byteBox[[136]byte]), b)
	case n <= 232:
		return boxIn(new(byteBox[[232]byte]), b)
	}
	v := make([]byte, len(b))
	copy(v, b)
	return v
}

func boxIn[A any](x *byteBox[A], b []byte) any {
	// Capacity len(b): an append copies, never writes past the value.
	x.h = unsafe.Slice((*byte)(unsafe.Pointer(&x.d)), len(b))
	copy(x.h, b)
	return makeAny(typeWordBytes, unsafe.Pointer(&x.h))
}

// typeWordBytes is the type word of an interface holding a []byte.
var typeWordBytes = typeWord(typeBytes)

func (fr *frameReader) id(id *actor.WireID) error {
	if fr.quickID(id) {
		return nil
	}
	n, err := fr.dec.DecodeArrayLen()
	if err != nil || n != 4 {
		return fmt.Errorf("actor id: %d fields, %v", n, err)
	}
	return fr.idFields(id)
}

// idFields reads the fields of an actor id: loop, slot, gen, secret.
func (fr *frameReader) idFields(id *actor.WireID) error {
	if next, ok := quickIDFields(fr.buf, fr.pos(), id); ok {
		fr.skipTo(next)
		return nil
	}
	d := fr.dec
	var err error
	var loop, slot, gen uint64
	if loop, err = d.DecodeUint64(); err != nil || loop > 0xFFFF {
		return fmt.Errorf("actor id loop %d: %v", loop, err)
	}
	if slot, err = d.DecodeUint64(); err != nil || slot > 0xFFFFFFFF {
		return fmt.Errorf("actor id slot %d: %v", slot, err)
	}
	if gen, err = d.DecodeUint64(); err != nil || gen > 0xFFFFFFFF {
		return fmt.Errorf("actor id gen %d: %v", gen, err)
	}
	bl, err := d.DecodeBytesLen()
	if err != nil || bl != 16 {
		return fmt.Errorf("actor id secret of %d bytes: %v", bl, err)
	}
	if _, err := fr.r.Read(id.Secret[:]); err != nil {
		return fmt.Errorf("actor id secret: %v", err)
	}
	id.Loop, id.Slot, id.Gen = uint16(loop), uint32(slot), uint32(gen)
	return nil
}

// internedID reads an interned id of table t: an index t defines, or a
// define, [index, loop, slot, gen, secret], recorded in d (applied to t once
// the frame parsed whole).
func (fr *frameReader) internedID(t *inIDs, id *actor.WireID, idx *uint16, d *pendingDefine) error {
	c, err := fr.dec.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		if c == msgpcode.Nil {
			return fmt.Errorf("actor id index: nil")
		}
		x, err := fr.uint64()
		if err != nil {
			return fmt.Errorf("actor id index: %w", err)
		}
		e, err := t.get(x)
		if err != nil {
			return err
		}
		*id, *idx = e.id, uint16(x)
		return nil
	}
	n, err := fr.dec.DecodeArrayLen()
	if err != nil || n != 5 {
		return fmt.Errorf("actor id define: %d fields, %v", n, err)
	}
	x, err := fr.uint64()
	if err != nil {
		return fmt.Errorf("actor id index: %w", err)
	}
	if err := t.checkDefine(x); err != nil {
		return err
	}
	if err := fr.idFields(id); err != nil {
		return err
	}
	*idx = uint16(x)
	*d = pendingDefine{idx: uint16(x), id: *id, set: true}
	return nil
}

func (fr *frameReader) optID(id *actor.WireID) (bool, error) {
	c, err := fr.dec.PeekCode()
	if err != nil {
		return false, err
	}
	if c == 0xc0 { // msgpack nil
		return false, fr.dec.DecodeNil()
	}
	return true, fr.id(id)
}

// payload decodes [typeID, value] into f.payload, or records why it could
// not in f.payloadErr (the rest of the frame is still usable). With
// fr.lazy, the value of a Send or an Ask of a type decoded by reflection
// (typeInfo.lazy) is checked (checkValue) and its type looked up, but left
// encoded: f.payload is a *seam.Lazy that the target's loop decodes
// (lazy.go).
func (fr *frameReader) payload(f *frame) {
	d := fr.dec
	id, err := fr.uint64()
	if err != nil {
		f.payloadErr = bad("payload type", err)
		return
	}
	f.typeID = id
	if id == 0 {
		if err := d.DecodeNil(); err != nil {
			f.payloadErr = bad("nil payload", err)
		}
		return
	}
	// msgpack allocates the lengths a value declares before reading it (a
	// []byte all at once, a string or a skipped value in a buffer that the
	// decoder keeps) and recurses once per nesting level: check both before
	// decoding or skipping anything, builtin types included.
	start := fr.pos()
	end, cerr := checkValue(fr.buf, start, 0)
	ti, ok := fr.typeOf(id)
	if !ok {
		f.payloadErr = fmt.Errorf("%w: id %#x", ErrUnknownType, id)
		if cerr != nil {
			fr.r.Reset(nil) // Skip would recurse as deep as the value nests
			return
		}
		fr.skipTo(end)
		return
	}
	if cerr != nil {
		f.payloadErr = bad("payload "+ti.name, cerr)
		fr.r.Reset(nil)
		return
	}
	if fr.lazy != nil && (f.kind == fSend || f.kind == fAsk) && ti.lazy {
		f.payload = fr.lazy.take(fr.buf[start:end], ti, fr.r.ctx)
		fr.skipTo(end)
		return
	}
	v, err := decodeValue(d, &fr.r, fr.buf, start, end, ti)
	if err != nil {
		f.payloadErr = bad("payload "+ti.name, err)
		fr.skipTo(end) // checkValue found where the value ends
		return
	}
	f.payload = v
}

// decodeValue decodes the value of type ti that b holds from i to end,
// which checkValue accepted, with d, whose reader r reads b and is at i. It
// fails, too, if the decoder stops short of end (a value read as another
// type), and leaves r at end.
func decodeValue(d *msgpack.Decoder, r *ctxReader, b []byte, i, end int, ti *typeInfo) (any, error) {
	if ti.typ == typeBytes {
		if v, next, ok := quickBytes(b, i); ok && next == end {
			_, _ = r.Seek(int64(end), io.SeekStart)
			return boxBytes(v), nil
		}
	}
	if ti.plan != nil {
		p := reflect.New(ti.typ).UnsafePointer()
		if ti.plan.decode(b[i:end], p) {
			_, _ = r.Seek(int64(end), io.SeekStart)
			return ti.box(p), nil
		}
		// Not in a form the plan reads: msgpack decodes it, into a new zero value below.
	}
	var v any
	var err error
	if bv, ok, berr := decodeBuiltin(d, ti.typ); ok {
		v, err = bv, berr
	} else {
		p := reflect.New(ti.typ)
		if err = decodeReflect(d, r, p.Elem()); err == nil {
			if ti.etyp != nil {
				v = ti.box(p.UnsafePointer()) // the value where it was decoded
			} else {
				v = p.Elem().Interface()
			}
		}
	}
	if at := len(b) - r.Len(); err == nil && at != end {
		err = fmt.Errorf("value read as %v ends at byte %d of %d", ti.typ, at-i, end-i)
	}
	_, _ = r.Seek(int64(end), io.SeekStart)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// decodeReflect decodes into v with msgpack's reflection, turning its panic
// into the payload's error: msgpack panics on some well-formed input (a
// struct's interface field given twice: it decodes the second into the
// first's value, which it cannot set), and a payload's fault must not end
// the frame, nor the connection with it. The decoder is reset, in case the
// panic left it mid-value.
func decodeReflect(d *msgpack.Decoder, r *ctxReader, v reflect.Value) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.Reset(r)
			err = fmt.Errorf("msgpack panicked decoding %v: %v", v.Type(), p)
		}
	}()
	return d.DecodeValue(v)
}

// maxPayloadDepth bounds the nesting of arrays, maps and refs in a payload.
const maxPayloadDepth = 100

// errTooDeep is checkValue's error for a value nested deeper than
// maxPayloadDepth.
var errTooDeep = fmt.Errorf("nested deeper than %d", maxPayloadDepth)

// skipValue returns where the msgpack value at b[i:] ends, whatever its
// nesting: it counts the elements still to read instead of recursing. It
// fails as checkValue does for a truncated value or a declared length
// past the bytes left. A batch frame's value that checkValue refuses for
// its depth alone is skipped with it, and dropped alone (batchFields).
func skipValue(b []byte, i int) (int, error) {
	for pending := 1; pending > 0; pending-- {
		if pending > len(b)-i { // every value takes a byte at least
			return 0, fmt.Errorf("%d values declared, %d bytes left", pending, len(b)-i)
		}
		c := b[i]
		n, per, w := 0, 1, 0
		switch {
		case c >= 0x80 && c <= 0x8f: // fixmap
			n, per = int(c&0x0f), 2
		case c >= 0x90 && c <= 0x9f: // fixarray
			n = int(c & 0x0f)
		case c == 0xdc || c == 0xdd: // array 16, 32
			w = 2 << (c - 0xdc)
		case c == 0xde || c == 0xdf: // map 16, 32
			w, per = 2<<(c-0xde), 2
		default: // not a container: checkValue does not recurse
			end, err := checkValue(b, i, maxPayloadDepth)
			if err != nil {
				return 0, err
			}
			i = end
			continue
		}
		i++
		if w > 0 {
			if len(b)-i < w {
				return 0, fmt.Errorf("truncated length")
			}
			for _, x := range b[i : i+w] {
				n = n<<8 | int(x)
			}
			i += w
		}
		if n > (len(b)-i)/per {
			return 0, fmt.Errorf("%d elements declared, %d bytes left", n, len(b)-i)
		}
		pending += n * per
	}
	return i, nil
}

// checkValue walks the msgpack value at b[i:] and returns where it ends. It
// fails if the value is truncated, nests deeper than maxPayloadDepth, or
// declares more array or map elements than there are bytes left: msgpack's
// decoder allocates a declared length up front (a 5-byte array header would
// ask for 64 GiB) and recurses per level (a deep nest would overflow the
// stack), both fatal, not panics.
// msgpack's DecodeMapLen has a quirk: where it expects a map and finds an
// ext, it skips the ext's header and reads the ext's data as the map's
// header. DecodeMap (map[string]any) and DecodeUntypedMap (map[any]any) then
// allocate the length declared there, unbounded, before reading an entry: a
// 7-byte payload made a node allocate 24 GB. checkValue cannot see it (an
// ext is a valid value; only the Go type says a map is expected there), so
// these two types decode through functions that refuse an ext first. (Other
// map types are capped by msgpack at 10^6 preallocated entries.) The
// registration is process-wide; it changes nothing for well-formed input.
func init() {
	guardMap((*msgpack.Decoder).DecodeMap)
	guardMap((*msgpack.Decoder).DecodeUntypedMap)
}

// guardMap registers, for the map type M, a decoder that refuses an ext
// before decoding the map with decode.
func guardMap[M any](decode func(*msgpack.Decoder) (M, error)) {
	var zero M
	msgpack.Register(zero, nil, func(d *msgpack.Decoder, v reflect.Value) error {
		if err := refuseExtMap(d); err != nil {
			return err
		}
		m, err := decode(d)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
		return nil
	})
}

func refuseExtMap(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if msgpcode.IsExt(c) {
		return fmt.Errorf("msgpack: ext %#x where a map is expected", c)
	}
	return nil
}

func checkValue(b []byte, i, depth int) (int, error) {
	if depth > maxPayloadDepth {
		return 0, errTooDeep
	}
	if i >= len(b) {
		return 0, fmt.Errorf("truncated value")
	}
	c := b[i]
	i++
	size := func(w int) (int, error) { // a big-endian length of w bytes
		if len(b)-i < w {
			return 0, fmt.Errorf("truncated length")
		}
		n := 0
		for _, x := range b[i : i+w] {
			n = n<<8 | int(x)
		}
		i += w
		return n, nil
	}
	skip := func(n int) (int, error) {
		if n < 0 || n > len(b)-i {
			return 0, fmt.Errorf("%d bytes declared, %d left", n, len(b)-i)
		}
		return i + n, nil
	}
	elems := func(n, per int) (int, error) { // n values (per for a map entry)
		if n > (len(b)-i)/per {
			return 0, fmt.Errorf("%d elements declared, %d bytes left", n, len(b)-i)
		}
		var err error
		for range n * per {
			if i, err = checkValue(b, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	var n int
	var err error
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		return i, nil
	case c <= 0x8f: // fixmap
		return elems(int(c&0x0f), 2)
	case c <= 0x9f: // fixarray
		return elems(int(c&0x0f), 1)
	case c <= 0xbf: // fixstr
		return skip(int(c & 0x1f))
	}
	switch c {
	case 0xc4, 0xc5, 0xc6: // bin 8, 16, 32
		if n, err = size(1 << (c - 0xc4)); err != nil {
			return 0, err
		}
		return skip(n)
	case 0xd9, 0xda, 0xdb: // str 8, 16, 32
		if n, err = size(1 << (c - 0xd9)); err != nil {
			return 0, err
		}
		return skip(n)
	case 0xc7, 0xc8, 0xc9: // ext: length, type, data
		if n, err = size(1 << (c - 0xc7)); err != nil {
			return 0, err
		}
		return skip(n + 1)
	case 0xca, 0xce, 0xd2: // 32-bit
		return skip(4)
	case 0xcb, 0xcf, 0xd3: // 64-bit
		return skip(8)
	case 0xcc, 0xd0:
		return skip(1)
	case 0xcd, 0xd1:
		return skip(2)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16, plus the type
		return skip(1 + 1<<(c-0xd4))
	case 0xdc, 0xdd: // array 16, 32
		if n, err = size(2 << (c - 0xdc)); err != nil {
			return 0, err
		}
		return elems(n, 1)
	case 0xde, 0xdf: // map 16, 32
		if n, err = size(2 << (c - 0xde)); err != nil {
			return 0, err
		}
		return elems(n, 2)
	}
	return 0, fmt.Errorf("invalid code %#x", c)
}

// typeOf looks up the registered type of id, the last one looked up first
// (a run of frames usually carries one type).
func (fr *frameReader) typeOf(id uint64) (*typeInfo, bool) {
	if fr.lastType != nil && fr.lastType.id == id {
		return fr.lastType, true
	}
	ti, ok := fr.reg.ofID(id)
	if ok {
		fr.lastType = ti
	}
	return ti, ok
}
