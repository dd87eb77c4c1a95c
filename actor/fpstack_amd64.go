package actor

import "unsafe"

// fpWalk records in pcs the return addresses of its caller and of the
// callers above it, by following the frame-pointer chain (Go keeps frame
// pointers on amd64), up to len(pcs) of them and only through frames that
// lie entirely below top, an address on the same goroutine stack above the
// frames wanted. It returns how many it recorded. It is the cheap way Go's
// execution tracer takes stacks: no unwinding tables are read (fpstack_amd64.s).
//
//go:noescape
func fpWalk(pcs []uintptr, top unsafe.Pointer) int

const haveFPWalk = true

// fpWalkTo is fpWalk with no bound but a return address: it stops after
// recording stop (or at the end of the chain, or with pcs full). Each
// frame pointer it follows must lie above the last, so it only reads the
// goroutine's own stack.
//
//go:noescape
func fpWalkTo(pcs []uintptr, stop uintptr) int
