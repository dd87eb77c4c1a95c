package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
	"github.com/panjf2000/gnet/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Codec and frame tests, hostile raw connections, fake peers (silent, slow,
// garbage-speaking) and backpressure.

// ---- codec helpers ---------------------------------------------------------------

// codecNode is a Node that is never started: enough to encode and parse
// frames. It is shut down with the test.
func codecNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	if cfg.Name == "" {
		cfg.Name = "codec"
	}
	n := New(sys, cfg)
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	return n
}

// encodeFrame writes f as the peer would send it; the result parses back to f.
func encodeFrame(fw *frameWriter, f *frame) error {
	k := int(f.kind)
	if k != fBatch && (k <= 0 || k >= len(fieldCount) || fieldCount[k] == 0) {
		return fmt.Errorf("kind %d", k)
	}
	return fw.write(f)
}

// takeFrames returns the frames written to fw and empties it.
func takeFrames(fw *frameWriter) []byte {
	b := append([]byte(nil), fw.w.b...)
	fw.w.b = fw.w.b[:0]
	return b
}

func wid(loop uint16, slot, gen uint32, fill byte) actor.WireID {
	id := actor.WireID{Loop: loop, Slot: slot, Gen: gen}
	for i := range id.Secret {
		id.Secret[i] = fill + byte(i)
	}
	return id
}

// sampleFrames is one valid frame of every kind (payloads of several types).
func sampleFrames() []frame {
	to, from := wid(1, 7, 3, 0x10), wid(0, 2, 1, 0xa0)
	return []frame{
		{kind: fHello, version: protocolVersion, name: "node-a", incarnation: 0xdeadbeefcafe, addr: "127.0.0.1:7001", epoch: 3},
		{kind: fWelcome, version: protocolVersion, name: "node-b", incarnation: 1, maxFrame: 16 << 20},
		{kind: fSend, to: to, payload: "hello"},
		{kind: fSend, to: to, from: from, hasFrom: true, typeID: typeID("bytes"), payload: []byte{1, 2, 3}},
		{kind: fSend, to: to, from: from, hasFrom: true, payload: nil},
		{kind: fAsk, to: to, from: from, pidx: 5, pgen: 0xFFFFFFFF, payload: int64(-42)},
		{kind: fAsk, to: to, from: wid(goroutineLoop, 0, 0, 0), pidx: 1, pgen: 0, payload: map[string]any{"k": "v"}},
		{kind: fReply, loop: 1, pidx: 9, pgen: 2, payload: uint64(math.MaxUint64)},
		{kind: fReply, loop: goroutineLoop, pidx: 9, pgen: 2, code: codeDead, msg: "actor: no such actor"},
		{kind: fReply, loop: 0, pidx: 1, pgen: 1, payload: []any{"x", true, 1.5}},
		{kind: fPing, seq: 77},
		{kind: fPong, seq: math.MaxUint64},
		{kind: fMonitor, to: to, from: from},
		{kind: fDemonitor, to: to, from: from},
		{kind: fStop, to: to, code: codeOther, msg: "stop it"},
		{kind: fSpawn, pidx: 3, pgen: 4, kindName: "echo", payload: 2.25},
		{kind: fSpawn, pidx: 3, pgen: 4, kindName: "echo", payload: false},
		{kind: fSpawn, pidx: 3, pgen: 4, from: from, hasFrom: true, kindName: "echo", payload: "args"},
		{kind: fGoodbye, code: codeVersion, msg: "bye"},
		{kind: fDown, to: to, from: from, code: codeCrashed, msg: "crashed"},
		{kind: fDown, to: to, from: from},
		{kind: fLink, to: to, from: from},
		{kind: fUnlink, to: to, from: from},
		{kind: fExit, to: to, from: from, link: 1, code: codeKilled, msg: "actor: killed"},
		{kind: fExit, to: to, from: from},
		{kind: fResolve, pidx: 8, pgen: 1, typeID: typeID("bytes"), payload: []byte("sealed request")},
		{kind: fAck, seq: 1 << 40},
		{kind: fLifecycle, to: to, from: from, pidx: 5, pgen: 6, op: 1, timeout: uint64(time.Second), code: codeOther, msg: "shutdown"},
		{kind: fLifecycle, to: to, from: from, pidx: 5, pgen: 6, op: 1 | opBrutal},
	}
}

// ---- codec tests -------------------------------------------------------------------

func TestFrameRoundTrip(t *testing.T) {
	n := codecNode(t, Config{})
	fw := newFrameWriter(n)
	defer fw.release()
	fr := newFrameReader(n, nil)
	defer fr.release()
	for _, want := range sampleFrames() {
		if err := encodeFrame(fw, &want); err != nil {
			t.Fatal(err)
		}
		b := takeFrames(fw)
		if int(binary.BigEndian.Uint32(b)) != len(b)-4 {
			t.Fatalf("kind %d: length prefix %d for %d bytes", want.kind, binary.BigEndian.Uint32(b), len(b)-4)
		}
		var got frame
		if err := fr.parse(b[4:], &got); err != nil {
			t.Fatalf("kind %d: %v", want.kind, err)
		}
		if want.payload != nil {
			ti, _ := n.reg.ofValue(want.payload)
			want.typeID = ti.id
		}
		if !reflect.DeepEqual(noIdx(got), want) {
			t.Fatalf("kind %d round trip:\n got %+v\nwant %+v", want.kind, got, want)
		}
	}
}

type withRef struct {
	Name string
	Ref  actor.Ref
	Refs []actor.Ref
}

// Refs inside payloads: local refs become this node's address and come back
// local; remote refs keep their node; the zero Ref stays zero.
func TestFramePayloadRefs(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	for _, n := range []*Node{a.node, b.node} {
		if err := Register[withRef](n, "test.withRef"); err != nil {
			t.Fatal(err)
		}
	}
	local := spawn(t, a.sys, echo)
	remote := remoteActor(t, a, b, echo)
	fw := newFrameWriter(a.node)
	defer fw.release()
	f := frame{kind: fSend, to: wid(0, 1, 1, 0), payload: withRef{Name: "x", Ref: local, Refs: []actor.Ref{remote, {}, local}}}
	if err := encodeFrame(fw, &f); err != nil {
		t.Fatal(err)
	}
	body := takeFrames(fw)[4:]
	// Parsed on A: its own ref is local again, B's is the same remote ref.
	fr := newFrameReader(a.node, nil)
	defer fr.release()
	var got frame
	if err := fr.parse(body, &got); err != nil {
		t.Fatal(err)
	}
	w := got.payload.(withRef)
	if w.Ref != local || w.Refs[0] != remote || !w.Refs[1].IsZero() || w.Refs[2] != local {
		t.Fatalf("refs on A: %+v", w)
	}
	// Parsed on B: A's ref is remote (to A), B's own is local.
	fr2 := newFrameReader(b.node, nil)
	defer fr2.release()
	if err := fr2.parse(body, &got); err != nil {
		t.Fatal(err)
	}
	w = got.payload.(withRef)
	if !w.Ref.IsRemote() || w.Refs[0].IsRemote() || w.Refs[0] != localOf(t, a, b, remote) || w.Ref != w.Refs[2] {
		t.Fatalf("refs on B: %+v", w)
	}
	if p, _, _ := wireOf(b.sys).Remote(w.Ref); p.(*peer).addr != a.node.Addr() {
		t.Fatalf("A's ref on B points at %s", p.(*peer).addr)
	}
	// A ref cannot be encoded outside a node's encoder.
	if _, err := msgpack.Marshal(local); err == nil {
		t.Fatal("a Ref encoded outside a node connection")
	}
}

// body encodes fields as a msgpack array (fields may be raw msgpack).
func body(fields ...any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(len(fields))
	for _, f := range fields {
		if r, ok := f.(msgpack.RawMessage); ok {
			buf.Write(r)
			continue
		}
		_ = enc.Encode(f)
	}
	return buf.Bytes()
}

func rawID(loop, slot, gen uint64, secret []byte) msgpack.RawMessage {
	b, _ := msgpack.Marshal([]any{loop, slot, gen, secret})
	return b
}

func TestFrameParseRejects(t *testing.T) {
	n := codecNode(t, Config{})
	fr := newFrameReader(n, nil)
	defer fr.release()
	sec := make([]byte, 16)
	good := rawID(1, 2, 3, sec)
	goodDef := defID(0, 1, 2, 3, sec)
	cases := map[string][]byte{
		"empty":                 {},
		"not an array":          {0xa3, 'a', 'b', 'c'},
		"never-used code":       {0xc1},
		"kind 0":                body(0),
		"kind too large":        body(99, 1),
		"negative kind":         body(-1, 1),
		"kind as string":        body("ping", 1),
		"too few fields":        body(fPing),
		"too many fields":       body(fPing, 1, 2),
		"trailing bytes":        append(body(fPing, 1), 0xc0),
		"truncated":             body(fPing, 1)[:2],
		"hello version string":  body(fHello, "1", "n", 1, "a", 1, 0, 0),
		"id of 3 fields":        body(fMonitor, msgpack.RawMessage(mustMarshal([]any{1, 2, 3})), good),
		"id loop too large":     body(fMonitor, rawID(1<<16, 2, 3, sec), good),
		"id slot too large":     body(fMonitor, rawID(1, 1<<32, 3, sec), good),
		"id gen too large":      body(fMonitor, rawID(1, 2, 1<<32, sec), good),
		"id negative slot":      body(fMonitor, msgpack.RawMessage(mustMarshal([]any{1, -2, 3, sec})), good),
		"secret of 15 bytes":    body(fMonitor, rawID(1, 2, 3, sec[:15]), good),
		"secret of 17 bytes":    body(fMonitor, rawID(1, 2, 3, append(sec, 0)), good),
		"secret truncated":      body(fMonitor, rawID(1, 2, 3, sec))[:20],
		"reply loop too large":  body(fReply, 1<<16, 1, 1, 0, "", 0, nil),
		"ask pidx too large":    body(fAsk, goodDef, goodDef, uint64(1)<<32, 1, 0, nil),
		"spawn pgen too large":  body(fSpawn, 1, uint64(1)<<33, nil, "k", 0, nil),
		"spawn owner not an id": body(fSpawn, 1, 1, "x", "k", 0, nil),
		"send from not an id":   body(fSend, goodDef, "x", 0, nil),
		"payload type negative": body(fSend, goodDef, nil, -1, nil),
		"nil payload not nil":   body(fSend, goodDef, nil, 0, 5),
		"goodbye msg int":       body(fGoodbye, 1, 2),
		"ping seq float":        body(fPing, 1.5),
		"exit link flag 2":      body(fExit, good, good, 2, 0, ""),
		"exit link flag string": body(fExit, good, good, "1", 0, ""),
		"link of 1 id":          body(fLink, good),
	}
	for name, b := range cases {
		var f frame
		err := fr.parse(b, &f)
		// A frame whose only fault is its payload is usable (payloadErr);
		// everything else must be refused.
		if err == nil && f.payloadErr == nil {
			t.Errorf("%s: % x parsed as %+v", name, b, f)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v is not ErrBadFrame", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "decoder panic") {
			t.Errorf("%s: the decoder panicked: %v", name, err)
		}
	}
	// Payload faults leave the frame usable. Hostile lengths and nesting
	// must not reach msgpack's decoder, which would allocate what they
	// declare (a fatal out-of-memory, not a panic) or overflow the stack.
	if err := Register[mismatched2](n, "test.mismatched"); err != nil {
		t.Fatal(err)
	}
	if err := Register[anyField](n, "test.anyfield"); err != nil {
		t.Fatal(err)
	}
	raw := func(b ...byte) msgpack.RawMessage { return b }
	nest := func(depth int, leaf ...byte) msgpack.RawMessage {
		return append(bytes.Repeat([]byte{0x91}, depth), leaf...)
	}
	for name, b := range map[string][]byte{
		"unknown type id":                 body(fSend, goodDef, nil, 12345, "x"),
		"undecodable type":                body(fSend, goodDef, nil, typeID("int"), "not an int"),
		"bad ref payload":                 body(fSend, goodDef, nil, typeID("actor.Ref"), []any{"n", "a", 1}),
		"[]any of 2^31 elements":          body(fSend, goodDef, nil, typeID("[]any"), raw(0xdd, 0x7f, 0xff, 0xff, 0xff)),
		"[]any of 2^32-1 elements":        body(fSend, goodDef, nil, typeID("[]any"), raw(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)),
		"[]any of 65535 elements":         body(fSend, goodDef, nil, typeID("[]any"), raw(0xdc, 0xff, 0xff, 0xc0, 0xc0)),
		"map of 2^31 entries":             body(fSend, goodDef, nil, typeID("map[string]any"), raw(0xdf, 0x7f, 0xff, 0xff, 0xff)),
		"nested huge arrays":              body(fSend, goodDef, nil, typeID("[]any"), raw(bytes.Repeat([]byte{0xdd, 0x0f, 0xff, 0xff, 0xff}, 200)...)),
		"huge slice in a struct":          body(fSend, goodDef, nil, typeID("test.mismatched"), raw(0x81, 0xa1, 'A', 0xdd, 0x7f, 0xff, 0xff, 0xff)),
		"huge ref slice in []any":         body(fSend, goodDef, nil, typeID("[]any"), raw(0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0)),
		"deep nesting":                    body(fSend, goodDef, nil, typeID("[]any"), nest(100000, 0xc0)),
		"deep nesting of an unknown type": body(fSend, goodDef, nil, 12345, nest(1<<20, 0xc0)),
		"deep maps":                       body(fSend, goodDef, nil, typeID("map[string]any"), raw(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, 100000)...)),
		"str32 past the end":              body(fSend, goodDef, nil, typeID("[]any"), raw(0x91, 0xdb, 0x7f, 0xff, 0xff, 0xff)),
		"ext32 past the end":              body(fSend, goodDef, nil, typeID("[]any"), raw(0x91, 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01)),
		"invalid code inside":             body(fSend, goodDef, nil, typeID("[]any"), raw(0x92, 0xc0, 0xc1)),
		"an interface field given twice":  body(fSend, goodDef, nil, typeID("test.anyfield"), raw(0x82, 0xa4, 'A', 'r', 'g', 's', 0x01, 0xa4, 'A', 'r', 'g', 's', 0x02)),
	} {
		var f frame
		if err := fr.parse(b, &f); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.payloadErr == nil {
			t.Errorf("%s: no payload error, payload %v", name, f.payload)
		}
	}
	// The same payload decoded on the target's loop (lazy.go) is an error
	// there too, and the loop's decoder goes on decoding.
	frl := newFrameReader(n, nil)
	frl.setFrom(n, nil)
	var scratch any
	for _, pl := range []msgpack.RawMessage{raw(0x82, 0xa4, 'A', 'r', 'g', 's', 0x01, 0xa4, 'A', 'r', 'g', 's', 0x02), raw(0x81, 0xa4, 'A', 'r', 'g', 's', 0x03)} {
		var fl frame
		if err := frl.parse(body(fSend, goodDef, nil, typeID("test.anyfield"), pl), &fl); err != nil {
			t.Fatalf("an anyField payload for the loop: %v", err)
		}
		lz, ok := fl.payload.(*seam.Lazy)
		if !ok {
			t.Fatalf("an anyField payload for the loop came as %T", fl.payload)
		}
		v, err := lz.Dec.DecodeLazy(lz, &scratch, false)
		if len(pl) > 7 && (err == nil || strings.Contains(err.Error(), "decoder panic")) {
			t.Errorf("an interface field given twice, on the loop: %v, %v", v, err)
		}
		if len(pl) == 7 && (err != nil || v != (anyField{Args: int8(3)}) && v != (anyField{Args: int64(3)})) {
			t.Errorf("the next payload on the loop: %#v, %v", v, err)
		}
	}
	var f frame
	if err := fr.parse(body(fSend, goodDef, nil, 12345, "x"), &f); !errors.Is(f.payloadErr, ErrUnknownType) || err != nil {
		t.Errorf("unknown type: %v, %v", err, f.payloadErr)
	}
}

// checkValue accepts every value msgpack encodes, and finds its end.
func TestCheckValue(t *testing.T) {
	long := strings.Repeat("x", 70000)
	for _, v := range []any{
		nil, true, false, 0, -1, 127, -32, 200, -200, 1 << 20, -1 << 20, uint64(math.MaxUint64), int64(math.MinInt64),
		float32(1.5), 2.5, "", "short", strings.Repeat("y", 200), long, []byte{}, []byte(long), make([]byte, 300),
		[]any{}, []any{1, "a", nil}, make([]any, 20), make([]any, 70000), map[string]any{}, map[string]any{"a": 1},
		map[string]int{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 10, "k": 11, "l": 12, "m": 13, "n": 14, "o": 15, "p": 16, "q": 17},
		time.Unix(1, 2), time.Unix(1<<40, 5), []any{[]any{[]any{map[string]any{"x": []byte("y")}}}},
		struct {
			A int
			B []string
		}{1, []string{"p"}},
	} {
		b := mustMarshal(v)
		end, err := checkValue(b, 0, 0)
		if err != nil || end != len(b) {
			t.Errorf("%T: end %d of %d, %v", v, end, len(b), err)
		}
		// Every truncation is refused.
		for _, cut := range []int{len(b) - 1, len(b) / 2, 1} {
			if cut < len(b) && cut > 0 {
				if _, err := checkValue(b[:cut], 0, 0); err == nil && cut < len(b) {
					t.Errorf("%T cut at %d of %d accepted", v, cut, len(b))
				}
			}
		}
	}
	// Fixext codes (msgpack writes them for some exts).
	for c, size := range map[byte]int{0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16} {
		b := append([]byte{c, 5}, make([]byte, size)...)
		if end, err := checkValue(b, 0, 0); err != nil || end != len(b) {
			t.Errorf("fixext %#x: %d, %v", c, end, err)
		}
	}
	nested := append(bytes.Repeat([]byte{0x91}, maxPayloadDepth), 0xc0)
	if _, err := checkValue(nested, 0, 0); err != nil {
		t.Errorf("nesting of %d refused: %v", maxPayloadDepth, err)
	}
	if _, err := checkValue(append([]byte{0x91}, nested...), 0, 0); err == nil {
		t.Errorf("nesting of %d accepted", maxPayloadDepth+1)
	}
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fakeConn is the read side of a gnet.Conn over a byte slice, for readFrames.
// Its other methods are not used by readFrames (they would panic).
type fakeConn struct {
	gnet.Conn
	buf []byte
}

func (c *fakeConn) Peek(n int) ([]byte, error) {
	if n > len(c.buf) {
		return c.buf, io.ErrShortBuffer
	}
	if n <= 0 {
		return c.buf, nil
	}
	return c.buf[:n], nil
}

func (c *fakeConn) Discard(n int) (int, error) {
	if n > len(c.buf) {
		n = len(c.buf)
	}
	c.buf = c.buf[n:]
	return n, nil
}

func (c *fakeConn) InboundBuffered() int { return len(c.buf) }

func TestReadFramesSplitting(t *testing.T) {
	n := codecNode(t, Config{})
	fw := newFrameWriter(n)
	defer fw.release()
	var all []byte
	frames := sampleFrames()
	for i := range frames {
		if err := encodeFrame(fw, &frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	all = takeFrames(fw)
	fr := newFrameReader(n, nil)
	defer fr.release()
	// Fed in every chunk size, frames come out whole, in order, once.
	for chunk := 1; chunk <= len(all); chunk += 1 + chunk/4 {
		c := &fakeConn{}
		var kinds []uint64
		for off := 0; off < len(all); off += chunk {
			c.buf = append(c.buf, all[off:min(off+chunk, len(all))]...)
			err := readFrames(c, 1<<20, func(b []byte) error {
				var f frame
				if err := fr.parse(b, &f); err != nil {
					return err
				}
				kinds = append(kinds, f.kind)
				return nil
			})
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
		if len(kinds) != len(frames) || len(c.buf) != 0 {
			t.Fatalf("chunk %d: %d frames, %d bytes left", chunk, len(kinds), len(c.buf))
		}
		for i := range kinds {
			if kinds[i] != frames[i].kind {
				t.Fatalf("chunk %d: frame %d is kind %d, want %d", chunk, i, kinds[i], frames[i].kind)
			}
		}
	}
	// An oversized length is refused as soon as the prefix is in, without
	// waiting for (or buffering) the body.
	c := &fakeConn{buf: []byte{0, 0, 4, 1}}
	if err := readFrames(c, 1024, func([]byte) error { t.Fatal("handled"); return nil }); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	c = &fakeConn{buf: []byte{0xff, 0xff, 0xff, 0xff, 1}}
	if err := readFrames(c, 16<<20, func([]byte) error { t.Fatal("handled"); return nil }); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("4 GiB frame: %v", err)
	}
	// A handler error stops the draining.
	c = &fakeConn{buf: append([]byte(nil), all...)}
	calls := 0
	boom := errors.New("boom")
	if err := readFrames(c, 1<<20, func([]byte) error { calls++; return boom }); err != boom || calls != 1 {
		t.Fatalf("handler error: %v after %d calls", err, calls)
	}
}

func TestErrorCodes(t *testing.T) {
	for code, sentinel := range codeSentinels {
		wrapped := fmt.Errorf("context: %w", sentinel)
		if got := errorCode(wrapped); got != code {
			t.Errorf("errorCode(%v) = %d, want %d", wrapped, got, code)
		}
		e := decodeError("n", code, wrapped.Error())
		if !errors.Is(e, sentinel) {
			t.Errorf("decoded code %d does not match %v", code, sentinel)
		}
		// Re-encoding a decoded error keeps its code (errors cross several hops).
		if got := errorCode(e); got != code {
			t.Errorf("code %d re-encodes as %d", code, got)
		}
		for c2, s2 := range codeSentinels {
			if c2 != code && errors.Is(e, s2) {
				t.Errorf("code %d also matches %v", code, s2)
			}
		}
	}
	if errorCode(nil) != codeNone || decodeError("n", codeNone, "x") != nil {
		t.Error("nil error")
	}
	if c := errorCode(errors.New("other")); c != codeOther {
		t.Errorf("plain error code %d", c)
	}
	var ce error = &actor.CrashError{Value: "p"}
	if errorCode(ce) != codeCrashed {
		t.Error("CrashError code")
	}
	// An unknown code from a newer peer still gives an error.
	if e := decodeError("n", 999, "future"); e == nil || !strings.Contains(e.Error(), "future") {
		t.Errorf("unknown code: %v", e)
	}
}

type regA struct{ X int }
type regB struct{ X int }

func TestRegistry(t *testing.T) {
	n := codecNode(t, Config{})
	if err := Register[regA](n, "test.regA"); err != nil {
		t.Fatal(err)
	}
	if err := Register[regA](n, "test.regA"); err != nil {
		t.Fatalf("registering again under the same name: %v", err)
	}
	if err := Register[regA](n, "test.other"); err == nil {
		t.Fatal("one type under two names")
	}
	if err := Register[regB](n, "test.regA"); err == nil {
		t.Fatal("two types under one name")
	}
	if err := Register[regB](n, ""); err == nil {
		t.Fatal("empty name")
	}
	if err := Register[regB](n, "string"); err == nil {
		t.Fatal("a builtin name reused")
	}
	ti, ok := n.reg.ofValue(regA{})
	if !ok || ti.id != typeID("test.regA") {
		t.Fatalf("ofValue = %+v, %v", ti, ok)
	}
	if _, ok := n.reg.ofID(typeID("test.regA")); !ok {
		t.Fatal("ofID")
	}
	if _, ok := n.reg.ofValue(&regA{}); ok {
		t.Fatal("a pointer type matched its element type")
	}
}

// ---- raw connections to a node --------------------------------------------------

// deadAddr returns a 127.0.0.1 address nobody listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	return deadAddrs(t, 1)[0]
}

// deadAddrs returns n distinct addresses where nothing listens. The
// listeners stay open until all n are taken: the kernel hands a port just
// closed out again soon, so n addresses drawn one at a time repeat one
// about a quarter of the time for n = 60.
func deadAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

var rawInc atomic.Uint64

func helloFrame(version uint64, name, addr string, epoch uint64) []byte {
	return appendFrame(nil, fHello, version, name, rawInc.Add(1)+1000, addr, epoch, uint64(0), uint64(0))
}

func rawDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// expectClosed waits until the node closes c (EOF or reset), discarding
// what it sends; it fails the test if c stays open.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatalf("connection not closed by the node: %v", err)
	}
}

func parseOne(t testing.TB, n *Node, b []byte) frame {
	t.Helper()
	fr := newFrameReader(n, nil)
	defer fr.release()
	var f frame
	if err := fr.parse(b, &f); err != nil {
		t.Fatalf("frame from the node: %v", err)
	}
	return f
}

func TestMalformedInputFromRawConnections(t *testing.T) {
	b := newTestNode(t, "b", Config{MaxFrame: 1024})
	a := newTestNode(t, "a", Config{})
	r := remoteActor(t, a, b, echo)
	addr := b.node.Addr()
	fake := "127.0.0.1:1" // the listen address the raw connections claim

	stillServes := func(t *testing.T) {
		t.Helper()
		if v, err := a.sys.Ask(ctxT(t), r, "still up"); err != nil || v != "still up" {
			t.Fatalf("legitimate ask after the bad connection = %v, %v", v, err)
		}
	}
	handshake := func(t *testing.T, c *secureRaw) {
		t.Helper()
		if _, err := c.Write(helloFrame(protocolVersion, "raw", fake, 1)); err != nil {
			t.Fatal(err)
		}
		wb, err := c.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("no welcome: %v", err)
		}
		if f := parseOne(t, b.node, wb); f.kind != fWelcome || f.version != protocolVersion || f.name != "b" {
			t.Fatalf("welcome = %+v", f)
		}
	}
	cases := []struct {
		name string
		bad  bool // counts as a bad frame
		run  func(t *testing.T, c *secureRaw)
	}{
		{"garbage text", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			expectClosed(t, c)
		}},
		{"garbage frame", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write([]byte{0, 0, 0, 6, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1})
			expectClosed(t, c)
		}},
		{"zero-length frame", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write([]byte{0, 0, 0, 0})
			expectClosed(t, c)
		}},
		{"oversized frame", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write([]byte{0, 0, 4, 1}) // 1025 > MaxFrame; no body sent
			expectClosed(t, c)
		}},
		{"oversized frame after hello", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(append([]byte{0, 0, 8, 0}, make([]byte, 2048)...))
			expectClosed(t, c)
		}},
		{"truncated frame then close", false, func(t *testing.T, c *secureRaw) {
			closed := b.node.Stats().ConnsClosed
			_, _ = c.Write(append([]byte{0, 0, 0, 100}, make([]byte, 10)...))
			_ = c.Close()
			waitFor(t, 5*time.Second, "the node to close its side", func() bool { return b.node.Stats().ConnsClosed > closed })
		}},
		{"truncated frame after hello then close", false, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			closed := b.node.Stats().ConnsClosed
			ping := appendFrame(nil, fPing, uint64(1))
			_, _ = c.Write(ping[:len(ping)-1])
			_ = c.Close()
			waitFor(t, 5*time.Second, "the node to close its side", func() bool { return b.node.Stats().ConnsClosed > closed })
		}},
		{"unknown kind after hello", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(appendFrame(nil, 99))
			expectClosed(t, c)
		}},
		{"wrong field count after hello", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(appendFrame(nil, fPing))
			expectClosed(t, c)
		}},
		{"welcome on an accepted connection", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(appendFrame(nil, fWelcome, uint64(protocolVersion), "x", uint64(1), uint64(4096)))
			expectClosed(t, c)
		}},
		{"pong on an accepted connection", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(appendFrame(nil, fPong, uint64(1)))
			expectClosed(t, c)
		}},
		{"frame before hello", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write(appendFrame(nil, fPing, uint64(1)))
			expectClosed(t, c)
		}},
		{"send before hello", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write(appendFrame(nil, fSend, msgpack.RawMessage(defID(0, 0, 0, 0, make([]byte, 16))), nil, uint64(0), nil))
			expectClosed(t, c)
		}},
		{"hostile payload before hello", true, func(t *testing.T, c *secureRaw) {
			// A 5-byte array header declaring 2^31 elements: parsed before the
			// hello check, it must not make the decoder allocate 32 GiB.
			_, _ = c.Write(appendFrame(nil, fSend, msgpack.RawMessage(defID(0, 0, 0, 0, make([]byte, 16))), nil, typeID("[]any"),
				msgpack.RawMessage{0xdd, 0x7f, 0xff, 0xff, 0xff}))
			expectClosed(t, c)
		}},
		{"hostile payloads after hello", false, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			to := msgpack.RawMessage(defID(0, 0, 0, 0, make([]byte, 16)))
			_, _ = c.Write(appendFrame(nil, fSend, to, nil, typeID("[]any"), msgpack.RawMessage{0xdd, 0xff, 0xff, 0xff, 0xff}))
			_, _ = c.Write(appendFrame(nil, fSend, to, nil, typeID("map[string]any"), msgpack.RawMessage{0xdf, 0x7f, 0xff, 0xff, 0xff}))
			_, _ = c.Write(appendFrame(nil, fSend, to, nil, uint64(12345), msgpack.RawMessage(append(bytes.Repeat([]byte{0x91}, 900), 0xc0))))
			_, _ = c.Write(appendFrame(nil, fPing, uint64(3)))
			pb, err := c.readFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("no pong after hostile payloads: %v", err)
			}
			if f := parseOne(t, b.node, pb); f.kind != fPong || f.seq != 3 {
				t.Fatalf("pong = %+v", f)
			}
		}},
		{"second hello", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(helloFrame(protocolVersion, "raw", fake, 2))
			expectClosed(t, c)
		}},
		{"wrong protocol version", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write(helloFrame(protocolVersion+1, "raw", fake, 1))
			gb, err := c.readFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("no goodbye: %v", err)
			}
			f := parseOne(t, b.node, gb)
			if f.kind != fGoodbye || f.code != codeVersion || !errors.Is(decodeError("b", f.code, f.msg), ErrVersion) {
				t.Fatalf("goodbye = %+v", f)
			}
			expectClosed(t, c)
		}},
		{"hello of protocol 4 (fewer fields)", true, func(t *testing.T, c *secureRaw) {
			// The answer names the version, not a malformed frame.
			_, _ = c.Write(appendFrame(nil, fHello, uint64(4), "raw", rawInc.Add(1)+1000, fake, uint64(1)))
			gb, err := c.readFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("no goodbye: %v", err)
			}
			if f := parseOne(t, b.node, gb); f.kind != fGoodbye || f.code != codeVersion {
				t.Fatalf("goodbye = %+v", f)
			}
			expectClosed(t, c)
		}},
		{"hello claiming the node's own address", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write(helloFrame(protocolVersion, "raw", addr, 1))
			expectClosed(t, c)
		}},
		{"hello without an address", true, func(t *testing.T, c *secureRaw) {
			_, _ = c.Write(helloFrame(protocolVersion, "raw", "", 1))
			expectClosed(t, c)
		}},
		{"hello with a stale epoch", true, func(t *testing.T, c *secureRaw) {
			h := appendFrame(nil, fHello, uint64(protocolVersion), "raw-epoch", uint64(4242), fake, uint64(5), uint64(0), uint64(0))
			if _, err := c.Write(h); err != nil {
				t.Fatal(err)
			}
			if _, err := c.readFrame(5 * time.Second); err != nil {
				t.Fatalf("no welcome: %v", err)
			}
			c2 := secureDial(t, addr)
			_, _ = c2.Write(h) // same incarnation, same epoch: refused
			expectClosed(t, c2)
			// The newer epoch supersedes the first connection, whose next
			// frame closes it.
			c3 := secureDial(t, addr)
			_, _ = c3.Write(appendFrame(nil, fHello, uint64(protocolVersion), "raw-epoch", uint64(4242), fake, uint64(6), uint64(0), uint64(0)))
			if _, err := c3.readFrame(5 * time.Second); err != nil {
				t.Fatalf("no welcome for the newer epoch: %v", err)
			}
			_, _ = c.Write(appendFrame(nil, fPing, uint64(1)))
			expectClosed(t, c)
		}},
		{"goodbye", true, func(t *testing.T, c *secureRaw) {
			handshake(t, c)
			_, _ = c.Write(appendFrame(nil, fGoodbye, uint64(codeOther), "leaving"))
			expectClosed(t, c)
		}},
		{"silent connection", false, func(t *testing.T, c *secureRaw) {
			// Accepted connections silent past HeartbeatTimeout are closed.
			handshake(t, c)
			expectClosed(t, c)
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			before := b.node.Stats()
			c := secureDial(t, addr)
			tc.run(t, c)
			if tc.bad {
				waitFor(t, 5*time.Second, "BadFrames to count it", func() bool { return b.node.Stats().BadFrames > before.BadFrames })
			}
			stillServes(t)
		})
	}
	// A hostile frame with a payload that fails to decode, after a good hello:
	// the payload is refused, the connection stays.
	c := secureDial(t, addr)
	handshake(t, c)
	bad := b.node.Stats().BadFrames
	to, _ := wireOf(b.sys).LocalID(localOf(t, a, b, r))
	_, _ = c.Write(appendFrame(nil, fSend, msgpack.RawMessage(defID(0, uint64(to.Loop), uint64(to.Slot), uint64(to.Gen), to.Secret[:])), nil, typeID("int"), "not an int"))
	_, _ = c.Write(appendFrame(nil, fPing, uint64(9)))
	pb, err := c.readFrame(5 * time.Second)
	if err != nil {
		t.Fatalf("no pong after a bad payload: %v", err)
	}
	if f := parseOne(t, b.node, pb); f.kind != fPong || f.seq != 9 {
		t.Fatalf("pong = %+v", f)
	}
	if b.node.Stats().BadFrames != bad {
		t.Fatal("a bad payload closed the connection")
	}
}

// ---- fake peers ----------------------------------------------------------------------

// fakePeer listens on 127.0.0.1 and runs serve for every connection; all is
// closed at the end of the test. rcvbuf, if set, shrinks the receive buffer
// of accepted sockets.
func fakePeer(t testing.TB, rcvbuf int, serve func(c net.Conn, done <-chan struct{})) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf == 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c, done) }()
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// fakeRef is a ref, on tn, of an actor on the fake peer at addr.
func fakeRef(tn *testNode, addr string) (actor.Ref, *peer) {
	p := tn.node.peerFor(addr, "fake")
	return wireOf(tn.sys).RemoteRef(p, wid(0, 1, 1, 0x55)), p
}

// A peer that accepts and then says nothing: heartbeats declare it down,
// pending asks fail and monitors fire with ErrNodeDown.
func TestSilentPeerDeclaredDown(t *testing.T) {
	addr := fakePeer(t, 0, func(c net.Conn, done <-chan struct{}) {
		_, _ = io.Copy(io.Discard, c) // reads everything, answers nothing
	})
	a := newTestNode(t, "a", Config{})
	r, _ := fakeRef(a, addr)
	dn := make(chan actor.Down, 1)
	w := watcher(t, a, dn)
	res := make(chan askRes, 2)
	ak := asker(t, a, res)
	start := time.Now()
	go func() {
		_, err := a.sys.Ask(context.Background(), r, "x") // no deadline
		res <- askRes{nil, err}
	}()
	if err := a.sys.Send(ak, askReq{r, "y", time.Minute}); err != nil {
		t.Fatal(err)
	}
	monitorVia(t, a, w, r)
	hb := a.node.cfg.HeartbeatTimeout
	for range 2 {
		x := recv(t, res, hb+10*time.Second, "an ask to the silent peer to fail")
		if !errors.Is(x.err, ErrNodeDown) {
			t.Fatalf("ask to a silent peer: %v, want ErrNodeDown", x.err)
		}
	}
	el := time.Since(start)
	d := recv(t, dn, 5*time.Second, "Down of the silent peer's actor")
	if d.Ref != r || !errors.Is(d.Reason, ErrNodeDown) {
		t.Fatalf("Down = %+v", d)
	}
	if el < hb/2 || el > hb+5*time.Second {
		t.Fatalf("declared down after %v (heartbeat timeout %v)", el, hb)
	}
	if a.node.Stats().PeersDown == 0 {
		t.Fatal("PeersDown not counted")
	}
}

// A peer that answers the hello with garbage, an oversized frame, a frame
// not allowed on a dialed connection or a goodbye: the connection is
// closed, pending asks fail with ErrNodeDown, the node keeps working.
func TestDialedConnectionBadFrames(t *testing.T) {
	a := newTestNode(t, "a", Config{MaxFrame: 1024})
	b := newTestNode(t, "b", Config{})
	legit := remoteActor(t, a, b, echo)
	for name, reply := range map[string][]byte{
		"no handshake": nil, // answers the handshake with plaintext
		"garbage":      {0, 0, 0, 3, 0xc1, 0xc1, 0xc1},
		"oversized":    {0, 1, 0, 0},
		"send":         appendFrame(nil, fSend, msgpack.RawMessage(defID(0, 0, 0, 0, make([]byte, 16))), nil, uint64(0), nil),
		"bad welcome":  appendFrame(nil, fWelcome, uint64(protocolVersion+1), "x", uint64(1), uint64(4096)),
		"goodbye":      appendFrame(nil, fGoodbye, uint64(codeVersion), "go away"),
	} {
		t.Run(name, func(t *testing.T) {
			addr := fakePeer(t, 0, func(c net.Conn, done <-chan struct{}) {
				if reply == nil {
					_, _ = c.Write(appendFrame(nil, fWelcome, uint64(protocolVersion), "x", uint64(1)))
					_, _ = io.Copy(io.Discard, c)
					return
				}
				sc, err := secureAccept(t, c, nil)
				if err != nil {
					return
				}
				if _, err := sc.readFrame(10 * time.Second); err != nil { // the hello
					return
				}
				_, _ = sc.Write(reply)
				_, _ = io.Copy(io.Discard, c)
			})
			r, _ := fakeRef(a, addr)
			bad := a.node.Stats().BadFrames
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			if _, err := a.sys.Ask(ctx, r, "x"); !errors.Is(err, ErrNodeDown) {
				t.Fatalf("ask: %v, want ErrNodeDown", err)
			}
			if el := time.Since(start); el > a.node.cfg.HeartbeatTimeout+5*time.Second {
				t.Fatalf("failed after %v", el)
			}
			waitFor(t, 5*time.Second, "BadFrames", func() bool { return a.node.Stats().BadFrames > bad })
			if v, err := a.sys.Ask(ctxT(t), legit, "ok"); err != nil || v != "ok" {
				t.Fatalf("legitimate ask = %v, %v", v, err)
			}
		})
	}
}

// ---- 7. backpressure -----------------------------------------------------------------

// netQueued returns the bytes gnet holds for p's connection and has not yet
// written to the socket (asked on the connection's loop).
func netQueued(t testing.TB, p *peer) int {
	t.Helper()
	p.mu.Lock()
	gc, _ := p.conn.(*gconn)
	p.mu.Unlock()
	if gc == nil {
		return 0
	}
	c := gc.Conn
	ch := make(chan int, 1)
	if err := c.Wake(func(c gnet.Conn, err error) error {
		if err != nil {
			ch <- 0
			return nil
		}
		ch <- c.OutboundBuffered()
		return nil
	}); err != nil {
		return 0
	}
	return recv(t, ch, 10*time.Second, "the connection's loop")
}

// slowPeer is a fake node that reads the hello and then nothing until
// drain is closed; then it reads and acknowledges everything, as a node
// does (ackInbound).
func slowPeer(t testing.TB, drain <-chan struct{}) string {
	return fakePeer(t, 4096, func(c net.Conn, done <-chan struct{}) {
		sc, err := secureAccept(t, c, nil)
		if err != nil {
			return
		}
		hello, err := sc.readFrame(10 * time.Second)
		if err != nil {
			return
		}
		select { // read nothing more until told to
		case <-done:
		case <-drain:
			rx := uint64(4 + len(hello))
			for {
				b, err := sc.readFrame(10 * time.Second)
				if err != nil {
					return
				}
				rx += uint64(4 + len(b))
				if _, err := sc.Write(appendFrame(nil, fAck, rx)); err != nil {
					return
				}
			}
		}
	})
}

// A peer that reads the hello and then nothing: the outbound queue fills,
// sends and asks get actor.ErrQueueFull (counted in Stats.Refused), and the
// bytes held for the peer stay bounded.
func TestBackpressureSlowPeer(t *testing.T) {
	const maxOut = 64 << 10
	drain := make(chan struct{})
	addr := slowPeer(t, drain)
	a := newTestNode(t, "a", Config{MaxOutbound: maxOut, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, p := fakeRef(a, addr)
	msg := make([]byte, 1024)
	frameSize := 0
	{
		fw := newFrameWriter(a.node)
		f := frame{kind: fSend, to: wid(0, 1, 1, 0x55), payload: msg}
		if err := encodeFrame(fw, &f); err != nil {
			t.Fatal(err)
		}
		frameSize = len(fw.w.b)
		fw.release()
	}
	// What the node holds for the peer: every byte it has not acknowledged
	// (queued, or handed to gnet and the socket).
	queued := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.ob.unacked()
	}
	// Offer messages as fast as possible until nothing moves any more: the
	// peer acknowledges nothing, so every send is refused once MaxOutbound
	// bytes wait for acknowledgement. A node that buffered without bound
	// would go on accepting (stop at 64 MiB then).
	refused, accepted, maxQ := 0, 0, 0
	lastOut, lastMove := uint64(0), time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		err := a.sys.Send(r, msg)
		switch {
		case errors.Is(err, actor.ErrQueueFull):
			refused++
			runtime.Gosched() // let the network loop run
		case err != nil:
			t.Fatalf("send #%d: %v", i, err)
		default:
			accepted++
		}
		if q := queued(); q > maxQ {
			maxQ = q
		}
		if i%32 != 0 {
			continue
		}
		out := a.node.Stats().BytesOut
		if out != lastOut {
			lastOut, lastMove = out, time.Now()
		} else if refused > 0 && time.Since(lastMove) > 500*time.Millisecond {
			break // stalled: full
		}
		if out > 64<<20 || time.Now().After(deadline) {
			break
		}
	}
	st := a.node.Stats()
	held := netQueued(t, p)
	t.Logf("accepted %d, refused %d; max unacknowledged %d; BytesOut %d; held by gnet %d; unacknowledged now %d; stats %+v",
		accepted, refused, maxQ, st.BytesOut, held, queued(), st)
	if refused == 0 {
		t.Fatal("no send was refused")
	}
	if st.Refused != uint64(refused) {
		t.Fatalf("Stats.Refused = %d, senders saw %d refusals", st.Refused, refused)
	}
	if maxQ > maxOut+frameSize {
		t.Fatalf("queued %d bytes, over MaxOutbound %d + one frame %d", maxQ, maxOut, frameSize)
	}
	// What the node holds for the peer in memory (its plaintext, and the
	// sealed copy the network library buffers of what the socket did not
	// take) stays within the bound too: the rest was refused, not buffered.
	// The bound: MaxOutbound plus the frame admitted just under it, twice
	// at most, plus 18 bytes (length and tag) per sealed record.
	if total, bound := held+queued(), 2*(maxOut+frameSize)+(maxOut/maxSealed+2)*(2+16); total > bound {
		t.Fatalf("%d bytes held for a peer that reads nothing (unacknowledged %d, network buffer %d), bound %d",
			total, queued(), held, bound)
	}
	// Asks are refused at once too, from goroutines and from actors.
	if _, err := a.sys.Ask(ctxT(t), r, msg); !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("goroutine ask to a full peer: %v", err)
	}
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	if err := a.sys.Send(ak, askReq{r, msg, time.Minute}); err != nil {
		t.Fatal(err)
	}
	if x := recv(t, res, 5*time.Second, "actor ask to a full peer"); !errors.Is(x.err, actor.ErrQueueFull) {
		t.Fatalf("actor ask to a full peer: %v", x.err)
	}
	// The signals of a local actor's stop still go (forced); an answer to
	// the peer's own requests (here, to a forged Link) and an Exit call
	// do not, so the peer cannot grow this node's memory by asking.
	// What the node holds for the peer: what it has not had acknowledged.
	holding := queued
	before := holding()
	if err := p.sendExit(wid(0, 9, 9, 0x66), wid(0, 1, 1, 0x77), actor.ErrDead, true, answer); !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("an answer to a Link with the queue full: %v, want ErrQueueFull", err)
	}
	exiter := spawn(t, a.sys, func(c *actor.Context, m any) (any, error) { return nil, c.Exit(r, errors.New("x")) })
	if _, err := a.sys.Ask(ctxT(t), exiter, 1); !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("Exit to a full peer: %v, want ErrQueueFull", err)
	}
	if err := p.sendExit(wid(0, 9, 9, 0x66), wid(0, 1, 1, 0x77), nil, true, forced); err != nil {
		t.Fatalf("a stop's exit signal with the queue full: %v", err)
	}
	p.sendDown(wid(0, 9, 9, 0x66), wid(0, 1, 1, 0x77), nil, true)
	if q := holding(); q <= before {
		t.Fatalf("the forced signals were not queued (%d bytes held, before %d)", q, before)
	}
	// A Monitor of an actor that died (with the secret it had) is an
	// answer too: MonitorLocal hands it back to the transport (noproc)
	// instead of sending the forced Down of a stop.
	dead := spawn(t, a.sys, func(c *actor.Context, m any) (any, error) { return nil, c.Stop(c.Self(), nil) })
	if _, err := a.sys.Ask(ctxT(t), dead, "die"); err != nil {
		t.Fatal(err)
	}
	before = holding()
	answered := make(chan error, 1)
	if err := wireOf(a.sys).MonitorLocal(dead, r, func() {
		_, err := p.enqueueOpt(fDown, answer, func(*frame) {})
		answered <- err
	}); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, answered, 5*time.Second, "the transport's answer to a Monitor of a dead actor"); !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("the answer to a Monitor of a dead actor, queue full: %v, want ErrQueueFull", err)
	}
	if q := holding(); q != before {
		t.Fatalf("a Monitor of a dead actor queued %d bytes past the limit", q-before)
	}
	// Once the peer reads again, sends are accepted again and flow.
	close(drain)
	waitFor(t, 10*time.Second, "a send to be accepted", func() bool { return a.sys.Send(r, msg) == nil })
	out := a.node.Stats().BytesOut
	waitFor(t, 10*time.Second, "traffic to the recovered peer", func() bool {
		for range 32 {
			if err := a.sys.Send(r, msg); err != nil && !errors.Is(err, actor.ErrQueueFull) {
				t.Fatal(err)
			}
		}
		return a.node.Stats().BytesOut > out+64<<10
	})
	if st := a.node.Stats(); st.PeersDown != 0 || st.ConnsOpened != 1 {
		t.Fatalf("the slow peer's connection was dropped: %+v", st)
	}
}

// TestForcedSignalsAreBounded: a stop's signals go past MaxOutbound, but a
// peer that reads nothing while they pile up (another node can make a
// stop send many, by linking many times) is disconnected at forcedLimit
// times MaxOutbound, not buffered for without bound.
func TestForcedSignalsAreBounded(t *testing.T) {
	const maxOut = 16 << 10
	addr := fakePeer(t, 4096, func(c net.Conn, done <-chan struct{}) {
		sc, err := secureAccept(t, c, nil)
		if err != nil {
			return
		}
		if _, err := sc.readFrame(10 * time.Second); err != nil { // the hello
			return
		}
		<-done // then read nothing
	})
	a := newTestNode(t, "a", Config{MaxOutbound: maxOut, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, p := fakeRef(a, addr)
	if err := a.sys.Send(r, "dial"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the connection", func() bool { return p.connectedKey() != nil })
	held := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.ob.unwritten() + p.netHeld
	}
	maxHeld := 0
	var err error
	for i := 0; i < 1<<20; i++ {
		if err = p.sendExit(wid(0, 9, 9, 0x66), wid(0, uint32(i), 1, 0x77), errors.New("a stop's reason"), true, forced); err != nil {
			break
		}
		maxHeld = max(maxHeld, held())
	}
	if !errors.Is(err, ErrNodeDown) {
		t.Fatalf("forced signals to a peer that reads nothing: %v, want ErrNodeDown", err)
	}
	if maxHeld > forcedLimit*maxOut+4096 {
		t.Fatalf("%d bytes held for the peer, bound %d", maxHeld, forcedLimit*maxOut)
	}
	waitFor(t, 10*time.Second, "the peer to be let go", func() bool { return a.node.Stats().PeersDown > 0 })
}

// defID is an interned id's define, [index, loop, slot, gen, secret], as
// Send and Ask frames carry it the first time (intern.go).
func defID(idx, loop, slot, gen uint64, secret []byte) msgpack.RawMessage {
	b, _ := msgpack.Marshal([]any{idx, loop, slot, gen, secret})
	return b
}
