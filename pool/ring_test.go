package pool

import (
	"fmt"
	"testing"
)

func owners(r *ring, keys int) []uint64 {
	out := make([]uint64, keys)
	for k := range out {
		out[k], _ = r.lookup(mix64(StringKey(fmt.Sprint("key-", k))))
	}
	return out
}

// Adding a worker to N moves about 1/(N+1) of the keys, all to the new
// worker; removing one moves only its keys; the rest stay put.
func TestRingStability(t *testing.T) {
	const keys = 20000
	var r ring
	ids := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	r.build(ids)
	before := owners(&r, keys)
	share := map[uint64]int{}
	for _, id := range before {
		share[id]++
	}
	for _, id := range ids {
		if f := float64(share[id]) / keys; f < 0.06 || f > 0.14 {
			t.Errorf("worker %d owns %.3f of the keys, want about 0.1", id, f)
		}
	}
	r.build(append(ids, 11))
	after := owners(&r, keys)
	moved := 0
	for k := range after {
		if after[k] != before[k] {
			moved++
			if after[k] != 11 {
				t.Fatalf("key %d moved from %d to %d, not to the new worker", k, before[k], after[k])
			}
		}
	}
	if f := float64(moved) / keys; f < 0.5/11 || f > 1.6/11 {
		t.Fatalf("adding 1 worker to 10 moved %.3f of the keys, want about 1/11", f)
	}
	r.build([]uint64{1, 2, 3, 4, 6, 7, 8, 9, 10}) // 5 removed
	gone := owners(&r, keys)
	for k := range gone {
		if before[k] != 5 && gone[k] != before[k] {
			t.Fatalf("key %d of worker %d moved to %d when worker 5 left", k, before[k], gone[k])
		}
	}
	// Order of the IDs does not matter; an empty ring owns nothing.
	r.build([]uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1})
	if again := owners(&r, keys); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("the same set in another order maps keys differently")
	}
	r.build(nil)
	if _, ok := r.lookup(1); ok {
		t.Fatal("an empty ring found an owner")
	}
}
