package kvstore

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkPut measures durable puts through the client from parallel
// goroutines (in-process, one node, 16 shards): group commit at work.
func BenchmarkPut(b *testing.B) {
	tn := newTestNode(b, "a")
	st := tn.install(b, Config{DataDir: b.TempDir()})
	cl := newClient(b, tn.sys, LocalTable(st))
	val := make([]byte, 100)
	var seq atomic.Int64
	b.SetParallelism(32) // 32 × GOMAXPROCS concurrent clients
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := ctxT(b)
		for pb.Next() {
			if err := cl.Put(ctx, "k"+strconv.FormatInt(seq.Add(1), 10), val); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := st.Stats()
	b.ReportMetric(float64(s.Writes)/float64(max(s.Commits, 1)), "puts/commit")
}

// BenchmarkGet measures gets through the client from parallel goroutines.
func BenchmarkGet(b *testing.B) {
	tn := newTestNode(b, "a")
	st := tn.install(b, Config{DataDir: b.TempDir()})
	cl := newClient(b, tn.sys, LocalTable(st))
	const keys = 1000
	for i := range keys {
		mustPut(b, cl, fmt.Sprint("k", i), "value")
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := ctxT(b)
		for pb.Next() {
			if _, ok, err := cl.Get(ctx, "k"+strconv.FormatInt(seq.Add(1)%keys, 10)); err != nil || !ok {
				b.Error(err, ok)
				return
			}
		}
	})
}

// BenchmarkBoltPutBaseline is the baseline of BenchmarkPut: one bolt
// transaction (one fsync) per put, from one goroutine (bolt has one writer
// at a time anyway).
func BenchmarkBoltPutBaseline(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "base.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("kv"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"+strconv.Itoa(i)), val)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
