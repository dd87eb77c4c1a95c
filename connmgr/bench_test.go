package connmgr

import (
	"fmt"
	"testing"
	"time"
)

// benchManager returns a Manager with n connected peers, each with
// traffic, usage on some, and two scorers, and the peers' ids.
func benchManager(b *testing.B, n int, cfg Config) (*Manager, []string) {
	cfg.MaxPeers = n
	m := newTest(b, noTime(cfg))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.0.%d.%d:7000", i/256, i%256)
		connect(b, m, t0, ids[i])
		h, _ := m.Peer(ids[i])
		h.Traffic(t0.Add(time.Duration(i) * time.Millisecond))
		if i%10 == 0 {
			h.AddAsks(1)
		}
		v := int64(i % 97)
		m.Attach(ids[i], "gossip", ScorerFunc(func() int64 { return v }))
		m.Attach(ids[i], "kv", ScorerFunc(func() int64 { return -v }))
	}
	return m, ids
}

// BenchmarkTrim: one op = one trim pass over 10,000 connected peers (each
// with two scorers and traffic): every peer is scored, the candidates
// sorted, and 10 closed (high 10,000 − 1, low 10,000 − 10); the 10 are
// reported connected again for the next pass.
func BenchmarkTrim(b *testing.B) {
	const n = 10_000
	m, _ := benchManager(b, n, Config{HighWater: n - 1, LowWater: n - 10})
	now := t0.Add(time.Minute)
	pass := func(i int) {
		now = now.Add(time.Millisecond)
		closed := m.Trim(now)
		if len(closed) != 10 {
			b.Fatalf("pass %d closed %d", i, len(closed))
		}
		for _, c := range closed {
			m.Connected(c.Peer, c.Conn+1, now)
		}
	}
	pass(-1) // the pass's scratch space is allocated once, then reused
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pass(i)
	}
}

// BenchmarkBaselineMapScan: one op = a range over a map of 10,000 peers
// reading one atomic field of each: the floor of any pass over the peer
// table, to read BenchmarkTrim against on a noisy machine.
func BenchmarkBaselineMapScan(b *testing.B) {
	peers := map[string]*record{}
	for i := range 10_000 {
		id := fmt.Sprintf("10.0.%d.%d:7000", i/256, i%256)
		peers[id] = &record{p: &Peer{id: id}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var sum int64
	for range b.N {
		for _, r := range peers {
			sum += r.p.traffic.Load()
		}
	}
	_ = sum
}

// BenchmarkScoreQuery: one op = the score of one peer (traffic decay,
// usage, two scorers). "peer" is what a trim pass pays per peer; "Manager"
// is Manager.Score (lock and lookup included).
func BenchmarkScoreQuery(b *testing.B) {
	m, ids := benchManager(b, 1000, Config{})
	now := t0.Add(time.Minute)
	b.Run("peer", func(b *testing.B) {
		m.mu.Lock()
		r := m.peers[ids[10]]
		p, sc := r.p, r.scorers
		m.mu.Unlock()
		b.ReportAllocs()
		var s int64
		for range b.N {
			s += score(p, sc, now, m.cfg.TrafficHalfLife)
		}
		_ = s
	})
	b.Run("Manager", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := m.Score(ids[i%len(ids)], now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTraffic: one op = Peer.Traffic, the per-message hot path, from
// all Ps at once on one peer.
func BenchmarkTraffic(b *testing.B) {
	p := &Peer{id: "a"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			p.Traffic(now)
		}
	})
}
