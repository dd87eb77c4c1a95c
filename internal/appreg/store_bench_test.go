package appreg

import (
	"path/filepath"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// BenchmarkBoltStoreSave is the cost of one Ready that persists a renewal:
// one entry of a renewal's size and the hard state, one synced bbolt
// transaction. The driver pays it on its loop (see package driver).
func BenchmarkBoltStoreSave(b *testing.B) {
	s, err := OpenBoltStore(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cmd, err := EncodeCommand(Command{Op: OpRenew, App: "application", Node: "daemon-1", Gen: 3, Lease: 5e9, Inc: 1, Seq: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		idx := uint64(i + 1)
		e := &pb.Entry{Term: new(uint64(1)), Index: new(idx), Type: pb.EntryNormal.Enum(), Data: cmd}
		if err := s.Save(&pb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(idx)}, nil, []*pb.Entry{e}); err != nil {
			b.Fatal(err)
		}
	}
}
