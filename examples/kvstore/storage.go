package kvstore

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Storage is what a store's replicas need of a disk: named buckets of
// keys in byte order, read in that order and written by transactions that
// are atomic and durable. The default is one bbolt file under
// Config.DataDir behind a write-ahead log (wal.go); MemDisk is a simulated
// one, in memory, for a simulator.
//
// Update is called by one goroutine at a time (the store's committer);
// Scan may run at the same time as an Update, from other goroutines, and
// must see either all or nothing of it.
type Storage interface {
	// Buckets makes the named buckets that do not exist yet, durably.
	Buckets(names [][]byte) error
	// Update runs fn in one transaction: what fn puts is written, and
	// durable (synced to the disk) once Update returns nil. If fn or the
	// commit fails, none of it is written. put fails for a bucket that
	// Buckets did not make. The slices put is given
	// may be reused once put returns.
	Update(fn func(put func(bucket, key, value []byte) error) error) error
	// Scan calls fn with the entries of bucket whose key is greater than
	// after (all of them if after is nil), in key order, until fn returns
	// false or an error, which Scan returns. The slices fn is given are
	// valid during the call only. fn must not call Update or Scan on the
	// same Storage: it may deadlock (bbolt, and the write-ahead log, hold
	// a lock that a commit waits for while fn runs).
	Scan(bucket, after []byte, fn func(key, value []byte) (bool, error)) error
	// Close releases the storage. A store closes the storage it opened,
	// not one given in Config.Storage.
	Close() error
}

// boltStorage is the default Storage: a bbolt file.
type boltStorage struct{ db *bolt.DB }

// Buckets makes the buckets in one bolt transaction.
func (s boltStorage) Buckets(names [][]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// Update runs fn in a bolt transaction (one fsync on commit). The bucket
// of consecutive puts is looked up once.
func (s boltStorage) Update(fn func(put func(bucket, key, value []byte) error) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var (
			name []byte
			b    *bolt.Bucket
		)
		return fn(func(bucket, key, value []byte) error {
			if b == nil || !bytes.Equal(bucket, name) {
				if b = tx.Bucket(bucket); b == nil {
					return fmt.Errorf("no bucket %s", bucket)
				}
				name = bucket
			}
			return b.Put(key, value)
		})
	})
}

// Scan reads the bucket in a read-only bolt transaction.
func (s boltStorage) Scan(bucket, after []byte, fn func(key, value []byte) (bool, error)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("no bucket %s", bucket)
		}
		c := b.Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			more, err := fn(k, v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

func (s boltStorage) Close() error { return s.db.Close() }

// LoadReplica reads the durable entries of the replica of shard id that a
// storage holds (a store's, running, closed or crashed), by key: for tools
// that inspect a data dir and for simulators that check what survived a
// crash.
func LoadReplica(st Storage, id int) (map[string]Entry, error) {
	d := &disk{id: id, st: st, bucket: shardBucket(id)}
	return d.load()
}
