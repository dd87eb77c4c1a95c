package remote

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// A receiver whose MaxFrame is under maxBatchFrame: every message fits a
// frame of its own, and the batches its Welcome allows fit too. All
// arrive, none is dropped or lost with the connection.
func TestBatchWithinReceiverMaxFrame(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", cfg)
	cfg.MaxFrame = 4096
	b := newTestNode(t, "b", cfg)
	const size = 50
	var got atomic.Int64
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		got.Add(1)
		return nil, nil
	})
	msgs := make([]any, size)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, 200) // a Send frame of some 220 bytes
	}
	frames0 := a.node.Stats().FramesOut
	if k, err := a.sys.SendMany(r, msgs); k != size || err != nil {
		t.Fatalf("SendMany: %d, %v", k, err)
	}
	waitFor(t, 10*time.Second, "every message delivered", func() bool {
		return got.Load() == size || b.node.Stats().BadFrames > 0 || a.node.Stats().DeadLetters > 0
	})
	if sb, sa := b.node.Stats(), a.node.Stats(); got.Load() != size || sb.BadFrames != 0 || sb.Dropped != 0 || sa.DeadLetters != 0 {
		t.Fatalf("%d of %d delivered; b: %d bad frames, %d dropped; a: %d dead letters", got.Load(), size, sb.BadFrames, sb.Dropped, sa.DeadLetters)
	}
	if n := a.node.Stats().FramesOut - frames0; n >= size {
		t.Logf("%d frames for %d messages: none joined (the test did not exercise batches)", n, size)
	}
}

// The outbox grows a batch only for a connection whose Welcome said how
// large a frame its receiver reads, and never past that.
func TestBatchCappedAtWelcomedMaxFrame(t *testing.T) {
	n := batchNode(t)
	to := wid(0, 1, 1, 0xa)
	hello := &frame{kind: fHello, version: protocolVersion, name: "x", addr: "y", epoch: 1}
	queue := func(o *outbox, fw *frameWriter) {
		for i := range 50 {
			if _, err := o.appendFrame(fw, &frame{kind: fSend, to: to, payload: bytes.Repeat([]byte{byte(i)}, 200)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// frames lists the frames' body sizes, negative for a batch's
	frames := func(stream []byte) (sizes []int) {
		for len(stream) >= 4 {
			size := int(uint32(stream[0])<<24 | uint32(stream[1])<<16 | uint32(stream[2])<<8 | uint32(stream[3]))
			if kind, _, _ := messageKind(stream[4 : 4+size]); kind == fBatch {
				sizes = append(sizes, -size)
			} else {
				sizes = append(sizes, size)
			}
			stream = stream[4+size:]
		}
		return sizes
	}
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30}
	o.begin(1, fw, hello)
	queue(o, fw)
	if s := frames(o.buf); len(s) != 51 {
		t.Fatalf("before the Welcome: %d frames for a Hello and 50 Sends, want 51 (no batch)", len(s))
	}
	for _, max := range []uint64{4096, 1000, 100, 1 << 30} {
		fw = newFrameWriter(n)
		o = &outbox{max: 1 << 30}
		o.begin(1, fw, hello)
		o.welcomed(2, max) // another connection's: changes nothing
		o.welcomed(1, max)
		queue(o, fw)
		sizes := frames(o.buf)
		limit := min(int(max), maxBatchFrame-4)
		for _, s := range sizes[1:] {
			if -s > limit { // a Send alone is as large as it is
				t.Fatalf("receiver's MaxFrame %d: a frame of %d bytes (%v)", max, s, sizes)
			}
		}
		if max >= 1000 && len(sizes)-1 > 50/3 {
			t.Fatalf("receiver's MaxFrame %d: %d frames for 50 Sends of 200 bytes, joined too little", max, len(sizes)-1)
		}
		o.lost(&fw.ids)
		if o.batchMax != 0 {
			t.Fatalf("a loss kept the batch limit %d", o.batchMax)
		}
	}
}

// encodeCounter counts its encodings (a user encoder: it must run once
// per Send).
type encodeCounter struct{ B []byte }

var encodes atomic.Int64

func (e encodeCounter) EncodeMsgpack(enc *msgpack.Encoder) error {
	encodes.Add(1)
	return enc.EncodeBytes(e.B)
}

func (e *encodeCounter) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	e.B, err = dec.DecodeBytes()
	return err
}

// A Send that would grow a batch past its bound starts the next frame
// with the value encoded once; the frames are those separate Sends and
// batches make.
func TestBatchPastBoundEncodesOnce(t *testing.T) {
	n := codecNode(t, Config{})
	if err := Register[encodeCounter](n, "test.encodecounter"); err != nil {
		t.Fatal(err)
	}
	to, from := wid(0, 1, 1, 0xa), wid(0, 2, 1, 0xb)
	const count = 40
	vals := make([]any, count)
	for i := range vals {
		vals[i] = encodeCounter{B: bytes.Repeat([]byte{byte(i)}, 1000)}
	}
	fw := newFrameWriter(n)
	o := &outbox{max: 1 << 30, batchMax: maxBatchFrame}
	encodes.Store(0)
	for _, v := range vals {
		if _, err := o.appendFrame(fw, &frame{kind: fSend, to: to, from: from, hasFrom: true, payload: v}); err != nil {
			t.Fatal(err)
		}
	}
	if e := encodes.Load(); e != count {
		t.Fatalf("%d Sends encoded %d times", count, e)
	}
	// The same frames, made by writeBatch from the runs the outbox made.
	fr := newFrameReader(n, nil)
	fw2 := newFrameWriter(n)
	var runs []int
	for stream := o.buf; len(stream) >= 4; {
		size := int(uint32(stream[0])<<24 | uint32(stream[1])<<16 | uint32(stream[2])<<8 | uint32(stream[3]))
		if size+4 > maxBatchFrame {
			t.Fatalf("a frame of %d bytes", size)
		}
		var f frame
		if err := fr.parse(stream[4:4+size], &f); err != nil {
			t.Fatal(err)
		}
		k := 1
		if f.kind == fBatch {
			k = len(f.batch)
		}
		runs = append(runs, k)
		stream = stream[4+size:]
	}
	if len(runs) < 3 {
		t.Fatalf("runs %v: the bound was not reached", runs)
	}
	i := 0
	for _, k := range runs {
		f := &frame{kind: fBatch, to: to, from: from, hasFrom: true, batch: vals[i : i+k]}
		if k == 1 {
			f = &frame{kind: fSend, to: to, from: from, hasFrom: true, payload: vals[i]}
		}
		if err := fw2.write(f); err != nil {
			t.Fatal(err)
		}
		i += k
	}
	if want := takeFrames(fw2); !bytes.Equal(o.buf, want) {
		t.Fatalf("runs %v: the outbox's frames differ from separate ones", runs)
	}
}

// A batch of a type the receiver does not know drops each message,
// counted, as N Sends would.
func TestUnknownTypeBatchCountsEach(t *testing.T) {
	n := batchNode(t)
	sec := make([]byte, 16)
	fr := newFrameReader(n, nil)
	var f frame
	if err := fr.parse(body(fBatch, defID(0, 0, 1, 1, sec), nil, 12345, 1, 2, 3, 4, 5), &f); err != nil {
		t.Fatal(err)
	}
	before := n.stats.dropped.Load()
	n.inBatch(&inConn{fr: fr}, &f)
	if d := n.stats.dropped.Load() - before; d != 5 {
		t.Fatalf("a batch of 5 of an unknown type: %d counted dropped, want 5", d)
	}
}

type deepMsg struct{ Kids []deepMsg }

func nestDeep(d int) deepMsg {
	v := deepMsg{}
	for range d {
		v = deepMsg{Kids: []deepMsg{v}}
	}
	return v
}

// Values nested past the receiver's limit, sent together, are dropped
// each alone, as their Sends would be: the connection stays, and what is
// queued behind them arrives.
func TestDeepValuesJoinedDropAlone(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", cfg)
	b := newTestNode(t, "b", cfg)
	for _, n := range []*Node{a.node, b.node} {
		if err := Register[deepMsg](n, "test.deep"); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan any, 8)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		got <- msg
		return nil, nil
	})
	deep := nestDeep(maxPayloadDepth)
	bad0, dropped0 := b.node.Stats().BadFrames, b.node.Stats().Dropped
	if k, err := a.sys.SendMany(r, []any{deep, deep, deep}); k != 3 || err != nil {
		t.Fatalf("SendMany: %d, %v", k, err)
	}
	if err := a.sys.Send(r, "after"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "after" {
			t.Fatalf("got %v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the message after three deep ones was lost: b %d bad frames, a %d dead letters",
			b.node.Stats().BadFrames-bad0, a.node.Stats().DeadLetters)
	}
	if s := b.node.Stats(); s.BadFrames != bad0 || s.Dropped-dropped0 != 3 {
		t.Fatalf("b: %d bad frames, %d dropped; want 0 and 3", s.BadFrames-bad0, s.Dropped-dropped0)
	}
}
