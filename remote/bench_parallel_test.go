package remote

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// The latency of asks under load: 64 asks in flight, from two actors (one
// per loop) of node A to two echo actors of node B, each asker keeping 16
// in flight to each target. One op = one ask round trip; it reports asks/s
// and the 50th and 99th percentile of the round trip. The baseline has the
// same shape over plain TCP: two clients, each with one connection per
// server (two echo servers), 16 frames in flight on each.

const (
	parAskers  = 2
	parTargets = 2
	parDepth   = 16 // in flight per asker and target: 64 in all
)

// parAsker keeps parDepth asks in flight to each target; the replies of
// one target come back in order (one connection, one actor), so a FIFO of
// send times per target gives each round trip without a closure per ask.
type parAsker struct {
	targets [parTargets]actor.Ref
	conts   [parTargets]actor.Continuation
	sent    [parTargets][]time.Time // FIFO of send times
	left    int                     // asks still to send
	pending int
	lat     []time.Duration
	err     error
	done    chan struct{}
}

func (p *parAsker) Receive(c *actor.Context, msg any) (any, error) {
	if n, ok := msg.(int); ok {
		p.left = n
		for t := range parTargets {
			for range parDepth {
				p.send(c, t)
			}
		}
		if p.pending == 0 {
			close(p.done)
		}
	}
	return nil, nil
}

func (p *parAsker) send(c *actor.Context, t int) {
	if p.left == 0 {
		return
	}
	p.left--
	p.pending++
	p.sent[t] = append(p.sent[t], time.Now())
	c.AskTimeout(p.targets[t], boxed32, 30*time.Second).Then(p.conts[t])
}

func (p *parAsker) reply(t int) actor.Continuation {
	return func(c *actor.Context, _ any, err error) {
		p.pending--
		p.lat = append(p.lat, time.Since(p.sent[t][0]))
		p.sent[t] = p.sent[t][1:]
		if err != nil && p.err == nil {
			p.err = err
		}
		if p.err == nil {
			p.send(c, t)
		}
		if p.pending == 0 {
			close(p.done)
		}
	}
}

// reportLatencies reports asks/s and the percentiles of lat.
func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "asks/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkRemoteAskParallel: see above.
func BenchmarkRemoteAskParallel(b *testing.B) {
	a := newTestNode(b, "a", benchConfig)
	bn := newTestNode(b, "b", benchConfig)
	bn.node.RegisterKind("echo", echoKind)
	var targets [parTargets]actor.Ref
	for i := range targets {
		r, err := a.node.Spawn(ctxT(b), bn.node.Addr(), "echo", nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.sys.Ask(ctxT(b), r, payload32); err != nil { // warm up both ways
			b.Fatal(err)
		}
		targets[i] = r
	}
	askers := make([]*parAsker, parAskers)
	refs := make([]actor.Ref, parAskers)
	for i := range askers {
		p := &parAsker{targets: targets, done: make(chan struct{}), lat: make([]time.Duration, 0, b.N/parAskers+1)}
		for t := range parTargets {
			p.conts[t] = p.reply(t)
		}
		askers[i], refs[i] = p, spawn(b, a.sys, fnActor(p.Receive), actor.OnLoop(i%a.sys.Loops()))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuMeter()
	for i, r := range refs {
		n := b.N / parAskers
		if i == 0 {
			n += b.N % parAskers
		}
		if err := a.sys.Send(r, n); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for _, p := range askers {
		select {
		case <-p.done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("asks still pending; A %+v; B %+v", a.node.Stats(), bn.node.Stats())
		}
		if p.err != nil {
			b.Fatal(p.err)
		}
		lat = append(lat, p.lat...)
	}
	b.StopTimer()
	cpu(b)
	reportLatencies(b, lat)
}

// BenchmarkBaselineTCPAskParallel: the same shape over loopback TCP: two
// client goroutines, each with a connection to each of two echo servers
// (goroutines), 16 36-byte frames in flight on each connection.
func BenchmarkBaselineTCPAskParallel(b *testing.B) {
	type conn struct {
		c    net.Conn
		sent chan time.Time // FIFO of send times, parDepth deep: the window
	}
	var conns []*conn
	for range parAskers * parTargets {
		c1, c2 := tcpPair(b)
		go func() { // the echo server of this connection
			buf := make([]byte, 36)
			for {
				if _, err := io.ReadFull(c2, buf); err != nil {
					return
				}
				if _, err := c2.Write(buf); err != nil {
					return
				}
			}
		}()
		conns = append(conns, &conn{c: c1, sent: make(chan time.Time, parDepth)})
	}
	per := b.N / len(conns)
	lats := make([][]time.Duration, len(conns))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, cn := range conns {
		n := per
		if i == 0 {
			n += b.N % len(conns)
		}
		lats[i] = make([]time.Duration, 0, n)
		wg.Add(2)
		go func() { // writer: keeps parDepth frames in flight
			defer wg.Done()
			frame := make([]byte, 36)
			binary.BigEndian.PutUint32(frame, 32)
			for range n {
				cn.sent <- time.Now() // blocks while parDepth are in flight
				if _, err := cn.c.Write(frame); err != nil {
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			buf := make([]byte, 36)
			for range n {
				if _, err := io.ReadFull(cn.c, buf); err != nil {
					return
				}
				lats[i] = append(lats[i], time.Since(<-cn.sent))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	var lat []time.Duration
	for _, l := range lats {
		lat = append(lat, l...)
	}
	if len(lat) != b.N {
		b.Fatalf("%d round trips of %d", len(lat), b.N)
	}
	reportLatencies(b, lat)
}
