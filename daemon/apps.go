package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
	"github.com/actord/actord/supervisor"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Applications (docs/supervision.md, "Applications"): the daemons named in
// AppsConfig.Members each run a replica of the application registry (a
// raft group, internal/appreg) in an actor (its driver); the registry
// assigns each application to one of them, which runs its root supervisor
// while it holds a lease, with children spread over the live daemons.

// AppSpec is an application's spec (see gateway.AppSpec).
type AppSpec = gateway.AppSpec

// AppChild is a child of an application's root (see gateway.AppChild).
type AppChild = gateway.AppChild

// AppsConfig configures the application registry. Zero fields take the
// defaults; Members empty turns applications off (no replica, no
// application runs on this daemon).
type AppsConfig struct {
	// Members are the names of the daemons that run a replica of the
	// registry (and the applications), as etcd's initial cluster: every
	// daemon must be given the same set, fixed for the registry's life.
	// A daemon not in it runs no replica; its gateway passes application
	// calls on to a member's. At most MaxAppMembers.
	Members []string
	// Tick is how often a replica ticks (raft's tick, the lease checks).
	// Default 100 ms.
	Tick time.Duration
	// ElectionTicks is raft's election timeout, in ticks. Default 10.
	ElectionTicks int
	// Lease is how long a daemon may run an application after it proposed
	// a renewal that was then committed; at least twice the election
	// timeout. A daemon that dies is replaced after about two election
	// timeouts plus Lease·(1+Drift)/(1−Drift) + Margin. Default 5 s.
	Lease time.Duration
	// RenewEvery is how often the holder renews: at least a tick, at most
	// half the lease. Default Lease/5.
	RenewEvery time.Duration
	// Margin is what the lease arithmetic adds for a daemon to notice its
	// lease ended (a tick) and to stop the application: at least two ticks;
	// the root supervisor gets Margin − Tick to stop, then is killed.
	// Default 1 s.
	Margin time.Duration
	// Drift bounds every clock's rate error (0 to 0.1). Default 0.01.
	Drift float64
	// Apps are deployed at boot (by the members; deploying a spec the
	// registry already holds is not a change).
	Apps []AppSpec
}

// Bounds on the application configuration and specs: they come from
// config files and clients.
const (
	// MaxAppMembers bounds AppsConfig.Members (a raft group's size).
	MaxAppMembers = 9
	// MaxAppChildren bounds an application's children.
	MaxAppChildren = 64
	// MaxAppNameLen bounds application, child, kind and member names.
	MaxAppNameLen = appreg.MaxNameLen
	// MaxAppSpecSize bounds an application's encoded spec (msgpack).
	MaxAppSpecSize = appreg.MaxSpecSize
	// MaxAppIntensity bounds a spec's restart intensity.
	MaxAppIntensity = 1000
	// AppStoreFile is the registry replica's file in the data dir.
	AppStoreFile = "appreg.db"
)

// withDefaults fills the zero fields.
func (a AppsConfig) withDefaults() AppsConfig {
	if a.Tick == 0 {
		a.Tick = 100 * time.Millisecond
	}
	if a.ElectionTicks == 0 {
		a.ElectionTicks = 10
	}
	if a.Lease == 0 {
		a.Lease = 5 * time.Second
	}
	if a.RenewEvery == 0 {
		a.RenewEvery = a.Lease / 5
	}
	if a.Margin == 0 {
		a.Margin = time.Second
	}
	if a.Drift == 0 {
		a.Drift = 0.01
	}
	return a
}

// validate checks the applications' configuration (after withDefaults),
// naming the field at fault; kinds are the daemon's, which the specs must
// use.
func (a AppsConfig) validate(kinds Kinds) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if len(a.Members) > MaxAppMembers {
		return bad("app members", "%d members, at most %d", len(a.Members), MaxAppMembers)
	}
	seen := map[string]bool{}
	for _, m := range a.Members {
		if err := checkName(m); err != nil {
			return bad("app members", "%q: %v", truncate(m, 64), err)
		}
		if seen[m] {
			return bad("app members", "%q listed twice", m)
		}
		seen[m] = true
	}
	if len(a.Members) == 0 {
		if len(a.Apps) > 0 {
			return bad("apps", "applications declared but no app members: list the daemons that run the registry")
		}
		return nil // applications off: the timings are not used
	}
	election := time.Duration(a.ElectionTicks) * a.Tick
	switch {
	case a.Tick < time.Millisecond || a.Tick > 10*time.Second:
		return bad("app tick", "%v: want 1ms to 10s", a.Tick)
	case a.ElectionTicks < 3 || a.ElectionTicks > 1000:
		return bad("app election ticks", "%d: want 3 to 1000", a.ElectionTicks)
	case a.Lease > appreg.MaxLease:
		return bad("app lease", "%v: at most %v", a.Lease, appreg.MaxLease)
	case a.Lease < 2*election:
		return bad("app lease", "%v: at least twice the election timeout (%d ticks of %v = %v), so that an election does not cost a lease",
			a.Lease, a.ElectionTicks, a.Tick, election)
	case a.RenewEvery < a.Tick || a.RenewEvery > a.Lease/2:
		return bad("app renew every", "%v: want a tick (%v) to half the lease (%v)", a.RenewEvery, a.Tick, a.Lease/2)
	case a.Margin < 2*a.Tick || a.Margin > time.Minute:
		return bad("app margin", "%v: want two ticks (%v) to 1m: a lease's end is seen at the next tick, and the root gets margin - tick to stop",
			a.Margin, 2*a.Tick)
	case a.Drift < 0 || a.Drift > 0.1:
		return bad("app drift", "%v: want 0 to 0.1", a.Drift)
	case len(a.Apps) > appreg.MaxApps:
		return bad("apps", "%d applications, at most %d", len(a.Apps), appreg.MaxApps)
	}
	names := map[string]bool{}
	for i, s := range a.Apps {
		if _, err := encodeAppSpec(s, kinds); err != nil {
			return bad(fmt.Sprintf("apps[%d]", i), "%v", err)
		}
		if names[s.Name] {
			return bad(fmt.Sprintf("apps[%d]", i), "application %q declared twice", s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

// apps is a daemon's part of the application registry.
type apps struct {
	d      *Daemon
	cfg    AppsConfig
	ids    map[string]uint64 // member name -> raft ID
	self   uint64            // this daemon's raft ID, 0 if it is no member
	store  *appreg.BoltStore
	timed  *timedStore // store, measured
	sup    actor.Ref   // supervises the driver
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	driver    actor.Ref                // the driver's current ref, zero when none runs
	live      map[string]*liveApp      // the applications whose root runs here, by name
	claimed   map[string]uint64        // the applications being upgraded, having a child moved, or their root handed over from here: each claim's token (tryClaim)
	claims    uint64                   // the last claim's token
	runner    *appRunner               // the driver's Runner; its loop only (tests reach it by Inspect)
	handedOff map[string]*handOffWatch // the children this daemon holds for handovers, by application
	ulog      *slog.Logger             // rolling upgrades' lines (appupgrade.go)
}

// memberIDs gives each member its raft ID: its rank in the sorted list,
// from 1, the same on every daemon given the same set.
func memberIDs(members []string) map[string]uint64 {
	s := slices.Clone(members)
	slices.Sort(s)
	ids := make(map[string]uint64, len(s))
	for i, m := range s {
		ids[m] = uint64(i + 1)
	}
	return ids
}

// newApps makes the daemon's part of the registry, before the gateway
// that reads it starts; startApps starts it.
func newApps(d *Daemon) *apps {
	a := &apps{d: d, cfg: d.cfg.Apps, ids: memberIDs(d.cfg.Apps.Members), kick: make(chan struct{}, 1), done: make(chan struct{}),
		live: map[string]*liveApp{}, claimed: map[string]uint64{}, ulog: upgradeLog(d.log)}
	a.self = a.ids[d.cfg.Name]
	return a
}

// startApps starts this daemon's replica if it is a member: its store,
// the driver under a supervisor, the search for the other members'
// drivers, and the boot deployment of the configured applications.
func (d *Daemon) startApps(ctx context.Context) error {
	a, cfg := d.apps, d.cfg.Apps
	if a.self == 0 {
		close(a.done)
		if len(cfg.Members) > 0 {
			d.log.Info("applications: not a registry member; application calls go to a member's gateway", "app_members", cfg.Members)
		}
		return nil
	}
	st, err := appreg.OpenBoltStore(filepath.Join(d.cfg.DataDir, AppStoreFile))
	if err != nil {
		close(a.done)
		return err
	}
	a.store = st
	a.timed = &timedStore{Store: st}
	var inc [8]byte
	_, _ = rand.Read(inc[:])
	members := make([]appreg.Member, 0, len(a.ids))
	for n, id := range a.ids {
		members = append(members, appreg.Member{ID: id, Node: n})
	}
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	run := &appRunner{d: d, log: d.log.With("component", "apps"), stopAfter: cfg.Margin - cfg.Tick, insts: map[string]*appInstance{}}
	a.runner = run
	dcfg := driver.Config{
		Replica: appreg.Config{ID: a.self, Members: members, Store: a.timed, TickInterval: cfg.Tick, ElectionTicks: cfg.ElectionTicks,
			Timing:      appreg.Timing{Lease: cfg.Lease, RenewEvery: cfg.RenewEvery, Drift: cfg.Drift, Margin: cfg.Margin},
			Incarnation: binary.LittleEndian.Uint64(inc[:]) | 1, Logger: d.log},
		Remote: d.node, Runner: run, Logger: d.log, OffLoop: true,
	}
	sup, err := d.sys.Spawn(ctx, supervisor.New(supervisor.Spec{
		Name: "actord.appreg", MaxR: 3, MaxT: time.Minute, Logger: d.log,
		Children: []supervisor.ChildSpec{{ID: "driver", Start: driver.New(dcfg), Shutdown: 5 * time.Second}},
	}), actor.Name("actord.appreg"))
	if err != nil {
		_ = st.Close()
		a.store = nil
		close(a.done)
		return fmt.Errorf("application registry: %w", err)
	}
	a.sup = sup
	lctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.peersLoop(lctx)
	if len(cfg.Apps) > 0 {
		go a.deployAtBoot(lctx)
	}
	// The registry's supervisor ends by itself only when it gave up (its
	// driver crashed past MaxR in MaxT): a member that stays up without a
	// replica would neither vote nor run applications, unnoticed. As an
	// Erlang node whose permanent application ended, the daemon stops with
	// the reason, for its service manager to restart it: the watch only
	// tells d.appsEnded, which the daemon reads once Start has returned.
	if _, err := d.sys.Spawn(ctx, func() actor.Actor {
		return &registryWatch{sup: sup, ended: func(reason error) {
			select {
			case d.appsEnded <- fmt.Errorf("%w: %v", ErrRegistryEnded, reason):
			default:
			}
		}}
	}, actor.Name("actord.appreg.watch")); err != nil {
		return fmt.Errorf("application registry: its watch: %w", err)
	}
	d.log.Info("applications: registry replica started", "id", a.self, "app_members", cfg.Members,
		"store", filepath.Join(d.cfg.DataDir, AppStoreFile), "lease", cfg.Lease, "tick", cfg.Tick)
	return nil
}

// ErrRegistryEnded is Daemon.Err's cause when the daemon stopped because
// its application registry replica ended by itself (its supervisor gave up
// restarting the driver).
var ErrRegistryEnded = errors.New("daemon: the application registry ended")

// registryWatch calls ended once sup, the registry's supervisor, ends.
type registryWatch struct {
	sup   actor.Ref
	ended func(reason error)
}

func (w *registryWatch) Start(c *actor.Context) error { return c.Monitor(w.sup) }

func (w *registryWatch) Receive(c *actor.Context, msg any) (any, error) {
	if d, ok := msg.(actor.Down); ok && d.Ref == w.sup {
		reason := d.Reason
		if reason == nil {
			reason = errors.New("stopped")
		}
		w.ended(reason)
		return nil, c.Stop(c.Self(), nil)
	}
	return nil, nil
}

// timedStore counts the writes of the replica's store and the time they
// take: each is a synced bbolt transaction, on the worker pool (see the
// metrics actord_appreg_store_*).
type timedStore struct {
	appreg.Store
	writes atomic.Uint64
	nanos  atomic.Uint64
	max    atomic.Uint64
}

func (s *timedStore) time(start time.Time) {
	d := uint64(time.Since(start))
	s.writes.Add(1)
	s.nanos.Add(d)
	for m := s.max.Load(); d > m && !s.max.CompareAndSwap(m, d); m = s.max.Load() {
	}
}

// Save implements appreg.Store.
func (s *timedStore) Save(hs *pb.HardState, snap *pb.Snapshot, ents []*pb.Entry) error {
	defer s.time(time.Now())
	return s.Store.Save(hs, snap, ents)
}

// Compact implements appreg.Store.
func (s *timedStore) Compact(snap *pb.Snapshot) error {
	defer s.time(time.Now())
	return s.Store.Compact(snap)
}

// families are the registry's metrics (none when this daemon is no
// member).
func (a *apps) families() []debug.Family {
	if a == nil || a.timed == nil {
		return nil
	}
	f := func(name, help string, t debug.MetricType, v float64) debug.Family {
		return debug.Family{Name: name, Help: help, Type: t, Samples: []debug.Sample{{Value: v}}}
	}
	return []debug.Family{
		f("actord_appreg_store_writes_total", "Synced writes of the application registry's store (on the worker pool, off the event loops).",
			debug.MetricCounter, float64(a.timed.writes.Load())),
		f("actord_appreg_store_write_seconds_total", "Time spent in those writes.", debug.MetricCounter, time.Duration(a.timed.nanos.Load()).Seconds()),
		f("actord_appreg_store_write_seconds_max", "The longest of those writes.", debug.MetricGauge, time.Duration(a.timed.max.Load()).Seconds()),
	}
}

// close ends the background work and closes the store, once the actor
// system (and so the driver) has stopped.
func (a *apps) close() {
	if a == nil {
		return
	}
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	if a.store != nil {
		_ = a.store.Close()
		a.store = nil
	}
}

// driverRef returns the local driver's ref (zero if none runs).
func (a *apps) driverRef() actor.Ref {
	if a == nil {
		return actor.Ref{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.driver
}

// isMember reports whether node is a registry member.
func (a *apps) isMember(node string) bool {
	if a == nil {
		return false
	}
	_, ok := a.ids[node]
	return ok
}

// refreshEvery is how often the members' drivers are looked up again
// (also at once when a member's gateway is learned): a restarted driver
// has a new ref.
const refreshEvery = 2 * time.Second

// peersLoop keeps the local driver's peers (the other members' drivers,
// found through their gateways) up to date.
func (a *apps) peersLoop(ctx context.Context) {
	defer close(a.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	var lastLocal actor.Ref
	var last map[uint64]actor.Ref
	for {
		local := a.lookupLocal(ctx)
		a.mu.Lock()
		a.driver = local
		a.mu.Unlock()
		peers := keepUnanswered(a.lookupPeers(ctx), last)
		if !local.IsZero() {
			// Sent every time, changed or not: a driver restarted in
			// place after a crash keeps its ref and starts without peers.
			if err := a.d.sys.Send(local, driver.SetPeers{Refs: peers}); err == nil &&
				(local != lastLocal || !maps.Equal(peers, last)) {
				a.d.log.Debug("applications: registry peers", "peers", len(peers))
				lastLocal, last = local, peers
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-t.C:
		}
	}
}

// wake makes peersLoop look again now.
func (a *apps) wake() {
	if a == nil || a.self == 0 {
		return
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// lookupLocal asks the driver's supervisor for the driver.
func (a *apps) lookupLocal(ctx context.Context) actor.Ref {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := a.d.sys.Ask(ctx, a.sup, supervisor.WhichChildren{})
	if err != nil {
		return actor.Ref{}
	}
	cs, _ := v.([]supervisor.ChildInfo)
	for _, c := range cs {
		if c.Running {
			return c.Ref
		}
	}
	return actor.Ref{}
}

// lookupPeers asks the gateway of every member it knows for the member's
// driver, all at once, each within a second.
func (a *apps) lookupPeers(ctx context.Context) peerLookup {
	type found struct {
		id       uint64
		ref      actor.Ref
		answered bool
	}
	g := a.d.gw
	g.mu.Lock()
	asks := map[uint64]actor.Ref{}
	for name, pg := range g.peers {
		if id, ok := a.ids[name]; ok && id != a.self {
			asks[id] = pg.ref
		}
	}
	g.mu.Unlock()
	out := make(chan found, len(asks))
	var wg sync.WaitGroup
	for id, gw := range asks {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			v, err := a.d.sys.Ask(actx, gw, appregWhere{})
			if h, ok := v.(appregHere); err == nil && ok {
				out <- found{id, h.Driver, true}
			}
		})
	}
	wg.Wait()
	close(out)
	l := peerLookup{asked: map[uint64]bool{}, found: map[uint64]actor.Ref{}}
	for id := range asks {
		l.asked[id] = false
	}
	for f := range out {
		l.asked[f.id] = true
		if !f.ref.IsZero() {
			l.found[f.id] = f.ref
		}
	}
	return l
}

// peerLookup is one round of lookups: the members asked (true if they
// answered) and the drivers found.
type peerLookup struct {
	asked map[uint64]bool
	found map[uint64]actor.Ref
}

// keepUnanswered returns the drivers found, plus the last known driver of
// each member that is still a known gateway but did not answer this round
// (a lookup slower than a second on a loaded machine): dropping it would
// cut its raft messages until the next round, and a leader losing two
// peers that way steps down. A member that answered with no driver, or is
// no longer a known gateway, is dropped.
func keepUnanswered(l peerLookup, last map[uint64]actor.Ref) map[uint64]actor.Ref {
	peers := maps.Clone(l.found) // lookupPeers never leaves it nil
	for id, answered := range l.asked {
		if r, ok := last[id]; ok && !answered {
			if _, found := peers[id]; !found {
				peers[id] = r
			}
		}
	}
	return peers
}

// appCallLimit bounds the application calls a gateway runs at once: each
// holds a worker of the pool for up to appCallTimeout, and the registry's
// store writes need the pool too, so a quarter of its workers (at least
// one). workers is actor.Config.Workers (0: its default, 4×GOMAXPROCS).
func appCallLimit(workers int) int32 {
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	return int32(max(1, min(workers/4, math.MaxInt32)))
}

// appregWhere asks a member's gateway for its registry driver; only
// another member is answered (an appregHere).
type appregWhere struct{}

// appregHere answers appregWhere: the driver's ref, zero if none runs.
type appregHere struct{ Driver actor.Ref }

// where answers appregWhere, for members only.
func (g *Gateway) where(c *actor.Context) (any, error) {
	node, _, _, ok := g.d.node.ExportRef(c.Sender())
	if !ok || node == g.d.cfg.Name || !g.d.apps.isMember(node) {
		return nil, actor.ErrUnknownMessage
	}
	return appregHere{Driver: g.d.apps.driverRef()}, nil
}

// deployAtBoot deploys the configured applications whose spec the
// registry does not hold yet, retrying until it has them all (or the
// daemon stops).
func (a *apps) deployAtBoot(ctx context.Context) {
	type want struct {
		spec AppSpec
		enc  []byte
	}
	var todo []want
	for _, s := range a.cfg.Apps {
		b, err := encodeAppSpec(s, a.d.cfg.Kinds) // checked by Validate
		if err == nil {
			todo = append(todo, want{s, b})
		}
	}
	backoff := a.cfg.Tick
	var lastErr error
	for attempt := 1; len(todo) > 0; attempt++ {
		if attempt%30 == 0 {
			a.d.log.Warn("applications: configured applications not deployed yet; retrying", "apps", len(todo), "attempts", attempt,
				"err", fmt.Sprint(lastErr))
		}
		st, err := a.status(ctx)
		if err != nil {
			lastErr = err
		} else if st.Leader == 0 {
			lastErr = appreg.ErrNoLeader
		}
		if err == nil && st.Leader != 0 {
			rest := todo[:0]
			for _, w := range todo {
				if holds(st, w.spec, w.enc) {
					a.d.log.Info("applications: deployed from the config file", "app", w.spec.Name)
					continue
				}
				cmd := appreg.Command{Op: appreg.OpDeploy, App: w.spec.Name, Spec: w.enc, Prefer: w.spec.Prefer, Takeover: w.spec.Takeover}
				err := refusal(st, cmd)
				if err == nil {
					err = a.propose(ctx, cmd)
				}
				if permanent(err) {
					a.d.log.Error("applications: configured application refused by the registry; not deployed", "app", w.spec.Name, "err", err)
					continue
				}
				if err != nil {
					lastErr = err
				}
				rest = append(rest, w)
			}
			todo = rest
		}
		if len(todo) == 0 {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// permanent reports whether err is a refusal that proposing the same
// command again cannot change (not a "retry").
func permanent(err error) bool {
	return errors.Is(err, appreg.ErrTooLarge) || errors.Is(err, appreg.ErrMalformed) || errors.Is(err, appreg.ErrLimit)
}

// refusal is the error the registry, as st shows it, would give cmd when
// applied (which no proposer hears of): a deploy of a new application
// into a full registry. Nil otherwise.
func refusal(st driver.Status, cmd appreg.Command) error {
	if cmd.Op != appreg.OpDeploy {
		return nil
	}
	live, record, kept := 0, false, false
	for _, x := range st.Apps {
		if x.Name == cmd.App {
			record, kept = true, x.Desired != appreg.Removed
		}
		if x.Desired != appreg.Removed {
			live++
		}
	}
	if !kept && live >= appreg.MaxApps || !record && len(st.Apps) >= appreg.MaxRecords {
		return fmt.Errorf("%w: %d applications deployed, at most %d (%d records, at most %d; remove some)",
			appreg.ErrLimit, live, appreg.MaxApps, len(st.Apps), appreg.MaxRecords)
	}
	return nil
}

// holds reports whether the registry, as st shows it, holds spec as
// encoded (not removed).
func holds(st driver.Status, spec AppSpec, enc []byte) bool {
	for _, app := range st.Apps {
		if app.Name == spec.Name {
			return app.Desired != appreg.Removed && bytes.Equal(app.Spec, enc) &&
				slices.Equal(app.Prefer, spec.Prefer) && app.Takeover == spec.Takeover
		}
	}
	return false
}

func (a *apps) status(ctx context.Context) (driver.Status, error) {
	ref := a.driverRef()
	if ref.IsZero() {
		return driver.Status{}, fmt.Errorf("%w: the registry replica is not running", gateway.ErrAppRetry)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := a.d.sys.Ask(ctx, ref, driver.GetStatus{})
	if err != nil {
		return driver.Status{}, fmt.Errorf("%w: %w", gateway.ErrAppRetry, err)
	}
	st, _ := v.(driver.Status)
	return st, nil
}

func (a *apps) propose(ctx context.Context, cmd appreg.Command) error {
	ref := a.driverRef()
	if ref.IsZero() {
		return fmt.Errorf("%w: the registry replica is not running", gateway.ErrAppRetry)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := a.d.sys.Ask(ctx, ref, driver.Propose{Cmd: cmd})
	return err
}
