package kvstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/internal/kvmodel"
	"github.com/anishathalye/porcupine"
)

// kvmodel.Input and kvmodel.Output are one operation of a history.
// history records the operations of concurrent clients.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// outcomes
	ok, failedReads, notWritten, unknown atomic.Int64
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// do runs one operation of client id and records it: a failed get is left
// out (it changed nothing), a write that failed with ErrNotWritten too;
// any other failed write may have happened, at any time after its call:
// it is kept with an infinite return time.
func (h *history) do(ctx context.Context, cl *Client, id int, in kvmodel.Input) {
	call := h.now()
	var out kvmodel.Output
	var err error
	switch in.Op {
	case "get":
		var v []byte
		v, out.Present, err = cl.Get(ctx, in.Key)
		out.Val = string(v)
	case "put":
		err = cl.Put(ctx, in.Key, []byte(in.Val))
	case "del":
		err = cl.Delete(ctx, in.Key)
	}
	ret := h.now()
	switch {
	case err == nil:
		h.ok.Add(1)
	case in.Op == "get":
		h.failedReads.Add(1)
		return
	case errors.Is(err, ErrNotWritten):
		h.notWritten.Add(1)
		return
	default:
		h.unknown.Add(1)
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// check checks the history for linearizability, writing a visualization
// of a violation to a temporary file.
func (h *history) check(t *testing.T) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(kvmodel.Model, h.ops, 2*time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(t.TempDir(), "violation.html")
		if err := porcupine.VisualizePath(kvmodel.Model, info, path); err != nil {
			t.Logf("visualizing: %v", err)
		}
		t.Fatalf("the history of %d operations is not linearizable; its timeline: %s", len(h.ops), path)
	default:
		t.Fatalf("the check of %d operations did not finish: %v", len(h.ops), res)
	}
}

// The checker itself: a read that returns a value overwritten before it
// was called is caught.
func TestLinearizabilityCheckerCatchesAStaleRead(t *testing.T) {
	ops := []porcupine.Operation{
		{ClientId: 0, Input: kvmodel.Input{Op: "put", Key: "k", Val: "1"}, Call: 0, Return: 10},
		{ClientId: 0, Input: kvmodel.Input{Op: "put", Key: "k", Val: "2"}, Call: 20, Return: 30},
		{ClientId: 1, Input: kvmodel.Input{Op: "get", Key: "k"}, Call: 40, Output: kvmodel.Output{Val: "1", Present: true}, Return: 50},
	}
	if porcupine.CheckOperations(kvmodel.Model, ops) {
		t.Fatal("a stale read passed the check")
	}
	ops[2].Output = kvmodel.Output{Val: "2", Present: true}
	// A write of unknown outcome may have happened at any time after its
	// call, or never.
	ops = append(ops, porcupine.Operation{ClientId: 2, Input: kvmodel.Input{Op: "del", Key: "k"}, Call: 35, Return: math.MaxInt64},
		porcupine.Operation{ClientId: 1, Input: kvmodel.Input{Op: "get", Key: "k"}, Call: 60, Output: kvmodel.Output{}, Return: 70})
	if !porcupine.CheckOperations(kvmodel.Model, ops) {
		t.Fatal("a linearizable history failed the check")
	}
}

// TestLinearizableWithADaemonKilledAndRestarted: two client nodes, six
// goroutines each, read, write and delete four keys on three daemons while
// one daemon is stopped abruptly (its node first: the in-flight requests
// get remote.ErrNodeDown) and later restarted on the same address and data
// dir. The history is checked for linearizability, key by key.
func TestLinearizableWithADaemonKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load on three daemons")
	}
	nodes, cl1 := cluster(t, 3, Config{Shards: 4})
	cn2 := newTestNode(t, "client-2")
	cl2, err := Dial(ctxT(t), cn2.node, nodes[1].node.Addr(), "secret", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const (
		goroutines = 6  // per client
		perG       = 60 // operations per goroutine
	)
	keys := []string{"a", "b", "c", "d"}
	h := &history{start: time.Now()}
	var done atomic.Int64
	total := int64(2 * goroutines * perG)
	var wg sync.WaitGroup
	for c, cl := range []*Client{cl1, cl2} {
		for g := range goroutines {
			id := c*goroutines + g
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(id), 42))
				for i := range perG {
					in := kvmodel.Input{Key: keys[rng.IntN(len(keys))]}
					switch r := rng.IntN(10); {
					case r < 4:
						in.Op, in.Val = "put", fmt.Sprintf("%d.%d", id, i)
					case r < 5:
						in.Op = "del"
					default:
						in.Op = "get"
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					h.do(ctx, cl, id, in)
					cancel()
					done.Add(1)
				}
			})
		}
	}
	// A third of the way, stop daemon n1; two thirds, start it again.
	victim := nodes[1]
	addr, cfg := victim.node.Addr(), victim.store.cfg
	waitFor(t, "a third of the operations", func() bool { return done.Load() >= total/3 })
	victim.kill()
	killedAt := done.Load()
	waitFor(t, "two thirds of the operations", func() bool { return done.Load() >= 2*total/3 })
	back := newTestNodeAt(t, "n1", addr)
	st := back.install(t, cfg)
	restartedAt := done.Load()
	wg.Wait()
	select {
	case <-st.CaughtUp():
	case <-ctxT(t).Done():
		t.Fatal("the restarted daemon did not catch up")
	}
	t.Logf("%d operations: %d succeeded, %d reads failed, %d writes not applied, %d writes of unknown outcome; killed after %d, restarted after %d; the restarted daemon caught up %d entries",
		total, h.ok.Load(), h.failedReads.Load(), h.notWritten.Load(), h.unknown.Load(), killedAt, restartedAt, st.Stats().CaughtUp)
	if h.ok.Load() < total*9/10 {
		t.Fatalf("only %d of %d operations succeeded with at most one daemon of three down", h.ok.Load(), total)
	}
	h.check(t)
}

// Concurrent puts through one Client that read the same newest stamp must
// still write different stamps: with the client's id alone as the tie
// breaker they wrote the same stamp with different values; each replica
// kept whichever came first (the puts go out through different loops, so
// in different orders), acknowledged the other without storing it, and
// reads that met different replicas saw versions in different orders (the
// linearizability check found it under load). Every stamp a replica is
// sent must carry one value only.
func TestConcurrentPutsOfOneClientGetDistinctStamps(t *testing.T) {
	var mu sync.Mutex
	values := map[Stamp]string{}
	var clash string
	h := &hooks{written: func(_ int, w Write) {
		mu.Lock()
		defer mu.Unlock()
		if old, ok := values[w.E.TS]; ok && old != string(w.E.V) && clash == "" {
			clash = fmt.Sprintf("stamp %+v carries %q and %q", w.E.TS, old, w.E.V)
		}
		values[w.E.TS] = string(w.E.V)
	}}
	_, cl := cluster(t, 3, Config{Shards: 1, hooks: h})
	const goroutines, puts = 8, 40
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range puts {
				if err := cl.Put(ctxT(t), "k", []byte(fmt.Sprintf("%d.%d", g, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if clash != "" {
		t.Fatal(clash)
	}
}
