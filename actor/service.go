package actor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// loopService is the state a loop run by an external supervisor needs.
type loopService struct {
	mu     sync.Mutex // held while Serve runs the loop
	halted atomic.Bool
	cancel atomic.Pointer[context.CancelFunc]
}

// LoopService runs one loop of a System made with Config.ExternalLoops. It
// satisfies github.com/thejerf/suture/v4's Service interface, so a suture
// supervisor can run the loops and restart one whose goroutine died (a panic
// that escapes the loop: actor panics never do, they are recovered inside).
type LoopService struct{ ls *loopState }

// LoopServices returns one LoopService per loop, in loop order. They only
// make sense with Config.ExternalLoops (otherwise the System runs the loops
// itself and Serve returns an error at once).
func (s *System) LoopServices() []LoopService {
	out := make([]LoopService, len(s.loops))
	for i, ls := range s.loops {
		out[i] = LoopService{ls: ls}
	}
	return out
}

// Serve runs the loop on the calling goroutine until ctx is done (it then
// returns ctx's error; the loop keeps its queued events and may be served
// again) or the System shuts down (it then returns ErrShutdown, and so does
// any later Serve). At most one Serve of a loop runs at a time: a second one
// waits for the first to return. A panic that escapes the loop propagates to
// the caller, which may call Serve again: the loop resumes with the events
// still queued.
func (l LoopService) Serve(ctx context.Context) error {
	ls := l.ls
	if !ls.sys.cfg.ExternalLoops || ls.sys.cfg.Manual {
		return fmt.Errorf("actor: loop %d is not external (Config.ExternalLoops): %w", ls.id, ErrNotLocal)
	}
	svc := &ls.svc
	svc.mu.Lock()
	defer svc.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc.cancel.Store(&cancel)
	if svc.halted.Load() || ls.loop.Closed() {
		return ErrShutdown
	}
	err := ls.loop.Run(ctx)
	if svc.halted.Load() {
		return ErrShutdown
	}
	return err
}

// String names the service for suture's logs: "actor-loop-<index>".
func (l LoopService) String() string { return fmt.Sprintf("actor-loop-%d", l.ls.id) }

// ownLoops returns the loops the System runs on goroutines of its own.
func (s *System) ownLoops() []*loopState {
	if s.cfg.ExternalLoops {
		return nil
	}
	return s.loops
}

// haltServices makes every external Serve return and waits for it, so that
// the loops can be closed.
func (s *System) haltServices() {
	if !s.cfg.ExternalLoops || s.cfg.Manual {
		return
	}
	for _, ls := range s.loops {
		svc := &ls.svc
		svc.halted.Store(true)
		if c := svc.cancel.Load(); c != nil {
			(*c)()
		}
		svc.mu.Lock()
		//lint:ignore SA2001 a running Serve holds svc.mu: locking waits for it to return
		svc.mu.Unlock()
	}
}
