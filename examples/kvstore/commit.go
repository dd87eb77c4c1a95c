package kvstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer group-commits the writes of all the shards of one daemon in its
// one bolt file. Each shard already sends one batch at a time (shard.flush);
// batches that different shards submit while a transaction runs wait, and
// the first of them then commits all of them in one transaction: one fsync
// per round for the daemon, whatever the number of its shards. The disk
// does a bounded number of fsyncs per second (about 3000 on the machine of
// docs/performance.md, shared by the demo's three daemons), so that number,
// not the CPU, bounded durable puts while every shard fsynced on its own.
type committer struct {
	db    *bolt.DB
	mu    sync.Mutex
	queue []*commitReq // waiting for the next round
	busy  bool         // a round is running
	txs   atomic.Uint64
}

type commitReq struct {
	d     *disk
	batch []op
	err   error
	wake  chan bool // true: lead the next round; false: committed (err set)
}

// commit writes batch for d and returns once it is durable (or failed). It
// blocks the calling goroutine (a worker of the pool) for one round at
// most after its own: the leader of a round commits every batch queued
// when the round starts, then hands the lead to the first batch queued
// meanwhile and returns.
func (c *committer) commit(d *disk, batch []op) error {
	req := &commitReq{d: d, batch: batch, wake: make(chan bool, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if !lead && !<-req.wake {
		return req.err // another leader committed it
	}
	c.mu.Lock()
	round := c.queue
	c.queue = nil
	c.mu.Unlock()
	c.run(round)
	for _, r := range round {
		if r != req {
			r.wake <- false
		}
	}
	c.mu.Lock()
	if len(c.queue) > 0 {
		next := c.queue[0]
		c.mu.Unlock()
		next.wake <- true
	} else {
		c.busy = false
		c.mu.Unlock()
	}
	return req.err
}

// run commits one round in one transaction. A batch refused by a test hook
// fails alone; a failed transaction fails the whole round, and so does a
// panic (bolt panics on a corrupt file), which is turned into the round's
// error so that the lead is still handed on: otherwise every shard of the
// daemon would wait for good.
func (c *committer) run(round []*commitReq) {
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("kvstore: commit panicked: %v\n%s", v, debug.Stack())
			for _, r := range round {
				if r.err == nil {
					r.err = err
				}
			}
		}
	}()
	ok := round[:0:0]
	for _, r := range round {
		if err := r.d.beforeCommit(r.batch); err != nil {
			r.err = err
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, r := range ok {
			b := tx.Bucket(r.d.bucket)
			if b == nil {
				return fmt.Errorf("no bucket %s", r.d.bucket)
			}
			for i := range r.batch {
				o := &r.batch[i]
				var err error
				if o.del {
					err = b.Delete([]byte(o.key))
				} else {
					err = b.Put([]byte(o.key), o.val)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		c.txs.Add(1)
	}
	for _, r := range ok {
		if err != nil {
			r.err = fmt.Errorf("kvstore: shard %d: commit: %w", r.d.id, err)
			continue
		}
		r.d.writes.Add(uint64(len(r.batch)))
	}
}

// storeFile is the bolt file of a daemon's shards, one bucket each.
const storeFile = "store.db"

// openStore opens dir/store.db with a bucket for each of ids, moving in
// the data of the per-shard files that earlier versions kept
// (dir/shard-NNN.db, bucket "kv"), which are then renamed *.migrated.
func openStore(dir string, ids []int) (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, &bolt.Options{Timeout: timeoutOpen})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(shardBucket(id))
			return err
		}); err != nil {
			db.Close()
			return nil, err
		}
		if err := migrateShardFile(db, dir, id); err != nil {
			db.Close()
			return nil, fmt.Errorf("shard %d: migrating %s: %w", id, legacyFile(id), err)
		}
	}
	return db, nil
}

func shardBucket(id int) []byte { return []byte(shardName(id)) }

func legacyFile(id int) string { return fmt.Sprintf("shard-%03d.db", id) }

// legacyBucket is the bucket of a per-shard file.
var legacyBucket = []byte("kv")

// migratedBucket records, in the daemon's file, the per-shard files
// already moved in: a file found again after a crash (its rename not yet
// on disk) is then not copied over writes made since.
var migratedBucket = []byte("migrated")

// migrateShardFile copies a per-shard file's keys into db and records that
// it did in the same transaction, then renames the file (and syncs the
// directory). A crash at any point leaves either nothing done or the copy
// recorded; in the second case the file is only renamed again.
func migrateShardFile(db *bolt.DB, dir string, id int) error {
	path := filepath.Join(dir, legacyFile(id))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeoutOpen, ReadOnly: true})
	if err != nil {
		return err
	}
	err = old.View(func(otx *bolt.Tx) error {
		return db.Update(func(tx *bolt.Tx) error {
			done, err := tx.CreateBucketIfNotExists(migratedBucket)
			if err != nil {
				return err
			}
			if done.Get([]byte(legacyFile(id))) != nil {
				return nil // copied before a crash: the data in db is newer
			}
			if ob := otx.Bucket(legacyBucket); ob != nil {
				b := tx.Bucket(shardBucket(id))
				if err := ob.ForEach(func(k, v []byte) error { return b.Put(k, v) }); err != nil {
					return err
				}
			}
			return done.Put([]byte(legacyFile(id)), []byte{1})
		})
	})
	if cerr := old.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(path, path+".migrated"); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// timeoutOpen bounds the wait for a bolt file another process holds.
const timeoutOpen = time.Second
