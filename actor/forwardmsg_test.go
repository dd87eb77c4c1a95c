package actor

import "testing"

// ForwardMsg delivers the new message; the target answers the original
// asker and sees the original sender.
func TestForwardMsg(t *testing.T) {
	s := tsSystem(t, Config{Loops: 2})
	senders := make(chan Ref, 4)
	target := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		senders <- c.Sender()
		return msg, nil
	}), OnLoop(1))
	proxy := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		if err := c.ForwardMsg(target, [2]any{"tagged", msg}); err != nil {
			return nil, err
		}
		if err := c.ForwardMsg(target, "twice"); err != ErrNotForwardable {
			t.Errorf("second ForwardMsg = %v, want ErrNotForwardable", err)
		}
		return "ignored", nil
	}), OnLoop(0))
	v, err := tsAsk(t, s, proxy, 7)
	if err != nil || v != [2]any{"tagged", 7} {
		t.Fatalf("ask through ForwardMsg = %v, %v", v, err)
	}
	if from := tsRecv(t, senders, "the target's sender"); !from.IsZero() {
		t.Fatalf("target saw sender %v, want none", from)
	}
}
