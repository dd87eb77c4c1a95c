package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// The node accepts connections itself, with a net.Listener, and hands each
// admitted one to a gnet engine that only reads and writes. gnet's own
// acceptor stops its whole engine on any accept error but a few (EMFILE
// included: gnet v2.10.0, acceptor_unix.go returns ErrAcceptSocket, which
// ends the event loop and shuts the engine down), so one moment out of
// file descriptors would drop every peer. Here such errors only slow
// accepting down, as net/http's Server does.

// Accept backoff after a failed accept (as net/http's Server.Serve), and
// how long shedding a connection waits for one.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
	shedWait       = 10 * time.Millisecond
)

// listen opens the node's listener (tests replace it to inject errors).
var listen = func(addr string) (net.Listener, error) {
	// Go's listeners set SO_REUSEADDR: a restarted node rebinds its
	// address although the connections it closed are in TIME_WAIT.
	return net.Listen("tcp", addr)
}

// temporaryAccept reports whether an accept error is worth retrying after a
// pause: a resource exhausted for now (descriptors, buffers, memory) or a
// connection that went away before it was accepted.
func temporaryAccept(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
		syscall.EPROTO, syscall.EPERM, syscall.ETIMEDOUT:
		return true
	}
	return false
}

// outOfFiles reports whether err is EMFILE or ENFILE.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// acceptLoop accepts connections on ln until it is closed, handing each one
// admitted to srv. It returns nil once ln is closed, or the error of an
// accept that cannot be retried.
func (n *Node) acceptLoop(ctx context.Context, ln net.Listener, srv *gnet.Client) error {
	// A spare descriptor, let go when the process runs out so the
	// connection waiting in the backlog can be accepted and closed at once
	// (its client learns that now instead of hanging), then taken again.
	spare, _ := os.Open(os.DevNull)
	defer func() {
		if spare != nil {
			_ = spare.Close()
		}
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if !temporaryAccept(err) {
				return fmt.Errorf("accept: %w", err)
			}
			n.stats.acceptErrors.Add(1)
			if outOfFiles(err) {
				spare = n.shed(ln, spare)
			}
			if delay == 0 {
				delay = acceptDelayMin
			} else {
				delay = min(2*delay, acceptDelayMax)
			}
			n.log.Warn("remote: accept failed; retrying", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		delay = 0
		if spare == nil {
			spare, _ = os.Open(os.DevNull)
		}
		n.admit(nc, srv)
	}
}

// shed lets the spare descriptor go to accept the connection waiting, if
// there is one, and closes it at once, then takes the spare again (it
// returns it, nil if it could not).
func (n *Node) shed(ln net.Listener, spare *os.File) *os.File {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if spare == nil || !ok {
		return spare
	}
	_ = spare.Close()
	// Barely waiting: an accept fails with EMFILE whether or not a
	// connection is waiting. (A deadline already past would not even try.)
	_ = dl.SetDeadline(time.Now().Add(shedWait))
	if c, err := ln.Accept(); err == nil {
		n.stats.connsRefused.Add(1)
		_ = c.Close()
	}
	_ = dl.SetDeadline(time.Time{})
	spare, _ = os.Open(os.DevNull)
	return spare
}

// hostOf names the source of a remote address for the per-address cap and
// for logs (whose rate limit keys on it): its IPv4 address, or the /64 of
// its IPv6 address, which one host commonly holds whole.
func hostOf(addr net.Addr) string {
	var ip net.IP
	if a, ok := addr.(*net.TCPAddr); ok {
		ip = a.IP
	} else if h, _, err := net.SplitHostPort(addr.String()); err == nil {
		ip = net.ParseIP(h)
	}
	switch {
	case ip == nil:
		return addr.String()
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// admit hands an accepted connection to the engine if the caps on
// unauthenticated connections allow it, and closes it otherwise.
func (n *Node) admit(nc net.Conn, srv *gnet.Client) {
	ip := hostOf(nc.RemoteAddr())
	pa := n.admitFrom(ip)
	if pa == nil {
		_ = nc.Close()
		return
	}
	// EnrollContext gives the engine a duplicate of the socket, closes nc
	// and returns once OnOpen has run.
	if _, err := srv.EnrollContext(nc, pa); err != nil {
		pa.authenticated()
		n.stats.connsRefused.Add(1)
		if outOfFiles(err) {
			n.stats.acceptErrors.Add(1)
		}
		n.log.Warn("remote: refusing connection: cannot hand it to the network loop", "remote_addr", ip, "err", err)
		_ = nc.Close()
	}
}

// admitFrom gives a connection accepted from ip (as hostOf names it) its
// place among the unauthenticated ones, or refuses it (nil: the driver
// closes it) if the caps do not allow it.
func (n *Node) admitFrom(ip string) *preAuth {
	if why := n.pending.admit(ip, n.cfg.MaxPending, n.cfg.MaxPendingPerIP); why != "" {
		n.stats.connsRefused.Add(1)
		n.log.Warn("remote: refusing connection: "+why, "remote_addr", ip,
			"max_pending", n.cfg.MaxPending, "max_pending_per_ip", n.cfg.MaxPendingPerIP)
		return nil
	}
	return &preAuth{n: n, ip: ip}
}

// preAuth is an accepted connection's place among the unauthenticated
// ones, and its handshake deadline.
type preAuth struct {
	n     *Node
	ip    string
	done  bool  // the place is given back (loop goroutine or timer, under n.pending.mu)
	timer timer // closes the connection at the deadline
}

// start arms the handshake deadline for c.
func (pa *preAuth) start(c netConn) {
	pa.n.pending.mu.Lock()
	defer pa.n.pending.mu.Unlock()
	if pa.done {
		return
	}
	pa.timer = pa.n.afterFunc(pa.n.cfg.HandshakeTimeout, func() {
		if pa.authenticated() {
			pa.n.stats.handshakeTimeouts.Add(1)
			pa.n.log.Warn("remote: closing connection: no handshake and hello within the handshake timeout",
				"remote_addr", pa.ip, "timeout", pa.n.cfg.HandshakeTimeout)
			_ = c.Close()
		}
	})
}

// authenticated gives the place back (the Hello was accepted, the
// connection closed, or its time is up), once: it reports whether this
// call did.
func (pa *preAuth) authenticated() bool {
	p := &pa.n.pending
	p.mu.Lock()
	if pa.done {
		p.mu.Unlock()
		return false
	}
	pa.done = true
	if pa.timer != nil {
		pa.timer.Stop()
	}
	p.releaseLocked(pa.ip)
	p.mu.Unlock()
	return true
}
