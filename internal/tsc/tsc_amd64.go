package tsc

// rdtsc reads the time-stamp counter (tsc_amd64.s).
func rdtsc() int64

// cpuid runs CPUID with EAX=op, ECX=op2 (tsc_amd64.s).
func cpuid(op, op2 uint32) (eax, ebx, ecx, edx uint32)

// haveInvariantTSC reports whether the TSC ticks at a constant rate in all
// power states (CPUID 80000007H, EDX bit 8), so that it can time work.
func haveInvariantTSC() bool {
	if max, _, _, _ := cpuid(0x80000000, 0); max < 0x80000007 {
		return false
	}
	_, _, _, edx := cpuid(0x80000007, 0)
	return edx&(1<<8) != 0
}
