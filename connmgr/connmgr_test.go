package connmgr

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newTest returns a Manager with cfg, failing the test on error.
func newTest(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// connect adds and connects the peers at now.
func connect(t testing.TB, m *Manager, now time.Time, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := m.Add(id, Managed, now); err != nil {
			t.Fatal(err)
		}
		if err := m.Connected(id, 1, now); err != nil {
			t.Fatal(err)
		}
	}
}

func peerIDs(cs []Closure) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.Peer)
	}
	return ids
}

func fixed(n int64) Scorer { return ScorerFunc(func() int64 { return n }) }

// noTime: grace and silence off, so tests look at one mechanism at a time.
func noTime(c Config) Config {
	c.GracePeriod, c.SilencePeriod = -1, -1
	return c
}

func TestTrimOrderByScore(t *testing.T) {
	type peer struct {
		id      string
		score   int64 // attached scorer; 0: none
		asks    int64
		links   int64
		traffic time.Duration // before now; 0: none
	}
	cases := []struct {
		name      string
		high, low int
		peers     []peer
		want      []string
	}{
		{"lowest scorer first", 4, 2, []peer{{id: "a", score: 30}, {id: "b", score: 10}, {id: "c", score: 20}, {id: "d", score: 40}, {id: "e", score: 50}}, []string{"b", "c", "a"}},
		{"negative first", 3, 2, []peer{{id: "a", score: 1}, {id: "b", score: -5}, {id: "c", score: 2}, {id: "d", score: 3}}, []string{"b", "a"}},
		{"out-of-range scorer clamped", 2, 1, []peer{{id: "a", score: 1 << 40}, {id: "b", score: ScoreMax}, {id: "c", score: ScoreMax - 1}}, []string{"c", "a"}},
		{"pending asks keep", 2, 1, []peer{{id: "a", asks: 1}, {id: "b"}, {id: "c", asks: 2}}, []string{"b", "a"}},
		{"links outrank asks", 2, 1, []peer{{id: "a", links: 1}, {id: "b", asks: 2}, {id: "c", links: 2}}, []string{"b", "a"}},
		{"recent traffic keeps", 2, 1, []peer{{id: "a", traffic: time.Second}, {id: "b", traffic: time.Hour}, {id: "c", traffic: time.Minute}}, []string{"b", "c"}},
		{"ties: older traffic first, then id", 3, 1, []peer{{id: "b"}, {id: "a"}, {id: "c"}, {id: "d"}}, []string{"a", "b", "c"}},
		{"not above high: nothing", 4, 1, []peer{{id: "a"}, {id: "b"}, {id: "c"}, {id: "d"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTest(t, noTime(Config{HighWater: tc.high, LowWater: tc.low}))
			now := t0.Add(time.Hour)
			for _, p := range tc.peers {
				connect(t, m, t0, p.id)
				h, _ := m.Peer(p.id)
				if p.score != 0 {
					if err := m.Attach(p.id, "s", fixed(p.score)); err != nil {
						t.Fatal(err)
					}
				}
				h.AddAsks(p.asks)
				h.AddLinks(p.links)
				if p.traffic != 0 {
					h.Traffic(now.Add(-p.traffic))
				}
			}
			got := m.Trim(now)
			if !slices.Equal(peerIDs(got), tc.want) {
				t.Fatalf("closed %v, want %v", peerIDs(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Score < got[i-1].Score {
					t.Fatalf("not lowest first: %+v", got)
				}
			}
			if st := m.Stats(); st.Connected != len(tc.peers)-len(tc.want) || st.Closed != uint64(len(tc.want)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestTrafficDecay(t *testing.T) {
	h := &Peer{id: "a"}
	half := 10 * time.Second
	cases := []struct {
		age  time.Duration
		want int64
	}{{0, TrafficWeight}, {-time.Second, TrafficWeight}, {half, TrafficWeight / 2}, {2 * half, TrafficWeight / 4}, {20 * half, 0}}
	for _, tc := range cases {
		h.traffic.Store(0)
		h.Traffic(t0)
		if got := h.builtin(t0.Add(tc.age), half); got != tc.want {
			t.Errorf("age %v: score %d, want %d", tc.age, got, tc.want)
		}
	}
	if got := (&Peer{}).builtin(t0, half); got != 0 {
		t.Errorf("no traffic: score %d", got)
	}
}

func TestGracePeriod(t *testing.T) {
	grace := 30 * time.Second
	cases := []struct {
		name      string
		reconnect time.Duration // reconnect "b" this long after t0; 0: no
		at        time.Duration
		want      []string
	}{
		{"within grace: none", 0, grace - 1, nil},
		{"at grace end", 0, grace, []string{"a", "b"}},
		{"reconnect restarts grace", 20 * time.Second, grace + time.Second, []string{"a", "c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTest(t, Config{HighWater: 2, LowWater: 1, GracePeriod: grace, SilencePeriod: -1})
			connect(t, m, t0, "a", "b", "c")
			m.Attach("c", "s", fixed(1))
			if tc.reconnect != 0 {
				m.Disconnected("b", 1, t0.Add(tc.reconnect))
				m.Connected("b", 2, t0.Add(tc.reconnect))
			}
			if got := peerIDs(m.Trim(t0.Add(tc.at))); !slices.Equal(got, tc.want) {
				t.Fatalf("closed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSilencePeriod(t *testing.T) {
	silence := 10 * time.Second
	m := newTest(t, Config{HighWater: 2, LowWater: 1, GracePeriod: -1, SilencePeriod: silence})
	connect(t, m, t0, "a", "b", "c")
	if got := m.Trim(t0); len(got) != 2 {
		t.Fatalf("first pass closed %v", peerIDs(got))
	}
	connect(t, m, t0, "a", "b") // above high again at once
	if got := m.Trim(t0.Add(silence - 1)); got != nil {
		t.Fatalf("pass within the silence period closed %v", peerIDs(got))
	}
	if got := m.Trim(t0.Add(silence)); len(got) != 2 {
		t.Fatalf("pass after the silence period closed %v", peerIDs(got))
	}
	if st := m.Stats(); st.Trims != 2 {
		t.Fatalf("trims %d, want 2", st.Trims)
	}
}

func TestProtection(t *testing.T) {
	m := newTest(t, noTime(Config{HighWater: 2, LowWater: 1}))
	connect(t, m, t0, "a", "b", "c", "d")
	for _, tag := range []string{"dht", "pubsub"} {
		if err := m.Protect("a", tag); err != nil {
			t.Fatal(err)
		}
	}
	m.Protect("b", "dht")
	m.Protect("b", "dht") // one tag
	if got := peerIDs(m.Trim(t0)); !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("closed %v, want [c d]", got)
	}
	connect(t, m, t0, "c", "d")
	if !m.Unprotect("a", "dht") {
		t.Fatal("a: still protected by pubsub")
	}
	if m.Unprotect("b", "dht") {
		t.Fatal("b: no tag left")
	}
	m.Attach("c", "s", fixed(10))
	m.Attach("d", "s", fixed(10))
	if got := peerIDs(m.Trim(t0)); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("closed %v, want [b c d]", got)
	}
}

func TestLocks(t *testing.T) {
	const maxLock = time.Minute
	type step struct {
		at        time.Duration
		wantClose []string
		wantEl    []string // "peer/lock+" when extended
	}
	cases := []struct {
		name   string
		lock   time.Duration
		extend []time.Duration // successive callback results
		steps  []step
	}{
		{"protects until expiry", 10 * time.Second, nil, []step{
			{at: 9 * time.Second},
			{at: 10 * time.Second, wantClose: []string{"a"}, wantEl: []string{"a/l"}},
		}},
		{"capped at MaxLock", time.Hour, nil, []step{
			{at: maxLock - 1},
			{at: maxLock, wantClose: []string{"a"}, wantEl: []string{"a/l"}},
		}},
		{"extended by callback, extension capped", 10 * time.Second, []time.Duration{time.Hour, 0}, []step{
			{at: 10 * time.Second, wantEl: []string{"a/l+"}},
			{at: 10*time.Second + maxLock - 1},
			{at: 10*time.Second + maxLock, wantClose: []string{"a"}, wantEl: []string{"a/l"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0, MaxLock: maxLock}))
			connect(t, m, t0, "a", "b")
			m.Protect("b", "keep")
			calls := 0
			var fn LockFunc
			if tc.extend != nil {
				fn = func(peer, lock string, now time.Time) time.Duration {
					calls++
					return tc.extend[calls-1]
				}
			}
			until, err := m.Lock("a", "l", tc.lock, t0, fn)
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(min(tc.lock, maxLock)); !until.Equal(want) {
				t.Fatalf("until %v, want %v", until, want)
			}
			for _, s := range tc.steps {
				d := m.Tick(t0.Add(s.at))
				var el []string
				for _, e := range d.Elapsed {
					x := e.Peer + "/" + e.Lock
					if e.Extended {
						x += "+"
					}
					el = append(el, x)
				}
				if !slices.Equal(peerIDs(d.Close), s.wantClose) || !slices.Equal(el, s.wantEl) {
					t.Fatalf("at %v: closed %v elapsed %v, want %v %v", s.at, peerIDs(d.Close), el, s.wantClose, s.wantEl)
				}
			}
			if calls != len(tc.extend) {
				t.Fatalf("callback called %d times, want %d", calls, len(tc.extend))
			}
		})
	}
}

func TestUnlockAndRelock(t *testing.T) {
	m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0}))
	connect(t, m, t0, "a", "b")
	m.Protect("b", "keep")
	m.Lock("a", "l", time.Minute, t0, func(string, string, time.Time) time.Duration {
		t.Fatal("callback of an unlocked lock called")
		return 0
	})
	if !m.Unlock("a", "l") || m.Unlock("a", "l") {
		t.Fatal("Unlock: want true then false")
	}
	if d := m.Tick(t0.Add(time.Hour)); len(d.Elapsed) != 0 || !slices.Equal(peerIDs(d.Close), []string{"a"}) {
		t.Fatalf("after unlock: %+v", d)
	}
	// A callback that locks again itself (it runs without the Manager's lock).
	connect(t, m, t0, "a")
	m.Lock("a", "l", time.Second, t0, func(peer, lock string, now time.Time) time.Duration {
		if _, err := m.Lock(peer, lock, 5*time.Second, now, nil); err != nil {
			t.Error(err)
		}
		return 0
	})
	d := m.Tick(t0.Add(time.Second))
	if len(d.Elapsed) != 1 || !d.Elapsed[0].Extended || !d.Elapsed[0].Until.Equal(t0.Add(6*time.Second)) || len(d.Close) != 0 {
		t.Fatalf("relocked by callback: %+v", d)
	}
}

func TestVeto(t *testing.T) {
	cases := []struct {
		name      string
		maxVetoes int
		vetoed    map[string]bool
		want      []string
		wantAsked int
	}{
		{"veto keeps, next closes", 8, map[string]bool{"a": true}, []string{"b", "c"}, 3},
		{"bounded", 2, map[string]bool{"a": true, "b": true, "c": true, "d": true}, []string{"c", "d"}, 2},
		{"no veto", 8, nil, []string{"a", "b"}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			// 5 connected, low 3: two to close.
			m := newTest(t, noTime(Config{HighWater: 4, LowWater: 3, MaxVetoes: tc.maxVetoes, Veto: func(c Candidate) bool {
				asked++
				return tc.vetoed[c.Peer]
			}}))
			connect(t, m, t0, "a", "b", "c", "d", "e")
			for i, id := range []string{"a", "b", "c", "d", "e"} {
				m.Attach(id, "s", fixed(int64(i)))
			}
			if got := peerIDs(m.Trim(t0)); !slices.Equal(got, tc.want) {
				t.Fatalf("closed %v, want %v", got, tc.want)
			}
			if asked != tc.wantAsked {
				t.Fatalf("veto asked %d times, want %d", asked, tc.wantAsked)
			}
		})
	}
}

// A veto (or a scorer) runs without the Manager's lock: it may protect
// another candidate, and the pass then spares that one.
func TestTrimRevalidates(t *testing.T) {
	var m *Manager
	m = newTest(t, noTime(Config{HighWater: 2, LowWater: 1, Veto: func(c Candidate) bool {
		if c.Peer == "a" {
			m.Protect("b", "late")
		}
		return false
	}}))
	connect(t, m, t0, "a", "b", "c")
	m.Attach("c", "s", fixed(10))
	if got := peerIDs(m.Trim(t0)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("closed %v, want [a] (b protected during the pass)", got)
	}
}

// A connection made while the pass runs unlocked is another one, even at
// the same instant (no grace period): the pass spares it, whether the old
// one was reported lost first or not.
func TestTrimRevalidatesConnection(t *testing.T) {
	for _, lost := range []bool{true, false} {
		t.Run(fmt.Sprintf("lost=%v", lost), func(t *testing.T) {
			var m *Manager
			// 3 connected, low 1: a and b to close, c kept.
			m = newTest(t, noTime(Config{HighWater: 2, LowWater: 1, Veto: func(c Candidate) bool {
				if c.Peer == "a" {
					if lost {
						m.Disconnected("b", 1, t0)
					}
					m.Connected("b", 2, t0)
				}
				return false
			}}))
			connect(t, m, t0, "a", "b", "c")
			m.Attach("b", "s", fixed(1))
			m.Attach("c", "s", fixed(2))
			got := m.Trim(t0)
			if ids := peerIDs(got); !slices.Equal(ids, []string{"a"}) {
				t.Fatalf("closed %v, want [a] (b reconnected during the pass)", ids)
			}
			if st := m.Stats(); st.Connected != 2 {
				t.Fatalf("%d connected, want 2 (b's new connection and c)", st.Connected)
			}
		})
	}
}

// A Closure names the connection it is about; a later connection replaces
// it and is in its grace period; a stale report of an older one changes
// nothing.
func TestClosureNamesConnection(t *testing.T) {
	grace := 10 * time.Second
	m := newTest(t, Config{HighWater: 1, LowWater: 0, GracePeriod: grace, SilencePeriod: -1})
	connect(t, m, t0, "a")
	if _, err := m.Add("b", Managed, t0); err != nil {
		t.Fatal(err)
	}
	m.Connected("b", 7, t0)
	m.Connected("b", 7, t0.Add(grace/2)) // idempotent: the grace period does not restart
	if got := closedConns(m.Trim(t0.Add(grace))); !maps.Equal(got, map[string]uint64{"a": 1, "b": 7}) {
		t.Fatalf("closed %v, want a's connection 1 and b's 7", got)
	}

	// b's connection 7 is lost after the decision and 8 is made: 8 is up,
	// in its grace period, and the late report of 7 does not undo it.
	now := t0.Add(2 * grace)
	m.Disconnected("b", 7, now) // a no-op: b is idle since the decision
	m.Connected("b", 8, now)
	m.Connected("b", 7, now.Add(time.Second))
	connect(t, m, now, "a")
	if got := m.Trim(now.Add(grace - 1)); len(got) != 0 {
		t.Fatalf("closed %+v within the grace period", got)
	}
	if info := peerState(t, m, "b", now.Add(grace-1)); info.State != Connected || !info.Since.Equal(now) {
		t.Fatalf("b: %+v, want connected since %v", info, now)
	}
	if got := closedConns(m.Trim(now.Add(grace))); !maps.Equal(got, map[string]uint64{"a": 1, "b": 8}) {
		t.Fatalf("closed %v, want a's connection 1 and b's 8", got)
	}
}

// closedConns maps the closed peers to the connections decided about.
func closedConns(cs []Closure) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range cs {
		out[c.Peer] = c.Conn
	}
	return out
}

// peerState returns the Snapshot entry of id at now.
func peerState(t *testing.T, m *Manager, id string, now time.Time) PeerInfo {
	t.Helper()
	for _, pi := range m.Snapshot(now) {
		if pi.Peer == id {
			return pi
		}
	}
	t.Fatalf("%s not in the snapshot", id)
	return PeerInfo{}
}

func TestWatchedClosure(t *testing.T) {
	m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0}))
	connect(t, m, t0, "linked", "plain")
	h, _ := m.Peer("linked")
	h.AddLinks(2)
	h.AddMonitors(1)
	got := m.Trim(t0)
	if len(got) != 2 {
		t.Fatalf("closed %v", peerIDs(got))
	}
	for _, c := range got {
		if !errors.Is(c.Reason, ErrTrimmed) {
			t.Fatalf("%s: reason %v", c.Peer, c.Reason)
		}
		watched := c.Peer == "linked"
		if c.Usage.Watched() != watched || strings.Contains(c.Reason.Error(), "links") != watched {
			t.Fatalf("%s: usage %+v reason %q", c.Peer, c.Usage, c.Reason)
		}
	}
	if got[1].Peer != "linked" || got[1].Usage.Links != 2 || got[1].Usage.Monitors != 1 {
		t.Fatalf("linked peer not last or usage lost: %+v", got)
	}
}

func TestStablePeers(t *testing.T) {
	m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0, ForgetAfter: time.Second}))
	if _, err := m.Add("s", Stable, t0); err != nil {
		t.Fatal(err)
	}
	m.Connected("s", 1, t0)
	m.Attach("s", "bad", fixed(ScoreMin)) // lowest score of all
	connect(t, m, t0, "m")
	if got := peerIDs(m.Trim(t0)); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("closed %v, want [m]", got)
	}
	m.Disconnected("s", 1, t0)
	if got := m.Forget(t0.Add(time.Hour)); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("forgot %v, want [m]", got)
	}
	if _, ok := m.Peer("s"); !ok {
		t.Fatal("stable peer forgotten")
	}
	// Made managed, it goes like any other.
	m.SetKind("s", Managed)
	if got := m.Forget(t0.Add(time.Hour)); !slices.Equal(got, []string{"s"}) {
		t.Fatalf("forgot %v, want [s]", got)
	}
}

type holder struct{ held atomic.Bool }

func (h *holder) Score() int64 { return 0 }
func (h *holder) Holds() bool  { return h.held.Load() }

func TestForgetIdle(t *testing.T) {
	const forget = 30 * time.Second
	m := newTest(t, Config{ForgetAfter: forget})
	// 300 distinct short-lived peers: each connects, talks, goes.
	var last time.Time
	for i := range 300 {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		id := fmt.Sprintf("client-%d:7000", i)
		h, err := m.Add(id, Managed, at)
		if err != nil {
			t.Fatal(err)
		}
		m.Connected(id, 1, at)
		h.AddAsks(1)
		h.Traffic(at.Add(10 * time.Millisecond))
		h.AddAsks(-1)
		m.Disconnected(id, 1, at.Add(20*time.Millisecond))
		last = at.Add(20 * time.Millisecond)
	}
	// Peers something still needs are kept.
	keep := map[string]func(){
		"tagged":  func() { m.Protect("tagged", "x") },
		"locked":  func() { m.Lock("locked", "x", time.Hour, t0, nil) },
		"refs":    func() { h, _ := m.Peer("refs"); h.AddRefs(1) },
		"monitor": func() { h, _ := m.Peer("monitor"); h.AddMonitors(1) },
		"stable":  func() { m.SetKind("stable", Stable) },
		"holder":  func() { hd := &holder{}; hd.held.Store(true); m.Attach("holder", "refs", hd) },
		"up":      func() { m.Connected("up", 1, t0) },
	}
	for id, f := range keep {
		m.Add(id, Managed, t0)
		f()
	}
	if got := m.Forget(last.Add(forget - time.Nanosecond)); len(got) != 299 {
		t.Fatalf("forgot %d before the last one's ForgetAfter, want 299", len(got))
	}
	if got := m.Tick(last.Add(forget)).Forget; !slices.Equal(got, []string{"client-299:7000"}) {
		t.Fatalf("forgot %v", got)
	}
	if n := m.Len(); n != len(keep) {
		t.Fatalf("%d peers left, want the %d kept", n, len(keep))
	}
	for _, p := range m.Snapshot(last) {
		if strings.HasPrefix(p.Peer, "client-") {
			t.Fatalf("%s not forgotten", p.Peer)
		}
	}
	if st := m.Stats(); st.Forgotten != 300 {
		t.Fatalf("forgotten %d", st.Forgotten)
	}
	// A holder that lets go, and recent traffic.
	p, _ := m.Peer("holder")
	m.Detach("holder", "refs")
	hd := &holder{}
	m.Attach("holder", "refs", hd)
	p.Traffic(last.Add(forget))
	if got := m.Forget(last.Add(2*forget - 1)); len(got) != 0 {
		t.Fatalf("forgot %v despite recent traffic", got)
	}
	if got := m.Forget(last.Add(2 * forget)); !slices.Equal(got, []string{"holder"}) {
		t.Fatalf("forgot %v, want [holder]", got)
	}
}

func TestBounds(t *testing.T) {
	m := newTest(t, Config{MaxPeers: 3, MaxTags: 2, MaxLocks: 2, MaxScorers: 2})
	for i := range 3 {
		if _, err := m.Add(fmt.Sprint(i), Managed, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Add("3", Managed, t0); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("4th peer: %v", err)
	}
	if _, err := m.Add("0", Managed, t0); err != nil {
		t.Fatalf("known peer at the bound: %v", err)
	}
	cases := []struct {
		name string
		op   func(i int) error
		want error
	}{
		{"tags", func(i int) error { return m.Protect("0", fmt.Sprint("t", i)) }, ErrTooManyTags},
		{"locks", func(i int) error { _, err := m.Lock("0", fmt.Sprint("l", i), time.Second, t0, nil); return err }, ErrTooManyLocks},
		{"scorers", func(i int) error { return m.Attach("0", fmt.Sprint("s", i), fixed(1)) }, ErrTooManyScorers},
	}
	for _, tc := range cases {
		for i := range 2 {
			if err := tc.op(i); err != nil {
				t.Fatalf("%s %d: %v", tc.name, i, err)
			}
		}
		if err := tc.op(0); err != nil {
			t.Fatalf("%s: replacing one at the bound: %v", tc.name, err)
		}
		if err := tc.op(2); !errors.Is(err, tc.want) {
			t.Fatalf("%s beyond the bound: %v", tc.name, err)
		}
	}
	long := strings.Repeat("x", MaxNameLen+1)
	for name, err := range map[string]error{
		"long id":      func() error { _, err := m.Add(long, Managed, t0); return err }(),
		"empty id":     func() error { _, err := m.Add("", Managed, t0); return err }(),
		"long tag":     m.Protect("1", long),
		"long lock":    func() error { _, err := m.Lock("1", long, time.Second, t0, nil); return err }(),
		"zero window":  func() error { _, err := m.Lock("1", "l", 0, t0, nil); return err }(),
		"nil scorer":   m.Attach("1", "s", nil),
		"long scorer":  m.Attach("1", long, fixed(1)),
		"unknown peer": m.Protect("nope", "t"),
	} {
		if !errors.Is(err, ErrInvalid) && !(name == "unknown peer" && errors.Is(err, ErrUnknownPeer)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st := m.Stats(); st.Refused != 1 || st.Peers != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{{HighWater: 10, LowWater: 10}, {HighWater: 10, LowWater: 11}, {HighWater: -1}, {LowWater: -1}} {
		if _, err := New(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	m := newTest(t, Config{})
	c := m.Config()
	if c.HighWater != DefaultHighWater || c.LowWater != DefaultHighWater*3/4 || c.GracePeriod != DefaultGracePeriod ||
		c.ForgetAfter != DefaultForgetAfter || c.MaxPeers != DefaultMaxPeers || c.MaxVetoes != DefaultMaxVetoes {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestSnapshot(t *testing.T) {
	m := newTest(t, Config{HighWater: 10, GracePeriod: time.Minute})
	connect(t, m, t0, "b", "a")
	m.Protect("a", "z")
	m.Protect("a", "y")
	m.Lock("a", "l2", time.Second, t0, nil)
	m.Lock("a", "l1", time.Second, t0, nil)
	m.Attach("a", "s", fixed(7))
	m.Disconnected("b", 1, t0)
	h, _ := m.Peer("a")
	h.AddAsks(1)
	got := m.Snapshot(t0)
	if len(got) != 2 || got[0].Peer != "a" || got[1].Peer != "b" {
		t.Fatalf("snapshot %+v", got)
	}
	a := got[0]
	if a.State != Connected || !a.InGrace || a.Score != 7+AskWeight || !slices.Equal(a.Tags, []string{"y", "z"}) ||
		len(a.Locks) != 2 || a.Locks[0].Name != "l1" || !slices.Equal(a.Scorers, []string{"s"}) || a.Usage.Asks != 1 {
		t.Fatalf("a: %+v", a)
	}
	if got[1].State != Idle || got[1].InGrace {
		t.Fatalf("b: %+v", got[1])
	}
	// A debug client reads the listing back.
	m.SetKind("b", Stable)
	got = m.Snapshot(t0)
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back []PeerInfo
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(back) != 2 || back[0].Kind != Managed || back[0].State != Connected || back[1].Kind != Stable || back[1].State != Idle {
		t.Fatalf("round trip: %+v", back)
	}
	var k Kind
	var st State
	if !errors.Is(k.UnmarshalText([]byte("bogus")), ErrInvalid) || !errors.Is(st.UnmarshalText([]byte("bogus")), ErrInvalid) {
		t.Fatal("an unknown kind or state decodes")
	}
}

// Concurrent use under -race: traffic and usage on handles while peers
// come and go and ticks run.
func TestConcurrent(t *testing.T) {
	m := newTest(t, noTime(Config{HighWater: 20, LowWater: 10, ForgetAfter: time.Millisecond}))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				id := fmt.Sprintf("g%d-%d", g, i%40)
				h, err := m.Add(id, Managed, now)
				if err != nil {
					continue
				}
				m.Connected(id, 1, now)
				h.Traffic(now)
				h.AddAsks(1)
				h.AddAsks(-1)
				m.Attach(id, "s", fixed(int64(i)))
				if i%3 == 0 {
					m.Disconnected(id, 1, now)
				}
				if i%7 == 0 {
					m.Lock(id, "l", time.Millisecond, now, func(string, string, time.Time) time.Duration { return 0 })
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			m.Tick(t0.Add(time.Duration(i) * time.Millisecond))
			m.Snapshot(t0)
		}
	})
	wg.Wait()
	st := m.Stats()
	n := 0
	for _, p := range m.Snapshot(t0) {
		if p.State == Connected {
			n++
		}
	}
	if st.Connected != n || st.Peers != m.Len() {
		t.Fatalf("counts drifted: stats %+v, %d connected in snapshot", st, n)
	}
}

// selectLowest agrees with a full sort, for every k.
func TestSelectLowest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	byScore := func(a, b rank) int { return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.i, b.i)) }
	for _, n := range []int{0, 1, 2, 7, 100, 1000} {
		keys := make([]rank, n)
		for i := range keys {
			keys[i] = rank{score: rng.Int64N(50), i: int32(i)}
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, byScore)
		for _, k := range []int{0, 1, 3, n / 2, n - 1, n, n + 5} {
			if k < 0 {
				continue
			}
			got := selectLowest(slices.Clone(keys), k, byScore)
			if !slices.Equal(got, want[:min(k, n)]) {
				t.Fatalf("n %d k %d: got %v, want %v", n, k, got, want[:min(k, n)])
			}
		}
	}
}

// A veto that panics leaves the Manager able to trim again.
func TestTrimAfterPanic(t *testing.T) {
	boom := true
	m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0, Veto: func(Candidate) bool {
		if boom {
			panic("veto")
		}
		return false
	}}))
	connect(t, m, t0, "a", "b")
	func() {
		defer func() { _ = recover() }()
		m.Trim(t0)
	}()
	boom = false
	if got := m.Trim(t0); len(got) != 2 {
		t.Fatalf("after a panicking veto: closed %v", peerIDs(got))
	}
}

// An elapsed lock keeps its peer until ExpireLocks ran its callback, which
// may still extend it.
func TestForgetWaitsForLockCallback(t *testing.T) {
	m := newTest(t, Config{ForgetAfter: time.Second})
	m.Add("a", Managed, t0)
	m.Lock("a", "l", time.Second, t0, func(string, string, time.Time) time.Duration { return time.Minute })
	if got := m.Forget(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("forgot %v before its lock callback ran", got)
	}
	d := m.Tick(t0.Add(time.Hour))
	if len(d.Elapsed) != 1 || !d.Elapsed[0].Extended || len(d.Forget) != 0 {
		t.Fatalf("tick: %+v", d)
	}
}

// A Forget that runs while ExpireLocks is calling a lock's callback (the
// lock already taken out, the callback about to extend it) keeps the
// peer: the Manager is safe for concurrent use.
func TestForgetDuringLockCallback(t *testing.T) {
	m := newTest(t, Config{ForgetAfter: time.Second})
	m.Add("a", Managed, t0)
	inCallback, resume := make(chan struct{}), make(chan struct{})
	m.Lock("a", "l", time.Second, t0, func(string, string, time.Time) time.Duration {
		close(inCallback)
		<-resume
		return time.Minute
	})
	later := t0.Add(time.Hour)
	done := make(chan []Elapsed, 1)
	go func() { done <- m.ExpireLocks(later) }()
	<-inCallback
	if got := m.Forget(later); len(got) != 0 {
		t.Fatalf("forgot %v while its lock callback ran", got)
	}
	close(resume)
	if e := <-done; len(e) != 1 || !e[0].Extended {
		t.Fatalf("elapsed: %+v, want the lock extended", e)
	}
	if got := m.Forget(later); len(got) != 0 {
		t.Fatalf("forgot %v with an extended lock", got)
	}
}

// A connection's report of being up can reach the manager after its loss
// (the caller reports outside its own lock): that late Connected is stale,
// or the manager would count a gone connection until a trim. And the loss
// of an older connection does not end a newer one.
func TestLateReportsAreStale(t *testing.T) {
	m := newTest(t, Config{HighWater: 10, LowWater: 5})
	if _, err := m.Add("b", Managed, t0); err != nil {
		t.Fatal(err)
	}
	m.Disconnected("b", 3, t0) // connection 3 lost before its Connected arrived
	m.Connected("b", 3, t0)
	if st := m.Stats(); st.Connected != 0 {
		t.Fatalf("after a late report of a gone connection: %d connected, want 0", st.Connected)
	}
	m.Connected("b", 4, t0.Add(time.Second))
	m.Disconnected("b", 3, t0.Add(2*time.Second)) // an old loss, reported late
	if st := m.Stats(); st.Connected != 1 {
		t.Fatalf("after an old connection's late loss: %d connected, want 1 (connection 4)", st.Connected)
	}
	m.Disconnected("b", 4, t0.Add(3*time.Second))
	if st := m.Stats(); st.Connected != 0 {
		t.Fatalf("after connection 4's loss: %d connected, want 0", st.Connected)
	}
}
