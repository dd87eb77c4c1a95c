//go:build race

package remote

// raceEnabled: under the race detector sync.Pool drops what is put back at
// random, so a pooled buffer is allocated again now and then: the tests
// that count allocations skip.
const raceEnabled = true
