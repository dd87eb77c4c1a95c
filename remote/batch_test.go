package remote

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// batchNode is an unstarted node with a struct type registered, for the
// codec tests of batch frames.
func batchNode(t testing.TB) *Node {
	n := codecNode(t, Config{})
	if err := Register[fuzzMsg](n, "fuzz.msg"); err != nil {
		t.Fatal(err)
	}
	return n
}

// streamFrames parses a stream of frames from one writer, in order, and
// returns them (each batch's payloads copied out of the reader's buffer).
func streamFrames(t testing.TB, n *Node, stream []byte) []frame {
	t.Helper()
	fr := newFrameReader(n, nil)
	var out []frame
	c := &fakeConn{buf: append([]byte(nil), stream...)}
	err := readFrames(c, n.cfg.MaxFrame, func(b []byte) error {
		var f frame
		if err := fr.parse(b, &f); err != nil {
			return err
		}
		f.batch = append([]any(nil), f.batch...)
		out = append(out, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.buf) != 0 {
		t.Fatalf("%d bytes after the last frame", len(c.buf))
	}
	return out
}

// Sends queued one behind another join into batch frames while they are
// unwritten and share target, sender and type; anything else starts a
// frame of its own.
func TestSendsJoinIntoBatches(t *testing.T) {
	n := batchNode(t)
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	a, b := wid(0, 1, 1, 0xa), wid(1, 2, 1, 0xb)
	x, y := wid(0, 3, 1, 0xc), wid(0, 4, 1, 0xd)
	send := func(to, from actor.WireID, hasFrom bool, v any) {
		t.Helper()
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: to, from: from, hasFrom: hasFrom, payload: v}); err != nil {
			t.Fatal(err)
		}
	}
	send(a, x, true, "s0") // a batch of 3
	send(a, x, true, "s1")
	send(a, x, true, "s2")
	send(a, x, true, int64(3)) // another type: a Send, then joined by the next
	send(a, x, true, int64(4))
	send(b, x, true, int64(5))  // another target
	send(b, y, true, int64(6))  // another sender
	send(b, y, false, int64(7)) // none
	send(b, y, false, int64(8))
	if o.next(1<<30) == nil {
		t.Fatal("nothing queued")
	}
	send(b, y, false, int64(9)) // the frame before is written: a new one
	send(b, y, false, int64(10))
	send(b, y, false, nil) // no payload: never joins, nor is joined
	send(b, y, false, nil)
	send(b, y, false, int64(11)) // not into the batch before the nils
	if _, err := o.appendFrame(fw, &frame{kind: fAsk, to: b, from: y, payload: int64(0)}); err != nil {
		t.Fatal(err)
	}
	send(b, y, false, int64(12)) // nor past an Ask
	big := bytes.Repeat([]byte{'z'}, maxBatchFrame/3)
	for range 4 { // past maxBatchFrame: two frames of 2
		send(a, x, true, big)
	}
	for i := range maxBatchMsgs + 1 { // past maxBatchMsgs: two frames
		send(a, x, true, uint64(i))
	}
	got := streamFrames(t, n, o.buf)
	type shape struct {
		kind  uint64
		count int
	}
	want := []shape{{fBatch, 3}, {fBatch, 2}, {fSend, 1}, {fSend, 1}, {fBatch, 2}, {fBatch, 2}, {fSend, 1},
		{fSend, 1}, {fSend, 1}, {fAsk, 1}, {fSend, 1}, {fBatch, 2}, {fBatch, 2}, {fBatch, maxBatchMsgs}, {fSend, 1}}
	var gotShape []shape
	for _, f := range got {
		s := shape{f.kind, 1}
		if f.kind == fBatch {
			s.count = len(f.batch)
		}
		gotShape = append(gotShape, s)
	}
	if fmt.Sprint(gotShape) != fmt.Sprint(want) {
		t.Fatalf("frames (kind, messages):\n got  %v\n want %v", gotShape, want)
	}
	// The payloads, in order, and the ids each frame names.
	var vals []any
	for _, f := range got[:11] {
		if f.kind == fBatch {
			vals = append(vals, f.batch...)
		} else {
			vals = append(vals, f.payload)
		}
	}
	if s := fmt.Sprint(vals); s != "[s0 s1 s2 3 4 5 6 7 8 9 10 <nil> <nil> 11 0 12]" {
		t.Fatalf("payloads %s", s)
	}
	if got[0].to != a || got[0].from != x || !got[0].hasFrom || got[4].to != b || got[4].hasFrom {
		t.Fatalf("batch ids: %+v, %+v", got[0], got[4])
	}
	last := got[len(got)-2].batch
	if last[0] != uint64(0) || last[maxBatchMsgs-1] != uint64(maxBatchMsgs-1) || got[len(got)-1].payload != uint64(maxBatchMsgs) {
		t.Fatalf("long run out of order")
	}
}

// A batch whose next value fails to encode keeps what it had, and the
// message is refused as a Send of it would be.
func TestBatchJoinEncodeError(t *testing.T) {
	n := batchNode(t)
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	a := wid(0, 1, 1, 0xa)
	for _, v := range []any{"a", "b"} {
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: a, payload: v}); err != nil {
			t.Fatal(err)
		}
	}
	before := len(o.buf)
	type unregistered struct{}
	if _, err := o.appendFrame(fw, &frame{kind: fSend, to: a, payload: unregistered{}}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unregistered payload: %v", err)
	}
	if len(o.buf) != before {
		t.Fatalf("a refused message left %d bytes", len(o.buf)-before)
	}
	if _, err := o.appendFrame(fw, &frame{kind: fSend, to: a, payload: "c"}); err != nil {
		t.Fatal(err)
	}
	got := streamFrames(t, n, o.buf)
	if len(got) != 1 || fmt.Sprint(got[0].batch) != "[a b c]" {
		t.Fatalf("frames %+v", got)
	}
}

// Batch frames parse back to what was written, and a value that does not
// decode is left out (counted) without costing the others.
func TestBatchFrameRoundTrip(t *testing.T) {
	n := batchNode(t)
	fw := newFrameWriter(n)
	to, from := wid(1, 7, 3, 0x10), wid(0, 2, 1, 0xa0)
	in := []any{fuzzMsg{Name: "a", N: 1}, fuzzMsg{Name: "b", Tags: map[string]any{"k": "v"}}, fuzzMsg{}}
	if err := fw.write(&frame{kind: fBatch, to: to, from: from, hasFrom: true, batch: in}); err != nil {
		t.Fatal(err)
	}
	got := streamFrames(t, n, takeFrames(fw))
	if len(got) != 1 || got[0].kind != fBatch || got[0].to != to || got[0].from != from || got[0].typeID != typeID("fuzz.msg") {
		t.Fatalf("frame %+v", got)
	}
	if fmt.Sprint(got[0].batch) != fmt.Sprint(in) {
		t.Fatalf("batch %v, want %v", got[0].batch, in)
	}
	if err := fw.write(&frame{kind: fBatch, to: to, batch: []any{"a", int64(1)}}); err == nil {
		t.Fatal("a batch of two types written")
	}
	sec := make([]byte, 16)
	fr := newFrameReader(n, nil)
	var f frame
	if err := fr.parse(body(fBatch, defID(0, 0, 1, 1, sec), nil, typeID("int"), 1, "two", 3), &f); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.batch) != "[1 3]" || f.batchBad != 1 || f.payloadErr != nil {
		t.Fatalf("batch %v, %d bad, %v", f.batch, f.batchBad, f.payloadErr)
	}
	if err := fr.parse(body(fBatch, defID(0, 0, 1, 1, sec), nil, 12345, 1, "two"), &f); err != nil || !errors.Is(f.payloadErr, ErrUnknownType) || len(f.batch) != 0 {
		t.Fatalf("unknown type: %v, %v, %v", err, f.payloadErr, f.batch)
	}
}

// batchBody is a batch frame body to the first primed target with count
// string values.
func batchBody(sec []byte, count int) []byte {
	fields := []any{fBatch, defID(0, 0, 1, 1, sec), nil, typeID("string")}
	for i := range count {
		fields = append(fields, fmt.Sprint(i))
	}
	return body(fields...)
}

// Every bound of a batch frame: a frame past one is malformed (the
// connection closes), and the largest one allowed parses.
func TestBatchFrameBounds(t *testing.T) {
	n := batchNode(t)
	sec := make([]byte, 16)
	def := defID(0, 0, 1, 1, sec)
	miscounted := body(fBatch, def, nil, typeID("string"), "a", "b") // says 6 elements
	miscounted[0]++                                                  // fixarray 7: one value more than there is
	cases := map[string][]byte{
		"no messages":            batchBody(sec, 0),
		"too many messages":      batchBody(sec, maxBatchMsgs+1),
		"count past the values":  miscounted,
		"value past the frame":   body(fBatch, def, nil, typeID("bytes"), msgpack.RawMessage{0xc6, 0x10, 0, 0, 0, 'x'}),
		"deep value truncated":   body(fBatch, def, nil, typeID("[]any"), msgpack.RawMessage(bytes.Repeat([]byte{0x91}, 5000))),
		"unknown type truncated": body(fBatch, def, nil, 12345, msgpack.RawMessage{0xdb, 0xff, 0xff, 0xff, 0xff}),
		"trailing bytes":         append(batchBody(sec, 2), 0xc0),
		"nil type":               body(fBatch, def, nil, 0, nil, nil),
		"array 32 of 4G":         append([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, fBatch}, def...),
		"undefined target":       body(fBatch, 5, nil, typeID("string"), "a"),
	}
	for name, b := range cases {
		fr := newFrameReader(n, nil)
		var f frame
		if err := fr.parse(b, &f); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		} else if len(fr.ids.to.ents) != 0 {
			t.Errorf("%s: a malformed frame defined an id", name)
		}
	}
	fr := newFrameReader(n, nil)
	var f frame
	if err := fr.parse(batchBody(sec, maxBatchMsgs), &f); err != nil || len(f.batch) != maxBatchMsgs {
		t.Fatalf("a batch of %d: %v, %d messages", maxBatchMsgs, err, len(f.batch))
	}
	// A value nested too deep, well formed, is what a Send may carry: it
	// is dropped alone (counted), its neighbours kept, the frame good.
	deep := msgpack.RawMessage(append(bytes.Repeat([]byte{0x91}, 5000), 0xc0))
	fr = newFrameReader(n, nil)
	f = frame{}
	if err := fr.parse(body(fBatch, def, nil, typeID("[]any"), msgpack.RawMessage{0x90}, deep, deep, msgpack.RawMessage{0x91, 0x01}), &f); err != nil || len(f.batch) != 2 || f.batchBad != 2 {
		t.Fatalf("a batch with two values nested too deep: %v, %d kept, %d bad; want 2 kept, 2 bad", err, len(f.batch), f.batchBad)
	}
}

// A malformed batch frame closes the connection it came on, as other
// malformed frames do.
func TestMalformedBatchClosesConnection(t *testing.T) {
	b := newTestNode(t, "b", Config{})
	c := secureDial(t, b.node.Addr())
	if _, err := c.Write(helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.readFrame(5 * time.Second); err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	bad0 := b.node.Stats().BadFrames
	frame := batchBody(make([]byte, 16), maxBatchMsgs+1)
	out := append([]byte{byte(len(frame) >> 24), byte(len(frame) >> 16), byte(len(frame) >> 8), byte(len(frame))}, frame...)
	_, _ = c.Write(out)
	expectClosed(t, c)
	waitFor(t, 5*time.Second, "the bad frame counted", func() bool { return b.node.Stats().BadFrames > bad0 })
}

// A SendMany to an actor of another node goes as batch frames: all its
// messages, in order, in far fewer frames than messages.
func TestSendManyTravelsInBatchFrames(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", cfg)
	b := newTestNode(t, "b", cfg)
	const size = 500
	got := make(chan any, size)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		got <- msg
		return nil, nil
	})
	msgs := make([]any, size)
	for i := range msgs {
		msgs[i] = i
	}
	// The spawn's answer comes on b's connection and may be read before
	// the Welcome of a's: until then a knows no frame size limit of b's
	// and sends no batch frame.
	p, _ := a.node.peer(b.node.Addr())
	waitFor(t, 10*time.Second, "a's connection to b welcomed", func() bool { return welcomed(p) })
	frames0 := a.node.Stats().FramesOut
	if k, err := a.sys.SendMany(r, msgs); k != size || err != nil {
		t.Fatalf("SendMany: %d, %v", k, err)
	}
	for i := range size {
		if v := recv(t, got, 30*time.Second, "the batch"); v != i {
			t.Fatalf("message %d is %v", i, v)
		}
	}
	if d := a.node.Stats().FramesOut - frames0; d > 3 {
		t.Fatalf("%d messages took %d frames", size, d)
	}
}

// A batch into a full loop queue: what fits is queued at once, the rest
// waits for room as single Sends do, and a wait that gives up drops one
// message (counted), not the rest of the batch; nothing else is lost and
// the order holds.
func TestBatchIntoFullQueue(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", cfg)
	b := newTestNodeOf(t, "b", Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour, DeliverWait: 100 * time.Millisecond},
		actor.Config{QueueCapacity: 16})
	const size = 200
	blocked, release := make(chan struct{}), make(chan struct{})
	var delivered atomic.Int64
	var order atomic.Value
	last := -1
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		switch v := msg.(type) {
		case string:
			if v == "block" {
				close(blocked)
				<-release
			}
		case int:
			if v <= last {
				order.Store(fmt.Sprintf("message %d after %d", v, last))
			}
			last = v
			delivered.Add(1)
		}
		return nil, nil
	})
	// Block the actor on its own loop goroutine (not lent to the network's).
	if err := b.sys.Send(localOf(t, a, b, r), "block"); err != nil {
		t.Fatal(err)
	}
	recv(t, blocked, 10*time.Second, "the actor to block")
	msgs := make([]any, size)
	for i := range msgs {
		msgs[i] = i
	}
	start := time.Now()
	if k, err := a.sys.SendMany(r, msgs); k != size || err != nil {
		t.Fatalf("SendMany: %d, %v", k, err)
	}
	waitFor(t, 30*time.Second, "two messages dropped", func() bool { return b.node.Stats().Dropped >= 2 })
	close(release)
	waitFor(t, 30*time.Second, "every message delivered or dropped", func() bool {
		return delivered.Load()+int64(b.node.Stats().Dropped) == size
	})
	elapsed := time.Since(start)
	if s, _ := order.Load().(string); s != "" {
		t.Fatal(s)
	}
	// Each drop ends a wait of DeliverWait, and the connection's waits
	// follow one another: however slowly this goroutine ran (a loaded
	// machine drops more), no more drops than waits fit in the time taken.
	// Dropping the rest of the batch at the first wait given up would
	// drop some 184 in a few hundred milliseconds.
	wait := 100 * time.Millisecond
	if d, most := b.node.Stats().Dropped, uint64(elapsed/wait)+1; d > most {
		t.Fatalf("%d of %d dropped in %v, more than waits of %v fit: a wait that gave up dropped more than its message", d, size, elapsed, wait)
	}
}

// The dead letters of a stream count each message of a batch frame, in
// its group.
func TestDeadLettersCountBatchMessages(t *testing.T) {
	n := batchNode(t)
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	a, x := wid(0, 1, 1, 0xa), wid(0, 3, 1, 0xc)
	for i := range 7 {
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: a, from: x, hasFrom: true, payload: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: a, payload: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	d := o.lost(&fw.ids)
	want := map[deadKey]int{
		{to: a, from: x, hasFrom: true, typ: typeID("int64")}: 7,
		{to: a, typ: typeID("string")}:                        2,
	}
	if d.total != 9 || d.other != 0 || fmt.Sprint(d.groups) != fmt.Sprint(want) {
		t.Fatalf("dead letters %+v, want 9 in %v", d, want)
	}
}

// The frame a Send may join is followed through the outbox's changes: a
// trim moves it, a new connection's Hello and a loss end it.
func TestBatchTailAcrossTrimBeginLost(t *testing.T) {
	n := batchNode(t)
	a, b := wid(0, 1, 1, 0xa), wid(0, 2, 1, 0xb)
	send := func(o *outbox, fw *frameWriter, to actor.WireID, v any) {
		t.Helper()
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: to, payload: v}); err != nil {
			t.Fatal(err)
		}
	}
	shapes := func(buf []byte) string {
		var s []string
		for _, f := range streamFrames(t, n, buf) {
			switch f.kind {
			case fBatch:
				s = append(s, fmt.Sprint(f.batch))
			case fSend:
				if v, ok := f.payload.([]byte); ok {
					s = append(s, fmt.Sprintf("%d bytes", len(v)))
					continue
				}
				s = append(s, fmt.Sprint(f.payload))
			default:
				s = append(s, fmt.Sprint("kind ", f.kind))
			}
		}
		return fmt.Sprint(s)
	}
	hello := &frame{kind: fHello, version: protocolVersion, name: "x", addr: "y", epoch: 1}

	// Trim: a written frame acknowledged and dropped moves the unwritten one.
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	o.begin(1, fw, hello)
	o.welcomed(1, 1<<30)
	send(o, fw, b, bytes.Repeat([]byte{'x'}, 4096))
	written := append([]byte(nil), o.next(1<<30)...)
	send(o, fw, a, "a")
	if err := o.acked(1, uint64(len(written))); err != nil {
		t.Fatal(err)
	}
	if len(o.buf) >= len(written) {
		t.Fatal("the acknowledged frames were not dropped")
	}
	send(o, fw, a, "b")
	if s := shapes(append(written, o.buf...)); s != "[kind 1 4096 bytes [a b]]" {
		t.Fatalf("after a trim: %s", s)
	}

	// A new connection: its Hello goes first, the queued Send stays whole.
	fw = newFrameWriter(n)
	o = &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	send(o, fw, a, "a")
	o.begin(1, fw, hello)
	send(o, fw, a, "b")
	if s := shapes(o.buf); s != "[kind 1 a b]" {
		t.Fatalf("across a new connection: %s", s)
	}

	// A loss: nothing is left to join, and the ids start afresh.
	fw = newFrameWriter(n)
	o = &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	send(o, fw, a, "a")
	o.lost(&fw.ids)
	send(o, fw, a, "b")
	if s := shapes(o.buf); s != "[b]" {
		t.Fatalf("after a loss: %s", s)
	}
}

// Sends joined in the outbox make the same bytes as writeBatch (the fuzz
// seeds' writer): one canonical form of the frame.
func TestJoinedSendsAreWriteBatchBytes(t *testing.T) {
	n := batchNode(t)
	to, from := wid(1, 7, 3, 0x10), wid(0, 2, 1, 0xa0)
	vals := []any{[]byte("a"), []byte{}, bytes.Repeat([]byte{'b'}, 300)}
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	for _, v := range vals {
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: to, from: from, hasFrom: true, payload: v}); err != nil {
			t.Fatal(err)
		}
	}
	fw2 := newFrameWriter(n)
	if err := fw2.write(&frame{kind: fBatch, to: to, from: from, hasFrom: true, batch: vals}); err != nil {
		t.Fatal(err)
	}
	if want := takeFrames(fw2); !bytes.Equal(o.buf, want) {
		t.Fatalf("joined Sends % x\nwriteBatch    % x", o.buf, want)
	}
}
