// Package quorum asks a set of actors the same question and settles as
// soon as enough of them have answered: the building block of replicated
// reads and writes (a write acknowledged by a majority of replicas, a read
// that needs R of N), on one node or across nodes.
//
// Ask runs inside an actor and returns an actor.Promise, so the caller's
// loop never blocks; Wait is the same for a plain goroutine. Both settle
// with the first need successful replies, in the order they arrived, as
// soon as there are need of them, or fail with an *Error (matching
// ErrNoQuorum) as soon as so many asks have failed that need successes can
// no longer come. Every ask has its own deadline, so a dead, partitioned or
// silent replica costs at most that deadline and never blocks the quorum
// of the others. Replies that arrive after the outcome are ignored.
//
// The replies are returned as they came: comparing values (a read that
// picks the newest version, read repair) is the caller's business, since
// only it knows what its values mean.
package quorum
