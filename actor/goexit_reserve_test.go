package actor

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// A handler that defers its answer and then calls runtime.Goexit ends the
// loop's goroutine; served again (ExternalLoops), the loop answers the
// next ask to another actor: nothing of the first handler's context is
// left for the next message (a Defer made there would make that ask
// deferred, and never answered).
func TestGoexitAfterDeferThenServedAgain(t *testing.T) {
	s := tsSystem(t, Config{Loops: 1, Watchdog: -1, ExternalLoops: true})
	svc := s.LoopServices()[0]
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = svc.Serve(context.Background())
	}()
	once := false
	a := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) {
		if msg == "exit" && !once {
			once = true
			c.Defer()
			runtime.Goexit()
		}
		return msg, nil
	}))
	b := tsSpawn(t, s, tsEcho())
	// Sent from an actor of the loop, so that the message is not
	// delivered again after the Goexit.
	fw := tsSpawn(t, s, tsFn(func(c *Context, msg any) (any, error) { return nil, c.Send(a, msg) }))
	if err := s.Send(fw, "exit"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop's goroutine did not end with the Goexit")
	}
	go func() { _ = svc.Serve(context.Background()) }() // until the cleanup's Shutdown
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	if v, err := s.Ask(actx, b, "x"); err != nil || v != "x" {
		t.Fatalf("ask after the loop was served again: %v, %v", v, err)
	}
}
