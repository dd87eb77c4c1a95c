package remote

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/actord/actord/actor"
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
	if !p.directNow(true) {
		t.Fatal("a write right after another, answering a data frame: want it direct")
	}
	burst()
	if p.directNow(true) {
		t.Fatal("the next write, nothing heard since: want a burst again")
	}
	p.heardData()
	if p.directNow(false) {
		t.Fatal("a write while another is in flight is never direct")
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
