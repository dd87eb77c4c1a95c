package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/cluster"
	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/appreg/driver"
	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// ReadyMsg is the message of the log record a daemon writes once it is
// ready, and the "msg" member of the ready line `actord run` prints on
// stdout.
const ReadyMsg = "actord ready"

// ReadyVersion is the version of the ready line's format. Members are only
// ever added within a version.
const ReadyVersion = 1

// Info says where a ready daemon listens. Marshalled as JSON it is the
// ready line (see docs/deploy.md).
type Info struct {
	Msg         string `json:"msg"`     // ReadyMsg
	Version     int    `json:"version"` // ReadyVersion
	Node        string `json:"node"`
	Addr        string `json:"addr"`                   // remote (gnet) address
	GossipAddr  string `json:"gossip_addr"`            // memberlist address
	DebugAddr   string `json:"debug_addr,omitempty"`   // "" when the debug server is off
	MetricsAddr string `json:"metrics_addr,omitempty"` // where /metrics is served
	TokenFile   string `json:"token_file,omitempty"`   // the debug token
	DataDir     string `json:"data_dir"`
	Loops       int    `json:"loops"`
	PID         int    `json:"pid"`

	// CapabilityFile holds the gateway's capability (see Gateway).
	CapabilityFile string `json:"capability_file,omitempty"`
	// PublicKey is the node's public key (remote.Node.PublicKey), in hex:
	// its identity on the wire, stable across restarts while the data
	// dir's NodeKeyFile is kept.
	PublicKey string `json:"public_key,omitempty"`
}

// ParseReady recognises a ready line and decodes it.
func ParseReady(line []byte) (Info, bool) {
	var i Info
	if err := json.Unmarshal(line, &i); err != nil || i.Msg != ReadyMsg {
		return Info{}, false
	}
	return i, true
}

// Daemon is a running actord daemon. See the package documentation.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	sys   *actor.System
	rec   *debug.Recorder
	tree  *supervisor.ServiceTree
	node  *remote.Node
	agent *cluster.Agent
	dbg   *debugService
	met   *metricsService
	info  Info
	gw    *Gateway // see gateway.go
	// appCallMax bounds the gateway's application calls at once (apps.go).
	appCallMax int32
	// upgrades are Config.Upgrades, by kinds (kindupgrade.go).
	upgrades map[upgradeKey]KindUpgrade
	// moves serializes the moves of each actor (appupgrade.go).
	moves refLocks
	// handoffs are Config.Handoffs, by kind; holds the children held for
	// movers (handoff.go).
	handoffs map[string]KindHandoff
	holds    holdTable
	// lost are, by application, the children of a root handed over that
	// were not held for the next root (apphandover.go).
	lostMu sync.Mutex
	lost   map[string][]string
	// watches are the watches of children held for handovers from here
	// (apphandover.go), joined when the daemon stops.
	watches handOffWatches
	bus     *event.Bus
	ev      *daemonEvents
	// nodeKey is the node's private key (remote.Config.PrivateKey): the
	// gateway proves with it that its introductions come from this member.
	nodeKey []byte

	apps              *apps                // the application registry's replica (apps.go)
	appsP             atomic.Pointer[apps] // apps, for metrics scrapes during Start
	nodeSvc           *nodeService
	agentP            atomic.Pointer[cluster.Agent] // for metrics scrapes during Start
	nodeTok, agentTok suture.ServiceToken
	cancel            context.CancelFunc
	treeDone          chan struct{} // closed when the tree's Serve has returned
	treeErr           error         // what it returned
	done              chan struct{}
	stopping          atomic.Bool
	stopOnce          sync.Once
	stopErr           error
	lastFail          atomic.Value // string: the last service failure, for Start's error
	startFail         chan error   // the first service failure before ready: Start fails at once
	appsEnded         chan error   // the application registry ended by itself (ErrRegistryEnded)
	ready             atomic.Bool  // Start has returned it, and no stop has begun (/readyz)
}

// Start starts a daemon and returns once it is ready (every listener up,
// the ready record logged). A configuration problem is an error matching
// ErrConfig. If ctx ends or Config.StartTimeout passes first, everything
// started is stopped again.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Peers can make any part of the daemon log (junk packets, failed
	// handshakes, refused introductions): every line goes through one rate
	// limiter, per message and source.
	cfg.Logger = ratelog.Wrap(cfg.Logger, ratelog.Config{})
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: data dir: %w", err)
	}
	log := cfg.Logger.With("node", cfg.Name)
	rcfg, err := cfg.remoteConfig(log)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, done: make(chan struct{}), nodeKey: rcfg.PrivateKey, startFail: make(chan error, 1),
		appsEnded: make(chan error, 1)}
	d.lastFail.Store("")
	d.watches.ctx, d.watches.cancel = context.WithCancel(context.Background())

	// One event bus per daemon (see Bus). The remote node hands it to its
	// connection manager, which emits its decisions on it.
	d.bus = event.New(event.Config{})
	rt, _ := event.NewRuntime(d.bus) // cannot fail: the bus is new
	d.ev = newDaemonEvents(d.bus)
	rcfg.Events = d.bus
	acfg := rt.Install(actor.Config{Loops: cfg.Loops, ExternalLoops: true, Logger: log})
	d.rec = debug.Install(&acfg, debug.Config{})
	d.sys = actor.NewSystem(acfg)
	d.appCallMax = appCallLimit(acfg.Workers)
	d.upgrades = upgradeTable(cfg.Upgrades)
	d.handoffs = handoffTable(cfg.Handoffs)
	if err := d.rec.Attach(d.sys); err != nil {
		_ = d.sys.Shutdown(context.Background())
		return nil, fmt.Errorf("daemon: debug recorder: %w", err)
	}
	// gnet's Engine.Stop polls every 500 ms: the stop timeout leaves room.
	spec := suture.Spec{EventHook: d.hook, Timeout: 5 * time.Second}
	d.tree = supervisor.NewServiceTree(d.sys, spec)

	d.node = remote.New(d.sys, rcfg)
	d.nodeSvc = &nodeService{Node: d.node, final: make(chan struct{})}
	d.nodeTok = d.tree.Root.Add(d.nodeSvc)

	tokenFile := ""
	if cfg.DebugAddr != Off {
		tokenFile = cfg.TokenFile
		d.dbg = newDebugService(d.rec, debug.ServerConfig{Addr: cfg.DebugAddr, TokenFile: cfg.TokenFile, Logger: log, Ready: d.Ready, Bus: d.bus,
			Peers: d.node.Peers}, d.metricFamilies)
		d.tree.Root.Add(d.dbg)
	}
	if cfg.separateMetrics() {
		d.met = newMetricsService(cfg.MetricsAddr, d.rec, d.metricFamilies, d.Ready, log)
		d.tree.Root.Add(d.met)
	}

	tctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.treeDone = make(chan struct{})
	errc := d.tree.Root.ServeBackground(tctx)
	go func() { d.treeErr = <-errc; close(d.treeDone) }()
	if err := driver.Register(d.node); err != nil { // the registry's raft messages
		d.abort()
		return nil, fmt.Errorf("daemon: register types: %w", err)
	}
	if cfg.RegisterTypes != nil { // before the node is ready: nothing it decodes can miss them
		if err := cfg.RegisterTypes(d.node); err != nil {
			d.abort() // the loops run under the tree: only it can stop them
			return nil, fmt.Errorf("%w: register types: %w", ErrConfig, err)
		}
	}

	sctx, scancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer scancel()
	fail := func(what string, err error) (*Daemon, error) {
		if se := (*startError)(nil); errors.As(err, &se) {
			se.addr = map[string]string{"remote-node": cfg.Listen, "cluster-agent": cfg.Gossip,
				"debug-http": cfg.DebugAddr, "metrics-http": cfg.MetricsAddr}[se.service]
			d.abort()
			return nil, fmt.Errorf("daemon: %w", err)
		}
		if last := d.lastFail.Load().(string); last != "" {
			err = fmt.Errorf("%w (last failure: %s)", err, last)
		}
		d.abort()
		return nil, fmt.Errorf("daemon: %s: %w", what, err)
	}
	if err := d.wait(sctx, d.node.Ready()); err != nil {
		return fail("remote node did not start on "+cfg.Listen, err)
	}
	ccfg := cfg.Cluster
	ccfg.Name, ccfg.RemoteAddr, ccfg.Bind, ccfg.Advertise = cfg.Name, d.node.Addr(), cfg.Gossip, cfg.Advertise
	ccfg.Seeds, ccfg.Peers, ccfg.Logger = cfg.Seeds, d.node, cfg.Logger
	ccfg.PublicKey = d.node.PublicKey() // members check the gateway's introductions with it
	ccfg.Caps = slices.Clone(ccfg.Caps)
	if !cfg.noAppRelease {
		ccfg.Caps = append(ccfg.Caps, capAppRelease)
	}
	if len(ccfg.SecretKey) == 0 && rcfg.ClusterKey != nil {
		ccfg.SecretKey = GossipKey(rcfg.ClusterKey)
	}
	d.agent = cluster.New(ccfg)
	d.ev.watch(d.agent)
	d.agentP.Store(d.agent)
	d.agentTok = d.tree.Root.Add(d.agent)
	if err := d.wait(sctx, d.agent.Ready()); err != nil {
		return fail("cluster agent did not start on "+cfg.Gossip, err)
	}
	d.ev.members(d.agent)
	d.apps = newApps(d)
	if err := d.startGateway(sctx); err != nil {
		return fail("gateway did not start", err)
	}
	if err := d.startApps(sctx); err != nil {
		return fail("application registry did not start", err)
	}
	d.appsP.Store(d.apps) // started: its fields are set
	if d.dbg != nil {
		if err := d.wait(sctx, d.dbg.ready); err != nil {
			return fail("debug server did not start on "+cfg.DebugAddr, err)
		}
	}
	if d.met != nil {
		if err := d.wait(sctx, d.met.ready); err != nil {
			return fail("metrics server did not start on "+cfg.MetricsAddr, err)
		}
	}

	d.info = Info{Msg: ReadyMsg, Version: ReadyVersion, Node: cfg.Name, Addr: d.node.Addr(),
		GossipAddr: d.agent.GossipAddr(), TokenFile: tokenFile, DataDir: cfg.DataDir,
		Loops: d.sys.Loops(), PID: os.Getpid(), CapabilityFile: d.gw.File(),
		PublicKey: hex.EncodeToString(d.node.PublicKey())}
	if d.dbg != nil {
		d.info.DebugAddr, d.info.MetricsAddr = d.dbg.Addr(), d.dbg.Addr()
	}
	if d.met != nil {
		d.info.MetricsAddr = d.met.Addr()
	}
	if tokenFile != "" {
		log.Info("debug token written", "token_file", tokenFile)
	}
	log.Info(ReadyMsg, "addr", d.info.Addr, "gossip_addr", d.info.GossipAddr, "debug_addr", d.info.DebugAddr,
		"metrics_addr", d.info.MetricsAddr, "token_file", d.info.TokenFile, "data_dir", d.info.DataDir,
		"loops", d.info.Loops, "seeds", cfg.Seeds, "pid", d.info.PID, "public_key", d.info.PublicKey,
		"cluster_key_file", cfg.ClusterKeyFile)
	d.ready.Store(true)
	go func() { // the tree ending by itself (it should not) ends the daemon
		select {
		case err := <-d.appsEnded:
			if d.stopping.Load() {
				return // Shutdown or Kill stopped the registry
			}
			d.log.Error("daemon: stopping: the application registry ended", "err", err)
			_ = d.shutdown(context.Background(), err)
		case <-d.treeDone:
			if d.stopping.Load() {
				return // Shutdown or Kill is under way and will finish
			}
			d.log.Error("daemon: service tree stopped", "err", d.treeErr)
			d.stopOnce.Do(func() {
				d.stopping.Store(true)
				d.ready.Store(false)
				d.stopErr = fmt.Errorf("daemon: service tree stopped: %w", d.treeErr)
				ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
				defer cancel()
				_ = d.sys.Shutdown(ctx)
				d.apps.close()
				d.finish()
			})
		case <-d.done:
		}
	}()
	return d, nil
}

// remoteConfig is the remote node's configuration: Config.Remote with the
// name, address and logger, the cluster key read from ClusterKeyFile, and
// the node key from the data dir unless Remote.PrivateKey is set.
func (c Config) remoteConfig(log *slog.Logger) (remote.Config, error) {
	rcfg := c.Remote
	rcfg.Name, rcfg.Listen, rcfg.Logger = c.Name, c.Listen, c.Logger
	if c.ClusterKeyFile != "" {
		k, err := remote.ReadClusterKey(c.ClusterKeyFile)
		if err != nil {
			return rcfg, fmt.Errorf("%w: cluster key file: %w", ErrConfig, err)
		}
		rcfg.ClusterKey = k
	}
	if rcfg.PrivateKey == nil {
		path := filepath.Join(c.DataDir, NodeKeyFile)
		k, created, err := loadNodeKey(path, log)
		if err != nil {
			if errors.Is(err, ErrConfig) {
				return rcfg, err
			}
			return rcfg, fmt.Errorf("daemon: %w", err)
		}
		if created {
			log.Info("node key created", "node_key_file", path)
		}
		rcfg.PrivateKey = k
	}
	return rcfg, nil
}

// separateMetrics reports whether /metrics gets a listener of its own:
// MetricsAddr is set and is not the debug server's address (two ":0"
// addresses are two listeners).
func (c Config) separateMetrics() bool {
	return c.MetricsAddr != "" && (c.MetricsAddr != c.DebugAddr || strings.HasSuffix(c.MetricsAddr, ":0") || c.DebugAddr == Off)
}

// wait waits for ch, or fails when ctx ends or a service fails: at start a
// failure (a port in use, say) is not something a restart would fix, so
// Start reports it at once instead of retrying until StartTimeout.
func (d *Daemon) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case err := <-d.startFail: // Start fails with it: there is no next wait
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startError is a service's failure before the daemon was ready.
type startError struct {
	service string
	addr    string // what it listens on, if known
	err     error
}

func (e *startError) Error() string {
	if e.addr != "" {
		return e.service + " on " + e.addr + " failed: " + e.err.Error()
	}
	return e.service + " failed: " + e.err.Error()
}
func (e *startError) Unwrap() error { return e.err }

// failedAtStart passes a service's failure to Start, if it is still
// waiting.
func (d *Daemon) failedAtStart(service string, err any) {
	if d.ready.Load() || d.stopping.Load() {
		return
	}
	e := &startError{service: service}
	if ee, ok := err.(error); ok {
		e.err = ee
	} else {
		e.err = fmt.Errorf("%v", err)
	}
	select {
	case d.startFail <- e:
	default: // the first failure is the one reported
	}
}

// Ready reports whether the daemon is ready (Start has returned it) and
// not stopping: what /readyz answers.
func (d *Daemon) Ready() bool { return d.ready.Load() }

// hook logs the service tree's events.
func (d *Daemon) hook(e suture.Event) {
	switch ev := e.(type) {
	case suture.EventServicePanic:
		d.log.Error("daemon: service panicked", "supervisor", ev.SupervisorName, "service", ev.ServiceName,
			"panic", ev.PanicMsg, "restarting", ev.Restarting, "stack", ev.Stacktrace)
		d.lastFail.Store(fmt.Sprintf("%s panicked: %s", ev.ServiceName, ev.PanicMsg))
		d.failedAtStart(ev.ServiceName, "panicked: "+ev.PanicMsg)
		d.ev.serviceFailed(ev.ServiceName, errors.New(ev.PanicMsg), true, ev.Restarting)
	case suture.EventServiceTerminate:
		if d.stopping.Load() {
			d.log.Debug("daemon: service stopped", "service", ev.ServiceName, "err", fmt.Sprint(ev.Err))
			return
		}
		d.log.Warn("daemon: service failed", "supervisor", ev.SupervisorName, "service", ev.ServiceName,
			"err", fmt.Sprint(ev.Err), "restarting", ev.Restarting)
		d.lastFail.Store(fmt.Sprintf("%s: %v", ev.ServiceName, ev.Err))
		d.failedAtStart(ev.ServiceName, ev.Err)
		err, ok := ev.Err.(error)
		if !ok {
			err = fmt.Errorf("%v", ev.Err)
		}
		d.ev.serviceFailed(ev.ServiceName, err, false, ev.Restarting)
	default:
		d.log.Warn("daemon: "+firstLine(e.String()), "event", fmt.Sprintf("%T", e))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Info returns where the daemon listens.
func (d *Daemon) Info() Info { return d.info }

// System returns the daemon's actor system.
func (d *Daemon) System() *actor.System { return d.sys }

// Node returns the daemon's remote node (register message types and kinds
// on it).
func (d *Daemon) Node() *remote.Node { return d.node }

// Agent returns the daemon's cluster membership agent.
func (d *Daemon) Agent() *cluster.Agent { return d.agent }

// Recorder returns the daemon's debug recorder.
func (d *Daemon) Recorder() *debug.Recorder { return d.rec }

// Bus returns the daemon's event bus, for applications to subscribe to
// and emit on. The daemon emits on it the lifecycle of its actors
// (event.ActorSpawned, ActorStopped, ActorCrashed, ActorRestarted,
// SupervisorGaveUp, LoopOverloaded), of its remote node (NodeUp, NodeDown,
// ConnOpened, ConnClosed, DeadLetter) and its connection manager
// (connmgr.PeerTrimmed, connmgr.LockElapsed), its cluster membership
// (MemberChanged, and Membership from a stateful emitter) and the failures
// of its services (ServiceFailed); the debug server streams it. The bus
// closes when the daemon has stopped, after the last of those events.
func (d *Daemon) Bus() *event.Bus { return d.bus }

// Done is closed once the daemon has stopped (Shutdown, Kill, or its
// service tree ending by itself).
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Err returns why the daemon stopped, once Done is closed: nil after a
// clean Shutdown.
func (d *Daemon) Err() error {
	select {
	case <-d.done:
		return d.stopErr
	default:
		return nil
	}
}

// Shutdown stops the daemon gracefully, within ctx and
// Config.ShutdownTimeout (counted after the drain of Config.DrainOnStop,
// which DrainTimeout bounds): the agent leaves the cluster; the actor system
// shuts down (every actor stops, supervision trees in reverse start order
// with their timeouts, queued asks fail with actor.ErrShutdown) while the
// network still carries Down notifications; then the tree stops the remote
// node (connections close, asks pending on peers fail) and the HTTP
// servers. It returns an error if some part did not stop in time.
func (d *Daemon) Shutdown(ctx context.Context) error { return d.shutdown(ctx, nil) }

// shutdown is Shutdown; a non-nil cause (why the daemon stops by itself)
// comes first in Err.
func (d *Daemon) shutdown(ctx context.Context, cause error) error {
	d.stopOnce.Do(func() {
		d.stopping.Store(true)
		d.ready.Store(false)
		d.log.Info("actord stopping")
		if d.cfg.DrainOnStop && cause == nil && d.apps != nil && len(d.cfg.Apps.Members) > 0 {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.drainTimeout())
			res := d.Drain(dctx)
			cancel()
			for _, c := range res.Children {
				if err := c.Err(); err != nil {
					d.log.Warn("drain: child left to the failover", "app", c.App, "child", c.Child, "err", err)
				}
			}
		}
		// The shutdown proper's bound starts after the drain, which has
		// its own (DrainTimeout).
		ctx, cancel := context.WithTimeout(ctx, d.cfg.ShutdownTimeout)
		defer cancel()
		// Before the leave, which cuts the connections their answers take.
		d.endForwarders(ctx)
		var errs []error
		if cause != nil {
			errs = append(errs, cause)
		}
		// RemoveAndWait only cancels the service's context: wait for the
		// agent's Serve (its leave) to return.
		_ = d.tree.Root.RemoveAndWait(d.agentTok, d.remaining(ctx))
		select {
		case <-d.agent.Done():
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("cluster agent: leave: %w", ctx.Err()))
		}
		if err := d.sys.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("actor system: %w", err))
		}
		d.apps.close()
		d.cancel()
		select {
		case <-d.treeDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("service tree: %w", ctx.Err()))
		}
		d.stopErr = errors.Join(errs...)
		if d.stopErr != nil {
			d.log.Error("actord stopped with errors", "err", d.stopErr)
		} else {
			d.log.Info("actord stopped")
		}
		d.finish()
	})
	<-d.done
	return d.stopErr
}

func (d *Daemon) remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if r := time.Until(dl); r > 0 {
			return r
		}
		return time.Millisecond
	}
	return 0
}

// Kill stops the daemon as a crash would look to the rest of the cluster:
// the agent stops gossiping without leaving, the remote node closes its
// connections at once, and only then does the (now unreachable) actor
// system shut down, so no Down notification reaches other daemons. For
// tests.
func (d *Daemon) Kill() {
	d.stopOnce.Do(func() {
		d.stopping.Store(true)
		d.ready.Store(false)
		d.log.Warn("actord killed")
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
		defer cancel()
		d.agent.Kill()
		_ = d.tree.Root.RemoveAndWait(d.agentTok, d.remaining(ctx))
		_ = d.tree.Root.RemoveAndWait(d.nodeTok, d.remaining(ctx))
		select { // the node's connections are closed before the actors stop
		case <-d.agent.Done():
		case <-ctx.Done():
		}
		select {
		case <-d.nodeSvc.final:
		case <-ctx.Done():
		}
		_ = d.sys.Shutdown(ctx)
		d.apps.close()
		d.cancel()
		select {
		case <-d.treeDone:
		case <-ctx.Done():
		}
		d.stopErr = errors.New("daemon: killed")
		d.finish()
	})
	<-d.done
}

// abort undoes a failed Start.
func (d *Daemon) abort() {
	d.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	_ = d.sys.Shutdown(ctx)
	d.apps.close()
	d.cancel()
	select {
	case <-d.treeDone:
	case <-ctx.Done():
	}
	d.finish()
}

func (d *Daemon) finish() {
	select {
	case <-d.done:
	default:
		d.watches.stop()
		d.bus.Close() // after every service has stopped: subscribers get the last events first
		close(d.done)
	}
}

// daemonEvents emits the daemon's own events on its bus: its cluster
// membership as its agent sees it, and the failures of its services.
type daemonEvents struct {
	changed    *event.Emitter[event.MemberChanged]
	membership *event.Emitter[event.Membership]
	failed     *event.Emitter[event.ServiceFailed]
	upgraded   *event.Emitter[AppUpgraded]
	mu         sync.Mutex // orders Membership snapshots: the last emitted is the newest
}

func newDaemonEvents(b *event.Bus) *daemonEvents {
	e := &daemonEvents{}
	// A new bus: these cannot fail.
	e.changed, _ = event.NewEmitter[event.MemberChanged](b)
	e.membership, _ = event.NewEmitter[event.Membership](b, event.Stateful())
	e.failed, _ = event.NewEmitter[event.ServiceFailed](b)
	e.upgraded, _ = event.NewEmitter[AppUpgraded](b)
	return e
}

// watch bridges the agent's membership events to the bus, from the
// agent's dispatching goroutine (after it told the remote node of a
// failure). Emit never blocks, so the agent is never held up.
func (e *daemonEvents) watch(a *cluster.Agent) {
	a.Subscribe(func(ev cluster.Event) {
		_ = e.changed.Emit(event.MemberChanged{Change: ev.Kind.String(), Member: member(ev.Member), Time: ev.Time})
		e.members(a)
	})
}

// members emits the agent's current membership.
func (e *daemonEvents) members(a *cluster.Agent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ms := a.Members()
	out := make([]event.Member, len(ms))
	for i, m := range ms {
		out[i] = member(m)
	}
	_ = e.membership.Emit(event.Membership{Members: out, Time: time.Now()})
}

func member(m cluster.Member) event.Member {
	return event.Member{Name: m.Name, Addr: m.Addr, Gossip: m.Gossip, Self: m.Self}
}

func (e *daemonEvents) serviceFailed(service string, err error, panicked, restarting bool) {
	_ = e.failed.Emit(event.ServiceFailed{Service: service, Err: err, Panicked: panicked, Restarting: restarting, Time: time.Now()})
}

// nodeService runs the remote node under suture, names it for suture's
// logs, and tells when it has stopped for good.
type nodeService struct {
	*remote.Node
	final chan struct{} // closed when a Serve returns with its context done
	once  sync.Once
}

// Serve runs the node; see remote.Node.Serve.
func (n *nodeService) Serve(ctx context.Context) error {
	err := n.Node.Serve(ctx)
	if ctx.Err() != nil {
		n.once.Do(func() { close(n.final) })
	}
	return err
}

func (n *nodeService) String() string { return "remote-node" }

// metricFamilies are the daemon's metrics beyond the recorder's: the
// remote node's counters and the cluster's size.
func (d *Daemon) metricFamilies() []debug.Family {
	st := d.node.Stats()
	counter := func(name, help string, v uint64) debug.Family {
		return debug.Family{Name: name, Help: help, Type: debug.MetricCounter, Samples: []debug.Sample{{Value: float64(v)}}}
	}
	fams := []debug.Family{
		counter("actord_remote_frames_in_total", "Frames decoded from peers.", st.FramesIn),
		counter("actord_remote_frames_out_total", "Frames encoded for peers.", st.FramesOut),
		counter("actord_remote_bytes_in_total", "Bytes read from peers.", st.BytesIn),
		counter("actord_remote_bytes_out_total", "Bytes handed to the network for peers.", st.BytesOut),
		counter("actord_remote_connections_opened_total", "Connections opened, both directions.", st.ConnsOpened),
		counter("actord_remote_connections_closed_total", "Connections closed, both directions.", st.ConnsClosed),
		counter("actord_remote_bad_frames_total", "Connections closed for a malformed or oversized frame.", st.BadFrames),
		counter("actord_remote_refused_total", "Sends and asks refused because a peer's queue was full.", st.Refused),
		counter("actord_remote_dropped_total", "One-way messages received but not delivered.", st.Dropped),
		counter("actord_remote_peers_down_total", "Times a peer was declared down.", st.PeersDown),
		counter("actord_remote_connections_refused_total", "Accepted connections closed at once: over the unauthenticated caps, or out of file descriptors.", st.ConnsRefused),
		counter("actord_remote_handshake_timeouts_total", "Connections closed for no handshake and hello within the handshake timeout.", st.HandshakeTimeouts),
		counter("actord_remote_buffer_limited_total", "Connections closed because their incomplete frames would pass the node's buffer limit.", st.BufferLimited),
		counter("actord_remote_accept_errors_total", "Failed accepts (such as out of file descriptors), each followed by a short pause.", st.AcceptErrors),
		counter("actord_remote_dead_letters_total", "One-way messages accepted for a peer and lost with its connection (also reported as events).", st.DeadLetters),
		counter("actord_remote_node_down_refused_total", "Sends, asks and other requests refused at once because their peer was known down.", st.NodeDownRefused),
		counter("actord_remote_peers_forgotten_total", "Peers forgotten because nothing needed them.", st.PeersForgotten),
		counter("actord_remote_dials_total", "Connections this node tried to open.", st.Dials),
	}
	fams = append(fams, connmgrFamilies(d.node.ConnManager().Stats())...)
	fams = append(fams, d.appsP.Load().families()...)
	if a := d.agentP.Load(); a != nil {
		fams = append(fams, debug.Family{Name: "actord_cluster_members", Help: "Live cluster members this daemon sees, itself included.",
			Type: debug.MetricGauge, Samples: []debug.Sample{{Value: float64(len(a.Members()))}}})
	}
	return fams
}

// connmgrFamilies are the remote node's connection manager's counters
// (docs/connmgr.md).
func connmgrFamilies(st connmgr.Stats) []debug.Family {
	fam := func(name, help string, t debug.MetricType, v float64) debug.Family {
		return debug.Family{Name: name, Help: help, Type: t, Samples: []debug.Sample{{Value: v}}}
	}
	counter := func(name, help string, v uint64) debug.Family {
		return fam(name, help, debug.MetricCounter, float64(v))
	}
	return []debug.Family{
		fam("actord_connmgr_peers", "Peers the connection manager tracks.", debug.MetricGauge, float64(st.Peers)),
		fam("actord_connmgr_peers_connected", "Peers whose dialed connection is up, counted against the watermarks.", debug.MetricGauge, float64(st.Connected)),
		counter("actord_connmgr_trims_total", "Trim passes run above the high watermark.", st.Trims),
		counter("actord_connmgr_peers_trimmed_total", "Connections closed by a trim (also reported as connmgr.PeerTrimmed events).", st.Closed),
		counter("actord_connmgr_vetoes_total", "Trims of a peer vetoed.", st.Vetoed),
		counter("actord_connmgr_peers_forgotten_total", "Peers forgotten because nothing needed them.", st.Forgotten),
		counter("actord_connmgr_locks_elapsed_total", "Lock windows elapsed (also reported as connmgr.LockElapsed events).", st.Elapsed),
		counter("actord_connmgr_locks_extended_total", "Elapsed locks extended by their callback.", st.Extended),
		counter("actord_connmgr_refused_total", "Peers refused because MaxPeers were tracked.", st.Refused),
	}
}
