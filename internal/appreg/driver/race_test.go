//go:build race

package driver

// raceEnabled: the race detector slows the simulator about tenfold, so the
// swarm's default run takes fewer seeds under it.
const raceEnabled = true
