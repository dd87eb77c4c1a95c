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
// its one storage (a bolt file). Each replica sends one batch at a time
// (shard.flush), as an ask to the committer's actor, which queues it with
// its deferred reply. A drain job (Context.Blocking) commits everything
// queued in one transaction (one fsync: with the default storage, one
// record of the write-ahead log, wal.go), answers, and starts over with
// what queued meanwhile, until the queue is empty; the actor starts one
// when it queues a request and none runs. So the rounds follow each other
// at once, as on a goroutine of their own, but the committer starts no
// goroutine and reads no clock: a simulator runs its job as an event of
// virtual time (one round each). The disk does a bounded number of fsyncs
// per second (about 3000 on the machine of docs/performance.md, shared by
// the demo's three daemons), so that number, not the CPU, bounds durable
// writes unless they share fsyncs. One worker of the pool per daemon
// waits for the disk, whatever the number of batches: the pool is not a
// cap on a round's batches.
//
// Loads of restarting replicas go through it too (loadMsg): a load runs
// in the round after the commits queued before it, so that a replica
// restarted while a commit of its earlier instance is in flight reads it,
// without a worker waiting for that commit.
type committer struct {
	st      Storage
	ref     actor.Ref      // the committer's actor
	running sync.WaitGroup // drain jobs submitted and not finished
	txs     atomic.Uint64

	mu       sync.Mutex
	queue    []*commitReq // waiting for the next round
	spare    rooms[*commitReq]
	draining bool // a drain job is submitted or runs
}

type commitReq struct {
	d    *disk
	f    *flight // nil for a load
	r    *actor.Reply
	err  error
	load bool
}

// commitMsg asks the committer's actor to commit a replica's flight (of
// the replica f.d). One pointer: an interface holds it without an
// allocation.
type commitMsg struct{ f *flight }

// loadMsg asks the committer's actor for a replica's entries (a
// map[string]Entry), once the commits queued before it are done.
type loadMsg struct{ d *disk }

func newCommitter(st Storage) *committer { return &committer{st: st} }

// start spawns the committer's actor.
func (c *committer) start(ctx context.Context, sys *actor.System) error {
	r, err := sys.Spawn(ctx, func() actor.Actor { return &committerActor{c: c} }, actor.Name("kvstore/committer"))
	if err != nil {
		return err
	}
	c.ref = r
	return nil
}

// committerActor queues the flights and loads it is asked for, and starts
// a drain job when none runs. Its fields are touched on its loop only.
type committerActor struct {
	c   *committer
	job *drainJob // the last drain job started
}

func (a *committerActor) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case commitMsg:
		r := &m.f.req // the flight's own: no allocation per commit
		*r = commitReq{d: m.f.d, f: m.f, r: c.Defer()}
		a.enqueue(c, r)
		return nil, nil
	case loadMsg:
		a.enqueue(c, &commitReq{d: m.d, r: c.Defer(), load: true})
		return nil, nil
	case stopCommitter:
		return nil, c.Stop(c.Self(), nil)
	}
	return nil, actor.Unhandled(msg)
}

// enqueue queues r and starts a drain job if none runs.
func (a *committerActor) enqueue(c *actor.Context, r *commitReq) {
	cm := a.c
	cm.mu.Lock()
	if cm.queue == nil {
		cm.queue = cm.spare.take()
	}
	cm.queue = append(cm.queue, r)
	start := !cm.draining
	cm.draining = true
	cm.mu.Unlock()
	if !start {
		return
	}
	job := &drainJob{}
	a.job = job
	cm.running.Add(1)
	c.Blocking(func() (any, error) {
		if job.claim(jobRan) {
			defer cm.running.Done()
			cm.drain()
		}
		return nil, nil
	}).Then(func(_ *actor.Context, _ any, err error) {
		if job.state.Load() != jobPending {
			return // it ran (or Terminate took it): no error to build
		}
		job.abandon(cm, fmt.Errorf("kvstore: the commit job was refused: %w", err)) // the pool refused the job
	})
}

// Terminate fails the queued requests if the drain job has not started
// (it may never: the system is shutting down): the store is closing. A
// job that runs drains the queue.
func (a *committerActor) Terminate(*actor.Context, error) {
	if a.job != nil {
		a.job.abandon(a.c, ErrClosed)
	}
}

// fail answers requests that no round ran.
func fail(reqs []*commitReq, err error) {
	for _, r := range reqs {
		if r.f != nil && r.f.begin() {
			r.f.end(r.d, err)
		}
		r.r.Reply(nil, err)
	}
}

// drain runs rounds until the queue is empty.
func (c *committer) drain() {
	var done []*commitReq // the last round's room, for a later queue
	for {
		c.mu.Lock()
		if done != nil {
			c.spare.give(done)
			done = nil
		}
		round := c.queue
		c.queue = nil
		if len(round) == 0 {
			c.draining = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.run(round)
		done = round
	}
}

// drainJob is a drain job, and who took it: the job itself, which drains
// the queue, or whoever found that it would not run (the actor's
// continuation when the pool refused it, or its Terminate when it stops
// before the job started), which fails what is queued.
type drainJob struct{ state atomic.Int32 }

const (
	jobPending int32 = iota
	jobRan
	jobAbandoned
)

func (j *drainJob) claim(to int32) bool { return j.state.CompareAndSwap(jobPending, to) }

// abandon fails the queued requests if the job has not started, and
// releases the committer's count of jobs in flight.
func (j *drainJob) abandon(c *committer, err error) {
	if !j.claim(jobAbandoned) {
		return
	}
	c.mu.Lock()
	left := c.queue
	c.queue, c.draining = nil, false
	c.mu.Unlock()
	c.running.Done()
	fail(left, err)
}

// stopCommitter stops the committer's actor.
type stopCommitter struct{}

// close waits for the round running, if any.
func (c *committer) close() { c.running.Wait() }

// run commits one round in one transaction. A batch refused by a test hook
// fails alone; a failed transaction fails the whole round, and so does a
// panic (bolt panics on a corrupt file), which is turned into the round's
// error so that the lead is still handed on: otherwise every shard of the
// daemon would wait for good.
func (c *committer) run(round []*commitReq) {
	// A flight its replica cancelled (it died before the round) is
	// answered as not applied; the others are committed, then answered;
	// the loads run last.
	live, loads := round[:0], round[:0:0] // live in round's room: it is read ahead of where live writes
	for _, r := range round {
		if r.load {
			loads = append(loads, r)
			continue
		}
		if !r.f.begin() {
			r.r.Reply(nil, errCancelled)
			continue
		}
		live = append(live, r)
	}
	if len(live) > 0 {
		c.commitRound(live)
	}
	for _, r := range live {
		r.f.end(r.d, r.err)
		r.r.Reply(nil, r.err)
	}
	for _, r := range loads {
		m, err := r.d.load()
		r.r.Reply(m, err)
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
	ok, copied := round, false // a copy once a batch is refused: round stays whole for the caller
	for i, r := range round {
		if err := r.d.beforeCommit(r.f.batch); err != nil {
			r.err = err
			if !copied {
				ok, copied = append(make([]*commitReq, 0, len(round)), round[:i]...), true
			}
			continue
		}
		if copied {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return
	}
	// The keys and encoded entries of the round, in one buffer: each put
	// has its own part of it, valid as long as the transaction (bbolt's
	// Put asks that), one allocation per round instead of two per put.
	size := 0
	for _, r := range ok {
		for i := range r.f.batch {
			if o := &r.f.batch[i]; o.write {
				size += len(o.key) + entryHeader + len(o.e.V)
			}
		}
	}
	buf := make([]byte, 0, size)
	err := c.st.Update(func(put func(bucket, key, value []byte) error) error {
		for _, r := range ok {
			for i := range r.f.batch {
				if o := &r.f.batch[i]; o.write {
					k := len(buf)
					buf = append(buf, o.key...)
					v := len(buf)
					buf = appendEntry(buf, o.e)
					if err := put(r.d.bucket, buf[k:v:v], buf[v:len(buf):len(buf)]); err != nil {
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
// this daemon replicates), behind the write-ahead log of dir. It refuses
// the files of the earlier, unreplicated versions (dir/shard-NNN.db, or a
// store.db with "shard-NNN" buckets and no format), whose values carry no
// version: reading them as replicas would make them lose to any write.
func openStore(dir string, ids []int) (Storage, error) {
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
	return openLogged(dir, boltStorage{db}, ids, walOptions{})
}

// openLogged puts the write-ahead log of dir in front of base (see
// wal.go), with the buckets of ids.
func openLogged(dir string, base Storage, ids []int, opt walOptions) (*walStorage, error) {
	w, err := openWAL(dir, base, opt)
	if err != nil {
		return nil, err
	}
	names := make([][]byte, len(ids))
	for i, id := range ids {
		names[i] = shardBucket(id)
	}
	if err := w.Buckets(names); err != nil {
		_ = w.Close()
		return nil, err
	}
	return w, nil
}

func shardBucket(id int) []byte { return []byte(fmt.Sprintf("replica-%03d", id)) }

// timeoutOpen bounds the wait for a bolt file another process holds.
const timeoutOpen = time.Second
