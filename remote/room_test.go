package remote

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// A sender that waits for room (Context.AwaitRoom from an actor,
// System.SendWait and System.AskTimeout from goroutines) parks while the
// peer reads nothing,
// without trying again (Stats.Refused stays put), and goes on once the
// peer reads and acknowledges.
func TestAwaitRoomParksUntilThePeerReads(t *testing.T) {
	const maxOut = 32 << 10
	drain := make(chan struct{})
	addr := slowPeer(t, drain)
	a := newTestNode(t, "a", Config{MaxOutbound: maxOut, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, _ := fakeRef(a, addr)
	msg := make([]byte, 1024)
	// Fill the queue: sends are refused once MaxOutbound bytes wait for an
	// acknowledgement that does not come.
	waitFor(t, 30*time.Second, "a send refused for a full queue", func() bool {
		return errors.Is(a.sys.Send(r, msg), actor.ErrQueueFull)
	})

	// An actor that sends until refused, then waits for room, then sends
	// again: it reports each wait's end.
	woke := make(chan struct{}, 16)
	sender := spawn(t, a.sys, func(c *actor.Context, m any) (any, error) {
		switch m.(type) {
		case string:
			if err := c.Send(r, msg); !errors.Is(err, actor.ErrQueueFull) {
				return nil, err
			}
			c.AwaitRoom(r).Then(func(c *actor.Context, _ any, err error) {
				woke <- struct{}{}
			})
		}
		return nil, nil
	})
	if _, err := a.sys.Ask(ctxT(t), sender, "go"); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- a.sys.SendWait(context.Background(), r, msg) }()
	asked := make(chan error, 1)
	go func() { // the fake peer never answers: the ask, once sent, times out
		_, err := a.sys.AskTimeout(r, msg, 5*time.Second)
		asked <- err
	}()
	waitFor(t, 10*time.Second, "SendWait and AskTimeout to be refused once", func() bool {
		return a.node.Stats().Refused >= 4 // the fill's, the actor's, SendWait's, AskTimeout's
	})
	before := a.node.Stats().Refused
	// Round trips through the sender's loop: an AwaitRoom settled at
	// once would have been reported by now, and a polling SendWait would
	// have been refused again.
	for range 50 {
		if _, err := a.sys.Ask(ctxT(t), sender, 0); err != nil {
			t.Fatal(err)
		}
	}
	nothing(t, woke, "AwaitRoom settled while the peer reads nothing")
	select {
	case err := <-sent:
		t.Fatalf("SendWait returned while the peer reads nothing: %v", err)
	case err := <-asked:
		t.Fatalf("AskTimeout returned while the peer reads nothing: %v", err)
	default:
	}
	if n := a.node.Stats().Refused; n != before {
		t.Fatalf("waiting senders were refused %d more times: they poll", n-before)
	}

	close(drain)
	recv(t, woke, 10*time.Second, "AwaitRoom settled once the peer reads")
	if err := recv(t, sent, 10*time.Second, "SendWait once the peer reads"); err != nil {
		t.Fatalf("SendWait: %v", err)
	}
	if err := recv(t, asked, 20*time.Second, "AskTimeout to time out"); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("AskTimeout to a peer that never answers: %v, want ErrTimeout (sent, not refused)", err)
	}
}

// A wait for room ends when the connection is lost: the next send says why.
func TestAwaitRoomEndsWithTheConnection(t *testing.T) {
	const maxOut = 32 << 10
	hangUp := make(chan struct{})
	addr := fakePeer(t, 4096, func(c net.Conn, done <-chan struct{}) {
		sc, err := secureAccept(t, c, nil)
		if err != nil {
			return
		}
		if _, err := sc.readFrame(10 * time.Second); err != nil {
			return
		}
		select { // read nothing more; hang up when told
		case <-done:
		case <-hangUp:
			_ = c.Close()
		}
	})
	a := newTestNode(t, "a", Config{MaxOutbound: maxOut, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, _ := fakeRef(a, addr)
	msg := make([]byte, 1024)
	waitFor(t, 30*time.Second, "a send refused for a full queue", func() bool {
		return errors.Is(a.sys.Send(r, msg), actor.ErrQueueFull)
	})
	after := make(chan error, 1)
	sender := spawn(t, a.sys, func(c *actor.Context, m any) (any, error) {
		if err := c.Send(r, msg); !errors.Is(err, actor.ErrQueueFull) {
			return nil, err
		}
		c.AwaitRoom(r).Then(func(c *actor.Context, _ any, _ error) {
			after <- c.Send(r, msg)
		})
		return nil, nil
	})
	if _, err := a.sys.Ask(ctxT(t), sender, "go"); err != nil {
		t.Fatal(err)
	}
	close(hangUp)
	if err := recv(t, after, 10*time.Second, "AwaitRoom settled by the loss"); errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("the send after the loss: %v, want no ErrQueueFull", err)
	}
}
