//go:build race

package sim

// raceEnabled: the race detector slows the swarm about tenfold, so CI's
// default run takes fewer seeds under it.
const raceEnabled = true
