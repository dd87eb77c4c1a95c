//go:build !amd64

package debug

import "unsafe"

func prefetch2(unsafe.Pointer) {}
