package loop

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }

type tev struct {
	when int // ms after epoch
	id   int // scheduling order
	dead bool
}

// checkHeap verifies the heap invariant over the whole array.
func checkHeap[E any](t *testing.T, h *timerHeap[E]) {
	t.Helper()
	for i := 1; i < len(h.items); i++ {
		if h.less(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d (parent %d)", i, (i-1)/2)
		}
	}
}

func popAll(h *timerHeap[tev]) []tev {
	var out []tev
	var v tev
	for h.popDue(int64(^uint64(0)>>1), &v) {
		out = append(out, v)
	}
	return out
}

func TestTimersDeadlineOrder(t *testing.T) {
	var h timerHeap[tev]
	if _, ok := h.next(); ok {
		t.Fatal("next on empty heap reported a deadline")
	}
	var v tev
	if h.popDue(1<<62, &v) {
		t.Fatal("popDue on empty heap succeeded")
	}
	whens := []int{50, 10, 40, 30, 20, 0, 60, 5}
	for i, w := range whens {
		h.push(at(w), tev{when: w, id: i})
		checkHeap(t, &h)
	}
	if n, ok := h.next(); !ok || n != at(0).UnixNano() {
		t.Fatalf("next = %d %v, want %d", n, ok, at(0).UnixNano())
	}
	got := popAll(&h)
	var gotWhens []int
	for _, e := range got {
		gotWhens = append(gotWhens, e.when)
	}
	want := slices.Clone(whens)
	slices.Sort(want)
	if !slices.Equal(gotWhens, want) {
		t.Fatalf("popped in order %v, want %v", gotWhens, want)
	}
}

func TestTimersTiesInSchedulingOrder(t *testing.T) {
	var h timerHeap[tev]
	// Many entries on three deadlines, interleaved.
	for i := 0; i < 300; i++ {
		w := []int{20, 10, 30}[i%3]
		h.push(at(w), tev{when: w, id: i})
	}
	got := popAll(&h)
	if len(got) != 300 {
		t.Fatalf("popped %d, want 300", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.when > b.when || (a.when == b.when && a.id >= b.id) {
			t.Fatalf("position %d: %+v before %+v", i, a, b)
		}
	}
}

func TestTimersPopDueRespectsNow(t *testing.T) {
	var h timerHeap[tev]
	for i, w := range []int{30, 10, 20, 10} {
		h.push(at(w), tev{when: w, id: i})
	}
	var v tev
	if h.popDue(at(9).UnixNano(), &v) {
		t.Fatalf("popped %+v before it was due", v)
	}
	// Exactly at the deadline is due.
	if !h.popDue(at(10).UnixNano(), &v) || v.id != 1 {
		t.Fatalf("popDue(10) = %+v, want id 1", v)
	}
	if !h.popDue(at(10).UnixNano(), &v) || v.id != 3 {
		t.Fatalf("popDue(10) = %+v, want id 3", v)
	}
	if h.popDue(at(19).UnixNano(), &v) {
		t.Fatalf("popped %+v at 19", v)
	}
	if !h.popDue(at(100).UnixNano(), &v) || v.when != 20 {
		t.Fatalf("popDue(100) = %+v, want when 20", v)
	}
	if !h.popDue(at(100).UnixNano(), &v) || v.when != 30 {
		t.Fatalf("popDue(100) = %+v, want when 30", v)
	}
	if h.popDue(at(100).UnixNano(), &v) || len(h.items) != 0 {
		t.Fatal("heap not empty")
	}
}

func TestTimersPopClearsEntry(t *testing.T) {
	var h timerHeap[*int]
	a, b := 1, 2
	h.push(at(1), &a)
	h.push(at(2), &b)
	var v *int
	if !h.popDue(at(5).UnixNano(), &v) || v != &a {
		t.Fatal("wrong first pop")
	}
	// The vacated slot beyond len must not keep the moved entry's pointer.
	if tail := h.items[:cap(h.items)][len(h.items)]; tail.ev != nil {
		t.Fatal("popped slot still references an event")
	}
}

func TestTimersCompact(t *testing.T) {
	var h timerHeap[tev]
	for i := 0; i < 10; i++ {
		h.push(at(10-i), tev{when: 10 - i, id: i, dead: i%2 == 0})
	}
	h.compact(func(e *tev) bool { return !e.dead })
	checkHeap(t, &h)
	got := popAll(&h)
	var ids []int
	for _, e := range got {
		ids = append(ids, e.id)
	}
	// Live ids are the odd ones; later ids have earlier deadlines.
	if want := []int{9, 7, 5, 3, 1}; !slices.Equal(ids, want) {
		t.Fatalf("after compact popped ids %v, want %v", ids, want)
	}
	// Compacting everything away leaves an empty, usable heap.
	h.push(at(1), tev{id: 100})
	h.compact(func(*tev) bool { return false })
	if len(h.items) != 0 {
		t.Fatalf("%d entries after dropping all", len(h.items))
	}
	h.push(at(3), tev{when: 3, id: 101})
	h.push(at(2), tev{when: 2, id: 102})
	if got := popAll(&h); len(got) != 2 || got[0].id != 102 || got[1].id != 101 {
		t.Fatalf("heap after empty compact: %+v", got)
	}
}

// TestTimersRandomProperty compares the heap against a sorted model under
// random interleavings of push, popDue and compact.
func TestTimersRandomProperty(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		var h timerHeap[tev]
		var model []tev // live entries in (when, id) order
		id := 0
		now := 0
		sortModel := func() {
			slices.SortFunc(model, func(a, b tev) int {
				if a.when != b.when {
					return a.when - b.when
				}
				return a.id - b.id
			})
		}
		for step := 0; step < 2000; step++ {
			switch op := rng.IntN(10); {
			case op < 5: // schedule, often in the past or on the same ms
				w := now + rng.IntN(50) - 5
				e := tev{when: w, id: id}
				id++
				h.push(at(w), e)
				model = append(model, e)
				sortModel()
			case op < 8: // advance the clock and pop what is due
				now += rng.IntN(20)
				var v tev
				for h.popDue(at(now).UnixNano(), &v) {
					if len(model) == 0 || model[0] != v {
						t.Fatalf("seed %d step %d: popped %+v, model wants %+v", seed, step, v, model[:min(1, len(model))])
					}
					if v.when > now {
						t.Fatalf("seed %d step %d: popped %+v before due (now %d)", seed, step, v, now)
					}
					model = model[1:]
				}
				if len(model) > 0 && model[0].when <= now {
					t.Fatalf("seed %d step %d: %+v due but not popped", seed, step, model[0])
				}
			default: // cancel a random subset and compact
				mod := 2 + rng.IntN(4)
				keep := func(e *tev) bool { return e.id%mod != 0 }
				h.compact(keep)
				model = slices.DeleteFunc(model, func(e tev) bool { return !keep(&e) })
			}
			checkHeap(t, &h)
			if len(h.items) != len(model) {
				t.Fatalf("seed %d step %d: heap has %d entries, model %d", seed, step, len(h.items), len(model))
			}
			if n, ok := h.next(); ok != (len(model) > 0) || (ok && n != at(model[0].when).UnixNano()) {
				t.Fatalf("seed %d step %d: next = %d %v, model %+v", seed, step, n, ok, model[:min(1, len(model))])
			}
		}
		// Whatever is left comes out in model order.
		got := popAll(&h)
		if !slices.Equal(got, model) {
			t.Fatalf("seed %d: final pop %v, want %v", seed, got, model)
		}
	}
}

func TestTimersPushAllocationFreeOnceGrown(t *testing.T) {
	var h timerHeap[int]
	for i := 0; i < 64; i++ {
		h.push(at(i), i)
	}
	var v int
	for h.popDue(1<<62, &v) {
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 64; i++ {
			h.push(at(64-i), i)
		}
		for h.popDue(1<<62, &v) {
		}
	})
	if allocs != 0 {
		t.Fatalf("push/pop on a grown heap allocates %.1f times", allocs)
	}
}
