package actor

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// tsFrames returns the function names of a crash's lazy stack, innermost
// first.
func tsFrames(pcs []uintptr) []string {
	var names []string
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		names = append(names, f.Function)
		if !more {
			return names
		}
	}
}

// A lazy crash stack of a message's handler ends at invokeTop's call of
// the handler, as receive's ends at receive: it shows the handler's
// frames, not the runtime's and the loop's below them (deliver, Handle,
// the pass, Run), which are the same for every crash and would push the
// handler's own out of the lazyDepth frames kept. Both walks are checked:
// the first crash's, which finds invokeTop's call by name, and the later
// ones, which stop at its cached return address.
func TestLazyStackEndsAtTheHandlerCall(t *testing.T) {
	if !haveFPWalk {
		t.Skip("lazy stacks are taken with runtime.Callers here, not cut")
	}
	crashes := make(chan *Crash, 2)
	s := tsSystem(t, Config{Loops: 1, LazyStacks: true, OnCrash: func(c *Crash) { crashes <- c }})
	handlerRet.Store(0) // as before the first crash: the walk finds invokeTop
	for _, walk := range []string{"first crash", "later crash"} {
		a := tsSpawn(t, s, tsFn(func(*Context, any) (any, error) { panic("cut") }))
		if _, err := tsAsk(t, s, a, 1); !errors.Is(err, ErrCrashed) {
			t.Fatalf("%s: ask: %v, want ErrCrashed", walk, err)
		}
		cr := tsRecv(t, crashes, "the crash")
		names := tsFrames(cr.PCs)
		const top = "github.com/actord/actord/actor.(*loopState).invokeTop"
		if !strings.Contains(names[0], "TestLazyStackEndsAtTheHandlerCall") || names[len(names)-1] != top {
			t.Fatalf("%s: the stack runs from %s to %s, want from the panicking function to %s:\n%s",
				walk, names[0], names[len(names)-1], top, cr.StackText())
		}
		if walk == "first crash" && handlerRet.Load() == 0 {
			t.Fatal("the first crash did not cache invokeTop's return address")
		}
	}
}
