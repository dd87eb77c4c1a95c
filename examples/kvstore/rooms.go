package kvstore

// rooms keeps the room of answered batches for the next queues, rather
// than grow a new queue from nothing for every batch. It keeps two: a
// request that finds the replica (or the committer) idle is committed at
// once in the room of one, and the requests that queue behind that commit
// need the other.
type rooms[T any] [2][]T

// take returns the larger room, empty, or nil if none is kept.
func (r *rooms[T]) take() []T {
	i := 0
	if cap(r[1]) > cap(r[0]) {
		i = 1
	}
	q := r[i]
	r[i] = nil
	return q
}

// give keeps b's room in place of the smaller one, if b is larger; b's
// elements are cleared so that the room keeps nothing alive.
func (r *rooms[T]) give(b []T) {
	clear(b)
	i := 0
	if cap(r[1]) < cap(r[0]) {
		i = 1
	}
	if cap(b) > cap(r[i]) {
		r[i] = b[:0]
	}
}
