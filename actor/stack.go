package actor

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
)

// lazyDepth is how many frames Config.LazyStacks records: enough for the
// panicking function and the handler that called it, cheap to take.
const lazyDepth = 16

// crashStack records the stack of a panic being recovered: as text, or as
// program counters with Config.LazyStacks.
func (s *System) crashStack() ([]byte, []uintptr) {
	if !s.cfg.LazyStacks {
		return debug.Stack(), nil
	}
	// Skip runtime.Callers, crashStack, crash (or start's recover) and the
	// deferred recover and gopanic frames: the stack starts at the function
	// that panicked.
	pcs := make([]uintptr, lazyDepth)
	n := runtime.Callers(5, pcs)
	return nil, pcs[:n:n]
}

// StackText returns the stack of the crash as text: Stack, or, with
// Config.LazyStacks, PCs formatted now.
func (c *Crash) StackText() []byte { return stackText(c.Stack, c.PCs) }

func stackText(stack []byte, pcs []uintptr) []byte {
	if stack != nil || len(pcs) == 0 {
		return stack
	}
	var b bytes.Buffer
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return b.Bytes()
}
