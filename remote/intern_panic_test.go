package remote

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// Regression tests from a review of interned ids: every seed of the
// fuzzer is a valid frame on its own, and a payload encoder that panics
// (user code) leaves no define behind.

func TestFuzzSeedsParseAlone(t *testing.T) {
	n := fuzzNode(t)
	fr := newFrameReader(n, nil)
	for i, s := range seedFrames(t, n) {
		primeIDs(nil, fr)
		var f frame
		err := fr.parse(s[4:], &f)
		if err != nil {
			t.Errorf("seed valid-%02d-kind%d alone: %v", i, s[5], err)
		}
	}
}

// panicky is a registered message type whose encoder panics (a user bug).
type panicky struct{ Boom bool }

func (p panicky) EncodeMsgpack(e *msgpack.Encoder) error {
	if p.Boom {
		panic("user encoder bug")
	}
	return e.EncodeBool(false)
}

func (p *panicky) DecodeMsgpack(d *msgpack.Decoder) error {
	_, err := d.DecodeBool()
	return err
}

// A payload whose encoder panics after the ids were interned leaves the
// sender's table with a define the stream never carried: with the table
// full, an eviction the receiver never saw, so the next frame to the new
// id is read as the old id.
func TestInternPanickingEncoderDefinesNothing(t *testing.T) {
	n := codecNode(t, Config{})
	if err := Register[panicky](n, "test.panicky"); err != nil {
		t.Fatal(err)
	}
	fw := newFrameWriter(n)
	fw.ids.to.cap, fw.ids.from.cap = 1, 1
	fr := newFrameReader(n, nil)
	x, a := wid(0, 1, 1, 1), wid(0, 2, 1, 2)
	var f frame
	if err := fr.parse(sendTo(t, fw, x, nil, "for x"), &f); err != nil || f.to != x {
		t.Fatal(err)
	}
	func() {
		defer func() { recover() }() // the actor's crash, recovered by its loop
		_ = encodeFrame(fw, &frame{kind: fSend, to: a, payload: panicky{Boom: true}})
	}()
	fw.w.b = fw.w.b[:0] // what outbox.appendFrame keeps: nothing of the frame
	if err := fr.parse(sendTo(t, fw, a, nil, "for a"), &f); err != nil {
		t.Fatal(err)
	}
	if f.to != a {
		t.Fatalf("a message for %v read as one for %v (index %d)", a.Slot, f.to.Slot, f.toIdx)
	}
}

// End to end: an actor whose send panics in a user encoder (recovered as
// its crash) makes a's later messages for A reach X on b.
func TestInternPanickingEncoderMisdeliversNothing(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	for _, n := range []*Node{a.node, b.node} {
		if err := Register[panicky](n, "test.panicky"); err != nil {
			t.Fatal(err)
		}
	}
	a.node.idCap = 1 // a full table after one id (1024 in production)
	gotX, gotA := make(chan any, 8), make(chan any, 8)
	x := remoteActor(t, a, b, recorder(gotX))
	ra := remoteActor(t, a, b, recorder(gotA))
	s := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		switch msg {
		case "x":
			return nil, c.Send(x, "for x")
		case "boom":
			return nil, c.Send(ra, panicky{Boom: true})
		case "a":
			return nil, c.Send(ra, "for a")
		}
		return nil, nil
	})
	ctx := ctxT(t)
	if _, err := a.sys.Ask(ctx, s, "x"); err != nil {
		t.Fatal(err)
	}
	recv(t, gotX, 5*time.Second, "x's message")
	_, err := a.sys.Ask(ctx, s, "boom")
	_ = err // the sender crashed with the encoder's panic
	s2 := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Send(ra, "for a") })
	if _, err := a.sys.Ask(ctx, s2, "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-gotA:
		t.Logf("A got %v", v)
	case v := <-gotX:
		t.Fatalf("X got %q, a message sent to A", v)
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing delivered; bad frames on b: %d", b.node.Stats().BadFrames)
	}
}
