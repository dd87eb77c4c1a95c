package remote

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// msgpackBytes encodes with msgpack's own encoder, compact integers on, as
// frameWriter's encoder is set up.
func msgpackBytes(t *testing.T, f func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(true)
	if err := f(e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The hand-written encoders write exactly what msgpack's encoder writes.
func TestHandWrittenEncodersMatchMsgpack(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		want := msgpackBytes(t, func(e *msgpack.Encoder) error { return e.EncodeUint(v) })
		if got := appendUint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("appendUint(%d) = %x, msgpack %x", v, got, want)
		}
	}
	for _, n := range []int{0, 1, 32, 0xff, 0x100, 0xffff, 0x10000} {
		b := bytes.Repeat([]byte{7}, n)
		want := msgpackBytes(t, func(e *msgpack.Encoder) error { return e.EncodeBytes(b) })
		if got := appendBin(nil, b); !bytes.Equal(got, want) {
			t.Errorf("appendBin(%d bytes) = %x..., msgpack %x...", n, got[:min(len(got), 8)], want[:min(len(want), 8)])
		}
	}
	n := codecNode(t, Config{})
	for _, id := range []actor.WireID{wid(0, 0, 0, 0), wid(3, 200, 70000, 9), {Loop: 0xFFFF, Slot: math.MaxUint32, Gen: math.MaxUint32}} {
		got := appendID(nil, id)
		want := msgpackBytes(t, func(e *msgpack.Encoder) error {
			_ = e.EncodeArrayLen(4)
			_ = e.EncodeUint(uint64(id.Loop))
			_ = e.EncodeUint(uint64(id.Slot))
			_ = e.EncodeUint(uint64(id.Gen))
			return e.EncodeBytes(id.Secret[:])
		})
		if !bytes.Equal(got, want) {
			t.Errorf("id %+v = %x, msgpack %x", id, got, want)
		}
	}
	for _, s := range []string{"", "a", strings.Repeat("b", 31), strings.Repeat("c", 32), strings.Repeat("d", 0xff), strings.Repeat("e", 0x100), strings.Repeat("f", 0x10000)} {
		want := msgpackBytes(t, func(e *msgpack.Encoder) error { return e.EncodeString(s) })
		if got := appendStr(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendStr(%d bytes) = %x..., msgpack %x...", len(s), got[:min(len(got), 8)], want[:min(len(want), 8)])
		}
	}
	// Every frame kind of the table, written by the table-driven writer,
	// is byte for byte what msgpack's encoder makes of the same values.
	for _, f := range sampleFrames() {
		fw := newFrameWriter(n)
		if err := fw.write(&f); err != nil {
			t.Fatalf("kind %d: %v", f.kind, err)
		}
		want := msgpackBytes(t, func(e *msgpack.Encoder) error { return encodeWithMsgpack(e, n, &f) })
		if !bytes.Equal(fw.w.b[4:], want) {
			t.Errorf("frame kind %d = %x, msgpack %x", f.kind, fw.w.b[4:], want)
		}
		fw.release()
	}
}

// encodeWithMsgpack writes f's body with msgpack's own encoder, field by
// field as the table lists them: the reference the hand-written writer is
// checked against.
func encodeWithMsgpack(e *msgpack.Encoder, n *Node, f *frame) error {
	_ = e.EncodeArrayLen(fieldCount[f.kind])
	_ = e.EncodeUint(f.kind)
	id := func(id actor.WireID) {
		_ = e.EncodeArrayLen(4)
		_ = e.EncodeUint(uint64(id.Loop))
		_ = e.EncodeUint(uint64(id.Slot))
		_ = e.EncodeUint(uint64(id.Gen))
		_ = e.EncodeBytes(id.Secret[:])
	}
	def := func(x actor.WireID) { // an interned id's define of index 0
		_ = e.EncodeArrayLen(5)
		_ = e.EncodeUint(0)
		_ = e.EncodeUint(uint64(x.Loop))
		_ = e.EncodeUint(uint64(x.Slot))
		_ = e.EncodeUint(uint64(x.Gen))
		_ = e.EncodeBytes(x.Secret[:])
	}
	for _, fl := range frameFields[f.kind] {
		switch fl {
		case fldVersion:
			_ = e.EncodeUint(f.version)
		case fldName:
			_ = e.EncodeString(f.name)
		case fldIncarnation:
			_ = e.EncodeUint(f.incarnation)
		case fldAddr:
			_ = e.EncodeString(f.addr)
		case fldEpoch:
			_ = e.EncodeUint(f.epoch)
		case fldSeq:
			_ = e.EncodeUint(f.seq)
		case fldCutInc:
			_ = e.EncodeUint(f.cutInc)
		case fldCutEpoch:
			_ = e.EncodeUint(f.cutEpoch)
		case fldMaxFrame:
			_ = e.EncodeUint(f.maxFrame)
		case fldTo:
			id(f.to)
		case fldFrom:
			id(f.from)
		case fldFromOpt:
			if f.hasFrom {
				id(f.from)
			} else {
				_ = e.EncodeNil()
			}
		case fldToIn: // a fresh writer: index 0, defined
			def(f.to)
		case fldFromIn:
			def(f.from)
		case fldFromInOpt:
			if f.hasFrom {
				def(f.from)
			} else {
				_ = e.EncodeNil()
			}
		case fldLoop:
			_ = e.EncodeUint(uint64(f.loop))
		case fldPidx:
			_ = e.EncodeUint(uint64(f.pidx))
		case fldPgen:
			_ = e.EncodeUint(uint64(f.pgen))
		case fldCode:
			_ = e.EncodeUint(f.code)
		case fldMsg:
			_ = e.EncodeString(f.msg)
		case fldKindName:
			_ = e.EncodeString(f.kindName)
		case fldLink:
			_ = e.EncodeUint(f.link)
		case fldOp:
			_ = e.EncodeUint(f.op)
		case fldTimeout:
			_ = e.EncodeUint(f.timeout)
		case fldPayload:
			if f.payload == nil {
				_ = e.EncodeUint(0)
				_ = e.EncodeNil()
				continue
			}
			ti, ok := n.reg.ofValue(f.payload)
			if !ok {
				return fmt.Errorf("unregistered %T", f.payload)
			}
			_ = e.EncodeUint(ti.id)
			if err := e.Encode(f.payload); err != nil {
				return err
			}
		default:
			return fmt.Errorf("field %d", fl)
		}
	}
	return nil
}

// Every frame kind the table knows has a sample, so the round-trip, the
// byte-for-byte and the fuzz-seed tests cover them all.
func TestSampleFramesCoverEveryKind(t *testing.T) {
	seen := map[uint64]bool{}
	for _, f := range sampleFrames() {
		seen[f.kind] = true
	}
	for k, fs := range frameFields {
		if len(fs) > 0 && !seen[uint64(k)] {
			t.Errorf("no sample frame of kind %d", k)
		}
	}
}

// appendFrame writes a frame of kind with the given fields, each encoded
// by msgpack as it is: tests use it to write frames of any shape,
// malformed ones included.
func appendFrame(dst []byte, kind int, fields ...any) []byte {
	w := bufWriter{b: dst}
	start := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	enc := msgpack.GetEncoder()
	enc.Reset(&w)
	_ = enc.EncodeArrayLen(1 + len(fields))
	_ = enc.EncodeUint(uint64(kind))
	for _, f := range fields {
		_ = enc.Encode(f)
	}
	msgpack.PutEncoder(enc)
	binary.BigEndian.PutUint32(w.b[start:], uint32(len(w.b)-start-4))
	return w.b
}

// The hand-written readers take the canonical encodings, and leave every
// other encoding msgpack accepts to msgpack: the same values come out.
func TestHandWrittenReadersFallBack(t *testing.T) {
	n := codecNode(t, Config{})
	sec := bytes.Repeat([]byte{0xab}, 16)
	want := actor.WireID{Loop: 2, Slot: 300, Gen: 5}
	copy(want.Secret[:], sec)
	for name, enc := range map[string][]byte{
		"canonical": msgpackBytes(t, func(e *msgpack.Encoder) error {
			_ = e.EncodeArrayLen(4)
			_ = e.EncodeUint(2)
			_ = e.EncodeUint(300)
			_ = e.EncodeUint(5)
			return e.EncodeBytes(sec)
		}),
		// array 16 header, signed and wide integers, bin 16: not canonical
		"other encodings": append([]byte{0xdc, 0, 4, 0xd0, 2, 0xcf, 0, 0, 0, 0, 0, 0, 1, 0x2c, 0xd3, 0, 0, 0, 0, 0, 0, 0, 5, 0xc5, 0, 16}, sec...),
	} {
		fr := newFrameReader(n, nil)
		fr.buf = enc
		fr.r.Reset(enc)
		var got actor.WireID
		if err := fr.id(&got); err != nil || got != want || fr.r.Len() != 0 {
			t.Errorf("%s: id = %+v, %v (%d bytes left), want %+v", name, got, err, fr.r.Len(), want)
		}
		fr.release()
	}
	for name, enc := range map[string][]byte{
		"bin 8":  {0xc4, 3, 1, 2, 3},
		"bin 16": {0xc5, 0, 3, 1, 2, 3},
		"str":    {0xa3, 1, 2, 3}, // msgpack decodes a str as bytes too
	} {
		fr := newFrameReader(n, nil)
		var f frame
		body := append(append([]byte{0x95, fSend}, appendIDForTest(want)...), 0xc0)
		body = append(appendUint(body, typeID("bytes")), enc...)
		if err := fr.parse(body, &f); err != nil || f.payloadErr != nil {
			t.Fatalf("%s: %v, %v", name, err, f.payloadErr)
		}
		if b, ok := f.payload.([]byte); !ok || !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Errorf("%s: payload %#v", name, f.payload)
		}
		fr.release()
	}
}

// appendIDForTest is an interned id's define of index 0 (intern.go).
func appendIDForTest(id actor.WireID) []byte {
	b := append([]byte{0x95, 0}, appendUint(nil, uint64(id.Loop))...)
	b = appendUint(appendUint(b, uint64(id.Slot)), uint64(id.Gen))
	return appendBin(b, id.Secret[:])
}
