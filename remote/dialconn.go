package remote

import (
	"errors"
	"fmt"
	"net"
)

// The connections this node dials: what the driver hands the node for
// them (outOpened, outTraffic, outClosed), which reads the handshake and
// what comes back on them (Welcome, Pong, Ack, Goodbye).

// outConn is the state of a dialed connection.
type outConn struct {
	p     *peer
	epoch uint64
	conn  netConn
	sess  *session
	fr    *frameReader
	f     frame
	up    bool
	err   error    // why this node closed it, if it did (outTraffic)
	wc    net.Conn // gnet driver: the node's own descriptor, for direct writes
}

// outOpened starts the secure handshake on a dialed connection c, up: it
// returns the first handshake message to write, or false if the
// connection is to be closed (the driver closes it and calls outClosed).
func (n *Node) outOpened(c netConn, oc *outConn) ([]byte, bool) {
	oc.conn = c
	oc.fr = newFrameReader(n, oc.p)
	hs, err := n.sec.handshake(true)
	var first []byte
	if err == nil {
		oc.sess = newSession(hs, maxControlFrame) // only Welcome, Pong and Goodbye come back
		first, err = oc.sess.hello()
	}
	if err != nil {
		n.log.Error("remote: cannot start a handshake", "err", err)
		c.release()
		return nil, false
	}
	if !oc.p.opened(c, oc.epoch) {
		c.release()
		return nil, false
	}
	oc.up = true
	n.stats.bytesOut.Add(uint64(len(first)))
	return first, true
}

// outClosed is called once a dialed connection closed (err: the driver's
// reason, if any).
func (n *Node) outClosed(oc *outConn, err error) {
	if oc.fr != nil {
		oc.fr.release()
	}
	if oc.up {
		n.stats.closed.Add(1)
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
}

// outTraffic reads what arrived on a dialed connection; an error means the
// driver closes it.
func (n *Node) outTraffic(oc *outConn) error {
	c := oc.conn
	oc.p.lastHeard.Store(n.now().UnixNano())
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
	}
	return err
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
			if err := oc.p.welcomed(oc.epoch, oc.f.name, oc.f.incarnation, oc.f.maxFrame); err != nil {
				return err
			}
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
