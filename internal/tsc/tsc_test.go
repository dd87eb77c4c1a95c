package tsc

import (
	"testing"
	"time"
)

// TestSinceFollowsTheClock checks the calibration's unit: an interval
// timed in ticks reads as the monotonic clock's, within a factor of two
// either way (a loop's slow-pass test and a hold's expiry rest on it).
func TestSinceFollowsTheClock(t *testing.T) {
	Calibrate()
	for try := 0; ; try++ {
		m0 := time.Now()
		t0 := Read()
		time.Sleep(20 * time.Millisecond)
		got := Since(t0)
		want := time.Since(m0)
		if got > want/2 && got < want*2 {
			if d := Ticks(want); d <= 0 || Since(Read()-d) < want/2 {
				t.Fatalf("Ticks(%v) = %d: not %v back", want, d, want)
			}
			return
		}
		if try == 4 { // a descheduling between two readings skews one try, not five
			t.Fatalf("an interval of %v timed as %v (TSC %v, %v ns per tick)", want, got, OK(), NsPerTick())
		}
	}
}

// TestSinceNeverNegative: a start after the reading is no time at all.
func TestSinceNeverNegative(t *testing.T) {
	Calibrate()
	if d := Since(Read() + Ticks(time.Hour)); d != 0 {
		t.Fatalf("Since of a later start = %v, want 0", d)
	}
}

func BenchmarkRead(b *testing.B) {
	Calibrate()
	var s int64
	for range b.N {
		s += Read()
	}
	_ = s
}

func BenchmarkTimeSince(b *testing.B) {
	var s time.Duration
	for range b.N {
		s += time.Since(monoBase)
	}
	_ = s
}

func BenchmarkTimeNow(b *testing.B) {
	var s int64
	for range b.N {
		s += time.Now().UnixNano()
	}
	_ = s
}
