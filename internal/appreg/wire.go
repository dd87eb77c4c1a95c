package appreg

import (
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxMessageSize bounds an encoded raft message: a snapshot of the largest
// state, or a batch of appended entries (raft's MaxSizePerMsg is set well
// under it), with room to spare.
const MaxMessageSize = MaxStateSize + 2<<20

// Decoding a message allocates far more than its bytes for many small
// entries (each one a struct), so what is not a snapshot is bounded apart:
// at most maxPlainMessageSize bytes (a batch of entries is at most raft's
// MaxSizePerMsg, 1 MiB, plus one entry) and maxMessageEntries entries
// (legitimate entries are commands of tens of bytes; a snapshot carries
// none).
const (
	maxPlainMessageSize = 2 << 20
	maxMessageEntries   = 1 << 16
)

// Field numbers of raftpb.Message (raft.proto).
const (
	fieldMessageType    = 1
	fieldMessageEntries = 7
)

// precheck reads the fields of an encoded message without decoding them:
// a message other than a snapshot larger than maxPlainMessageSize, or with
// more than maxMessageEntries entries, is refused before anything is
// allocated for it.
func precheck(b []byte) error {
	var typ uint64
	entries := 0
	for rest := b; len(rest) > 0; {
		num, wt, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrBadMessage, protowire.ParseError(n))
		}
		rest = rest[n:]
		if num == fieldMessageType && wt == protowire.VarintType {
			v, m := protowire.ConsumeVarint(rest)
			if m < 0 {
				return fmt.Errorf("%w: %w", ErrBadMessage, protowire.ParseError(m))
			}
			typ = v
		}
		if num == fieldMessageEntries {
			if entries++; entries > maxMessageEntries {
				return fmt.Errorf("%w: more than %d entries", ErrBadMessage, maxMessageEntries)
			}
		}
		m := protowire.ConsumeFieldValue(num, wt, rest)
		if m < 0 {
			return fmt.Errorf("%w: %w", ErrBadMessage, protowire.ParseError(m))
		}
		rest = rest[m:]
	}
	if pb.MessageType(typ) != pb.MsgSnap && len(b) > maxPlainMessageSize {
		return fmt.Errorf("%w: %d bytes for a %v (max %d)", ErrBadMessage, len(b), pb.MessageType(typ), maxPlainMessageSize)
	}
	return nil
}

// ErrBadMessage is returned for a raft message that may not come from the
// network: too large, malformed, of a local type, or misaddressed.
var ErrBadMessage = errors.New("appreg: bad raft message")

// networkTypes are the raft messages one replica sends another. Local ones
// (MsgHup, MsgBeat, storage messages...) and ones this package never sends
// (read index, leader transfer) are refused.
var networkTypes = map[pb.MessageType]bool{
	pb.MsgProp: true, pb.MsgApp: true, pb.MsgAppResp: true,
	pb.MsgVote: true, pb.MsgVoteResp: true, pb.MsgPreVote: true, pb.MsgPreVoteResp: true,
	pb.MsgSnap: true, pb.MsgHeartbeat: true, pb.MsgHeartbeatResp: true, pb.MsgTimeoutNow: true,
}

func checkMessage(m *pb.Message) error {
	if m == nil || m.Type == nil || !networkTypes[m.GetType()] {
		return fmt.Errorf("%w: type %v", ErrBadMessage, m.GetType())
	}
	if m.GetFrom() == 0 || m.GetTo() == 0 || m.GetFrom() == m.GetTo() {
		return fmt.Errorf("%w: from %d to %d", ErrBadMessage, m.GetFrom(), m.GetTo())
	}
	return nil
}

// MarshalMessage encodes a raft message for the wire (raft's protobuf).
func MarshalMessage(m *pb.Message) ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrBadMessage, len(b), MaxMessageSize)
	}
	return b, nil
}

// UnmarshalMessage decodes a raft message from the wire: at most
// MaxMessageSize bytes for a snapshot, far fewer (and a bounded number of
// entries) for anything else, checked before decoding since decoding many
// small entries allocates many times their bytes; of a type replicas send
// each other, with a sender and a receiver. Replica.Step checks the rest (a
// member sent it, to this replica).
func UnmarshalMessage(b []byte) (*pb.Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrBadMessage, len(b), MaxMessageSize)
	}
	if err := precheck(b); err != nil {
		return nil, err
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}
