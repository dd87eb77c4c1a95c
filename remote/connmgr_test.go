package remote

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/event"
)

// peerCount returns how many peers tn's node keeps.
func peerCount(tn *testNode) int {
	tn.node.mu.Lock()
	defer tn.node.mu.Unlock()
	return len(tn.node.peers)
}

// peerInfo returns the connection manager's view of the peer at addr
// (Node.Peers).
func peerInfo(tn *testNode, addr string) (connmgr.PeerInfo, bool) {
	infos, _ := tn.node.Peers(time.Now())
	for _, pi := range infos {
		if pi.Peer == addr {
			return pi, true
		}
	}
	return connmgr.PeerInfo{}, false
}

// connectedTo reports whether tn's dialed connection to addr is up.
func connectedTo(tn *testNode, addr string) bool {
	tn.node.mu.Lock()
	p := tn.node.peers[addr]
	tn.node.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.phase == linkUp && p.conn != nil
}

// A node that used 300 distinct short-lived peers forgets every one of
// them once they are gone (its MaxPeers, 64, is far below 300: forgetting,
// not refusal, makes the room), and dials none of them again.
func TestShortLivedPeersAreForgotten(t *testing.T) {
	const clients, batch, maxPeers = 300, 5, 64
	// Generous heartbeats: 300 nodes under -race on a shared machine.
	s := newTestNode(t, "server", Config{MaxPeers: maxPeers, ForgetAfter: 100 * time.Millisecond,
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond, HeartbeatTimeout: 5 * time.Second})
	// The server's actor sends "pong" to every ref it gets: the server
	// dials each client for its own use (not as an answer).
	pinger := spawn(t, s.sys, func(c *actor.Context, msg any) (any, error) {
		if r, ok := msg.(actor.Ref); ok {
			_ = c.Send(r, "pong")
		}
		return nil, nil
	})
	pid, _ := wireOf(s.sys).LocalID(pinger)
	for b := 0; b < clients; b += batch {
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := b; i < b+batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := newTestNode(t, fmt.Sprintf("client-%d", i), Config{HeartbeatTimeout: 5 * time.Second})
				defer c.close()
				got := make(chan any, 1)
				self := spawn(t, c.sys, func(_ *actor.Context, msg any) (any, error) {
					select { // a second pong (the message was sent again) is not waited for
					case got <- msg:
					default:
					}
					return nil, nil
				})
				// On a loaded machine a dial may fail (its timeout passes):
				// the message is then a dead letter, counted, and sent
				// again; a loss without that signal fails the test.
				deadline := time.After(30 * time.Second) // for a loaded machine, not a timing
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				var lost uint64
				for send := true; ; {
					if send {
						err := c.sys.Send(remoteRefTo(t, c, s, pid), self)
						if err != nil && !errors.Is(err, ErrNodeDown) {
							errs <- fmt.Errorf("client %d: %v", i, err)
							return
						}
						send = err != nil // refused at once (the node known down): again at the next tick
					}
					select {
					case <-got:
						return
					case <-tick.C:
						if dl := c.node.Stats().DeadLetters; dl > lost {
							lost, send = dl, true
						}
					case <-deadline:
						errs <- fmt.Errorf("client %d: no pong in 30 s; client %+v; server %+v", i, c.node.Stats(), s.node.Stats())
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := peerCount(s); n > maxPeers {
			t.Fatalf("%d peers kept, above MaxPeers %d", n, maxPeers)
		}
		// Room for the next batch comes from forgetting the departed (a
		// Hello beyond MaxPeers is refused); the server's actor held refs
		// to them, which the collector reclaims.
		waitFor(t, 20*time.Second, "room for the next batch", func() bool {
			runtime.GC()
			return peerCount(s) <= maxPeers-batch
		})
	}
	if d := s.node.Stats().Dials; d < clients {
		t.Fatalf("the server dialed %d times, want at least once per client (%d)", d, clients)
	}
	waitFor(t, 30*time.Second, "every departed client to be forgotten", func() bool {
		runtime.GC() // the refs the server held to the clients' actors go
		return peerCount(s) == 0 && s.node.ConnManager().Len() == 0
	})
	if st := s.node.Stats(); st.PeersForgotten < clients {
		t.Fatalf("PeersForgotten = %d, want %d", st.PeersForgotten, clients)
	}
	if st := s.node.ConnManager().Stats(); st.Forgotten < clients || st.Refused != 0 {
		t.Fatalf("connection manager: %+v, want %d forgotten and none refused", st, clients)
	}
	// No redial to any of them: watch for many retry periods.
	dials := s.node.Stats().Dials
	deadline := time.Now().Add(300 * time.Millisecond) // 30 retry periods
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // an observation window, not synchronisation
		if d := s.node.Stats().Dials; d != dials {
			t.Fatalf("the server dialed %d more times after its clients left", d-dials)
		}
	}
}

// trimHeartbeat is the HeartbeatTimeout of the trim tests: heartbeats are
// not under test there, and on a loaded machine the test default (500ms)
// drops peers, which changes what a trim sees and what the assertions
// expect connected.
const trimHeartbeat = 30 * time.Second

// connectTo makes from dial to (an ask to an echo actor there) and returns
// to's address.
func connectTo(t *testing.T, from, to *testNode) string {
	t.Helper()
	r := remoteRefTo(t, from, to, serveEcho(t, to))
	if v, err := from.sys.Ask(ctxT(t), r, "hi"); err != nil || v != "hi" {
		t.Fatalf("ask %s: %v, %v", to.node.Name(), v, err)
	}
	return to.node.Addr()
}

// A peer the membership layer reports alive (PeerUp) is stable: a trim
// passes it over even when it scores lowest, and when its connection is
// cut it is redialed.
func TestStablePeerSurvivesTrimAndReconnects(t *testing.T) {
	a := newTestNode(t, "a", Config{ConnHighWater: 2, ConnLowWater: 1, ConnGracePeriod: -1, ConnSilencePeriod: -1,
		HeartbeatTimeout: trimHeartbeat})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: trimHeartbeat})
	cm := a.node.ConnManager()
	// Set up under protection, so that no trim runs before all three are
	// connected.
	var addrs []string
	for _, name := range []string{"c", "d"} {
		tn := newTestNode(t, name, Config{HeartbeatTimeout: trimHeartbeat})
		addr := tn.node.Addr()
		a.node.peerFor(addr, "")
		if err := cm.Protect(addr, "setup"); err != nil {
			t.Fatal(err)
		}
		connectTo(t, a, tn)
		addrs = append(addrs, addr)
	}
	bAddr := b.node.Addr()
	if !a.node.PeerUp(bAddr) {
		t.Fatal("PeerUp refused")
	}
	// b would be closed first if it could be.
	if err := cm.Attach(bAddr, "test", connmgr.ScorerFunc(func() int64 { return connmgr.ScoreMin })); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b connected", func() bool { return connectedTo(a, bAddr) })
	for _, addr := range addrs {
		cm.Unprotect(addr, "setup")
	}
	waitFor(t, 10*time.Second, "the trim of c and d", func() bool {
		return !connectedTo(a, addrs[0]) && !connectedTo(a, addrs[1])
	})
	if !connectedTo(a, bAddr) {
		t.Fatal("the stable peer was trimmed")
	}
	if pi, _ := peerInfo(a, bAddr); pi.Kind != connmgr.Stable || pi.State != connmgr.Connected || !pi.TrimmedAt.IsZero() {
		t.Fatalf("b: %+v, want stable, connected, never trimmed", pi)
	}
	if st := cm.Stats(); st.Closed != 2 {
		t.Fatalf("connection manager closed %d peers, want 2", st.Closed)
	}

	// Cut b's connection: the node redials it.
	a.node.mu.Lock()
	p := a.node.peers[bAddr]
	a.node.mu.Unlock()
	p.mu.Lock()
	conn := p.conn
	p.mu.Unlock()
	dials := a.node.Stats().Dials
	_ = conn.Close()
	waitFor(t, 10*time.Second, "b reconnected", func() bool {
		if !connectedTo(a, bAddr) {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.conn != conn
	})
	if a.node.Stats().Dials == dials {
		t.Fatal("reconnected without a dial")
	}
	if pi, _ := peerInfo(a, bAddr); pi.State != connmgr.Connected {
		t.Fatalf("b after the reconnect: %+v", pi)
	}
}

// Trimming a peer with a live link is not silent: the linked local actor
// gets the exit signal of its remote actor, with a reason matching
// ErrNodeDown (and connmgr.ErrTrimmed).
func TestTrimFiresNodeDownToLinkedActor(t *testing.T) {
	a := newTestNode(t, "a", Config{ConnHighWater: 1, ConnLowWater: 0, ConnGracePeriod: -1, ConnSilencePeriod: -1,
		HeartbeatTimeout: trimHeartbeat})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: trimHeartbeat})
	c := newTestNode(t, "c", Config{HeartbeatTimeout: trimHeartbeat})
	linkNodes(t, a, b)
	cm := a.node.ConnManager()
	exited := make(chan actor.Exited, 8)
	r := remoteProbe(t, a, b, &probe{})
	if err := cm.Protect(b.node.Addr(), "setup"); err != nil {
		t.Fatal(err)
	}
	trapper := localProbe(t, a, &probe{trap: true, exited: exited})
	ask(t, a, trapper, linkTo{r})
	ask(t, a, r, "sync") // the link request went before this ask
	if pi, _ := peerInfo(a, b.node.Addr()); pi.Usage.Links != 1 || pi.Usage.Refs < 1 {
		t.Fatalf("b: %+v, want 1 link and a ref", pi)
	}
	a.node.peerFor(c.node.Addr(), "")
	if err := cm.Protect(c.node.Addr(), "setup"); err != nil {
		t.Fatal(err)
	}
	connectTo(t, a, c)
	cm.Unprotect(b.node.Addr(), "setup")
	cm.Unprotect(c.node.Addr(), "setup")
	e := recv(t, exited, 10*time.Second, "Exited of the trimmed peer's actor")
	if e.From != r || !errors.Is(e.Reason, ErrNodeDown) || !errors.Is(e.Reason, connmgr.ErrTrimmed) {
		t.Fatalf("Exited = %+v, want from %v matching ErrNodeDown and connmgr.ErrTrimmed", e, r)
	}
	if pi, _ := peerInfo(a, b.node.Addr()); pi.Usage.Links != 0 || pi.TrimmedAt.IsZero() {
		t.Fatalf("b after the trim: %+v, want trimmed, no link", pi)
	}
}

// Above the high watermark (4), a trim closes the lowest-scoring idle
// peers until the low watermark (2) remain.
func TestTrimClosesLowestScoring(t *testing.T) {
	bus := event.New(event.Config{})
	defer bus.Close()
	trimmedEvents, err := event.Subscribe[connmgr.PeerTrimmed](bus, event.Buffer(16))
	if err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, "a", Config{ConnHighWater: 4, ConnLowWater: 2, ConnGracePeriod: -1, ConnSilencePeriod: -1, Events: bus,
		HeartbeatTimeout: trimHeartbeat})
	cm := a.node.ConnManager()
	addrs := make([]string, 6)
	peers := make([]*testNode, 6)
	for i := range addrs {
		tn := newTestNode(t, fmt.Sprintf("peer-%d", i), Config{HeartbeatTimeout: trimHeartbeat})
		peers[i] = tn
		addrs[i] = tn.node.Addr()
		a.node.peerFor(addrs[i], "")
		if err := cm.Protect(addrs[i], "setup"); err != nil {
			t.Fatal(err)
		}
		// Scores 0, 100, ... 500 over the (equal) built-in components; the
		// order of connection is not the order of score.
		score := int64((i*5)%6) * 100
		if err := cm.Attach(addrs[i], "test", connmgr.ScorerFunc(func() int64 { return score })); err != nil {
			t.Fatal(err)
		}
		connectTo(t, a, tn)
	}
	// A connection is reported to the manager once its Welcome is handled,
	// which may come after the ask's reply (on the other connection).
	waitFor(t, 10*time.Second, "six connections reported", func() bool { return cm.Stats().Connected == 6 })
	if st := cm.Stats(); st.Connected != 6 || st.Closed != 0 {
		t.Fatalf("before the trim: %+v", st)
	}
	for _, addr := range addrs {
		cm.Unprotect(addr, "setup")
	}
	waitFor(t, 10*time.Second, "a trim carried out", func() bool {
		n := 0
		for _, addr := range addrs {
			if !connectedTo(a, addr) {
				n++
			}
		}
		return cm.Stats().Closed >= 4 && n >= 4
	})
	for i, addr := range addrs {
		keep := (i*5)%6 >= 4
		if got := connectedTo(a, addr); got != keep {
			t.Errorf("peer %d (score %d): connected %v, want %v", i, (i*5)%6*100, got, keep)
		}
		pi, _ := peerInfo(a, addr)
		if keep != (pi.State == connmgr.Connected) || keep != pi.TrimmedAt.IsZero() {
			t.Errorf("peer %d: %+v", i, pi)
		}
	}
	if st := cm.Stats(); st.Connected != 2 || st.Closed != 4 {
		t.Fatalf("after the trim: %+v, want 2 connected, 4 closed", st)
	}
	// Each closure is on the bus, with its score and why.
	for range 4 {
		e := recv(t, trimmedEvents.Out(), 5*time.Second, "PeerTrimmed")
		i := slices.Index(addrs, e.Peer)
		if i < 0 || (i*5)%6 >= 4 || !errors.Is(e.Reason, connmgr.ErrTrimmed) || e.Score < int64((i*5)%6*100) {
			t.Fatalf("PeerTrimmed %+v", e)
		}
	}
	// A trim is not a failure: the trimmed peers, which still have their
	// own connections here, are not redialed until something wants them.
	dials := a.node.Stats().Dials
	deadline := time.Now().Add(300 * time.Millisecond) // 15 retry periods
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // an observation window, not synchronisation
		if d := a.node.Stats().Dials; d != dials {
			t.Fatalf("%d dials after the trim", d-dials)
		}
	}
	// The next use dials at once: the peer is not known down.
	r := remoteRefTo(t, a, peers[0], serveEcho(t, peers[0]))
	if v, err := a.sys.Ask(ctxT(t), r, "again"); err != nil || v != "again" {
		t.Fatalf("ask a trimmed peer: %v, %v", v, err)
	}
}

// trimCarriedOut reports whether a's trims closed at least n peers and
// the node has closed every connection they decided on: the manager counts
// a closure when it decides it (Stats.Closed), and the node closes the
// connections after Trim returns (Node.trim), so the count alone runs
// ahead of the connections. It holds only while no trimmed peer is used
// again.
func trimCarriedOut(a *testNode, n uint64) bool {
	infos, st := a.node.Peers(time.Now())
	if st.Closed < n {
		return false
	}
	for _, pi := range infos {
		if !pi.TrimmedAt.IsZero() && connectedTo(a, pi.Peer) {
			return false
		}
	}
	return true
}

// TestConnVetoKeepsPeer: Config.ConnVeto keeps the peer it says no for,
// and the trim takes the next lowest instead.
func TestConnVetoKeepsPeer(t *testing.T) {
	var protected atomic.Value // the address the veto keeps
	protected.Store("")
	a := newTestNode(t, "a", Config{ConnHighWater: 4, ConnLowWater: 2, ConnGracePeriod: -1, ConnSilencePeriod: -1,
		HeartbeatTimeout: trimHeartbeat, ConnVeto: func(c connmgr.Candidate) bool { return c.Peer == protected.Load().(string) }})
	cm := a.node.ConnManager()
	addrs := make([]string, 6)
	for i := range addrs {
		tn := newTestNode(t, fmt.Sprintf("peer-%d", i), Config{HeartbeatTimeout: trimHeartbeat})
		addrs[i] = tn.node.Addr()
		a.node.peerFor(addrs[i], "")
		if err := cm.Protect(addrs[i], "setup"); err != nil {
			t.Fatal(err)
		}
		score := int64(i) * 100 // peer 0 lowest
		if err := cm.Attach(addrs[i], "test", connmgr.ScorerFunc(func() int64 { return score })); err != nil {
			t.Fatal(err)
		}
		connectTo(t, a, tn)
	}
	protected.Store(addrs[0])
	for _, addr := range addrs {
		cm.Unprotect(addr, "setup")
	}
	waitFor(t, 10*time.Second, "a trim carried out", func() bool { return trimCarriedOut(a, 4) })
	for i, addr := range addrs {
		keep := i == 0 || i == 5 // vetoed, and the highest
		if got := connectedTo(a, addr); got != keep {
			t.Errorf("peer %d (score %d): connected %v, want %v", i, i*100, got, keep)
		}
	}
	if st := cm.Stats(); st.Vetoed < 1 || st.Closed != 4 {
		t.Fatalf("stats %+v: want a veto counted and 4 closed", st)
	}
}
