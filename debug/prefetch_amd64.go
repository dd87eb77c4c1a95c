package debug

import "unsafe"

// prefetch2 asks for the two cache lines at p, without waiting
// for them (prefetch_amd64.s).
//
//go:noescape
func prefetch2(p unsafe.Pointer)
