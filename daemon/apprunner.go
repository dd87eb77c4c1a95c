package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// The runner: an application granted to this daemon becomes a root
// supervisor whose children are placed over the cluster's daemons.

// appRunner starts and stops applications for the driver, on its loop
// (driver.Runner, driver.Resetter, driver.Handler). It outlives the
// driver's instances: every new one resets it.
type appRunner struct {
	d         *Daemon
	log       *slog.Logger
	stopAfter time.Duration
	insts     map[string]*appInstance
	handing   map[string]*handOff // applications being handed over (HandOver)
}

// appInstance is an application granted to this daemon.
type appInstance struct {
	gen      uint64
	spec     supervisor.Spec
	slots    map[string]*childSlot // the children's kinds, by name (rolling upgrades change them)
	ref      actor.Ref             // the root supervisor, zero while (re)starting
	cluster  *appCluster           // the root's, closed when the root ends or is ended
	failures int                   // starts in a row that ended early (see backoff)
	started  time.Time             // when the running root was spawned (the loop's clock)
	settled  time.Duration         // waited for the gateways to be known
	// claims are the holds' claims of the children to adopt (a
	// handover); abandoning, that the root waits for the held children
	// it will not adopt to be killed.
	claims     map[actor.Ref]string
	abandoning bool
}

// retryStart starts a granted application again after its root ended by
// itself or failed to start.
type retryStart struct {
	app  string
	inst *appInstance
}

// Start implements driver.Runner: the root supervisor is spawned as the
// driver's child and linked to it, so it follows the driver's end.
// Reset ends it when the driver crashes (restarted in place, no exit).
func (r *appRunner) Start(c *actor.Context, g appreg.Grant) {
	spec, err := decodeAppSpec(g.Spec)
	var sp supervisor.Spec
	var slots map[string]*childSlot
	if err == nil {
		sp, slots, err = r.supervisorSpec(spec)
	}
	if err != nil {
		// Specs are checked at deploy: one that fails here was written by
		// another version or another daemon's kinds. Run nothing.
		r.log.Error("applications: granted application has an unusable spec; not started", "app", g.App, "err", err)
		return
	}
	var ad adoption
	if g.Handover != nil {
		// Started for a handover: the children the old root let go of
		// are adopted, not started (apphandover.go).
		ad = r.adoptions(g.App, g.Handover, sp, slots)
		sp.Adopt = ad.adopt
	}
	if h, ok := r.handing[g.App]; ok {
		// An earlier handover from here has ended: its children were
		// adopted, or the application came back here without (its new
		// holder lost, the registry failed it over): those still held,
		// unless this start adopts them, are dropped now rather than
		// run beside the ones this root starts afresh.
		delete(r.handing, g.App)
		r.d.apps.setHandedOff(g.App, nil)
		h.watch.end()
		h.aborted = true
		if !h.holding {
			adopted := map[actor.Ref]bool{}
			for _, k := range sp.Adopt {
				adopted[k.Ref] = true
			}
			var drop []heldKid
			for _, k := range h.held {
				if !adopted[k.ref] {
					drop = append(drop, k)
				}
			}
			r.d.dropHeld(drop, nil)
		}
	}
	inst := &appInstance{gen: g.Gen, spec: sp, slots: slots, claims: ad.claims}
	r.insts[g.App] = inst
	if len(ad.unused) > 0 {
		// Held children it will not adopt are killed before the root
		// starts them afresh.
		inst.abandoning = true
		self := c.Self()
		go func() {
			r.d.abandonAll(ad.unused)
			_ = r.d.sys.Send(self, abandoned{app: g.App, inst: inst})
		}()
		return
	}
	r.spawn(c, g.App, inst)
}

// abandoned tells the runner that the held children a start does not
// adopt are killed (or not confirmed: abandonKid): the root may start.
type abandoned struct {
	app  string
	inst *appInstance
}

// settleFor bounds how long an application's start waits for this daemon
// to know the gateways of the cluster's live members (just after a start
// or a join): its children are placed over the daemons known then.
const settleFor = 5 * time.Second

// settlePoll is how often a start waiting for the gateways looks again.
const settlePoll = 50 * time.Millisecond

func (r *appRunner) spawn(c *actor.Context, app string, inst *appInstance) {
	if !r.d.gatewaysKnown() && inst.settled < settleFor {
		inst.settled += settlePoll
		c.After(settlePoll, retryStart{app: app, inst: inst})
		return
	}
	// On this loop, spawned and linked in the same turn: no start is in
	// flight when the driver crashes, so Reset finds every root.
	sp := inst.spec
	cl := newAppCluster(r.d, r.log)
	cl.claims = inst.claims
	sp.Cluster = cl
	ref, err := c.Spawn(supervisor.New(sp), actor.Name("app/"+app))
	if err == nil {
		if err = c.Link(ref); err != nil {
			_ = c.Kill(ref)
		}
	}
	if err == nil {
		cl.setRoot(ref)
	}
	if err != nil {
		cl.close()
		r.log.Error("applications: application did not start", "app", app, "err", err)
		r.retry(c, app, inst)
		return
	}
	inst.ref, inst.cluster, inst.started = ref, cl, c.Now()
	r.d.apps.setLive(app, &liveApp{gen: inst.gen, root: ref, slots: inst.slots})
}

// retry starts inst again after inst.backoff.
func (r *appRunner) retry(c *actor.Context, app string, inst *appInstance) {
	c.After(inst.backoff(c.Now()), retryStart{app: app, inst: inst})
}

// healthyRun is how long a root must have run for its end to count as a
// first failure again rather than one more in a row: twice the longest
// pause, so a root that keeps failing right after its start never resets.
const healthyRun = time.Minute

// backoff counts one more failure and returns the pause before the next
// start: 100 ms doubling with each failure in a row, at most 30 s. A root
// that ran for healthyRun or longer before it ended starts the count
// again, so an application that fails once a day is restarted within
// 100 ms each time, not after the 30 s its first bad hour earned it.
func (inst *appInstance) backoff(now time.Time) time.Duration {
	if !inst.started.IsZero() && now.Sub(inst.started) >= healthyRun {
		inst.failures = 0
	}
	inst.started = time.Time{}
	d := min(100*time.Millisecond<<min(inst.failures, 9), 30*time.Second)
	inst.failures++
	return d
}

// Stop implements driver.Runner: the root gets stopAfter to stop its
// children, then is killed. The root of an application whose handover
// failed (its lease ended) is killed at once.
func (r *appRunner) Stop(c *actor.Context, app string) {
	r.abortHandOver(c, app)
	inst := r.insts[app]
	delete(r.insts, app)
	if inst == nil || inst.ref.IsZero() {
		return
	}
	r.d.apps.dropLive(app, inst.ref)
	inst.cluster.close()
	_ = c.Unlink(inst.ref)
	if r.stopAfter <= 0 {
		_ = c.Kill(inst.ref)
		return
	}
	c.StopAsync(inst.ref, actor.ErrShutdown, r.stopAfter)
}

// Reset implements driver.Resetter: a new instance of the driver starts
// with no root of an earlier one running. A driver that crashed is
// restarted in place and its roots, linked to the same ref, get no exit:
// each is killed now (its children, linked to it, follow), before the new
// replica grants anything.
func (r *appRunner) Reset(c *actor.Context) {
	for app, inst := range r.insts {
		delete(r.insts, app)
		if inst.ref.IsZero() {
			continue
		}
		r.d.apps.dropLive(app, inst.ref)
		inst.cluster.close()
		_ = c.Unlink(inst.ref)
		_ = c.Kill(inst.ref)
		r.log.Warn("applications: registry driver restarted; application's root killed", "app", app)
	}
	for app := range r.handing {
		r.abortHandOver(c, app)
	}
}

// Handle implements driver.Handler: a root that ended by itself is
// started again while the application is granted.
func (r *appRunner) Handle(c *actor.Context, msg any) {
	switch m := msg.(type) {
	case actor.Exited:
		for app, inst := range r.insts {
			if inst.ref == m.From {
				r.d.apps.dropLive(app, inst.ref)
				inst.cluster.close()
				inst.ref = actor.Ref{}
				r.log.Error("applications: application's root supervisor ended; starting it again", "app", app, "reason", fmt.Sprint(m.Reason))
				r.retry(c, app, inst)
				return
			}
		}
	case retryStart:
		if r.insts[m.app] == m.inst && m.inst.ref.IsZero() && !m.inst.abandoning {
			r.spawn(c, m.app, m.inst)
		}
	case abandoned:
		m.inst.abandoning = false
		if r.insts[m.app] == m.inst && m.inst.ref.IsZero() {
			r.spawn(c, m.app, m.inst)
		}
	}
}

// supervisorSpec builds the root supervisor of an application: every
// child is placed by the daemon's cluster (appCluster), this daemon
// included.
func (r *appRunner) supervisorSpec(s AppSpec) (supervisor.Spec, map[string]*childSlot, error) {
	strat, err := strategyOf(s.Strategy)
	if err != nil {
		return supervisor.Spec{}, nil, err
	}
	slots := make(map[string]*childSlot, len(s.Children))
	maxR := s.Intensity
	if maxR == 0 {
		maxR = supervisor.DefaultMaxR
	}
	// Cluster: each start of the root gets its own (spawn).
	sp := supervisor.Spec{Strategy: strat, MaxR: maxR, MaxT: time.Duration(s.Period), Name: "app/" + s.Name,
		Cluster: &appCluster{d: r.d}, Logger: r.d.log}
	for _, ch := range s.Children {
		rt, err := restartOf(ch.Restart)
		if err != nil {
			return supervisor.Spec{}, nil, err
		}
		sd, err := shutdownOf(ch.Shutdown)
		if err != nil {
			return supervisor.Spec{}, nil, err
		}
		// The child's kind is read from its slot at each start, so that a
		// rolling upgrade changes what the root's restarts make.
		slot := &childSlot{name: ch.Name, args: ch.Args, kind: ch.Kind}
		slots[ch.Name] = slot
		rem := supervisor.Remote{Kind: ch.Kind, Args: slot}
		if ch.Node != "" {
			rem.Place = pinTo(r.d, ch.Node)
		}
		sp.Children = append(sp.Children, supervisor.ChildSpec{ID: ch.Name, Remote: rem, Restart: rt, Shutdown: sd})
	}
	return sp, slots, sp.Validate()
}

// childSlot is an application child's kind, as its root's next start of
// it makes it: the spec's, until a rolling upgrade moves it. The root's
// supervisor passes it to appCluster as the child's arguments.
type childSlot struct {
	name string
	args map[string]any // the spec's, never modified

	mu   sync.Mutex
	kind string
}

func (s *childSlot) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kind
}

func (s *childSlot) set(kind string) {
	s.mu.Lock()
	s.kind = kind
	s.mu.Unlock()
}

// pinTo places a child on the daemon named node only.
func pinTo(d *Daemon, node string) supervisor.Placement {
	return func(c supervisor.Candidates) (string, error) {
		addr := d.memberAddr(node)
		if addr != "" && slices.Contains(c.Live, addr) {
			return addr, nil
		}
		return "", fmt.Errorf("daemon %q is not up", node)
	}
}

// gatewaysKnown reports whether the gateway of every live member of the
// cluster is known here.
func (d *Daemon) gatewaysKnown() bool {
	ms := d.agent.Members()
	d.gw.mu.Lock()
	defer d.gw.mu.Unlock()
	for _, m := range ms {
		if p, ok := d.gw.peers[m.Name]; !m.Self && (!ok || p.addr != m.Addr) {
			return false
		}
	}
	return true
}

// memberAddr returns the remote address of the member named node ("" if
// unknown or without a known gateway).
func (d *Daemon) memberAddr(node string) string {
	if node == d.cfg.Name {
		return d.node.Addr()
	}
	d.gw.mu.Lock()
	defer d.gw.mu.Unlock()
	return d.gw.peers[node].addr
}

// appCluster places an application's children on the cluster's daemons:
// this one and those whose gateway it knows (a member that left or failed
// is dropped). Children are made from the daemons' kinds, through their
// gateways: no kind is open on the remote node itself. Each start of a
// root has its own, closed when that root ends or is ended: a child whose
// start returns after that is killed, not left running unlinked.
type appCluster struct {
	d   *Daemon
	log *slog.Logger
	// rootSet closes once root is known, or the root ended without one;
	// nil: spawns tie their children to no owner.
	rootSet chan struct{}

	// claims are the holds' claims of the children the root adopts
	// (read only).
	claims map[actor.Ref]string

	mu     sync.Mutex
	closed bool
	root   actor.Ref
}

// newAppCluster is the cluster of one start of an application's root.
func newAppCluster(d *Daemon, log *slog.Logger) *appCluster {
	return &appCluster{d: d, log: log, rootSet: make(chan struct{})}
}

// setRoot records the root's ref: the owner of its children's spawns.
func (a *appCluster) setRoot(root actor.Ref) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.root = root
		close(a.rootSet)
	}
}

// owner is the root's ref, once known (its first children start while the
// root's Start runs, before its spawn returns).
func (a *appCluster) owner(ctx context.Context) (actor.Ref, error) {
	if a.rootSet == nil {
		return actor.Ref{}, nil
	}
	select {
	case <-a.rootSet:
	case <-ctx.Done():
		return actor.Ref{}, ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.root.IsZero() {
		return actor.Ref{}, errRootEnded
	}
	return a.root, nil
}

// close marks the root ended (nil-safe).
func (a *appCluster) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed && a.rootSet != nil && a.root.IsZero() {
		close(a.rootSet) // ended before it was known: nobody waits for it
	}
	a.closed = true
}

func (a *appCluster) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// errRootEnded is the error of a child's start whose root has ended.
var errRootEnded = errors.New("the application's root has ended")

// SpawnAsync implements the supervisor's asynchronous Cluster: the start
// runs on a goroutine of its own, not on the worker pool (which the
// registry's writes need), one at a time per root (the supervisor waits
// for each). A child whose root ended meanwhile is killed.
func (a *appCluster) SpawnAsync(addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	go func() {
		if h := rootSpawnHook.Load(); h != nil {
			(*h)()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ref, err := a.Spawn(ctx, addr, kind, args)
		done(ref, err)
	}()
}

// rootSpawnHook, if set (tests), runs before each of a root's remote
// starts (SpawnAsync), on its goroutine: it can hold the root's
// operation under way.
var rootSpawnHook atomic.Pointer[func()]

// Live implements supervisor.Cluster: this daemon, and the members whose
// gateway is known and that the remote node does not know to be down (a
// daemon killed is known down as soon as its connections reset, before the
// membership declares it failed).
func (a *appCluster) Live() []string {
	g := a.d.gw
	var peers []string
	g.mu.Lock()
	for _, pg := range g.peers {
		peers = append(peers, pg.addr)
	}
	g.mu.Unlock()
	out := append(remote.NewNodeSet(a.d.node, peers...).Live(), a.d.node.Addr())
	slices.Sort(out)
	return slices.Compact(out)
}

// Spawn implements supervisor.Cluster. A child started after its root
// ended is killed.
func (a *appCluster) Spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error) {
	if a.isClosed() {
		return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, errRootEnded)
	}
	ref, err := a.spawn(ctx, addr, kind, args)
	if err == nil && a.isClosed() {
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if kerr := a.d.sys.Kill(kctx, ref); kerr != nil && a.log != nil {
			a.log.Warn("applications: a child started after its root ended was not killed", "kind", kind, "ref", ref.String(), "err", kerr)
		}
		return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, errRootEnded)
	}
	return ref, err
}

func (a *appCluster) spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error) {
	if s, ok := args.(*childSlot); ok {
		kind, args = s.current(), s.args
	}
	var plain any
	if m, ok := args.(map[string]any); ok {
		p, err := plainArgs(m)
		if err != nil {
			return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, err)
		}
		plain = p
	}
	g := a.d.gw
	if addr == a.d.node.Addr() {
		g.mu.Lock()
		k, ok := g.kinds[kind]
		g.mu.Unlock()
		if !ok {
			return actor.Ref{}, fmt.Errorf("%w: %q on %s", gateway.ErrSpawn, kind, a.d.cfg.Name)
		}
		f, err := callKind(k, plain)
		if err != nil {
			return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, err)
		}
		owner, err := a.owner(ctx)
		if err != nil {
			return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, err)
		}
		ref, err := a.d.sys.Spawn(ctx, f, actor.LeastLoaded(), actor.Name(kind))
		if err != nil || owner.IsZero() {
			return ref, err
		}
		// Tied to the root here too: a root that ends before it has the
		// answer (a crash) must not leave the child running unlinked.
		if _, err := a.d.sys.Ask(ctx, g.ref, tieLocal{Owner: owner, Kid: ref}); err != nil {
			kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.d.sys.Kill(kctx, ref) // no-op if the gateway killed it
			return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, err)
		}
		return ref, nil
	}
	var peer actor.Ref
	g.mu.Lock()
	for _, pg := range g.peers {
		if pg.addr == addr {
			peer = pg.ref
		}
	}
	g.mu.Unlock()
	if peer.IsZero() {
		return actor.Ref{}, fmt.Errorf("%w: no daemon's gateway known at %s", gateway.ErrNoGateway, addr)
	}
	// The child is tied to the root: if this answer is lost (the
	// connection, the root gone), the other daemon kills the child rather
	// than leave it running with nobody to stop it.
	owner, err := a.owner(ctx)
	if err != nil {
		return actor.Ref{}, fmt.Errorf("%w: kind %q: %w", gateway.ErrSpawn, kind, err)
	}
	v, err := a.d.sys.Ask(ctx, peer, gateway.SpawnKind{Kind: kind, Args: plain, Owner: owner})
	if err != nil {
		return actor.Ref{}, err
	}
	res, ok := v.(gateway.SpawnResult)
	if !ok {
		return actor.Ref{}, fmt.Errorf("%w: unexpected reply %T", gateway.ErrSpawn, v)
	}
	return res.Ref, res.Err()
}
