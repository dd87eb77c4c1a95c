package remote

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/panjf2000/gnet/v2"
)

// Benchmarks of two nodes in one process over 127.0.0.1 with a 32-byte
// payload, each beside a plain TCP baseline of the same shape.

var payload32 = make([]byte, 32)

// boxed32 is payload32 boxed once, so that the benchmarks measure the
// runtime's cost, not Go's conversion of a slice to an interface.
var boxed32 any = payload32

// benchConfig keeps production heartbeats: the tests' short timeout would
// declare a peer down while a benchmark saturates both cores.
var benchConfig = Config{HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
	ClusterKey: []byte("benchmark cluster key, 32 bytes"), Logger: slog.New(slog.DiscardHandler)}

type pingState struct {
	peer actor.Ref
	left int
	err  error
	done chan struct{}
	cont actor.Continuation
}

func (p *pingState) Receive(c *actor.Context, msg any) (any, error) {
	if n, ok := msg.(int); ok {
		p.left = n
		c.AskTimeout(p.peer, boxed32, 10*time.Second).Then(p.cont)
	}
	return nil, nil
}

func (p *pingState) onReply(c *actor.Context, v any, err error) {
	if err != nil || p.left <= 1 {
		p.err = err
		close(p.done)
		return
	}
	p.left--
	c.AskTimeout(p.peer, boxed32, 10*time.Second).Then(p.cont)
}

// BenchmarkRemotePingPong: one op = one ask/reply round trip from an actor
// on node A to an actor on node B, one in flight.
func BenchmarkRemotePingPong(b *testing.B) {
	a := newTestNode(b, "a", benchConfig)
	bn := newTestNode(b, "b", benchConfig)
	bn.node.RegisterKind("echo", echoKind)
	r, err := a.node.Spawn(ctxT(b), bn.node.Addr(), "echo", nil)
	if err != nil {
		b.Fatal(err)
	}
	p := &pingState{peer: r, done: make(chan struct{})}
	p.cont = p.onReply
	ping := spawn(b, a.sys, fnActor(p.Receive))
	// warm up the connections both ways
	if _, err := a.sys.Ask(ctxT(b), r, payload32); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuMeter()
	if err := a.sys.Send(ping, b.N); err != nil {
		b.Fatal(err)
	}
	<-p.done
	b.StopTimer()
	cpu(b)
	if p.err != nil {
		b.Fatal(p.err)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c2 := <-acc
	b.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// BenchmarkBaselineTCPPingPong: one op = a 4-byte length + 32-byte frame
// sent and echoed back over loopback TCP by two goroutines, one in flight.
func BenchmarkBaselineTCPPingPong(b *testing.B) {
	c1, c2 := tcpPair(b)
	frame := make([]byte, 36)
	binary.BigEndian.PutUint32(frame, 32)
	go func() {
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
	buf := make([]byte, 36)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c1.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c1, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemoteThroughput: one op = one one-way message delivered to an
// actor on the other node; the receiver's count is checked at the end.
func BenchmarkRemoteThroughput(b *testing.B) { benchThroughput(b, boxed32, nil, false, 0) }

// BenchmarkRemoteThroughputAwaitRoom is BenchmarkRemoteThroughput with a
// sender that, refused for a full queue, waits with Context.AwaitRoom
// instead of sending itself the rest and trying again at once.
func BenchmarkRemoteThroughputAwaitRoom(b *testing.B) { benchThroughput(b, boxed32, nil, true, 0) }

// BenchmarkRemoteThroughputBatch is BenchmarkRemoteThroughputAwaitRoom
// with Context.SendMany: the sender queues batches of 64 messages, waiting
// with AwaitRoom when the outbound queue is full. One op = one message.
func BenchmarkRemoteThroughputBatch(b *testing.B) { benchThroughput(b, boxed32, nil, true, 64) }

// benchRecord is a message of a registered struct type, decoded by
// reflection (on the target's loop: lazy.go).
type benchRecord struct {
	ID  uint64
	Key string
	Val []byte
}

// BenchmarkRemoteThroughputStruct is BenchmarkRemoteThroughput with a
// benchRecord of an 8-byte key and a 16-byte value (51 bytes encoded).
func BenchmarkRemoteThroughputStruct(b *testing.B) {
	var msg any = benchRecord{ID: 1 << 40, Key: "record-1", Val: make([]byte, 16)}
	benchThroughput(b, msg, func(n *Node) {
		if err := Register[benchRecord](n, "bench.record"); err != nil {
			b.Fatal(err)
		}
	}, false, 0)
}

// benchThroughput: one op = one message sent one way from an actor on node
// A to an actor on node B; register, if set, runs on both nodes. With batch,
// the sender queues batches of that many with SendMany.
func benchThroughput(b *testing.B, msg any, register func(*Node), await bool, batch int) {
	a := newTestNode(b, "a", benchConfig)
	bn := newTestNode(b, "b", benchConfig)
	if register != nil {
		register(a.node)
		register(bn.node)
	}
	var got atomic.Int64
	want := int64(b.N)
	done := make(chan struct{})
	bn.node.RegisterKind("count", func(any) (actor.Factory, error) {
		return func() actor.Actor {
			return fnActor(func(c *actor.Context, msg any) (any, error) {
				if got.Add(1) == want {
					close(done)
				}
				return nil, nil
			})
		}, nil
	})
	r, err := a.node.Spawn(ctxT(b), bn.node.Addr(), "count", nil)
	if err != nil {
		b.Fatal(err)
	}
	var many []any // with batch, the sender's SendMany batch
	for range batch {
		many = append(many, msg)
	}
	sender := spawn(b, a.sys, fnActor(func(c *actor.Context, m any) (any, error) {
		n := m.(int)
		for i := 0; i < n; {
			k, err := 1, error(nil)
			if batch > 0 {
				k, err = c.SendMany(r, many[:min(n-i, batch)])
				i += k
			} else if err = c.Send(r, msg); err == nil {
				i++
			}
			if err != nil {
				left := n - i
				if await { // outbound queue full: wait for room
					c.AwaitRoom(r).Then(func(c *actor.Context, _ any, _ error) { c.Send(c.Self(), left) })
					return nil, nil
				}
				c.Send(c.Self(), left) // outbound queue full: yield the loop and come back
				return nil, nil
			}
		}
		return nil, nil
	}))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuMeter()
	if err := a.sys.Send(sender, b.N); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("delivered %d of %d; sender %+v; receiver %+v", got.Load(), want, a.node.Stats(), bn.node.Stats())
	}
	b.StopTimer()
	cpu(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(a.node.Stats().Refused)/float64(b.N), "refused/op")
	if st := bn.node.Stats(); st.Dropped > 0 {
		b.Fatalf("receiver dropped %d messages", st.Dropped)
	}
}

// BenchmarkBaselineTCPThroughput: one op = one 36-byte frame written by one
// goroutine (in 64 KiB batches) and read by another over loopback TCP.
func BenchmarkBaselineTCPThroughput(b *testing.B) {
	c1, c2 := tcpPair(b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		want := int64(b.N) * 36
		for n := int64(0); n < want; {
			k, err := c2.Read(buf)
			if err != nil {
				return
			}
			n += int64(k)
		}
	}()
	batch := make([]byte, 0, 64<<10)
	frame := make([]byte, 36)
	binary.BigEndian.PutUint32(frame, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch = append(batch, frame...)
		if len(batch)+36 > cap(batch) || i == b.N-1 {
			if _, err := c1.Write(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var _ = context.Background

var quietGnet = gnet.WithLogger(gnetLogger{slog.New(slog.DiscardHandler)})

// gnetEcho echoes every byte it reads, on its gnet loop.
type gnetEcho struct {
	gnet.BuiltinEventEngine
	eng chan gnet.Engine
}

func (e *gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng <- eng
	return gnet.None
}

func (e *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	_, _ = c.Write(buf)
	return gnet.None
}

// gnetPinger sends the next 36-byte frame from its gnet loop each time the
// previous one is back, until left reaches zero.
type gnetPinger struct {
	gnet.BuiltinEventEngine
	frame []byte
	got   int
	left  int
	done  chan struct{}
}

func (p *gnetPinger) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	p.got += len(buf)
	for p.got >= len(p.frame) {
		p.got -= len(p.frame)
		if p.left--; p.left == 0 {
			close(p.done)
			return gnet.None
		}
		_, _ = c.Write(p.frame)
	}
	return gnet.None
}

// BenchmarkBaselineGnetPingPong: one op = a 4-byte length + 32-byte frame
// sent and echoed back over loopback TCP between a gnet client and a gnet
// server, each answering on its own event loop with the options a Node
// uses. No encoding, encryption or actors: the floor of any round trip that
// gnet reads, since gnet's loops wait in epoll_wait on threads of their own,
// so every hop wakes a sleeping thread (the Go baseline's netpoller can run
// both ends on one).
func BenchmarkBaselineGnetPingPong(b *testing.B) {
	srv := &gnetEcho{eng: make(chan gnet.Engine, 1)}
	addr := startGnetServer(b, srv, srv.eng)
	p := &gnetPinger{frame: make([]byte, 36), left: b.N + 1, done: make(chan struct{})}
	binary.BigEndian.PutUint32(p.frame, 32)
	cli, err := gnet.NewClient(p, gnet.WithNumEventLoop(1), gnet.WithTCPNoDelay(gnet.TCPNoDelay), quietGnet)
	if err != nil {
		b.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Stop() })
	var c gnet.Conn
	deadline := time.Now().Add(10 * time.Second)
	for c == nil { // the server starts asynchronously: retry until it listens
		if c, err = cli.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	// the first round trip warms the connection up; the rest are timed
	first := make(chan struct{})
	p.left = 1
	p.done = first
	if err := c.AsyncWrite(p.frame, nil); err != nil {
		b.Fatal(err)
	}
	<-first
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuMeter()
	done := make(chan struct{})
	if err := c.AsyncWrite(nil, func(c gnet.Conn, _ error) error {
		p.left, p.done = b.N, done
		_, err := c.Write(p.frame)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	cpu(b)
}

// cpuMeter starts counting the CPU time the process uses (user and system,
// every goroutine of both nodes); the function it returns reports it per
// op as cpu-ns/op. On a shared machine it varies less than the elapsed
// time, which other processes' load stretches.
func cpuMeter() func(b *testing.B) {
	start := processCPU()
	return func(b *testing.B) {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startGnetServer runs h as a gnet server with one loop and a Node's
// options on a free port of 127.0.0.1, stopped at the benchmark's end, and
// returns its address once h's OnBoot has sent its engine on booted.
func startGnetServer(b *testing.B, h gnet.EventHandler, booted <-chan gnet.Engine) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(h, "tcp://"+addr, gnet.WithNumEventLoop(1), gnet.WithReuseAddr(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay), quietGnet)
	}()
	select {
	case eng := <-booted:
		b.Cleanup(func() {
			_ = eng.Stop(context.Background())
			<-errc
		})
	case err := <-errc:
		b.Fatal(err)
	}
	return addr
}

// gnetRelay answers each 36-byte frame its gnet loop reads on another
// connection, one it dialed itself (out), the way a Node answers: a pair
// of nodes has two connections, each carrying data one way. With left > 0
// it counts the frames and stops answering after left of them.
type gnetRelay struct {
	gnet.BuiltinEventEngine
	eng chan gnet.Engine
	// mu orders the benchmark's setup with the loop's reads (the race
	// detector does not see the socket between them); uncontended, a few
	// nanoseconds per read
	mu    sync.Mutex
	out   net.Conn
	frame []byte
	got   int
	left  int // 0: echo forever
	done  chan struct{}
	// delayAck turns TCP_QUICKACK off at each read
	delayAck bool
}

func (r *gnetRelay) OnBoot(eng gnet.Engine) gnet.Action {
	r.eng <- eng
	return gnet.None
}

func (r *gnetRelay) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.delayAck {
		// Linux: leave quick-ack mode, so that the kernel acknowledges
		// every second small segment at a read instead of every one
		quickAckOff(c.Fd())
	}
	if r.left == 0 && r.done == nil {
		_, _ = r.out.Write(buf)
		return gnet.None
	}
	r.got += len(buf)
	for r.got >= len(r.frame) {
		r.got -= len(r.frame)
		if r.left--; r.left == 0 {
			close(r.done)
			return gnet.None
		}
		_, _ = r.out.Write(r.frame)
	}
	return gnet.None
}

// BenchmarkBaselineGnetPingPongTwoConns is BaselineGnetPingPong over two
// connections, each carrying data one way as between two Nodes: each side's
// gnet loop reads a frame on the connection the other dialed and answers on
// the one it dialed itself (a plain net.Conn write from the loop). So no
// answer carries the TCP acknowledgement of what it answers. The difference
// to BaselineGnetPingPong is the cost of that topology.
func BenchmarkBaselineGnetPingPongTwoConns(b *testing.B) { benchGnetTwoConns(b, false) }

// BenchmarkBaselineGnetPingPongTwoConnsDelayedAck is TwoConns with quick
// acks turned off at each read, as a socket is after it sent data soon
// after it read (a Node's acceptor sends Welcome right after Hello): one
// pure TCP acknowledgement per round trip instead of two.
func BenchmarkBaselineGnetPingPongTwoConnsDelayedAck(b *testing.B) { benchGnetTwoConns(b, true) }

func benchGnetTwoConns(b *testing.B, delayAck bool) {
	start := func(r *gnetRelay) string { return startGnetServer(b, r, r.eng) }
	frame := make([]byte, 36)
	binary.BigEndian.PutUint32(frame, 32)
	pinger := &gnetRelay{eng: make(chan gnet.Engine, 1), frame: frame, delayAck: delayAck}
	echo := &gnetRelay{eng: make(chan gnet.Engine, 1), frame: frame, delayAck: delayAck}
	pingerAddr, echoAddr := start(pinger), start(echo)
	dial := func(addr string) net.Conn {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				b.Cleanup(func() { c.Close() })
				return c
			}
			if time.Now().After(deadline) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	set := func(r *gnetRelay, out net.Conn, left int, done chan struct{}) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if out != nil {
			r.out = out
		}
		r.left, r.done = left, done
	}
	pingerOut := dial(echoAddr)
	set(echo, dial(pingerAddr), 0, nil)
	// the first round trip warms the connections up; the rest are timed
	first := make(chan struct{})
	set(pinger, pingerOut, 1, first)
	if _, err := pingerOut.Write(frame); err != nil {
		b.Fatal(err)
	}
	<-first
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuMeter()
	done := make(chan struct{})
	set(pinger, nil, b.N, done) // the loop is idle: nothing in flight
	if _, err := pingerOut.Write(frame); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	cpu(b)
}
