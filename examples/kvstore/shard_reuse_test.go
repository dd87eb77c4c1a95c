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
