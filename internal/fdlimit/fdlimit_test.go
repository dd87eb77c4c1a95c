//go:build unix

package fdlimit

import (
	"syscall"
	"testing"
)

// Raise lifts a lowered soft limit to the hard limit and reports both.
func TestRaise(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = min(orig.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the limit: %v", err)
	}
	before, after, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if before.Soft != uint64(low.Cur) || before.Hard != uint64(orig.Max) {
		t.Fatalf("before = %+v, want soft %d hard %d", before, low.Cur, orig.Max)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if after.Soft != uint64(now.Cur) || now.Cur <= low.Cur && orig.Max > low.Cur {
		t.Fatalf("after = %+v, limit now %d (was %d, hard %d)", after, now.Cur, low.Cur, orig.Max)
	}
	// Raised already: nothing changes.
	if b2, a2, err := Raise(); err != nil || b2 != a2 {
		t.Fatalf("second Raise = %+v, %+v, %v", b2, a2, err)
	}
}
