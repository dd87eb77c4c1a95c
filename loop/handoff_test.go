package loop

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PostAwait on a parked loop handles the event on the calling goroutine,
// before it returns; on a busy loop it only queues and wakes.
func TestPostAwaitRunsParkedLoop(t *testing.T) {
	var handled, lent atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(*int) {
		if l.owner.Load() == ownBorrowed {
			lent.Add(1)
		}
		handled.Add(1)
	}), Config{})
	startRun(t, context.Background(), l)
	for i := int64(1); i <= 20; i++ {
		waitParked(t, l)
		if err := l.PostAwait(1); err != nil {
			t.Fatal(err)
		}
		if handled.Load() != i || lent.Load() != i {
			t.Fatalf("post %d to a parked loop: %d handled, %d on the poster", i, handled.Load(), lent.Load())
		}
	}
	// The loop goroutine takes the loop back.
	if err := l.Post(2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the loop goroutine to handle", func() bool { return handled.Load() == 21 })
}

// A busy loop is not lent by PostAwait: it is woken (here: it finds the
// event after its blocked handler returns).
func TestPostAwaitBusyLoop(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int64
	l := New[int](handlerFunc[int](func(e *int) {
		if *e == 1 {
			close(inside)
			<-release
		}
		handled.Add(1)
	}), Config{})
	startRun(t, context.Background(), l)
	if err := l.Post(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, inside, "the handler to block")
	if err := l.PostAwait(2); err != nil { // would deadlock or overlap if it ran the loop
		t.Fatal(err)
	}
	close(release)
	eventually(t, "both events", func() bool { return handled.Load() == 2 })
}

// handoffPair is two running loops, a and b, whose handler is f.
func handoffPair(t *testing.T, f func(self *Loop[int], ev int)) (a, b *Loop[int]) {
	t.Helper()
	a = New[int](handlerFunc[int](func(e *int) { f(a, *e) }), Config{})
	b = New[int](handlerFunc[int](func(e *int) { f(b, *e) }), Config{})
	startRun(t, context.Background(), a)
	startRun(t, context.Background(), b)
	return a, b
}

// An event a handler of a posts to a parked b with PostFrom is handled by
// a's goroutine, once that handler has returned and when a has nothing else
// to do; b's own goroutine stays parked.
func TestPostFromLendsParkedLoopAfterHandler(t *testing.T) {
	var returned atomic.Bool // a's handler has returned
	type seen struct{ lent, afterReturn bool }
	got := make(chan seen, 1)
	var a, b *Loop[int]
	a, b = handoffPair(t, func(self *Loop[int], ev int) {
		switch ev {
		case 1: // on a
			returned.Store(false)
			if err := b.PostFrom(a, 2); err != nil {
				t.Error(err)
			}
			returned.Store(true)
		case 2: // on b
			got <- seen{lent: b.owner.Load() == ownBorrowed, afterReturn: returned.Load()}
		}
	})
	for range 20 {
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, got, "b's event")
		if !s.lent {
			t.Fatal("b's event ran on b's goroutine: a idle did not run b's pass")
		}
		if !s.afterReturn {
			t.Fatal("b's pass ran inside a's handler")
		}
	}
}

// When a has more work queued after the handler, it wakes b instead of
// running b's pass, so b's event does not wait for a's queue.
func TestPostFromWakesWhenPosterBusy(t *testing.T) {
	got := make(chan bool, 1)
	var a, b *Loop[int]
	a, b = handoffPair(t, func(self *Loop[int], ev int) {
		switch ev {
		case 1: // on a
			if err := b.PostFrom(a, 2); err != nil {
				t.Error(err)
			}
			if err := a.Post(3); err != nil { // a has work after this handler
				t.Error(err)
			}
		case 2: // on b
			got <- b.owner.Load() == ownBorrowed
		}
	})
	for range 20 {
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		if waitFor(t, got, "b's event") {
			t.Fatal("a, with work queued, ran b's pass instead of waking b")
		}
	}
}

// PostFrom outside a running handler of src (no src, src itself, a src
// driven by Step) posts and wakes as Post does.
func TestPostFromOutsideHandlerWakes(t *testing.T) {
	var handled atomic.Int64
	b := New[int](handlerFunc[int](func(*int) { handled.Add(1) }), Config{})
	startRun(t, context.Background(), b)
	var stepped *Loop[int]
	stepped = New[int](handlerFunc[int](func(e *int) {
		if err := b.PostFrom(stepped, 0); err != nil {
			t.Error(err)
		}
	}), Config{})
	waitParked(t, b)
	if err := b.PostFrom(nil, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event without src", func() bool { return handled.Load() == 1 })
	waitParked(t, b)
	if err := stepped.Post(0); err != nil {
		t.Fatal(err)
	}
	if !stepped.Step() {
		t.Fatal("nothing to step")
	}
	if len(stepped.handoff) != 0 {
		t.Fatal("a loop driven by Step deferred a wake it never flushes")
	}
	eventually(t, "the event from a stepped loop", func() bool { return handled.Load() == 2 })
}

// Loops hand events to each other with PostFrom while goroutines post with
// PostAwait, PostRun and Post: every event is handled exactly once (no wake
// lost: a lost one leaves a chain unfinished), never by two goroutines at
// once, and the events from one loop to another in the order posted.
func TestPostFromStress(t *testing.T) {
	const (
		loops   = 3
		chains  = 2000 // started by the goroutines
		posters = 4
		hops    = 6
	)
	type ev struct {
		from, seq int // the posting loop (-1: a goroutine, -2: unordered) and its sequence to the target
		hops      int
	}
	ls := make([]*Loop[ev], loops)
	var inside [loops]atomic.Int32
	var overlap, disorder, finished atomic.Int64
	next := make([][loops]int, loops) // next[from][to], written by from's handler only
	last := make([][loops]int, loops) // last[to][from], read/written by to's handler only
	for i := range ls {
		rnd := rand.New(rand.NewPCG(uint64(i), 7)) // touched by loop i's handler only
		ls[i] = New[ev](handlerFunc[ev](func(e *ev) {
			if !inside[i].CompareAndSwap(0, 1) {
				overlap.Add(1)
			}
			defer inside[i].Store(0)
			if e.from >= 0 {
				if e.seq != last[i][e.from]+1 {
					disorder.Add(1)
				}
				last[i][e.from] = e.seq
			}
			if e.hops == 0 {
				finished.Add(1)
				return
			}
			if e.hops%3 == 1 && e.from != -2 {
				// Go on from a control event, a local event or a timer
				// of this loop: hand-offs happen after those handlers too.
				// They have no order with the inbound queue's events.
				out := ev{from: -2, hops: e.hops}
				var err error
				switch rnd.IntN(3) {
				case 0:
					err = ls[i].PostControl(out)
				case 1:
					err = ls[i].PostLocal(out)
				default:
					ls[i].Schedule(ls[i].Now(), out)
				}
				if err != nil {
					t.Errorf("post to self: %v", err)
				}
				return
			}
			to := (i + 1 + rnd.IntN(loops-1)) % loops
			next[i][to]++
			out := ev{from: i, seq: next[i][to], hops: e.hops - 1}
			var err error
			switch rnd.IntN(4) {
			case 0: // a plain post among the hand-offs: same order
				err = ls[to].Post(out)
			default:
				err = ls[to].PostFrom(ls[i], out)
			}
			if err != nil {
				t.Errorf("post: %v", err)
			}
			if rnd.IntN(8) == 0 { // now and then work for this loop too
				next[i][i]++
				if err := ls[i].PostFrom(ls[i], ev{from: i, seq: next[i][i]}); err != nil {
					t.Errorf("post to self: %v", err)
				}
				finished.Add(-1) // that event is no chain's end
			}
		}), Config{Capacity: 1 << 15})
		startRun(t, context.Background(), ls[i])
	}
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := p; c < chains; c += posters {
				l := ls[c%loops]
				e := ev{from: -1, hops: hops}
				var err error
				switch c % 3 {
				case 0:
					err = l.PostAwait(e)
				case 1:
					err = l.PostRun(e)
				default:
					err = l.Post(e)
				}
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "every chain to finish", func() bool { return finished.Load() == chains })
	if n := overlap.Load(); n != 0 {
		t.Fatalf("%d events handled while another goroutine was in the same loop's handler", n)
	}
	if n := disorder.Load(); n != 0 {
		t.Fatalf("%d events out of order between a pair of loops", n)
	}
}

// A hand-off made by the handler of a control event, of a local event or
// of a timer is flushed as one made by an inbound event's handler: the
// parked target handles its event.
func TestPostFromAfterEveryQueue(t *testing.T) {
	got := make(chan int, 1)
	var a, b *Loop[int]
	a, b = handoffPair(t, func(self *Loop[int], ev int) {
		switch {
		case self == b:
			got <- ev
		case ev == 1: // inbound: make a local event and a timer
			if err := a.PostLocal(2); err != nil {
				t.Error(err)
			}
		case ev == 4:
			a.Schedule(a.Now(), 3)
		default: // 2 local, 3 timer, 5 control
			if err := b.PostFrom(a, ev); err != nil {
				t.Error(err)
			}
		}
	})
	for _, c := range []struct {
		name string
		post func() error
		want int
	}{
		{"local", func() error { return a.Post(1) }, 2},
		{"timer", func() error { return a.Post(4) }, 3},
		{"control", func() error { return a.PostControl(5) }, 5},
	} {
		waitParked(t, b)
		if err := c.post(); err != nil {
			t.Fatal(err)
		}
		if ev := waitFor(t, got, "b's event from a "+c.name+" event's handler"); ev != c.want {
			t.Fatalf("b got %d, want %d", ev, c.want)
		}
	}
}

// A loop whose handler answered a request parks as soon as it is idle,
// however long it would otherwise spin, so that the next request finds it
// parked and its poster can run it.
func TestAnsweredParksAtOnce(t *testing.T) {
	var handled atomic.Int64
	var l *Loop[int]
	l = New[int](handlerFunc[int](func(e *int) {
		l.Answered()
		handled.Add(1)
	}), Config{Spin: 1 << 40}) // without Answered: spins for hours
	startRun(t, context.Background(), l)
	for i := int64(1); i <= 5; i++ {
		if err := l.Post(1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the event", func() bool { return handled.Load() == i })
		waitParked(t, l)
	}
}

// A loop whose lent passes are slow stops being lent to PostFrom: of the
// sampled passes, two slow ones in a row stop the lending for a while, so
// an asking loop is not held up by a slow target pass after pass.
func TestPostFromStopsLendingToSlowLoop(t *testing.T) {
	const rounds = 30
	got := make(chan bool, 1)
	var a, b *Loop[int]
	a, b = handoffPair(t, func(self *Loop[int], ev int) {
		switch {
		case self == a:
			if err := b.PostFrom(a, 2); err != nil {
				t.Error(err)
			}
		default:
			lent := b.owner.Load() == ownBorrowed
			for start := time.Now(); time.Since(start) < 2*slowLend; { // slow work, not a sleep
			}
			got <- lent
		}
	})
	var lent []int
	for i := range rounds {
		waitParked(t, b)
		if err := a.Post(1); err != nil {
			t.Fatal(err)
		}
		if waitFor(t, got, "b's event") {
			lent = append(lent, i)
		}
	}
	// Lends 1..7 are not timed, 8 is (slow: suspect), 9 is (slow: stop).
	if len(lent) == 0 || len(lent) > 2*sampleLends || lent[len(lent)-1] >= rounds-10 {
		t.Fatalf("rounds run on a's goroutine: %v; want the first few only", lent)
	}
}
