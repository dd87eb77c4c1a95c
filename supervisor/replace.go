package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
)

// ReplaceChild asks a supervisor to take New, an instance already made
// elsewhere, as its running remote child ID in place of Old: its instance
// moved to another node with its state (docs/upgrades.md, "Moving a
// child"). The supervisor links New, unlinks Old and records Node (New's
// node address) as the child's node; it is not a restart (the intensity
// does not count it) and Old's later end is not the child's. The child's
// later restarts are placed as its spec says. It is refused
// (ErrNotReplaced) unless ID is a running remote child whose instance is
// Old: a child that ended or was restarted meanwhile keeps what it runs,
// and New is the caller's to stop. It is refused too once Deadline (if
// set) has passed by the supervisor's clock when it is processed: a
// supervisor defers requests while an operation is under way, and a
// caller that gave up waiting may have stopped New and resumed Old.
// Answered with nil once done.
type ReplaceChild struct {
	ID       string
	Old, New actor.Ref
	Node     string
	Deadline time.Time
}

// ErrNotReplaced is ReplaceChild's refusal: the child is not, or no
// longer, a running remote child whose instance is Old.
var ErrNotReplaced = errors.New("supervisor: child not replaced")

// errReplaceLate refuses a ReplaceChild processed after its Deadline.
var errReplaceLate = errors.New("the request's deadline has passed")

func (s *sup) onReplaceChild(c *actor.Context, m ReplaceChild, p *pending) {
	ch := s.byID(m.ID)
	switch {
	case ch == nil || s.simple():
		p.reply(nil, fmt.Errorf("%w: %w: %q", ErrNotReplaced, ErrNotFound, m.ID))
		return
	case !ch.spec.remote():
		p.reply(nil, fmt.Errorf("%w: %q is not a remote child", ErrNotReplaced, m.ID))
		return
	case ch.state != stRunning || ch.ref != m.Old:
		p.reply(nil, fmt.Errorf("%w: %q does not run %v now (it ended or was restarted)", ErrNotReplaced, m.ID, m.Old))
		return
	case m.New.IsZero() || m.New == m.Old:
		p.reply(nil, fmt.Errorf("%w: no new instance", ErrNotReplaced))
		return
	case !m.Deadline.IsZero() && !c.Now().Before(m.Deadline):
		p.reply(nil, fmt.Errorf("%w: %q: %w", ErrNotReplaced, m.ID, errReplaceLate))
		return
	}
	if err := c.Link(m.New); err != nil {
		p.reply(nil, fmt.Errorf("%w: linking the new instance: %w", ErrNotReplaced, err))
		return
	}
	_ = c.Unlink(m.Old)
	s.setRef(ch, m.New)
	ch.node, ch.ended = m.Node, nil
	if ch.spec.Supervisor {
		_ = c.Send(m.New, c.Self()) // introduce itself as its parent (see adopt)
	}
	p.reply(nil, nil)
}
