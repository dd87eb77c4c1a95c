package remote

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/actord/actord/connmgr"
)

// The node's connection manager (package connmgr, docs/connmgr.md): which
// peers it keeps connected, which it closes above the high watermark, and
// which it forgets. The manager is a state machine; this file feeds it
// (peers, connections, usage) and carries out its decisions.
//
// What the manager tracks of a peer:
//   - its handle (peer.cm), on which the peer records data traffic (enqueue
//     and the inbound read path) and usage: goroutine asks and spawns
//     (peer.calls), monitors (peer.monitors) and live links (peer.links);
//   - Connected when the dialed connection is welcomed, Disconnected when
//     it is lost;
//   - Stable while the membership layer reports the node alive (PeerUp),
//     Managed otherwise;
//   - two scorers: refsScorer, a Holder over the count of live refs to the
//     peer's actors (known only by pulling it from the actor runtime), and
//     linkHolder, which holds the peer while its link still needs it (a
//     connection or dial, a retry, a connection from it, a recent use).

// connTable is the node's connection-manager state.
type connTable struct {
	m   *connmgr.Manager
	err error // a bad watermark configuration: Serve fails with it
	// untracked: peers a local caller made while the manager was full
	// (peerFor is not bounded); each sweep tries to track them (n.mu).
	untracked map[*peer]struct{}
	// forgetIdle is the idle time of the forget pass under way: linkHolder
	// reads it (ns).
	forgetIdle atomic.Int64
	trimming   atomic.Bool // a trim started by a welcome is under way
}

// Scorer names on every peer.
const (
	scorerRefs = "remote.refs"
	scorerLink = "remote.link"
)

func (t *connTable) init(cfg Config) {
	c := connmgr.Config{
		HighWater: cfg.ConnHighWater, LowWater: cfg.ConnLowWater,
		GracePeriod: cfg.ConnGracePeriod, SilencePeriod: cfg.ConnSilencePeriod,
		ForgetAfter: cfg.ForgetAfter, MaxPeers: cfg.MaxPeers, Events: cfg.Events,
		Veto: cfg.ConnVeto,
	}
	m, err := connmgr.New(c)
	t.untracked = map[*peer]struct{}{}
	if err != nil && c.Events != nil {
		// A closed bus: run without the manager's events, as the node's
		// own events do (newNodeEvents).
		c.Events = nil
		if m, err = connmgr.New(c); err == nil {
			t.m = m
			return
		}
	}
	if err != nil {
		// Keep a working manager (default watermarks); Serve refuses to run.
		t.err = fmt.Errorf("remote: connection manager: %w", err)
		c.HighWater, c.LowWater, c.Events = 0, 0, nil
		m, _ = connmgr.New(c)
	}
	t.m = m
}

// ConnManager returns the node's connection manager: protect peers
// (Protect, Lock), attach scorers, read Snapshot and Stats. Peers are
// identified by their listen address. Its decisions are the node's to
// carry out: call neither Tick, Trim nor Forget on it (the node does, in
// its sweep). A scorer you attach that is also a connmgr.Holder is asked
// Holds while the node's peer table is locked: it must not call the Node.
func (n *Node) ConnManager() *connmgr.Manager { return n.conns.m }

// cm returns the peer's connection-manager handle, or nil while the
// manager does not track it.
func (p *peer) cm() *connmgr.Peer { return p.cmh.Load() }

// trackLocked makes the manager track p; it fails when the manager is
// full. n.mu held.
func (n *Node) trackLocked(p *peer, now time.Time) error {
	h, err := n.conns.m.Add(p.addr, connmgr.Managed, now)
	if err != nil {
		return err
	}
	_ = n.conns.m.Attach(p.addr, scorerRefs, refsScorer{p})
	_ = n.conns.m.Attach(p.addr, scorerLink, linkHolder{p})
	p.mu.Lock()
	// Counts recorded while untracked move to the handle (they change
	// under p.mu only).
	h.AddAsks(int64(len(p.calls)))
	h.AddMonitors(int64(p.monitors.count()))
	h.AddLinks(p.links)
	member, up, epoch := p.link.member, p.link.phase == linkUp, p.link.epoch
	p.cmh.Store(h)
	p.mu.Unlock()
	if member {
		_ = n.conns.m.SetKind(p.addr, connmgr.Stable)
	}
	if up {
		_ = n.conns.m.Connected(p.addr, epoch, now)
	}
	return nil
}

// trackUntrackedLocked retries tracking the peers made while the manager
// was full. n.mu held.
func (n *Node) trackUntrackedLocked(now time.Time) {
	for p := range n.conns.untracked {
		if n.trackLocked(p, now) != nil {
			return
		}
		delete(n.conns.untracked, p)
	}
}

// refsScorer scores a peer by the refs local code holds to its actors
// (connmgr.RefWeight each) and holds it while there is one: a ref can be
// used at any time, which needs the peer.
type refsScorer struct{ p *peer }

func (s refsScorer) Score() int64 {
	return min(connmgr.ScoreMax, int64(s.p.n.wire.RemoteRefs(s.p))*connmgr.RefWeight)
}

func (s refsScorer) Holds() bool { return s.p.n.wire.RemoteRefs(s.p) > 0 }

// linkHolder holds a peer that its link still needs: a connection or a
// dial, a retry armed, known down, a connection from it, reported alive,
// a pending call or monitor, or a use within the forget pass's idle time
// (peer.forgettable). It adds nothing to the score.
type linkHolder struct{ p *peer }

func (linkHolder) Score() int64 { return 0 }

func (h linkHolder) Holds() bool {
	return !h.p.forgettable(h.p.n.now(), time.Duration(h.p.n.conns.forgetIdle.Load()))
}

// addCallsLocked records delta pending goroutine asks and spawns. p.mu
// held.
func (p *peer) addCallsLocked(delta int) {
	if h := p.cm(); h != nil {
		h.AddAsks(int64(delta))
	}
}

// addMonitorsLocked records delta monitors. p.mu held.
func (p *peer) addMonitorsLocked(delta int) {
	if h := p.cm(); h != nil && delta != 0 {
		h.AddMonitors(int64(delta))
	}
}

// addLinksLocked records delta live links between local actors and the
// peer's. The count is an estimate, never negative: the runtime keeps the
// links, and this node sees the frames that make and end them (Link,
// Unlink, the exit signals of links); a loss ends them all. p.mu held.
func (p *peer) addLinksLocked(delta int64) {
	v := max(0, p.links+delta)
	if h := p.cm(); h != nil && v != p.links {
		h.AddLinks(v - p.links)
	}
	p.links = v
}

// endLinks records that every link with the peer's actors ended (the
// runtime's BreakLinks for all epochs).
func (p *peer) endLinks() {
	p.mu.Lock()
	p.addLinksLocked(-p.links)
	p.mu.Unlock()
}

// addLinks is addLinksLocked for callers without p.mu.
func (p *peer) addLinks(delta int64) {
	p.mu.Lock()
	p.addLinksLocked(delta)
	p.mu.Unlock()
}

// cmConnected tells the manager that p's dialed connection epoch is up,
// and starts a trim when that takes the node above its high watermark.
func (n *Node) cmConnected(p *peer, epoch uint64, now time.Time) {
	if n.conns.m.Connected(p.addr, epoch, now) != nil {
		return // untracked
	}
	if n.conns.m.Stats().Connected > n.conns.m.Config().HighWater && n.conns.trimming.CompareAndSwap(false, true) {
		run := func() {
			defer n.conns.trimming.Store(false)
			n.trim(n.now())
		}
		if n.clk != nil {
			// Simulated: on the node's clock, not a goroutine of its own,
			// so a run stays reproducible from its seed.
			n.afterFunc(0, run)
		} else {
			go run()
		}
	}
}

// trim runs the manager's lock expiry and trim passes at now and closes
// the connections it chose. It runs without n.mu: lock callbacks, scorers
// and the veto may call the node.
func (n *Node) trim(now time.Time) {
	if n.closing.Load() {
		return
	}
	n.conns.m.ExpireLocks(now)
	for _, c := range n.conns.m.Trim(now) {
		n.mu.Lock()
		p := n.peers[c.Peer]
		n.mu.Unlock()
		if p != nil {
			p.trim(c)
		}
	}
}

// trim closes the peer's dialed connection for the connection manager,
// through the lost-connection path, with a reason matching both
// ErrNodeDown and connmgr.ErrTrimmed: pending asks fail, monitors fire,
// links end (node-down for the actors that watched the peer's), and the
// one-way messages in flight are reported as dead letters. Unlike another
// loss, it leaves the peer not known down and arms no retry: the next use
// dials again (link.lost). It closes only the connection the manager
// decided about (c.Conn, its epoch): one welcomed since the decision is
// another, in its grace period, and stays up.
func (p *peer) trim(c connmgr.Closure) {
	p.mu.Lock()
	conn, epoch, up := p.conn, p.link.epoch, p.link.phase == linkUp
	p.mu.Unlock()
	if !up || epoch != c.Conn {
		return // lost meanwhile (and maybe connected again)
	}
	p.n.log.Info("remote: closing connection to trim", "peer", p.name(), "addr", p.addr, "score", c.Score, "reason", c.Reason)
	p.lost(epoch, fmt.Errorf("%w: %s: %w", ErrNodeDown, p.name(), c.Reason))
	if conn != nil {
		_ = conn.Close()
	}
}

// trimmed reports whether err is the reason of a trim.
func trimmed(err error) bool { return errors.Is(err, connmgr.ErrTrimmed) }

// forget runs the manager's forget pass at now, under n.mu, and returns
// the peers it dropped, which the caller then removes from n.peers; idle is
// the time a peer's link must have been unused (ForgetAfter, or a second
// when the table is full). n.mu held: a concurrent peerFor cannot hand out
// a peer that is being forgotten.
func (n *Node) forgetLocked(now time.Time, idle time.Duration) []string {
	n.conns.forgetIdle.Store(int64(idle))
	// The manager compares its own idle times with ForgetAfter: shifting
	// now forgets those idle for idle instead.
	return n.conns.m.Forget(now.Add(n.cfg.ForgetAfter - idle))
}

// traffic records, at the end of a read, that the connection brought data
// (not only pings) from its peer: one store per read, with the time the
// read already took.
func (ic *inConn) traffic(now time.Time) {
	if !ic.data || ic.from == nil {
		return
	}
	ic.data = false
	if h := ic.from.cm(); h != nil {
		h.Traffic(now)
	}
}

// Peers lists the peers the connection manager tracks at now, sorted by
// listen address (connmgr.Manager.Snapshot), with Usage.Refs filled in
// from the live refs to each peer's actors, and the manager's counters:
// what `actord debug peers` shows.
func (n *Node) Peers(now time.Time) ([]connmgr.PeerInfo, connmgr.Stats) {
	infos := n.conns.m.Snapshot(now)
	n.mu.Lock()
	peers := make([]*peer, len(infos))
	for i := range infos {
		peers[i] = n.peers[infos[i].Peer]
	}
	n.mu.Unlock()
	for i, p := range peers {
		if p != nil {
			infos[i].Usage.Refs = int64(n.wire.RemoteRefs(p))
		}
	}
	return infos, n.conns.m.Stats()
}
