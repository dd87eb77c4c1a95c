package memnet

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// recorder is a Handler that logs what it sees.
type recorder struct {
	name string
	log  *[]string
	conn *Conn
	err  error
}

func (r *recorder) OnOpen(c *Conn) { r.conn = c; *r.log = append(*r.log, r.name+" open") }
func (r *recorder) OnData(c *Conn) {
	b, _ := c.Peek(c.InboundBuffered())
	*r.log = append(*r.log, r.name+" data "+string(b))
	_, _ = c.Discard(len(b))
}
func (r *recorder) OnClose(c *Conn, err error) {
	r.err = err
	*r.log = append(*r.log, r.name+" close")
}

// pair opens a connection from host 10.0.0.1 to a listener on 10.0.0.2.
func pair(t *testing.T, seed uint64) (*Network, *recorder, *recorder, *[]string) {
	t.Helper()
	n := New(seed, time.Unix(0, 0))
	log := &[]string{}
	srv := &recorder{name: "srv", log: log}
	if _, err := n.Listen("10.0.0.2:1", func(c *Conn) Handler { srv.conn = c; return srv }); err != nil {
		t.Fatal(err)
	}
	cli := &recorder{name: "cli", log: log}
	n.Dial("10.0.0.1", "10.0.0.2:1", time.Second, cli, func(err error) { t.Fatalf("dial: %v", err) })
	n.RunFor(time.Second)
	if cli.conn == nil || srv.conn == nil {
		t.Fatalf("not connected: %v", *log)
	}
	return n, cli, srv, log
}

// Bytes arrive in the order written, across a partition that catches some
// in flight and holds others, and none is lost at the heal.
func TestOrderAcrossPartition(t *testing.T) {
	for seed := range uint64(50) {
		n, cli, _, log := pair(t, seed)
		n.SetLatency(time.Millisecond, 20*time.Millisecond)
		*log = nil
		_, _ = cli.conn.Write([]byte("a"))
		_, _ = cli.conn.Write([]byte("b"))
		n.RunFor(500 * time.Microsecond)
		n.Partition("10.0.0.1", "10.0.0.2") // a and b are in flight
		_, _ = cli.conn.Write([]byte("c"))
		// Healed soon: some of a and b arrived and wait, others are still
		// in flight and arrive after the heal.
		n.RunFor(time.Duration(1+seed%10) * time.Millisecond)
		if len(*log) != 0 {
			t.Fatalf("seed %d: delivered across a partition: %v", seed, *log)
		}
		_, _ = cli.conn.Write([]byte("d"))
		n.Heal("10.0.0.1", "10.0.0.2")
		_, _ = cli.conn.Write([]byte("e"))
		n.RunFor(time.Second)
		got := ""
		for _, l := range *log {
			got += l[len("srv data "):]
		}
		if got != "abcde" {
			t.Fatalf("seed %d: received %q, want abcde (%v)", seed, got, *log)
		}
	}
}

// A close reaches the other end after the bytes written before it; a cut
// closes both ends at once with ErrReset and loses what is in flight.
func TestCloseAndCut(t *testing.T) {
	n, cli, _, log := pair(t, 1)
	*log = nil
	_, _ = cli.conn.Write([]byte("x"))
	_ = cli.conn.Close()
	n.RunFor(time.Second)
	if want := []string{"cli close", "srv data x", "srv close"}; !slices.Equal(*log, want) {
		t.Fatalf("close: %v, want %v", *log, want)
	}
	if _, err := cli.conn.Write([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}

	n, cli, srv, log := pair(t, 2)
	*log = nil
	_, _ = cli.conn.Write([]byte("lost"))
	n.Cut("10.0.0.2", "10.0.0.1")
	n.RunFor(time.Second)
	if len(*log) != 2 || !errors.Is(cli.err, ErrReset) || !errors.Is(srv.err, ErrReset) {
		t.Fatalf("cut: %v (%v, %v)", *log, cli.err, srv.err)
	}
}

// A dial to no listener is refused; one across a partition times out after
// its timeout of virtual time.
func TestDialFailures(t *testing.T) {
	n := New(1, time.Unix(0, 0))
	var errs []error
	var at []time.Time
	fail := func(err error) { errs = append(errs, err); at = append(at, n.Now()) }
	n.Dial("10.0.0.1", "10.0.0.9:1", time.Second, nopHandler{}, fail)
	n.RunFor(time.Minute)
	if _, err := n.Listen("10.0.0.2:1", func(c *Conn) Handler { return nopHandler{} }); err != nil {
		t.Fatal(err)
	}
	n.Partition("10.0.0.1", "10.0.0.2")
	start := n.Now()
	n.Dial("10.0.0.1", "10.0.0.2:1", 3*time.Second, nopHandler{}, fail)
	n.RunFor(time.Minute)
	if len(errs) != 2 || !errors.Is(errs[0], ErrRefused) || !errors.Is(errs[1], ErrTimeout) {
		t.Fatalf("errors %v, want refused then timeout", errs)
	}
	if d := at[1].Sub(start); d < 3*time.Second || d > 4*time.Second {
		t.Fatalf("timed out after %v, want the 3 s timeout plus a latency", d)
	}
}

// The same seed and calls give the same run; simultaneous events run in an
// order the seed decides.
func TestSeedDecidesOrder(t *testing.T) {
	run := func(seed uint64) []int {
		n := New(seed, time.Unix(0, 0))
		var order []int
		for i := range 8 {
			n.AfterFunc(time.Second, func() { order = append(order, i) })
		}
		stopped := n.AfterFunc(time.Second, func() { order = append(order, -1) })
		if !stopped.Stop() || stopped.Stop() {
			t.Fatal("Stop: want true once")
		}
		n.RunFor(2 * time.Second)
		return order
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) || len(a) != 8 {
		t.Fatalf("seed 7 gave %v and %v", a, b)
	}
	differ := false
	for s := range uint64(10) {
		if !slices.Equal(run(100+s), a) {
			differ = true
		}
	}
	if !differ {
		t.Fatalf("ten other seeds all gave the order %v", a)
	}
}
