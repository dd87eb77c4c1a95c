package sim

import (
	"math/bits"
	"testing"
)

// The digest folds in a word at a time: every word changes it, and so
// does the order of two words.
func TestMixFoldsEveryWordInOrder(t *testing.T) {
	digest := func(words ...uint64) uint64 {
		w := New(Config{Seed: 1})
		for _, v := range words {
			w.mix(v)
		}
		return w.digest
	}
	words := []uint64{0, 1, 0xff, 0x100, 1 << 63, 0xdeadbeefcafef00d, ^uint64(0), 0x0102030405060708}
	base := digest(words...)
	for i := range words {
		for _, bit := range []int{0, 7, 31, 32, 63} {
			changed := append([]uint64(nil), words...)
			changed[i] ^= 1 << bit
			if digest(changed...) == base {
				t.Fatalf("word %d with bit %d flipped: same digest", i, bit)
			}
		}
		if i > 0 && words[i] != words[i-1] {
			swapped := append([]uint64(nil), words...)
			swapped[i], swapped[i-1] = swapped[i-1], swapped[i]
			if digest(swapped...) == base {
				t.Fatalf("words %d and %d swapped: same digest", i-1, i)
			}
		}
	}
	want := uint64(14695981039346656037)
	for _, v := range words {
		want = bits.RotateLeft64((want^v)*1099511628211, 29)
	}
	if base != want {
		t.Fatalf("digest %#x, want %#x", base, want)
	}
}
