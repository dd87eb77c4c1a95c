package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
)

// Remote children: a child created on another node from a registered kind,
// supervised through its link and the acknowledged lifecycle operations that
// every Ref offers (docs/supervision.md, "Remote children").

// Cluster is where a supervisor creates its remote children: the nodes it
// may place them on and the way to spawn there. remote.NodeSet implements
// it over a remote.Node.
type Cluster interface {
	// Spawn creates an actor of kind, registered on the node at addr, with
	// args, and returns its ref. It may block until that node answers; the
	// supervisor calls it on the system's worker pool (actor.Context.Blocking),
	// never on its loop, with a context that ends after Remote.StartTimeout.
	// A Cluster that also has SpawnAsync(addr, kind string, args any,
	// timeout time.Duration, done func(actor.Ref, error)) is called
	// through that instead, and no worker waits; one that has
	// SpawnLinkAsync(owner actor.Ref, addr, kind string, args any,
	// timeout time.Duration, done func(actor.Ref, error)), as
	// remote.NodeSet does, through that, with the supervisor as the
	// owner: the child is linked to it as it is made, so a start whose
	// answer is lost, or a supervisor that ends while a start is under
	// way, leaves no child running unsupervised.
	Spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error)
	// Live returns the addresses of the nodes a child may be placed on now:
	// those believed up, in a stable order. It is called on the
	// supervisor's loop, so it must not block.
	Live() []string
}

// Remote places a child on another node of Spec.Cluster. The child is
// created there from a registered kind at every start and restart (a Go
// factory cannot cross machines): a restart is always a fresh spawn, on the
// node the placement picks then, and the child's refs change.
type Remote struct {
	// Kind is the kind to spawn, registered on the target nodes
	// (remote.Node.RegisterKind); set, it makes the child remote.
	Kind string
	// Args are the kind's arguments; their type must be registered on both
	// nodes, as any message type.
	Args any
	// Node, if set, is the address of the only node the child may run on.
	// While that node is down the child's starts fail, and are retried as
	// any failing start (each attempt counts towards the restart
	// intensity), after a pause: 100 ms, doubling to 2 s.
	Node string
	// Place picks the node among the live ones when Node is empty. Default
	// Spread.
	Place Placement
	// StartTimeout bounds one start (the spawn on the other node). Default
	// DefaultRemoteStart.
	StartTimeout time.Duration
}

// DefaultRemoteStart bounds a remote child's start when
// Remote.StartTimeout is zero.
const DefaultRemoteStart = 15 * time.Second

// Placement picks the node of a remote child among the candidates: the
// address of one of c.Live, or an error (the start then fails, and is
// retried as any failing start). It runs on the supervisor's loop.
type Placement func(c Candidates) (string, error)

// Candidates is what a Placement chooses from.
type Candidates struct {
	// Child is the child's ID.
	Child string
	// Live is Cluster.Live(): the nodes believed up, never empty.
	Live []string
	// Previous is the node of the child's previous instance, or of its
	// last start attempt if that failed ("" at its first start).
	Previous string
	// Reason is why that instance ended (the exit reason: one matching
	// remote.ErrNodeDown when its node was lost) or that attempt failed;
	// nil when the supervisor itself took it down (a group restart).
	Reason error
	// Placed counts, by node, the running remote children of this
	// supervisor (the one being placed excluded).
	Placed map[string]int
}

// ErrNoNode means a remote child had no node to start on: Cluster.Live was
// empty, or the Placement picked none of the live nodes. The start fails and
// is retried as any failing start.
var ErrNoNode = errors.New("supervisor: no live node for a remote child")

// Spread is the default Placement: the live node with the fewest of the
// supervisor's running remote children, the first in Live's order among
// equals, and never the previous instance's node while another is live. A
// restart thus moves the child: its node may be the cause (a node lost but
// not yet known down, a node that fails its starts), and a restart elsewhere
// does not depend on how soon the node's failure is detected.
func Spread(c Candidates) (string, error) {
	best, bestN := "", 0
	for _, a := range c.Live {
		if a == c.Previous && len(c.Live) > 1 {
			continue
		}
		if n := c.Placed[a]; best == "" || n < bestN {
			best, bestN = a, n
		}
	}
	if best == "" {
		return "", ErrNoNode
	}
	return best, nil
}

// RemoteWorker returns the ChildSpec of a permanent worker child created on
// another node from r.
func RemoteWorker(id string, r Remote) ChildSpec {
	return ChildSpec{ID: id, Remote: r}
}

// remote reports whether the child is placed on another node.
func (cs ChildSpec) remote() bool { return cs.Remote.Kind != "" }

// check returns the field and reason of a bad Remote of cs, or nil.
func (r Remote) check(cs ChildSpec, sp *Spec) *[2]string {
	bad := func(field, reason string) *[2]string { return &[2]string{field, reason} }
	switch {
	case r.Kind == "" && (r.Node != "" || r.Args != nil || r.Place != nil || r.StartTimeout != 0):
		return bad("Remote.Kind", "empty while other Remote fields are set")
	case r.Kind == "":
		return nil
	case cs.Start != nil:
		return bad("Start", "must be nil for a remote child (it is made from Remote.Kind)")
	case len(cs.Options) > 0:
		return bad("Options", "spawn options do not apply to a remote child")
	case r.StartTimeout < 0:
		return bad("Remote.StartTimeout", fmt.Sprintf("%v is negative", r.StartTimeout))
	case sp.Cluster == nil:
		return bad("Remote", "needs a supervisor whose Spec.Cluster is set")
	}
	return nil
}

// place picks the node for ch's next instance.
func (s *sup) place(ch *child) (string, error) {
	r := ch.spec.Remote
	if r.Node != "" {
		return r.Node, nil
	}
	live := s.spec.Cluster.Live()
	if len(live) == 0 {
		return "", fmt.Errorf("%w: child %q: the cluster has no live node", ErrNoNode, ch.spec.ID)
	}
	placed := make(map[string]int, len(live))
	for _, x := range s.children {
		if x != ch && x.state == stRunning && x.spec.remote() {
			placed[x.node]++
		}
	}
	place := r.Place
	if place == nil {
		place = Spread
	}
	addr, err := place(Candidates{Child: ch.spec.ID, Live: live, Previous: ch.node, Reason: ch.ended, Placed: placed})
	if err != nil {
		return "", fmt.Errorf("%w: child %q: placement: %w", ErrNoNode, ch.spec.ID, err)
	}
	for _, a := range live {
		if a == addr {
			return addr, nil
		}
	}
	return "", fmt.Errorf("%w: child %q: placement picked %q, not a live node", ErrNoNode, ch.spec.ID, addr)
}

// asyncCluster is a Cluster that spawns without a waiting goroutine:
// done runs once, on any goroutine, and must not block.
type asyncCluster interface {
	SpawnAsync(addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error))
}

// linkingCluster is a Cluster that spawns without a waiting goroutine
// and links the child to owner as it makes it (remote.NodeSet), as
// Erlang's spawn_link.
type linkingCluster interface {
	SpawnLinkAsync(owner actor.Ref, addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error))
}

// remoteSpawn starts a fresh instance of the remote child ch: the spawn
// is answered on another goroutine (or, with a Cluster that only has the
// blocking Spawn, runs on the worker pool), so the loop goes on meanwhile;
// the supervisor holds its other work until the promise settles (see
// run). A failure to place the child settles the promise at once.
func (s *sup) remoteSpawn(c *actor.Context, ch *child) actor.Promise {
	addr, err := s.place(ch)
	if err == nil {
		ch.node = addr
	}
	id, r, cl := ch.spec.ID, ch.spec.Remote, s.spec.Cluster
	t := r.StartTimeout
	if t == 0 {
		t = DefaultRemoteStart
	}
	lc, linking := cl.(linkingCluster)
	ac, async := cl.(asyncCluster)
	if linking || async {
		p, settle := c.ExternalPromise()
		if err != nil {
			settle(nil, err)
			return p
		}
		done := func(ref actor.Ref, err error) {
			if err != nil {
				settle(nil, fmt.Errorf("remote start of %q (kind %q) on %s: %w", id, r.Kind, addr, err))
				return
			}
			settle(ref, nil)
		}
		if linking {
			lc.SpawnLinkAsync(c.Self(), addr, r.Kind, r.Args, t, done)
		} else {
			ac.SpawnAsync(addr, r.Kind, r.Args, t, done)
		}
		return p
	}
	return c.Blocking(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), t)
		defer cancel()
		ref, err := cl.Spawn(ctx, addr, r.Kind, r.Args)
		if err != nil {
			return nil, fmt.Errorf("remote start of %q (kind %q) on %s: %w", id, r.Kind, addr, err)
		}
		return ref, nil
	})
}

// adopt handles a message that is a Ref equal to its sender: a supervisor
// of another node that started this one as its child introduces itself,
// after linking to it. A supervisor spawned by a remote spawn has no parent
// on its node, and would otherwise take its parent's exit signal (it traps
// exits) for a stranger's and ignore it, leaving its subtree running when
// its parent ends or its parent's node is lost. Once adopted, it follows
// that actor's exit as OTP's supervisor follows its parent's. A bare Ref is
// used because it is the one message type every node decodes without
// registration. It confers nothing: whoever holds this supervisor's ref may
// stop it anyway. Only the first introduction of a parentless supervisor
// counts.
func (s *sup) adopt(c *actor.Context, r actor.Ref) {
	if r == c.Sender() && r.IsRemote() && c.Parent().IsZero() && s.adoptedBy.IsZero() {
		s.adoptedBy = r
	}
}
