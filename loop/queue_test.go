package loop

import (
	"errors"
	"runtime"
	"sync"
	"testing"
)

func TestFIFOOrder(t *testing.T) {
	f := fifo[int]{capacity: 1000}
	var v int
	if f.pop(&v) {
		t.Fatal("pop on empty fifo succeeded")
	}
	for i := 0; i < 10; i++ {
		if err := f.push(i); err != nil {
			t.Fatal(err)
		}
	}
	for want := 0; want < 10; want++ {
		if !f.pop(&v) || v != want {
			t.Fatalf("pop = %d, want %d", v, want)
		}
	}
	if f.pop(&v) || f.n != 0 {
		t.Fatalf("fifo not empty: n=%d", f.n)
	}
}

// TestFIFOGrowthAcrossWraparound makes the buffer grow while its contents
// wrap around the end of the array, so the copy must unwrap them.
func TestFIFOGrowthAcrossWraparound(t *testing.T) {
	f := fifo[int]{capacity: 1 << 20}
	next, want := 0, 0
	push := func(n int) {
		t.Helper()
		for k := 0; k < n; k++ {
			if err := f.push(next); err != nil {
				t.Fatalf("push(%d): %v", next, err)
			}
			next++
		}
	}
	pop := func(n int) {
		t.Helper()
		var v int
		for k := 0; k < n; k++ {
			if !f.pop(&v) {
				t.Fatalf("pop reported empty, want %d", want)
			}
			if v != want {
				t.Fatalf("pop = %d, want %d", v, want)
			}
			want++
		}
	}
	push(64) // fills the initial 64-slot buffer
	if len(f.buf) != 64 {
		t.Fatalf("initial buffer %d, want 64", len(f.buf))
	}
	pop(40)  // head at 40
	push(40) // wraps: occupies 40..63 and 0..15
	if len(f.buf) != 64 || f.head != 40 || f.n != 64 {
		t.Fatalf("before growth: len %d head %d n %d", len(f.buf), f.head, f.n)
	}
	push(1) // grows with wrapped contents
	if len(f.buf) != 128 || f.head != 0 {
		t.Fatalf("after growth: len %d head %d", len(f.buf), f.head)
	}
	pop(30)
	push(150) // wraps in 128 and grows again to 256
	if len(f.buf) != 256 {
		t.Fatalf("after second growth: len %d", len(f.buf))
	}
	pop(next - want)
	var v int
	if f.pop(&v) {
		t.Fatalf("extra item %d", v)
	}
	// Popped slots are zeroed (no retained references).
	for i, x := range f.buf {
		if x != 0 {
			t.Fatalf("slot %d holds %d after pop", i, x)
		}
	}
}

func TestFIFOPopClearsSlot(t *testing.T) {
	f := fifo[*int]{capacity: 4}
	x := 1
	if err := f.push(&x); err != nil {
		t.Fatal(err)
	}
	var got *int
	if !f.pop(&got) || got != &x {
		t.Fatal("pop did not return the pushed pointer")
	}
	for i, p := range f.buf {
		if p != nil {
			t.Fatalf("slot %d still references a popped value", i)
		}
	}
}

func TestFIFOFullAtCapacity(t *testing.T) {
	for _, capacity := range []int{0, 1, 5, 64, 65, 200} {
		f := fifo[int]{capacity: capacity}
		accepted := 0
		for i := 0; i < capacity+10; i++ {
			err := f.push(i)
			if err == nil {
				accepted++
				continue
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("capacity %d: push: %v, want ErrFull", capacity, err)
			}
		}
		if accepted != capacity {
			t.Fatalf("capacity %d: accepted %d", capacity, accepted)
		}
		if capacity == 0 {
			continue
		}
		var v int
		if !f.pop(&v) || v != 0 {
			t.Fatalf("capacity %d: pop = %d, want 0", capacity, v)
		}
		if err := f.push(-1); err != nil {
			t.Fatalf("capacity %d: push after pop: %v", capacity, err)
		}
		if err := f.push(-2); !errors.Is(err, ErrFull) {
			t.Fatalf("capacity %d: push beyond capacity: %v", capacity, err)
		}
		for want := 1; want < capacity; want++ {
			if !f.pop(&v) || v != want {
				t.Fatalf("capacity %d: pop = %d, want %d", capacity, v, want)
			}
		}
		if !f.pop(&v) || v != -1 {
			t.Fatalf("capacity %d: last pop = %d, want -1", capacity, v)
		}
	}
}

func TestCtlQueueSwapReusesSpare(t *testing.T) {
	var q ctlQueue[int]
	if got := q.swap(nil); len(got) != 0 {
		t.Fatalf("swap on empty queue = %v", got)
	}
	for i := 0; i < 5; i++ {
		if err := q.push(i); err != nil {
			t.Fatal(err)
		}
	}
	if q.len() != 5 {
		t.Fatalf("len = %d, want 5", q.len())
	}
	spare := make([]int, 3, 16)
	got := q.swap(spare)
	if !equalInts(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("swap returned %v", got)
	}
	if q.len() != 0 {
		t.Fatalf("len after swap = %d", q.len())
	}
	// The spare's backing array is reused (truncated, not reallocated).
	if err := q.push(10); err != nil {
		t.Fatal(err)
	}
	if &q.items[0] != &spare[:1][0] {
		t.Fatal("push after swap did not reuse the spare backing array")
	}
	got2 := q.swap(got)
	if !equalInts(got2, []int{10}) {
		t.Fatalf("second swap returned %v", got2)
	}
	// Steady state: swapping buffers back and forth allocates nothing.
	a, b := make([]int, 0, 8), make([]int, 0, 8)
	q.swap(a)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 8; i++ {
			_ = q.push(i)
		}
		b = q.swap(b)
	})
	if allocs != 0 {
		t.Fatalf("steady-state push+swap allocates %.1f times", allocs)
	}
}

func TestCtlQueueCloseReturnsRemainingAndRejects(t *testing.T) {
	var q ctlQueue[int]
	for i := 0; i < 3; i++ {
		if err := q.push(i); err != nil {
			t.Fatal(err)
		}
	}
	rest := q.close()
	if !equalInts(rest, []int{0, 1, 2}) {
		t.Fatalf("close returned %v", rest)
	}
	if err := q.push(9); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after close: %v, want ErrClosed", err)
	}
	if q.len() != 0 {
		t.Fatalf("len after close = %d", q.len())
	}
	if again := q.close(); len(again) != 0 {
		t.Fatalf("second close returned %v", again)
	}
}

// TestCtlQueueConcurrent checks that concurrent pushes racing with a swapping
// consumer and then close are each seen exactly once: by a swap or by close.
func TestCtlQueueConcurrent(t *testing.T) {
	const producers, per = 4, 20_000
	var q ctlQueue[msg]
	var wg sync.WaitGroup
	accepted := make([]int, producers)
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for i := 0; i < per; i++ {
				if err := q.push(msg{p, i}); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("push: %v", err)
					}
					return
				}
				accepted[p] = i + 1
			}
		})
	}
	next := make([]int, producers)
	see := func(items []msg) {
		for _, v := range items {
			if v.i != next[v.p] {
				t.Fatalf("producer %d: got %d, want %d", v.p, v.i, next[v.p])
			}
			next[v.p]++
		}
	}
	var spare []msg
	total := 0
	for total < producers*per/2 {
		items := q.swap(spare)
		see(items)
		total += len(items)
		spare = items
		if len(items) == 0 {
			runtime.Gosched()
		}
	}
	see(q.close())
	waitGroup(t, &wg, "producers to stop")
	for p := range next {
		if next[p] != accepted[p] {
			t.Fatalf("producer %d: accepted %d, seen %d", p, accepted[p], next[p])
		}
	}
}
