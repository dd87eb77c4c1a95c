package memnet

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// partial reads a few bytes per OnData, leaving the rest buffered, and
// keeps what it read.
type partial struct {
	got  []byte
	step int
}

func (p *partial) OnOpen(*Conn) {}
func (p *partial) OnData(c *Conn) {
	k := min(p.step, c.InboundBuffered())
	b, err := c.Peek(k)
	if err != nil {
		panic(err)
	}
	p.got = append(p.got, b...)
	_, _ = c.Discard(k)
}
func (p *partial) OnClose(*Conn, error) {}

// The network reuses its segment and input buffers: what a reader gets is
// still exactly what was written, in order, when writes of every size
// interleave with reads that leave bytes behind and with the writer
// reusing its own buffer.
func TestBuffersReusedKeepBytes(t *testing.T) {
	n, cli, srv, _ := pair(t, 7)
	p := &partial{step: 700}
	srv.conn.h = p
	var want bytes.Buffer
	buf := make([]byte, 0, 4096)
	for i := range 400 {
		buf = buf[:0]
		for j := range (i*37)%2000 + 1 {
			buf = append(buf, byte(i+j))
		}
		want.Write(buf)
		if _, err := cli.conn.Write(buf); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			n.RunFor(time.Millisecond)
		}
	}
	for range 100000 {
		if !n.Step() {
			break
		}
	}
	// What is still buffered (the reader takes 700 bytes per delivery).
	rest, _ := srv.conn.Peek(srv.conn.InboundBuffered())
	got := append(p.got, rest...)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d; first difference at %d", len(got), want.Len(), firstDiff(got, want.Bytes()))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A Timer's event is never reused for another: stopping a timer that
// already ran reports false and cancels nothing else, however many events
// ran since.
func TestTimerEventsAreNotReused(t *testing.T) {
	n, cli, _, _ := pair(t, 3)
	ran := 0
	tm := n.AfterFunc(time.Millisecond, func() { ran++ })
	n.RunFor(2 * time.Millisecond)
	var fired []int
	for i := range 50 {
		n.AfterFunc(time.Duration(i+1)*time.Microsecond, func() { fired = append(fired, i) })
		if _, err := cli.conn.Write([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if tm.Stop() {
		t.Fatal("Stop of a timer that ran reported true")
	}
	n.RunFor(time.Second)
	if ran != 1 || len(fired) != 50 {
		t.Fatalf("first timer ran %d times (want 1); %d of 50 later timers ran", ran, len(fired))
	}
}
