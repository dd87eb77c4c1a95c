package kvstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitAcrossShards: batches of different shards submitted while
// a transaction runs are committed together in the next one.
func TestGroupCommitAcrossShards(t *testing.T) {
	gate := make(chan struct{})
	first := true
	h := &hooks{beforeCommit: func(shard int, keys []string) error {
		if first { // the first round's leader: hold it until the others queue
			first = false
			<-gate
		}
		return nil
	}}
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: h})
	cl := NewClient(tn.sys, LocalTable(st), 0)
	keys := []string{keysOfShard(1, DefaultShards, 1)[0], keysOfShard(2, DefaultShards, 1)[0], keysOfShard(3, DefaultShards, 1)[0]}
	for _, k := range keys {
		mustGet(t, cl, k, "", false) // the shards have loaded
	}
	errs := make(chan error, len(keys))
	go func() { errs <- cl.Put(ctxT(t), keys[0], []byte("v")) }()
	queued := func(n int) bool {
		st.com.mu.Lock()
		defer st.com.mu.Unlock()
		return len(st.com.queue) == n
	}
	deadline := time.Now().Add(5 * time.Second)
	for !st.com.isBusy() { // the first put leads a round, held by the hook
		if time.Now().After(deadline) {
			t.Fatal("the first commit did not start")
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation
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

// TestMigratesPerShardFiles: the per-shard files of earlier versions are
// moved into the daemon's file at Install.
func TestMigratesPerShardFiles(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "kvstore")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := keysOfShard(4, DefaultShards, 3)
	old, err := bolt.Open(filepath.Join(dir, legacyFile(4)), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(legacyBucket)
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := b.Put([]byte(k), []byte(fmt.Sprint("old", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: dataDir})
	cl := NewClient(tn.sys, LocalTable(st), 0)
	for i, k := range keys {
		mustGet(t, cl, k, fmt.Sprint("old", i), true)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyFile(4))); !os.IsNotExist(err) {
		t.Fatalf("the per-shard file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyFile(4)+".migrated")); err != nil {
		t.Fatalf("the per-shard file was not kept as .migrated: %v", err)
	}
}

// isBusy reports whether a round is running.
func (c *committer) isBusy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy
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
	cl := NewClient(tn.sys, LocalTable(st), 0)
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

// TestMigrationIsNotRepeated: a per-shard file found again after its
// migration (its rename lost in a crash) is not copied over the writes
// made since.
func TestMigrationIsNotRepeated(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "kvstore")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	k := keysOfShard(4, DefaultShards, 1)[0]
	writeLegacy := func() {
		t.Helper()
		old, err := bolt.Open(filepath.Join(dir, legacyFile(4)), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		if err := old.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(legacyBucket)
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("old"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	writeLegacy()
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: dataDir})
	cl := NewClient(tn.sys, LocalTable(st), 0)
	mustGet(t, cl, k, "old", true)
	mustPut(t, cl, k, "new")
	tn.close()

	// As if the rename had not reached the disk: the old file is back.
	if err := os.Rename(filepath.Join(dir, legacyFile(4)+".migrated"), filepath.Join(dir, legacyFile(4))); err != nil {
		t.Fatal(err)
	}
	tn2 := newTestNode(t, "a")
	st2 := tn2.install(t, Config{DataDir: dataDir})
	mustGet(t, NewClient(tn2.sys, LocalTable(st2), 0), k, "new", true)
	if _, err := os.Stat(filepath.Join(dir, legacyFile(4))); !os.IsNotExist(err) {
		t.Fatalf("the per-shard file was not renamed again: %v", err)
	}
}
