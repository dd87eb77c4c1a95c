package debug

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear histogram of non-negative durations (or any
// non-negative int64), in nanoseconds: each power of two is split into
// SubBuckets linear buckets, so a recorded value lands in a bucket whose
// bounds are within 1/SubBuckets (12.5%) of it, from 1 ns to ~292 years, in
// a fixed 4 KiB with no allocation. It is what the recorder keeps per loop
// for handler latencies; it is small enough that a sample costs a few
// nanoseconds. A Histogram is not safe for concurrent use: the recorder
// guards its own.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64
	max    int64
}

// SubBuckets is the number of linear buckets per power of two.
const SubBuckets = 1 << subBits

const (
	subBits     = 3
	histBuckets = (64 - subBits + 1) * SubBuckets
)

// bucketOf maps v >= 0 to its bucket: values below SubBuckets get one
// bucket each; above, bucket = (exponent, top subBits bits of the mantissa).
func bucketOf(v int64) int {
	if v < SubBuckets {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // 2^e <= v < 2^(e+1), e >= subBits
	sub := int(uint64(v)>>(uint(e)-subBits)) & (SubBuckets - 1)
	return (e-subBits+1)*SubBuckets + sub
}

// bucketBounds returns the smallest and the largest value of bucket b.
func bucketBounds(b int) (lo, hi int64) {
	if b < SubBuckets {
		return int64(b), int64(b)
	}
	e := b/SubBuckets + subBits - 1
	sub := int64(b % SubBuckets)
	width := int64(1) << uint(e-subBits)
	lo = int64(1)<<uint(e) + sub*width
	if lo < 0 { // the top bucket of int64
		return lo, math.MaxInt64
	}
	return lo, lo + width - 1
}

// Record adds one value (negative values count as 0).
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += uint64(v)
	if v > h.max {
		h.max = v
	}
}

// RecordDuration adds one duration.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Sum returns the sum of the values recorded.
func (h *Histogram) Sum() uint64 { return h.sum }

// Max returns the largest value recorded (0 if none).
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns an estimate of the q-quantile (0 <= q <= 1) of the
// values recorded: the upper bound of the bucket that holds it, capped by
// Max, so it is never below the true quantile and at most 12.5% above it. It
// returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q < 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(b)
			return min(hi, h.max)
		}
	}
	return h.max
}

// CountBelow returns how many recorded values are <= v when v+1 is a bucket
// boundary (a power of two minus one, say); for other v it counts whole
// buckets whose upper bound is <= v, so it never over-counts.
func (h *Histogram) CountBelow(v int64) uint64 {
	var n uint64
	for b, c := range h.counts {
		if _, hi := bucketBounds(b); hi > v {
			break
		}
		n += c
	}
	return n
}

// Merge adds the values of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Reset forgets every value.
func (h *Histogram) Reset() { *h = Histogram{} }
