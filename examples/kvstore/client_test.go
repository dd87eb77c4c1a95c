package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// hammer runs f for every key from its own goroutine and returns the
// errors.
func hammer(keys []string, f func(k string) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			if err := f(k); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// fakeClock is a settable clock for the client's refresh rate limit.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func (c *fakeClock) now() time.Time      { return *c.t.Load() }
func (c *fakeClock) set(t time.Time)     { c.t.Store(&t) }
func (c *fakeClock) add(d time.Duration) { c.set(c.now().Add(d)) }

// freeze makes the client's refresher use a fake clock, set to now.
func freeze(cl *Client) *fakeClock {
	clock := &fakeClock{}
	clock.set(time.Now())
	cl.dir.mu.Lock()
	cl.dir.now = clock.now
	cl.dir.mu.Unlock()
	return clock
}

// refsOf returns the refs the client holds for member m's replicas.
func refsOf(tab Table, m string) []actor.Ref {
	var out []actor.Ref
	for id := range tab.Shards {
		if j := slices.Index(tab.Hosts(id), m); j >= 0 {
			out = append(out, tab.Refs[id][j])
		}
	}
	return out
}

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprint("key-", i)
	}
	return ks
}

// TestClientRefreshAfterStoreRestart installs a daemon's store again (new
// replica actors: the client's refs to the old ones are dead, as after a
// daemon restart). Concurrent requests through the same client all
// succeed, and the stale refs are replaced after exactly one fetch of that
// daemon's directory.
func TestClientRefreshAfterStoreRestart(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	victim := nodes[1]
	ks := keys(64)
	for _, k := range ks {
		mustPut(t, cl, k, "v1")
	}
	cfg := victim.store.cfg
	if err := victim.store.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	victim.install(t, cfg)
	old := refsOf(cl.Table(), victim.node.Addr())
	if _, err := cl.sys.Ask(ctxT(t), old[0], Get{K: ks[0]}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the old replica ref answers %v, want ErrDead", err)
	}
	// No second fetch: the first one must do. The fetch that Dial did may
	// be less than RefreshInterval ago on the frozen clock, which would
	// hold the first one back for good.
	freeze(cl).add(time.Hour)

	before := cl.dir.fetches.Load()
	errs := hammer(ks, func(k string) error {
		v, ok, err := cl.Get(ctxT(t), k)
		if err == nil && (!ok || string(v) != "v1") {
			err = fmt.Errorf("got %q, %v", v, ok)
		}
		if err != nil {
			return err
		}
		return cl.Put(ctxT(t), k, []byte("v2"))
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed after the store's restart, e.g. %v", len(errs), 2*len(ks), errs[0])
	}
	waitFor(t, "the refresh of the restarted daemon's refs", func() bool {
		return !slices.ContainsFunc(refsOf(cl.Table(), victim.node.Addr()), func(r actor.Ref) bool { return slices.Contains(old, r) })
	})
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches, want 1", n)
	}
	for _, k := range ks {
		mustGet(t, cl, k, "v2", true)
	}
}

// TestClientRefreshBounded stops a daemon: requests keep succeeding with
// the other two replicas of each shard, and the failures of the stopped
// one cost one directory fetch between them, not one each; the next fetch
// waits for the backoff.
func TestClientRefreshBounded(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	ks := keys(64)
	clock := freeze(cl)
	nodes[1].close()
	clock.add(time.Hour) // the fetch that Dial did no longer holds the next one back

	before := cl.dir.fetches.Load()
	errs := hammer(ks, func(k string) error {
		if err := cl.Put(ctxT(t), k, []byte("v")); err != nil {
			return err
		}
		_, _, err := cl.Get(ctxT(t), k)
		return err
	})
	if len(errs) > 0 {
		t.Fatalf("with one daemon of three down: %v", errs[0])
	}
	waitFor(t, "the fetch to end", func() bool {
		cl.dir.mu.Lock()
		defer cl.dir.mu.Unlock()
		return cl.dir.members[nodes[1].node.Addr()].running == nil
	})
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches for %d requests to a down daemon, want 1", n, 2*len(ks))
	}
	// Still within the backoff: requests go on without a fetch.
	mustPut(t, cl, ks[0], "w")
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches within the backoff, want 1", n)
	}
	if st := cl.Stats(ShardOf(ks[0], DefaultShards)); !slices.ContainsFunc(st, func(s quorum.NodeStats) bool { return s.Failing }) {
		t.Fatalf("no replica of the shard is failing: %+v", st)
	}
}

// TestClientRecoversDaemonRestart stops a daemon and starts a new one (a
// new node: new key, new actors) on the same address and data dir: the
// client that dialed before uses its replicas again without dialing, and
// the restarted replicas catch up with the writes they missed.
func TestClientRecoversDaemonRestart(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	victim := nodes[1]
	addr := victim.node.Addr()
	ks := keys(32)
	for _, k := range ks {
		mustPut(t, cl, k, "v1")
	}
	cfg := victim.store.cfg
	victim.close()
	for _, k := range ks {
		mustPut(t, cl, k, "v2") // missed by the stopped daemon
	}
	back := newTestNodeAt(t, "n1", addr)
	st := back.install(t, cfg)
	select {
	case <-st.CaughtUp():
	case <-ctxT(t).Done():
		t.Fatal("the restarted daemon did not catch up")
	}
	if s := st.Stats(); !s.CatchUpDone || s.CaughtUp < uint64(len(ks)) {
		t.Fatalf("catch-up stats %+v, want at least %d entries", s, len(ks))
	}
	// The restarted daemon's replicas hold the writes it missed.
	for _, k := range ks {
		r := st.Directory().Local[ShardOf(k, DefaultShards)].Ref
		v, err := back.sys.Ask(ctxT(t), r, Get{K: k})
		if e, _ := v.(Entry); err != nil || string(e.V) != "v2" {
			t.Fatalf("%s on the restarted replica: %+v, %v", k, v, err)
		}
	}
	// Writes reach its replicas through the client again (the refresh
	// follows the failures of the stale refs).
	id := ShardOf(ks[0], DefaultShards)
	j := slices.Index(cl.Table().Hosts(id), addr)
	waitFor(t, "the client to refresh the restarted daemon's refs", func() bool {
		mustPut(t, cl, ks[0], "v3")
		st := cl.Stats(id)[j] // a new ref is a new quorum node, with new stats
		return st.Replies > 0 && !st.Failing
	})
	// With the restarted daemon and one other, every key is there.
	nodes[2].close()
	for _, k := range ks[1:] {
		mustGet(t, cl, k, "v2", true)
	}
	mustGet(t, cl, ks[0], "v3", true)
}

// TestClientRidesOutAMomentaryLoss: when the client's node loses its
// connection to daemons that are still up (a missed heartbeat), requests
// to them are refused at once with remote.ErrNotSent until it reconnects;
// with two of three replicas refused, the client asks again after a pause
// instead of failing.
func TestClientRidesOutAMomentaryLoss(t *testing.T) {
	nodes, cl, cn := clusterClient(t, 3, Config{})
	mustPut(t, cl, "k", "v")
	client := cn.node
	for i := range 5 {
		// As the membership layer would report it: the connections end
		// and the daemons are known down until the client's node
		// reconnects.
		for _, n := range nodes[:2] {
			if !client.PeerDown(n.node.Addr(), errors.New("a missed heartbeat")) {
				t.Fatal("no peer for the daemon")
			}
		}
		mustGet(t, cl, "k", "v", true)
		mustPut(t, cl, fmt.Sprint("k", i), "w")
	}
}

// TestReadWritesBack: a version on a minority of the replicas (a write
// that stopped half-way) is returned by a Get only after the Get has stored
// it on a majority.
func TestReadWritesBack(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	mustPut(t, cl, "k", "old")
	id := ShardOf("k", DefaultShards)
	tab := cl.Table()
	newer := Entry{TS: Stamp{N: 100, W: 1}, V: []byte("half-written")}
	if _, err := cl.sys.Ask(ctxT(t), tab.Refs[id][0], Write{K: "k", E: newer}); err != nil {
		t.Fatal(err)
	}
	// A client that knows only replicas 0 and 1 must read both.
	two := tab.clone()
	two.Refs[id][2] = actor.Ref{}
	cl2 := newClient(t, cl.sys, two)
	mustGet(t, cl2, "k", "half-written", true)
	v, err := cl.sys.Ask(ctxT(t), tab.Refs[id][1], Get{K: "k"})
	if e, _ := v.(Entry); err != nil || e.TS != newer.TS {
		t.Fatalf("replica 1 after the read: %+v %v, want the written-back version", v, err)
	}
	// Now any majority has it.
	nodes[0].close()
	mustGet(t, cl, "k", "half-written", true)
}

// lateReplica answers every Get and Write only when released, with
// actor.ErrDead: a dead replica slower than the other two.
type lateReplica struct{ held []*actor.Reply }

type releaseLate struct{}

func (r *lateReplica) Receive(c *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case Get, Write:
		r.held = append(r.held, c.Defer())
	case releaseLate:
		for _, rep := range r.held {
			rep.Reply(nil, fmt.Errorf("replica: %w", actor.ErrDead))
		}
		r.held = nil
	}
	return nil, nil
}

// fastReplica answers every Get with no version and acknowledges every
// Write.
func fastReplica(_ *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case Get:
		return Entry{}, nil
	case Write:
		return struct{}{}, nil
	}
	return nil, actor.ErrUnknownMessage
}

type fnReplica func(c *actor.Context, msg any) (any, error)

func (f fnReplica) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// TestClientRefreshAfterLateFailure: a request settles with the two fast
// replicas of a shard, and the third's ErrDead comes only after it has
// returned. With no request after it, the client still fetches the
// directory of that replica's member and replaces the dead ref: at once,
// and, when the last fetch was less than RefreshInterval ago, once the
// interval has passed.
func TestClientRefreshAfterLateFailure(t *testing.T) {
	for _, c := range []struct{ recent, closed bool }{{false, false}, {true, false}, {true, true}} {
		recent := c.recent
		t.Run(fmt.Sprintf("recent=%v,closed=%v", c.recent, c.closed), func(t *testing.T) {
			sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
			t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
			spawn := func(a actor.Actor) actor.Ref {
				r, err := sys.Spawn(ctxT(t), func() actor.Actor { return a })
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			tab := Table{Shards: 1, Replicas: 3, Members: []string{"a", "b", "c"}}
			hosts := tab.Hosts(0)
			late := spawn(&lateReplica{})
			fresh := spawn(fnReplica(fastReplica))
			// The late replica last: a thrifty read leaves it out.
			tab.Refs = [][]actor.Ref{{spawn(fnReplica(fastReplica)), spawn(fnReplica(fastReplica)), late}}
			tab.Missing = [][]error{make([]error, 3)}
			cl := newClient(t, sys, tab)
			t.Cleanup(func() { _ = cl.Close(context.Background()) })
			fetched := make(chan string, 8)
			clock := &fakeClock{}
			clock.set(time.Now())
			cl.dir = &refresher{now: clock.now, members: map[string]*memberFetch{},
				fetch: func(_ context.Context, m string) (DirReply, error) {
					fetched <- m
					return DirReply{Shards: 1, Replicas: 3, Members: tab.Members, Local: []ShardRef{{ID: 0, Ref: fresh}}}, nil
				}}
			if recent {
				// As after a fetch of the late replica's member just now.
				cl.dir.member(hosts[2]).next = clock.now().Add(RefreshInterval)
			}
			if err := cl.Put(ctxT(t), "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if n := cl.dir.fetches.Load(); n != 0 {
				t.Fatalf("%d fetches before the late failure", n)
			}
			if err := sys.Send(late, releaseLate{}); err != nil {
				t.Fatal(err)
			}
			if recent {
				waitFor(t, "a fetch to be scheduled", func() bool {
					cl.dir.mu.Lock()
					defer cl.dir.mu.Unlock()
					return cl.dir.member(hosts[2]).retry != nil
				})
				if n := cl.dir.fetches.Load(); n != 0 {
					t.Fatalf("%d fetches within RefreshInterval of the last", n)
				}
				clock.add(RefreshInterval)
			}
			if c.closed {
				// Close stops the scheduled fetch, and none starts after it.
				if err := cl.Close(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				cl.dir.mu.Lock()
				retry := cl.dir.member(hosts[2]).retry
				cl.dir.mu.Unlock()
				if retry != nil {
					t.Fatal("a fetch is still scheduled after Close")
				}
				if done, wait := cl.startFetch(hosts[2]); done != nil || wait != 0 {
					t.Fatalf("a fetch started after Close (%v, %v)", done != nil, wait)
				}
				if n := cl.dir.fetches.Load(); n != 0 {
					t.Fatalf("%d fetches after Close", n)
				}
				return
			}
			select {
			case m := <-fetched:
				if m != hosts[2] {
					t.Fatalf("fetched %s, want %s", m, hosts[2])
				}
			case <-ctxT(t).Done():
				t.Fatal("no fetch after the late ErrDead")
			}
			waitFor(t, "the fresh ref", func() bool { return cl.Table().Refs[0][2] == fresh })
			if n := cl.dir.fetches.Load(); n != 1 {
				t.Fatalf("%d fetches, want 1", n)
			}
		})
	}
}
