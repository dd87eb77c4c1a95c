package kvstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// The reads of one shard made while readsInFlight of them run wait, and go
// together in one GetMany: a replica receives one request for all of
// them, and each gets its key's value. A read that gives up while waiting
// fails at once with ErrUnavailable.
func TestConcurrentReadsOfAShardAreBatched(t *testing.T) {
	var armed atomic.Bool
	gate := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	h := &hooks{read: func(_ int, keys int) {
		if !armed.Load() {
			return
		}
		mu.Lock()
		sizes = append(sizes, keys)
		mu.Unlock()
		<-gate // hold the first reads, so that the others wait
	}}
	open := sync.OnceFunc(func() { close(gate) })
	_, cl := cluster(t, 3, Config{Shards: 1, hooks: h})
	t.Cleanup(open) // before the cluster's cleanup: a failed wait leaves no loop blocked
	const keys = 40
	for i := range keys {
		mustPut(t, cl, key(i), "v"+key(i))
	}
	armed.Store(true)
	var wg sync.WaitGroup
	errs := make([]error, keys)
	for i := range keys {
		wg.Go(func() {
			v, ok, err := cl.Get(ctxT(t), key(i))
			if err == nil && (!ok || string(v) != "v"+key(i)) {
				err = errors.New("read " + key(i) + ": got " + string(v))
			}
			errs[i] = err
		})
	}
	b := &cl.reads[0]
	waiting := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiting)
	}
	waitFor(t, "the reads to wait", func() bool { return waiting() == keys-readsInFlight })

	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := cl.Get(cctx, "gives-up"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("a waiting read whose context ends: %v, want ErrUnavailable and context.Canceled", err)
	}

	open()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	most := 0
	for _, n := range sizes {
		most = max(most, n)
	}
	// The waiting reads (and the one that gave up, which stays in the
	// batch: a read changes nothing) went as one request.
	if most != keys-readsInFlight+1 {
		t.Errorf("requests received by the replicas carried %v keys; want one of %d", sizes, keys-readsInFlight+1)
	}
}

// A replica refuses a GetMany of more than MaxGetMany keys, or with a bad
// key.
func TestGetManyBounds(t *testing.T) {
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), Shards: 1})
	ref := LocalTable(st).Refs[0][0]
	big := GetMany{Gets: make([]Get, MaxGetMany+1)}
	for i := range big.Gets {
		big.Gets[i].K = "k"
	}
	if _, err := tn.sys.Ask(ctxT(t), ref, big); !errors.Is(err, ErrTooMany) {
		t.Errorf("%d gets: %v, want ErrTooMany", len(big.Gets), err)
	}
	if _, err := tn.sys.Ask(ctxT(t), ref, GetMany{Gets: []Get{{K: "k"}, {K: ""}}}); !errors.Is(err, ErrBadKey) {
		t.Errorf("an empty key: %v, want ErrBadKey", err)
	}
	v, err := tn.sys.Ask(ctxT(t), ref, GetMany{Gets: big.Gets[:MaxGetMany]})
	if e, ok := v.(Entries); err != nil || !ok || len(e.E) != MaxGetMany {
		t.Errorf("%d gets: %v, %v", MaxGetMany, v, err)
	}
}

func key(i int) string { return "key-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
