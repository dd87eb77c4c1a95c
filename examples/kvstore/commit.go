package kvstore

import (
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
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
				if o := &r.batch[i]; o.write {
					if err := b.Put([]byte(o.key), encodeEntry(o.e)); err != nil {
						return err
					}
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
		for i := range r.batch {
			if r.batch[i].write {
				r.d.writes.Add(1)
			}
		}
	}
}

// storeFile is the bolt file of a daemon's replicas, one bucket each.
const storeFile = "store.db"

// metaBucket holds the file's format; formatKey's value is storeFormat.
var (
	metaBucket  = []byte("meta")
	formatKey   = []byte("format")
	storeFormat = []byte("replicated-1")
)

// openStore opens dir/store.db with a bucket for each of ids (the shards
// this daemon replicates). It refuses the files of the earlier, unreplicated
// versions (dir/shard-NNN.db, or a store.db with "shard-NNN" buckets and
// no format), whose values carry no version: reading them as replicas
// would make them lose to any write.
func openStore(dir string, ids []int) (*bolt.DB, error) {
	if old, _ := filepath.Glob(filepath.Join(dir, "shard-[0-9][0-9][0-9].db")); len(old) > 0 {
		return nil, fmt.Errorf("%w: %s (move the data dir away to start an empty store)", ErrOldFormat, old[0])
	}
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, &bolt.Options{Timeout: timeoutOpen})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			old := false
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				old = old || strings.HasPrefix(string(name), "shard-")
				return nil
			})
			if old {
				return fmt.Errorf("%w: %s has unversioned shard buckets (move the data dir away to start an empty store)", ErrOldFormat, storeFile)
			}
			if meta, err = tx.CreateBucket(metaBucket); err != nil {
				return err
			}
			if err := meta.Put(formatKey, storeFormat); err != nil {
				return err
			}
		} else if f := meta.Get(formatKey); string(f) != string(storeFormat) {
			return fmt.Errorf("kvstore: %s has format %q, want %q", storeFile, f, storeFormat)
		}
		for _, id := range ids {
			if _, err := tx.CreateBucketIfNotExists(shardBucket(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func shardBucket(id int) []byte { return []byte(fmt.Sprintf("replica-%03d", id)) }

// timeoutOpen bounds the wait for a bolt file another process holds.
const timeoutOpen = time.Second
