package remote

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/tsc"
)

// A write that answers a data frame from the node goes out directly even
// right after another write: a round trip shorter than directGap must not
// send every request and reply through gnet's loop.
func TestDirectNowAnswersHeard(t *testing.T) {
	p := &peer{}
	burst := func() { p.lastWrite = math.MaxInt64 / 2 } // as if the last write were just now
	burst()
	if p.directNow(true) {
		t.Fatal("a write right after another, nothing heard: want a burst (through gnet)")
	}
	burst()
	p.heardData()
	if p.directNow(true) {
		t.Fatal("a write right after one through gnet, answering a data frame: want a burst (no lone frame ahead of each batch)")
	}
	p.lastDirect = true
	burst()
	p.heardData()
	if !p.directNow(true) {
		t.Fatal("a write right after a direct one, answering a data frame: want it direct")
	}
	burst()
	if p.directNow(true) {
		t.Fatal("the next write, nothing heard since: want a burst again")
	}
	p.heardData()
	if p.directNow(false) {
		t.Fatal("a write while another is in flight is never direct")
	}
	burst()
	p.answering = true
	p.heardData()
	if !p.directNow(true) {
		t.Fatal("the write at a hold's end, right after another: want it direct")
	}
	p.answering = false
	burst()
	if p.directNow(true) {
		t.Fatal("a write right after a hold's end, nothing heard since: want a burst (the hold's write answered what was heard)")
	}
	p.heardData()
	p.netHeld = 1
	burst()
	if p.directNow(true) {
		t.Fatal("a write while gnet holds bytes is never direct")
	}
}

// The data frames read from a node mark its peer as heard; pings do not.
func TestInboundDataMarksPeerHeard(t *testing.T) {
	w := newMemWorld(t, 1, "10.0.0.1", "10.0.0.2")
	defer w.close()
	echo := w.spawnOn(1, 0, func(c *actor.Context, msg any) (any, error) { return msg, nil })
	var replied error = errNoReply
	asker := w.spawnOn(0, 0, func(c *actor.Context, msg any) (any, error) {
		c.Ask(echo, msg).Then(func(_ *actor.Context, _ any, err error) { replied = err })
		return nil, nil
	})
	w.run(10 * time.Millisecond)
	peerOf := func(i, of int) *peer {
		n := w.nodes[i]
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.peers[w.nodes[of].Addr()]
	}
	if err := w.sys[0].Send(asker, "x"); err != nil {
		t.Fatal(err)
	}
	w.run(time.Second)
	if replied != nil {
		t.Fatalf("ask: %v", replied)
	}
	p1, p0 := peerOf(1, 0), peerOf(0, 1)
	if p1 == nil || p0 == nil {
		t.Fatal("no peers after an ask and its reply")
	}
	// memnet writes nothing directly, so nothing consumed the marks
	if !p1.heard.Load() || !p0.heard.Load() {
		t.Fatalf("after an ask and its reply: heard %v (asked node), %v (asking node); want both", p1.heard.Load(), p0.heard.Load())
	}
	p1.heard.Store(false)
	p0.heard.Store(false)
	w.run(2 * time.Second) // heartbeats only
	if p1.heard.Load() || p0.heard.Load() {
		t.Fatal("heartbeats marked a peer heard")
	}
}

var errNoReply = errors.New("no reply yet")

// writeLog wraps a peer's connection and records its writes.
type writeLog struct {
	netConn
	mu      sync.Mutex
	directs []int // sizes of the direct writes
	async   int   // writes handed to the driver
}

func (w *writeLog) tryWrite(b []byte) int {
	n := w.netConn.tryWrite(b)
	w.mu.Lock()
	w.directs = append(w.directs, n)
	w.mu.Unlock()
	return n
}

func (w *writeLog) asyncWrite(b []byte, done func(c netConn, b []byte, err error)) error {
	w.mu.Lock()
	w.async++
	w.mu.Unlock()
	return w.netConn.asyncWrite(b, func(_ netConn, b []byte, err error) { done(w, b, err) })
}

func (w *writeLog) writes() (direct []int, async int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.directs...), w.async
}

// While a peer is held (a network goroutine handles a read from its node),
// the frames queued for the node wait, and go out in one direct write when
// the hold ends, in order; their traffic is recorded then, with the read's
// time.
func TestHoldWritesOnceAtEnd(t *testing.T) {
	quiet := Config{HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: time.Minute} // no pings meanwhile
	a := newTestNode(t, "a", quiet)
	b := newTestNode(t, "b", quiet)
	got := make(chan any, 8)
	sink := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		got <- msg
		return nil, nil
	})
	node, addr, id, ok := a.node.ExportRef(sink)
	if !ok {
		t.Fatal("cannot export the sink")
	}
	r, err := b.node.ImportRef(node, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.sys.Send(r, "warm-up"); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "warm-up" {
		t.Fatalf("got %v", v)
	}
	b.node.mu.Lock()
	p := b.node.peers[a.node.Addr()]
	b.node.mu.Unlock()
	log := &writeLog{}
	waitFor(t, 5*time.Second, "the connection idle", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.conn == nil || p.flushing || p.netHeld != 0 {
			return false
		}
		log.netConn = p.conn
		p.conn = log
		return true
	})
	if !p.hold() {
		t.Fatal("a gnet connection is not held")
	}
	p.mu.Lock()
	p.holdStart += tsc.Ticks(time.Hour) // a hold that cannot expire here
	p.mu.Unlock()
	for _, m := range []string{"m1", "m2", "m3"} {
		if err := b.sys.Send(r, m); err != nil {
			t.Fatal(err)
		}
	}
	if d, as := log.writes(); len(d) != 0 || as != 0 {
		t.Fatalf("written while held: %d direct, %d through the driver", len(d), as)
	}
	later := time.Now().Add(time.Hour) // the read's time, as unhold is told it
	p.unhold(later)
	if h := p.cm(); h == nil || !h.LastTraffic().Equal(later) {
		t.Fatalf("the held messages' traffic was not recorded with the read's time %v", later)
	}
	for _, want := range []string{"m1", "m2", "m3"} {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("got %v, want %v", v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never arrived", want)
		}
	}
	if d, as := log.writes(); len(d) != 1 || as != 0 {
		t.Fatalf("after the hold: %v direct, %d through the driver; want one direct write", d, as)
	}
	// A hold older than maxHold (a slow handler lent to the network
	// goroutine) makes nothing wait: m4 goes while the hold lasts.
	if !p.hold() {
		t.Fatal("a gnet connection is not held")
	}
	p.mu.Lock()
	p.holdStart -= tsc.Ticks(time.Second) // as if it began a second ago
	p.mu.Unlock()
	if err := b.sys.Send(r, "m4"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "m4" {
			t.Fatalf("got %v, want m4", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("m4 waited for an expired hold")
	}
	p.unhold(time.Now())
}
