package kvstore

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/actord/actord/actor"
)

// disk is a shard's bucket in its daemon's bolt file, and its counters.
// It belongs to the Store and outlives the shard actor's incarnations: a
// restarted shard finds it as it was, including commits of the crashed
// instance still in flight.
type disk struct {
	id      int
	db      *bolt.DB
	bucket  []byte
	c       *committer     // the daemon's group committer
	pending sync.WaitGroup // commits submitted and not finished
	writes  atomic.Uint64  // writes committed (puts and deletes)
	epoch   atomic.Uint64  // incremented by every shard instance's Start
	hooks   *hooks
}

// hooks are test-only fault injections and probes.
type hooks struct {
	beforeCommit func(shard int, keys []string) error // runs on the worker before a commit; an error fails it
	queued       func(shard, n int)                   // runs on the loop when a write is queued behind a commit
}

// commit writes a batch durably, in the daemon's next group commit.
func (d *disk) commit(batch []op) error { return d.c.commit(d, batch) }

// beforeCommit runs the test hook, if any.
func (d *disk) beforeCommit(batch []op) error {
	h := d.hooks
	if h == nil || h.beforeCommit == nil {
		return nil
	}
	keys := make([]string, len(batch))
	for i := range batch {
		keys[i] = batch[i].key
	}
	return h.beforeCommit(d.id, keys)
}

// load reads the whole shard, once every commit already submitted is done.
func (d *disk) load() (map[string][]byte, error) {
	d.pending.Wait()
	m := make(map[string][]byte)
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(d.bucket).ForEach(func(k, v []byte) error {
			m[string(k)] = append([]byte(nil), v...) // bolt's slices die with the tx
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: shard %d: load: %w", d.id, err)
	}
	return m, nil
}

// op is a write waiting for, or part of, a commit.
type op struct {
	key string
	val []byte
	del bool
	r   *actor.Reply
}

// getWait is a Get that arrived while the shard was loading.
type getWait struct {
	key string
	r   *actor.Reply
}

// crash is a test-only message that makes a shard panic.
type crash struct{}

// shard is the actor owning one shard. Fields are touched only on its loop.
type shard struct {
	d        *disk
	maxBatch int
	token    string            // the store's token, for CrashShard
	data     map[string][]byte // committed state
	loading  bool
	epoch    uint64    // this instance's number, from disk.epoch
	gets     []getWait // Gets held while loading
	queue    []op      // writes waiting for the next commit
	inflight bool      // a commit is running
}

func newShard(d *disk, maxBatch int, token string) actor.Factory {
	return func() actor.Actor { return &shard{d: d, maxBatch: maxBatch, token: token} }
}

// Start loads the shard from bolt on the worker pool; requests that arrive
// meanwhile are held.
func (s *shard) Start(c *actor.Context) error {
	s.loading = true
	s.epoch = s.d.epoch.Add(1)
	c.Blocking(func() (any, error) { return s.d.load() }).Then(func(c *actor.Context, v any, err error) {
		if err != nil {
			panic(err) // let it crash: the supervisor retries, then gives up
		}
		s.data, s.loading = v.(map[string][]byte), false
		for _, g := range s.gets {
			v, ok := s.data[g.key]
			g.r.Reply(GetReply{V: v, OK: ok}, nil)
		}
		s.gets = nil
		if len(s.queue) > 0 {
			s.flush(c)
		}
	})
	return nil
}

// Receive serves Get, Put and Delete.
func (s *shard) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Get:
		if s.loading {
			s.gets = append(s.gets, getWait{key: m.K, r: c.Defer()})
			return nil, nil
		}
		v, ok := s.data[m.K]
		return GetReply{V: v, OK: ok}, nil
	case Put:
		if err := checkKey(m.K); err != nil {
			return nil, err
		}
		if m.V == nil {
			m.V = []byte{} // msgpack may decode an empty value as nil
		}
		s.write(c, op{key: m.K, val: m.V})
		return nil, nil
	case Delete:
		if err := checkKey(m.K); err != nil {
			return nil, err
		}
		s.write(c, op{key: m.K, del: true})
		return nil, nil
	case crash:
		panic("kvstore: crash requested")
	case CrashShard:
		if subtle.ConstantTimeCompare([]byte(m.Token), []byte(s.token)) != 1 {
			return nil, ErrBadToken
		}
		panic(fmt.Sprintf("kvstore: shard %d: crash requested (CrashShard)", s.d.id))
	}
	return nil, actor.ErrUnknownMessage
}

// write queues a write with its deferred reply and commits at once if no
// commit is in flight (otherwise it goes with the next one).
func (s *shard) write(c *actor.Context, o op) {
	o.r = c.Defer()
	s.queue = append(s.queue, o)
	if s.inflight || s.loading {
		if h := s.d.hooks; h != nil && h.queued != nil {
			h.queued(s.d.id, len(s.queue))
		}
		return
	}
	s.flush(c)
}

// flush commits the queued writes (up to maxBatch) in one transaction on
// the worker pool. When it completes, the writes are applied to the map,
// acknowledged, and the writes queued meanwhile are committed next.
func (s *shard) flush(c *actor.Context) {
	n := min(len(s.queue), s.maxBatch)
	batch := s.queue[:n:n]
	if n == len(s.queue) {
		s.queue = nil
	} else {
		s.queue = append([]op(nil), s.queue[n:]...)
	}
	s.inflight = true
	d := s.d
	d.pending.Add(1)
	epoch := s.epoch
	c.Blocking(func() (any, error) {
		defer d.pending.Done()
		err := d.commit(batch)
		if d.epoch.Load() != epoch {
			// This instance crashed meanwhile: its continuation will not
			// run, so acknowledge here. The new instance loads only after
			// this job is done (pending), so it reads these writes.
			for i := range batch {
				batch[i].r.Reply(nil, err)
			}
		}
		return nil, err
	}).Then(func(c *actor.Context, _ any, err error) {
		s.inflight = false
		if errors.Is(err, actor.ErrPoolFull) {
			d.pending.Done() // the job never ran
		}
		if err == nil {
			for i := range batch {
				if o := &batch[i]; o.del {
					delete(s.data, o.key)
				} else {
					s.data[o.key] = o.val
				}
			}
		}
		for i := range batch {
			batch[i].r.Reply(nil, err)
		}
		if len(s.queue) > 0 {
			s.flush(c)
		}
	})
}
