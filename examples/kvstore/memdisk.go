package kvstore

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
)

// ErrDiskFull is the error of a MemDisk's Update while SetFail is on.
var ErrDiskFull = errors.New("kvstore: simulated disk: write failed")

// MemDisk is a simulated disk for Config.Storage: in memory,
// deterministic (no goroutine, no clock, keys in order), and durable only
// as far as it was synced. It outlives the stores that use it: a
// simulator gives the same MemDisk to the store of a node's every
// incarnation, as a machine keeps its disk across a crash.
//
// An Update is synced when it returns nil; what a store has not handed to
// Update by then, or Update has not finished, is lost when the node
// crashes (in a simulator, a commit that had not run when its node
// crashed never runs). So a store restarted on a MemDisk finds exactly
// the transactions that were synced before the crash: the simulated
// counterpart of the bbolt file's fsync.
//
// It is safe for concurrent use.
type MemDisk struct {
	mu      sync.Mutex
	buckets map[string]*memBucket
	syncs   uint64
	fail    bool
	spare   []memPut // the room of the last Update's puts, for the next
}

// memBucket is one bucket: keys kept sorted, for Scan's order.
type memBucket struct {
	keys []string
	vals map[string]*memVal
}

// memVal is a key's value. A put of a key the bucket has replaces the
// value in place: no copy of the key, nor a map write.
type memVal struct{ v []byte }

// NewMemDisk returns an empty simulated disk.
func NewMemDisk() *MemDisk { return &MemDisk{buckets: map[string]*memBucket{}} }

// Syncs returns how many transactions were synced.
func (d *MemDisk) Syncs() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// SetFail makes every Update fail with ErrDiskFull (nothing of it
// written) until SetFail(false): a disk error.
func (d *MemDisk) SetFail(fail bool) {
	d.mu.Lock()
	d.fail = fail
	d.mu.Unlock()
}

// Buckets creates the buckets that do not exist yet.
func (d *MemDisk) Buckets(names [][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range names {
		if d.buckets[string(n)] == nil {
			d.buckets[string(n)] = &memBucket{vals: map[string]*memVal{}}
		}
	}
	return nil
}

// memPut is a put of a transaction not yet applied.
type memPut struct {
	b   *memBucket // buckets are never removed
	old *memVal    // the key's value when put, if it had one
	key string     // else the key, copied
	val []byte     // a copy, which the bucket keeps
}

// Update collects fn's puts and applies them all at once, under the lock,
// if fn succeeds: atomic for Scan, and synced on return.
func (d *MemDisk) Update(fn func(put func(bucket, key, value []byte) error) error) error {
	d.mu.Lock()
	puts := d.spare
	d.spare = nil
	d.mu.Unlock()
	err := fn(func(bucket, key, value []byte) error {
		d.mu.Lock()
		b := d.buckets[string(bucket)]
		var old *memVal
		if b != nil {
			old = b.vals[string(key)] // values are never removed: it stays the key's
		}
		d.mu.Unlock()
		if b == nil {
			return errors.New("no bucket " + string(bucket))
		}
		p := memPut{b: b, old: old, val: append([]byte{}, value...)}
		if old == nil {
			p.key = string(key)
		}
		puts = append(puts, p)
		return nil
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		clear(puts) // the spare must not keep the values alive
		d.spare = puts[:0]
	}()
	if err != nil {
		return err
	}
	if d.fail {
		return ErrDiskFull
	}
	for _, p := range puts {
		if p.old != nil {
			p.old.v = p.val
			continue
		}
		b := p.b
		if v := b.vals[p.key]; v != nil { // put twice in this transaction
			v.v = p.val
			continue
		}
		i, _ := slices.BinarySearch(b.keys, p.key)
		b.keys = slices.Insert(b.keys, i, p.key)
		b.vals[p.key] = &memVal{v: p.val}
	}
	d.syncs++
	return nil
}

// Scan reads the bucket in key order, under the lock.
func (d *MemDisk) Scan(bucket, after []byte, fn func(key, value []byte) (bool, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.buckets[string(bucket)]
	if b == nil {
		return errors.New("no bucket " + string(bucket))
	}
	i := 0
	if after != nil {
		var found bool
		i, found = slices.BinarySearchFunc(b.keys, after, func(k string, t []byte) int { return strings.Compare(k, string(t)) })
		if found {
			i++
		}
	}
	for ; i < len(b.keys); i++ {
		k := b.keys[i]
		more, err := fn([]byte(k), bytes.Clone(b.vals[k].v))
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Close does nothing: the disk outlives its stores.
func (d *MemDisk) Close() error { return nil }
