// Package fdlimit raises the process's limit on open files, so that a
// daemon serving many connections runs out of descriptors as late as the
// system allows.
package fdlimit

// Limits is a soft and a hard limit on open files (RLIMIT_NOFILE).
type Limits struct {
	Soft, Hard uint64
}
