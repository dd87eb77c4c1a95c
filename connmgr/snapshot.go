package connmgr

import (
	"slices"
	"strings"
	"time"
)

// PeerInfo describes one tracked peer at the time of a Snapshot.
type PeerInfo struct {
	Peer        string     `json:"peer"`
	Kind        Kind       `json:"kind"`
	State       State      `json:"state"`
	Since       time.Time  `json:"since"` // when State began
	Score       int64      `json:"score"`
	InGrace     bool       `json:"in_grace,omitempty"` // connected, within its grace period
	Usage       Usage      `json:"usage"`
	LastTraffic time.Time  `json:"last_traffic,omitzero"`
	TrimmedAt   time.Time  `json:"trimmed_at,omitzero"` // the last trim that closed it
	Tags        []string   `json:"tags,omitempty"`      // sorted
	Locks       []LockInfo `json:"locks,omitempty"`     // live and elapsed-but-not-yet-expired, by name
	Scorers     []string   `json:"scorers,omitempty"`   // names, in attach order
}

// LockInfo is one lock of a peer.
type LockInfo struct {
	Name  string    `json:"name"`
	Until time.Time `json:"until"`
}

// Snapshot lists the tracked peers at now, sorted by id, with their scores
// (queried without the Manager's lock): for a debug listing and metrics.
func (m *Manager) Snapshot(now time.Time) []PeerInfo {
	m.mu.Lock()
	out := make([]PeerInfo, 0, len(m.peers))
	scs := make([][]attached, 0, len(m.peers))
	peers := make([]*Peer, 0, len(m.peers))
	for id, r := range m.peers {
		pi := PeerInfo{
			Peer: id, Kind: r.kind, State: r.state, Since: r.since, TrimmedAt: r.trimmedAt,
			InGrace: r.state == Connected && m.cfg.GracePeriod > 0 && now.Sub(r.since) < m.cfg.GracePeriod,
			Tags:    slices.Clone(r.tags),
		}
		for _, l := range r.locks {
			pi.Locks = append(pi.Locks, LockInfo{Name: l.name, Until: l.until})
		}
		for _, a := range r.scorers {
			pi.Scorers = append(pi.Scorers, a.name)
		}
		out = append(out, pi)
		scs = append(scs, r.scorers)
		peers = append(peers, r.p)
	}
	m.mu.Unlock()
	for i := range out {
		out[i].Usage = peers[i].Usage()
		out[i].LastTraffic = peers[i].LastTraffic()
		out[i].Score = score(peers[i], scs[i], now, m.cfg.TrafficHalfLife)
		slices.SortFunc(out[i].Locks, func(a, b LockInfo) int { return strings.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}
