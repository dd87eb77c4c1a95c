package kvstore

import (
	"errors"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Get asks a shard for the value of a key. The reply is a GetReply.
type Get struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
}

// GetReply answers Get: OK is false when the key is absent.
type GetReply struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	V        []byte
	OK       bool
}

// Put asks a shard to set a key. The reply (nil) comes once the write is
// durable.
type Put struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
	V        []byte
}

// Delete asks a shard to remove a key. The reply (nil) comes once the
// removal is durable. Deleting an absent key is not an error.
type Delete struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	K        string
}

// CrashShard makes the shard that receives it panic, so that its
// supervisor restarts it (it reloads its data from disk). It is a
// fault-injection aid for demos and drills (`actord demo` uses it), not
// part of normal operation. Token must be the store's token; otherwise the
// shard answers ErrBadToken and does not crash. The asker gets the crash
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

// ShardRef is one shard and the ref (capability) that reaches it.
type ShardRef struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	ID       int
	Ref      actor.Ref
}

// DirReply answers DirRequest: the store's shape (number of shards and the
// sorted member addresses, from which Placement gives every shard's owner)
// and the shards hosted by the answering daemon.
type DirReply struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode the struct as an array
	_msgpack struct{} `msgpack:",as_array"`
	Shards   int
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
	// ErrUnavailable means the client has no ref for the key's shard (its
	// daemon could not be reached when the client dialed).
	ErrUnavailable = errors.New("kvstore: shard unavailable")
	// ErrClosed means the store was closed. A write that fails with it
	// while its shard stopped was not applied.
	ErrClosed = errors.New("kvstore: closed")
	// ErrShardCrashed means the shard crashed while the request waited in
	// it, before the request was processed: a Get held while the shard
	// loaded, or a write queued behind the commit in flight (or whose
	// commit had not started yet). Such a write was not applied, so
	// retrying it is safe; the supervisor restarts the shard in place.
	// (A write whose commit was running when the shard crashed is answered
	// with that commit's outcome instead, once it is known.)
	ErrShardCrashed = errors.New("kvstore: shard crashed before the request was processed")
)

// MaxKeySize is the longest key accepted, bbolt's limit.
const MaxKeySize = 32768

// RegisterTypes registers the store's message types on n, under the names
// "kvstore.Get", "kvstore.GetReply", "kvstore.Put", "kvstore.Delete",
// "kvstore.DirRequest", "kvstore.DirReply", "kvstore.ShardRef" and
// "kvstore.CrashShard", and the store's errors (process-wide) under
// "kvstore.ErrBadToken", "kvstore.ErrBadKey", "kvstore.ErrClosed" and
// "kvstore.ErrShardCrashed". Every node that talks to a store (daemons and
// clients) needs them; Install and Dial call it. Registering twice is
// harmless.
func RegisterTypes(n *remote.Node) error {
	return errors.Join(
		remote.RegisterError("kvstore.ErrBadToken", ErrBadToken),
		remote.RegisterError("kvstore.ErrBadKey", ErrBadKey),
		remote.RegisterError("kvstore.ErrClosed", ErrClosed),
		remote.RegisterError("kvstore.ErrShardCrashed", ErrShardCrashed),
		remote.Register[Get](n, "kvstore.Get"),
		remote.Register[GetReply](n, "kvstore.GetReply"),
		remote.Register[Put](n, "kvstore.Put"),
		remote.Register[Delete](n, "kvstore.Delete"),
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
