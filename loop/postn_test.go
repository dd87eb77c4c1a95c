package loop

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// PostQuietN queues as many events as there is room for, in order, and
// reports the rest refused only when none fits.
func TestPostQuietNPartialAndFull(t *testing.T) {
	var got []int
	l := New[int](handlerFunc[int](func(e *int) { got = append(got, *e) }), Config{Capacity: 8})
	for i := range 5 {
		if err := l.PostQuiet(i); err != nil {
			t.Fatal(err)
		}
	}
	k, err := l.PostQuietN(10, func(i int, e *int) { *e = 5 + i })
	if err != nil || k != 3 {
		t.Fatalf("PostQuietN(10) with room for 3 = %d, %v; want 3, nil", k, err)
	}
	if k, err := l.PostQuietN(1, func(int, *int) { t.Fatal("filled a place in a full queue") }); k != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("PostQuietN on a full queue = %d, %v; want 0, ErrFull", k, err)
	}
	for l.Step() {
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("handled %v, want 0..7 in order", got)
		}
	}
	if len(got) != 8 {
		t.Fatalf("handled %d events, want 8", len(got))
	}
	l.Close(nil)
	if _, err := l.PostQuietN(2, func(int, *int) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("PostQuietN after Close: %v, want ErrClosed", err)
	}
}

// Producers mixing single pushes and reservations keep their order and
// lose nothing, on a ring small enough that both are refused often.
func TestRingReserveWithPushes(t *testing.T) {
	const producers, per = 4, 20_000
	r := newRing[msg](16)
	defer r.close()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < per; {
				if p%2 == 0 {
					if r.push(msg{p, i}) == nil {
						i++
					} else {
						runtime.Gosched()
					}
					continue
				}
				pos, k, err := r.reserve(min(7, per-i))
				if err != nil {
					runtime.Gosched()
					continue
				}
				for j := range k {
					*r.put(pos + uint64(j)) = msg{p, i + j}
					r.publishAt(pos + uint64(j))
				}
				i += k
			}
		})
	}
	next := drainRing(t, r, producers, producers*per, 2*time.Minute)
	waitGroup(t, &wg, "producers to stop")
	for p, n := range next {
		if n != per {
			t.Errorf("producer %d: got %d items, want %d", p, n, per)
		}
	}
}
