//go:build !linux

package remote

// quickAckOff does nothing: quick acks are a Linux socket option.
func quickAckOff(int) {}
