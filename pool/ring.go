package pool

import (
	"cmp"
	"slices"
)

// vnodes is the number of points each worker has on the hash ring: enough
// that N workers share the keys within a few percent of 1/N each.
const vnodes = 128

// ring is a consistent-hash ring over worker IDs. A key goes to the worker
// of the first point at or after its hash. A worker's points depend only on
// its ID, so adding or removing a worker moves only the keys of the arcs it
// gains or loses: about 1/N of them.
type ring struct {
	points []point
}

type point struct {
	hash uint64
	id   uint64
}

// build sets the ring to the given worker IDs.
func (r *ring) build(ids []uint64) {
	r.points = r.points[:0]
	for _, id := range ids {
		for v := range uint64(vnodes) {
			r.points = append(r.points, point{mix64(id*vnodes + v + 1), id})
		}
	}
	slices.SortFunc(r.points, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
}

// lookup returns the ID of the worker that owns hash h; false on an empty
// ring.
func (r *ring) lookup(h uint64) (uint64, bool) {
	if len(r.points) == 0 {
		return 0, false
	}
	i, _ := slices.BinarySearchFunc(r.points, h, func(p point, h uint64) int { return cmp.Compare(p.hash, h) })
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].id, true
}

// mix64 is a 64-bit finaliser (splitmix64's): it spreads sequential inputs
// over the whole range.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// StringKey hashes a string key (FNV-1a, then mixed), the same way in
// every process, so a key maps to the same worker after a restart.
func StringKey(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}
