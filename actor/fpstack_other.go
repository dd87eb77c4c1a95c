//go:build !amd64

package actor

import "unsafe"

// fpWalk is implemented on amd64 only; elsewhere stacks are taken with
// runtime.Callers.
func fpWalk([]uintptr, unsafe.Pointer) int { return 0 }

func fpWalkTo([]uintptr, uintptr) int { return 0 }

const haveFPWalk = false
