// Package kvstore is a sharded, replicated, durable key-value store built on
// actord: the example of the runtime used end to end (actors, supervision,
// quorum calls, remote refs as capabilities), and one that survives the
// loss of a daemon.
//
// # Sharding, replication and placement
//
// A store has a fixed number of shards (Config.Shards, default 16). A key
// goes to shard ShardOf(key, shards): the 32-bit FNV-1a hash of the key
// modulo the number of shards. Each shard has Config.Replicas replicas
// (default 3) on as many daemons: Placement sorts the members' addresses
// and puts shard i on members i, i+1, ..., i+r-1 (modulo the number of
// members). Every daemon computes the same placement from the same member
// list, so they agree without talking. With one member, every shard has
// one replica, on it.
//
// # Linearizable reads and writes by quorum calls
//
// A Client reads and writes a majority of a shard's replicas with quorum
// calls (package quorum), by the register protocol of Attiya, Bar-Noy and
// Dolev (ABD) with several writers. Every version of a key carries a Stamp
// (a counter and the writing client's random id). A Put asks a majority for
// the key's newest stamp, then sends its value with a newer stamp to every
// replica and returns once a majority has made it durable. A replica keeps
// the version with the newest stamp. A Get asks a majority for their
// versions and returns the newest; if fewer than a majority hold it (a
// write in progress, or one that failed half-way), it first writes it to a
// majority itself. Any two majorities share a replica, so a Get sees every
// write acknowledged before it began, and no Get returns a version older
// than one an earlier Get returned: the store is linearizable. Every step
// may be retried: reads change nothing, and writing the same version twice
// is harmless. Under load, the reads of a shard that wait for a running one
// go together in one GetMany: each still reads a majority within its own
// call, so batching saves messages without changing the protocol.
//
// Why ABD rather than a leader per shard with quorum commit: ABD needs no
// election, no lease and no clock. A dead replica costs nothing but its
// answer (the next majority is the other two), so there is no window of
// unavailability while a new leader is chosen and the old one's lease
// runs out, and no request waits for a failure detector. Its price is a
// round trip more per write (reading the newest stamp) and reads that ask
// two replicas rather than one leader; the quorum calls ask the two
// fastest replicas first (quorum.Spec.Thrifty) so that a read is two
// messages when they agree. A leader with leases would serve reads from
// one replica, at the cost of an election protocol and of timing
// assumptions for its lease.
//
// # Replicas and durability
//
// Each daemon runs its replicas as the children of one supervisor (one for
// one; see Install), spread over the daemon's loops. A replica keeps its
// keys in a map on its loop and persists them to its own bucket of the
// daemon's bbolt file under Config.DataDir, with their stamps, through
// a write-ahead log (one record and one fdatasync per commit; bbolt is
// written at checkpoints only, with a sync). It answers
// Gets from the map, which holds the durable versions only, and
// acknowledges a Write only once it holds that version or a newer one
// durably: the commit that wrote it has been fsynced. A write acknowledged
// to a client is therefore on the disks of a majority of its replicas.
// Writes are group-committed twice: while a replica's commit is in flight,
// new writes queue and go in its next batch; and the batches of all the
// replicas of a daemon that arrive while a transaction runs go together in
// the next one, in a Context.Blocking job that the committer's actor
// starts and that drains its queue: one fsync per round for the daemon. The disk work never runs on a loop.
//
// The disk is behind an interface (Storage: buckets, atomic durable
// updates, ordered scans): a bbolt file by default, or Config.Storage. A
// MemDisk keeps in memory exactly what was synced, for a simulator (package
// sim) whose nodes crash and restart on their disks; with it, a store
// starts no goroutine and reads no clock (its catch-up is an actor too), and
// an ActorClient reads and writes it from inside an actor.
//
// A replica that crashes is restarted in place by its supervisor (its refs
// stay valid) and reloads its data from its storage, through the committer:
// after any commit of the previous instance still in flight has finished. No request waiting in
// the crashed instance is left to its caller's timeout: queued writes and
// requests held during a load fail at once with ErrShardCrashed (not
// applied), and the writes of the commit in flight are answered with its
// outcome when it ends. A replica that stops (Store.Close) fails its queued
// writes with ErrClosed the same way.
//
// # A daemon that returns
//
// A restarted daemon reopens its replicas and catches up: each replica
// reads one other replica of its shard through (SyncRequest, page by page)
// and stores the versions newer than its own, in two passes, one at once
// and one CatchUpAgain later, for the writes clients made before they
// found the restarted replicas. The store is linearizable without it; the
// catch-up gives the shard back its third up-to-date copy.
//
// # Directory and capabilities
//
// Refs cannot be forged, so a client must be given the replicas' refs.
// Each daemon registers the remote kind DirectoryKind; spawning it with the
// store's token (Config.Token) yields a short-lived directory actor that
// answers a DirRequest with the store's shape and the refs of the daemon's
// own replicas. The token is the capability to the whole store: whoever
// holds it can learn every replica ref. Dial does this for every member and
// returns a Client that keeps its table fresh (see Client for the retries
// and the bounds on directory fetches).
package kvstore
