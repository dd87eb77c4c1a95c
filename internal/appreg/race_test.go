//go:build race

package appreg

// raceOn shortens the longest random test under the race detector.
const raceOn = true
