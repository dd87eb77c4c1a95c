// Package kvstore is a sharded, durable key-value store built on actord:
// the example of the runtime used end to end (actors, supervision, blocking
// work off the loop, remote refs as capabilities).
//
// # Sharding and placement
//
// A store has a fixed number of shards (Config.Shards, default 16). A key
// goes to shard ShardOf(key, shards): the 32-bit FNV-1a hash of the key
// modulo the number of shards. Shards are placed over the store's members
// (the remote addresses of the daemons, Config.Members) by Placement: the
// addresses are sorted and shard i goes to member i mod len(members), round
// robin. The placement is fixed when the store is deployed: every daemon
// computes it from the same member list, so they agree without talking.
// With one member every shard lives on it.
//
// # Shards
//
// Each daemon runs its shards as the children of one supervisor (one for
// one; see Install), spread over the daemon's loops. A shard keeps its keys
// in a map on its loop and persists them to its own bucket of the daemon's
// bbolt file under Config.DataDir. All disk work runs on the actor worker
// pool (actor.Context.Blocking): the loop never waits for the disk.
//
// A Put or Delete is acknowledged only after the bolt transaction holding
// it has committed (bolt fsyncs on commit). Writes are group-committed
// twice: while one commit of a shard is in flight the shard queues new
// writes, with their deferred replies (actor.Context.Defer), and sends all
// of them as its next batch when the previous commit completes; and the
// batches of a daemon's shards that arrive while a transaction runs are
// committed together in the next one, so a daemon does one fsync per
// round, whatever the number of its shards. A Get is answered from the map, which
// is updated when a commit completes and before its writes are
// acknowledged, so a Get sees every acknowledged write.
//
// A shard that crashes is restarted in place by its supervisor (its refs
// stay valid) and reloads its data from bolt in Start, after any commit of
// the previous instance still in flight has finished. No request waiting
// in the crashed instance is left to its caller's timeout: queued writes
// (not yet submitted to a commit) and Gets held during a load fail at once
// with ErrShardCrashed, and were not applied; the writes of the commit in
// flight are answered with its outcome when it ends. A shard that stops
// (Store.Close) fails its queued writes with ErrClosed the same way.
//
// # Directory and capabilities
//
// Refs cannot be forged, so a client must be given the shards' refs. Each
// daemon registers the remote kind DirectoryKind; spawning it with the
// store's token (Config.Token) yields a short-lived directory actor that
// answers a DirRequest with the member list and the refs of the daemon's
// own shards. The token is the capability to the whole store: whoever
// holds it can learn every shard ref. Dial does this for every member and
// returns a Client that routes each key to its shard's ref, and fetches a
// member's directory again when its refs turn out stale (a restarted
// daemon's shards are new actors): see Client for the retries and the
// bounds on those fetches.
package kvstore
