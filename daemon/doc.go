// Package daemon is the actord daemon as a library: what `actord run`
// starts, in a form tests can run in-process.
//
// A [Daemon] owns an actor.System whose loops (one per core by default) run
// as services of one suture/v4 tree, together with the rest of the daemon:
//
//	actord (root)
//	├── loops: actor-loop-0 … actor-loop-N-1   (supervisor.NewServiceTree)
//	├── remote-node                            (remote.Node: gnet listener, dialed peers, heartbeats)
//	├── debug-http                             (debug.Server: dump protocol, /metrics, pprof; token-guarded)
//	├── metrics-http                           (optional: /metrics alone on its own address)
//	└── cluster-agent                          (cluster.Agent: memberlist gossip, seeds, failure detection)
//
// The cluster agent reports members that fail or leave to the remote node
// (remote.Node.PeerDown), so asks pending on a dead daemon fail with
// remote.ErrNodeDown and monitors of its actors fire, without waiting for
// the connection's heartbeat to time out.
//
// Each daemon has one event bus ([Daemon.Bus], package event): its actors'
// lifecycle, its remote node's peers and connections, its cluster
// membership and its services' failures are emitted on it, applications
// subscribe to it and emit on it, and the debug server streams it
// (`actord debug events --follow`). See docs/events.md.
//
// Clients (package client) spawn the kinds of Config.Kinds, registered on
// the daemon's gateway before it is ready; [Kind] makes one whose
// arguments are typed. Package daemon/cli is the `actord` command line as a
// library: a binary of your own with your kinds is a dozen lines (see
// docs/deploy.md, "Your own daemon").
//
// Security: the remote transport is always encrypted (Noise, see
// docs/remote.md). With Config.ClusterKeyFile, only nodes holding the same
// cluster key can connect, and gossip is encrypted with a key derived from
// it ([GossipKey]). Each daemon keeps its node identity in
// DataDir/[NodeKeyFile], made on its first start; [Info].PublicKey is its
// public half. See docs/deploy.md, "Security".
//
// [Start] returns once every listener is up, having logged the ready record
// (message [ReadyMsg], with the addresses: see [Info]). [Daemon.Shutdown]
// stops in order: the agent leaves the cluster, the actor system shuts down
// (supervision trees stop their children in reverse start order, each with
// its shutdown timeout, while the network is still up to carry their Down
// notifications), then the tree stops the network and the HTTP servers.
// [Daemon.Kill] is a crash without any of that, for tests.
package daemon
