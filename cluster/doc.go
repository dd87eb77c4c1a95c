// Package cluster keeps the membership of a cluster of actord daemons: who
// is up, at which remote (gnet) address, and when one joins, leaves or
// fails.
//
// It runs github.com/hashicorp/memberlist, the SWIM implementation that
// Consul, Serf and Nomad use (gossip over UDP and TCP, indirect probes,
// suspicion with refutation), rather than a protocol of our own. Each
// daemon runs one [Agent] under its suture service tree. An agent joins
// from a list of seed addresses, keeps retrying them while it knows no other
// member, and carries its node's name and remote address in memberlist's
// node metadata ([Meta]), so a member list is a list of nodes one can talk
// to ([Agent.Members]).
//
// # Failures
//
// memberlist calls back on its own goroutines, with its locks held. The
// agent only queues those callbacks; one goroutine of its own delivers them
// in order: first to [Config.Peers] (a *remote.Node: a member that failed or
// left is handed to remote.Node.PeerDown, which fails the asks pending on
// it and fires the monitors of its actors), then to the functions given to
// [Agent.Subscribe]. Nothing here touches an actor loop; the remote layer
// posts to the loops.
//
// A graceful stop ([Agent.Serve]'s context ends) marks the member as
// leaving in its metadata, then leaves: the others see [Leave]. A member
// that stops answering probes is declared dead: the others see [Fail]. A
// leave whose mark did not reach a member before the leave itself is seen
// there as a Fail (both mean the same to the remote layer).
//
// # Timing
//
// [ProfileLAN] (the default) is memberlist's LAN configuration: a crashed
// member is detected in a few seconds. [ProfileLocal] is its local
// configuration. [ProfileFast], for tests on one machine, probes every
// 100 ms and detects a crash within about half a second (`go test
// -count=3 -v -run TestDaemonClusterFailureAndRejoin ./daemon` logged
// 0.39–0.48 s).
package cluster
