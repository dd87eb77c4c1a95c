// Package quorum makes quorum calls: it asks a configuration of actors
// (replicas, on this node or others) the same question and settles as soon
// as the replies are enough, by a rule the caller gives. It is the building
// block of replicated reads and writes.
//
// A Manager holds the nodes (the actors asked), with per-node statistics
// (latency, last error). A Configuration is an immutable set of nodes with
// an id and a quorum System (Majority, Threshold, Grid, Weighted,
// Byzantine); Add, Remove, Replace and WithSystem return new ones.
//
// A call is described by a Spec: a QuorumFunc that looks at the request and
// the replies so far and decides when they are enough and what to return
// (built-in: Count, All, Quorum, Collect, Highest, Matching), optionally a
// function that makes each node's message or skips the node, a timeout,
// and the thrifty option that asks the fastest quorum first. Request,
// reply and result types are type parameters.
//
// From an actor, Ask returns a Future settled in a continuation of the
// actor (the loop never blocks), AskCorrectable reports a correctable
// call's results as they improve, and Multicast sends one way to every
// node. From a plain goroutine, Call, CallCorrectable and CallMulticast do
// the same through a Caller, an actor that runs the calls of goroutines.
// The calls of one actor, or made through one Caller, reach each node in
// the order they were made.
//
// docs/quorum.md explains configurations, quorum functions and correctables
// with runnable examples.
package quorum
