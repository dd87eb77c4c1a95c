package kvstore

import (
	"time"

	"github.com/actord/actord/actor"
)

// DirectoryIdle is how long a directory actor waits for its DirRequest
// before it stops by itself.
const DirectoryIdle = time.Minute

// dirIdle stops an unused directory actor.
type dirIdle struct{}

// directory is the short-lived actor spawned through DirectoryKind: it
// answers one DirRequest and stops, so a client that dials leaves nothing
// behind on the daemon.
type directory struct{ rep DirReply }

// Start arms the idle timer.
func (d *directory) Start(c *actor.Context) error {
	c.After(DirectoryIdle, dirIdle{})
	return nil
}

// Receive answers DirRequest and stops.
func (d *directory) Receive(c *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case DirRequest:
		_ = c.Stop(c.Self(), nil)
		return d.rep, nil
	case dirIdle:
		_ = c.Stop(c.Self(), nil)
		return nil, nil
	}
	return nil, actor.ErrUnknownMessage
}
