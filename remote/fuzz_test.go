package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/internal/seam"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// Fuzz tests of the frame and envelope decoder, the Noise record layer and
// the handshake messages. The corpus under testdata/fuzz/ and the seeds run
// with every `go test`; CI also fuzzes each target briefly (one per run):
//
//	go test -run '^$' -fuzz '^FuzzFrameDecoder$' -fuzztime 100000x ./remote
//	go test -run '^$' -fuzz '^FuzzRecordLayer$' -fuzztime 20000x ./remote
//	go test -run '^$' -fuzz '^FuzzHandshakeMessages$' -fuzztime 50000x ./remote

type fuzzMsg struct {
	Name  string
	N     int64
	Ref   actor.Ref
	Refs  []actor.Ref
	Down  actor.Down
	Tags  map[string]any
	Bytes []byte
}

// fuzzNode is an unstarted node with a few registered types.
func fuzzNode(t testing.TB) *Node {
	n := codecNode(t, Config{Name: "fuzz", MaxFrame: 1 << 16})
	if err := Register[fuzzMsg](n, "fuzz.msg"); err != nil {
		t.Fatal(err)
	}
	return n
}

// seedFrames is the encoded sample frames, and frames with payloads of every
// registered type, one slice per frame (with its length prefix).
func seedFrames(t testing.TB, n *Node) [][]byte {
	fw := newFrameWriter(n)
	defer fw.release()
	primeIDs(fw, nil) // Send and Ask frames to primed ids carry their indexes
	var out [][]byte
	add := func(f frame) {
		if err := encodeFrame(fw, &f); err != nil {
			t.Fatal(err)
		}
		out = append(out, takeFrames(fw))
	}
	for _, f := range sampleFrames() {
		add(f)
	}
	local, _ := n.wire.Resolve(wid(0, 1, 1, 0)) // a (dead) local ref: encodes like a live one
	remote := n.wire.RemoteRef(n.peerFor("127.0.0.1:9", "other"), wid(1, 2, 3, 4))
	for _, v := range []any{
		"", []byte(nil), local, int(-1), int64(math.MinInt64), uint64(1 << 40), math.Inf(-1), true,
		remote, actor.Down{Ref: remote, Reason: actor.ErrDead}, []any{nil, "a", []any{1}},
		map[string]any{"a": 1, "b": []byte("x")},
		fuzzMsg{Name: "m", N: 3, Ref: remote, Refs: []actor.Ref{remote, {}}, Down: actor.Down{Ref: remote},
			Tags: map[string]any{"x": 1.5}, Bytes: []byte{0}},
	} {
		add(frame{kind: fSend, to: primedTo[1], payload: v})
	}
	// Batch frames: of one message and of several, with and without a
	// sender, of a builtin type and of one decoded on the loop.
	add(frame{kind: fBatch, to: primedTo[0], batch: []any{"one"}})
	add(frame{kind: fBatch, to: primedTo[1], from: primedFrom[0], hasFrom: true, batch: []any{int64(1), int64(-2), int64(1 << 40)}})
	add(frame{kind: fBatch, to: primedTo[1], from: primedFrom[1], hasFrom: true, batch: []any{
		fuzzMsg{Name: "a"}, fuzzMsg{N: 2, Refs: []actor.Ref{remote}}, fuzzMsg{Tags: map[string]any{"x": []any{1}}}}})
	add(frame{kind: fBatch, to: primedTo[0], batch: []any{[]byte("a"), []byte{}, []byte("ccc")}})
	return out
}

// primedIDs are the actor ids primeIDs defines, targets and senders, at
// indexes 0, 1, ...: the first of each is the sample frames' (sampleFrames).
var primedTo = []actor.WireID{wid(1, 7, 3, 0x10), wid(0, 9, 1, 0x40)}
var primedFrom = []actor.WireID{wid(0, 2, 1, 0xa0), wid(1, 3, 2, 0x50)}

// primeIDs empties the id tables of fw and fr (either may be nil), then
// defines primedTo and primedFrom in them, in the same indexes: a fuzz
// input parsed after it may use those indexes without defining them.
func primeIDs(fw *frameWriter, fr *frameReader) {
	if fw != nil {
		fw.ids.reset()
		for _, id := range primedTo {
			fw.ids.to.intern(id)
		}
		for _, id := range primedFrom {
			fw.ids.from.intern(id)
		}
	}
	if fr != nil {
		fr.ids = inTables{}
		for i, id := range primedTo {
			fr.ids.to.define(uint16(i), id)
		}
		for i, id := range primedFrom {
			fr.ids.from.define(uint16(i), id)
		}
	}
}

// evictionStream is a stream of Send and Ask frames (with their length
// prefixes) from a writer whose tables hold 3 ids, after primeIDs: indexes
// used, defined, and redefined as the clock evicts.
func evictionStream(t testing.TB, n *Node) []byte {
	fw := newFrameWriter(n)
	fw.ids.to.cap, fw.ids.from.cap = 3, 3
	primeIDs(fw, nil)
	for i := range 12 {
		to, from := wid(uint16(i%2), uint32(i%5), 1, byte(i)), primedFrom[i%2]
		if i%3 == 0 {
			to = primedTo[0]
		}
		if i%4 == 1 {
			from = wid(2, uint32(i), 7, byte(0x80+i))
		}
		f := frame{kind: fSend, to: to, from: from, hasFrom: i%5 != 2, payload: int64(i)}
		if i%3 == 2 {
			f = frame{kind: fAsk, to: to, from: from, pidx: uint32(i), pgen: 1, payload: "q"}
		}
		if err := encodeFrame(fw, &f); err != nil {
			t.Fatal(err)
		}
	}
	return takeFrames(fw)
}

// malformedSeeds are hand-made bad inputs (each with its length prefix, or
// deliberately without a valid one).
func malformedSeeds() [][]byte {
	pre := func(b []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	sec := make([]byte, 16)
	return [][]byte{
		{},
		{0, 0, 0},
		{0, 0, 0, 0},
		{0xff, 0xff, 0xff, 0xff},
		{0, 1, 0, 1, 0x93},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		pre([]byte{0xc1}),
		pre(body(99, 1)),
		pre(body(fPing)),
		pre(append(body(fPing, 1), 0)),
		pre(body(fMonitor, rawID(1<<16, 2, 3, sec), rawID(1, 2, 3, sec))),
		pre(body(fMonitor, rawID(1, 2, 3, sec[:15]), rawID(1, 2, 3, sec))),
		pre(body(fReply, 1<<16, 1, 1, 0, "", 0, nil)),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, 12345, "x")),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("int"), "not an int")),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("actor.Ref"), []any{"n", "a", 1, 2, 3, sec})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("actor.Down"), []any{nil, 999, "x"})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("[]any"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("map[string]any"), []byte{0xdf, 0x7f, 0xff, 0xff, 0xff})),
		pre(body(fHello, 1, "n", 1, "a", 1, 0, 0))[:10],
		// Interned ids: undefined, past the next, past the bound, not an index.
		pre(body(fSend, 7, nil, 0, nil)),
		pre(body(fAsk, 0, 9, 1, 1, 0, nil)),
		pre(body(fSend, defID(5, 0, 1, 1, sec), nil, 0, nil)),
		pre(body(fSend, defID(maxInterned, 0, 1, 1, sec), nil, 0, nil)),
		pre(body(fSend, uint64(1)<<40, 0, 0, nil)),
		pre(body(fSend, rawID(0, 1, 1, sec), nil, 0, nil)),
		pre(body(fSend, 0, "x", 0, nil)),
		// Hostile lengths and nesting (see checkValue).
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("[]any"), msgpack.RawMessage{0xdd, 0x7f, 0xff, 0xff, 0xff})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("map[string]any"), msgpack.RawMessage{0xdf, 0xff, 0xff, 0xff, 0xff})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("fuzz.msg"), msgpack.RawMessage{0x81, 0xa4, 'R', 'e', 'f', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("[]any"), msgpack.RawMessage(append(bytes.Repeat([]byte{0x91}, 5000), 0xc0)))),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, 12345, msgpack.RawMessage(append(bytes.Repeat([]byte{0x91}, 5000), 0xc0)))),
		pre(body(fAsk, defID(0, 0, 1, 1, sec), defID(0, 0, 1, 1, sec), 1, 1, typeID("actor.Ref"), msgpack.RawMessage{0x96, 0xa1, 'n', 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff})),
		// Strings and byte strings declaring 4 GiB (see checkString).
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("bytes"), msgpack.RawMessage{0xc6, 0xff, 0xff, 0xff, 0xff})),
		pre(body(fSend, defID(0, 0, 1, 1, sec), nil, typeID("string"), msgpack.RawMessage{0xdb, 0xff, 0xff, 0xff, 0xff})),
		pre(body(fReply, 1, 1, 1, 0, msgpack.RawMessage{0xc6, 0xff, 0xff, 0xff, 0xff}, 0, nil)),
		pre(body(fWelcome, 1, msgpack.RawMessage{0xdb, 0xff, 0xff, 0xff, 0xff}, 1, 4096)),
		// Batch frames: no messages, a count past the values or past the
		// bound, a value past the frame, nil and unknown types, a value of
		// the wrong type among good ones.
		pre(body(fBatch, 0, nil, typeID("string"))),
		pre(append(body(fBatch, 0, nil, typeID("string"), "a")[:0:0], append([]byte{0x96}, body(fBatch, 0, nil, typeID("string"), "a")[1:]...)...)),
		pre(append([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, fBatch, 0, 0xc0}, body(typeID("string"))[1:]...)),
		pre(body(fBatch, 0, nil, typeID("bytes"), "a", msgpack.RawMessage{0xc6, 0x10, 0, 0, 0, 'x'})),
		pre(body(fBatch, 0, nil, 0, nil, nil)),
		pre(body(fBatch, 0, 1, 12345, "a", "b")),
		pre(body(fBatch, defID(2, 0, 1, 1, sec), nil, typeID("int"), 1, "two", 3)),
		pre(append(body(fBatch, 0, nil, typeID("string"), "a", "b"), 0xc0)),
		// values nested too deep, whole (dropped alone) and cut short
		pre(body(fBatch, 0, nil, typeID("[]any"), msgpack.RawMessage{0x90}, msgpack.RawMessage(append(bytes.Repeat([]byte{0x91}, 200), 0xc0)), msgpack.RawMessage{0x91, 0x01})),
		pre(body(fBatch, 0, nil, typeID("[]any"), msgpack.RawMessage(bytes.Repeat([]byte{0xdc, 0, 2}, 200)))),
	}
}

// TestDeclaredLengthsCheckedBeforeAllocating checks that a string or byte string
// declaring more bytes than its frame holds is refused before msgpack
// allocates for it. msgpack allocates a []byte of the declared length at
// once (4 GiB for a 25-byte frame), and grows the scratch buffer it reads
// strings through, which it keeps for the life of the decoder (of the
// connection), towards the declared length by 1 MiB or more and a copy of
// the whole buffer per call: fuzzing with one frameReader reached gigabytes
// and single frames of tens of seconds (the worker "hung").
func TestDeclaredLengthsCheckedBeforeAllocating(t *testing.T) {
	n := fuzzNode(t)
	sec := make([]byte, 16)
	to := rawID(0, 1, 1, sec)
	toDef := defID(0, 0, 1, 1, sec)             // in Send and Ask: interned
	big := func(code byte) msgpack.RawMessage { // str 32 or bin 32 of 256 MiB
		return msgpack.RawMessage{code, 0x10, 0, 0, 0, 'x'}
	}
	type fuzzStr struct{ S string }
	if err := Register[fuzzStr](n, "fuzz.str"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		body    []byte
		payload bool // the frame parses, with payloadErr set
	}{
		{"bytes payload", body(fSend, toDef, nil, typeID("bytes"), big(0xc6)), true},
		{"string payload", body(fSend, toDef, nil, typeID("string"), big(0xdb)), true},
		{"string payload as bin", body(fSend, toDef, nil, typeID("string"), big(0xc6)), true},
		{"struct field", body(fSend, toDef, nil, typeID("fuzz.str"), append(msgpack.RawMessage{0x81, 0xa1, 'S'}, big(0xdb)...)), true},
		{"unknown type", body(fSend, toDef, nil, 12345, big(0xdb)), true},
		// A ref whose gen is a string holding what looks like a bin 32
		// header: a read past the failed gen would take it for the secret.
		{"ref read out of step", body(fSend, toDef, nil, typeID("actor.Ref"), append(msgpack.RawMessage{0x96, 0xa1, 'n', 0xa1, 'a', 1, 2, 0xa5},
			append(big(0xc6)[:5], append([]byte{0xc4, 0x10}, sec...)...)...)), true},
		// An ext where a map is expected: msgpack reads the ext's data as
		// the map's header and allocates the length it declares. The last
		// byte of the header lies past the ext: a trailing byte after the
		// value, which makes the frame malformed once the value is refused.
		{"ext read as a map", body(fSend, toDef, nil, typeID("map[string]any"), msgpack.RawMessage{0xd6, 0x05, 0xdf, 0x7f, 0xff, 0xff, 0xff}), false},
		{"ext read as a map field", body(fSend, toDef, nil, typeID("fuzz.msg"), msgpack.RawMessage{0x81, 0xa4, 'T', 'a', 'g', 's', 0xd6, 0xff, 0xdf, 0x7f, 0xff, 0xff, 0xff}), false},
		// A ref naming a node with a 600-byte address (maxRefField).
		{"ref address too long", body(fSend, toDef, nil, typeID("actor.Ref"), append(append(msgpack.RawMessage{0x96, 0xa1, 'n', 0xda, 0x02, 0x58},
			bytes.Repeat([]byte{'a'}, 600)...), append([]byte{1, 2, 3, 0xc4, 0x10}, sec...)...)), true},
		{"ask payload", body(fAsk, toDef, toDef, 1, 1, typeID("bytes"), big(0xc6)), true},
		{"spawn payload", body(fSpawn, 1, 1, nil, "k", typeID("string"), big(0xdb)), true},
		{"hello name", body(fHello, 1, big(0xdb), 1, "a", 1, 0, 0), false},
		{"hello addr", body(fHello, 1, "n", 1, big(0xc6), 1, 0, 0), false},
		{"welcome name", body(fWelcome, 1, big(0xdb), 1, 4096), false},
		{"reply message", body(fReply, 1, 1, 1, 0, big(0xc6), 0, nil), false},
		{"stop message", body(fStop, to, 0, big(0xdb)), false},
		{"down message", body(fDown, to, to, 0, big(0xdb)), false},
		{"spawn kind", body(fSpawn, 1, 1, nil, big(0xc6), 0, nil), false},
		{"goodbye message", body(fGoodbye, 0, big(0xdb)), false},
	}
	var f frame
	for _, c := range cases {
		fr := newFrameReader(n, nil) // a connection's
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const parses = 20
		for range parses {
			err := fr.parse(c.body, &f)
			switch {
			case c.payload && err != nil:
				t.Fatalf("%s: %v, want only a payload error", c.name, err)
			case c.payload && f.payloadErr == nil:
				t.Fatalf("%s: no payload error", c.name)
			case !c.payload && !errors.Is(err, ErrBadFrame):
				t.Fatalf("%s: parse error %v, want ErrBadFrame", c.name, err)
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("%s: %d parses allocated %d bytes", c.name, parses, got)
		}
		fr.release()
	}
	// What fits in the frame still decodes.
	fr := newFrameReader(n, nil)
	defer fr.release()
	long := strings.Repeat("y", 1000)
	if err := fr.parse(body(fSend, toDef, nil, typeID("string"), long), &f); err != nil || f.payload != long {
		t.Fatalf("a 1000-byte string payload: %v, %v", err, f.payloadErr)
	}
	if err := fr.parse(body(fGoodbye, 0, long), &f); err != nil || f.msg != long {
		t.Fatalf("a 1000-byte goodbye message: %v", err)
	}
}

// TestWriteFuzzCorpus regenerates the checked-in seed corpus of
// FuzzFrameDecoder (valid frames of every kind, malformed and hostile ones):
//
//	REMOTE_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./remote
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("REMOTE_WRITE_CORPUS") == "" {
		t.Skip("set REMOTE_WRITE_CORPUS=1 to regenerate testdata/fuzz/FuzzFrameDecoder")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFrameDecoder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := fuzzNode(t)
	seeds := seedFrames(t, n)
	var all []byte
	for i, s := range seeds {
		k := s[4+1] // the kind, a fixint after a fixarray header
		if s[4] == 0xdc {
			k = s[4+3] // after an array 16 header (a batch frame)
		}
		write(fmt.Sprintf("valid-%02d-kind%d", i, k), s)
		all = append(all, s...)
	}
	write("valid-stream-all-kinds", all)
	write("valid-stream-eviction", evictionStream(t, n))
	for i, s := range malformedSeeds() {
		write(fmt.Sprintf("malformed-%02d", i), s)
	}
}

// payloadStable reports whether a payload should survive a second round
// trip unchanged. A Down's reason does not: re-encoding a decoded remote
// error appends its node to the message, and unknown codes become
// codeOther, by design.
func payloadStable(v any) bool {
	switch v.(type) {
	case actor.Down, fuzzMsg:
		return false
	}
	return true
}

// parseGeneral is parse without quickFields.
func (fr *frameReader) parseGeneral(body []byte, f *frame) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = bad("decoder panic", fmt.Errorf("%v", r))
		}
	}()
	*f = frame{}
	fr.r.Reset(body)
	fr.buf = body
	fr.defTo.set, fr.defFrom.set = false, false
	if err := fr.parseFields(f); err != nil {
		return err
	}
	fr.applyDefines()
	return nil
}

// sameFrame compares two decoded frames; NaNs in payloads are equal.
func sameFrame(a, b *frame) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	a2, b2 := *a, *b
	a2.payload, b2.payload, a2.batch, b2.batch = nil, nil, nil, nil
	return reflect.DeepEqual(a2, b2) && sameDecoded(a.payload, b.payload) && sameDecoded(a.batch, b.batch)
}

// sameDecoded is reflect.DeepEqual with NaN equal to NaN: two decodings of
// one input hold the same values in fresh allocations, so they compare by
// what pointers point to (their text would show the addresses), and a NaN
// payload must still equal itself.
func sameDecoded(a, b any) bool {
	return reflect.DeepEqual(a, b) || equalNaN(reflect.ValueOf(a), reflect.ValueOf(b), 0)
}

func equalNaN(x, y reflect.Value, depth int) bool {
	if !x.IsValid() || !y.IsValid() {
		return x.IsValid() == y.IsValid()
	}
	if x.Type() != y.Type() || depth > 64 {
		return false
	}
	switch x.Kind() {
	case reflect.Float32, reflect.Float64:
		fx, fy := x.Float(), y.Float()
		return fx == fy || math.IsNaN(fx) && math.IsNaN(fy)
	case reflect.Complex64, reflect.Complex128:
		cx, cy := x.Complex(), y.Complex()
		same := func(p, q float64) bool { return p == q || math.IsNaN(p) && math.IsNaN(q) }
		return same(real(cx), real(cy)) && same(imag(cx), imag(cy))
	case reflect.Pointer:
		if x.Pointer() == y.Pointer() {
			return true
		}
		return !x.IsNil() && !y.IsNil() && equalNaN(x.Elem(), y.Elem(), depth+1)
	case reflect.Interface:
		if x.IsNil() || y.IsNil() {
			return x.IsNil() == y.IsNil()
		}
		return equalNaN(x.Elem(), y.Elem(), depth+1)
	case reflect.Struct:
		for i := range x.NumField() {
			if !equalNaN(x.Field(i), y.Field(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if x.Kind() == reflect.Slice && x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		for i := range x.Len() {
			if !equalNaN(x.Index(i), y.Index(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Map:
		if x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		for _, k := range x.MapKeys() {
			vy := y.MapIndex(k)
			if !vy.IsValid() || !equalNaN(x.MapIndex(k), vy, depth+1) {
				return false
			}
		}
		return true
	case reflect.Bool:
		return x.Bool() == y.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return x.Int() == y.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return x.Uint() == y.Uint()
	case reflect.String:
		return x.String() == y.String()
	default: // chan, func, unsafe pointer: the same one
		return x.Pointer() == y.Pointer()
	}
}

// noIdx is f without the indexes its interned ids came as: a writer
// assigns its own, so a re-encoded frame may name the same ids by others.
func noIdx(f frame) frame {
	f.toIdx, f.fromIdx, f.toIn, f.fromIn = 0, 0, false, false
	return f
}

// sameValues is sameFrame for a frame and its first re-encoding: a generic
// payload (any, []any, map[string]any) may come back with other integer
// widths (a uint8 on the wire re-encodes as a compact int and decodes as
// int8), so payloads compare by value (%v) here; the frame fields exactly.
func sameValues(a, b *frame) bool {
	a2, b2 := noIdx(*a), noIdx(*b)
	a2.payload, b2.payload, a2.batch, b2.batch = nil, nil, nil, nil
	return reflect.DeepEqual(a2, b2) && fmt.Sprintf("%v", a.payload) == fmt.Sprintf("%v", b.payload) &&
		fmt.Sprintf("%v", a.batch) == fmt.Sprintf("%v", b.batch)
}

func FuzzFrameDecoder(f *testing.F) {
	n := fuzzNode(f)
	for _, s := range seedFrames(f, n) {
		f.Add(s)
	}
	for _, s := range malformedSeeds() {
		f.Add(s)
	}
	f.Add(evictionStream(f, n))
	fr := newFrameReader(n, nil)
	fw := newFrameWriter(n)
	fr2 := newFrameReader(n, nil)
	frg := newFrameReader(n, nil)
	frl := newFrameReader(n, nil)
	frl.setFrom(n, nil) // leaves payloads to the target's loop (lazy.go)
	frs := newFrameReader(n, nil)
	var scratch any // a loop's decoder state
	f.Cleanup(func() { fr.release(); fw.release(); fr2.release(); frl.release(); frs.release() })
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every input starts with the same interned ids (primeIDs), so
		// that it may use their indexes; the round trip's writer and
		// reader start empty, in step.
		for _, r := range []*frameReader{fr, frg, frl, frs} {
			primeIDs(nil, r)
		}
		fw.ids.reset()
		fr2.ids = inTables{}
		// 1. The whole input as one frame body.
		var fm frame
		ferr := fr.parse(data, &fm)
		// 1a. The same without the quick readers of the commonest frames:
		// the same frame, or the same error, and the same ids defined.
		var fg frame
		if gerr := frg.parseGeneral(data, &fg); fmt.Sprint(gerr) != fmt.Sprint(ferr) || !sameFrame(&fm, &fg) {
			t.Fatalf("parsed: %+v, %v; the general way: %+v, %v", fm, ferr, fg, gerr)
		}
		if !reflect.DeepEqual(fr.ids, frg.ids) {
			t.Fatalf("ids defined: %+v; the general way: %+v", fr.ids, frg.ids)
		}
		// 1b. The same with the payload decoded later, as the target's
		// loop does: the same frame, and the same value or a failure.
		var fl frame
		if lerr := frl.parse(data, &fl); (lerr == nil) != (ferr == nil) {
			t.Fatalf("parsed here: %v; for the loop: %v", ferr, lerr)
		}
		if lz, ok := fl.payload.(*seam.Lazy); ok && ferr == nil {
			v, err := lz.Dec.DecodeLazy(lz, &scratch, false)
			if err != nil && strings.Contains(err.Error(), "decoder panic") {
				t.Fatalf("decoder panicked on the loop on % x: %v", data, err)
			}
			if (err == nil) != (fm.payloadErr == nil) || !sameDecoded(v, fm.payload) {
				t.Fatalf("decoded here: %#v, %v; on the loop: %#v, %v", fm.payload, fm.payloadErr, v, err)
			}
		}
		if fl.kind == fBatch && ferr == nil && fm.payloadErr == nil {
			var vs []any
			bad := fl.batchBad // values that failed here, builtin types
			for _, x := range fl.batch {
				lz, ok := x.(*seam.Lazy)
				if !ok {
					vs = append(vs, x)
					continue
				}
				v, err := lz.Dec.DecodeLazy(lz, &scratch, false)
				if err != nil {
					bad++
					continue
				}
				vs = append(vs, v)
			}
			if bad != fm.batchBad || !sameDecoded(vs, fm.batch) {
				t.Fatalf("batch decoded here: %#v, %d bad; on the loop: %#v, %d bad", fm.batch, fm.batchBad, vs, bad)
			}
		}
		// 2. The input as a stream, split into frames as the network loop does,
		// fed in two pieces at an input-chosen point; each frame read the
		// general way too (frs), with the ids the stream defined so far.
		primeIDs(nil, fr)
		c := &fakeConn{}
		cut := 0
		if len(data) > 0 {
			cut = int(data[0]) % (len(data) + 1)
		}
		handle := func(b []byte) error {
			var f1, fs frame
			err := fr.parse(b, &f1)
			if serr := frs.parseGeneral(b, &fs); fmt.Sprint(serr) != fmt.Sprint(err) || !sameFrame(&f1, &fs) || !reflect.DeepEqual(fr.ids, frs.ids) {
				t.Fatalf("in the stream: %+v, %v; the general way: %+v, %v", f1, err, fs, serr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "decoder panic") {
					t.Fatalf("decoder panicked on % x: %v", b, err)
				}
				return err
			}
			if f1.payloadErr != nil || !payloadStable(f1.payload) || f1.batchBad > 0 || len(f1.batch) > 0 && !payloadStable(f1.batch[0]) {
				return nil
			}
			// What parsed re-encodes and parses back the same.
			if err := encodeFrame(fw, &f1); err != nil {
				t.Fatalf("re-encoding %+v: %v", f1, err)
			}
			out := takeFrames(fw)
			if int(binary.BigEndian.Uint32(out)) != len(out)-4 {
				t.Fatalf("bad length prefix on re-encoding %+v", f1)
			}
			var f2 frame
			if err := fr2.parse(out[4:], &f2); err != nil {
				t.Fatalf("re-encoded %+v does not parse: %v", f1, err)
			}
			if !sameValues(&f1, &f2) {
				t.Fatalf("round trip changed the frame:\n %+v\n %+v", f1, f2)
			}
			// After one round trip the encoding is normalised: a second one
			// must change nothing at all, integer widths included.
			if err := encodeFrame(fw, &f2); err != nil {
				t.Fatalf("re-encoding %+v: %v", f2, err)
			}
			out = takeFrames(fw)
			var f3 frame
			if err := fr2.parse(out[4:], &f3); err != nil {
				t.Fatalf("twice re-encoded %+v does not parse: %v", f2, err)
			}
			if g2, g3 := noIdx(f2), noIdx(f3); !sameFrame(&g2, &g3) {
				t.Fatalf("second round trip changed the frame:\n %+v\n %+v", f2, f3)
			}
			return nil
		}
		c.buf = append(c.buf, data[:cut]...)
		err := readFrames(c, n.cfg.MaxFrame, handle)
		if err == nil {
			c.buf = append(c.buf, data[cut:]...)
			err = readFrames(c, n.cfg.MaxFrame, handle)
		}
		if err == nil && len(c.buf) >= 4 {
			if size := int(binary.BigEndian.Uint32(c.buf)); size+4 <= len(c.buf) {
				t.Fatalf("a complete frame of %d bytes left unread", size)
			}
		}
	})
}

// onlyFields returns the members of w that frames of w.kind carry, by the
// frame table; the others are zero.
func onlyFields(w *frame) frame {
	f := frame{kind: w.kind}
	for _, fl := range frameFields[w.kind] {
		switch fl {
		case fldVersion:
			f.version = w.version
		case fldName:
			f.name = w.name
		case fldIncarnation:
			f.incarnation = w.incarnation
		case fldAddr:
			f.addr = w.addr
		case fldEpoch:
			f.epoch = w.epoch
		case fldSeq:
			f.seq = w.seq
		case fldCutInc:
			f.cutInc = w.cutInc
		case fldCutEpoch:
			f.cutEpoch = w.cutEpoch
		case fldTo:
			f.to = w.to
		case fldFrom:
			f.from = w.from
		case fldFromOpt, fldFromInOpt:
			if f.hasFrom = w.hasFrom; f.hasFrom {
				f.from = w.from
			}
		case fldToIn:
			f.to = w.to
		case fldFromIn:
			f.from = w.from
		case fldLoop:
			f.loop = w.loop
		case fldPidx:
			f.pidx = w.pidx
		case fldPgen:
			f.pgen = w.pgen
		case fldCode:
			f.code = w.code
		case fldMsg:
			f.msg = w.msg
		case fldKindName:
			f.kindName = w.kindName
		case fldLink:
			f.link = w.link
		case fldOp:
			f.op = w.op
		case fldTimeout:
			f.timeout = w.timeout
		case fldPayload:
			f.payload = w.payload
		}
	}
	return f
}

// FuzzEnvelopeRoundTrip encodes fuzzer-chosen envelopes and parses them
// back: every valid frame survives the trip exactly.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	n := fuzzNode(f)
	f.Add(uint8(fSend), uint16(1), uint32(7), uint32(3), []byte("secret-secret-16"), uint64(9), "hello", int64(-5), uint8(0))
	f.Add(uint8(fAsk), uint16(goroutineLoop), uint32(0), uint32(0), []byte{}, uint64(1<<40), "", int64(0), uint8(1))
	f.Add(uint8(fReply), uint16(0xFFFF), uint32(math.MaxUint32), uint32(1), []byte{1}, uint64(codeCrashed), "boom", int64(math.MaxInt64), uint8(2))
	f.Add(uint8(fHello), uint16(0), uint32(0), uint32(0), []byte(nil), uint64(1), "127.0.0.1:1", int64(1), uint8(3))
	f.Add(uint8(fSpawn), uint16(2), uint32(2), uint32(2), []byte("k"), uint64(2), "kind", int64(2), uint8(4))
	f.Add(uint8(fDown), uint16(3), uint32(4), uint32(5), []byte("down"), uint64(999), "reason\x00\xff", int64(3), uint8(5))
	fw := newFrameWriter(n)
	fr := newFrameReader(n, nil)
	f.Cleanup(func() { fw.release(); fr.release() })
	remote := n.wire.RemoteRef(n.peerFor("127.0.0.1:9", "other"), wid(1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, kind uint8, loop uint16, slot, gen uint32, secret []byte, num uint64, s string, i int64, pk uint8) {
		k := 1 + int(kind)%(len(fieldCount)-1)
		id := actor.WireID{Loop: loop, Slot: slot, Gen: gen}
		copy(id.Secret[:], secret)
		from := id
		from.Slot ^= 0x5a5a
		var payload any
		switch pk % 8 {
		case 1:
			payload = s
		case 2:
			payload = i
		case 3:
			payload = []byte(s)
		case 4:
			payload = []any{s, true, nil}
		case 5:
			payload = remote
		case 6:
			payload = math.Float64frombits(num)
		case 7:
			payload = num
		}
		want := frame{kind: uint64(k), version: num, name: s, incarnation: num, addr: s, epoch: num, seq: num,
			to: id, from: from, hasFrom: pk%2 == 0, link: num % 2,
			loop: loop, pidx: slot, pgen: gen, code: num, msg: s, kindName: s, payload: payload}
		f := onlyFields(&want) // the fields kind k carries, as the table lists them
		if err := encodeFrame(fw, &f); err != nil {
			t.Fatal(err)
		}
		out := takeFrames(fw)
		var got frame
		if (k == fHello || k == fWelcome) && len(s) > maxRefField {
			if err := fr.parse(out[4:], &got); err == nil {
				t.Fatalf("a %d-byte node name parsed (max %d)", len(s), maxRefField)
			}
			return
		}
		if err := fr.parse(out[4:], &got); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if f.payload != nil {
			ti, _ := n.reg.ofValue(f.payload)
			f.typeID = ti.id
		}
		if g := noIdx(got); !sameFrame(&f, &g) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
		}
	})
}

// A time.Time whose encoding starts with a byte that reads as a map32
// header (nanoseconds in [0xdf<<22, 0xe0<<22)), beside maps, still travels:
// the guard against ext-as-map looks at where a map is expected, not at the
// bytes of every ext.
func TestTimeBesideMapsRoundTrips(t *testing.T) {
	type stamped struct {
		At   time.Time
		Tags map[string]any
		Any  map[any]any
	}
	n := codecNode(t, Config{})
	if err := Register[stamped](n, "test.stamped"); err != nil {
		t.Fatal(err)
	}
	want := stamped{At: time.Unix(1700000000, 0xdf<<22+12345).UTC(), Tags: map[string]any{"a": "b"}, Any: map[any]any{"k": "v"}}
	fw := newFrameWriter(n)
	defer fw.release()
	if err := encodeFrame(fw, &frame{kind: fSend, to: wid(0, 1, 1, 1), payload: want}); err != nil {
		t.Fatal(err)
	}
	got := parseOne(t, n, takeFrames(fw)[4:])
	if got.payloadErr != nil {
		t.Fatalf("payload error: %v", got.payloadErr)
	}
	v, ok := got.payload.(stamped)
	if !ok || !v.At.Equal(want.At) || v.Tags["a"] != "b" || v.Any["k"] != "v" {
		t.Fatalf("payload = %#v, want %#v", got.payload, want)
	}
}
