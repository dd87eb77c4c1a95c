package remote

import (
	"testing"
)

// The delivery state machine on its own: no sockets, no connection, no
// clock. A frame writer encodes real frames (its node is never started).

type outboxRig struct {
	t  *testing.T
	o  outbox
	fw *frameWriter
}

func newOutboxRig(t *testing.T, max int) *outboxRig {
	return &outboxRig{t: t, o: outbox{max: max}, fw: newFrameWriter(codecNode(t, Config{}))}
}

// queue offers f as the peer does, and reports whether it was queued.
func (r *outboxRig) queue(f frame, force bool) admission {
	r.t.Helper()
	v := r.o.admit(force)
	if v == obQueue {
		if _, err := r.o.appendFrame(r.fw, &f); err != nil {
			r.t.Fatal(err)
		}
	}
	return v
}

// begin starts connection epoch with its Hello.
func (r *outboxRig) begin(epoch uint64) {
	r.o.begin(epoch, r.fw, &frame{kind: fHello, version: protocolVersion, name: "a", incarnation: 1, addr: "127.0.0.1:1", epoch: epoch})
}

// writeAll takes everything queued for writing, in batches of batch
// bytes, and returns the stream offset written up to.
func (r *outboxRig) writeAll(batch int) uint64 {
	for r.o.next(batch) != nil {
	}
	return r.o.base + uint64(r.o.sent)
}

// end is the stream offset of the last byte queued.
func (r *outboxRig) end() uint64 { return r.o.base + uint64(len(r.o.buf)) }

func sendFrame(slot uint32, msg any) frame {
	return frame{kind: fSend, to: wid(0, slot, 1, 0x10), from: wid(1, 2, 3, 0x20), hasFrom: true, payload: msg}
}

func TestOutboxBackpressure(t *testing.T) {
	const max = 4 << 10
	r := newOutboxRig(t, max)
	r.begin(1)
	msg := make([]byte, 100)
	queued := 0
	for r.queue(sendFrame(1, msg), false) == obQueue {
		queued++
		if queued > max {
			t.Fatal("never refused")
		}
	}
	// Refused exactly once max bytes are unacknowledged: the last frame
	// queued took the count to max or beyond, the one before did not.
	if u := r.o.unacked(); u < max || u >= max+150 {
		t.Fatalf("refused at %d unacknowledged bytes, bound %d", u, max)
	}
	// Writing frees nothing: the peer may not have read what was written.
	upto := r.writeAll(1000)
	if r.queue(sendFrame(1, msg), false) != obFull {
		t.Fatal("a frame was queued beyond the bound once written")
	}
	// A stop's signals go beyond the bound, up to forcedLimit times it.
	forced := 0
	for {
		v := r.queue(frame{kind: fExit, to: wid(0, 9, 9, 1), from: wid(0, 8, 8, 2), link: 1, code: 1}, true)
		if v == obOverflow {
			break
		}
		if v != obQueue {
			t.Fatalf("a forced frame got %d", v)
		}
		if forced++; forced > forcedLimit*max {
			t.Fatal("forced frames never stopped")
		}
	}
	if forced == 0 || r.o.unacked() < forcedLimit*max || r.o.unacked() >= forcedLimit*max+100 {
		t.Fatalf("forced frames stopped at %d bytes (%d frames), bound %d", r.o.unacked(), forced, forcedLimit*max)
	}
	// The peer's acknowledgement frees what it covers: the messages, but
	// the signals still hold more than max.
	if err := r.o.acked(1, upto); err != nil {
		t.Fatal(err)
	}
	if r.o.unacked() != int(r.end()-upto) || r.queue(sendFrame(1, msg), false) != obFull {
		t.Fatalf("after acknowledging %d bytes: %d unacknowledged of %d", upto, r.o.unacked(), r.end())
	}
	if err := r.o.acked(1, r.writeAll(1000)); err != nil {
		t.Fatal(err)
	}
	if r.queue(sendFrame(1, msg), false) != obQueue {
		t.Fatalf("refused after the acknowledgement: %d bytes unacknowledged", r.o.unacked())
	}
	if err := r.o.acked(1, r.writeAll(1000)); err != nil {
		t.Fatal(err)
	}
	if r.o.unacked() != 0 || len(r.o.buf) != 0 {
		t.Fatalf("everything acknowledged, %d bytes held (%d buffered)", r.o.unacked(), len(r.o.buf))
	}
	// An acknowledgement of bytes never written is the peer lying.
	r.queue(sendFrame(1, msg), false)
	if err := r.o.acked(1, r.end()); err == nil {
		t.Fatal("an acknowledgement of unwritten bytes was taken")
	}
}

func TestOutboxDeadLettersOnLoss(t *testing.T) {
	r := newOutboxRig(t, 1<<20)
	r.begin(1)
	// One-way messages from two senders and without one, interleaved with
	// frames that are not one-way messages (their loss is reported
	// otherwise: asks fail, monitors fire).
	others := []frame{
		{kind: fAsk, to: wid(0, 1, 1, 0x10), from: wid(1, 2, 3, 0x20), pidx: 1, pgen: 1, payload: "q"},
		{kind: fMonitor, to: wid(0, 1, 1, 0x10), from: wid(1, 2, 3, 0x20)},
		{kind: fLink, to: wid(0, 1, 1, 0x10), from: wid(1, 2, 3, 0x20)},
		{kind: fPing, seq: 3},
		{kind: fReply, loop: 1, pidx: 2, pgen: 3, payload: int64(4)},
	}
	var ends []uint64 // the stream offset after each frame
	sends := []bool{}
	for i := range 60 {
		var f frame
		switch i % 4 {
		case 0:
			f = sendFrame(uint32(i%3), "hello")
		case 1:
			f = sendFrame(uint32(i%3), int64(i))
			f.hasFrom = false
		case 2:
			f = others[i%len(others)]
		case 3:
			f = sendFrame(7, []byte("x"))
		}
		if r.queue(f, false) != obQueue {
			t.Fatal("refused")
		}
		ends = append(ends, r.end())
		sends = append(sends, f.kind == fSend)
		if i == 40 {
			r.writeAll(100) // the rest stays queued: lost too
		}
	}
	// The peer acknowledged up to the end of frame 25.
	if err := r.o.acked(1, ends[25]); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range sends[26:] {
		if s {
			want++
		}
	}
	d := r.o.lost(&r.fw.ids)
	if d.total != want {
		t.Fatalf("%d dead letters, want the %d one-way messages not acknowledged", d.total, want)
	}
	sum := d.other
	for _, c := range d.groups {
		sum += c
	}
	if sum != want || d.other != 0 {
		t.Fatalf("groups add up to %d (%d ungrouped), want %d", sum, d.other, want)
	}
	// Grouped by target, sender and type: targets 0..2 and 7, with or
	// without a sender, three types.
	if len(d.groups) < 4 {
		t.Fatalf("%d groups: %v", len(d.groups), d.groups)
	}
	if r.o.unacked() != 0 || r.o.epoch != 0 {
		t.Fatalf("after the loss: %d bytes held, epoch %d", r.o.unacked(), r.o.epoch)
	}
	// Nothing is reported twice.
	if d := r.o.lost(&r.fw.ids); d.total != 0 {
		t.Fatalf("a second loss reported %d dead letters", d.total)
	}
}

func TestOutboxAcksAcrossEpochs(t *testing.T) {
	r := newOutboxRig(t, 1<<20)
	r.begin(1)
	for range 10 {
		r.queue(sendFrame(1, "old"), false)
	}
	old := r.writeAll(1 << 20)
	if d := r.o.lost(&r.fw.ids); d.total != 10 {
		t.Fatalf("%d dead letters, want 10", d.total)
	}
	// Frames queued while the peer reconnects go out on epoch 2, after its
	// Hello.
	for range 20 {
		r.queue(sendFrame(2, "new"), false)
	}
	// An acknowledgement of epoch 1 arriving before the new connection
	// changes nothing.
	if err := r.o.acked(1, old); err != nil {
		t.Fatal(err)
	}
	r.begin(2)
	r.writeAll(1 << 20)
	held := r.o.unacked()
	// ... nor after it: epoch 1's offsets are not epoch 2's.
	if err := r.o.acked(1, old); err != nil {
		t.Fatal(err)
	}
	if r.o.unacked() != held {
		t.Fatalf("an acknowledgement of the old connection freed %d bytes of the new one", held-r.o.unacked())
	}
	if d := r.o.lost(&r.fw.ids); d.total != 20 {
		t.Fatalf("%d dead letters on epoch 2, want its 20", d.total)
	}
	// The new epoch's own acknowledgement counts from its Hello.
	for range 5 {
		r.queue(sendFrame(3, "newer"), false)
	}
	r.begin(3)
	upto := r.writeAll(1 << 20)
	if err := r.o.acked(3, upto); err != nil {
		t.Fatal(err)
	}
	if r.o.unacked() != 0 {
		t.Fatalf("%d bytes held after epoch 3 acknowledged all", r.o.unacked())
	}
}

func TestOutboxBeginPutsHelloFirst(t *testing.T) {
	r := newOutboxRig(t, 1<<20)
	r.queue(sendFrame(1, "early"), false) // queued before the dial
	r.begin(5)
	b := r.o.next(1 << 20)
	fr := newFrameReader(r.fw.w.ctx.n, nil)
	var f frame
	size := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if err := fr.parse(b[4:4+size], &f); err != nil || f.kind != fHello || f.epoch != 5 {
		t.Fatalf("first frame: kind %d epoch %d, %v; want the Hello of epoch 5", f.kind, f.epoch, err)
	}
	if d := scanDeadLetters(b[4+size:], &r.fw.ids); d.total != 1 {
		t.Fatalf("after the Hello: %d one-way messages, want the one queued before", d.total)
	}
}

func TestInAcks(t *testing.T) {
	var a inAcks
	if _, ok := a.due(1); ok {
		t.Fatal("acknowledged nothing read")
	}
	// Under a stream: one Ack per ackEvery bytes, at the end of a read.
	a.read(100)
	if _, ok := a.due(ackEvery); ok {
		t.Fatal("acknowledged 104 bytes at the end of a read")
	}
	for range ackEvery / 104 {
		a.read(100)
	}
	upto, ok := a.due(ackEvery)
	if !ok || upto != a.rx || upto < ackEvery {
		t.Fatalf("after %d bytes: ack %d, %v", a.rx, upto, ok)
	}
	if _, ok := a.due(ackEvery); ok {
		t.Fatal("acknowledged twice")
	}
	// At a ping: whatever arrived, however little; nothing new, no Ack.
	a.read(10)
	if upto, ok := a.due(1); !ok || upto != a.rx {
		t.Fatalf("at a ping: ack %d, %v; want %d", upto, ok, a.rx)
	}
	if _, ok := a.due(1); ok {
		t.Fatal("acknowledged nothing new at a ping")
	}
}
