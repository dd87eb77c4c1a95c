// Package memnet is an in-memory network on virtual time, for running nodes
// of a cluster in one goroutine, reproducibly: connections are byte pipes
// between hosts, delivered in order (as TCP) after a latency drawn from a
// seeded source, and partitions, connection resets and dial failures are
// operations of the test. Nothing happens until the driver calls Step or
// RunFor; events due at the same virtual time run in an order decided by
// the seed. The same seed and the same calls give the same run.
//
// Addresses are "host:port" strings with an IP as host (10.0.0.1:7000),
// so that code which keys on the source host finds one.
package memnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a connection closes or a dial fails with.
var (
	ErrRefused = errors.New("memnet: connection refused")
	ErrTimeout = errors.New("memnet: dial timed out")
	ErrReset   = errors.New("memnet: connection reset")
	ErrClosed  = errors.New("memnet: connection closed")
	ErrInUse   = errors.New("memnet: address in use")
	ErrDown    = errors.New("memnet: host is down")

	errShort = errors.New("memnet: fewer bytes buffered than wanted")
)

// Handler receives a connection's events, on the goroutine that steps
// the network.
type Handler interface {
	// OnOpen: the connection is up (a dialed one; an accepted one is
	// handed to the listener's accept function instead).
	OnOpen(c *Conn)
	// OnData: bytes arrived; read them with Peek and Discard (what is
	// not discarded stays for the next call).
	OnData(c *Conn)
	// OnClose: the connection is closed, by either side (err says why),
	// once.
	OnClose(c *Conn, err error)
}

// Network is the simulated network and its clock. Its methods are safe for
// concurrent use; events run without its lock held, on the goroutine that
// calls Step.
type Network struct {
	mu        sync.Mutex
	now       time.Time
	start     time.Time
	since     atomic.Int64 // now - start, for Now without the lock (read per loop step)
	seq       uint64
	q         events
	free      []*event // events that ran, for reuse (never a Timer's)
	bufs      [][]byte // segment buffers delivered, for reuse
	nblocked  int      // entries in blocked: none, no lookup per segment
	rng       *rand.Rand
	lat       [2]time.Duration // latency range [min, max]
	ls        map[string]*listener
	blocked   map[[2]string]bool             // host pairs (from, to) that drop everything
	port      map[string]int                 // next ephemeral port per host
	linkLat   map[[2]string][2]time.Duration // latency ranges by (from, to), overriding lat
	gen       map[string]uint64              // incremented by each Crash of the host
	down      map[string]bool                // hosts crashed and not restarted
	ends      []*Conn                        // connection ends, in the order they opened (pruneLocked)
	pruneAt   int                            // len(ends) at which to prune next
	trace     func(time.Time, string)
	traceData func(at time.Time, c *Conn, n int)
}

// New returns a network at virtual time start whose latencies and
// simultaneous events are decided by seed.
func New(seed uint64, start time.Time) *Network {
	return &Network{
		now: start, start: start, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		lat: [2]time.Duration{time.Millisecond, 5 * time.Millisecond},
		ls:  map[string]*listener{}, blocked: map[[2]string]bool{}, port: map[string]int{},
		linkLat: map[[2]string][2]time.Duration{}, gen: map[string]uint64{}, down: map[string]bool{},
	}
}

// SetLatency sets the range one-way latencies are drawn from (uniformly).
func (n *Network) SetLatency(lo, hi time.Duration) {
	n.mu.Lock()
	n.lat = [2]time.Duration{lo, max(lo, hi)}
	n.mu.Unlock()
}

// TraceData, if set, receives the data deliveries instead of Trace (one
// call per delivery, with no formatting: the busiest event of a run): the
// time, the sending end (its LocalAddr to its RemoteAddr, and its Tag for
// the tracer's own use) and the bytes.
func (n *Network) TraceData(f func(at time.Time, from *Conn, bytes int)) {
	n.mu.Lock()
	n.traceData = f
	n.mu.Unlock()
}

// SetLinkLatency sets the range of the one-way latency from host from to
// host to, overriding SetLatency's for that direction (a slow link, or a
// delay spike until ClearLinkLatency). Segments stay in order: a segment
// never overtakes one sent before it on its connection.
func (n *Network) SetLinkLatency(from, to string, lo, hi time.Duration) {
	n.mu.Lock()
	n.linkLat[[2]string{from, to}] = [2]time.Duration{lo, max(lo, hi)}
	n.tracefLocked("latency %s->%s %v-%v", from, to, lo, max(lo, hi))
	n.mu.Unlock()
}

// ClearLinkLatency ends SetLinkLatency's override for from->to.
func (n *Network) ClearLinkLatency(from, to string) {
	n.mu.Lock()
	delete(n.linkLat, [2]string{from, to})
	n.tracefLocked("latency %s->%s default", from, to)
	n.mu.Unlock()
}

// Trace, if set, receives one line per network event (delivery, open,
// close), in the order they run.
func (n *Network) Trace(f func(at time.Time, line string)) {
	n.mu.Lock()
	n.trace = f
	n.mu.Unlock()
}

// Rand returns a number from the network's seeded source, for callers
// that must draw theirs from the same seed.
func (n *Network) Rand() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rng.Uint64()
}

// Now returns the virtual time.
func (n *Network) Now() time.Time {
	return n.start.Add(time.Duration(n.since.Load()))
}

// Since returns the virtual time since the network's start: Now without
// building a time.Time, for callers that only compare readings.
func (n *Network) Since() time.Duration { return time.Duration(n.since.Load()) }

func (n *Network) setNowLocked(t time.Time) {
	n.now = t
	n.since.Store(int64(t.Sub(n.start)))
}

// Timer is an event armed with AfterFunc.
type Timer struct {
	n  *Network
	ev *event
}

// Stop cancels the timer; it reports whether it did so before it ran.
func (t *Timer) Stop() bool {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	if t.ev.done {
		return false
	}
	t.ev.done = true
	return true
}

// AfterFunc runs f once d of virtual time has passed.
func (n *Network) AfterFunc(d time.Duration, f func()) *Timer {
	n.mu.Lock()
	defer n.mu.Unlock()
	ev := n.atLocked(n.now.Add(max(d, 0)), f)
	ev.timer = true
	return &Timer{n: n, ev: ev}
}

// atLocked schedules f at t. Ties are broken by a draw from the seed, then
// by the order of scheduling.
func (n *Network) atLocked(t time.Time, f func()) *event {
	ev := n.newEventLocked(t, evFunc)
	ev.f = f
	return ev
}

// newEventLocked schedules an event of kind k at t, its fields for the
// caller to fill: the network's own events (a delivery, a close, a Later)
// carry their data instead of a closure, so that the busiest path
// allocates nothing.
func (n *Network) newEventLocked(t time.Time, k evKind) *event {
	n.seq++
	var ev *event
	if i := len(n.free) - 1; i >= 0 {
		ev, n.free = n.free[i], n.free[:i]
	} else {
		ev = new(event)
	}
	ev.at, ev.tie, ev.seq, ev.kind = t.Sub(n.start), n.rng.Uint64(), n.seq, k
	n.q.push(ev)
	return ev
}

// recycleLocked keeps ev, popped from the queue, for reuse, unless a
// Timer may still look at it.
func (n *Network) recycleLocked(ev *event) {
	if ev.timer {
		return
	}
	*ev = event{}
	n.free = append(n.free, ev)
}

// bufLocked returns a buffer of length k, reused if one is free.
func (n *Network) bufLocked(k int) []byte {
	if i := len(n.bufs) - 1; i >= 0 && cap(n.bufs[i]) >= k {
		b := n.bufs[i][:k]
		n.bufs = n.bufs[:i]
		return b
	}
	return make([]byte, k, max(k, 512))
}

// putBufLocked keeps b, copied out of, for reuse: at most maxFreeBufs,
// none larger than maxFreeBuf (a long run's memory stays bounded whatever
// it sent once).
func (n *Network) putBufLocked(b []byte) {
	if b != nil && cap(b) <= maxFreeBuf && len(n.bufs) < maxFreeBufs {
		n.bufs = append(n.bufs, b[:0])
	}
}

const (
	maxFreeBufs = 256
	maxFreeBuf  = 64 << 10
	maxInBuf    = 1 << 20 // an input buffer kept once read
)

// Next returns the time of the next event, if there is one.
func (n *Network) Next() (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.q) > 0 && n.q[0].done {
		n.recycleLocked(n.q.pop())
	}
	if len(n.q) == 0 {
		return time.Time{}, false
	}
	return n.start.Add(n.q[0].at), true
}

// NextSince is Next as the time since the network's start.
func (n *Network) NextSince() (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.q) > 0 && n.q[0].done {
		n.recycleLocked(n.q.pop())
	}
	if len(n.q) == 0 {
		return 0, false
	}
	return n.q[0].at, true
}

// Step runs the next event, moving the clock to its time, and reports
// whether there was one.
func (n *Network) Step() bool {
	n.mu.Lock()
	for len(n.q) > 0 {
		ev := n.q.pop()
		if ev.done {
			n.recycleLocked(ev)
			continue
		}
		ev.done = true
		if at := n.start.Add(ev.at); at.After(n.now) {
			n.setNowLocked(at)
		}
		switch ev.kind {
		case evDeliver:
			dst := n.deliverLocked(ev.c, ev.seg)
			n.recycleLocked(ev)
			n.mu.Unlock()
			if dst != nil {
				dst.h.OnData(dst)
			}
		case evLater:
			c, f := ev.c, ev.f
			dead := n.deadLocked(c)
			n.recycleLocked(ev)
			n.mu.Unlock()
			if !dead {
				f()
			}
		case evClose:
			c, err := ev.c, ev.err
			dead := n.deadLocked(c)
			n.recycleLocked(ev)
			n.mu.Unlock()
			if !dead { // a crashed host's handlers run no more
				c.h.OnClose(c, err)
			}
		default:
			f := ev.f
			n.recycleLocked(ev)
			n.mu.Unlock()
			f()
		}
		return true
	}
	n.mu.Unlock()
	return false
}

// RunFor runs the events due within d and then moves the clock to now+d.
func (n *Network) RunFor(d time.Duration) {
	end := n.Now().Add(d)
	for {
		t, ok := n.Next()
		if !ok || t.After(end) {
			break
		}
		n.Step()
	}
	n.mu.Lock()
	if end.After(n.now) {
		n.setNowLocked(end)
	}
	n.mu.Unlock()
}

// AdvanceTo moves the clock to t, if t is later, without running events:
// for a driver that has events of its own (a loop's timers) due before the
// network's next.
func (n *Network) AdvanceTo(t time.Time) {
	n.mu.Lock()
	if t.After(n.now) {
		n.setNowLocked(t)
	}
	n.mu.Unlock()
}

// Partition drops everything between hosts a and b, both ways, until Heal:
// bytes in flight or written meanwhile wait (as TCP retransmits them), and
// dials between them time out.
func (n *Network) Partition(a, b string) {
	n.mu.Lock()
	n.blocked[[2]string{a, b}], n.blocked[[2]string{b, a}] = true, true
	n.nblocked = len(n.blocked)
	n.tracefLocked("partition %s %s", a, b)
	n.mu.Unlock()
}

// Blocked reports whether what host from sends to host to is dropped now
// (a partition or a Block), or to is down.
func (n *Network) Blocked(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked[[2]string{from, to}] || n.down[to]
}

// Block drops what host from sends to host to (one way) until Unblock:
// segments wait, as in a partition, and dials from from to to time out.
// What to sends to from still arrives.
func (n *Network) Block(from, to string) {
	n.mu.Lock()
	n.blocked[[2]string{from, to}] = true
	n.nblocked = len(n.blocked)
	n.tracefLocked("block %s->%s", from, to)
	n.mu.Unlock()
}

// Unblock ends Block(from, to); what waited is delivered, in order.
func (n *Network) Unblock(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, [2]string{from, to})
	n.nblocked = len(n.blocked)
	n.tracefLocked("unblock %s->%s", from, to)
	n.releaseParkedLocked()
}

// Heal ends a partition between a and b; what waited is delivered, in
// order, after a latency.
func (n *Network) Heal(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, [2]string{a, b})
	delete(n.blocked, [2]string{b, a})
	n.nblocked = len(n.blocked)
	n.tracefLocked("heal %s %s", a, b)
	n.releaseParkedLocked()
}

// releaseParkedLocked sends what partitions held on the links that are
// open now.
func (n *Network) releaseParkedLocked() {
	for _, end := range slices.Clone(n.ends) { // an end's own (accepted or closed) included
		if len(end.parked) > 0 && !n.blockedLocked(end.lhost, end.rhost) {
			parked := end.parked
			end.parked = nil
			for _, s := range parked {
				n.sendLocked(end, s)
			}
		}
	}
}

func (n *Network) sortedListenersLocked() []*listener {
	out := make([]*listener, 0, len(n.ls))
	for _, l := range n.ls {
		out = append(out, l)
	}
	// by address: the map's order is random
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].addr < out[j-1].addr; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (n *Network) tracefLocked(format string, a ...any) {
	if n.trace != nil {
		n.trace(n.now, fmt.Sprintf(format, a...))
	}
}

// Addr is a memnet address, "host:port".
type Addr string

// Network implements net.Addr.
func (Addr) Network() string { return "memnet" }

func (a Addr) String() string { return string(a) }

func (a Addr) host() string {
	h, _, err := net.SplitHostPort(string(a))
	if err != nil {
		return string(a)
	}
	return h
}

type listener struct {
	addr   string
	accept func(c *Conn) Handler
	conns  []*Conn // accepted, open, in order
	closed bool
}

// Listener accepts connections on an address.
type Listener struct {
	n *Network
	l *listener
}

// Listen accepts connections on addr: accept gets each new one and returns
// its handler (nil refuses it: it is closed).
func (n *Network) Listen(addr string, accept func(c *Conn) Handler) (*Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l, ok := n.ls[addr]; ok && !l.closed {
		return nil, fmt.Errorf("%w: %s", ErrInUse, addr)
	}
	if n.down[Addr(addr).host()] {
		return nil, fmt.Errorf("%w: %s", ErrDown, addr)
	}
	l := &listener{addr: addr, accept: accept}
	n.ls[addr] = l
	n.tracefLocked("listen %s", addr)
	return &Listener{n: n, l: l}, nil
}

// Close stops accepting and resets every connection accepted on l.
func (l *Listener) Close() {
	n := l.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.l.closed {
		return
	}
	l.l.closed = true
	if n.ls[l.l.addr] == l.l {
		delete(n.ls, l.l.addr)
	}
	for _, c := range l.l.conns {
		n.resetLocked(c, ErrClosed)
	}
	l.l.conns = nil
}

// Dial connects from host to addr, asynchronously: h.OnOpen runs once the
// connection is up, or fail with why not (refused, or timed out after
// timeout across a partition or to a crashed host). Nothing runs if from
// crashes meanwhile.
func (n *Network) Dial(from, addr string, timeout time.Duration, h Handler, fail func(error)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down[from] {
		return
	}
	n.port[from]++
	local := Addr(net.JoinHostPort(from, fmt.Sprint(40000+n.port[from])))
	to, g := Addr(addr).host(), n.gen[from]
	n.atLocked(n.now.Add(n.latencyLocked(from, to)), func() {
		n.mu.Lock()
		if n.gen[from] != g { // the dialer crashed
			n.mu.Unlock()
			return
		}
		l, ok := n.ls[addr]
		switch {
		case n.blocked[[2]string{from, to}] || n.down[to]:
			n.tracefLocked("dial %s->%s: no answer", local, addr)
			n.atLocked(n.now.Add(timeout), func() {
				if n.alive(from, g) {
					fail(fmt.Errorf("%w: %s", ErrTimeout, addr))
				}
			})
			n.mu.Unlock()
			return
		case !ok:
			n.tracefLocked("dial %s->%s: refused", local, addr)
			n.atLocked(n.now.Add(n.latencyLocked(to, from)), func() {
				if n.alive(from, g) {
					fail(fmt.Errorf("%w: %s", ErrRefused, addr))
				}
			})
			n.mu.Unlock()
			return
		}
		dc := &Conn{n: n, local: local, remote: Addr(addr), lhost: from, rhost: to, h: h, gen: g}
		ac := &Conn{n: n, local: Addr(addr), remote: local, lhost: to, rhost: from, peer: dc, gen: n.gen[to]}
		dc.peer = ac
		n.addEndsLocked(dc, ac)
		l.conns = append(l.conns, ac)
		ac.l = l
		n.tracefLocked("open %s->%s", local, addr)
		n.mu.Unlock()
		ah := l.accept(ac)
		n.mu.Lock()
		if ah == nil {
			ac.h = nopHandler{}
			n.resetLocked(ac, ErrRefused)
			n.mu.Unlock()
			return
		}
		ac.h = ah
		// The dialer learns of the connection after a latency, and before
		// anything the other end sends.
		openAt := n.now.Add(n.latencyLocked(to, from))
		ac.last = openAt
		n.atLocked(openAt, func() {
			n.mu.Lock()
			closed := dc.closed || n.deadLocked(dc)
			n.mu.Unlock()
			if !closed {
				h.OnOpen(dc)
			}
		})
		n.mu.Unlock()
	})
}

// alive reports whether host has not crashed since its generation g.
func (n *Network) alive(host string, g uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gen[host] == g && !n.down[host]
}

// Crash takes host down as a machine that loses power: its listeners and
// its ends of connections vanish without a word (their handlers hear
// nothing more), pending dials from it are dropped, and the other ends
// hear nothing either: what they send is lost, dials to the host time
// out, and a connection learns only by timing out or, once the host is
// back (Restart), from the reset its next segment meets there. Timers
// armed with AfterFunc are the caller's to drop (the network does not
// know whose they are).
func (n *Network) Crash(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tracefLocked("crash %s", host)
	n.vanishLocked(host, false)
	n.down[host] = true
}

// Kill ends every process on host as kill -9 does: the host's kernel
// resets its connections, so the other ends learn at once (ErrReset), and
// dials to it are refused until something listens again. The host stays
// up: a new process may listen at once.
func (n *Network) Kill(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tracefLocked("kill %s", host)
	n.vanishLocked(host, true)
}

// Restart brings a crashed host back, with nothing listening: what reaches
// its old connections is reset, dials are refused until a listener opens.
func (n *Network) Restart(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tracefLocked("restart %s", host)
	delete(n.down, host)
}

// vanishLocked drops host's listeners and its ends of connections without
// calling their handlers; with reset, the other ends are closed with
// ErrReset at once.
func (n *Network) vanishLocked(host string, reset bool) {
	n.gen[host]++
	for _, end := range n.ends {
		if end.lhost != host || end.vanished {
			continue
		}
		n.dropLocked(end) // closed or not: its handler hears nothing more
		if o := end.peer; reset && !o.closed {
			n.closeLocked(o, ErrReset)
		}
	}
	for _, l := range n.sortedListenersLocked() {
		if Addr(l.addr).host() == host {
			l.closed = true
			delete(n.ls, l.addr)
		}
	}
	n.pruneLocked()
}

// addEndsLocked records the two ends of a new connection.
func (n *Network) addEndsLocked(a, b *Conn) {
	n.ends = append(n.ends, a, b)
	if len(n.ends) >= n.pruneAt {
		n.pruneLocked()
		n.pruneAt = 2*len(n.ends) + 64
	}
}

// pruneLocked forgets the connections closed at both ends with nothing
// held for a heal.
func (n *Network) pruneLocked() {
	n.ends = slices.DeleteFunc(n.ends, func(c *Conn) bool {
		return c.closed && c.peer.closed && len(c.parked) == 0 && len(c.peer.parked) == 0
	})
}

// deadLocked reports whether c's host crashed since c opened: its handler
// must hear nothing more.
func (n *Network) deadLocked(c *Conn) bool {
	return c.vanished || n.gen[c.lhost] != c.gen
}

// dropLocked closes c's end without telling its handler.
func (n *Network) dropLocked(c *Conn) {
	c.closed, c.vanished, c.in, c.parked, c.early = true, true, nil, nil, nil
	if c.l != nil {
		c.l.conns = slices.DeleteFunc(c.l.conns, func(x *Conn) bool { return x == c })
	}
}

// Cut resets every open connection between hosts a and b (both ways), as
// a middlebox that drops them: both ends learn at once.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tracefLocked("cut %s %s", a, b)
	for _, c := range slices.Clone(n.ends) {
		ha, hb := c.lhost, c.rhost
		if !c.closed && ((ha == a && hb == b) || (ha == b && hb == a)) {
			n.closeLocked(c, ErrReset)
			c.parked = nil // what a reset connection held is lost
		}
	}
}

func (n *Network) latencyLocked(from, to string) time.Duration {
	lo, hi := n.lat[0], n.lat[1]
	if l, ok := n.linkLat[[2]string{from, to}]; ok {
		lo, hi = l[0], l[1]
	}
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}

// segment is bytes in flight, or a FIN (fin), the seq-th sent from its end.
type segment struct {
	b   []byte
	fin bool
	seq uint64
}

// Conn is one end of a connection.
type Conn struct {
	// Tag and Tagged are the data tracer's (Network.TraceData) to keep
	// what it derived from the connection, read and written only in its
	// callback (under the network's lock); the network never reads them,
	// nor clears them when the tracer changes.
	Tag    uint64
	Tagged bool

	n             *Network
	local, remote Addr
	peer          *Conn
	h             Handler
	l             *listener // the listener that accepted it (accepted ends)
	lhost, rhost  string    // local's and remote's hosts
	in            []byte    // arrived, not yet discarded
	inBase        []byte    // the start of in's buffer, reused once all is read
	last          time.Time // when the last segment sent from here arrives (FIFO)
	parked        []segment // segments held by a partition, in order
	sent          uint64    // segments sent from here
	expect        uint64    // the seq of the next segment to hand over here
	early         []segment // arrived here before one sent earlier (after a heal)
	closed        bool      // this end is closed (OnClose ran or is due)
	vanished      bool      // closed by a crash of its host, its handler not told
	gen           uint64    // its host's generation when it opened (see Crash)
}

// LocalAddr is this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the other end's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Peek returns the first k bytes that arrived, or an error if fewer did.
// Valid only until the next Discard or the end of the OnData call.
func (c *Conn) Peek(k int) ([]byte, error) {
	if k > len(c.in) {
		return nil, errShort // callers peek for a header that may not be whole yet: no formatting per call
	}
	return c.in[:k], nil
}

// Discard drops the first k bytes that arrived.
func (c *Conn) Discard(k int) (int, error) {
	k = min(k, len(c.in))
	c.in = c.in[k:]
	return k, nil
}

// InboundBuffered is how many bytes arrived and were not discarded.
func (c *Conn) InboundBuffered() int { return len(c.in) }

// OutboundBuffered is 0: a memnet connection buffers without bound.
func (c *Conn) OutboundBuffered() int { return 0 }

// Write sends a copy of b to the other end, after everything written
// before; it fails once this end is closed.
func (c *Conn) Write(b []byte) (int, error) {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	buf := n.bufLocked(len(b))
	copy(buf, b)
	n.sendLocked(c, segment{b: buf})
	return len(b), nil
}

// Close closes this end: its OnClose runs next, and the other end's after
// the bytes already sent have arrived.
func (c *Conn) Close() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	n.closeLocked(c, nil)
	n.sendLocked(c, segment{fin: true})
	return nil
}

// Later runs f as an event of c's, after the events already due now.
func (c *Conn) Later(f func()) {
	c.n.mu.Lock()
	ev := c.n.newEventLocked(c.n.now, evLater)
	ev.c, ev.f = c, f
	c.n.mu.Unlock()
}

// closeLocked closes c's end: its OnClose is due now.
func (n *Network) closeLocked(c *Conn, err error) {
	c.closed = true
	c.in = nil
	if c.l != nil {
		for i, x := range c.l.conns {
			if x == c {
				c.l.conns = append(c.l.conns[:i:i], c.l.conns[i+1:]...)
				break
			}
		}
	}
	n.tracefLocked("close %s->%s: %v", c.local, c.remote, err)
	ev := n.newEventLocked(n.now, evClose)
	ev.c, ev.err = c, err
}

// resetLocked closes both ends of c's connection at once, losing what is
// in flight.
func (n *Network) resetLocked(c *Conn, err error) {
	for _, end := range [2]*Conn{c, c.peer} {
		if !end.closed {
			n.closeLocked(end, err)
		}
	}
}

// sendLocked sends s from c to its peer: it arrives after a latency, not
// before what was sent earlier, unless a partition holds it.
func (n *Network) sendLocked(c *Conn, s segment) {
	if s.seq == 0 {
		c.sent++
		s.seq = c.sent
	}
	if n.blockedLocked(c.lhost, c.rhost) || len(c.parked) > 0 {
		c.park(s)
		return
	}
	at := n.now.Add(n.latencyLocked(c.lhost, c.rhost))
	if !at.After(c.last) {
		at = c.last.Add(time.Nanosecond) // FIFO, ties included
	}
	c.last = at
	ev := n.newEventLocked(at, evDeliver)
	ev.c, ev.seg = c, s
}

// deliverLocked hands s, sent from c, to the other end, and returns that
// end if its handler has data to read.
func (n *Network) deliverLocked(c *Conn, s segment) *Conn {
	dst := c.peer
	if dst.closed || n.deadLocked(dst) {
		// A segment reaching a host that crashed and came back meets
		// a reset, as TCP's does.
		if n.deadLocked(dst) && !n.down[c.rhost] && !c.closed {
			n.tracefLocked("reset %s->%s: host restarted", c.local, c.remote)
			n.closeLocked(c, ErrReset)
		}
		n.putBufLocked(s.b)
		return nil
	}
	if n.blockedLocked(c.lhost, c.rhost) || len(c.parked) > 0 { // partitioned in flight: wait for the heal
		c.park(s)
		return nil
	}
	// Handed over in the order sent, as TCP does.
	if len(dst.early) == 0 && s.seq == dst.expect+1 {
		dst.expect++
		if n.handLocked(c, dst, s) {
			return nil
		}
		return dst
	}
	dst.early = insertSeq(dst.early, s)
	data := false
	for len(dst.early) > 0 && dst.early[0].seq == dst.expect+1 {
		s := dst.early[0]
		dst.early = dst.early[1:]
		dst.expect++
		if n.handLocked(c, dst, s) {
			return nil
		}
		data = true
	}
	if data {
		return dst
	}
	return nil
}

// handLocked hands the next segment in order, s, from c to dst: its bytes
// join dst's input, or, a FIN, closes dst (and reports it).
func (n *Network) handLocked(c, dst *Conn, s segment) (fin bool) {
	if s.fin {
		n.tracefLocked("fin %s->%s", c.local, c.remote)
		n.closeLocked(dst, ErrClosed)
		return true
	}
	if n.traceData != nil {
		n.traceData(n.now, c, len(s.b))
	} else {
		n.tracefLocked("data %s->%s %d", c.local, c.remote, len(s.b))
	}
	if len(dst.in) == 0 {
		if cap(dst.inBase) > maxInBuf {
			dst.inBase = nil // a burst grew it: not kept for the connection's life
		}
		dst.in = dst.inBase[:0] // all read: start the buffer over
	}
	before := cap(dst.in)
	dst.in = append(dst.in, s.b...)
	if cap(dst.in) != before {
		dst.inBase = dst.in[:0]
	}
	n.putBufLocked(s.b)
	return false
}

// blockedLocked reports whether a partition drops what from sends to to.
func (n *Network) blockedLocked(from, to string) bool {
	return n.nblocked > 0 && n.blocked[[2]string{from, to}]
}

// park holds s until a heal, in the order sent.
func (c *Conn) park(s segment) { c.parked = insertSeq(c.parked, s) }

// insertSeq inserts s into q, kept sorted by seq.
func insertSeq(q []segment, s segment) []segment {
	i := len(q)
	for i > 0 && q[i-1].seq > s.seq {
		i--
	}
	q = append(q, segment{})
	copy(q[i+1:], q[i:])
	q[i] = s
	return q
}

type nopHandler struct{}

func (nopHandler) OnOpen(*Conn)         {}
func (nopHandler) OnData(*Conn)         {}
func (nopHandler) OnClose(*Conn, error) {}

// evKind says what an event does: run its function, or one of the
// network's own steps.
type evKind uint8

const (
	evFunc    evKind = iota // run f
	evDeliver               // a segment (seg) sent from c arrives
	evLater                 // run f unless c's host crashed (Conn.Later)
	evClose                 // c's OnClose(err), unless its host crashed
)

// event is one scheduled step; at is virtual time since the network's
// start.
type event struct {
	at    time.Duration
	tie   uint64
	seq   uint64
	kind  evKind
	done  bool
	timer bool // a Timer holds it: never reused
	f     func()
	c     *Conn
	seg   segment
	err   error
}

// events is a min-heap of events by (at, tie, seq): a total order, so the
// order of the runs does not depend on the heap's shape.
type events []*event

func (a *event) before(b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return a.seq < b.seq
}

func (q *events) push(ev *event) {
	h := append(*q, ev)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

func (q *events) pop() *event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = nil
	h = h[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
