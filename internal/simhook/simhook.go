// Package simhook is how the simulator (package sim) reaches what package
// remote keeps off its exported API: a node that runs on an in-memory
// network (internal/memnet) and a clock of the simulator's, with no
// goroutine of its own. Package remote sets Remote in its init. This
// package imports neither, so Remote is an any that sim asserts, once, to
// the function type documented on it.
package simhook

import "time"

// Clock is a node's view of virtual time: its reading (skewed as the
// simulator decides) and its timers, which the simulator runs on its own
// goroutine and drops when the node crashes.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer armed on a Clock; Stop reports whether it stopped it
// before it fired.
type Timer interface{ Stop() bool }

// Remote is, once package remote is linked in,
//
//	func(sys *actor.System, cfg remote.Config, nw *memnet.Network, clk Clock) (n *remote.Node, start func() error, stop func())
//
// It makes a node of sys on nw, listening at cfg.Listen ("ip:port"), its
// time and timers on clk and its randomness drawn from nw's seed. start
// listens (and returns at once); stop closes the node as a shutdown does.
var Remote any
