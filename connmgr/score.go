package connmgr

import (
	"sync/atomic"
	"time"
)

// Scorer is what a component attaches to a peer to say how much it wants
// the peer kept (Manager.Attach). Score is pulled only when the Manager
// needs a score (a trim pass, a Snapshot), never on the component's hot
// path, and without the Manager's lock held, from the goroutine that called
// Trim, Tick or Snapshot: it must be safe for that goroutine, quick, and
// must not block. A value outside [ScoreMin, ScoreMax] counts as the
// nearest bound.
type Scorer interface {
	Score() int64
}

// Holder is implemented by a Scorer that can keep an idle peer from being
// forgotten (refs held to its actors, say): Forget asks Holds, without the
// Manager's lock held, of each peer it is about to forget, and keeps the
// peer while one of its scorers holds it.
type Holder interface {
	Holds() bool
}

// ScorerFunc adapts a function to Scorer.
type ScorerFunc func() int64

// Score calls f.
func (f ScorerFunc) Score() int64 { return f() }

// The range of one scorer's score, and of each built-in component. A
// peer's score is the sum of its built-in components (each in [0,
// ScoreMax]) and of its scorers' scores (each clamped to [ScoreMin,
// ScoreMax]); Config.MaxScorers bounds the sum. Higher is kept longer; a
// negative score marks a peer to close first.
const (
	ScoreMin = -1000
	ScoreMax = 1000
)

// Weights of the built-in components; each component is capped at
// ScoreMax. A live link or monitor is worth the most (closing the peer
// disturbs actors: they see the node down); recent traffic alone is worth
// at most half as much (closing the peer costs a reconnect).
const (
	TrafficWeight = 500      // at the last traffic, halving every Config.TrafficHalfLife
	AskWeight     = 100      // per pending ask
	WatchedWeight = ScoreMax // per live link or monitor between actors
	RefWeight     = 10       // per ref held to the peer's actors
)

// trafficResolution: Peer.Traffic skips the store when the recorded time is
// this recent, so a busy peer's senders do not all write one cache line.
const trafficResolution = int64(time.Millisecond)

// Peer is the handle of a tracked peer (Manager.Add): the caller records
// traffic and usage on it without taking the Manager's lock. Its methods
// are safe for concurrent use and lock-free. A handle outlives its peer's
// forgetting harmlessly (what is recorded on it is then ignored); add the
// peer again for a new handle.
type Peer struct {
	id       string
	traffic  atomic.Int64 // unix ns of the last traffic; 0: none
	asks     atomic.Int64
	links    atomic.Int64
	monitors atomic.Int64
	refs     atomic.Int64
}

// ID returns the peer's id, as given to Add.
func (p *Peer) ID() string { return p.id }

// Traffic records traffic with the peer at now (a frame sent or read): the
// traffic-recency component of its score is TrafficWeight at now and halves
// every Config.TrafficHalfLife after, and a peer with recent traffic is not
// forgotten. Cost: an atomic load, and a store at most once a millisecond.
func (p *Peer) Traffic(now time.Time) {
	n := now.UnixNano()
	if n-p.traffic.Load() >= trafficResolution {
		p.traffic.Store(n)
	}
}

// LastTraffic returns the time of the last traffic recorded (the zero time
// if none).
func (p *Peer) LastTraffic() time.Time {
	if n := p.traffic.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// AddAsks adds delta (negative to remove) to the peer's pending asks.
func (p *Peer) AddAsks(delta int64) { p.asks.Add(delta) }

// AddLinks adds delta to the live links between local actors and the
// peer's actors.
func (p *Peer) AddLinks(delta int64) { p.links.Add(delta) }

// AddMonitors adds delta to the live monitors between local actors and the
// peer's actors.
func (p *Peer) AddMonitors(delta int64) { p.monitors.Add(delta) }

// AddRefs adds delta to the refs held to the peer's actors.
func (p *Peer) AddRefs(delta int64) { p.refs.Add(delta) }

// Usage returns the counters recorded on the peer (negative ones as 0).
func (p *Peer) Usage() Usage {
	return Usage{
		Asks:     max(0, p.asks.Load()),
		Links:    max(0, p.links.Load()),
		Monitors: max(0, p.monitors.Load()),
		Refs:     max(0, p.refs.Load()),
	}
}

// Usage is what local actors have with a peer: each count keeps the peer
// from being forgotten and adds to its score.
type Usage struct {
	Asks     int64 `json:"asks"`     // pending asks
	Links    int64 `json:"links"`    // live links
	Monitors int64 `json:"monitors"` // live monitors
	Refs     int64 `json:"refs"`     // refs held to its actors
}

// Watched reports whether closing the peer ends links or monitors: the
// actors on the other end must then be told the node is down.
func (u Usage) Watched() bool { return u.Links > 0 || u.Monitors > 0 }

func (u Usage) zero() bool { return u == Usage{} }

// builtin returns the built-in part of the peer's score at now: traffic
// recency plus asks, links and monitors, and refs, each in [0, ScoreMax].
func (p *Peer) builtin(now time.Time, halfLife time.Duration) int64 {
	u := p.Usage()
	s := capped(u.Asks, AskWeight) + capped(u.Links+u.Monitors, WatchedWeight) + capped(u.Refs, RefWeight)
	return s + trafficScore(p.traffic.Load(), now, halfLife)
}

// capped is n×w capped at ScoreMax, without overflow (n ≥ 0, w ≥ 1).
func capped(n, w int64) int64 { return min(ScoreMax, min(n, ScoreMax)*w) }

// trafficScore is TrafficWeight at the last traffic, halving every
// halfLife, linear in between (2^-f, f in [0, 1), is approximated by
// 1 - f/2: continuous, decreasing, within 6%, and a tenth of math.Exp2's
// cost, which a trim pass pays per peer).
func trafficScore(last int64, now time.Time, halfLife time.Duration) int64 {
	if last == 0 {
		return 0
	}
	age := now.UnixNano() - last
	if age <= 0 {
		return TrafficWeight
	}
	n := age / int64(halfLife)
	if n >= 16 {
		return 0
	}
	f := float64(age%int64(halfLife)) / float64(halfLife)
	return int64(TrafficWeight / float64(int64(1)<<n) * (1 - f/2))
}

// attached is a scorer attached to a peer under a name.
type attached struct {
	name string
	s    Scorer
}

// score returns the peer's score at now: built-in components plus its
// scorers, each clamped. Called without the Manager's lock (sc is never
// modified once published: Attach and Detach copy).
func score(p *Peer, sc []attached, now time.Time, halfLife time.Duration) int64 {
	s := p.builtin(now, halfLife)
	for _, a := range sc {
		s += min(ScoreMax, max(ScoreMin, a.s.Score()))
	}
	return s
}

// holds reports whether one of sc holds its peer (see Holder).
func holds(sc []attached) bool {
	for _, a := range sc {
		if h, ok := a.s.(Holder); ok && h.Holds() {
			return true
		}
	}
	return false
}
