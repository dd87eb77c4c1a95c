package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// RemoteWorkers places some of a pool's workers on other nodes of a
// cluster, created there from a registered kind (a Go factory cannot cross
// machines). A remote worker is reached by an ask whose reply the pool
// relays (Forward stays on one node): it costs a promise on the pool's
// loop, and a one-way message becomes an ask whose reply is dropped. Its
// load is the pool's asks to it not answered yet. It is linked to the
// pool: when its node is lost it ends with a node-down reason, the asks in
// flight to it fail with that error, and it is replaced (on a live node).
// It is not restarted in place: a remote crash ends it, and it is replaced
// as a worker that ended.
type RemoteWorkers struct {
	// Cluster is where remote workers are created (remote.NodeSet);
	// required.
	Cluster supervisor.Cluster
	// Kind is the kind registered on the other nodes; required. Messages to
	// its workers must be registered types, as any remote message.
	Kind string
	// Args are the kind's arguments.
	Args any
	// StartTimeout bounds a remote start. Default
	// supervisor.DefaultRemoteStart.
	StartTimeout time.Duration
	// LocalMax is how many workers go on this node before any goes to
	// another: 0 puts every worker on other nodes. A worker goes to the
	// node with the fewest of the pool's workers (the first of
	// Cluster.Live on a tie); with no live node, it goes on this node.
	LocalMax int
}

func (rw *RemoteWorkers) validate() error {
	if rw == nil {
		return nil
	}
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(f, a...)) }
	switch {
	case rw.Cluster == nil:
		return bad("Remote.Cluster: nil")
	case rw.Kind == "":
		return bad("Remote.Kind: empty")
	case rw.StartTimeout < 0:
		return bad("Remote.StartTimeout %v is negative", rw.StartTimeout)
	case rw.LocalMax < 0:
		return bad("Remote.LocalMax %d is negative", rw.LocalMax)
	}
	return nil
}

// lostRemote reports whether an ask to a remote worker failed because the
// worker or its node was gone (not with the worker's own answer).
func lostRemote(err error) bool {
	return err != nil && (errors.Is(err, remote.ErrNodeDown) || errors.Is(err, actor.ErrDead))
}

// locals is the number of workers on this node, starting ones included.
func (r *router) locals() int {
	n := 0
	for _, m := range r.members {
		if !m.remote {
			n++
		}
	}
	for _, lp := range r.starting {
		if lp >= 0 {
			n++
		}
	}
	return n
}

func (r *router) localMax() int { return r.cfg.Remote.LocalMax }

// pickNode returns the live node with the fewest of the pool's workers, or
// "" when none is live.
func (r *router) pickNode() string {
	live := r.cfg.Remote.Cluster.Live()
	if len(live) == 0 {
		return ""
	}
	count := make(map[string]int, len(live))
	for _, m := range r.members {
		if m.remote {
			count[m.node]++
		}
	}
	for _, n := range r.startingNode {
		count[n]++
	}
	best := live[0]
	for _, n := range live[1:] {
		if count[n] < count[best] {
			best = n
		}
	}
	return best
}

// asyncSpawner is a Cluster that spawns without a waiting goroutine, as
// remote.NodeSet does.
type asyncSpawner interface {
	SpawnAsync(addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error))
}

// spawnRemote starts worker id on node.
func (r *router) spawnRemote(c *actor.Context, id uint64, node string) {
	rw := r.cfg.Remote
	r.starting[id] = -1
	r.startingNode[id] = node
	timeout := rw.StartTimeout
	if timeout == 0 {
		timeout = supervisor.DefaultRemoteStart
	}
	// Tracked as soon as it runs, from the spawn's goroutine: a router that
	// ends before it learns of the worker (its continuation dropped) has a
	// successor stop it, or is succeeded by one that does (an orphan).
	pl, epoch := r.p, r.epoch
	keep := func(ref actor.Ref, err error) {
		if err == nil && !ref.IsZero() && !pl.track(ref, nil, epoch) {
			pl.orphan(ref)
		}
	}
	var prom actor.Promise
	if sa, ok := rw.Cluster.(asyncSpawner); ok {
		p, resolve := c.ExternalPromise()
		sa.SpawnAsync(node, rw.Kind, rw.Args, timeout, func(ref actor.Ref, err error) { keep(ref, err); resolve(ref, err) })
		prom = p
	} else {
		prom = c.Blocking(func() (any, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			ref, err := rw.Cluster.Spawn(ctx, node, rw.Kind, rw.Args)
			keep(ref, err)
			return ref, err
		})
	}
	prom.Then(func(c *actor.Context, v any, err error) {
		if ref, ok := v.(actor.Ref); ok && err == nil {
			// Linked from here: its node's loss or its end reaches the
			// pool as an exit signal (trapped).
			if lerr := c.Link(ref); lerr != nil {
				r.p.untrack(ref)
				c.StopAsync(ref, actor.ErrShutdown, r.cfg.StopTimeout)
				err = fmt.Errorf("pool %s: link to the remote worker: %w", r.cfg.Name, lerr)
			}
		}
		r.started(c, &member{id: id, loop: -1, remote: true, node: node}, v, err)
	})
}
