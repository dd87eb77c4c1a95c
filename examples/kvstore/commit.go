package kvstore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/actord/actord/actor"
)

// committer group-commits the writes of all the replicas of one daemon in
// its one bolt file. Each replica sends one batch at a time (shard.flush),
// as an ask to the committer's actor, which queues it with its deferred
// reply; the committer's goroutine commits everything queued in one
// transaction (one fsync), answers, and starts over with what queued
// meanwhile. The disk does a bounded number of fsyncs per second (about
// 3000 on the machine of docs/performance.md, shared by the demo's three
// daemons), so that number, not the CPU, bounds durable writes unless they
// share fsyncs. No goroutine of the actor system's worker pool waits for
// the disk: a pool of a few workers would otherwise cap the batches of a
// round at that few.
type committer struct {
	db    *bolt.DB
	mu    sync.Mutex
	queue []*commitReq // waiting for the next round
	busy  bool         // a round is running
	wake  chan struct{}
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when the goroutine has ended
	ref   actor.Ref     // the committer's actor
	txs   atomic.Uint64
}

type commitReq struct {
	d   *disk
	f   *flight
	r   *actor.Reply
	err error
}

// commitMsg asks the committer's actor to commit a replica's flight.
type commitMsg struct {
	d *disk
	f *flight
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

// start spawns the committer's actor.
func (c *committer) start(ctx context.Context, sys *actor.System) error {
	r, err := sys.Spawn(ctx, func() actor.Actor { return committerActor{c} }, actor.Name("kvstore/committer"))
	if err != nil {
		return err
	}
	c.ref = r
	return nil
}

// committerActor queues the flights it is asked to commit.
type committerActor struct{ c *committer }

func (a committerActor) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case commitMsg:
		a.c.enqueue(&commitReq{d: m.d, f: m.f, r: c.Defer()})
		return nil, nil
	case stopCommitter:
		return nil, c.Stop(c.Self(), nil)
	}
	return nil, actor.Unhandled(msg)
}

// stopCommitter stops the committer's actor.
type stopCommitter struct{}

func (c *committer) enqueue(r *commitReq) {
	c.mu.Lock()
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// loop runs the rounds until close; requests left then fail with ErrClosed.
func (c *committer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.mu.Lock()
			left := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, r := range left {
				if r.f.begin() {
					r.f.end(r.d, ErrClosed)
				}
				r.r.Reply(nil, ErrClosed)
			}
			return
		}
		c.mu.Lock()
		round := c.queue
		c.queue = nil
		c.busy = len(round) > 0
		c.mu.Unlock()
		if len(round) == 0 {
			continue
		}
		c.run(round)
		c.mu.Lock()
		c.busy = false
		more := len(c.queue) > 0
		c.mu.Unlock()
		if more {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// close ends the committer's goroutine once the round running is done.
func (c *committer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// run commits one round in one transaction. A batch refused by a test hook
// fails alone; a failed transaction fails the whole round, and so does a
// panic (bolt panics on a corrupt file), which is turned into the round's
// error so that the lead is still handed on: otherwise every shard of the
// daemon would wait for good.
func (c *committer) run(round []*commitReq) {
	// A flight its replica cancelled (it died before the round) is
	// answered as not applied; the others are committed, then answered.
	live := round[:0:0]
	for _, r := range round {
		if !r.f.begin() {
			r.r.Reply(nil, errCancelled)
			continue
		}
		live = append(live, r)
	}
	c.commitRound(live)
	for _, r := range live {
		r.f.end(r.d, r.err)
		r.r.Reply(nil, r.err)
	}
}

// commitRound writes the batches of a round in one transaction, and sets
// each request's err.
func (c *committer) commitRound(round []*commitReq) {
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
		if err := r.d.beforeCommit(r.f.batch); err != nil {
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
			for i := range r.f.batch {
				if o := &r.f.batch[i]; o.write {
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
		for i := range r.f.batch {
			if r.f.batch[i].write {
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
