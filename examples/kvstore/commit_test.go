package kvstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// TestGroupCommitAcrossShards: batches of different shards submitted while
// a transaction runs are committed together in the next one.
func TestGroupCommitAcrossShards(t *testing.T) {
	gate, leading := make(chan struct{}), make(chan struct{})
	first := true
	h := &hooks{beforeCommit: func(shard int, keys []string) error {
		if first { // the first round's leader: hold it until the others queue
			first = false
			close(leading)
			<-gate
		}
		return nil
	}}
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: h})
	cl := newClient(t, tn.sys, LocalTable(st))
	keys := []string{keysOfShard(1, DefaultShards, 1)[0], keysOfShard(2, DefaultShards, 1)[0], keysOfShard(3, DefaultShards, 1)[0]}
	for _, k := range keys {
		mustGet(t, cl, k, "", false) // the shards have loaded
	}
	errs := make(chan error, len(keys))
	go func() { errs <- cl.Put(ctxT(t), keys[0], []byte("v")) }()
	queued := func(n int) bool { return st.com.queuedCommits() == n }
	deadline := time.Now().Add(5 * time.Second)
	select { // the first put leads a round, held by the hook
	case <-leading:
	case <-time.After(5 * time.Second):
		t.Fatal("the first commit did not start")
	}
	for _, k := range keys[1:] {
		go func() { errs <- cl.Put(ctxT(t), k, []byte("v")) }()
	}
	for !queued(2) {
		if time.Now().After(deadline) {
			t.Fatal("the other shards' commits did not queue")
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation
	}
	close(gate)
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s := st.Stats(); s.Writes != 3 || s.Commits != 2 {
		t.Fatalf("stats %+v: want 3 writes of 3 shards in 2 transactions", s)
	}
	for _, k := range keys {
		mustGet(t, cl, k, "v", true)
	}
}

// queuedCommits returns how many commits (not loads) wait for the next
// round.
func (c *committer) queuedCommits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.queue {
		if !r.load {
			n++
		}
	}
	return n
}

// TestPanicInRoundFailsOnlyThatRound: a panic while committing (bolt
// panics on a corrupt file; here the test hook) fails the writes of that
// round, and the committer goes on serving every shard.
func TestPanicInRoundFailsOnlyThatRound(t *testing.T) {
	bad := keysOfShard(1, DefaultShards, 1)[0]
	good := keysOfShard(2, DefaultShards, 1)[0]
	h := &hooks{beforeCommit: func(shard int, keys []string) error {
		if keys[0] == bad {
			panic("simulated bolt panic")
		}
		return nil
	}}
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: h})
	cl := newClient(t, tn.sys, LocalTable(st))
	mustGet(t, cl, good, "", false)
	if err := cl.Put(ctxT(t), bad, []byte("v")); err == nil {
		t.Fatal("a put whose commit panicked was acknowledged")
	}
	mustGet(t, cl, bad, "", false)
	mustPut(t, cl, good, "v") // another shard, after the panic
	mustGet(t, cl, good, "v", true)
	if err := st.Close(ctxT(t)); err != nil {
		t.Fatalf("Close after the panic: %v", err)
	}
}

// TestOldFormatRefused: the data dirs of the unreplicated versions (a
// per-shard file, or a store.db with shard buckets and no format) are
// refused with ErrOldFormat, and their files left alone.
func TestOldFormatRefused(t *testing.T) {
	tn := newTestNode(t, "a")
	dir := t.TempDir()
	kv := filepath.Join(dir, "kvstore")
	if err := os.MkdirAll(kv, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(kv, storeFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("shard-003"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("an unversioned value"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Install(ctxT(t), tn.node, Config{DataDir: dir}); !errors.Is(err, ErrOldFormat) {
		t.Fatalf("install over an unversioned store.db: %v, want ErrOldFormat", err)
	}
	db, err = bolt.Open(filepath.Join(kv, storeFile), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("shard-003")).Get([]byte("k")); string(v) != "an unversioned value" {
			return fmt.Errorf("old value %q", v)
		}
		if tx.Bucket(metaBucket) != nil {
			return errors.New("a format was written into the old file")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	dir2 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir2, "kvstore"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "kvstore", "shard-000.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(ctxT(t), tn.node, Config{DataDir: dir2}); !errors.Is(err, ErrOldFormat) {
		t.Fatalf("install over a per-shard file: %v, want ErrOldFormat", err)
	}
	// A store of this version opens again.
	dir3 := t.TempDir()
	st, err := Install(ctxT(t), tn.node, Config{DataDir: dir3})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tn.store, err = Install(ctxT(t), tn.node, Config{DataDir: dir3})
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
}

// recordReply is a replier that records its answers.
type recordReply struct{ errs []error }

func (r *recordReply) Reply(_ any, err error) { r.errs = append(r.errs, err) }

// askerActor asks the committer to commit a flight when told to.
type askerActor struct {
	com   actor.Ref
	msg   commitMsg
	done  bool
	err   error
	calls int
}

func (a *askerActor) Receive(c *actor.Context, msg any) (any, error) {
	if msg == "go" {
		c.AskTimeout(a.com, a.msg, 0).Then(func(_ *actor.Context, _ any, err error) { a.done, a.err = true, err; a.calls++ })
	}
	return nil, nil
}

// A committer stopped while its drain job waits to start (a pool busy, a
// system shutting down) fails the queued writes as not applied, and close
// does not wait for the job: if the job runs later, it commits nothing.
func TestCommitterStopsWithARoundNotStarted(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Manual: true, Loops: 1, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	var jobs []func()
	seam.Sim(sys).(interface{ SetBlocking(func(func()) error) }).SetBlocking(func(job func()) error {
		jobs = append(jobs, job) // held: the test runs them, or not
		return nil
	})
	md := NewMemDisk()
	if err := md.Buckets([][]byte{shardBucket(0)}); err != nil {
		t.Fatal(err)
	}
	com := newCommitter(md)
	if err := com.start(context.Background(), sys); err != nil {
		t.Fatal(err)
	}
	d := &disk{id: 0, st: md, bucket: shardBucket(0), c: com}
	w := &recordReply{}
	f := &flight{d: d, batch: []op{{key: "k", e: Entry{TS: Stamp{N: 1, W: 1}, V: []byte("v")}, write: true, r: w}}}
	d.pending.Add(1)
	asker := &askerActor{com: com.ref, msg: commitMsg{f: f}}
	ref, err := sys.Spawn(context.Background(), func() actor.Actor { return asker })
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Send(ref, "go"); err != nil {
		t.Fatal(err)
	}
	sys.RunUntilIdle(1000)
	if len(jobs) != 1 || asker.done {
		t.Fatalf("%d jobs, answered %v: want the round's job submitted, not run", len(jobs), asker.done)
	}
	if err := sys.Send(com.ref, stopCommitter{}); err != nil {
		t.Fatal(err)
	}
	sys.RunUntilIdle(1000)
	if !asker.done || !errors.Is(asker.err, ErrClosed) {
		t.Fatalf("the commit ask: answered %v with %v, want ErrClosed", asker.done, asker.err)
	}
	if f.state != flightDone || !errors.Is(f.err, ErrClosed) {
		t.Fatalf("the flight is in state %d with %v, want done with ErrClosed", f.state, f.err)
	}
	closed := make(chan struct{})
	go func() { com.close(); d.pending.Wait(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close, or the replica's pending commits, wait for a round that will never run")
	}
	jobs[0]() // the job runs after all
	sys.RunUntilIdle(1000)
	if md.Syncs() != 0 || len(w.errs) != 0 || asker.calls != 1 {
		t.Fatalf("the late job: %d syncs, the write answered %v by the committer, the ask %d times; want nothing more", md.Syncs(), w.errs, asker.calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = sys.Shutdown(ctx)
}

// A commitMsg goes into an interface without an allocation (one per
// replica's commit otherwise): it is one pointer.
func TestCommitMsgBoxFree(t *testing.T) {
	f := &flight{}
	var sink any
	if n := testing.AllocsPerRun(100, func() { sink = commitMsg{f: f} }); n != 0 {
		t.Errorf("boxing a commitMsg: %v allocations, want 0", n)
	}
	_ = sink
}

// A drain gives each round's room back, cleared, for a later queue: the
// committer does not grow a new queue from nothing for every round.
func TestCommitterReusesRoundRoom(t *testing.T) {
	md := NewMemDisk()
	if err := md.Buckets([][]byte{shardBucket(0)}); err != nil {
		t.Fatal(err)
	}
	com := newCommitter(md)
	d := &disk{id: 0, st: md, bucket: shardBucket(0), c: com}
	a := &committerActor{c: com}
	com.draining = true // a drain job runs: enqueue only queues
	queue := func(n int) {
		for i := range n {
			f := &flight{d: d, batch: []op{{key: "k" + strconv.Itoa(i), e: Entry{TS: Stamp{N: 1, W: 1}, V: []byte("v")}, write: true, r: nopReplier{}}}}
			f.req = commitReq{d: d, f: f}
			d.pending.Add(1)
			a.enqueue(nil, &f.req)
		}
	}
	queue(3)
	com.drain()
	if md.Syncs() != 1 {
		t.Fatalf("%d syncs, want the round's 1", md.Syncs())
	}
	// The next requests queue in the round's room.
	com.draining = true
	queue(1)
	if cap(com.queue) < 3 {
		t.Fatalf("the next queue has room for %d: the round's room was not taken", cap(com.queue))
	}
	com.drain()
	room := com.spare.take()
	if cap(room) < 3 || len(room) != 0 {
		t.Fatalf("spare room of len %d, cap %d; want the round's 3, empty", len(room), cap(room))
	}
	for i, r := range room[:cap(room)] {
		if r != nil {
			t.Fatalf("the room keeps request %d alive", i)
		}
	}
}
