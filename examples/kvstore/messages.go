package kvstore

import (
	"errors"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Stamp orders the writes of a key: a counter, then an id unique to the
// write (so that two writes that pick the same counter, of one client or
// of two, still make different, ordered versions). The zero Stamp is older than every write:
// a key never written has it.
type Stamp struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	N        uint64
	W        uint64
}

// Less reports whether s is older than o.
func (s Stamp) Less(o Stamp) bool { return s.N < o.N || (s.N == o.N && s.W < o.W) }

// IsZero reports whether s is the zero Stamp (never written).
func (s Stamp) IsZero() bool { return s.N == 0 && s.W == 0 }

// Get asks a replica for its version of a key. The reply is an Entry (the
// zero Entry when the replica never saw the key). With NoValue the Entry
// carries the stamp only (a write's first phase).
type Get struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
	NoValue  bool
}

// Entry is a replica's version of a key: its stamp, and its value, or
// Deleted. A replica answers Gets with the versions it has made durable.
type Entry struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	TS       Stamp
	V        []byte
	Deleted  bool
}

// GetMany asks a replica for its versions of several keys at once: the
// reads of one shard that a client's goroutines made while the previous
// read of that shard was in flight, batched (see Client). The reply is an
// Entries with one Entry per Get, in order. A replica refuses more than
// MaxGetMany Gets, or a bad key, with an error.
type GetMany struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	Gets     []Get
}

// Entries answers GetMany: the replica's version of each key asked, in
// the order asked.
type Entries struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	E        []Entry
}

// MaxGetMany bounds the Gets of one GetMany.
const MaxGetMany = 256

// Write asks a replica to keep a version of a key, if it is newer than the
// one it has. The reply (nil) comes once the replica holds this version
// or a newer one durably (fsynced): a replica acknowledges nothing that a
// crash could take back. Writing the same version again is harmless, so a
// Write may always be retried.
type Write struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
	E        Entry
}

// SyncRequest asks a replica of shard Shard for its entries with keys
// after After, in key order, at most Max of them (and about 1 MiB). The
// reply is a SyncReply. Replicas that return from a restart catch up with
// it.
type SyncRequest struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	After    string
	Max      int
}

// SyncEntry is one key of a SyncReply.
type SyncEntry struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
	E        Entry
}

// SyncReply answers SyncRequest: the entries, and whether more follow
// (ask again After the last key).
type SyncReply struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	Entries  []SyncEntry
	More     bool
}

// CrashShard makes the replica that receives it panic, so that its
// supervisor restarts it (it reloads its data from disk). It is a
// fault-injection aid for demos and drills (`actord demo` uses it), not
// part of normal operation. Token must be the store's token; otherwise the
// replica answers ErrBadToken and does not crash. The asker gets the crash
// as an error (actor.ErrCrashed, or a *remote.Error from another node).
type CrashShard struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	Token    string
}

// DirRequest asks a directory actor (see DirectoryKind) for its daemon's
// part of the store. The reply is a DirReply.
type DirRequest struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
}

// ShardRef is one replica of a shard and the ref (capability) that reaches
// it.
type ShardRef struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	ID       int
	Ref      actor.Ref
}

// DirReply answers DirRequest: the store's shape (number of shards,
// replicas per shard and the sorted member addresses, from which Placement
// gives every shard's replicas) and the replicas hosted by the answering
// daemon.
type DirReply struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	Shards   int
	Replicas int
	Members  []string
	Local    []ShardRef
}

// DirectoryKind is the remote kind of the directory actor. Its spawn
// argument is the store's token (a string); a wrong token fails the spawn
// with ErrBadToken.
const DirectoryKind = "kvstore.dir"

// Errors of the store. Test for them with errors.Is: RegisterTypes
// registers them with remote.RegisterError, so they keep their identity
// when they come from another node (as a *remote.Error).
var (
	// ErrBadToken means a directory was asked for with the wrong token.
	ErrBadToken = errors.New("kvstore: bad token")
	// ErrBadKey means a key is empty or longer than MaxKeySize.
	ErrBadKey = errors.New("kvstore: bad key")
	// ErrTooMany means a GetMany carried more than MaxGetMany Gets.
	ErrTooMany = errors.New("kvstore: too many keys in one request")
	// ErrUnavailable means the client cannot reach a majority of the
	// key's replicas: their daemons are down or could not be reached (the
	// error says which, and why).
	ErrUnavailable = errors.New("kvstore: shard unavailable")
	// ErrClosed means the store was closed. A write that fails with it
	// while its replica stopped was not applied by that replica.
	ErrClosed = errors.New("kvstore: closed")
	// ErrShardCrashed means the replica crashed while the request waited
	// in it, before the request was processed: a Get held while the
	// replica loaded, or a Write queued behind the commit in flight (or
	// whose commit had not started yet). Such a Write was not applied by
	// that replica; the supervisor restarts it in place.
	ErrShardCrashed = errors.New("kvstore: shard crashed before the request was processed")
	// ErrOldFormat means the data dir holds a store of an earlier,
	// unreplicated version, which this version does not read.
	ErrOldFormat = errors.New("kvstore: the data dir holds an unreplicated store of an earlier version")
)

// MaxKeySize is the longest key accepted, bbolt's limit.
const MaxKeySize = 32768

// RegisterTypes registers the store's message types on n, under the names
// "kvstore.<Type>" (Stamp, Get, Entry, GetMany, Entries, Write, SyncRequest, SyncEntry,
// SyncReply, DirRequest, DirReply, ShardRef, CrashShard), and the store's
// errors (process-wide) under "kvstore.ErrBadToken", "kvstore.ErrBadKey", "kvstore.ErrTooMany",
// "kvstore.ErrClosed" and "kvstore.ErrShardCrashed". Every node that talks
// to a store (daemons and clients) needs them; Install and Dial call it.
// Registering twice is harmless.
func RegisterTypes(n *remote.Node) error {
	return errors.Join(
		remote.RegisterError("kvstore.ErrBadToken", ErrBadToken),
		remote.RegisterError("kvstore.ErrBadKey", ErrBadKey),
		remote.RegisterError("kvstore.ErrTooMany", ErrTooMany),
		remote.RegisterError("kvstore.ErrClosed", ErrClosed),
		remote.RegisterError("kvstore.ErrShardCrashed", ErrShardCrashed),
		remote.Register[Stamp](n, "kvstore.Stamp"),
		remote.Register[Get](n, "kvstore.Get"),
		remote.Register[Entry](n, "kvstore.Entry"),
		remote.Register[Write](n, "kvstore.Write"),
		remote.Register[GetMany](n, "kvstore.GetMany"),
		remote.Register[Entries](n, "kvstore.Entries"),
		remote.Register[SyncRequest](n, "kvstore.SyncRequest"),
		remote.Register[SyncEntry](n, "kvstore.SyncEntry"),
		remote.Register[SyncReply](n, "kvstore.SyncReply"),
		remote.Register[DirRequest](n, "kvstore.DirRequest"),
		remote.Register[DirReply](n, "kvstore.DirReply"),
		remote.Register[ShardRef](n, "kvstore.ShardRef"),
		remote.Register[CrashShard](n, "kvstore.CrashShard"),
	)
}

func checkKey(k string) error {
	if len(k) == 0 || len(k) > MaxKeySize {
		return ErrBadKey
	}
	return nil
}
