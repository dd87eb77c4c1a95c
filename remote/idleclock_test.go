package remote

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/loop"
)

// A request from the network that reaches an idle loop is handled on the
// network goroutine (the loop is lent to it). An ask its handler makes must
// take its deadline from the clock of now, not from the loop's reading of
// before it went idle: it used to time out at once after an idle stretch
// longer than the timeout, while the asked actor still did the work.
func TestAskFromRemoteRequestAfterIdle(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	clock := loop.NewFakeClock(time.Unix(1_900_000_000, 0))
	sys := actor.NewSystem(actor.Config{Loops: 1, Watchdog: -1, Clock: clock, OnCrash: func(*actor.Crash) {}})
	n := New(sys, Config{Name: "b", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 500 * time.Millisecond})
	ctx := ctxT(t)
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &testNode{sys: sys, node: n, stop: stop}
	t.Cleanup(b.close)

	worker := spawn(t, b.sys, echo)
	front := spawn(t, b.sys, func(c *actor.Context, msg any) (any, error) {
		r := c.Defer()
		c.AskTimeout(worker, msg, 2*time.Second).Then(func(c *actor.Context, v any, err error) { r.Reply(v, err) })
		return nil, nil
	})
	id, _ := b.node.wire.LocalID(front)
	p, err := a.node.peer(b.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	remoteFront := a.node.wire.RemoteRef(p, id)
	for i, idle := range []time.Duration{0, time.Hour, 5 * time.Second} {
		clock.Advance(idle) // b's loop idles meanwhile: no timer, nothing queued
		v, err := a.sys.Ask(ctx, remoteFront, "work")
		if err != nil || v != "work" {
			t.Fatalf("ask %d, after %v idle: %v, %v", i, idle, v, err)
		}
	}
}
