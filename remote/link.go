package remote

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// link is the protocol state of this node's side of one peer: which
// connection epoch is current and how far it got, whether the peer is known
// down and why, when to dial again and whether anything wants it to, the
// claims of the nodes connected here from its address, and the deadlines of
// the current connection. It is a state machine apart from I/O: it has no
// goroutines, reads no clock and draws no random number (time and jitter
// come in with the inputs), and says what to do rather than doing it. The
// peer (peer.go) drives it under its lock and does the I/O: dials, closes,
// timers, writes.
type link struct {
	cfg  *linkConfig
	name func() string // the peer's name, for errors

	epoch uint64 // of the current (or next) connection
	phase linkPhase
	// welcomedBy is the incarnation whose Welcome made the current
	// connection up.
	welcomedBy uint64
	// down is set while the peer is known down: from a loss until a
	// connection is welcomed again, or until a retry finds nothing that
	// wants the peer. Meanwhile what local actors send fails at once with
	// it: the loss's reason (matching ErrNodeDown), and ErrNotSent.
	down error
	// demand: something local tried to use the peer while it was down, so
	// the next retry dials.
	demand bool
	// refused: the last dial was refused (nothing listens at the address):
	// retries come at least every refusedRetryMax, so a node that restarts
	// there is back within a fraction of a second of listening.
	refused bool
	// member: the membership layer reports the node alive (PeerUp), so it is
	// redialed after a loss whether or not anything uses it.
	member bool
	// claims counts, by static key, the open connections from nodes that
	// said in their Hello that they listen at the peer's address: evidence
	// that the node is alive, and the keys a dial made to answer them must
	// authenticate.
	claims map[string]int
	// claimFailed: a dial made to answer a claim (netDial) did not reach a
	// node holding a claimed key; no more such dials until a new claim.
	claimFailed bool
	netDial     bool // the connection under way answers the peer, not a local sender
	backoff     time.Duration
	retryAt     time.Time // when to look at dialing again; zero: no retry armed
	openedAt    time.Time // when the current connection was opened
	lastActive  time.Time // last use or connection, for forgetting (Node.sweep)
	closed      bool      // for good: node shutdown, or forgotten
	// cutInc, cutEpoch name the newest connection of the peer's node that
	// a loss here cut (peer.cutLocked): every Hello says so, so that the
	// node ends its side of it even if the close never reaches it.
	cutInc, cutEpoch uint64
}

// linkConfig is what a link needs of the node's configuration.
type linkConfig struct {
	reconnectMin, reconnectMax time.Duration
	heartbeatTimeout           time.Duration
	handshakeTimeout           time.Duration
	nextEpoch                  func() uint64 // node-wide, increasing
	// mayAnswer spends one of the node-wide dials made to answer other
	// nodes (Node.answerDials), reporting whether there was one.
	mayAnswer func(now time.Time) bool
}

// linkPhase is how far the current connection got.
type linkPhase uint8

const (
	linkIdle      linkPhase = iota // no connection and no dial
	linkDialing                    // a dial (TCP connect) is under way
	linkHandshake                  // connected: the secure handshake or the Welcome is pending
	linkUp                         // welcomed
)

// refusedRetryMax bounds the backoff after a refused connect (see
// link.refused).
const refusedRetryMax = 100 * time.Millisecond

func newLink(cfg *linkConfig, name func() string, now time.Time) *link {
	return &link{cfg: cfg, name: name, epoch: cfg.nextEpoch(), lastActive: now}
}

// idle reports whether there is neither a connection nor a dial.
func (l *link) idle() bool { return l.phase == linkIdle }

// queues reports whether admit queues a frame of origin o as it is, without
// a dial and without reading the clock: the common case, a connection up or
// under way, which a sender decides without reading the clock (see
// peer.enqueueOpt).
func (l *link) queues(o origin) bool {
	return !l.closed && !l.idle() && (o != fromLocal || l.down == nil)
}

// admit decides what to do with a frame of origin o: queue it (dial
// first), or refuse it with an error. Only the decision about the peer's
// state is here; the bound on bytes queued is the peer's (it holds them).
func (l *link) admit(o origin, now time.Time) (dial bool, err error) {
	if l.queues(o) {
		return false, nil
	}
	switch {
	case l.closed:
		return false, ErrClosed
	case o == fromLocal && l.down != nil:
		// Known down: fail now rather than queue what the broken connection
		// would lose; the attempt asks for a redial (with backoff).
		l.demand = true
		if l.idle() {
			l.armRetry(now, 0.5)
		}
		return false, l.down
	case !l.idle():
		return false, nil
	case o == fromLocal:
		l.netDial = false
		return true, nil
	case l.down == nil && l.mayAnswer(now):
		// An answer (a reply, a signal) to a node connected here from the
		// address: the dial must reach a node with a key that claimed it.
		l.netDial = true
		return true, nil
	}
	if l.down != nil {
		return false, l.down
	}
	return false, fmt.Errorf("%w: %s: not connected, and no connection from it to answer", ErrNodeDown, l.name())
}

// mayAnswer reports whether an answer may make this node dial the peer:
// only while a node that claims to listen at its address has a connection
// open here (a Hello that said so), the last such dial did reach a node
// with a claimed key, and the node-wide budget of such dials allows. An
// address named by another node is otherwise never dialed for that node's
// sake.
func (l *link) mayAnswer(now time.Time) bool {
	return len(l.claims) > 0 && !l.claimFailed && l.cfg.mayAnswer(now)
}

// startDial moves an idle link to dialing and returns the epoch of the
// connection to open.
func (l *link) startDial(now time.Time) uint64 {
	l.phase = linkDialing
	l.retryAt = time.Time{}
	l.lastActive = now // a connected peer is never forgotten; the loss sets it again
	return l.epoch
}

// opened records that the dial of epoch connected; false means the
// connection is stale (or the link closed) and must be closed.
func (l *link) opened(epoch uint64, now time.Time) bool {
	if l.closed || epoch != l.epoch || l.phase != linkDialing {
		return false
	}
	l.phase = linkHandshake
	l.openedAt = now
	return true
}

// secured checks the static key that the handshake of epoch's connection
// authenticated. It returns an error (the connection must be closed,
// nothing sent on it) when it is not the pinned key, or, for a connection
// dialed to answer a claim, not a key that claimed the address.
func (l *link) secured(epoch uint64, key, pinned []byte) error {
	if l.closed || epoch != l.epoch {
		return errStaleConn
	}
	if pinned != nil && string(key) != string(pinned) {
		// Not the node a resolved sturdy ref named: send it nothing (the
		// frames queued carry refs' secrets).
		return errors.New("the node's key is not the pinned one")
	}
	if l.netDial && l.claims[string(key)] == 0 {
		// Dialed to answer a node that claimed to listen here, but another
		// node answered: what is queued (replies, signals) is not for it.
		l.claimFailed = true
		return errors.New("the node at the address is not the one that claimed it")
	}
	return nil
}

// errStaleConn: an event of a connection that is no longer the link's.
var errStaleConn = errors.New("remote: stale connection")

// welcomed records the peer's Welcome: the connection is up and the peer
// no longer known down.
func (l *link) welcomed(epoch, inc uint64) error {
	if epoch != l.epoch || l.phase != linkHandshake || l.closed {
		// The Welcome of a connection already ended (a close is
		// asynchronous: its buffered bytes may still be read).
		return errStaleConn
	}
	l.phase, l.welcomedBy = linkUp, inc
	l.down, l.demand, l.backoff, l.claimFailed = nil, false, 0, false
	return nil
}

// replaced reports whether the current connection must close because
// incarnation inc of the peer's node replaced the one that welcomed it
// (the node restarted; the old incarnation's actors are gone). A
// connection the new incarnation welcomed, or a dial under way (the new
// incarnation answers it), is kept, and so are the links made on it.
func (l *link) replaced(inc uint64) (stale bool) {
	return l.phase == linkUp && l.welcomedBy != inc
}

// lost ends connection epoch with reason: the peer is known down until a
// connection is welcomed again, and a retry is armed (see retry). It
// reports false for an epoch that is not the current one (nothing
// changes).
func (l *link) lost(epoch uint64, reason error, now time.Time, jitter float64) bool {
	if epoch != l.epoch {
		return false
	}
	if l.phase != linkUp && l.netDial {
		l.claimFailed = true // the claimed address did not answer as that node
	}
	l.phase = linkIdle
	l.epoch = l.cfg.nextEpoch()
	l.lastActive = now
	if trimmed(reason) {
		// The connection manager closed an idle connection: not a failure.
		// The peer is not known down and no retry is armed, so it is
		// redialed only when something wants it again (the next local use,
		// an answer to a connection from it, PeerUp).
		l.down, l.demand, l.backoff, l.refused = nil, false, 0, false
		l.retryAt = time.Time{}
		if l.member && !l.closed {
			// A member (PeerUp raced the trim): members are kept up.
			l.armRetry(now, jitter)
		}
		return true
	}
	l.down = &notSent{reason}
	l.refused = errors.Is(reason, syscall.ECONNREFUSED)
	if !l.closed {
		l.armRetry(now, jitter)
	}
	return true
}

// recordCut records that the connection of epoch from incarnation inc of
// the peer's node was cut: the newest one, or the first of a newer
// incarnation.
func (l *link) recordCut(inc, epoch uint64) {
	if inc != l.cutInc || epoch > l.cutEpoch {
		l.cutInc, l.cutEpoch = inc, epoch
	}
}

// armRetry sets the next retry (unless one is armed, or a dial is under
// way) after the backoff, doubling from reconnectMin to reconnectMax, at
// most refusedRetryMax after a refused connect, with ±50% jitter (jitter in
// [0, 1)).
func (l *link) armRetry(now time.Time, jitter float64) {
	if !l.retryAt.IsZero() || !l.idle() || l.closed {
		return
	}
	if l.backoff == 0 {
		l.backoff = l.cfg.reconnectMin
	} else if l.backoff *= 2; l.backoff > l.cfg.reconnectMax {
		l.backoff = l.cfg.reconnectMax
	}
	b := l.backoff
	if l.refused {
		b = min(b, refusedRetryMax) // a refused connect costs both sides next to nothing
	}
	l.retryAt = now.Add(time.Duration(float64(b) * (0.5 + jitter)))
}

// retry runs when the retry is due: it reports whether to dial, which it
// does if anything wants the peer (a local use since the loss, the
// membership layer, or a node connected here from its address). Otherwise
// it ends what this node knows: the peer is no longer known down, so the
// next local use dials. Nothing is redialed for nothing, so a node that
// went away (a client) is not redialed forever.
func (l *link) retry(now time.Time) bool {
	if l.retryAt.IsZero() || now.Before(l.retryAt) {
		return false
	}
	l.retryAt = time.Time{}
	if l.closed || !l.idle() {
		return false
	}
	switch {
	case l.demand || l.member:
		l.netDial = false
	case l.mayAnswer(now):
		l.netDial = true
	default:
		l.down, l.demand = nil, false
		return false
	}
	l.demand = false
	return true
}

// dialNow makes an idle link dial at once, without waiting for its retry
// (the node was seen alive); netDial says the dial answers a claim. It
// reports whether to dial.
func (l *link) dialNow(netDial bool) bool {
	if l.closed || !l.idle() {
		return false
	}
	l.retryAt = time.Time{}
	l.netDial = netDial
	return true
}

// expired reports why the current connection must be closed at now, if it
// must: a handshake (and Welcome) not done within handshakeTimeout of
// opening (bytes trickled meanwhile do not extend it), or silence (nothing
// heard since lastHeard) past heartbeatTimeout.
func (l *link) expired(now, lastHeard time.Time) error {
	switch {
	case l.phase == linkHandshake && now.Sub(l.openedAt) > l.cfg.handshakeTimeout:
		return fmt.Errorf("%w: %s: no Welcome within %v of connecting", ErrNodeDown, l.name(), l.cfg.handshakeTimeout)
	case (l.phase == linkHandshake || l.phase == linkUp) && now.Sub(lastHeard) > l.cfg.heartbeatTimeout:
		return fmt.Errorf("%w: %s: no heartbeat for %v", ErrNodeDown, l.name(), l.cfg.heartbeatTimeout)
	}
	return nil
}

// claimOpened records that a connection from a node whose Hello says it
// listens at the peer's address was accepted, authenticated with key. It
// reports whether to dial at once: a node seen alive that this node knows
// down is redialed, as an answer to it, if the node-wide budget allows.
func (l *link) claimOpened(key []byte, now time.Time) bool {
	if l.claims == nil {
		l.claims = map[string]int{}
	}
	l.claims[string(key)]++
	l.claimFailed = false
	l.lastActive = now
	if l.down != nil && l.idle() && l.cfg.mayAnswer(now) {
		return l.dialNow(!l.demand && !l.member)
	}
	return false
}

// claimClosed undoes claimOpened when that connection closes.
func (l *link) claimClosed(key []byte, now time.Time) {
	if l.claims[string(key)]--; l.claims[string(key)] <= 0 {
		delete(l.claims, string(key))
	}
	l.lastActive = now
}

// peerUp records that the membership layer sees the node alive; it
// reports whether to dial at once.
func (l *link) peerUp(now time.Time) bool {
	l.member = true
	l.lastActive = now
	if l.idle() {
		l.backoff = 0
		return l.dialNow(false)
	}
	return false
}

// peerDown records that the membership layer saw the node go: it is not
// redialed for the membership's sake until peerUp.
func (l *link) peerDown() { l.member = false }

// ensureConnected reports whether to dial a node that linked to a local
// actor, so that the heartbeat watches it: as an answer to it, so only as
// mayAnswer allows, and only if nothing is under way.
func (l *link) ensureConnected(now time.Time) bool {
	if l.idle() && l.retryAt.IsZero() && l.down == nil && l.mayAnswer(now) {
		return l.dialNow(true)
	}
	return false
}

// forgettable reports whether nothing but refs, calls and monitors (the
// peer's to check) could still need the peer: no connection, dial or
// retry, not known down, no connection from it, not a member, unused for
// idle.
func (l *link) forgettable(now time.Time, idle time.Duration) bool {
	return !l.member && l.idle() && l.retryAt.IsZero() && l.down == nil &&
		len(l.claims) == 0 && now.Sub(l.lastActive) >= idle
}
