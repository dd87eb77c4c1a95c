package appreg

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func loadEqual(t *testing.T, step int, a, b Store) {
	t.Helper()
	ha, sa, ea, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	hb, sb, eb, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ha, hb) || !proto.Equal(sa, sb) || len(ea) != len(eb) {
		t.Fatalf("step %d: stores differ: %v/%v, %v/%v, %d/%d entries", step, ha, hb, sa, sb, len(ea), len(eb))
	}
	for i := range ea {
		if !proto.Equal(ea[i], eb[i]) {
			t.Fatalf("step %d: entry %d differs: %v / %v", step, i, ea[i], eb[i])
		}
	}
}

// Both stores do what raft asks the same way: entries that replace a
// suffix, snapshots from the leader that replace everything, local
// compactions; the file store the same after a reopen.
func TestStoresAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	bs, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bs.Close() }()
	ms := &MemStore{}
	rng := rand.New(rand.NewPCG(3, 4))
	last, term, snapIdx := uint64(0), uint64(1), uint64(0)
	for step := range 400 {
		var hs *pb.HardState
		var snap *pb.Snapshot
		var ents []*pb.Entry
		switch rng.IntN(10) {
		case 0: // a snapshot from the leader
			last += uint64(rng.IntN(20))
			snapIdx = last
			snap = &pb.Snapshot{Data: []byte{byte(step)}, Metadata: &pb.SnapshotMetadata{Index: new(last), Term: new(term),
				ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
		case 1: // a local compaction
			idx := snapIdx + (last-snapIdx)/2
			snapIdx = idx
			c := &pb.Snapshot{Data: []byte{byte(step)}, Metadata: &pb.SnapshotMetadata{Index: new(idx), Term: new(term)}}
			if err := ms.Compact(c); err != nil {
				t.Fatal(err)
			}
			if err := bs.Compact(c); err != nil {
				t.Fatal(err)
			}
			loadEqual(t, step, ms, bs)
			continue
		case 2: // reopen
			if err := bs.Close(); err != nil {
				t.Fatal(err)
			}
			if bs, err = OpenBoltStore(path); err != nil {
				t.Fatal(err)
			}
			loadEqual(t, step, ms, bs)
			continue
		default: // entries, sometimes replacing a suffix
			first := last + 1
			if last > 3 && rng.IntN(3) == 0 {
				first = last - uint64(rng.IntN(3))
				term++
			}
			n := 1 + rng.IntN(5)
			for i := range n {
				ents = append(ents, &pb.Entry{Index: new(first + uint64(i)), Term: new(term), Data: []byte{byte(step), byte(i)}})
			}
			last = first + uint64(n) - 1
		}
		hs = &pb.HardState{Term: new(term), Commit: new(last / 2)}
		if err := ms.Save(hs, snap, ents); err != nil {
			t.Fatal(err)
		}
		if err := bs.Save(hs, snap, ents); err != nil {
			t.Fatal(err)
		}
		loadEqual(t, step, ms, bs)
	}
}

func TestBoltStoreCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		return b.Put(entryKey(5), []byte{0xff, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bs, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bs.Close() }()
	if _, _, _, err := bs.Load(); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("load: %v, want ErrCorruptStore", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
