package appreg

import (
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Store keeps what raft requires to survive a restart: the hard state (term,
// vote, commit), the log entries and the latest snapshot. Every method
// returns only once what it wrote is durable: raft's messages that depend
// on it are sent after it returns.
//
// BoltStore is the daemons' (a file, synced at every write), MemStore the
// tests'.
type Store interface {
	// Load returns everything saved; all empty for a new store.
	Load() (hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry, err error)
	// Save records, in this order: a snapshot received from the leader
	// (nil if none; it replaces every entry), then entries (each replaces
	// the stored entry at its index and every later one), then the hard
	// state (nil if unchanged).
	Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error
	// Compact records a snapshot this replica made of its own applied
	// state, and drops the entries it covers (keeping later ones).
	Compact(snap *pb.Snapshot) error
}

// MemStore is a Store in memory, for tests: it outlives the Replica that
// used it, as a disk would, so a test can restart a replica from it.
type MemStore struct {
	mu   sync.Mutex
	hs   *pb.HardState
	snap *pb.Snapshot
	ents []*pb.Entry
}

// Load implements Store.
func (m *MemStore) Load() (*pb.HardState, *pb.Snapshot, []*pb.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var hs *pb.HardState
	if m.hs != nil {
		hs = proto.Clone(m.hs).(*pb.HardState)
	}
	var snap *pb.Snapshot
	if m.snap != nil {
		snap = proto.Clone(m.snap).(*pb.Snapshot)
	}
	ents := make([]*pb.Entry, len(m.ents))
	for i, e := range m.ents {
		ents[i] = proto.Clone(e).(*pb.Entry)
	}
	return hs, snap, ents, nil
}

// Save implements Store.
func (m *MemStore) Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if snap != nil {
		m.snap = proto.Clone(snap).(*pb.Snapshot)
		m.ents = nil
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		kept := m.ents[:0:0]
		for _, e := range m.ents {
			if e.GetIndex() < first {
				kept = append(kept, e)
			}
		}
		for _, e := range ents {
			kept = append(kept, proto.Clone(e).(*pb.Entry))
		}
		m.ents = kept
	}
	if hs != nil {
		m.hs = proto.Clone(hs).(*pb.HardState)
	}
	return nil
}

// Compact implements Store.
func (m *MemStore) Compact(snap *pb.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	idx := snap.GetMetadata().GetIndex()
	if m.snap != nil && m.snap.GetMetadata().GetIndex() >= idx {
		return nil
	}
	m.snap = proto.Clone(snap).(*pb.Snapshot)
	kept := m.ents[:0:0]
	for _, e := range m.ents {
		if e.GetIndex() > idx {
			kept = append(kept, e)
		}
	}
	m.ents = kept
	return nil
}
