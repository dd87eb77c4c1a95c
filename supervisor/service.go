package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/thejerf/suture/v4"

	"github.com/actord/actord/actor"
)

// ServiceTree is a daemon's tree of goroutine-level services, run by
// suture/v4: a root supervisor with a "loops" supervisor under it that runs
// every loop of an actor.System made with actor.Config{ExternalLoops: true}.
// Other goroutine-level services (the network engine, the debug endpoint)
// go under Root with Root.Add.
//
// What suture catches: a loop goroutine that dies from a panic escaping the
// loop (a panicking Config.Hook, a bug in the runtime), which it logs
// (suture.EventServicePanic) and restarts (the loop resumes with its queued
// events); a loop's Serve returning early. What it does not see: actor
// panics, which the loop recovers and hands to the actor supervisors of this
// package; goroutines an actor starts itself; a loop stuck in a long handler
// (the actor.Config.Watchdog reports those). Suture's intensity is its own
// (a decaying failure count with a back-off, never giving up), not MaxR/MaxT.
type ServiceTree struct {
	Root  *suture.Supervisor // "actord"; Serve it, cancel its context to stop the tree
	Loops *suture.Supervisor // "loops", under Root
}

// NewServiceTree builds the tree for sys with spec for both supervisors
// (zero fields take suture's defaults). sys must have been made with
// actor.Config.ExternalLoops. Shut sys down (actor.System.Shutdown) before
// cancelling the tree's context: shutting down stops the actors, which
// needs the loops running, and then makes the loop services end for good.
func NewServiceTree(sys *actor.System, spec suture.Spec) *ServiceTree {
	t := &ServiceTree{Root: suture.New("actord", spec), Loops: suture.New("loops", spec)}
	t.Root.Add(t.Loops)
	for _, l := range sys.LoopServices() {
		t.Loops.Add(LoopService{l})
	}
	return t
}

// LoopService adapts an actor.LoopService to suture: once the System has
// shut down, the loop ends with suture.ErrDoNotRestart.
type LoopService struct{ actor.LoopService }

// Serve runs the loop; see actor.LoopService.Serve.
func (l LoopService) Serve(ctx context.Context) error {
	err := l.LoopService.Serve(ctx)
	if errors.Is(err, actor.ErrShutdown) {
		return fmt.Errorf("%w: %w", suture.ErrDoNotRestart, err)
	}
	return err
}
