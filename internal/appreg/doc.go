// Package appreg is the application registry: which applications (named
// top-level supervision trees) the cluster runs, which node runs each, and
// the leases that keep at most one instance of each running, partitions
// included.
//
// # Parts
//
//   - State: the registry, changed only by Command values applied in raft
//     log order (deploy, start, stop, remove, assign, renew, release). Apply is
//     deterministic; Marshal and UnmarshalState are the snapshot.
//   - Replica: one member of the registry's raft group (etcd raft's
//     RawNode, go.etcd.io/raft/v3). Like RawNode it is a state machine apart
//     from I/O: the driver feeds it messages (Step), time (Tick, at a fixed
//     interval of the node's clock) and commands (Propose), and takes its
//     output (Ready: messages to send, commands applied). It starts no
//     goroutine and reads no clock; every input carries the node's time.
//     What raft must keep across restarts goes to a Store before the
//     messages that depend on it are returned.
//   - MayRun, Place, Plan, Timing.Wait: the decisions, pure functions of the
//     state, the live nodes and the time.
//   - MarshalMessage, UnmarshalMessage: raft messages for the wire, bounded
//     (MaxMessageSize) and limited to the types replicas send each other.
//
// # Leases and the at-most-one guarantee
//
// An application's assignment (node, generation) changes only by an Assign
// command, a compare-and-set on the generation. Its holder proposes a Renew
// of (node, generation) every Timing.RenewEvery, noting its clock reading
// when it proposes; a renewal is accepted at apply only while the holder
// still holds that generation and the application is desired running. Each
// replica notes, on its own clock, when it observed each accepted renewal:
// when the renewal's entry came into its log, or, if it does not know that
// (an entry from its store or a snapshot), when it applied it.
//
// A node runs an application only while MayRun holds:
//
//  1. it holds the assignment in its applied state, desired running;
//  2. it has a lease of that generation: a renewal it proposed at time s
//     (its clock) was committed and applied, and now < s + Lease;
//  3. it has waited Timing.Wait(d) on its clock since it observed the last
//     accepted renewal (of lease d) of any earlier generation.
//
// Why no two nodes run it at once: log order is the same everywhere, so the
// last accepted renewal R of the previous holder precedes the Assign that
// gave the new holder its generation, and every later renewal of the
// previous holder is refused. Each renewal the previous holder counts is R
// or precedes it in the log, so it was proposed before R came into the new
// holder's log (an entry is in the leader's log before anything after it
// is, and proposed before it is in any log; an entry replaced at its index
// is observed anew): the previous holder stops, by (2), at most
// Lease/(1-Drift) of real time after the new holder observed R; the new
// holder starts, by (3), at least Wait/(1+Drift) = Lease/(1-Drift) +
// Margin/(1+Drift) of real time after it observed R. A holder that hears nothing (a minority side, a deaf node)
// learns of no commit, gets no new lease and stops within Lease of its last
// proposal; nothing on the majority side depends on reaching it. A replica
// that restarts, or restores a snapshot, takes every renewal in it as
// applied at that moment: it can only wait longer. A renewal proposed by an
// earlier process of the node (Config.Incarnation) gives no lease.
//
// A graceful release (Replica.Hold, then Release; OpRelease) moves the
// assignment from its holder to a named node without the wait (3) when it
// is clean: the holder proposed it after its instance stopped and after it
// had itself waited out the earlier generations' leases, and every
// accepted renewal of its generation was its own process's (checked at
// apply). Then, when the release commits, nothing of that or an earlier
// generation runs: the holder's renewals precede the release in the log
// and cover no instance. Otherwise the next holder waits as after an
// Assign. Between Hold and Release the holder's instance is still ending:
// the generation is renewed as before, and the instance must end by its
// lease's end (HeldUntil) like any other, which the driver sees to. A
// lost or late release cannot make two instances: the holder runs nothing
// once it has released, and a release of a generation that moved on is
// refused. A replica of a binary that predates OpRelease rejects it as
// unknown and its state parts from the others': releases must be proposed
// only once every member applies them (package daemon checks what each
// member announces).
//
// The guarantee assumes:
//
//   - clocks advance at a rate within 1±Drift of real time and never jump
//     (Go's monotonic clock; a paused VM is a jump: size Margin for it or
//     accept the risk);
//   - Margin covers how long a node takes to see that MayRun turned false
//     (its tick: the driver refuses a Margin under TickInterval) and to
//     stop (kill) the instance;
//   - every start of a node's replica has its own Incarnation (the driver
//     derives one per start from the process's);
//   - the Store is durable (raft's own safety needs it) and each member
//     has its own;
//   - members are not malicious (raft is not Byzantine tolerant); messages
//     reach Step only from the member they name (the driver checks the
//     sending node's name as the remote layer knows it: pin names to keys
//     with remote.Config.Authorize, or keep the drivers' refs among the
//     members).
//
// Liveness (not safety) needs Lease well above the election timeout
// (NewReplica refuses an election timeout at or over the lease) plus a
// commit round trip, and RenewEvery well under Lease.
//
// # Placement, failover, takeover
//
// The leader proposes assignments (Plan): an unassigned application goes to
// the first live node of its preference list, else to the live node with
// the fewest applications. An application whose holder has not answered the
// leader (append or heartbeat responses) for two election timeouts moves
// once its last renewal, as the leader observed it, is Wait old. A new
// leader counts the two election timeouts of the leader it followed from
// when it last heard it, so the applications of a leader that died move
// about as soon as those of any member. With Takeover, an application moves to a live
// node earlier in its preference list at once; the new holder's own wait
// (3) keeps the two instances apart. Plan is only availability: a stale or
// wrong plan cannot break the guarantee.
//
// # Not yet
//
// Package driver runs a Replica in an actor over remote, and package daemon
// runs a driver on every member (docs/supervision.md, "Applications").
// Missing: membership changes of the raft group (the members are fixed at
// bootstrap; applications run on members only), and garbage collection of
// removed records.
//
// # Determinism
//
// etcd raft draws its election timeouts from crypto/rand (no hook in
// v3.7.0). A Replica times elections itself from a source seeded by its
// Incarnation and ID: non-leaders tick raft with TickQuiesced and campaign
// when their own timeout, drawn as raft's, runs out. Given the same inputs
// (and Incarnation), a replica behaves the same: a seeded run replays.
package appreg
