// Package bugs holds switches that re-introduce bugs this project fixed
// before. They exist only so that the simulator's tests (package sim) can
// show that its swarm finds each one again; production code must never set
// them, and every one is false unless such a test sets it.
//
// A switch is read only on a rare path (a lost connection, a link request
// from another node), never per message, so that it costs nothing where it
// is off. Tests set a switch from the goroutine that drives the simulated
// world, before the world runs, and reset it afterwards.
package bugs

var (
	// LinkEpoch: a lost connection (or a node's restart) ends every link
	// with that node, the links made on a later connection too, instead of
	// only those made up to the lost connection's epoch; the other side
	// keeps its half. Fixed by commit 178ea0a.
	LinkEpoch bool

	// NoDialBack: a node that receives a link from another node's actor
	// does not dial that node when it has no connection to it, so nothing
	// watches it and the half of the link here outlives the linking
	// node's death. Fixed by commit 3e7a95f.
	NoDialBack bool

	// NoCut: a node that loses its connection to another node keeps the
	// connections that node dialed to it, so the two connections of the
	// pair end apart, and a link made over the one that stayed up while the
	// other was being redialed, or whose node's dial failed, ends on one
	// side only (the link-consistency window of protocol version 4).
	// Fixed by the commit that brought protocol version 5.
	NoCut bool

	// SilentLoss: the one-way messages a lost connection had not delivered
	// (unacknowledged) are discarded without a count or a dead-letter
	// report: a sender that got nil from Send never learns they were
	// lost. Fixed by commit f3a4742.
	SilentLoss bool
)
