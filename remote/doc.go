// Package remote connects an actor.System to the actor systems of other
// nodes, so that actors reach each other with the same Send, Ask, Monitor,
// Link, Exit and Kill wherever they run.
//
// A Node has a name, a listen address and a key pair. It runs a gnet engine
// for the connections it accepts and a gnet client for those it dials; run
// it with Start, or with Serve under a suture supervisor. Refs of actors of
// other nodes look and behave like local ones: they travel inside messages
// and stay usable on the receiving node, they compare equal when they name
// the same actor, and a forged or stale one is answered exactly like a dead
// actor. The synchronous Call is the exception: it fails at once with
// actor.ErrNotLocal.
//
// Message types cross nodes once registered under the same name on each
// (Register); common types (string, []byte, integers, ...) are registered
// already. Errors keep their identity across nodes: the runtime's sentinels
// always, an application's own once registered with RegisterError.
// Actor kinds registered with Node.RegisterKind can be spawned from other
// nodes with Node.Spawn, supervisors included, so a supervision tree can
// span daemons.
//
// Failures are reported, never silent. A peer that stops answering
// heartbeats, or whose connection is lost, is declared down: the asks that
// may have been lost fail with an error matching ErrNodeDown, one-way
// messages it had not acknowledged are reported as dead letters
// (Stats.DeadLetters, event.DeadLetter), monitors of its actors get
// actor.Down with that reason, and links with its actors end with an exit
// signal of that reason. Until it is reached again, sends and asks to it
// fail at once with ErrNodeDown. The node redials with exponential backoff
// and jitter while anything wants the peer, so a restarted peer is reached
// again without operator action, and forgets peers that nothing references
// (Config.ForgetAfter). Outbound queues are bounded (Config.MaxOutbound): a
// send or ask to a slow peer fails at once with actor.ErrQueueFull. See
// docs/remote.md, "Delivery guarantees".
//
// Node.Export and Node.Resolve turn a ref into a sturdy ref, a string that
// can be written down and stays valid across restarts of the issuing node,
// and back (docs/capabilities.md, "Sturdy refs").
//
// Connections are encrypted and authenticated with the Noise protocol
// (Config.PrivateKey is the node's identity; Config.ClusterKey admits only
// nodes that hold it; Config.Authorize can pin peers' keys).
//
// docs/remote.md describes the behaviour and the wire protocol (frames,
// handshake, error codes) precisely enough to write another implementation;
// docs/performance.md has the benchmarks.
package remote
