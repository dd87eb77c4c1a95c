package remote

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// The connections this node dials: gnet's handler for them, which reads
// the handshake and what comes back on them (Welcome, Pong, Ack, Goodbye).

// clientHandler serves the connections this node dials.
type clientHandler struct {
	gnet.BuiltinEventEngine
	n *Node
}

// outConn is the state of a dialed connection.
type outConn struct {
	p     *peer
	epoch uint64
	wc    net.Conn
	sess  *session
	fr    *frameReader
	f     frame
	up    bool
	err   error // why this node closed it, if it did (OnTraffic)
}

func (h *clientHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	oc, ok := c.Context().(*outConn)
	if !ok {
		return nil, gnet.Close
	}
	oc.fr = newFrameReader(h.n, oc.p)
	hs, err := h.n.sec.handshake(true)
	var first []byte
	if err == nil {
		oc.sess = newSession(hs, maxControlFrame) // only Welcome, Pong and Goodbye come back
		first, err = oc.sess.hello()
	}
	if err != nil {
		h.n.log.Error("remote: cannot start a handshake", "err", err)
		_ = oc.wc.Close()
		return nil, gnet.Close
	}
	if !oc.p.opened(c, oc.epoch, oc.wc) {
		_ = oc.wc.Close()
		return nil, gnet.Close
	}
	oc.up = true
	h.n.stats.bytesOut.Add(uint64(len(first)))
	return first, gnet.None
}

func (h *clientHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	oc, ok := c.Context().(*outConn)
	if !ok {
		return gnet.None
	}
	if oc.fr != nil {
		oc.fr.release()
	}
	if oc.up {
		h.n.stats.closed.Add(1)
	}
	cause := oc.err // this side's reason first (a cluster key mismatch, say)
	if cause == nil {
		cause = err
	}
	if cause == nil {
		cause = errors.New("connection closed")
	}
	if oc.sess != nil && !oc.sess.ready() {
		cause = fmt.Errorf("during the secure handshake: %w", cause)
	}
	oc.p.lost(oc.epoch, fmt.Errorf("%w: %s: %w", ErrNodeDown, oc.p.name(), cause))
	return gnet.None
}

func (h *clientHandler) OnTraffic(c gnet.Conn) gnet.Action {
	n := h.n
	oc := c.Context().(*outConn)
	oc.p.lastHeard.Store(time.Now().UnixNano())
	buffered := c.InboundBuffered()
	wasReady := oc.sess.ready()
	last, err := oc.sess.readRecords(c, func(msg []byte) ([]byte, error) { return oc.sess.handshakeStep(true, msg) })
	n.stats.bytesIn.Add(uint64(buffered - c.InboundBuffered()))
	if err == nil && !wasReady && oc.sess.ready() {
		oc.p.secured(c, oc.epoch, last, oc.sess.tx, oc.sess.peerKey)
	}
	if err == nil && oc.sess.ready() {
		err = oc.readFrames(n)
	}
	if err != nil {
		if !oc.sess.ready() && len(last) > 0 {
			_, _ = c.Write(last) // tells the other node why (keyAlert)
		}
		oc.err = err
		n.stats.badFrames.Add(1)
		n.log.Warn("remote: closing connection", "peer", oc.p.name(), "reason", err)
		return gnet.Close
	}
	return gnet.None
}

// readFrames handles the frames the peer sent on a dialed connection.
func (oc *outConn) readFrames(n *Node) error {
	defer oc.sess.compact()
	return readFrames(oc.sess, maxControlFrame, func(body []byte) error {
		n.stats.framesIn.Add(1)
		if err := oc.fr.parse(body, &oc.f); err != nil {
			return err
		}
		switch oc.f.kind {
		case fWelcome:
			if oc.f.version != protocolVersion {
				return fmt.Errorf("%w: %s speaks %d", ErrVersion, oc.f.name, oc.f.version)
			}
			if err := n.authorize(oc.f.name, oc.sess.peerKey); err != nil {
				return err
			}
			oc.p.welcomed(oc.f.name)
		case fPong:
		case fAck:
			return oc.p.acked(oc.epoch, oc.f.seq)
		case fGoodbye:
			return fmt.Errorf("remote: %s said goodbye: %v", oc.p.name(), decodeError(oc.p.name(), oc.f.code, oc.f.msg))
		default:
			return bad(fmt.Sprintf("unexpected frame kind %d on a dialed connection", oc.f.kind), nil)
		}
		return nil
	})
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
