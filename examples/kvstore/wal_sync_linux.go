package kvstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), not its times: one disk flush for an append.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
