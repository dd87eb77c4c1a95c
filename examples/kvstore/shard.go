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
	hooks   *hooks
}

// hooks are test-only fault injections and probes.
type hooks struct {
	beforeCommit func(shard int, keys []string) error // runs on the worker before a commit; an error fails it
	queued       func(shard, n int)                   // runs on the loop when a write is queued behind a commit
	started      func(shard int)                      // runs on the loop in every shard instance's Start
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

// flight is a batch handed to a commit job. Its writes are answered once,
// when the commit's outcome is known: by the shard's continuation, which
// first applies them to the map, while the instance that submitted the
// batch lives; if that instance dies first, by whichever of the job and
// the dying instance (abandon) comes last. A job that has not started when
// its instance dies does not commit, and its writes fail as not applied.
type flight struct {
	batch  []op
	mu     sync.Mutex
	state  flightState
	orphan bool  // the instance died while the job ran: the job answers
	err    error // the commit's outcome, once flightDone
}

type flightState uint8

const (
	flightQueued    flightState = iota // submitted; the job has not started
	flightRunning                      // the job is committing
	flightDone                         // committed, or failed with err
	flightCancelled                    // dropped before the job started: nothing committed
)

// run is the commit job, on the worker pool.
func (f *flight) run(d *disk) error {
	f.mu.Lock()
	if f.state == flightCancelled {
		f.mu.Unlock()
		return errCancelled // whoever cancelled answered and released pending
	}
	f.state = flightRunning
	f.mu.Unlock()
	err := fmt.Errorf("kvstore: shard %d: commit job panicked", d.id)
	defer func() {
		f.mu.Lock()
		f.state, f.err = flightDone, err
		orphan := f.orphan
		f.mu.Unlock()
		if orphan {
			f.answer(err)
		}
		// Last: a restarted instance loads once pending is done, so it
		// reads this commit.
		d.pending.Done()
	}()
	err = d.commit(f.batch)
	return err
}

// errCancelled is the result of a job cancelled before it started; nobody
// reads it (its continuation does not run, or finds the flight cancelled).
var errCancelled = errors.New("kvstore: commit cancelled")

// cancelQueued cancels the job if it has not started and reports whether
// it did: the caller then answers the writes and releases pending.
func (f *flight) cancelQueued() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != flightQueued {
		return false
	}
	f.state = flightCancelled
	return true
}

// abandon is called on the loop by the instance that submitted f when it
// dies before its continuation ran. cause is the error of writes that
// were not committed.
func (f *flight) abandon(d *disk, cause error) {
	f.mu.Lock()
	switch f.state {
	case flightQueued:
		f.state = flightCancelled
		f.mu.Unlock()
		f.answer(cause)
		d.pending.Done()
	case flightRunning:
		f.orphan = true // the job answers when the commit ends
		f.mu.Unlock()
	case flightDone:
		err := f.err
		f.mu.Unlock()
		f.answer(err) // committed (or failed) for sure: the real outcome
	default:
		f.mu.Unlock()
	}
}

func (f *flight) answer(err error) {
	for i := range f.batch {
		f.batch[i].r.Reply(nil, err)
	}
}

// shard is the actor owning one shard. Fields are touched only on its loop.
type shard struct {
	d        *disk
	maxBatch int
	token    string            // the store's token, for CrashShard
	data     map[string][]byte // committed state
	loading  bool
	gets     []getWait // Gets held while loading
	queue    []op      // writes waiting for the next commit
	flight   *flight   // the commit in flight, if any
}

func newShard(d *disk, maxBatch int, token string) actor.Factory {
	return func() actor.Actor { return &shard{d: d, maxBatch: maxBatch, token: token} }
}

// Start loads the shard from bolt on the worker pool; requests that arrive
// meanwhile are held.
func (s *shard) Start(c *actor.Context) error {
	s.loading = true
	if h := s.d.hooks; h != nil && h.started != nil {
		h.started(s.d.id)
	}
	c.Blocking(func() (any, error) { return s.d.load() }).Then(func(c *actor.Context, v any, err error) {
		s.guard(func() {
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
	})
	return nil
}

// Terminate answers the requests the shard holds when it stops (the store
// closes, the system shuts down): see abandon.
func (s *shard) Terminate(_ *actor.Context, reason error) {
	s.abandon(fmt.Errorf("%w: shard %d stopped (%v)", ErrClosed, s.d.id, reason))
}

// guard runs f, a handler of the shard. If f panics, the shard crashes (the
// runtime recovers the panic, which guard lets through); guard first
// answers the requests the dying instance holds, whose deferred replies
// nobody would answer otherwise.
func (s *shard) guard(f func()) {
	ok := false
	defer func() {
		if !ok {
			s.abandon(fmt.Errorf("%w: shard %d", ErrShardCrashed, s.d.id))
		}
	}()
	f()
	ok = true
}

// abandon answers every request the instance holds, as it dies: Gets held
// while loading and writes only queued fail with cause (they were not
// applied); the writes of the commit in flight get its outcome, at once if
// it is known, else from the commit job when it ends.
func (s *shard) abandon(cause error) {
	if f := s.flight; f != nil {
		s.flight = nil
		f.abandon(s.d, fmt.Errorf("%w; the write was not applied", cause))
	}
	for _, o := range s.queue {
		o.r.Reply(nil, fmt.Errorf("%w; the write was not applied", cause))
	}
	for _, g := range s.gets {
		g.r.Reply(nil, fmt.Errorf("%w; the get was not served", cause))
	}
	s.queue, s.gets = nil, nil
}

// Receive serves Get, Put and Delete.
func (s *shard) Receive(c *actor.Context, msg any) (v any, err error) {
	s.guard(func() { v, err = s.receive(c, msg) })
	return v, err
}

func (s *shard) receive(c *actor.Context, msg any) (any, error) {
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
	if s.flight != nil || s.loading {
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
	f := &flight{batch: s.queue[:n:n]}
	if n == len(s.queue) {
		s.queue = nil
	} else {
		s.queue = append([]op(nil), s.queue[n:]...)
	}
	s.flight = f
	d := s.d
	d.pending.Add(1)
	c.Blocking(func() (any, error) { return nil, f.run(d) }).Then(func(c *actor.Context, _ any, err error) {
		s.guard(func() {
			if f.cancelQueued() {
				// The job never ran (the pool refused it, or the system
				// is shutting down): nothing was committed.
				d.pending.Done()
				if err == nil {
					err = errCancelled
				}
			} else if err == nil {
				for i := range f.batch {
					if o := &f.batch[i]; o.del {
						delete(s.data, o.key)
					} else {
						s.data[o.key] = o.val
					}
				}
			}
			f.answer(err)
			s.flight = nil // after the answers: a panic before them leaves them to abandon
			if len(s.queue) > 0 {
				s.flush(c)
			}
		})
	})
}
