package remote

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/connmgr"
)

// addMemNode adds a node at host:7000 to w with the connection-manager
// settings of cm (and newMemWorld's other settings).
func (w *memWorld) addMemNode(host string, seed uint64, cm Config) *Node {
	w.t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Clock: w.nw, Seed: seed, Watchdog: -1,
		Logger: quiet, OnCrash: func(*actor.Crash) {}})
	key := sha256.Sum256([]byte(host))
	n := newMemNode(sys, Config{
		Name: fmt.Sprintf("n%d", len(w.nodes)), Listen: host + ":7000", Logger: quiet, PrivateKey: key[:],
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 400 * time.Millisecond, DialTimeout: time.Second,
		ConnHighWater: cm.ConnHighWater, ConnLowWater: cm.ConnLowWater,
		ConnGracePeriod: cm.ConnGracePeriod, ConnSilencePeriod: cm.ConnSilencePeriod,
	}, w.nw, nil)
	if err := n.startMem(); err != nil {
		w.t.Fatal(err)
	}
	w.sys, w.nodes = append(w.sys, sys), append(w.nodes, n)
	return n
}

// dialedEpoch returns the epoch of n's dialed connection to addr, and
// whether it is up.
func dialedEpoch(n *Node, addr string) (uint64, bool) {
	n.mu.Lock()
	p := n.peers[addr]
	n.mu.Unlock()
	if p == nil {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.epoch, p.link.phase == linkUp && p.conn != nil
}

// A trim closes only the connection it decided about: when that one is
// lost after the decision and the peer is connected again before the
// closure is carried out, the new connection (in its grace period) stays
// up. On the in-memory network, on virtual time, so the loss and the
// reconnection fall deterministically between the manager's Trim and the
// peer's trim, the two halves of Node.trim.
func TestTrimSparesConnectionMadeSince(t *testing.T) {
	const seed = 20
	const grace = time.Minute
	w := newMemWorld(t, seed)
	defer w.close()
	// One connected peer above the high watermark: c is protected, so b
	// is the one to close.
	a := w.addMemNode("10.0.0.1", seed, Config{ConnHighWater: 1, ConnGracePeriod: grace, ConnSilencePeriod: -1})
	w.addMemNode("10.0.0.2", seed+1, Config{})
	w.addMemNode("10.0.0.3", seed+2, Config{})
	sink := func(c *actor.Context, msg any) (any, error) { return nil, nil }
	toB, toC := w.spawnOn(1, 0, sink), w.spawnOn(2, 0, sink)
	bAddr, cAddr := w.nodes[1].Addr(), w.nodes[2].Addr()
	cm := a.ConnManager()
	for _, addr := range []string{bAddr, cAddr} {
		if err := cm.Protect(addr, "setup"); err != nil {
			t.Fatal(err)
		}
	}
	send := func(to actor.Ref) { _ = w.sys[0].Send(to, "hello") } // fails at once while known down, and asks for a redial
	send(toB)
	send(toC)
	w.run(time.Second)
	first, up := dialedEpoch(a, bAddr)
	if _, cUp := dialedEpoch(a, cAddr); !up || !cUp {
		t.Fatalf("not connected: b %v, c %v\n%s", up, cUp, strings.Join(w.trace, "\n"))
	}
	w.run(grace) // b out of its grace period

	cm.Unprotect(bAddr, "setup")
	closures := cm.Trim(w.nw.Now()) // the decision, as Node.trim takes it
	if len(closures) != 1 || closures[0].Peer != bAddr || closures[0].Conn != first {
		t.Fatalf("trim decided %+v, want b's connection %d", closures, first)
	}

	// Before the node carries it out, b's connection is lost and made
	// again.
	w.logf("cut n0 n1")
	w.nw.Cut("10.0.0.1", "10.0.0.2")
	w.run(10 * time.Millisecond)
	if e, up := dialedEpoch(a, bAddr); up || e == first {
		t.Fatalf("after the cut: epoch %d (was %d), up %v", e, first, up)
	}
	start := w.nw.Now()
	for {
		if _, up := dialedEpoch(a, bAddr); up {
			break
		}
		if w.nw.Now().Sub(start) > 10*time.Second {
			t.Fatalf("b not connected again\n%s", strings.Join(w.trace, "\n"))
		}
		send(toB)
		w.run(100 * time.Millisecond)
	}
	second, _ := dialedEpoch(a, bAddr)

	// Now the node carries out the decision: nothing to close.
	a.mu.Lock()
	p := a.peers[bAddr]
	a.mu.Unlock()
	p.trim(closures[0])
	w.run(time.Second)
	if e, up := dialedEpoch(a, bAddr); !up || e != second {
		t.Fatalf("b's connection made after the decision: epoch %d up %v, want %d up (the trim closed it)", e, up, second)
	}
	var info connmgr.PeerInfo
	infos, st := a.Peers(w.nw.Now())
	for _, pi := range infos {
		if pi.Peer == bAddr {
			info = pi
		}
	}
	if info.State != connmgr.Connected || !info.InGrace || st.Connected != 2 {
		t.Fatalf("manager: b %+v, %d connected; want b connected in its grace period, 2 connected", info, st.Connected)
	}
}
