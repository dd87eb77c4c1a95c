package remote

import (
	"context"
	mrand "math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/memnet"
	"github.com/actord/actord/internal/simhook"
)

// The in-memory driver: a node on a memnet.Network, on its virtual time,
// with no goroutine of its own. Everything it does runs from the
// network's Step, so nodes on one network, with their systems in manual
// mode, run in one goroutine and a seed decides the whole run. It is here
// and not in a test file so that a simulator package can use it (through
// newMemNode) once remote exposes it to it.

// init hands the in-memory node to the simulator (package sim).
func init() {
	simhook.Remote = func(sys *actor.System, cfg Config, nw *memnet.Network, clk simhook.Clock) (*Node, func() error, func()) {
		n := newMemNode(sys, cfg, nw, hookClock{clk})
		return n, n.startMem, n.stopMem
	}
}

// hookClock is the simulator's clock as a node's.
type hookClock struct{ simhook.Clock }

func (c hookClock) AfterFunc(d time.Duration, f func()) timer { return c.Clock.AfterFunc(d, f) }

// newMemNode makes a node for sys that runs on nw, listening at
// cfg.Listen ("ip:port"): its clock is clk (nil: the network's) and its
// randomness (backoff jitter, incarnation, handshake and sturdy-ref keys)
// comes from the network's seed. Give it cfg.PrivateKey for a reproducible
// identity. Start it with startMem, not Serve.
func newMemNode(sys *actor.System, cfg Config, nw *memnet.Network, clk clock) *Node {
	n := New(sys, cfg)
	if clk == nil {
		clk = memClock{nw}
	}
	n.clk = clk
	if n.ev != nil {
		n.ev.now = clk.Now
	}
	n.rnd = mrand.New(mrand.NewPCG(nw.Rand(), nw.Rand()))
	n.inc = nw.Rand()
	if n.sec != nil {
		var seed [32]byte
		for i := range 4 {
			v := nw.Rand()
			for j := range 8 {
				seed[8*i+j] = byte(v >> (8 * j))
			}
		}
		n.sec.random = mrand.NewChaCha8(seed)
		seed[0] ^= 1
		n.sturdyRandom = mrand.NewChaCha8(seed)
	}
	host, _, _ := net.SplitHostPort(n.cfg.Listen)
	n.mkDriver = func(n *Node) driver { return &memDriver{n: n, nw: nw, host: host} }
	return n
}

// startMem starts a node made by newMemNode: it listens and arms its
// heartbeat on the network's clock. It returns at once.
func (n *Node) startMem() error {
	if n.secErr != nil {
		return n.secErr
	}
	d := n.newDriver()
	addr, err := d.listen(n.cfg.Listen)
	if err != nil {
		return err
	}
	n.drv.Store(&driverSlot{d})
	n.listening(addr)
	return nil
}

// stopMem stops a node started with startMem for good, as Serve does when
// its context ends; the closes it causes run on the network's next steps.
func (n *Node) stopMem() {
	s := n.drv.Load()
	if s == nil {
		return
	}
	s.d.stopAccepting()
	n.closing.Store(true)
	n.drv.Store(nil)
	n.shutdownPeers()
	n.ev.close()
	s.d.stopDialing()
}

// memClock is a memnet.Network as the node's clock.
type memClock struct{ *memnet.Network }

func (c memClock) AfterFunc(d time.Duration, f func()) timer { return c.Network.AfterFunc(d, f) }

// memDriver is the in-memory driver of one node.
type memDriver struct {
	n      *Node
	nw     *memnet.Network
	host   string
	ln     *memnet.Listener
	hb     timer
	tick   func() // the heartbeat's, bound once
	seq    uint64
	dialed []*memnet.Conn // open, in the order they opened
}

func (d *memDriver) listen(addr string) (string, error) {
	ln, err := d.nw.Listen(addr, d.accept)
	if err != nil {
		return "", err
	}
	d.ln = ln
	d.armHeartbeat()
	return addr, nil
}

// armHeartbeat runs Node.heartbeat every HeartbeatInterval of virtual time.
func (d *memDriver) armHeartbeat() {
	if d.tick == nil {
		d.tick = func() {
			d.seq++
			d.n.heartbeat(d.n.now(), d.seq)
			d.armHeartbeat()
		}
	}
	d.hb = d.n.afterFunc(d.n.cfg.HeartbeatInterval, d.tick)
}

// serve is not used: startMem returns at once.
func (d *memDriver) serve(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (d *memDriver) stopAccepting() {
	if d.hb != nil {
		d.hb.Stop()
	}
	d.ln.Close()
}

func (d *memDriver) stopDialing() {
	for _, c := range slices.Clone(d.dialed) {
		_ = c.Close()
	}
}

func (d *memDriver) accept(c *memnet.Conn) memnet.Handler {
	pa := d.n.admitFrom(hostOf(c.RemoteAddr()))
	if pa == nil {
		return nil
	}
	ic := d.n.inOpened(newMconn(c), pa)
	if ic == nil {
		return nil
	}
	return &memIn{n: d.n, ic: ic}
}

func (d *memDriver) dial(addr string, oc *outConn) {
	d.nw.Dial(d.host, addr, d.n.cfg.DialTimeout, &memOut{d: d, oc: oc}, func(err error) { d.n.dialFailed(oc, err) })
}

// mconn is a memnet connection as a netConn.
type mconn struct {
	*memnet.Conn
	// the completions of asyncWrite not run yet, oldest first: memnet
	// copies what is written at once, so each is due at the next step
	// (Conn.Later, with later, bound once: a write allocates nothing)
	pending []memWrite
	head    int // pending[head] is the oldest
	later   func()
}

type memWrite struct {
	b    []byte
	done func(c netConn, b []byte, err error)
}

func newMconn(c *memnet.Conn) *mconn {
	mc := &mconn{Conn: c}
	mc.later = mc.complete
	return mc
}

func (c *mconn) asyncWrite(b []byte, done func(c netConn, b []byte, err error)) error {
	if _, err := c.Write(b); err != nil {
		return err
	}
	c.pending = append(c.pending, memWrite{b, done})
	c.Later(c.later)
	return nil
}

// complete runs the oldest pending completion: the writes completed in
// the order they were made.
func (c *mconn) complete() {
	w := c.pending[c.head]
	c.pending[c.head] = memWrite{}
	if c.head++; c.head == len(c.pending) {
		c.pending, c.head = c.pending[:0], 0
	}
	w.done(c, w.b, nil)
}

func (c *mconn) tryWrite([]byte) int { return 0 } // everything goes through asyncWrite
func (c *mconn) direct() bool        { return false }
func (c *mconn) release()            {}

// memIn handles an accepted connection.
type memIn struct {
	n  *Node
	ic *inConn
}

func (h *memIn) OnOpen(*memnet.Conn) {}

func (h *memIn) OnData(c *memnet.Conn) {
	if h.n.inTraffic(h.ic) != nil {
		_ = c.Close()
	}
}

func (h *memIn) OnClose(_ *memnet.Conn, err error) { h.n.inClosed(h.ic, err) }

// memOut handles a dialed connection.
type memOut struct {
	d  *memDriver
	oc *outConn
}

func (h *memOut) OnOpen(c *memnet.Conn) {
	h.d.dialed = append(h.d.dialed, c)
	first, ok := h.d.n.outOpened(newMconn(c), h.oc)
	if !ok {
		_ = c.Close()
		return
	}
	_, _ = c.Write(first)
}

func (h *memOut) OnData(c *memnet.Conn) {
	if h.d.n.outTraffic(h.oc) != nil {
		_ = c.Close()
	}
}

func (h *memOut) OnClose(c *memnet.Conn, err error) {
	if i := slices.Index(h.d.dialed, c); i >= 0 {
		h.d.dialed = slices.Delete(h.d.dialed, i, i+1)
	}
	h.d.n.outClosed(h.oc, err)
}
