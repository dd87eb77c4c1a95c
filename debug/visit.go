package debug

import (
	"context"
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// Listing a loop's actors is for debuggers only, so package actor keeps it
// off its exported API and hands it out through internal/seam; what the
// debugger needs of it is declared here.

// actorInfo describes one actor of a loop.
type actorInfo = seam.ActorInfo[actor.Ref, actor.Actor]

// actorVisitor is the debugger seam of a System (seam.Debugger).
type actorVisitor interface {
	VisitActors(ctx context.Context, loop int, f func(actorInfo)) error
}

// visitActors runs f on loop i's goroutine for each actor of that loop, in
// slot order, and waits until it has or ctx is done (actor/inspect.go
// documents the rules f follows: it must not block nor keep ai.Actor).
func visitActors(ctx context.Context, sys *actor.System, i int, f func(ai actorInfo)) error {
	v, ok := seam.Debugger(sys).(actorVisitor)
	if !ok {
		return fmt.Errorf("debug: the actor runtime's debugger seam %T cannot list actors", seam.Debugger(sys))
	}
	return v.VisitActors(ctx, i, f)
}
