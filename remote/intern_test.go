package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// Actor ids interned per connection (intern.go).

// sendTo encodes a Send from from (nil: none) to to with fw and returns its body.
func sendTo(t testing.TB, fw *frameWriter, to actor.WireID, from *actor.WireID, payload any) []byte {
	t.Helper()
	f := frame{kind: fSend, to: to, payload: payload}
	if from != nil {
		f.from, f.hasFrom = *from, true
	}
	if err := encodeFrame(fw, &f); err != nil {
		t.Fatal(err)
	}
	return takeFrames(fw)[4:]
}

// The first frame to an id defines its index, later ones carry the index
// alone; the receiver reads both as the same id.
func TestInternDefineThenIndex(t *testing.T) {
	n := codecNode(t, Config{})
	fw := newFrameWriter(n)
	fr := newFrameReader(n, nil)
	to, from := wid(1, 7, 3, 0x10), wid(0, 2, 1, 0xa0)
	first := sendTo(t, fw, to, &from, "x")
	again := sendTo(t, fw, to, &from, "x")
	if !bytes.Contains(first, to.Secret[:]) || !bytes.Contains(first, from.Secret[:]) {
		t.Fatalf("first frame % x does not define both ids", first)
	}
	if bytes.Contains(again, to.Secret[:]) || bytes.Contains(again, from.Secret[:]) || len(again) > len(first)-2*len(to.Secret) {
		t.Fatalf("second frame % x (%d bytes, first %d) carries an id again", again, len(again), len(first))
	}
	for i, b := range [][]byte{first, again} {
		var f frame
		if err := fr.parse(b, &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.to != to || f.from != from || !f.hasFrom || !f.toIn || !f.fromIn || f.toIdx != 0 || f.fromIdx != 0 || f.payload != "x" {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	// Another target: the next index, defined; the sender's stays.
	other := wid(1, 8, 1, 0x30)
	var f frame
	if err := fr.parse(sendTo(t, fw, other, &from, nil), &f); err != nil || f.to != other || f.toIdx != 1 || f.fromIdx != 0 {
		t.Fatalf("third frame: %+v, %v", f, err)
	}
	if len(fr.ids.to.ents) != 2 || len(fr.ids.from.ents) != 1 {
		t.Fatalf("tables of %d and %d ids, want 2 and 1", len(fr.ids.to.ents), len(fr.ids.from.ents))
	}
}

// Past the table's bound the sender redefines indexes (a clock): with more
// distinct ids than the table holds, in any order, every frame still reads
// as the ids it was written with, and the receiver's tables stay within
// the bound.
func TestInternEvictionRedefines(t *testing.T) {
	n := codecNode(t, Config{})
	n.idCap = 4
	fw := newFrameWriter(n)
	fr := newFrameReader(n, nil)
	ids := make([]actor.WireID, 13)
	for i := range ids {
		ids[i] = wid(uint16(i%3), uint32(i), 1, byte(i*16))
	}
	rnd := uint64(1)
	next := func(k int) int { rnd = rnd*6364136223846793005 + 1442695040888963407; return int(rnd>>33) % k }
	defines := 0
	for i := range 2000 {
		// mostly a few hot ids, sometimes any other
		k := 3
		if i%4 == 0 {
			k = len(ids)
		}
		to, from := ids[next(k)], ids[next(len(ids))]
		b := sendTo(t, fw, to, &from, int64(i))
		if bytes.Contains(b, to.Secret[:]) {
			defines++
		}
		var f frame
		if err := fr.parse(b, &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.to != to || f.from != from || f.payload != int64(i) {
			t.Fatalf("frame %d read as to %v from %v, written to %v from %v", i, f.to, f.from, to, from)
		}
		if len(fr.ids.to.ents) > 4 || len(fr.ids.from.ents) > 4 {
			t.Fatalf("receiver's tables grew to %d and %d ids (bound 4)", len(fr.ids.to.ents), len(fr.ids.from.ents))
		}
	}
	if defines <= len(ids) {
		t.Fatalf("%d defines of the target for %d ids in a table of 4: nothing was evicted", defines, len(ids))
	}
	if defines > 1500 {
		t.Fatalf("%d defines in 2000 frames: the hot ids are evicted", defines)
	}
}

// A frame whose payload does not encode leaves no define behind: the next
// frame defines the index the receiver expects next.
func TestInternUndoOnEncodeFailure(t *testing.T) {
	n := codecNode(t, Config{})
	fw := newFrameWriter(n)
	fr := newFrameReader(n, nil)
	type unregistered struct{ A int }
	a, b := wid(0, 1, 1, 1), wid(0, 2, 1, 2)
	if err := encodeFrame(fw, &frame{kind: fSend, to: a, payload: unregistered{}}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unregistered payload: %v", err)
	}
	var f frame
	if err := fr.parse(sendTo(t, fw, b, nil, nil), &f); err != nil || f.to != b || f.toIdx != 0 {
		t.Fatalf("frame after a failed one: %+v, %v", f, err)
	}
	if err := fr.parse(sendTo(t, fw, a, nil, nil), &f); err != nil || f.to != a || f.toIdx != 1 {
		t.Fatalf("the failed frame's target: %+v, %v", f, err)
	}
}

// An index that is not defined, a define past the next index or the bound,
// is a malformed frame, named as such; a malformed frame defines nothing.
func TestInternParseRejects(t *testing.T) {
	n := codecNode(t, Config{})
	sec := make([]byte, 16)
	for name, b := range map[string][]byte{
		"undefined target":        body(fSend, 3, nil, 0, nil),
		"undefined sender":        body(fAsk, defID(0, 1, 2, 3, sec), 0, 1, 1, 0, nil),
		"define past the next":    body(fSend, defID(1, 1, 2, 3, sec), nil, 0, nil),
		"define past the bound":   body(fSend, defID(maxInterned, 1, 2, 3, sec), nil, 0, nil),
		"index past the bound":    body(fSend, uint64(1)<<20, nil, 0, nil),
		"define of 4 fields":      body(fSend, rawID(1, 2, 3, sec), nil, 0, nil),
		"define with a bad id":    body(fSend, defID(0, 1<<16, 2, 3, sec), nil, 0, nil),
		"index as a string":       body(fSend, "0", nil, 0, nil),
		"negative index":          body(fSend, -1, nil, 0, nil),
		"define, trailing junk":   append(body(fSend, defID(0, 1, 2, 3, sec), nil, 0, nil), 0xc0),
		"define, then bad fields": body(fAsk, defID(0, 1, 2, 3, sec), defID(0, 1, 2, 3, sec), uint64(1)<<32, 1, 0, nil),
	} {
		fr := newFrameReader(n, nil)
		var f frame
		err := fr.parse(b, &f)
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
		if len(fr.ids.to.ents) != 0 || len(fr.ids.from.ents) != 0 {
			t.Errorf("%s: a malformed frame defined ids", name)
		}
	}
	fr := newFrameReader(n, nil)
	var f frame
	if err := fr.parse(body(fSend, 3, nil, 0, nil), &f); err == nil || !strings.Contains(err.Error(), "actor id index 3 not defined") {
		t.Errorf("undefined index: %v", err)
	}
}

// rawHello says hello on a raw connection to node b, claiming addr, and
// reads the Welcome.
func rawHello(t *testing.T, c *secureRaw, b *Node, addr string) {
	t.Helper()
	if _, err := c.Write(helloFrame(protocolVersion, "raw", addr, 1)); err != nil {
		t.Fatal(err)
	}
	wb, err := c.readFrame(5 * time.Second)
	if err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	if f := parseOne(t, b, wb); f.kind != fWelcome {
		t.Fatalf("welcome = %+v", f)
	}
}

// A reference to an index the connection never defined closes it, as a
// malformed frame, with a reason that says so.
func TestInternUndefinedIndexClosesConnection(t *testing.T) {
	var logs logBuf
	b := newTestNode(t, "b", Config{Logger: logs.logger()})
	got := make(chan any, 4)
	r := spawn(t, b.sys, recorder(got))
	id, _ := wireOf(b.sys).LocalID(r)
	c := secureDial(t, b.node.Addr())
	rawHello(t, c, b.node, "127.0.0.1:1")
	before := b.node.Stats().BadFrames
	def := msgpack.RawMessage(defID(0, uint64(id.Loop), uint64(id.Slot), uint64(id.Gen), id.Secret[:]))
	_, _ = c.Write(appendFrame(nil, fSend, def, nil, typeID("string"), "defined"))
	if v := recv(t, got, 5*time.Second, "the message that defines the index"); v != "defined" {
		t.Fatalf("got %v", v)
	}
	_, _ = c.Write(appendFrame(nil, fSend, uint64(0), nil, typeID("string"), "by index"))
	if v := recv(t, got, 5*time.Second, "the message by index"); v != "by index" {
		t.Fatalf("got %v", v)
	}
	_, _ = c.Write(appendFrame(nil, fSend, uint64(1), nil, typeID("string"), "undefined"))
	expectClosed(t, c)
	waitFor(t, 5*time.Second, "BadFrames to count it", func() bool { return b.node.Stats().BadFrames > before })
	waitFor(t, 5*time.Second, "the reason in the log", func() bool {
		return strings.Contains(logs.String(), "actor id index 1 not defined")
	})
	nothing(t, got, "a message by an undefined index")
}

// A define whose secret is wrong is refused as a forged id is, and so is
// every later use of its index; the connection stays, and a right define
// of another index delivers.
func TestInternForgedDefineRefused(t *testing.T) {
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 8)
	r := spawn(t, b.sys, recorder(got))
	id, _ := wireOf(b.sys).LocalID(r)
	forged := id
	forged.Secret[3] ^= 1
	c := secureDial(t, b.node.Addr())
	rawHello(t, c, b.node, "127.0.0.1:1")
	dropped := b.node.Stats().Dropped
	def := func(i uint64, id actor.WireID) msgpack.RawMessage {
		return defID(i, uint64(id.Loop), uint64(id.Slot), uint64(id.Gen), id.Secret[:])
	}
	_, _ = c.Write(appendFrame(nil, fSend, def(0, forged), nil, typeID("string"), "forged define"))
	_, _ = c.Write(appendFrame(nil, fSend, uint64(0), nil, typeID("string"), "forged index"))
	_, _ = c.Write(appendFrame(nil, fSend, uint64(0), nil, typeID("string"), "forged index again"))
	_, _ = c.Write(appendFrame(nil, fSend, def(1, id), nil, typeID("string"), "right"))
	if v := recv(t, got, 5*time.Second, "the message of the right define"); v != "right" {
		t.Fatalf("got %v first: a forged id reached the actor", v)
	}
	if d := b.node.Stats().Dropped - dropped; d != 3 {
		t.Fatalf("%d messages dropped, want the 3 of the forged index", d)
	}
	// Redefined right, index 0 delivers.
	_, _ = c.Write(appendFrame(nil, fSend, def(0, id), nil, typeID("string"), "redefined"))
	if v := recv(t, got, 5*time.Second, "the message of the redefined index"); v != "redefined" {
		t.Fatalf("got %v", v)
	}
	nothing(t, got, "another message")
}

// senderCheck is an actor on the receiving node that checks each message
// (the sender's ref) against the sender the frame named, and counts them.
func senderCheck(res chan<- string) fnActor {
	return func(c *actor.Context, msg any) (any, error) {
		if from, ok := msg.(actor.Ref); ok {
			if from != c.Sender() {
				res <- fmt.Sprintf("message from %v arrived as from %v", from, c.Sender())
			} else {
				res <- ""
			}
		}
		return nil, nil
	}
}

// Many actors sending to many, across nodes, through tables smaller than
// the ids in use: every message reaches its target with its sender, and
// asks are answered by the actor asked.
func TestInternEvictionAcrossNodes(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	a.node.idCap = 3 // before a's peer of b exists
	const targets, senders = 9, 7
	res := make(chan string, targets*senders*4)
	var tr []actor.Ref
	for j := range targets {
		j := j
		tr = append(tr, remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
			if msg == "who" {
				return j, nil
			}
			return senderCheck(res)(c, msg)
		}))
	}
	done := make(chan error, senders)
	for range senders {
		s := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
			if msg != "go" {
				return nil, nil
			}
			for round := range 3 {
				for j := range targets {
					if err := c.Send(tr[(j+round)%targets], c.Self()); err != nil {
						return nil, err
					}
				}
			}
			return nil, nil
		})
		go func() { done <- a.sys.Send(s, "go") }()
	}
	for range senders {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for range targets * senders * 3 {
		if e := recv(t, res, 10*time.Second, "a message"); e != "" {
			t.Fatal(e)
		}
	}
	ctx := ctxT(t)
	for round := range 2 {
		for j, r := range tr {
			if v, err := a.sys.Ask(ctx, r, "who"); err != nil || v != j {
				t.Fatalf("round %d: target %d answered %v, %v", round, j, v, err)
			}
		}
	}
	if bf := b.node.Stats().BadFrames; bf != 0 {
		t.Fatalf("%d bad frames", bf)
	}
	p := a.node.peerFor(b.node.Addr(), "")
	p.mu.Lock()
	n := len(p.fw.ids.to.ents)
	p.mu.Unlock()
	if n != 3 {
		t.Fatalf("sender's table of %d targets, want the bound, 3", n)
	}
}

// A new connection starts with empty tables: after a loss, the ids used
// on the old one are defined again on the new one.
func TestInternReconnectResetsTables(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 16)
	r := remoteActor(t, a, b, recorder(got))
	if err := a.sys.Send(r, "one"); err != nil {
		t.Fatal(err)
	}
	recv(t, got, 5*time.Second, "the first message")
	p := a.node.peerFor(b.node.Addr(), "")
	p.mu.Lock()
	conn, e0 := p.conn, p.link.epoch
	p.mu.Unlock()
	_ = conn.Close()
	waitFor(t, 5*time.Second, "the loss", func() bool { return p.currentEpoch() != e0 })
	waitFor(t, 10*time.Second, "a send on a new connection", func() bool {
		err := a.sys.Send(r, "two")
		return err == nil
	})
	if v := recv(t, got, 5*time.Second, "the message on the new connection"); v != "two" {
		t.Fatalf("got %v", v)
	}
	if v, err := a.sys.Ask(ctxT(t), r, "three"); err != nil || v != "three" {
		t.Fatalf("ask on the new connection: %v, %v", v, err)
	}
	if bf := b.node.Stats().BadFrames; bf != 0 {
		t.Fatalf("%d bad frames after the reconnect", bf)
	}
}

// A restarted node is a new connection with empty tables: a's refs of the
// old incarnation's actors are defined on it again, refused there, and the
// new incarnation's actors are reached.
func TestInternRestartedPeer(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMax: 200 * time.Millisecond})
	b := newTestNode(t, "b", Config{})
	addr := b.node.Addr()
	oldGot := make(chan any, 16)
	old := remoteActor(t, a, b, recorder(oldGot))
	if err := a.sys.Send(old, "x"); err != nil {
		t.Fatal(err)
	}
	recv(t, oldGot, 5*time.Second, "a message to the old incarnation")
	b.close()
	b2 := startAt(t, "b", addr, Config{})
	newGot := make(chan any, 16)
	var fresh actor.Ref
	waitFor(t, 20*time.Second, "a spawn on the restarted node", func() bool {
		b2.node.RegisterKind("rec2", func(any) (actor.Factory, error) {
			return func() actor.Actor { return recorder(newGot) }, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		fresh, err = a.node.Spawn(ctx, addr, "rec2", nil)
		return err == nil
	})
	dropped := b2.node.Stats().Dropped
	for range 3 {
		if err := a.sys.Send(old, "stale"); err != nil {
			t.Fatal(err)
		}
		if err := a.sys.Send(fresh, "fresh"); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if v := recv(t, newGot, 5*time.Second, "a message to the new incarnation"); v != "fresh" {
			t.Fatalf("got %v", v)
		}
	}
	waitFor(t, 5*time.Second, "the stale messages dropped", func() bool { return b2.node.Stats().Dropped == dropped+3 })
	if bf := b2.node.Stats().BadFrames; bf != 0 {
		t.Fatalf("%d bad frames on the new incarnation", bf)
	}
	nothing(t, oldGot, "a message for the old incarnation")
}

// The dead letters of a lost stream name their target and sender through
// the tables; a message whose index the stream redefined later is counted
// without a group.
func TestInternDeadLetters(t *testing.T) {
	n := codecNode(t, Config{})
	n.idCap = 2
	fw := newFrameWriter(n)
	x, y, z, s := wid(0, 1, 1, 1), wid(0, 2, 1, 2), wid(0, 3, 1, 3), wid(1, 1, 1, 4)
	var stream []byte
	q := func(to actor.WireID) {
		if err := encodeFrame(fw, &frame{kind: fSend, to: to, from: s, hasFrom: true, payload: "m"}); err != nil {
			t.Fatal(err)
		}
		stream = append(stream, takeFrames(fw)...)
	}
	q(x)
	q(y) // x, y defined (indexes 0, 1)
	acked := len(stream)
	q(x) // by index 0
	q(y) // by index 1
	q(z) // redefines one of them
	d := scanDeadLetters(stream[acked:], &fw.ids)
	if d.total != 3 || d.other != 1 {
		t.Fatalf("dead letters %+v, want 3, 1 of them without a group", d)
	}
	for k, c := range d.groups {
		if k.from != s || !k.hasFrom || (k.to != z && k.to != x && k.to != y) || c != 1 {
			t.Fatalf("group %+v: %d", k, c)
		}
	}
	if _, ok := d.groups[deadKey{to: z, from: s, hasFrom: true, typ: typeID("string")}]; !ok {
		t.Fatalf("no group for the redefined index's new id: %+v", d.groups)
	}
	// The whole stream, defines included: every message known.
	if d := scanDeadLetters(stream, &fw.ids); d.total != 5 || d.other != 0 {
		t.Fatalf("whole stream: %+v", d)
	}
}

// The sender's table finds every live id where it is, through evictions
// and undos, and holds nothing else.
func TestInternTableConsistent(t *testing.T) {
	tab := outIDs{cap: 64}
	ids := make([]actor.WireID, 500)
	for i := range ids {
		ids[i] = wid(uint16(i%7), uint32(i/7), uint32(i%3), byte(i))
	}
	rnd := uint64(7)
	next := func(k int) int { rnd = rnd*6364136223846793005 + 1442695040888963407; return int(rnd>>33) % k }
	for step := range 20000 {
		k := 40 // a hot set, and now and then anything
		if step%3 == 0 {
			k = len(ids)
		}
		id := ids[next(k)]
		i, kind := tab.intern(id)
		if tab.ents[i].id != id || !tab.ents[i].live {
			t.Fatalf("step %d: index %d holds %+v, want %+v", step, i, tab.ents[i], id)
		}
		if step%7 == 0 {
			tab.undo(i, kind)
		}
		live := 0
		for j, e := range tab.ents {
			if !e.live {
				continue
			}
			live++
			if s, ok := tab.find(&e.id); !ok || int(tab.slots[s]) != j+1 {
				t.Fatalf("step %d: live entry %d (%+v) not found", step, j, e.id)
			}
		}
		used := 0
		for _, s := range tab.slots {
			if s != 0 {
				used++
			}
		}
		if used != live || len(tab.ents) > 64 {
			t.Fatalf("step %d: %d slots used for %d live entries, %d entries", step, used, live, len(tab.ents))
		}
	}
}
