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

// benchCluster is three daemons and a client node in this process, for the
// replicated benchmarks.
func benchCluster(b *testing.B) (*Client, []*testNode) {
	b.Helper()
	nodes := make([]*testNode, 3)
	var members []string
	for i := range nodes {
		nodes[i] = newTestNode(b, fmt.Sprint("n", i))
		members = append(members, nodes[i].node.Addr())
	}
	for _, tn := range nodes {
		tn.install(b, Config{DataDir: b.TempDir(), Members: members, Token: "secret"})
	}
	for _, tn := range nodes {
		<-tn.store.CaughtUp()
	}
	cn := newTestNode(b, "client")
	cl, err := Dial(ctxT(b), cn.node, members[0], "secret", 0)
	if err != nil {
		b.Fatal(err)
	}
	return cl, nodes
}

// BenchmarkReplicatedPut measures durable puts on three in-process daemons
// (each put: a stamp read from 2 replicas, then a write acknowledged by 2
// of 3 once fsynced), 256 concurrent clients.
func BenchmarkReplicatedPut(b *testing.B) {
	cl, nodes := benchCluster(b)
	val := make([]byte, 100)
	var seq atomic.Int64
	b.SetParallelism(128) // 128 × GOMAXPROCS concurrent clients
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
	var s Stats
	for _, tn := range nodes {
		st := tn.store.Stats()
		s.Writes += st.Writes
		s.Commits += st.Commits
	}
	b.ReportMetric(float64(s.Writes)/float64(max(s.Commits, 1)), "writes/commit")
}

// BenchmarkReplicatedGet measures gets on three in-process daemons (each
// get: 2 replicas asked, agreeing), 256 concurrent clients.
func BenchmarkReplicatedGet(b *testing.B) {
	cl, _ := benchCluster(b)
	const keys = 1000
	for i := range keys {
		mustPut(b, cl, fmt.Sprint("k", i), "value")
	}
	var seq atomic.Int64
	b.SetParallelism(128)
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
