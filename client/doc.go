// Package client connects any Go program to actord daemons.
//
// A daemon hosts a gateway actor and writes its capability, a remote ref
// written down as text, to the file actord.cap in its data dir (mode 0600):
//
//	actord://<node>@<host:port>/<loop>.<slot>.<gen>#<128-bit secret in hex>
//
// Whoever can read the file can use the daemon; whoever cannot gets
// nothing: a forged or stale capability behaves exactly like a dead actor,
// so the first call fails with an error matching actor.ErrDead.
//
// [Dial] starts a small local actor system and remote node (replies come
// back on a connection the daemon dials, so the client listens too, on
// 127.0.0.1:0 by default) and makes the gateway's ref from the capability.
// It does not touch the network: the first call does. Then:
//
//   - [Client.Members] lists the cluster's members as the daemon sees them,
//     each with its gateway's capability once the gateways have met;
//   - [Client.Spawn] spawns an actor of a kind registered on a daemon with
//     daemon.Gateway.RegisterKind — on the dialed daemon or, through its
//     gateway, on any other member — and returns its ref; a kind whose
//     factory is supervisor.New(...) spawns a whole supervisor tree;
//   - [Client.Ask] and [Client.Send] message any ref.
//
// Daemons started with a cluster key (`actord run --cluster-key-file`)
// accept only nodes that hold the same key: give the client the file in
// Options.ClusterKeyFile (or the key in Options.Remote.ClusterKey).
// Without it, or with another key, calls fail with an error matching
// remote.ErrNodeDown and remote.ErrClusterKey ("cluster key mismatch").
//
// Message types must be registered (remote.Register) under the same names
// on the daemons and on the client: use [Client.Node].
//
// See docs/client.md.
package client
