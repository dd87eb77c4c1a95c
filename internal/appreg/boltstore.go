package appreg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyHardState  = []byte("hardstate")
	keySnapshot   = []byte("snapshot")
)

// ErrCorruptStore is returned by BoltStore.Load for a record it cannot read.
var ErrCorruptStore = errors.New("appreg: corrupt store")

// BoltStore is a Store in a bbolt file: each Save and Compact is one
// transaction, written and synced to disk before it returns.
type BoltStore struct {
	db *bolt.DB
}

// OpenBoltStore opens (creating it if need be) the store at path. Only one
// process may have it open: a second waits up to a second, then fails.
func OpenBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("appreg: open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketEntries} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("appreg: init store %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// Close closes the file.
func (s *BoltStore) Close() error { return s.db.Close() }

func entryKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// Load implements Store.
func (s *BoltStore) Load() (hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if b := meta.Get(keyHardState); b != nil {
			hs = &pb.HardState{}
			if err := proto.Unmarshal(b, hs); err != nil {
				return fmt.Errorf("%w: hard state: %w", ErrCorruptStore, err)
			}
		}
		if b := meta.Get(keySnapshot); b != nil {
			snap = &pb.Snapshot{}
			if err := proto.Unmarshal(b, snap); err != nil {
				return fmt.Errorf("%w: snapshot: %w", ErrCorruptStore, err)
			}
		}
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			e := &pb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil || len(k) != 8 || binary.BigEndian.Uint64(k) != e.GetIndex() {
				return fmt.Errorf("%w: entry %x", ErrCorruptStore, k)
			}
			ents = append(ents, e)
			return nil
		})
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return hs, snap, ents, nil
}

func putProto(b *bolt.Bucket, k []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// deleteKeys deletes the entries from index lo through hi (collected
// first: deleting under a cursor makes it skip keys).
func deleteKeys(b *bolt.Bucket, lo, hi uint64) error {
	var doomed [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(entryKey(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
		doomed = append(doomed, k)
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Save implements Store.
func (s *BoltStore) Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, eb := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if snap != nil {
			if err := putProto(meta, keySnapshot, snap); err != nil {
				return err
			}
			if err := tx.DeleteBucket(bucketEntries); err != nil {
				return err
			}
			var err error
			if eb, err = tx.CreateBucket(bucketEntries); err != nil {
				return err
			}
		}
		if len(ents) > 0 {
			first := ents[0].GetIndex()
			if err := deleteKeys(eb, first, math.MaxUint64); err != nil {
				return err
			}
			for _, e := range ents {
				if err := putProto(eb, entryKey(e.GetIndex()), e); err != nil {
					return err
				}
			}
		}
		if hs != nil {
			return putProto(meta, keyHardState, hs)
		}
		return nil
	})
}

// Compact implements Store.
func (s *BoltStore) Compact(snap *pb.Snapshot) error {
	idx := snap.GetMetadata().GetIndex()
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if b := meta.Get(keySnapshot); b != nil {
			old := &pb.Snapshot{}
			if err := proto.Unmarshal(b, old); err == nil && old.GetMetadata().GetIndex() >= idx {
				return nil
			}
		}
		if err := putProto(meta, keySnapshot, snap); err != nil {
			return err
		}
		return deleteKeys(tx.Bucket(bucketEntries), 0, idx)
	})
}
