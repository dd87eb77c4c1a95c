package appreg

import (
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestWireRoundTrip(t *testing.T) {
	m := &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(3)),
		Entries: []*pb.Entry{{Index: new(uint64(4)), Term: new(uint64(3)), Data: []byte("x")}}}
	b, err := MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, got) {
		t.Fatalf("round trip: %v != %v", got, m)
	}
}

func TestWireRejects(t *testing.T) {
	enc := func(m *pb.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"oversized": enc(&pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)),
			Entries: []*pb.Entry{{Data: make([]byte, MaxMessageSize)}}}),
		"garbage": {0xff, 0xff, 0xff, 0xff},
		"truncated": enc(&pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)),
			Entries: []*pb.Entry{{Data: make([]byte, 100)}}})[:20],
		"no type":        enc(&pb.Message{From: new(uint64(1)), To: new(uint64(2))}),
		"local MsgHup":   enc(&pb.Message{Type: pb.MsgHup.Enum(), From: new(uint64(1)), To: new(uint64(2))}),
		"local MsgBeat":  enc(&pb.Message{Type: pb.MsgBeat.Enum(), From: new(uint64(1)), To: new(uint64(2))}),
		"storage append": enc(&pb.Message{Type: pb.MessageType_MsgStorageAppend.Enum(), From: new(uint64(1)), To: new(uint64(2))}),
		"no sender":      enc(&pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(2))}),
		"to itself":      enc(&pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(2))}),
	} {
		if _, err := UnmarshalMessage(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
}

func singleReplica(t *testing.T, store Store, inc uint64) (*Replica, time.Time) {
	t.Helper()
	now := epoch
	r, err := NewReplica(Config{ID: 1, Members: []Member{{1, "n1"}, {2, "n2"}, {3, "n3"}}[:1], Store: store,
		Timing: testTiming, TickInterval: testTick, Incarnation: inc}, now)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 * 10 {
		now = now.Add(testTick)
		r.Tick(now)
		if _, err := r.Ready(); err != nil {
			t.Fatal(err)
		}
	}
	if !r.leader {
		t.Fatal("single replica did not become leader")
	}
	return r, now
}

func TestStepRejectsStrangers(t *testing.T) {
	r, now := singleReplica(t, &MemStore{}, 1)
	for name, m := range map[string]*pb.Message{
		"non-member":   {Type: pb.MsgApp.Enum(), From: new(uint64(9)), To: new(uint64(1)), Term: new(uint64(99))},
		"misaddressed": {Type: pb.MsgApp.Enum(), From: new(uint64(9)), To: new(uint64(2)), Term: new(uint64(99))},
		"local":        {Type: pb.MsgHup.Enum(), From: new(uint64(9)), To: new(uint64(1))},
	} {
		if err := r.Step(m, now); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
	if !r.leader {
		t.Fatal("a stranger's higher term deposed the leader")
	}
	// Raft itself does not look at To.
	r3, err := NewReplica(Config{ID: 1, Members: []Member{{1, "n1"}, {2, "n2"}, {3, "n3"}}, Store: &MemStore{},
		Timing: testTiming, TickInterval: testTick, Incarnation: 1}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(3)), Term: new(uint64(1))}
	if err := r3.Step(m, epoch); !errors.Is(err, ErrBadMessage) {
		t.Errorf("misaddressed between members: %v, want ErrBadMessage", err)
	}
}

// A malformed entry in the log (a member's bug or worse) is rejected the
// same way on every replica, and the ones after it apply.
func TestMalformedEntryRejected(t *testing.T) {
	r, now := singleReplica(t, &MemStore{}, 1)
	if err := r.rn.Propose([]byte("not a command")); err != nil {
		t.Fatal(err)
	}
	if err := r.Propose(Command{Op: OpDeploy, App: "a"}, now); err != nil {
		t.Fatal(err)
	}
	rd, err := r.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.Applied) != 2 || !errors.Is(rd.Applied[0].Err, ErrMalformed) || rd.Applied[1].Err != nil {
		t.Fatalf("applied: %+v", rd.Applied)
	}
	if _, ok := r.State().App("a"); !ok {
		t.Fatal("the command after the malformed one was not applied")
	}
}

// A renewal this node proposed in an earlier incarnation, committed late,
// gives no lease to the new process, even with a sequence number the new
// one is waiting for.
func TestEarlierIncarnationGivesNoLease(t *testing.T) {
	store := &MemStore{}
	r, now := singleReplica(t, store, 1)
	for _, c := range []Command{{Op: OpDeploy, App: "a"}, {Op: OpAssign, App: "a", Node: "n1"}} {
		if err := r.Propose(c, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Ready(); err != nil {
		t.Fatal(err)
	}
	// The process restarts as incarnation 2. A renewal proposed by
	// incarnation 1 commits late, with a sequence number incarnation 2 is
	// waiting for.
	r2, now := singleReplica(t, store, 2)
	clear(r2.leases)
	seq := r2.seq + 100
	r2.pending[seq] = pendingRenew{app: "a", gen: 1, sent: now}
	renew := Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: testTiming.Lease, Inc: 1, Seq: seq}
	if err := r2.Propose(renew, now); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Ready(); err != nil {
		t.Fatal(err)
	}
	if r2.MayRun("a", now) {
		t.Fatal("a renewal of the earlier incarnation gave the new process a lease")
	}
	// The same renewal from this incarnation does.
	renew.Inc = 2
	if err := r2.Propose(renew, now); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Ready(); err != nil {
		t.Fatal(err)
	}
	if !r2.MayRun("a", now) {
		t.Fatal("its own renewal gave no lease")
	}
}

func TestConfigRejects(t *testing.T) {
	good := Config{ID: 1, Members: []Member{{1, "n1"}}, Store: &MemStore{}, Timing: testTiming, TickInterval: testTick, Incarnation: 1}
	if _, err := NewReplica(good, epoch); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*Config){
		"no store":            func(c *Config) { c.Store = nil },
		"no incarnation":      func(c *Config) { c.Incarnation = 0 },
		"not a member":        func(c *Config) { c.ID = 2 },
		"duplicate node":      func(c *Config) { c.Members = []Member{{1, "n1"}, {2, "n1"}} },
		"renew >= lease":      func(c *Config) { c.Timing.RenewEvery = c.Timing.Lease },
		"drift too large":     func(c *Config) { c.Timing.Drift = 0.5 },
		"election over lease": func(c *Config) { c.TickInterval = c.Timing.Lease / 10 },
	} {
		c := good
		c.Store = &MemStore{}
		f(&c)
		if _, err := NewReplica(c, epoch); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// Decoding many small entries allocates many times their bytes, so a
// message other than a snapshot is bounded in bytes and entries before it
// is decoded: 5 M empty entries in 10 MiB allocated 686 MB.
func TestWireBoundsEntriesBeforeDecoding(t *testing.T) {
	msgApp := func(entries int) []byte {
		b, err := proto.Marshal(&pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2))})
		if err != nil {
			t.Fatal(err)
		}
		for range entries {
			b = append(b, 7<<3|2, 0) // field 7 (entries), length 0: an empty Entry
		}
		return b
	}
	for _, n := range []int{maxMessageEntries + 1, maxPlainMessageSize / 2} {
		b := msgApp(n)
		var allocs float64
		var err error
		allocs = testing.AllocsPerRun(1, func() { _, err = UnmarshalMessage(b) })
		if !errors.Is(err, ErrBadMessage) {
			t.Fatalf("%d empty entries (%d bytes): %v, want ErrBadMessage", n, len(b), err)
		}
		if allocs > 20 {
			t.Fatalf("%d empty entries: %v allocations before the refusal", n, allocs)
		}
	}
	// A snapshot may be larger than other messages.
	snap, err := MarshalMessage(&pb.Message{Type: pb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)),
		Snapshot: &pb.Snapshot{Data: make([]byte, maxPlainMessageSize+1), Metadata: &pb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1))}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalMessage(snap); err != nil {
		t.Fatalf("a snapshot above the plain bound: %v", err)
	}
	if _, err := UnmarshalMessage(msgApp(1000)); err != nil {
		t.Fatalf("1,000 entries: %v", err)
	}
}

// A snapshot that cannot be restored (a faulty member's) is refused before
// it is saved: saved, it would fail every later start of the replica.
func TestBadSnapshotNotSaved(t *testing.T) {
	st := &MemStore{}
	cfg := Config{ID: 2, Members: []Member{{1, "n1"}, {2, "n2"}}, Store: st, Timing: testTiming, TickInterval: testTick, Incarnation: 1}
	r, err := NewReplica(cfg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Message{Type: pb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(1)),
		Snapshot: &pb.Snapshot{Data: []byte("not a state"), Metadata: &pb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(1)),
			ConfState: &pb.ConfState{Voters: []uint64{1, 2}}}}}
	if err := r.Step(m, epoch); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ready(); err == nil {
		t.Fatal("a snapshot with a bad state was taken")
	}
	if _, err := NewReplica(cfg, epoch); err != nil {
		t.Fatalf("the replica does not start again from its store: %v", err)
	}
}
