package actor

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A deferred Reply dropped unanswered must still answer its asker
// (ErrNoReply). Watching every Reply with a cleanup of its own cost four
// allocations per deferred ask and a special record the collector scans,
// though almost every Reply is answered long before the next collection.
// So a loop keeps the Replies it handed out since the last collection in
// a list (replyTracker); after each collection, the Replies of the list
// still unanswered get their cleanup then, and the list starts again. A
// dropped Reply is thus answered a collection later than with a cleanup
// of its own (by the collection after the next one, once the runtime's
// cleanup goroutine has run between them; later on a saturated CPU); an
// answered one costs no cleanup at all.

// dropGuard is the argument of the cleanup that answers a dropped Reply:
// a copy of its route, apart from the Reply so that it does not keep the
// Reply reachable, and whether the Reply was answered after all.
type dropGuard struct {
	rt   route
	done atomic.Bool
}

func (g *dropGuard) dropped() {
	if !g.done.Load() {
		g.rt.answer(nil, ErrNoReply)
	}
	guardsRun.Add(1)
}

// guardsRun counts the cleanups of dropGuard that ran, for tests.
var guardsRun atomic.Int64

// claim reports whether this use of r is its first: the one that answers.
func (r *Reply) claim() bool {
	if !r.used.CompareAndSwap(false, true) {
		return false
	}
	// A collection may be giving r its cleanup right now (watch): either
	// it sees used and disarms the guard, or this sees the guard.
	if g := r.drop.Load(); g != nil {
		g.done.Store(true)
	}
	return true
}

// watch gives the unanswered Reply r the cleanup that answers it if it is
// dropped.
func (r *Reply) watch() {
	g := &dropGuard{rt: r.rt}
	r.drop.Store(g)
	runtime.AddCleanup(r, (*dropGuard).dropped, g)
	if r.used.Load() {
		g.done.Store(true) // answered meanwhile (see claim)
	}
}

// replyTracker holds a loop's deferred Replies handed out since the last
// garbage collection. Its loop appends; the collection's tick takes the
// list from any goroutine, hence the lock (uncontended but once per
// collection).
type replyTracker struct {
	mu    sync.Mutex
	list  []*Reply
	spare []*Reply // the room of the list a tick took, for the next
	armed bool     // a tick will take the list after the next collection
}

// gcTick is an object nothing references: its cleanup runs after the
// next garbage collection. The pointer keeps it out of the tiny allocator,
// whose blocks may never be freed.
type gcTick struct{ _ *byte }

// maxSpare bounds the room a tracker keeps from one collection to the next.
const maxSpare = 4096

// replies returns the loop's tracker, made at its first deferred ask.
func (ls *loopState) replies() *replyTracker {
	if ls.rtrack == nil {
		ls.rtrack = &replyTracker{}
	}
	return ls.rtrack
}

// track keeps r until the next collection; on r's loop only.
func (t *replyTracker) track(r *Reply) {
	t.mu.Lock()
	if t.list == nil {
		t.list, t.spare = t.spare, nil
	}
	if len(t.list) == cap(t.list) && len(t.list) >= 64 {
		t.compact()
	}
	t.list = append(t.list, r)
	if !t.armed {
		t.armed = true
		runtime.AddCleanup(&gcTick{}, (*replyTracker).tick, t)
	}
	t.mu.Unlock()
}

// compact drops the answered Replies from a full list, so that a loop
// handing out many between two collections (a large heap collects
// rarely) keeps only those still open. Growing when at least half is open
// keeps it amortized.
func (t *replyTracker) compact() {
	n := 0
	for _, r := range t.list {
		if !r.used.Load() {
			t.list[n] = r
			n++
		}
	}
	clear(t.list[n:])
	t.list = t.list[:n]
	if n > cap(t.list)/2 {
		t.list = append(make([]*Reply, 0, 2*cap(t.list)), t.list...)
	}
}

// tick runs after a collection: the Replies still unanswered get their
// cleanup, and the loop starts a new list (the tracker is armed again by
// the next deferred ask).
func (t *replyTracker) tick() {
	t.mu.Lock()
	list := t.list
	t.list, t.armed = nil, false
	t.mu.Unlock()
	for _, r := range list {
		if !r.used.Load() {
			r.watch()
		}
	}
	if cap(list) > maxSpare {
		return // a burst's room goes back to the heap
	}
	clear(list)
	t.mu.Lock()
	t.spare = list[:0]
	t.mu.Unlock()
}
