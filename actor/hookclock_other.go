//go:build !amd64

package actor

func rdtsc() int64 { return 0 }

func haveInvariantTSC() bool { return false }
