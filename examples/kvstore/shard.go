package kvstore

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/actord/actord/actor"
)

// disk is a replica's bucket in its daemon's storage, and its counters.
// It belongs to the Store and outlives the replica actor's incarnations: a
// restarted replica finds it as it was, including commits of the crashed
// instance still in flight.
type disk struct {
	id      int
	st      Storage
	bucket  []byte
	c       *committer     // the daemon's group committer
	pending sync.WaitGroup // commits submitted and not finished
	writes  atomic.Uint64  // versions written
	hooks   *hooks
}

// hooks are test-only fault injections and probes.
type hooks struct {
	beforeCommit func(shard int, keys []string) error // runs on the worker before a commit; an error fails it
	queued       func(shard, n int)                   // runs on the loop when a write is queued behind a commit
	started      func(shard int)                      // runs on the loop in every replica instance's Start
	secondPass   <-chan struct{}                      // the catch-up's second pass waits for it instead of CatchUpAgain
	written      func(shard int, w Write)             // runs on the loop for every Write a replica receives
	read         func(shard, keys int)                // runs on the loop for every Get or GetMany a replica receives
}

// beforeCommit runs the test hook, if any.
func (d *disk) beforeCommit(batch []op) error {
	h := d.hooks
	if h == nil || h.beforeCommit == nil {
		return nil
	}
	var keys []string
	for i := range batch {
		if batch[i].write {
			keys = append(keys, batch[i].key)
		}
	}
	return h.beforeCommit(d.id, keys)
}

// Versions on disk: a format byte, the stamp, a flags byte, the value.
const (
	entryFormat  = 1
	entryHeader  = 1 + 8 + 8 + 1
	flagDeleted  = 1
	syncMaxBytes = 1 << 20
)

// appendEntry appends e as the disk keeps it to b.
func appendEntry(b []byte, e Entry) []byte {
	var flags byte
	if e.Deleted {
		flags = flagDeleted
	}
	b = append(b, entryFormat)
	b = binary.BigEndian.AppendUint64(b, e.TS.N)
	b = binary.BigEndian.AppendUint64(b, e.TS.W)
	b = append(b, flags)
	return append(b, e.V...)
}

// decodeEntry reads an entry; its value is copied (the storage's slices
// die with its transaction).
func decodeEntry(b []byte) (Entry, error) {
	if len(b) < entryHeader || b[0] != entryFormat {
		return Entry{}, fmt.Errorf("kvstore: corrupt entry (%d bytes)", len(b))
	}
	e := Entry{TS: Stamp{N: binary.BigEndian.Uint64(b[1:]), W: binary.BigEndian.Uint64(b[9:])}, Deleted: b[17]&flagDeleted != 0}
	e.V = append([]byte{}, b[entryHeader:]...)
	return e, nil
}

// load reads the whole replica. The committer runs it (see loadMsg), after
// every commit submitted before it.
func (d *disk) load() (map[string]Entry, error) {
	m := make(map[string]Entry)
	err := d.st.Scan(d.bucket, nil, func(k, v []byte) (bool, error) {
		e, err := decodeEntry(v)
		if err != nil {
			return false, fmt.Errorf("key %q: %w", k, err)
		}
		m[string(k)] = e
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: shard %d: load: %w", d.id, err)
	}
	return m, nil
}

// page reads the durable entries after key after, in key order: at most
// max of them, and about syncMaxBytes.
func (d *disk) page(after string, max int) (SyncReply, error) {
	var rep SyncReply
	size := 0
	err := d.st.Scan(d.bucket, []byte(after), func(k, v []byte) (bool, error) {
		if len(rep.Entries) >= max || size >= syncMaxBytes {
			rep.More = true
			return false, nil
		}
		e, err := decodeEntry(v)
		if err != nil {
			return false, fmt.Errorf("key %q: %w", k, err)
		}
		rep.Entries = append(rep.Entries, SyncEntry{K: string(k), E: e})
		size += len(k) + len(e.V) + entryHeader
		return true, nil
	})
	if err != nil {
		return SyncReply{}, fmt.Errorf("kvstore: shard %d: sync: %w", d.id, err)
	}
	return rep, nil
}

// replier answers a request: an *actor.Reply, or a group of requests.
type replier interface{ Reply(v any, err error) }

// op is a Write waiting for, or part of, a commit. write is decided when
// the batch is made: the newest version of each key in the batch, if newer
// than the committed one, is written; the other Writes of the batch are
// acknowledged with it.
type op struct {
	key   string
	e     Entry
	write bool
	r     replier
}

// held is a request that arrived while the replica was loading.
type held struct {
	msg any
	r   *actor.Reply
}

// crash is a test-only message that makes a replica panic.
type crash struct{}

// apply asks a replica to store every entry (a catch-up page); the reply
// comes when they are all durable, or with the first error.
type apply struct{ entries []SyncEntry }

// group answers one request once n Writes have been answered.
type group struct {
	r   *actor.Reply
	n   int
	err error
}

// Reply counts one answer; they all come on the replica's loop.
func (g *group) Reply(_ any, err error) {
	if err != nil && g.err == nil {
		g.err = err
	}
	if g.n--; g.n == 0 {
		g.r.Reply(nil, g.err)
	}
}

// flight is a batch handed to the committer. Its writes are answered once,
// when the commit's outcome is known: by the replica's continuation, which
// first applies them to the map, while the instance that submitted the
// batch lives; if that instance dies first, by whichever of the committer
// and the dying instance (abandon) comes last. A flight whose commit has
// not started when its instance dies is not committed, and its writes fail
// as not applied.
type flight struct {
	d      *disk // the replica's
	batch  []op
	req    commitReq // the committer's request for it, kept here: one allocation less
	mu     sync.Mutex
	state  flightState
	orphan bool  // the instance died while it was committed: the committer answers
	err    error // the commit's outcome, once flightDone
}

type flightState uint8

const (
	flightQueued    flightState = iota // submitted; its commit has not started
	flightRunning                      // the committer is committing it
	flightDone                         // committed, or failed with err
	flightCancelled                    // dropped before the job started: nothing committed
)

// begin is called by the committer before it commits f: it reports false
// if f was cancelled (its replica died first; whoever cancelled answered
// and released pending).
func (f *flight) begin() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == flightCancelled {
		return false
	}
	f.state = flightRunning
	return true
}

// end records the commit's outcome; if the replica died meanwhile, it
// answers the writes itself. Last, it releases pending: a restarted
// replica loads once pending is done, so it reads this commit.
func (f *flight) end(d *disk, err error) {
	f.mu.Lock()
	f.state, f.err = flightDone, err
	orphan := f.orphan
	f.mu.Unlock()
	if orphan {
		f.answer(err)
	}
	d.pending.Done()
}

// errCancelled is the result of a job cancelled before it started; nobody
// reads it (its continuation does not run, or finds the flight cancelled).
var errCancelled = errors.New("kvstore: commit cancelled")

// cancelQueued cancels the commit if it has not started and reports
// whether it did: the caller then answers the writes and releases pending.
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
		f.orphan = true // the committer answers when the commit ends
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

// shard is the actor of one replica of a shard. Fields are touched only on
// its loop.
type shard struct {
	d        *disk
	maxBatch int
	token    string           // the store's token, for CrashShard
	data     map[string]Entry // the durable versions
	loading  bool
	waiting  []held         // requests held while loading
	queue    []op           // Writes waiting for the next commit
	spare    rooms[op]      // the room of batches answered, for the next queues
	newest   map[string]int // flush's, kept between batches
	flight   *flight        // the commit in flight, if any
}

func newShard(d *disk, maxBatch int, token string) actor.Factory {
	return func() actor.Actor { return &shard{d: d, maxBatch: maxBatch, token: token} }
}

// Start loads the replica from the storage, through the committer (after
// the commits of earlier instances still in flight); requests that arrive
// meanwhile are held.
func (s *shard) Start(c *actor.Context) error {
	s.loading = true
	if h := s.d.hooks; h != nil && h.started != nil {
		h.started(s.d.id)
	}
	c.AskTimeout(s.d.c.ref, loadMsg{d: s.d}, 0).Then(func(c *actor.Context, v any, err error) {
		s.guard(func() {
			if err != nil {
				panic(err) // let it crash: the supervisor retries, then gives up
			}
			s.data, s.loading = v.(map[string]Entry), false
			waiting := s.waiting
			s.waiting = nil
			for _, h := range waiting {
				if v, later, err := s.receive(c, h.msg, h.r); !later {
					h.r.Reply(v, err)
				}
			}
		})
	})
	return nil
}

// Terminate answers the requests the replica holds when it stops (the
// store closes, the system shuts down): see abandon.
func (s *shard) Terminate(_ *actor.Context, reason error) {
	s.abandon(fmt.Errorf("%w: shard %d stopped (%v)", ErrClosed, s.d.id, reason))
}

// guard runs f, a handler of the replica. If f panics, the replica crashes
// (the runtime recovers the panic, which guard lets through); guard first
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

// abandon answers every request the instance holds, as it dies: requests
// held while loading and Writes only queued fail with cause (they were not
// applied); the Writes of the commit in flight get its outcome, at once if
// it is known, else from the commit job when it ends.
func (s *shard) abandon(cause error) {
	if f := s.flight; f != nil {
		s.flight = nil
		f.abandon(s.d, fmt.Errorf("%w; the write was not applied", cause))
	}
	for _, o := range s.queue {
		o.r.Reply(nil, fmt.Errorf("%w; the write was not applied", cause))
	}
	for _, h := range s.waiting {
		h.r.Reply(nil, fmt.Errorf("%w; the request was not served", cause))
	}
	s.queue, s.waiting = nil, nil
}

// Receive serves Get, Write and SyncRequest.
func (s *shard) Receive(c *actor.Context, msg any) (v any, err error) {
	s.guard(func() { v, _, err = s.receive(c, msg, nil) })
	return v, err
}

// receive handles msg. r is its deferred reply if it was held while
// loading (nil: defer it if it must wait). later means that the reply is
// deferred and will come later.
func (s *shard) receive(c *actor.Context, msg any, r *actor.Reply) (v any, later bool, err error) {
	if s.loading {
		switch msg.(type) {
		case Get, GetMany, Write, SyncRequest, apply:
			if r == nil {
				r = c.Defer()
			}
			s.waiting = append(s.waiting, held{msg: msg, r: r})
			return nil, true, nil
		}
	}
	switch m := msg.(type) {
	case Get:
		if h := s.d.hooks; h != nil && h.read != nil {
			h.read(s.d.id, 1)
		}
		e := s.data[m.K]
		if m.NoValue {
			e.V = nil
		}
		return e, false, nil
	case GetMany:
		if len(m.Gets) > MaxGetMany {
			return nil, false, fmt.Errorf("%w: %d gets, at most %d", ErrTooMany, len(m.Gets), MaxGetMany)
		}
		if h := s.d.hooks; h != nil && h.read != nil {
			h.read(s.d.id, len(m.Gets))
		}
		out := make([]Entry, len(m.Gets))
		for i, g := range m.Gets {
			if err := checkKey(g.K); err != nil {
				return nil, false, err
			}
			out[i] = s.data[g.K]
			if g.NoValue {
				out[i].V = nil
			}
		}
		return Entries{E: out}, false, nil
	case Write:
		if err := checkKey(m.K); err != nil {
			return nil, false, err
		}
		if h := s.d.hooks; h != nil && h.written != nil {
			h.written(s.d.id, m)
		}
		if !s.data[m.K].TS.Less(m.E.TS) {
			return nil, false, nil // this version, or a newer one, is durable
		}
		if m.E.V == nil && !m.E.Deleted {
			m.E.V = []byte{} // msgpack may decode an empty value as nil
		}
		if r == nil {
			r = c.Defer()
		}
		s.write(c, op{key: m.K, e: m.E, r: r})
		return nil, true, nil
	case SyncRequest:
		rep := r // r itself, captured, would be on the heap for every message
		if rep == nil {
			rep = c.Defer()
		}
		d, max := s.d, min(max(m.Max, 1), 4096)
		c.Blocking(func() (any, error) { return d.page(m.After, max) }).Then(func(_ *actor.Context, v any, err error) {
			rep.Reply(v, err)
		})
		return nil, true, nil
	case apply:
		if r == nil {
			r = c.Defer()
		}
		g := &group{r: r, n: len(m.entries) + 1}
		for _, e := range m.entries {
			if checkKey(e.K) == nil && s.data[e.K].TS.Less(e.E.TS) {
				s.write(c, op{key: e.K, e: e.E, r: g})
			} else {
				g.Reply(nil, nil)
			}
		}
		g.Reply(nil, nil)
		return nil, true, nil
	case crash:
		panic("kvstore: crash requested")
	case CrashShard:
		if subtle.ConstantTimeCompare([]byte(m.Token), []byte(s.token)) != 1 {
			return nil, false, ErrBadToken
		}
		panic(fmt.Sprintf("kvstore: shard %d: crash requested (CrashShard)", s.d.id))
	}
	return nil, false, actor.ErrUnknownMessage
}

// write queues a Write with its reply and commits at once if no commit is
// in flight (otherwise it goes with the next one).
func (s *shard) write(c *actor.Context, o op) {
	if s.queue == nil {
		s.queue = s.spare.take()
	}
	s.queue = append(s.queue, o)
	if s.flight != nil {
		if h := s.d.hooks; h != nil && h.queued != nil {
			h.queued(s.d.id, len(s.queue))
		}
		return
	}
	s.flush(c)
}

// reuse keeps the room of an answered batch for the next queue.
func (s *shard) reuse(batch []op) { s.spare.give(batch) }

// flush commits the queued Writes (up to maxBatch) in one transaction on
// the worker pool. When it completes, the versions written are applied to
// the map, every Write of the batch is acknowledged, and the Writes queued
// meanwhile are committed next.
func (s *shard) flush(c *actor.Context) {
	n := min(len(s.queue), s.maxBatch)
	batch := s.queue[:n:n]
	if n == len(s.queue) {
		batch, s.queue = s.queue, nil // all of its room, for reuse
	} else {
		rest := s.queue[n:]
		s.queue = append([]op(nil), rest...)
		clear(rest) // copied: the batch's room, reused later, must not keep them
	}
	// The newest version of each key in the batch is written, if it is
	// newer than the durable one; the batch commits as a whole, so the
	// other Writes of the key are acknowledged with it.
	if s.newest == nil {
		s.newest = map[string]int{}
	}
	newest := s.newest
	for i := range batch {
		o := &batch[i]
		if j, ok := newest[o.key]; !ok || batch[j].e.TS.Less(o.e.TS) {
			newest[o.key] = i
		}
	}
	writes := false
	for k, i := range newest {
		batch[i].write = s.data[k].TS.Less(batch[i].e.TS)
		writes = writes || batch[i].write
	}
	if len(newest) > 64 {
		s.newest = nil // maps do not shrink: one sized for a big batch would slow every later flush
	} else {
		clear(newest) // kept, with its room, for the next batch
	}
	f := &flight{d: s.d, batch: batch}
	if !writes {
		// Every version of the batch is durable already (in the commit
		// that just ended): nothing to write.
		f.answer(nil)
		s.reuse(batch)
		if len(s.queue) > 0 {
			s.flush(c)
		}
		return
	}
	s.flight = f
	d := s.d
	d.pending.Add(1)
	c.AskTimeout(d.c.ref, commitMsg{f: f}, 0).Then(func(c *actor.Context, _ any, err error) {
		s.guard(func() {
			if f.cancelQueued() {
				// The commit never started (the committer's actor was
				// gone: the store is closing): nothing was committed.
				d.pending.Done()
				if err == nil {
					err = errCancelled
				}
			} else if err == nil {
				for i := range f.batch {
					if o := &f.batch[i]; o.write {
						s.data[o.key] = o.e
					}
				}
			}
			f.answer(err)
			if err == nil {
				// The committer answered once done with the batch.
				s.reuse(f.batch)
			}
			s.flight = nil // after the answers: a panic before them leaves them to abandon
			if len(s.queue) > 0 {
				s.flush(c)
			}
		})
	})
}
