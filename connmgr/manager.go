package connmgr

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Kind is how the Manager treats a peer.
type Kind uint8

const (
	// Managed peers are trimmed by score above the high watermark and
	// forgotten when idle.
	Managed Kind = iota
	// Stable peers are kept up: never trimmed, never forgotten. The caller
	// redials them with backoff after a loss; only Remove drops them.
	Stable
)

// String returns "managed" or "stable".
func (k Kind) String() string {
	if k == Stable {
		return "stable"
	}
	return "managed"
}

// MarshalText encodes the kind as its String.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes what MarshalText encodes; anything else is an
// error matching ErrInvalid.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "managed":
		*k = Managed
	case "stable":
		*k = Stable
	default:
		return fmt.Errorf("%w: peer kind %.32q", ErrInvalid, b)
	}
	return nil
}

// State is whether a peer is connected, as the caller reported it (or as a
// trim decided).
type State uint8

const (
	// Idle: no connection (never connected, lost, or trimmed).
	Idle State = iota
	// Connected: a connection is up (Manager.Connected).
	Connected
)

// String returns "idle" or "connected".
func (s State) String() string {
	if s == Connected {
		return "connected"
	}
	return "idle"
}

// MarshalText encodes the state as its String.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes what MarshalText encodes; anything else is an
// error matching ErrInvalid.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "idle":
		*s = Idle
	case "connected":
		*s = Connected
	default:
		return fmt.Errorf("%w: peer state %.32q", ErrInvalid, b)
	}
	return nil
}

// LockFunc is called when a lock's window elapses (see Manager.Lock), with
// the peer, the lock's name and the now of the ExpireLocks or Tick call,
// on that call's goroutine and without the Manager's lock held. A positive
// result extends the lock by that much (capped at Config.MaxLock); zero or
// less lets it go.
type LockFunc func(peer, lock string, now time.Time) time.Duration

// Manager tracks peers and decides which to close and which to forget.
// It is a state machine: it starts no goroutine, reads no clock (every
// call that needs the time takes now) and does no I/O; its decisions are
// returned for the caller to carry out. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg Config
	ev  *emitters

	mu        sync.Mutex
	peers     map[string]*record
	connected int
	locks     int         // live locks over all peers: ExpireLocks skips the scan when 0
	lastTrim  time.Time   // start of the last trim pass, for SilencePeriod
	trimming  bool        // a pass is under way (its lock-free part): no second one
	scratch   []candidate // a trim pass's, reused (trimming guards them)
	keys      []rank
	closed    bool
	stats     Stats
}

// record is the Manager's state of one peer, under Manager.mu.
type record struct {
	peer      Peer  // with the record, so a trim pass reads one block
	p         *Peer // &peer, the handle
	kind      Kind
	state     State
	conn      uint64    // the caller's identity of the last connection reported up (Connected)
	gone      uint64    // the newest connection reported gone (Disconnected): reported up later, it is stale
	since     time.Time // when the state began (Add for a new peer)
	trimmedAt time.Time // last trim decision; zero if never
	tags      []string  // protection tags, sorted
	locks     []lock
	expiring  int        // elapsed locks whose callback runs now (ExpireLocks): not forgettable
	scorers   []attached // copy-on-write: a published slice never changes
}

type lock struct {
	name     string
	until    time.Time
	onElapse LockFunc
}

// New returns a Manager, or an error matching ErrInvalid for a bad
// configuration (or the bus's error when Config.Events is closed).
func New(cfg Config) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ev, err := newEmitters(cfg.Events)
	if err != nil {
		return nil, fmt.Errorf("connmgr: event emitters: %w", err)
	}
	return &Manager{cfg: cfg, ev: ev, peers: map[string]*record{}}, nil
}

// Config returns the configuration in use, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Close releases the Manager's event emitters. The Manager keeps working
// (it emits nothing more). Idempotent.
func (m *Manager) Close() {
	m.mu.Lock()
	done := m.closed
	m.closed = true
	m.mu.Unlock()
	if !done {
		m.ev.close()
	}
}

// Add tracks the peer id (idle, of kind k, idle since now) and returns its
// handle; a peer already tracked keeps its state and kind, and its handle
// is returned. Beyond Config.MaxPeers a new peer is refused with an error
// matching ErrTooManyPeers.
func (m *Manager) Add(id string, k Kind, now time.Time) (*Peer, error) {
	if err := checkName("peer id", id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.peers[id]; ok {
		return r.p, nil
	}
	if len(m.peers) >= m.cfg.MaxPeers {
		m.stats.Refused++
		return nil, fmt.Errorf("%w: %d tracked, refusing %.64q", ErrTooManyPeers, m.cfg.MaxPeers, id)
	}
	r := &record{kind: k, since: now}
	r.peer.id = id
	r.p = &r.peer
	m.peers[id] = r
	return r.p, nil
}

// Peer returns the handle of a tracked peer.
func (m *Manager) Peer(id string) (*Peer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[id]
	if !ok {
		return nil, false
	}
	return r.p, true
}

// Remove stops tracking the peer, whatever its kind; it reports whether it
// was tracked.
func (m *Manager) Remove(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[id]
	if ok {
		m.drop(id, r)
	}
	return ok
}

// drop deletes a record, keeping the counts. Under mu.
func (m *Manager) drop(id string, r *record) {
	if r.state == Connected {
		m.connected--
	}
	m.locks -= len(r.locks)
	delete(m.peers, id)
}

// get returns the record of id, or an error matching ErrUnknownPeer.
// Under mu.
func (m *Manager) get(id string) (*record, error) {
	r, ok := m.peers[id]
	if !ok {
		return nil, fmt.Errorf("%w: %.64q", ErrUnknownPeer, id)
	}
	return r, nil
}

// SetKind makes the peer managed or stable.
func (m *Manager) SetKind(id string, k Kind) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return err
	}
	r.kind = k
	return nil
}

// Connected records that connection conn to the peer is up at now: it
// counts against the watermarks, and the grace period starts. conn is the
// caller's identity of the connection, higher for each new connection to
// the peer (a sequence number); a trim decision names the connection it is
// about (Closure.Conn), so that the caller closes that one and not one
// made since. Idempotent for the same conn while connected (the grace
// period does not restart); a higher conn replaces it and its grace period
// starts at now; a lower one is a stale report (a later connection was
// reported already) and changes nothing, and so is a connection already
// reported gone (Disconnected), whose report was overtaken by its loss.
// A conn of 0 is no identity: never stale.
func (m *Manager) Connected(id string, conn uint64, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return err
	}
	switch {
	case conn < r.conn: // stale: a later connection was reported
	case conn != 0 && conn <= r.gone: // stale: it is gone already
	case r.state != Connected:
		r.state, r.conn, r.since = Connected, conn, now
		m.connected++
	case conn != r.conn:
		r.conn, r.since = conn, now
	}
	return nil
}

// Disconnected records that connection conn to the peer is gone at now:
// if it is the one reported up (or a later one), the peer no longer
// counts, and its idle time (for Forget) starts; a later Connected of conn
// is stale. The loss of an older connection changes nothing else. A no-op
// for an idle peer (one a trim decided to close is idle from the decision
// on).
func (m *Manager) Disconnected(id string, conn uint64, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return err
	}
	r.gone = max(r.gone, conn)
	if r.state == Connected && conn >= r.conn {
		r.state, r.since = Idle, now
		m.connected--
	}
	return nil
}

// Protect tags the peer: a peer with any tag is never trimmed nor
// forgotten. Tagging twice with one tag is one tag. Beyond Config.MaxTags
// tags the call fails with ErrTooManyTags.
func (m *Manager) Protect(id, tag string) error {
	if err := checkName("tag", tag); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(r.tags, tag)
	if found {
		return nil
	}
	if len(r.tags) >= m.cfg.MaxTags {
		return fmt.Errorf("%w: %.64q has %d", ErrTooManyTags, id, len(r.tags))
	}
	r.tags = slices.Insert(r.tags, i, tag)
	return nil
}

// Unprotect removes the tag from the peer and reports whether the peer is
// still protected (by another tag).
func (m *Manager) Unprotect(id, tag string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[id]
	if !ok {
		return false
	}
	if i, found := slices.BinarySearch(r.tags, tag); found {
		r.tags = slices.Delete(r.tags, i, i+1)
	}
	return len(r.tags) > 0
}

// Lock protects the peer from trimming and forgetting from now for d,
// capped at Config.MaxLock, under the name lock; it returns when the lock
// ends. Locking again under the same name sets a new window (and
// callback). When the window elapses, ExpireLocks (or Tick) drops the lock,
// calls onElapse (if not nil), which may extend it, and reports it. Beyond
// Config.MaxLocks locks the call fails with ErrTooManyLocks.
func (m *Manager) Lock(id, name string, d time.Duration, now time.Time, onElapse LockFunc) (time.Time, error) {
	if err := checkName("lock name", name); err != nil {
		return time.Time{}, err
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%w: lock window %v", ErrInvalid, d)
	}
	until := now.Add(min(d, m.cfg.MaxLock))
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return time.Time{}, err
	}
	if err := m.setLock(r, lock{name: name, until: until, onElapse: onElapse}); err != nil {
		return time.Time{}, fmt.Errorf("%w: %.64q has %d", err, id, len(r.locks))
	}
	return until, nil
}

// setLock replaces or adds l on r. Under mu.
func (m *Manager) setLock(r *record, l lock) error {
	for i := range r.locks {
		if r.locks[i].name == l.name {
			r.locks[i] = l
			return nil
		}
	}
	if len(r.locks) >= m.cfg.MaxLocks {
		return ErrTooManyLocks
	}
	r.locks = append(r.locks, l)
	m.locks++
	return nil
}

// Unlock drops the peer's lock name (its callback is not called) and
// reports whether there was one.
func (m *Manager) Unlock(id, name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[id]
	if !ok {
		return false
	}
	for i := range r.locks {
		if r.locks[i].name == name {
			r.locks = slices.Delete(r.locks, i, i+1)
			m.locks--
			return true
		}
	}
	return false
}

// Attach attaches s to the peer under name, replacing the scorer attached
// under that name if any. Beyond Config.MaxScorers scorers it fails with
// ErrTooManyScorers.
func (m *Manager) Attach(id, name string, s Scorer) error {
	if err := checkName("scorer name", name); err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("%w: nil scorer %.64q", ErrInvalid, name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.get(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(r.scorers, func(a attached) bool { return a.name == name })
	if i < 0 && len(r.scorers) >= m.cfg.MaxScorers {
		return fmt.Errorf("%w: %.64q has %d", ErrTooManyScorers, id, len(r.scorers))
	}
	// Copy on write: a trim pass may be reading the old slice unlocked.
	sc := slices.Clone(r.scorers)
	if i < 0 {
		sc = append(sc, attached{name: name, s: s})
	} else {
		sc[i].s = s
	}
	r.scorers = sc
	return nil
}

// Detach removes the scorer attached to the peer under name and reports
// whether there was one.
func (m *Manager) Detach(id, name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.peers[id]
	if !ok {
		return false
	}
	i := slices.IndexFunc(r.scorers, func(a attached) bool { return a.name == name })
	if i < 0 {
		return false
	}
	r.scorers = slices.Delete(slices.Clone(r.scorers), i, i+1)
	return true
}

// Score returns the peer's score at now (see Scorer), querying its
// scorers.
func (m *Manager) Score(id string, now time.Time) (int64, error) {
	m.mu.Lock()
	r, err := m.get(id)
	var p *Peer
	var sc []attached
	if err == nil {
		p, sc = r.p, r.scorers
	}
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return score(p, sc, now, m.cfg.TrafficHalfLife), nil
}

// Len returns the number of peers tracked.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.peers)
}

// Stats counts what a Manager did, for metrics.
type Stats struct {
	Peers     int    `json:"peers"`     // tracked now
	Connected int    `json:"connected"` // connected now
	Trims     uint64 `json:"trims"`     // trim passes run (above the high watermark)
	Closed    uint64 `json:"closed"`    // peers a trim decided to close
	Vetoed    uint64 `json:"vetoed"`    // vetoes honoured
	Forgotten uint64 `json:"forgotten"` // peers forgotten
	Elapsed   uint64 `json:"elapsed"`   // lock windows elapsed
	Extended  uint64 `json:"extended"`  // of which extended by their callback
	Refused   uint64 `json:"refused"`   // Adds refused (MaxPeers)
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Peers, s.Connected = len(m.peers), m.connected
	return s
}
