package remote

import "syscall"

// quickAckOff leaves the kernel's quick-ack mode on the socket fd, so that
// it acknowledges every second small segment at a read instead of each.
func quickAckOff(fd int) {
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
}
