package remote

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// The seam between the node and its I/O. A driver listens, dials and
// carries bytes; the node's read and write paths only see netConn. The
// gnet driver (transport_gnet.go) is the default and the only one users
// get; an in-memory driver on virtual time (transport_mem.go) lets a test
// or a simulator run whole clusters in one goroutine. Time and randomness
// go through the node's clock and rand source for the same reason (see
// docs/architecture.md, "The remote node's I/O").

// netConn is one connection as the node sees it. The read side (stream) is
// valid only during the driver's traffic callback for the connection, and
// Write only from the connection's own callbacks (open, traffic): there it
// goes out after everything written before.
type netConn interface {
	stream
	// Write queues b on the connection, from its own callbacks only.
	Write(b []byte) (int, error)
	// OutboundBuffered is how many written bytes the driver still holds
	// (exact in asyncWrite's completion).
	OutboundBuffered() int
	// Close closes the connection; the driver's close callback follows,
	// asynchronously.
	Close() error
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// asyncWrite queues b from any goroutine; done runs on the
	// connection's callback goroutine once b is written or failed, and
	// is handed b back (so that a caller can pass one func value bound
	// once instead of a closure per write). When asyncWrite fails, done
	// never runs.
	asyncWrite(b []byte, done func(c netConn, b []byte, err error)) error
	// tryWrite writes at once, from the calling goroutine, as much of b
	// as the connection takes without waiting, and returns how much (0:
	// the caller goes through asyncWrite). The caller serializes calls.
	tryWrite(b []byte) int
	// direct reports whether tryWrite can write anything at all on this
	// connection (false: it always returns 0).
	direct() bool
	// release lets go of what the node holds of the connection besides
	// the driver's side (the gnet driver's own descriptor).
	release()
}

// driver is a transport: the gnet driver, or the in-memory one. The node
// calls it from Serve (or the simulator's start) and from its peers.
type driver interface {
	// listen starts accepting on addr (handing each connection to
	// n.admitConn and then the inbound callbacks) and returns the address
	// bound.
	listen(addr string) (string, error)
	// serve blocks until the listener fails or ctx is done; nil when
	// closed on purpose.
	serve(ctx context.Context) error
	// stopAccepting closes the listener and every accepted connection.
	stopAccepting()
	// dial opens a connection to addr for oc, asynchronously: the driver
	// calls n.outOpened on success and oc.p.lost on failure.
	dial(addr string, oc *outConn)
	// stopDialing closes every dialed connection.
	stopDialing()
}

// clock is where the node reads the time and arms its timers. nil in a
// Node means the wall clock (time.Now, time.AfterFunc), read without an
// interface call on the hot paths.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) timer
}

// timer is a timer armed on a clock; Stop reports whether it stopped it
// before it fired.
type timer interface{ Stop() bool }

// now reads the node's clock.
func (n *Node) now() time.Time {
	if n.clk == nil {
		return time.Now()
	}
	return n.clk.Now()
}

// afterFunc arms f on the node's clock.
func (n *Node) afterFunc(d time.Duration, f func()) timer {
	if n.clk == nil {
		return time.AfterFunc(d, f)
	}
	return n.clk.AfterFunc(d, f)
}

// jitter returns a random number in [0, 1) for backoff jitter, from the
// node's seeded source if it has one.
func (n *Node) jitter() float64 {
	if n.rnd == nil {
		return rand.Float64()
	}
	n.rndMu.Lock()
	defer n.rndMu.Unlock()
	return n.rnd.Float64()
}

// driverSlot holds the driver while the node serves.
type driverSlot struct{ d driver }

// newDriver makes the driver for one Serve.
func (n *Node) newDriver() driver {
	if n.mkDriver != nil {
		return n.mkDriver(n)
	}
	return &gnetDriver{n: n}
}

// dial asks the driver for a connection for p's epoch. p.mu is held, so
// the driver reports back asynchronously (outOpened, dialFailed).
func (n *Node) dial(p *peer, epoch uint64) {
	oc := &outConn{p: p, epoch: epoch}
	if s := n.drv.Load(); s != nil {
		s.d.dial(p.addr, oc)
		return
	}
	n.offNetwork(func() { n.dialFailed(oc, ErrClosed) })
}

// dialFailed ends oc's epoch: the driver could not connect.
func (n *Node) dialFailed(oc *outConn, err error) {
	n.log.Debug("remote: dial failed", "peer", oc.p.addr, "err", err)
	oc.p.lost(oc.epoch, fmt.Errorf("%w: %s: dial: %w", ErrNodeDown, oc.p.addr, err))
}
