package actor

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// awaitGuards runs the collector until n more dropGuard cleanups than
// before have run.
func awaitGuards(t *testing.T, before, n int64) {
	t.Helper()
	deadline := time.Now().Add(tsWait)
	for guardsRun.Load() < before+n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d cleanups ran", guardsRun.Load()-before, n)
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// A collection's tick gives a cleanup to the Replies still unanswered, and
// none to the answered ones; it leaves the loop an empty list.
func TestReplyTrackerTick(t *testing.T) {
	tr := &replyTracker{}
	open := &Reply{ask: true, rt: route{ch: make(chan result, 1)}}
	answered := &Reply{ask: true, rt: route{ch: make(chan result, 1)}}
	tr.track(open)
	tr.track(answered)
	answered.Reply(1, nil)
	tr.tick()
	if open.drop.Load() == nil {
		t.Fatal("an unanswered Reply got no cleanup")
	}
	if answered.drop.Load() != nil {
		t.Fatal("an answered Reply got a cleanup")
	}
	if len(tr.list) != 0 || tr.armed {
		t.Fatalf("after the tick: %d Replies listed, armed %v", len(tr.list), tr.armed)
	}
	runtime.KeepAlive(open)
}

// A loop that hands out many Replies between two collections keeps only
// the open ones: the answered are dropped when the list is full.
func TestReplyTrackerCompacts(t *testing.T) {
	tr := &replyTracker{}
	ch := make(chan result, 10000) // room for the open ones' ErrNoReply too
	var open []*Reply
	for i := range 10000 {
		r := &Reply{ask: true, rt: route{ch: ch}}
		tr.track(r)
		if i%100 == 0 {
			open = append(open, r)
			continue
		}
		r.Reply(nil, nil)
		<-ch
	}
	if n := len(tr.list); n > 4*len(open)+64 {
		t.Fatalf("%d Replies listed for %d open", n, len(open))
	}
	tr.tick()
}

// A Reply given its cleanup and answered afterwards is answered once: the
// cleanup that runs when it is collected does not answer again.
func TestWatchedReplyAnsweredOnce(t *testing.T) {
	ch := make(chan result, 2)
	before := guardsRun.Load()
	func() {
		r := &Reply{ask: true, rt: route{ch: ch}}
		r.watch()
		r.Reply("v", nil)
	}()
	awaitGuards(t, before, 1)
	if len(ch) != 1 {
		t.Fatalf("%d answers, want 1", len(ch))
	}
}

// A Reply whose answer was claimed on another goroutine just before a
// tick gives it its cleanup (the claim found no cleanup to disarm) is
// answered once: the tick sees the claim and disarms the cleanup itself.
func TestWatchAfterClaim(t *testing.T) {
	ch := make(chan result, 2)
	before := guardsRun.Load()
	func() {
		r := &Reply{ask: true, rt: route{ch: ch}}
		r.used.Store(true) // Reply's claim, stopped after its look at drop
		r.watch()          // the tick, meanwhile
		r.rt.answer("v", nil)
	}()
	awaitGuards(t, before, 1)
	if len(ch) != 1 {
		t.Fatalf("%d answers, want 1", len(ch))
	}
}

// A Reply answered on another goroutine while a collection's tick gives it
// its cleanup is answered once, whichever comes first.
func TestWatchRacesReply(t *testing.T) {
	const n = 2000
	chs := make([]chan result, n)
	before := guardsRun.Load()
	var wg sync.WaitGroup
	for i := range chs {
		chs[i] = make(chan result, 2)
		r := &Reply{ask: true, rt: route{ch: chs[i]}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Reply(i, nil)
		}()
		r.watch()
	}
	wg.Wait()
	awaitGuards(t, before, n)
	for i, ch := range chs {
		if len(ch) != 1 {
			t.Fatalf("Reply %d: %d answers, want 1", i, len(ch))
		}
	}
}
