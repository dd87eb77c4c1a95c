// Package connmgr decides which peer connections a node keeps, closes and
// forgets, after libp2p's connection manager and its redesign: watermarks,
// a grace period for new connections, a silence period between trims,
// pull-based scoring, protection by tag, time-boxed locks, a bounded veto,
// and two kinds of peer (managed and stable).
//
// A Manager is a state machine apart from I/O: it starts no goroutine,
// reads no clock and draws no random number. The caller reports what
// happens (Add, Connected, Disconnected, traffic and usage on the Peer
// handle), passes now to every call that needs the time, and carries out
// the decisions Tick returns: which connections to close (with their
// scores and why), which locks elapsed, which idle peers to forget.
//
// Scores are pulled, not pushed: components attach Scorers to a peer, and
// the Manager queries them only when it must choose (a trim pass or a
// Snapshot). A peer's score is the sum of its built-in components (traffic
// recency with decay, pending asks, live links and monitors, refs held:
// see Usage and the weights) and of its scorers, each clamped to [ScoreMin,
// ScoreMax]. The hot path (Peer.Traffic, Peer.AddAsks, ...) is atomic and
// takes no lock.
//
// Closing a peer with live links or monitors is never silent: its Closure
// says so (Usage.Watched), and the caller fires node-down to those actors.
//
// See docs/connmgr.md for the model, the defaults and how package remote
// uses it.
package connmgr
