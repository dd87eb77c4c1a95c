package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// keysOn returns n keys per shard of the store whose shards tab owns on
// member m, and the keys of the other members' shards.
func keysOn(tab Table, m string, n int) (on, off []string) {
	for id := range tab.Shards {
		ks := keysOfShard(id, tab.Shards, n)
		if tab.Owner(id) == m {
			on = append(on, ks...)
		} else {
			off = append(off, ks...)
		}
	}
	return on, off
}

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

// TestClientRefreshAfterStoreRestart installs a daemon's store again (new
// shard actors: the client's refs to the old ones are dead, as after a
// daemon restart). Concurrent requests through the same client all
// succeed, after exactly one fetch of that daemon's directory.
func TestClientRefreshAfterStoreRestart(t *testing.T) {
	nodes, cl := cluster(t, 2, Config{})
	victim := nodes[1]
	on, off := keysOn(cl.Table(), victim.node.Addr(), 4)
	for _, k := range append(on, off...) {
		mustPut(t, cl, k, "v1")
	}
	cfg := victim.store.cfg
	if err := victim.store.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	victim.install(t, cfg)
	oldRef := cl.Table().Refs[ShardOf(on[0], cfg.Shards)]
	if _, err := cl.sys.Ask(ctxT(t), oldRef, Get{K: on[0]}); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("the old shard ref answers %v, want ErrDead", err)
	}

	before := cl.dir.fetches.Load()
	errs := hammer(append(on, off...), func(k string) error {
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
		t.Fatalf("%d of %d requests failed after the store's restart, e.g. %v", len(errs), 2*len(on)+2*len(off), errs[0])
	}
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches, want 1", n)
	}
	for _, k := range append(on, off...) {
		mustGet(t, cl, k, "v2", true)
	}
}

// fakeClock is a settable clock for the client's refresh rate limit.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func (c *fakeClock) now() time.Time      { return *c.t.Load() }
func (c *fakeClock) set(t time.Time)     { c.t.Store(&t) }
func (c *fakeClock) add(d time.Duration) { c.set(c.now().Add(d)) }

// TestClientRefreshBounded stops a daemon: concurrent requests to its
// shards fail with an unavailability error, after one directory fetch
// between them, not one each; the next fetch waits for the backoff.
func TestClientRefreshBounded(t *testing.T) {
	nodes, cl := cluster(t, 2, Config{})
	victim := nodes[1]
	on, off := keysOn(cl.Table(), victim.node.Addr(), 8)
	clock := &fakeClock{}
	clock.set(time.Now())
	cl.dir.mu.Lock()
	cl.dir.now = clock.now
	cl.dir.mu.Unlock()
	victim.close()
	clock.add(time.Hour) // the fetch that Dial did no longer holds the next one back

	before := cl.dir.fetches.Load()
	errs := hammer(on, func(k string) error {
		_, _, err := cl.Get(ctxT(t), k)
		if err == nil {
			return errors.New("a get from a stopped daemon succeeded")
		}
		if !IsUnavailable(err) {
			return fmt.Errorf("want an unavailability error, got %w", err)
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches for %d failed gets, want 1", n, len(on))
	}
	// Still within the backoff: a request fails without a fetch.
	if _, _, err := cl.Get(ctxT(t), on[0]); !IsUnavailable(err) {
		t.Fatalf("get from a stopped daemon: %v, want an unavailability error", err)
	}
	if n := cl.dir.fetches.Load() - before; n != 1 {
		t.Fatalf("%d directory fetches within the backoff, want 1", n)
	}
	// The other daemon's shards answer meanwhile.
	for _, k := range off {
		mustPut(t, cl, k, "v")
	}
}

// TestClientRecoversDaemonRestart stops a daemon and starts a new one (a
// new node: new key, new actors) on the same address and data dir: the
// client that dialed before serves its shards again without dialing.
func TestClientRecoversDaemonRestart(t *testing.T) {
	nodes, cl := cluster(t, 2, Config{})
	victim := nodes[1]
	addr := victim.node.Addr()
	on, _ := keysOn(cl.Table(), addr, 2)
	for _, k := range on {
		mustPut(t, cl, k, "v1")
	}
	cfg := victim.store.cfg
	victim.close()
	back := newTestNodeAt(t, "n1", addr)
	back.install(t, cfg)

	// Until the client's node reconnects, requests may fail (the node is
	// down for it); then the stale refs are refreshed. Poll with a
	// deadline.
	deadline := time.Now().Add(15 * time.Second)
	failed := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _, err := cl.Get(ctx, on[0])
		cancel()
		if err == nil {
			break
		}
		failed++
		if time.Now().After(deadline) {
			t.Fatalf("the client did not reach the restarted daemon: %d failed gets, the last: %v", failed, err)
		}
		time.Sleep(20 * time.Millisecond) // polling, not synchronisation
	}
	t.Logf("%d gets failed before the client reached the restarted daemon", failed)
	for _, k := range on {
		mustGet(t, cl, k, "v1", true)
		mustPut(t, cl, k, "v2")
		mustGet(t, cl, k, "v2", true)
	}
}

// TestClientRidesOutAMomentaryLoss: when the client's node loses its
// connection to a daemon that is still up (a missed heartbeat), requests
// are refused at once with remote.ErrNotSent until it reconnects; the
// client asks again after a pause instead of failing them.
func TestClientRidesOutAMomentaryLoss(t *testing.T) {
	d := newTestNode(t, "d")
	d.install(t, Config{DataDir: t.TempDir(), Token: "secret"})
	c := newTestNode(t, "c")
	cl, err := Dial(ctxT(t), c.node, d.node.Addr(), "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cl, "k", "v")
	for i := range 5 {
		// As the membership layer would report it: the connection ends and
		// the daemon is known down until the client's node reconnects.
		if !c.node.PeerDown(d.node.Addr(), errors.New("a missed heartbeat")) {
			t.Fatal("no peer for the daemon")
		}
		mustGet(t, cl, "k", "v", true)
		mustPut(t, cl, fmt.Sprint("k", i), "w") // a write refused unsent is safe to ask again
	}
}
