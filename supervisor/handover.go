package supervisor

import (
	"fmt"
	"time"

	"github.com/actord/actord/actor"
)

// Handing a supervisor's remote children over to another supervisor: the
// old one lets go of them (Detach) and ends; the new one, started with
// Spec.Adopt, links to the ones still alive instead of starting them
// (docs/supervision.md, "Applications").

// Detach asks a supervisor to let go of its running remote children, for
// another supervisor to adopt them: each is unlinked (it gets no exit
// signal when the supervisor ends) and forgotten, neither stopped nor
// restarted. Its other children are stopped as by Shutdown. The reply is
// a []Detached, in start order, once that is done; the supervisor then
// refuses every request (ErrExiting) and restarts nothing, and should be
// stopped. A child whose unlink fails is not listed and is stopped.
// What keeps a detached child from running unsupervised for ever is the
// caller's to arrange (package daemon has its node hold it for a bounded
// time).
type Detach struct{}

// Detached is a remote child a supervisor let go of (Detach).
type Detached struct {
	ID   string    // its ChildSpec.ID
	Ref  actor.Ref // its instance
	Node string    // the address of its node (Candidates.Live's)
}

// Adopter may be implemented by a Cluster: a supervisor started with
// Spec.Adopt calls AdoptAsync for each child to adopt, with itself as
// owner, before it links to the child; done(nil) means the child is
// alive and now the owner's, an error that the supervisor starts the
// child afresh instead. done runs once, on any goroutine, and must not
// block. Without it the supervisor only links.
type Adopter interface {
	AdoptAsync(owner, child actor.Ref, timeout time.Duration, done func(error))
}

// detach carries out Detach.
func (s *sup) detach(c *actor.Context, p *pending) {
	var out []Detached
	for _, ch := range s.children {
		if ch.state != stRunning || !ch.spec.remote() || ch.ref.IsZero() {
			continue
		}
		ref := ch.ref
		if err := c.Unlink(ref); err != nil {
			continue // stopped below with the others
		}
		out = append(out, Detached{ID: ch.spec.ID, Ref: ref, Node: ch.node})
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
	}
	s.stopAll()
	s.ops = append(s.ops, s.doOp(func(*actor.Context) {
		s.exiting = true // nothing more: no request, no restart
		for _, ev := range s.deferred {
			ev.p.reply(nil, ErrExiting)
		}
		s.deferred = nil
		p.reply(out, nil)
	}))
}

// adoption returns the ref to adopt for ch instead of starting it, once:
// only the supervisor's first start of each child adopts.
func (s *sup) adoption(ch *child) (Detached, bool) {
	d, ok := s.spec.Adopt[ch.spec.ID]
	if !ok || d.Ref.IsZero() || !ch.spec.remote() || s.adopted[ch.spec.ID] {
		return Detached{}, false
	}
	if s.adopted == nil {
		s.adopted = map[string]bool{}
	}
	s.adopted[ch.spec.ID] = true
	return d, true
}

// adopt claims d through the Cluster (Adopter), if it can: the promise
// settles with d.Ref, or with why it was not adopted.
func (s *sup) adoptAsync(c *actor.Context, ch *child, d Detached) actor.Promise {
	p, settle := c.ExternalPromise()
	ad, ok := s.spec.Cluster.(Adopter)
	if !ok {
		settle(d.Ref, nil)
		return p
	}
	t := ch.spec.Remote.StartTimeout
	if t == 0 {
		t = DefaultRemoteStart
	}
	ad.AdoptAsync(c.Self(), d.Ref, t, func(err error) {
		if err != nil {
			settle(nil, fmt.Errorf("adopting %q (%v): %w", ch.spec.ID, d.Ref, err))
			return
		}
		settle(d.Ref, nil)
	})
	return p
}
