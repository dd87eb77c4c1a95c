//go:build unix

package fdlimit

import (
	"fmt"
	"runtime"
	"syscall"
)

// darwinMax is the most a soft limit may be on macOS (OPEN_MAX), whatever
// the hard limit says.
const darwinMax = 10240

// Raise sets the soft limit on open files to the hard limit and returns
// the limits before and after. (Go's runtime does the same at start on
// most systems since Go 1.19; Raise makes it explicit and reportable, and
// holds where the runtime did not.) On error the limits are unchanged.
func Raise() (before, after Limits, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return before, before, fmt.Errorf("fdlimit: getrlimit: %w", err)
	}
	before = Limits{Soft: uint64(rl.Cur), Hard: uint64(rl.Max)}
	want := rl.Max
	if runtime.GOOS == "darwin" && want > darwinMax {
		want = darwinMax
	}
	if rl.Cur >= want {
		return before, before, nil
	}
	rl.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return before, before, fmt.Errorf("fdlimit: setrlimit to %d: %w", want, err)
	}
	return before, Limits{Soft: uint64(rl.Cur), Hard: uint64(rl.Max)}, nil
}
