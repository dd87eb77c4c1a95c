// Package sim runs a whole actord cluster in one goroutine on virtual
// time, reproducibly from a seed, with faults injected by the test: the
// same actor code that runs on real loops and sockets, on simulated
// machines.
//
// A World holds nodes (AddNode), each an actor.System in manual mode and a
// remote.Node on an in-memory network (latencies drawn from the seed, TCP's
// order within a connection). Nothing runs until the test calls Run,
// RunUntil or Step; then loop events, network deliveries and timers run in
// virtual-time order, and events due at the same time run in an order the
// seed decides. Context.Blocking jobs complete after a simulated duration.
//
// Faults are calls of the test: Partition and Heal (both ways), Block and
// Unblock (one way), Cut (connections reset), SetLatency (a slow link or a
// delay spike), Crash (power loss: memory gone, peers learn by timeout),
// Kill (kill -9: peers learn at once), Restart (same name, key and
// address, new incarnation), Node.SetDrift and Node.Jump (clocks), and
// Node.SetSlow (a slow machine).
//
// Reproducibility: a run depends only on the seed and the test's code.
// World.Summary prints "sim seed=S events=N digest=HEX"; the digest covers
// every event in order, so two runs of one seed print the same line. With
// Config.Timeline the world keeps the merged timeline of all nodes for a
// failing test to print. docs/simulation.md shows how to write a simulated
// test of your own actors and how to replay a failing seed.
//
// The world's methods, and those of the nodes' systems, must be called
// from the goroutine that drives it. Manual systems keep their remote refs
// and derive their ref secrets from the seed (see actor.Config.Manual):
// the simulator is for tests, not for production.
package sim
