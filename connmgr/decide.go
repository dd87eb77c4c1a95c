package connmgr

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Closure is a trim decision: close connection Conn to Peer. The Manager
// counts the peer idle from the decision on. The decision is about that
// connection only: if it is gone when the caller acts on it (lost, and
// maybe another one reported with Connected since), the caller closes
// nothing; the Manager counts a newer connection as connected, in its
// grace period. When Usage.Watched() holds, closing it ends links or
// monitors between local actors and the peer's: the caller must treat the
// close as the node going down for them (remote fires node-down to the
// linked and monitoring actors, with Reason).
type Closure struct {
	Peer   string
	Conn   uint64 // the connection decided about, as given to Manager.Connected
	Score  int64
	Usage  Usage
	Reason error // wraps ErrTrimmed and says why
}

// Candidate is a peer a trim pass is about to close, as Config.Veto sees
// it.
type Candidate struct {
	Peer  string
	Score int64
	Usage Usage
	Since time.Time // connected since
}

// Elapsed reports a lock whose window ended: At is its end. Extended says
// whether its callback (or a Lock call meanwhile) extended it, until Until.
type Elapsed struct {
	Peer     string
	Lock     string
	At       time.Time
	Extended bool
	Until    time.Time
}

// Decisions is what Tick decided; the caller carries it out.
type Decisions struct {
	Elapsed []Elapsed // locks whose window ended, extended or not
	Close   []Closure // peers to close, lowest score first
	Forget  []string  // peers forgotten: stop redialing them, free their state
}

// candidate is a peer considered by a trim or forget pass, copied out of
// its record under the lock so that scorers are queried without it.
type candidate struct {
	r     *record
	p     *Peer
	sc    []attached
	conn  uint64
	since time.Time
	score int64
	usage Usage
}

// rank orders the candidates of a trim pass: by score, then the longer
// silent first, then by id. Small, so that selecting moves little.
type rank struct {
	score, last int64
	i           int32 // index in the pass's candidates
}

// selectLowest returns the k lowest of keys by cmp, sorted, reordering
// keys: a bounded max-heap over the first k, so a pass that closes a few
// of many peers costs about one comparison per peer, not a full sort.
func selectLowest(keys []rank, k int, cmp func(a, b rank) int) []rank {
	if k >= len(keys) {
		slices.SortFunc(keys, cmp)
		return keys
	}
	if k <= 0 {
		return keys[:0]
	}
	h := keys[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i, cmp)
	}
	for _, x := range keys[k:] {
		if cmp(x, h[0]) < 0 {
			h[0] = x
			siftDown(h, 0, cmp)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}

// siftDown restores the max-heap property of h below i.
func siftDown(h []rank, i int, cmp func(a, b rank) int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		big := l
		if r := l + 1; r < len(h) && cmp(h[r], h[l]) > 0 {
			big = r
		}
		if cmp(h[big], h[i]) <= 0 {
			return
		}
		h[i], h[big] = h[big], h[i]
		i = big
	}
}

// Tick runs ExpireLocks, Trim and Forget at now, in that order (an expired
// lock no longer protects, an extended one still does), and returns their
// decisions. Call it periodically (every second or so) and whenever a
// connection opens above the high watermark.
func (m *Manager) Tick(now time.Time) Decisions {
	return Decisions{
		Elapsed: m.ExpireLocks(now),
		Close:   m.Trim(now),
		Forget:  m.Forget(now),
	}
}

// locked reports whether a lock of r is live at now. Under mu.
func (r *record) locked(now time.Time) bool {
	for i := range r.locks {
		if r.locks[i].until.After(now) {
			return true
		}
	}
	return false
}

// trimmable reports whether a trim may close r at now: connected, managed,
// no tag, no live lock, out of its grace period. Under mu.
func (m *Manager) trimmable(r *record, now time.Time) bool {
	return r.state == Connected && r.kind == Managed && len(r.tags) == 0 && !r.locked(now) &&
		(m.cfg.GracePeriod < 0 || now.Sub(r.since) >= m.cfg.GracePeriod)
}

// Trim runs a trim pass at now, if one is due: more than HighWater peers
// connected and SilencePeriod passed since the last pass. It returns the
// peers to close, lowest score first, enough to bring the connected count
// down to LowWater if there are enough candidates (managed, connected, out
// of their grace period, neither tagged nor locked). Scorers and the veto
// are called without the Manager's lock; a peer whose state changed
// meanwhile (disconnected, protected, reconnected) is not closed. One pass
// runs at a time: a concurrent call returns nil.
func (m *Manager) Trim(now time.Time) []Closure {
	m.mu.Lock()
	silent := m.cfg.SilencePeriod > 0 && !m.lastTrim.IsZero() && now.Sub(m.lastTrim) < m.cfg.SilencePeriod
	if m.trimming || silent || m.connected <= m.cfg.HighWater {
		m.mu.Unlock()
		return nil
	}
	m.trimming, m.lastTrim = true, now
	m.stats.Trims++
	excess, connected := m.connected-m.cfg.LowWater, m.connected
	cands := m.scratch[:0]
	for _, r := range m.peers {
		if m.trimmable(r, now) {
			cands = append(cands, candidate{r: r, p: r.p, sc: r.scorers, conn: r.conn, since: r.since})
		}
	}
	m.mu.Unlock()
	defer func() { // also on a panic in a scorer or the veto: trims must go on
		clear(cands)
		m.mu.Lock()
		m.trimming, m.scratch = false, cands[:0]
		m.mu.Unlock()
	}()

	keys := m.keys[:0]
	for i := range cands {
		c := &cands[i]
		c.usage = c.p.Usage()
		c.score = score(c.p, c.sc, now, m.cfg.TrafficHalfLife)
		keys = append(keys, rank{score: c.score, last: c.p.traffic.Load(), i: int32(i)})
	}
	defer func() { m.keys = keys[:0] }() // only this pass uses them (trimming)
	// The veto may turn down MaxVetoes of them: rank that many more.
	want := excess
	if m.cfg.Veto != nil {
		want += m.cfg.MaxVetoes
	}
	lowest := selectLowest(keys, want, func(a, b rank) int {
		if c := cmp.Compare(a.score, b.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.last, b.last); c != 0 {
			return c // the longer silent first
		}
		return strings.Compare(cands[a.i].p.id, cands[b.i].p.id)
	})
	chosen := lowest[:0]
	vetoes := 0
	for _, k := range lowest {
		if len(chosen) == excess {
			break
		}
		c := &cands[k.i]
		if m.cfg.Veto != nil && vetoes < m.cfg.MaxVetoes &&
			m.cfg.Veto(Candidate{Peer: c.p.id, Score: c.score, Usage: c.usage, Since: c.since}) {
			vetoes++
			continue
		}
		chosen = append(chosen, k)
	}

	out := make([]Closure, 0, len(chosen))
	m.mu.Lock()
	m.stats.Vetoed += uint64(vetoes)
	for _, k := range chosen {
		c := &cands[k.i]
		if m.connected <= m.cfg.LowWater {
			break
		}
		if m.peers[c.p.id] != c.r || c.r.conn != c.conn || c.r.since != c.since || !m.trimmable(c.r, now) {
			continue // changed while unlocked
		}
		c.r.state, c.r.since, c.r.trimmedAt = Idle, now, now
		m.connected--
		out = append(out, Closure{Peer: c.p.id, Conn: c.conn, Score: c.score, Usage: c.usage, Reason: trimReason(c, connected, m.cfg)})
	}
	m.stats.Closed += uint64(len(out))
	m.mu.Unlock()
	if m.ev != nil {
		for _, c := range out {
			_ = m.ev.trimmed.Emit(PeerTrimmed{Peer: c.Peer, Score: c.Score, Usage: c.Usage, Reason: c.Reason, Time: now})
		}
	}
	return out
}

func trimReason(c *candidate, connected int, cfg Config) error {
	var watched string
	if c.usage.Watched() {
		watched = fmt.Sprintf("; its %d links and %d monitors see the node down", c.usage.Links, c.usage.Monitors)
	}
	return fmt.Errorf("%w: %d peers connected, above the high watermark %d (trimming to %d); score %d among the lowest%s",
		ErrTrimmed, connected, cfg.HighWater, cfg.LowWater, c.score, watched)
}

// ExpireLocks drops the locks whose window ended by now, calls their
// callbacks (without the Manager's lock), re-locks those a callback
// extended, and reports them all, sorted by peer and lock name.
func (m *Manager) ExpireLocks(now time.Time) []Elapsed {
	m.mu.Lock()
	if m.locks == 0 {
		m.mu.Unlock()
		return nil
	}
	var out []Elapsed
	var fns []LockFunc
	var recs []*record
	for id, r := range m.peers {
		kept := r.locks[:0]
		for _, l := range r.locks {
			if l.until.After(now) {
				kept = append(kept, l)
				continue
			}
			out = append(out, Elapsed{Peer: id, Lock: l.name, At: l.until})
			fns = append(fns, l.onElapse)
			recs = append(recs, r)
			if l.onElapse != nil {
				r.expiring++ // until its callback has run: Forget keeps r
			}
			m.locks--
		}
		clear(r.locks[len(kept):])
		r.locks = kept
	}
	m.stats.Elapsed += uint64(len(out))
	m.mu.Unlock()

	for i, fn := range fns {
		if fn == nil {
			continue
		}
		ext := fn(out[i].Peer, out[i].Lock, now)
		until := now.Add(min(ext, m.cfg.MaxLock))
		m.mu.Lock()
		recs[i].expiring--
		if r, ok := m.peers[out[i].Peer]; ok {
			if j := slices.IndexFunc(r.locks, func(l lock) bool { return l.name == out[i].Lock }); j >= 0 {
				// The callback (or another caller) locked it again already.
				out[i].Extended, out[i].Until = true, r.locks[j].until
			} else if ext > 0 && m.setLock(r, lock{name: out[i].Lock, until: until, onElapse: fn}) == nil {
				out[i].Extended, out[i].Until = true, until
			}
			if out[i].Extended {
				m.stats.Extended++
			}
		}
		m.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Elapsed) int {
		return cmp.Or(strings.Compare(a.Peer, b.Peer), strings.Compare(a.Lock, b.Lock))
	})
	if m.ev != nil {
		for _, e := range out {
			_ = m.ev.elapsed.Emit(LockElapsed{Peer: e.Peer, Lock: e.Lock, Extended: e.Extended, Until: e.Until, Time: now})
		}
	}
	return out
}

// forgettable reports whether Forget may drop r at now, but for its
// Holders: managed, idle, no tag, no lock (an elapsed one too, until
// ExpireLocks has called its callback), no usage, and neither a state
// change nor traffic for ForgetAfter. Under mu.
func (m *Manager) forgettable(r *record, now time.Time) bool {
	if r.kind != Managed || r.state != Idle || len(r.tags) > 0 || len(r.locks) > 0 || r.expiring > 0 || !r.p.Usage().zero() {
		return false
	}
	last := r.since
	if t := r.p.traffic.Load(); t > last.UnixNano() {
		last = time.Unix(0, t)
	}
	return now.Sub(last) >= m.cfg.ForgetAfter
}

// Forget drops the peers that nothing needs any more (see
// Config.ForgetAfter; stable peers never) and returns their ids, sorted.
// The caller forgets them too: no more redials. Holders are asked without
// the Manager's lock.
func (m *Manager) Forget(now time.Time) []string {
	var ids []string
	var held []candidate
	m.mu.Lock()
	for id, r := range m.peers {
		if !m.forgettable(r, now) {
			continue
		}
		if slices.ContainsFunc(r.scorers, func(a attached) bool { _, ok := a.s.(Holder); return ok }) {
			held = append(held, candidate{r: r, p: r.p, sc: r.scorers})
			continue
		}
		m.drop(id, r)
		ids = append(ids, id)
	}
	m.stats.Forgotten += uint64(len(ids))
	m.mu.Unlock()

	if len(held) > 0 {
		free := held[:0]
		for _, c := range held {
			if !holds(c.sc) {
				free = append(free, c)
			}
		}
		m.mu.Lock()
		for _, c := range free {
			if m.peers[c.p.id] == c.r && m.forgettable(c.r, now) {
				m.drop(c.p.id, c.r)
				ids = append(ids, c.p.id)
				m.stats.Forgotten++
			}
		}
		m.mu.Unlock()
	}
	slices.Sort(ids)
	return ids
}
