package sim

import (
	"encoding/binary"
	"hash/fnv"
	"testing"
)

// The digest is FNV-1a over the little-endian bytes of every word mixed
// in: what hash/fnv computes over them, so that a faster mix cannot change
// a run's digest.
func TestMixIsFNV1a(t *testing.T) {
	w := New(Config{Seed: 1})
	h := fnv.New64a()
	for i, v := range []uint64{0, 1, 0xff, 0x100, 1 << 63, 0xdeadbeefcafef00d, ^uint64(0), 0x0102030405060708} {
		w.mix(v)
		_, _ = h.Write(binary.LittleEndian.AppendUint64(nil, v))
		if w.digest != h.Sum64() {
			t.Fatalf("after word %d (%#x): digest %#x, FNV-1a %#x", i, v, w.digest, h.Sum64())
		}
	}
}
