package remote

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// The gnet driver: the node's default transport. Two gnet engines read and
// write, one for the connections this node dials and one for those it
// accepts (itself, with a net.Listener: acceptLoop); a dialed connection
// also gets a descriptor of the node's own, for the direct writes of
// flushLocked.

// gnetDriver is the driver of one Serve.
type gnetDriver struct {
	n        *Node
	cli, srv *gnet.Client
	ln       net.Listener

	// Dials in flight: stopDialing waits for them before stopping the
	// client engine, since gnet's Enroll waits for ever on a connection
	// that an engine stopping meanwhile never registers (a leaked
	// goroutine). cancelDials ends their connects at once.
	dialMu      sync.Mutex
	dialsOff    bool
	dials       sync.WaitGroup
	dialCtx     context.Context
	cancelDials context.CancelFunc
}

func (g *gnetDriver) listen(addr string) (string, error) {
	n := g.n
	cli, err := gnet.NewClient(&clientHandler{n: n}, gnet.WithNumEventLoop(n.cfg.EventLoops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(gnetLogger{n.log}))
	if err != nil {
		return "", fmt.Errorf("gnet client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return "", fmt.Errorf("gnet client: %w", err)
	}
	// Accepted connections are served by a second engine: the node
	// accepts them itself (acceptLoop), so that an accept error does not
	// stop the engine and drop every peer.
	srv, err := gnet.NewClient(&serverHandler{n: n}, gnet.WithNumEventLoop(n.cfg.EventLoops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(gnetLogger{n.log}))
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		_ = cli.Stop()
		return "", fmt.Errorf("gnet server: %w", err)
	}
	ln, err := listen(addr)
	if err != nil {
		_ = srv.Stop()
		_ = cli.Stop()
		return "", fmt.Errorf("listen: %w", err)
	}
	g.cli, g.srv, g.ln = cli, srv, ln
	g.dialCtx, g.cancelDials = context.WithCancel(context.Background())
	return ln.Addr().String(), nil
}

func (g *gnetDriver) serve(ctx context.Context) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
		}
		_ = g.ln.Close() // ends acceptLoop
	}()
	err := g.n.acceptLoop(ctx, g.ln, g.srv)
	close(done)
	wg.Wait()
	return err
}

func (g *gnetDriver) stopAccepting() {
	_ = g.ln.Close()
	_ = g.srv.Stop() // accepted connections close
}

func (g *gnetDriver) stopDialing() {
	g.dialMu.Lock()
	g.dialsOff = true
	g.dialMu.Unlock()
	g.cancelDials()
	g.dials.Wait()
	_ = g.cli.Stop()
}

// dial connects on a goroutine of its own; once dialing stopped, the dial
// fails (asynchronously: the caller holds the peer's lock).
func (g *gnetDriver) dial(addr string, oc *outConn) {
	g.dialMu.Lock()
	defer g.dialMu.Unlock()
	if g.dialsOff {
		go g.n.dialFailed(oc, net.ErrClosed)
		return
	}
	g.dials.Add(1)
	go func() {
		defer g.dials.Done()
		g.dialNow(addr, oc)
	}()
}

// dialNow connects to addr and enrolls the connection in the client engine.
func (g *gnetDriver) dialNow(addr string, oc *outConn) {
	ctx, cancel := context.WithTimeout(g.dialCtx, g.n.cfg.DialTimeout)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	cancel()
	if err == nil {
		// Keep a descriptor of our own for direct writes (flushLocked);
		// gnet gets another for reading, batched writes and closing.
		if oc.wc, err = dupConn(nc); err != nil {
			_ = nc.Close()
		}
	}
	if err == nil {
		// Enroll hands a duplicate of the socket to a gnet loop, closes
		// nc, and returns once OnOpen has run.
		if _, err = g.cli.EnrollContext(nc, oc); err != nil {
			_ = oc.wc.Close()
		}
	}
	if err != nil {
		g.n.dialFailed(oc, err)
	}
}

// gconn is a gnet connection as a netConn.
type gconn struct {
	gnet.Conn
	wc      net.Conn              // the node's own descriptor (dialed connections only), for direct writes
	wrc     syscall.RawConn       // wc's raw descriptor
	writeFd func(fd uintptr) bool // g.writeSome, bound once
	wbuf    []byte                // what tryWrite is writing
	wn      int                   // how much of it is written
}

func (g *gconn) asyncWrite(b []byte, done func(c netConn, b []byte, err error)) error {
	return g.Conn.AsyncWrite(b, func(_ gnet.Conn, err error) error {
		done(g, b, err)
		return nil
	})
}

func (g *gconn) direct() bool { return g.wrc != nil }

func (g *gconn) release() {
	if g.wc != nil {
		_ = g.wc.Close() // the socket closes once gnet's descriptor and ours both are
	}
}

// tryWrite writes as much of b as the socket takes now, without waiting,
// through the node's own descriptor (the buffer and count live in g, so no
// closure is allocated per write).
func (g *gconn) tryWrite(b []byte) int {
	if g.wrc == nil {
		return 0
	}
	if g.writeFd == nil {
		g.writeFd = g.writeSome
	}
	g.wbuf, g.wn = b, 0
	_ = g.wrc.Write(g.writeFd)
	n := g.wn
	g.wbuf = nil
	return n
}

// writeSome is tryWrite's raw-descriptor callback.
func (g *gconn) writeSome(fd uintptr) bool {
	for g.wn < len(g.wbuf) {
		k, err := syscall.Write(int(fd), g.wbuf[g.wn:])
		if k > 0 {
			g.wn += k
		}
		if err != nil && err != syscall.EINTR {
			break // EAGAIN: the socket is full; the rest goes through gnet
		}
		if k <= 0 && err == nil {
			break
		}
	}
	return true // never wait for writability here
}

// clientHandler serves the connections this node dials.
type clientHandler struct {
	gnet.BuiltinEventEngine
	n *Node
}

func (h *clientHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	oc, ok := c.Context().(*outConn)
	if !ok {
		return nil, gnet.Close
	}
	gc := &gconn{Conn: c, wc: oc.wc}
	rc, err := oc.wc.(syscall.Conn).SyscallConn()
	if err != nil {
		_ = oc.wc.Close()
		return nil, gnet.Close
	}
	gc.wrc = rc
	first, ok := h.n.outOpened(gc, oc)
	if !ok {
		return nil, gnet.Close
	}
	return first, gnet.None
}

func (h *clientHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	if oc, ok := c.Context().(*outConn); ok {
		h.n.outClosed(oc, err)
	}
	return gnet.None
}

func (h *clientHandler) OnTraffic(c gnet.Conn) gnet.Action {
	if h.n.outTraffic(c.Context().(*outConn)) != nil {
		return gnet.Close
	}
	return gnet.None
}

// serverHandler serves accepted connections.
type serverHandler struct {
	gnet.BuiltinEventEngine
	n *Node
}

func (h *serverHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	pa, ok := c.Context().(*preAuth)
	if !ok {
		return nil, gnet.Close
	}
	ic := h.n.inOpened(&gconn{Conn: c}, pa)
	if ic == nil {
		return nil, gnet.Close
	}
	c.SetContext(ic)
	return nil, gnet.None
}

func (h *serverHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	if ic, ok := c.Context().(*inConn); ok {
		h.n.inClosed(ic, err)
	}
	return gnet.None
}

func (h *serverHandler) OnTraffic(c gnet.Conn) gnet.Action {
	if h.n.inTraffic(c.Context().(*inConn)) != nil {
		return gnet.Close
	}
	return gnet.None
}

// dupConn returns a second net.Conn on c's socket: a duplicated descriptor,
// non-blocking and registered with Go's poller.
func dupConn(c net.Conn) (net.Conn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("remote: cannot duplicate a %T", c)
	}
	f, err := tc.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FileConn(f)
}

// gnetLogger sends gnet's own logs to slog, its chatter at debug level.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
