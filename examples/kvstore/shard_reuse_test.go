package kvstore

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

type nopReplier struct{}

func (nopReplier) Reply(any, error) {}

// TestAnsweredWritesNotKeptBySpareRoom: once a queue longer than maxBatch
// is committed, the writes copied past the batch are not kept reachable by
// the batch's room, which the replica reuses for its next queue.
func TestAnsweredWritesNotKeptBySpareRoom(t *testing.T) {
	const n, batch = 5000, 4096
	s := &shard{d: &disk{}, maxBatch: batch, data: map[string]Entry{}}
	var freed atomic.Int32
	for i := range n {
		k := "k" + strconv.Itoa(i)
		s.data[k] = Entry{TS: Stamp{N: 10}} // durable and newer: answered without a commit
		v := make([]byte, 4096)
		if i >= batch {
			runtime.AddCleanup(&v[0], func(f *atomic.Int32) { f.Add(1) }, &freed)
		}
		s.queue = append(s.queue, op{key: k, e: Entry{TS: Stamp{N: 1}, V: v}, r: nopReplier{}})
	}
	s.flush(nil)
	if len(s.queue) != 0 || s.flight != nil {
		t.Fatalf("queue %d, flight %v after the flush", len(s.queue), s.flight)
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(freed.Load()) < n-batch && time.Now().Before(deadline) {
		runtime.GC() // cleanups run after a collection finds the values unreachable
		runtime.Gosched()
	}
	if got := int(freed.Load()); got != n-batch {
		t.Fatalf("%d of the %d answered writes past the batch still reachable", n-batch-got, n-batch)
	}
	runtime.KeepAlive(s)
}

// TestQueueRoomReused: a replica that goes idle between bursts of writes
// queues them without allocating once its two rooms have grown: the write
// that finds it idle commits at once in one room, the writes queued behind
// that commit take the other, and each answered batch gives its room back.
func TestQueueRoomReused(t *testing.T) {
	s := &shard{d: &disk{}, maxBatch: DefaultMaxBatch, data: map[string]Entry{}}
	o := op{key: "k", r: nopReplier{}}
	committing := &flight{}
	burst := func() {
		first := append(s.spare.take(), o) // committed at once (flush): the replica was idle
		s.flight = committing
		for range 5 {
			s.write(nil, o) // arrives meanwhile: queued behind the commit, in the other room
		}
		s.flight = nil
		q := s.queue
		s.queue = nil
		s.reuse(first) // the first commit answered; q is committed next
		s.reuse(q)     // and answered: idle again
	}
	if allocs := testing.AllocsPerRun(100, burst); allocs != 0 {
		t.Fatalf("%v allocations per burst of writes, want 0", allocs)
	}
}
