//go:build !amd64

package tsc

func rdtsc() int64 { return 0 }

func haveInvariantTSC() bool { return false }
