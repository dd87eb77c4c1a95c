package memnet

import (
	"testing"
	"time"
)

type rec struct {
	name string
	log  *[]string
}

func (r rec) OnOpen(c *Conn) { *r.log = append(*r.log, r.name+" open") }
func (r rec) OnData(c *Conn) {
	*r.log = append(*r.log, r.name+" data")
	c.Discard(c.InboundBuffered())
}
func (r rec) OnClose(c *Conn, err error) { *r.log = append(*r.log, r.name+" close "+fmtErr(err)) }
func fmtErr(e error) string {
	if e == nil {
		return "nil"
	}
	return e.Error()
}

// The accepting end (on b) writes and closes; the dialer's host (a)
// crashes while the bytes and the FIN are in flight. a's handler must hear
// nothing more.
func TestCrashHalfClosed(t *testing.T) {
	n := New(1, time.Unix(0, 0))
	var log []string
	var acc *Conn
	_, _ = n.Listen("10.0.0.2:7000", func(c *Conn) Handler { acc = c; return rec{"b", &log} })
	n.Dial("10.0.0.1", "10.0.0.2:7000", time.Second, rec{"a", &log}, func(error) {})
	n.RunFor(100 * time.Millisecond)
	acc.Write([]byte("hi"))
	acc.Close()
	n.Crash("10.0.0.1")
	log = append(log, "--- a crashed")
	n.RunFor(time.Second)
	t.Log(log)
	after := false
	for _, l := range log {
		if l == "--- a crashed" {
			after = true
		} else if after && l[0] == 'a' {
			t.Errorf("a's handler called after its host crashed: %q", l)
		}
	}
}

// The accepting end closes during a partition: after the heal, its FIN
// (and data written before it) must reach the dialer, as TCP retransmits.
func TestAcceptedCloseDuringPartition(t *testing.T) {
	n := New(1, time.Unix(0, 0))
	var log []string
	var acc *Conn
	_, _ = n.Listen("10.0.0.2:7000", func(c *Conn) Handler { acc = c; return rec{"b", &log} })
	n.Dial("10.0.0.1", "10.0.0.2:7000", time.Second, rec{"a", &log}, func(error) {})
	n.RunFor(100 * time.Millisecond)
	n.Partition("10.0.0.1", "10.0.0.2")
	acc.Write([]byte("bye"))
	acc.Close()
	n.RunFor(time.Second)
	n.Heal("10.0.0.1", "10.0.0.2")
	n.RunFor(time.Second)
	t.Log(log)
	got := false
	for _, l := range log {
		if l == "a close memnet: connection closed" {
			got = true
		}
	}
	if !got {
		t.Errorf("the dialer never heard the FIN parked on the accepted end")
	}
}
