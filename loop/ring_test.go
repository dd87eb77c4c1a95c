package loop

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// msg identifies one item of one producer: the producer's id and the item's
// index in that producer's sequence.
type msg struct {
	p int
	i int
}

func TestRingCapacityRoundsUp(t *testing.T) {
	for _, tc := range []struct{ capacity, wantCap, wantCells int }{
		{-3, 1, 2},
		{0, 1, 2},
		{1, 1, 2},
		{3, 3, 8},
		{4, 4, 8},
		{5, 5, 16},
		{1000, 1000, 2048},
	} {
		r := newRing[int](tc.capacity)
		if int(r.capacity) != tc.wantCap || len(r.cells) != tc.wantCells || int(r.mask) != tc.wantCells-1 {
			t.Errorf("newRing(%d): capacity %d cells %d mask %d, want %d %d %d",
				tc.capacity, r.capacity, len(r.cells), r.mask, tc.wantCap, tc.wantCells, tc.wantCells-1)
		}
	}
}

func TestRingFIFOSingleProducer(t *testing.T) {
	r := newRing[int](8)
	var v int
	if r.pop(&v) || r.ready() || r.claimed() || r.len() != 0 {
		t.Fatal("new ring is not empty")
	}
	// Several rounds so that positions wrap around the 16-cell array many times.
	next, want := 0, 0
	for round := 0; round < 100; round++ {
		n := 1 + round%8
		for k := 0; k < n; k++ {
			if err := r.push(next); err != nil {
				t.Fatalf("round %d: push(%d): %v", round, next, err)
			}
			next++
		}
		if r.len() != n || !r.ready() || !r.claimed() {
			t.Fatalf("round %d: len %d ready %v claimed %v, want %d true true", round, r.len(), r.ready(), r.claimed(), n)
		}
		for k := 0; k < n; k++ {
			if !r.pop(&v) {
				t.Fatalf("round %d: pop %d reported empty", round, k)
			}
			if v != want {
				t.Fatalf("round %d: popped %d, want %d", round, v, want)
			}
			want++
		}
		if r.pop(&v) || r.len() != 0 || r.claimed() {
			t.Fatalf("round %d: ring not empty after popping everything", round)
		}
	}
}

func TestRingPopClearsCell(t *testing.T) {
	r := newRing[*int](4)
	x := 42
	if err := r.push(&x); err != nil {
		t.Fatal(err)
	}
	var got *int
	if !r.pop(&got) || got != &x {
		t.Fatalf("pop = %v, want %p", got, &x)
	}
	for i := range r.cells {
		if r.cells[i].v != nil {
			t.Fatalf("cell %d still references a popped value", i)
		}
	}
}

func TestRingFullAtCapacity(t *testing.T) {
	for _, capacity := range []int{1, 3, 8, 100} {
		r := newRing[int](capacity)
		accepted := 0
		for i := 0; i < 3*capacity; i++ {
			err := r.push(i)
			if err == nil {
				accepted++
				continue
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("capacity %d: push %d: %v, want ErrFull", capacity, i, err)
			}
		}
		if accepted != capacity {
			t.Fatalf("capacity %d: accepted %d pushes, want exactly %d", capacity, accepted, capacity)
		}
		if r.len() != capacity {
			t.Fatalf("capacity %d: len %d", capacity, r.len())
		}
		// Popping one item makes room for exactly one more.
		var v int
		if !r.pop(&v) || v != 0 {
			t.Fatalf("capacity %d: pop = %d, want 0", capacity, v)
		}
		if err := r.push(1000); err != nil {
			t.Fatalf("capacity %d: push after pop: %v", capacity, err)
		}
		if err := r.push(1001); !errors.Is(err, ErrFull) {
			t.Fatalf("capacity %d: second push after one pop: %v, want ErrFull", capacity, err)
		}
		// Everything comes out in order: 1..capacity-1, then 1000.
		for want := 1; want < capacity; want++ {
			if !r.pop(&v) || v != want {
				t.Fatalf("capacity %d: pop = %d, want %d", capacity, v, want)
			}
		}
		if !r.pop(&v) || v != 1000 {
			t.Fatalf("capacity %d: pop = %d, want 1000", capacity, v)
		}
		if r.pop(&v) {
			t.Fatalf("capacity %d: ring should be empty", capacity)
		}
	}
}

func TestRingPopSkipsUnpublished(t *testing.T) {
	// Simulate a producer that has claimed a position but not yet written it.
	r := newRing[int](4)
	r.tail.Add(1) // claimed position 0, not published
	var v int
	if r.ready() {
		t.Fatal("ready reports an unpublished cell")
	}
	if r.pop(&v) {
		t.Fatal("pop returned an unpublished cell")
	}
	if !r.claimed() || r.len() != 1 {
		t.Fatalf("claimed %v len %d, want true 1", r.claimed(), r.len())
	}
	// Publish it the way push does.
	r.cells[0].v = 7
	r.cells[0].seq.Store(1)
	if !r.pop(&v) || v != 7 {
		t.Fatalf("pop after publish = %d", v)
	}
}

// drainRing pops until want items arrived or the deadline passes, checking
// per-producer order and that nothing is duplicated.
func drainRing(t *testing.T, r *ring[msg], producers, want int, deadline time.Duration) []int {
	t.Helper()
	next := make([]int, producers)
	got := 0
	var v msg
	timeout := time.After(deadline)
	for got < want {
		if !r.pop(&v) {
			select {
			case <-timeout:
				t.Fatalf("timed out: got %d of %d items (per producer %v)", got, want, next)
			default:
			}
			runtime.Gosched() // let the producers run, even with GOMAXPROCS=1
			continue
		}
		if v.p < 0 || v.p >= producers {
			t.Fatalf("item from unknown producer %d", v.p)
		}
		if v.i != next[v.p] {
			t.Fatalf("producer %d: got item %d, want %d (lost, duplicated or reordered)", v.p, v.i, next[v.p])
		}
		next[v.p]++
		got++
	}
	return next
}

func TestRingMultiProducerOrderNoLoss(t *testing.T) {
	const producers = 4
	perProducer := 100_000
	if testing.Short() {
		perProducer = 10_000
	}
	// A small ring so producers hit ErrFull constantly and retry.
	r := newRing[msg](64)
	defer r.close() // on failure, stop the producers
	var wg sync.WaitGroup
	var fulls atomic.Int64
	errc := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for i := 0; i < perProducer; {
				err := r.push(msg{p, i})
				switch {
				case err == nil:
					i++
				case errors.Is(err, ErrFull):
					fulls.Add(1)
					runtime.Gosched()
				default:
					errc <- err
					return
				}
			}
		})
	}
	next := drainRing(t, r, producers, producers*perProducer, 2*time.Minute)
	waitGroup(t, &wg, "producers to stop")
	close(errc)
	for err := range errc {
		t.Fatalf("producer: unexpected error %v", err)
	}
	for p, n := range next {
		if n != perProducer {
			t.Errorf("producer %d: got %d items, want %d", p, n, perProducer)
		}
	}
	var v msg
	if r.pop(&v) {
		t.Fatalf("extra item after all were received: %+v", v)
	}
	t.Logf("ErrFull retries: %d", fulls.Load())
}

// TestRingNoSpuriousFull checks that ErrFull means the ring is full. Producers
// keep the ring nearly empty (they push only while it holds at most 2 items,
// far below its capacity) while the consumer pops eagerly, so head runs right
// behind tail; no push may be refused. A producer that read tail, was
// descheduled, and then read a head that had moved past that tail used to
// compute a huge (wrapped) length and report ErrFull. The window is narrow, so
// this runs for a bounded time and catches the bug probabilistically (mostly
// under -race, which widens it).
func TestRingNoSpuriousFull(t *testing.T) {
	const producers = 16
	duration := time.Second
	if testing.Short() {
		duration = 200 * time.Millisecond
	}
	// More Ps than cores: the OS then deschedules producer threads at
	// arbitrary instructions, which is what opens the window.
	prev := runtime.GOMAXPROCS(max(16, runtime.GOMAXPROCS(0)))
	defer runtime.GOMAXPROCS(prev)
	r := newRing[int](1024)
	var stop atomic.Bool
	defer stop.Store(true)
	var pushed, spurious atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for !stop.Load() {
				if r.len() > 2 {
					continue
				}
				if err := r.push(p); err != nil {
					spurious.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				pushed.Add(1)
			}
		})
	}
	var v int
	popped := int64(0)
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		for i := 0; i < 256; i++ {
			if r.pop(&v) {
				popped++
			}
		}
		runtime.Gosched()
	}
	stop.Store(true)
	waitGroup(t, &wg, "producers to stop")
	for r.pop(&v) {
		popped++
	}
	if n := spurious.Load(); n > 0 {
		t.Fatalf("%d pushes refused (%v) although the ring never held more than ~%d of %d items",
			n, firstErr.Load(), 2+producers, r.capacity)
	}
	if popped != pushed.Load() {
		t.Fatalf("pushed %d, popped %d", pushed.Load(), popped)
	}
	t.Logf("%d pushes", popped)
}

func TestRingCloseRejectsAndDrains(t *testing.T) {
	r := newRing[int](8)
	for i := 0; i < 5; i++ {
		if err := r.push(i); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if !r.pop(&v) || v != 0 {
		t.Fatalf("pop = %d, want 0", v)
	}
	end := r.close()
	if end != 5 {
		t.Fatalf("close returned end %d, want 5", end)
	}
	for i := 0; i < 20; i++ {
		if err := r.push(100 + i); !errors.Is(err, ErrClosed) {
			t.Fatalf("push after close: %v, want ErrClosed", err)
		}
	}
	var got []int
	r.drainClosed(end, func(p *int) { got = append(got, *p) })
	if want := []int{1, 2, 3, 4}; !equalInts(got, want) {
		t.Fatalf("drainClosed gave %v, want %v", got, want)
	}
	if r.pop(&v) {
		t.Fatalf("pop after drain returned %d", v)
	}
	// Rejected pushes must not look like queued items.
	if n := r.len(); n != 0 {
		t.Errorf("len after close and drain = %d, want 0", n)
	}
	if r.claimed() {
		t.Errorf("claimed after close and drain = true, want false")
	}
}

// TestRingRefusedClaimAfterClose covers a producer that passed the closed
// check, then lost the race with close: its fetch-add still bumps tail (now
// carrying closedBit) and it returns ErrClosed. That phantom claim must not
// show up in len or claimed, nor move the end a second close reports (a
// drainClosed waiting for it would spin forever).
func TestRingRefusedClaimAfterClose(t *testing.T) {
	r := newRing[int](4)
	if err := r.push(1); err != nil {
		t.Fatal(err)
	}
	end := r.close()
	pos := r.tail.Add(1) - 1 // what a refused producer's fetch-add does
	if pos&closedBit == 0 {
		t.Fatal("claim after close does not carry closedBit")
	}
	if n := r.len(); n != 1 {
		t.Fatalf("len = %d, want 1 (the item pushed before close)", n)
	}
	if again := r.close(); again != end {
		t.Fatalf("second close returned %d, want %d", again, end)
	}
	done := make(chan []int)
	go func() {
		var got []int
		r.drainClosed(r.close(), func(p *int) { got = append(got, *p) })
		done <- got
	}()
	select {
	case got := <-done:
		if !equalInts(got, []int{1}) {
			t.Fatalf("drained %v, want [1]", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drainClosed did not return: it waits for a refused claim")
	}
	if n, c := r.len(), r.claimed(); n != 0 || c {
		t.Fatalf("after drain: len %d claimed %v, want 0 false", n, c)
	}
}

func TestRingCloseWhenFull(t *testing.T) {
	r := newRing[int](3)
	for i := 0; i < 3; i++ {
		if err := r.push(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.push(3); !errors.Is(err, ErrFull) {
		t.Fatalf("push on full ring: %v", err)
	}
	end := r.close()
	if err := r.push(4); !errors.Is(err, ErrClosed) {
		t.Fatalf("push on closed full ring: %v, want ErrClosed", err)
	}
	var got []int
	r.drainClosed(end, func(p *int) { got = append(got, *p) })
	if !equalInts(got, []int{0, 1, 2}) {
		t.Fatalf("drained %v", got)
	}
}

// TestRingDrainWaitsForClaimedProducer checks that drainClosed waits for a
// producer that claimed a position before close but publishes after it.
func TestRingDrainWaitsForClaimedProducer(t *testing.T) {
	r := newRing[int](4)
	if err := r.push(1); err != nil {
		t.Fatal(err)
	}
	pos := r.tail.Add(1) - 1 // a producer claims position 1 ...
	end := r.close()         // ... and the ring closes before it writes
	if end != 2 {
		t.Fatalf("end = %d, want 2", end)
	}
	release := make(chan struct{})
	published := make(chan struct{})
	go func() {
		<-release
		c := &r.cells[pos&r.mask]
		c.v = 2
		c.seq.Store(pos + 1)
		close(published)
	}()
	done := make(chan []int)
	go func() {
		var got []int
		r.drainClosed(end, func(p *int) { got = append(got, *p) })
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("drainClosed returned %v before the claimed position was published", got)
	default:
	}
	close(release)
	<-published
	select {
	case got := <-done:
		if !equalInts(got, []int{1, 2}) {
			t.Fatalf("drained %v, want [1 2]", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drainClosed did not return after the producer published")
	}
}

// TestRingCloseRacingProducers checks that every push that returned nil is
// drained, exactly once, when close races with many producers.
func TestRingCloseRacingProducers(t *testing.T) {
	for iter := 0; iter < 20; iter++ {
		const producers = 6
		r := newRing[msg](128)
		defer r.close()                    // on failure, stop the producers
		accepted := make([]int, producers) // per producer, written by that producer only
		start := make(chan struct{})
		var wg sync.WaitGroup
		var sawClosed atomic.Int32
		for p := 0; p < producers; p++ {
			wg.Go(func() {
				<-start
				for i := 0; ; {
					err := r.push(msg{p, i})
					switch {
					case err == nil:
						i++
						accepted[p] = i
					case errors.Is(err, ErrFull):
						runtime.Gosched() // let the consumer run; retry
					case errors.Is(err, ErrClosed):
						sawClosed.Add(1)
						return
					default:
						t.Errorf("push: %v", err)
						return
					}
				}
			})
		}
		close(start)
		// Consume for a while so positions wrap, then close mid-stream.
		next := make([]int, producers)
		var v msg
		popped := 0
		check := func(v msg) {
			if v.i != next[v.p] {
				t.Fatalf("iter %d: producer %d: got %d want %d", iter, v.p, v.i, next[v.p])
			}
			next[v.p]++
		}
		timeout := time.After(time.Minute)
		for popped < 500*(iter+1) {
			if r.pop(&v) {
				check(v)
				popped++
				continue
			}
			select {
			case <-timeout:
				t.Fatalf("iter %d: producers stalled after %d", iter, popped)
			default:
			}
			runtime.Gosched()
		}
		end := r.close()
		r.drainClosed(end, func(p *msg) { check(*p) })
		waitGroup(t, &wg, "producers to stop")
		if int(sawClosed.Load()) != producers {
			t.Fatalf("iter %d: %d producers saw ErrClosed, want %d", iter, sawClosed.Load(), producers)
		}
		for p := 0; p < producers; p++ {
			if next[p] != accepted[p] {
				t.Fatalf("iter %d: producer %d: %d accepted, %d received", iter, p, accepted[p], next[p])
			}
		}
		if r.pop(&v) {
			t.Fatalf("iter %d: item %+v left after drain", iter, v)
		}
		if n := r.len(); n != 0 {
			t.Fatalf("iter %d: len after close and drain = %d, want 0", iter, n)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// More producers than the ring has spare cells raced past the capacity
// check together: the one whose claimed cell still holds the item of the
// lap before waits until the consumer has published a head past it,
// rather than overwrite it.
func TestRingOvershooterWaitsForItsCell(t *testing.T) {
	r := newRing[int](1)               // two cells
	if err := r.push(10); err != nil { // position 0, in cell 0
		t.Fatal(err)
	}
	p1 := r.tail.Add(1) - 1 // two producers that passed the check:
	p2 := r.tail.Add(1) - 1 // position 2 is cell 0's next lap
	*r.put(p1) = 11
	r.publishAt(p1)
	done := make(chan struct{})
	go func() {
		*r.put(p2) = 12
		r.publishAt(p2)
		close(done)
	}()
	// The overshooter cannot have written before the pop below; give it
	// every chance to (were it not to wait, it would run through at once).
	for range 1000 {
		select {
		case <-done:
			t.Fatal("the overshooter wrote cell 0 before the consumer freed it")
		default:
			runtime.Gosched()
		}
	}
	var v int
	if !r.pop(&v) || v != 10 {
		t.Fatalf("pop = %d, want 10", v)
	}
	if !r.pop(&v) || v != 11 {
		t.Fatalf("pop = %d, want 11", v)
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("the overshooter did not write once its cell was free")
	}
	if !r.pop(&v) || v != 12 {
		t.Fatalf("pop = %d, want 12", v)
	}
}
