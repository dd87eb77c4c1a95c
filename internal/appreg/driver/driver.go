// Package driver runs an appreg.Replica in an actor: it ticks the replica
// with a timer of the actor's loop, carries raft messages between the
// replicas' actors over remote, and starts and stops applications through a
// Runner as the replica grants and withdraws them.
//
// The peers' refs are given to it (SetPeers) and the Runner is the
// caller's (package daemon provides both). With Config.OffLoop the
// replica's Ready (its Store's synced writes, the applying of committed
// commands) runs on the system's worker pool, one at a time, and the
// inputs that arrive meanwhile wait for it: a BoltStore's fsync does not
// hold the actor's loop.
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/remote"
	pb "go.etcd.io/raft/v3/raftpb"
)

// RaftMsg carries one raft message (appreg.MarshalMessage) between the
// drivers of two members.
type RaftMsg struct {
	Data []byte
}

// RaftMsgType is the name RaftMsg is registered under (Register).
const RaftMsgType = "appreg.RaftMsg"

// Register registers the message types drivers exchange. Every node that
// runs a driver calls it once, before the driver starts. remote's MaxFrame
// must exceed appreg.MaxMessageSize (its default does).
func Register(n *remote.Node) error {
	return remote.Register[RaftMsg](n, RaftMsgType)
}

// SetPeers gives the driver the refs of the other members' drivers, by
// raft ID (sent locally, by whoever knows them). It replaces earlier ones.
type SetPeers struct {
	Refs map[uint64]actor.Ref
}

// Propose asks the driver to propose a deploy, start, stop or remove (the
// other commands are the registry's own); the reply is nil once raft took
// it (not once it committed), or the error (appreg.ErrNoLeader: retry;
// ErrNotAllowed).
type Propose struct {
	Cmd appreg.Command
}

// Release asks the driver to hand an application that runs here over to
// node To (appreg.Replica.Hold, then Release): the driver no longer starts
// it here, has the Runner end its instance (Handoverer), still renewing
// its lease meanwhile, and proposes the release with what the Runner
// recorded for the next holder. The reply, once proposed, is the
// generation released (a uint64), or the error (ErrNotRunningHere,
// ErrNotAllowed for a Runner that is no Handoverer, appreg.ErrNotMember
// for a To that is no member of the registry, ErrHandoverFailed).
// The release is proposed again until it commits or the generation moves
// on: watch the registry (GetStatus) for the outcome.
//
// The lease bounds the handover as it bounds any instance: if it ends, or
// the generation moves on otherwise (a takeover, a failover), before the
// release commits, the driver calls the Runner's Stop for the application
// at once, which must end what is left of it (the instance still ending,
// and anything it handed on that no next holder took), and the handover
// has failed.
type Release struct {
	App, To string
}

// ErrNotRunningHere is the reply to a Release of an application that
// does not run on this node.
var ErrNotRunningHere = errors.New("appreg driver: the application does not run here")

// ErrHandoverFailed is the reply to a Release whose lease ended, or whose
// generation moved on otherwise, before its instance had ended: the
// driver stopped it (Runner.Stop).
var ErrHandoverFailed = errors.New("appreg driver: the handover failed: its lease ended or its generation moved on")

// Handoverer may be implemented by a Runner, for Release: HandOver ends
// the application's instance for a handover and calls done, on the
// driver's loop (a continuation of the driver's own context), with what
// to record for the next holder (at most appreg.MaxHandoverSize bytes) and
// whether the instance has ended (stopped: its Terminate ran, or it was
// killed and is dead). A release whose instance is not known to have
// ended is proposed as not clean: the next holder waits for the lease.
type Handoverer interface {
	HandOver(c *actor.Context, app string, done func(c *actor.Context, handover []byte, ended bool))
}

// Unreleaser may be implemented by a Handoverer: a handover that fails
// before the driver proposed the release with what done gave (a lease's
// end seen while that proposal was queued, or the proposal refused) gets
// Unreleased, before Runner.Stop. The release the driver proposes then
// records nothing for the next holder, which starts everything afresh:
// what done's record named must not be kept for it. The driver proposes
// that release only once the Runner calls dropped (on the driver's loop;
// calls after the first are ignored), so that what the record named is
// gone first; a Runner that never calls it leaves the application to
// fail over at its lease's end.
type Unreleaser interface {
	Unreleased(c *actor.Context, app string, dropped func(c *actor.Context))
}

// GetStatus asks for a Status.
type GetStatus struct{}

// Status is the driver's view: the leader it knows, the registry as applied
// here, and what runs here.
type Status struct {
	Leader  uint64
	Term    uint64
	Apps    []appreg.App
	Running []string
}

// App returns the record of the application named name, if st lists it.
func (st Status) App(name string) (appreg.App, bool) {
	for _, a := range st.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return appreg.App{}, false
}

// Runner starts and stops applications on this node. Both are called on the
// driver's loop and must not block: start the tree asynchronously. Stop
// must end the instance within the Margin of the registry's Timing; it is
// also called for an application under a handover (Handoverer) that
// failed, and must then end what is left of it (a done that comes later
// is ignored). Link
// instances to the driver so that they end with it, and implement
// Resetter: a driver that crashes, rather than stops, runs no Terminate,
// and a supervisor restarts it in place (same ref, no exit), so an
// instance it leaves behind would run on without a lease.
type Runner interface {
	Start(c *actor.Context, g appreg.Grant)
	Stop(c *actor.Context, app string)
}

// Resetter may be implemented by a Runner, and should be by one that
// keeps state across the driver's instances: every start of the driver (a
// supervisor's restart in place after a crash too, which runs no
// Terminate) calls Reset first, before the replica loads. Reset must end
// at once (kill) every instance the Runner still holds, and forget them:
// the new replica grants anew, and an instance of the old one runs without
// a lease the new one tracks.
type Resetter interface {
	Reset(c *actor.Context)
}

// Handler may be implemented by a Runner: the driver traps exits (so that
// an instance linked to it does not take it down when the instance ends),
// and passes the messages it does not handle itself to Handle: the exits
// of the instances it linked (actor.Exited), its own timers' messages. An
// exit of the driver's parent is not passed on: the driver follows it.
type Handler interface {
	Handle(c *actor.Context, msg any)
}

// Config configures a driver.
type Config struct {
	// Replica configures the replica; its Members' Node names are the
	// remote node names of the members. Replica.Incarnation must differ
	// for every process of the node; each start of a driver (a
	// supervisor's restart too) derives its own from it. Its
	// Timing.Margin must be at least one TickInterval: the driver stops an
	// application at the first tick after its lease ends.
	Replica appreg.Config
	// Remote, if set, authenticates raft messages: one naming member X
	// must come from an actor on X's node, as the remote layer names that
	// node (the name in its Hello: pin names to keys with
	// remote.Config.Authorize, or keep the driver's refs to the members).
	// Leave nil only when all members share one actor.System (tests).
	Remote *remote.Node
	Runner Runner
	// Logger receives refused messages (rate-limited); nil discards them.
	Logger *slog.Logger
	// OffLoop runs the replica's Ready (the Store's writes) on the worker
	// pool (actor.Context.Blocking) instead of the driver's loop. Inputs
	// that arrive while it runs are queued (at most MaxQueued, and
	// MaxQueuedBytes of raft messages: beyond, raft messages are dropped,
	// which raft retries, and requests fail with ErrBusy). Leave it off
	// under the simulator, whose worker pool is not virtual.
	OffLoop bool
}

// Bounds on the inputs an OffLoop driver queues while its replica writes.
const (
	MaxQueued      = 4096
	MaxQueuedBytes = 64 << 20
)

// ErrBusy is the reply to a Propose or GetStatus that found the driver's
// queue full (OffLoop): retry.
var ErrBusy = errors.New("appreg driver: busy")

// ErrNotAllowed is the reply to a Propose of an assignment or a renewal:
// only the registry makes those.
var ErrNotAllowed = errors.New("appreg driver: command not allowed")

// ErrNoReplica is the stop reason of a driver whose replica failed (its
// Store): a supervisor's restart starts a new one from the Store.
var ErrNoReplica = errors.New("appreg driver: replica failed")

type tick struct{}

type driver struct {
	cfg     Config
	log     *slog.Logger
	r       *appreg.Replica
	byID    map[uint64]string
	peers   map[uint64]actor.Ref
	running map[string]uint64 // app -> generation started

	// OffLoop: while busy, the replica belongs to the Ready running on
	// the pool; inputs wait in queue.
	busy        bool
	queue       []queued
	queuedBytes int
	tickDue     bool
	// until is, for each application running here, the end of its lease
	// as of the last reconcile: every tick stops those whose lease ended,
	// before anything else and without touching the replica (which a
	// write may hold).
	until map[string]time.Time
	// handing are the applications being handed over (Release), until
	// the release commits or the handover fails.
	handing map[string]*handing

	// store is shared by the driver's instances: a write job of an ended
	// instance never runs beside, or after, the load of a newer one.
	store *storeGuard
	epoch uint64 // this instance's, in store
}

// storeGuard orders the Store's use across a driver's instances: an
// instance's Ready runs holding lock, and only while epoch is still that
// instance's; a new instance takes a new epoch, then the lock to load.
type storeGuard struct {
	lock  chan struct{} // a mutex that can be waited for with a deadline
	epoch atomic.Uint64
}

// storeWait bounds how long a new instance's Start (on its loop) waits
// for a write of an earlier instance to end before it fails.
var storeWait = 5 * time.Second

// acquire takes the lock within wait, or fails.
func (g *storeGuard) acquire(wait time.Duration) bool {
	select {
	case g.lock <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.lock <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (g *storeGuard) release() { <-g.lock }

// handing is an application being handed over from here.
type handing struct {
	gen   uint64
	to    string
	until time.Time    // the end of its lease, as of the last reconcile
	rep   *actor.Reply // nil once answered
	ended bool         // the Runner called done: the release is proposed
}

// errStale is the result of a write job whose instance has ended.
var errStale = errors.New("appreg driver: a newer instance owns the store")

// queued is an input that arrived while the replica was busy: a raft
// message already authenticated, or a request and its deferred reply.
type queued struct {
	step *pb.Message
	from string
	size int
	msg  any
	rep  *actor.Reply
	run  func(*actor.Context) // a Runner's continuation that uses the replica
}

// New returns the driver's factory.
func New(cfg Config) actor.Factory {
	var starts atomic.Uint64 // the instances made, so that each gets its own incarnation
	guard := &storeGuard{lock: make(chan struct{}, 1)}
	return func() actor.Actor {
		rc := cfg.Replica
		rc.Incarnation = startIncarnation(cfg.Replica.Incarnation, starts.Add(1))
		l := cfg.Logger
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		dc := cfg
		dc.Replica = rc
		d := &driver{cfg: dc, log: ratelog.Wrap(l, ratelog.Config{}), byID: map[uint64]string{},
			peers: map[uint64]actor.Ref{}, running: map[string]uint64{}, handing: map[string]*handing{}, store: guard}
		for _, m := range cfg.Replica.Members {
			d.byID[m.ID] = m.Node
		}
		return d
	}
}

// startIncarnation is the incarnation of the n-th instance (from 1) of a
// driver whose process has incarnation inc: a renewal proposed by an
// earlier instance of the same process must not count as this one's (its
// sequence numbers start again), so every start has its own, distinct and
// never 0, and the same for the same inputs (a seeded run replays).
func startIncarnation(inc, n uint64) uint64 {
	if n == 1 {
		return inc
	}
	v := inc + (n-1)*0x9e3779b97f4a7c15 // distinct for every n below 2⁶⁴
	if v == 0 {
		v = 1
	}
	return v
}

// Start implements actor.Starter.
func (d *driver) Start(c *actor.Context) error {
	if m, tick := d.cfg.Replica.Timing.Margin, d.cfg.Replica.TickInterval; m < tick {
		return fmt.Errorf("%w: Timing.Margin %v is under TickInterval %v: an application would run up to a tick past its lease", appreg.ErrConfig, m, tick)
	}
	// First: what an earlier instance started (it may have crashed, with
	// no Terminate) must not outlive it.
	if rs, ok := d.cfg.Runner.(Resetter); ok {
		rs.Reset(c)
	}
	// A write an earlier instance has not begun now writes nothing; one
	// under way ends before the load (or the start fails: a hanging disk
	// must not hold the loop).
	d.epoch = d.store.epoch.Add(1)
	if !d.store.acquire(storeWait) {
		return fmt.Errorf("%w: a store write of an earlier instance has not ended within %v", ErrNoReplica, storeWait)
	}
	r, err := appreg.NewReplica(d.cfg.Replica, c.Now())
	d.store.release()
	if err != nil {
		return err
	}
	d.r = r
	c.TrapExits(true)
	c.Every(d.cfg.Replica.TickInterval, tick{})
	return d.flush(c)
}

// Terminate implements actor.Terminator: nothing may run without the
// driver that tracks its lease. It stops the applications first and never
// waits for a write job (the pool may never run it, its continuation
// queued behind this stop): the job of an ended instance writes nothing
// once a newer instance has loaded the Store (storeGuard).
func (d *driver) Terminate(c *actor.Context, _ error) {
	for _, app := range sortedKeys(d.running) {
		d.cfg.Runner.Stop(c, app)
	}
	clear(d.running)
	for _, app := range sortedKeys(d.handing) {
		d.cfg.Runner.Stop(c, app)
		if hd := d.handing[app]; hd.rep != nil {
			hd.rep.Reply(nil, ErrNoReplica)
		}
	}
	clear(d.handing)
	for _, q := range d.queue {
		if q.rep != nil {
			q.rep.Reply(nil, ErrNoReplica)
		}
	}
	d.queue = nil
}

// ready runs the replica's Ready under the store guard: not at all once a
// newer instance owns the Store.
func (d *driver) ready(r *appreg.Replica) (appreg.Ready, error) {
	d.store.lock <- struct{}{}
	defer d.store.release()
	if d.store.epoch.Load() != d.epoch {
		return appreg.Ready{}, errStale
	}
	return r.Ready()
}

// Receive implements actor.Actor.
func (d *driver) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case SetPeers:
		d.peers = map[uint64]actor.Ref{}
		for id, ref := range m.Refs {
			d.peers[id] = ref
		}
		return nil, nil
	case actor.Exited:
		if p := c.Parent(); !p.IsZero() && m.From == p {
			if m.Reason != nil { // as if the exit had not been trapped
				_ = c.Stop(c.Self(), m.Reason)
			}
			return nil, nil
		}
		if h, ok := d.cfg.Runner.(Handler); ok {
			h.Handle(c, m)
		}
		return nil, nil
	case tick:
		// Before anything else, the tick's write included: a lease that
		// ended is acted on at this tick, which Margin covers.
		d.expire(c)
		if d.busy {
			d.tickDue = true
			return nil, nil
		}
		d.r.Tick(c.Now())
	case RaftMsg:
		pm, from, ok := d.check(c, m)
		if !ok {
			return nil, nil
		}
		if d.busy {
			if len(d.queue) >= MaxQueued || d.queuedBytes+len(m.Data) > MaxQueuedBytes {
				d.log.Warn("appreg: raft message dropped: the driver's queue is full", "from", from)
				return nil, nil
			}
			d.queue = append(d.queue, queued{step: pm, from: from, size: len(m.Data)})
			d.queuedBytes += len(m.Data)
			return nil, nil
		}
		d.step(c, pm, from)
	case Release:
		rep := c.Defer()
		if d.busy {
			if len(d.queue) >= MaxQueued {
				rep.Reply(nil, ErrBusy)
				return nil, nil
			}
			d.queue = append(d.queue, queued{msg: m, rep: rep})
			return nil, nil
		}
		d.release(c, m, rep)
	case Propose, GetStatus:
		if d.busy {
			if len(d.queue) >= MaxQueued {
				return nil, ErrBusy
			}
			d.queue = append(d.queue, queued{msg: m, rep: c.Defer()})
			return nil, nil
		}
		v, err := d.request(c, m)
		if err != nil || v != nil {
			return v, err
		}
	default:
		if h, ok := d.cfg.Runner.(Handler); ok {
			h.Handle(c, msg)
			return nil, nil
		}
		return nil, fmt.Errorf("appreg driver: unexpected %T", msg)
	}
	return nil, d.kick(c)
}

// request handles a Propose or GetStatus: the replica is not busy.
func (d *driver) request(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Propose:
		switch m.Cmd.Op {
		case appreg.OpDeploy, appreg.OpStart, appreg.OpStop, appreg.OpRemove:
		default:
			return nil, fmt.Errorf("%w: %v", ErrNotAllowed, m.Cmd.Op)
		}
		return nil, d.r.Propose(m.Cmd, c.Now())
	case GetStatus:
		return Status{Leader: d.r.Leader(), Term: d.r.Term(), Apps: d.r.State().Apps(), Running: sortedKeys(d.running)}, nil
	}
	return nil, nil
}

// release carries out a Release: the replica is not busy.
func (d *driver) release(c *actor.Context, m Release, rep *actor.Reply) {
	h, ok := d.cfg.Runner.(Handoverer)
	if !ok {
		rep.Reply(nil, fmt.Errorf("%w: the runner cannot hand over", ErrNotAllowed))
		return
	}
	gen, running := d.running[m.App]
	if !running {
		rep.Reply(nil, fmt.Errorf("%w: %q", ErrNotRunningHere, m.App))
		return
	}
	check := appreg.Command{Op: appreg.OpRelease, App: m.App, Node: d.r.Node(), Gen: gen, To: m.To}
	if err := check.Validate(); err != nil {
		rep.Reply(nil, err)
		return
	}
	if !d.isMember(m.To) {
		rep.Reply(nil, fmt.Errorf("%w: %q", appreg.ErrNotMember, m.To))
		return
	}
	if g, err := d.r.Hold(m.App, c.Now()); err != nil || g != gen {
		rep.Reply(nil, fmt.Errorf("%w: %q (generation %d): %v", ErrNotRunningHere, m.App, gen, err))
		return
	}
	// Not started here again: the Runner ends it, under its lease, which
	// the replica renews until the release (expire, reconcile).
	delete(d.running, m.App)
	delete(d.until, m.App)
	until, _ := d.r.HeldUntil(m.App, c.Now()) // none: expire fails it at the next tick
	hd := &handing{gen: gen, to: m.To, until: until, rep: rep}
	d.handing[m.App] = hd
	r := d.r
	h.HandOver(c, m.App, func(c *actor.Context, handover []byte, ended bool) {
		if d.r != r || d.handing[m.App] != hd {
			return // failed meanwhile, and answered
		}
		d.whenIdle(c, func(c *actor.Context) { d.released(c, m, hd, handover, ended) })
	})
}

// failHandover ends a handover that failed: the Runner stops what is left
// of the application, and the Release, if not answered yet, gets err. A
// release not proposed yet is proposed now, not clean: were the
// generation only renewed on, held, it would run nowhere, and its holder,
// alive, would not be failed over.
func (d *driver) failHandover(c *actor.Context, app string, err error) {
	hd := d.handing[app]
	delete(d.handing, app)
	release := func(c *actor.Context) {
		// Refused if the generation moved on: nothing to do then.
		_ = d.r.Release(app, hd.gen, hd.to, nil, false, c.Now())
	}
	waits := false
	if u, ok := d.cfg.Runner.(Unreleaser); ok && hd != nil && !hd.ended {
		waits = true
		proposed := false
		u.Unreleased(c, app, func(c *actor.Context) {
			if !proposed {
				proposed = true
				d.whenIdle(c, release)
			}
		})
	}
	d.cfg.Runner.Stop(c, app)
	if hd == nil {
		return
	}
	if hd.rep != nil {
		hd.rep.Reply(nil, fmt.Errorf("%w: %q (generation %d)", err, app, hd.gen))
		hd.rep = nil
	}
	if !hd.ended && !waits {
		d.soon(c, release)
	}
}

// soon runs f, which uses the replica, now or (OffLoop) once the Ready on
// the pool has ended; its output is taken at the next kick (every
// input's, every tick's). Not bounded by MaxQueued: at most one per
// application handed over.
func (d *driver) soon(c *actor.Context, f func(*actor.Context)) {
	if d.busy {
		d.queue = append(d.queue, queued{run: f})
		return
	}
	f(c)
}

// whenIdle runs f, which uses the replica, now or (OffLoop) once the
// Ready on the pool has ended, then takes the replica's output: a
// Runner's continuation runs on the loop at any time, while the replica
// may belong to the pool. Not bounded by MaxQueued: at most one per
// application handed over.
func (d *driver) whenIdle(c *actor.Context, f func(*actor.Context)) {
	d.soon(c, f)
	if !d.busy {
		_ = d.kick(c)
	}
}

// released proposes the release once the Runner has ended the instance:
// the replica is not busy.
func (d *driver) released(c *actor.Context, m Release, hd *handing, handover []byte, ended bool) {
	if d.handing[m.App] != hd {
		return // failed while queued
	}
	if BeforeReleaseHook != nil && BeforeReleaseHook(m.App) {
		d.failHandover(c, m.App, ErrHandoverFailed)
		return
	}
	err := d.r.Release(m.App, hd.gen, m.To, handover, ended, c.Now())
	if errors.Is(err, appreg.ErrNoLeader) {
		err = nil // proposed again at the next renewal time
	}
	if err != nil {
		d.failHandover(c, m.App, err)
		return
	}
	hd.ended = true
	hd.rep.Reply(hd.gen, nil)
	hd.rep = nil
}

// kick takes the replica's output: at once on the loop, or (OffLoop) on
// the worker pool, after which the queued inputs are fed and it goes
// again.
func (d *driver) kick(c *actor.Context) error {
	if !d.cfg.OffLoop {
		return d.flush(c)
	}
	if d.busy {
		return nil
	}
	if !d.r.HasReady() {
		d.reconcile(c) // leases end with time alone
		return nil
	}
	d.busy = true
	r := d.r
	c.Blocking(func() (any, error) {
		return d.ready(r)
	}).Then(func(c *actor.Context, v any, err error) {
		d.busy = false
		if errors.Is(err, actor.ErrPoolFull) {
			// The job never ran: this once, on the loop.
			if d.flush(c) == nil {
				d.drain(c)
			}
			return
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrNoReplica, err)
			_ = c.Stop(c.Self(), err)
			return
		}
		rd, _ := v.(appreg.Ready)
		d.send(c, rd)
		d.reconcile(c)
		d.drain(c)
	})
	return nil
}

// drain feeds the replica the inputs queued while it was busy, in order,
// then takes its output once for them all.
func (d *driver) drain(c *actor.Context) {
	q := d.queue
	d.queue, d.queuedBytes = nil, 0
	if d.tickDue {
		d.tickDue = false
		d.r.Tick(c.Now())
	}
	for _, in := range q {
		if in.step != nil {
			d.step(c, in.step, in.from)
			continue
		}
		if in.run != nil {
			in.run(c)
			continue
		}
		if m, ok := in.msg.(Release); ok {
			d.release(c, m, in.rep)
			continue
		}
		v, err := d.request(c, in.msg)
		in.rep.Reply(v, err)
	}
	_ = d.kick(c)
}

// check authenticates and decodes a raft message: it must come from the
// node of the member it names.
func (d *driver) check(c *actor.Context, in RaftMsg) (*pb.Message, string, bool) {
	// Logged by the sending node, which the sender cannot choose, so the
	// rate limiter bounds what one peer can make this node log.
	from := "local"
	ok := true
	if d.cfg.Remote != nil {
		from, _, _, ok = d.cfg.Remote.ExportRef(c.Sender())
		if !ok {
			from = "unknown"
		}
	}
	if d.cfg.Remote != nil && (!ok || !d.isMember(from)) {
		// Before decoding: decoding costs memory, and only members may.
		d.log.Warn("appreg: raft message from a node that is no member", "from", from)
		return nil, from, false
	}
	m, err := appreg.UnmarshalMessage(in.Data)
	if err != nil {
		d.log.Warn("appreg: refused raft message", "from", from, "err", err)
		return nil, from, false
	}
	if want, member := d.byID[m.GetFrom()]; d.cfg.Remote != nil && (!ok || !member || from != want) {
		d.log.Warn("appreg: raft message from the wrong node", "from", from, "claims", m.GetFrom())
		return nil, from, false
	}
	return m, from, true
}

func (d *driver) step(c *actor.Context, m *pb.Message, from string) {
	if err := d.r.Step(m, c.Now()); err != nil {
		d.log.Warn("appreg: refused raft message", "from", from, "err", err)
	}
}

// isMember reports whether node is a member's node.
func (d *driver) isMember(node string) bool {
	for _, n := range d.byID {
		if n == node {
			return true
		}
	}
	return false
}

// flush sends the replica's messages and brings what runs here in line with
// what the replica grants now.
func (d *driver) flush(c *actor.Context) error {
	rd, err := d.ready(d.r)
	if err != nil {
		// Stop rather than go on with a replica that may have lost
		// writes; Terminate stops what runs here.
		err = fmt.Errorf("%w: %w", ErrNoReplica, err)
		_ = c.Stop(c.Self(), err)
		return err
	}
	d.send(c, rd)
	d.reconcile(c)
	return nil
}

// send sends the messages of a Ready (made durable by it).
func (d *driver) send(c *actor.Context, rd appreg.Ready) {
	for _, m := range rd.Messages {
		ref, ok := d.peers[m.GetTo()]
		if !ok {
			continue // unknown yet: raft retries
		}
		b, err := appreg.MarshalMessage(m)
		if err != nil {
			d.log.Error("appreg: raft message not sent", "err", err)
			continue
		}
		_ = c.Send(ref, RaftMsg{Data: b}) // lost messages are raft's to retry
	}
}

// expire stops the applications whose lease, as of the last reconcile,
// has ended. It runs at every tick, before the tick's write: the replica
// may be busy writing, and Margin covers a tick, not a write.
func (d *driver) expire(c *actor.Context) {
	now := c.Now()
	for _, app := range sortedKeys(d.running) {
		if u, ok := d.until[app]; ok && !now.Before(u) {
			d.cfg.Runner.Stop(c, app)
			delete(d.running, app)
		}
	}
	for _, app := range sortedKeys(d.handing) {
		if !now.Before(d.handing[app].until) {
			d.failHandover(c, app, ErrHandoverFailed)
		}
	}
}

// reconcile starts and stops applications here as the replica grants
// them now.
func (d *driver) reconcile(c *actor.Context) {
	// First: a handover that failed is stopped before a new generation
	// of the same application may start here.
	d.reconcileHandovers(c)
	grants := d.r.Grants(c.Now())
	want := map[string]appreg.Grant{}
	d.until = map[string]time.Time{}
	for _, g := range grants {
		want[g.App] = g
		d.until[g.App] = g.Until
	}
	for _, app := range sortedKeys(d.running) {
		if g, ok := want[app]; !ok || g.Gen != d.running[app] {
			d.cfg.Runner.Stop(c, app)
			delete(d.running, app)
		}
	}
	for _, g := range grants {
		if _, ok := d.running[g.App]; !ok {
			d.running[g.App] = g.Gen
			d.cfg.Runner.Start(c, g)
		}
	}
}

// reconcileHandovers follows the applications being handed over: one
// whose release has committed is done; one whose generation moved on
// otherwise, or whose lease ended, has failed and is stopped; the others'
// lease ends are noted for expire.
func (d *driver) reconcileHandovers(c *actor.Context) {
	for _, app := range sortedKeys(d.handing) {
		hd := d.handing[app]
		a, ok := d.r.State().App(app)
		if ok && a.Gen == hd.gen+1 && a.HandoverGen == a.Gen && a.ReleasedBy == d.r.Node() {
			delete(d.handing, app) // released: the next holder has it
			continue
		}
		if !ok || a.Gen != hd.gen {
			d.failHandover(c, app, ErrHandoverFailed)
			continue
		}
		u, ok := d.r.HeldUntil(app, c.Now())
		if !ok {
			d.failHandover(c, app, ErrHandoverFailed)
			continue
		}
		hd.until = u
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// BeforeReleaseHook, if set (tests only), is called before the driver
// proposes a release with a Runner's records; true fails the handover
// first, as a lease's end seen while that proposal was queued does.
var BeforeReleaseHook func(app string) bool
