package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/internal/service"
	"github.com/hashicorp/memberlist"
	"github.com/thejerf/suture/v4"
)

// Profile is a set of memberlist timings.
type Profile string

// The profiles. See the package documentation, "Timing".
const (
	// ProfileLAN is memberlist.DefaultLANConfig: probes every second,
	// suspicion over several seconds. For daemons on a network.
	ProfileLAN Profile = "lan"
	// ProfileLocal is memberlist.DefaultLocalConfig: faster, for a local
	// network or one machine.
	ProfileLocal Profile = "local"
	// ProfileFast is for tests on one machine: DefaultLocalConfig with
	// ProbeInterval 100 ms, ProbeTimeout 50 ms, GossipInterval 20 ms,
	// SuspicionMult 2, DeadNodeReclaimTime 1 ms and PushPullInterval 1 s
	// (full state exchanges, so views reconcile quickly). A crashed member
	// is detected within about half a second.
	ProfileFast Profile = "fast"
)

// PeerNotifier is told when a member goes away, so that what depended on
// it fails at once. *remote.Node implements it, and PeerUpNotifier.
type PeerNotifier interface {
	// PeerDown is called with the member's remote address and why it is
	// considered down (an error matching ErrMemberFailed or ErrMemberLeft).
	PeerDown(addr string, reason error) bool
}

// PeerUpNotifier is a PeerNotifier that is also told when a member joins
// (or comes back) and when its address changes, so that it connects at
// once rather than at its next retry: a restarted daemon is reached again
// as soon as gossip sees it.
type PeerUpNotifier interface {
	PeerNotifier
	// PeerUp is called with the member's remote address.
	PeerUp(addr string) bool
}

// Config sets up an Agent. Zero fields take the defaults.
type Config struct {
	// Name is the member's name, unique in the cluster: the node's name.
	// Required.
	Name string
	// RemoteAddr is the node's remote (gnet) address, carried in the
	// member's metadata so that others can reach it. Required.
	RemoteAddr string
	// Bind is the gossip address (UDP and TCP), "host:port". Port 0 picks a
	// free port (Agent.GossipAddr reports it). Default "0.0.0.0:7946".
	Bind string
	// Advertise is the gossip address other members use to reach this one,
	// when it differs from Bind (NAT, containers). Default: Bind's address,
	// or, when Bind's host is unspecified, memberlist's choice of a private
	// IP of this machine.
	Advertise string
	// Seeds are gossip addresses ("host:port"; a name resolving to several
	// addresses tries them all) to join through. While the agent knows no
	// other member it retries them every JoinInterval, so the order in which
	// daemons start does not matter and a member cut off from all others
	// rejoins. Empty: a cluster of one until others join it.
	Seeds []string
	// JoinInterval is the pause between join attempts. Default 1 s.
	JoinInterval time.Duration
	// LeaveTimeout bounds a graceful leave at shutdown. Default 2 s.
	LeaveTimeout time.Duration
	// Profile picks memberlist's timings. Default ProfileLAN.
	Profile Profile
	// ProbeInterval, ProbeTimeout, GossipInterval, SuspicionMult and
	// DeadNodeReclaimTime override the profile's values when not zero (see
	// memberlist.Config). DeadNodeReclaimTime is how long after its death a
	// member's name may come back from another address (a restarted pod
	// with a new IP); the profiles other than ProfileFast use 10 s.
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult                               int
	DeadNodeReclaimTime                         time.Duration
	// SecretKey, if set (16, 24 or 32 bytes), encrypts and authenticates
	// gossip with AES-GCM. Every member needs the same key.
	SecretKey []byte
	// PublicKey, if set, is the node's public key (remote.Node.PublicKey),
	// carried in the member's metadata (Member.Key) so that other members
	// can check that what claims to come from this member does. Gossip
	// authenticates it only as far as SecretKey does.
	PublicKey []byte
	// Caps are this member's capabilities, carried in its metadata
	// (Member.Caps): what its binary can do that the others must know
	// before they rely on it, in a cluster of mixed versions (a rolling
	// upgrade). At most MaxCaps, each 1..MaxCapLen bytes.
	Caps []string
	// Peers, if set, is told of every member that fails or leaves.
	Peers PeerNotifier
	// Logger receives the agent's logs, and memberlist's (its debug chatter
	// at Debug level). Lines that other machines can cause (memberlist's
	// complaints about what arrives, members joining and failing) go
	// through a rate limiter (internal/ratelog): per message and source, a
	// few per interval, then one that counts those suppressed. Default
	// slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Bind == "" {
		c.Bind = "0.0.0.0:7946"
	}
	if c.JoinInterval <= 0 {
		c.JoinInterval = time.Second
	}
	if c.LeaveTimeout <= 0 {
		c.LeaveTimeout = 2 * time.Second
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Errors. The reasons given to PeerNotifier.PeerDown match one of the first
// two with errors.Is.
var (
	// ErrMemberFailed: a member stopped answering and was declared dead.
	ErrMemberFailed = errors.New("cluster: member failed")
	// ErrMemberLeft: a member left the cluster on purpose.
	ErrMemberLeft = errors.New("cluster: member left")
	// ErrNotRunning: the agent is not (or no longer) serving.
	ErrNotRunning = errors.New("cluster: agent not running")
	// ErrConfig: the configuration is unusable.
	ErrConfig = errors.New("cluster: bad config")
)

// Meta is what a member tells the others about itself, in memberlist's node
// metadata (JSON, at most 512 bytes).
type Meta struct {
	// Name is the node's name.
	Name string `json:"name"`
	// Addr is the node's remote (gnet) address.
	Addr string `json:"addr"`
	// Key is the node's public key (Config.PublicKey), in hex.
	Key string `json:"key,omitempty"`
	// Leaving is set just before a graceful leave.
	Leaving bool `json:"leaving,omitempty"`
	// Caps are the member's capabilities (Config.Caps).
	Caps []string `json:"caps,omitempty"`
}

// Bounds on a member's capabilities (Config.Caps): the metadata they
// travel in is at most 512 bytes.
const (
	MaxCaps   = 8
	MaxCapLen = 32
)

// validCap reports whether c may be a capability's name.
func validCap(c string) bool {
	if c == "" || len(c) > MaxCapLen {
		return false
	}
	for _, r := range c {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

// Member is one member of the cluster as this agent sees it.
type Member struct {
	// Name is the member's (and its node's) name.
	Name string `json:"name"`
	// Addr is its remote (gnet) address: where actors on it are reached.
	Addr string `json:"addr"`
	// Gossip is its memberlist address.
	Gossip string `json:"gossip"`
	// Key is its node's public key as its metadata gives it (nil if none,
	// or not 32 bytes of hex). Only as trustworthy as the gossip: see
	// Config.SecretKey.
	Key []byte `json:"key,omitempty"`
	// Self is true for this agent's own member.
	Self bool `json:"self,omitempty"`
	// Caps are the capabilities its metadata announces (Config.Caps),
	// those well formed, at most MaxCaps. A member of an older binary
	// announces fewer. Only as trustworthy as the gossip.
	Caps []string `json:"caps,omitempty"`
}

// Has reports whether the member announces capability c.
func (m Member) Has(c string) bool { return slices.Contains(m.Caps, c) }

// EventKind says what happened to a member.
type EventKind int

// The kinds of events.
const (
	// Join: a member joined (or came back).
	Join EventKind = iota + 1
	// Leave: a member left on purpose.
	Leave
	// Fail: a member stopped answering and was declared dead.
	Fail
	// Update: a member's metadata changed.
	Update
)

// String returns "join", "leave", "fail" or "update".
func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Fail:
		return "fail"
	case Update:
		return "update"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change of membership, seen by this agent.
type Event struct {
	Kind   EventKind
	Member Member
	Time   time.Time
}

// Agent is one daemon's member of the cluster. It implements suture/v4's
// Service: Serve runs it. An Agent serves once: after Serve has returned
// (or Kill), make a new one.
type Agent struct {
	cfg Config
	log *slog.Logger

	ready chan struct{} // closed once memberlist runs
	dead  chan struct{} // closed by Kill
	done  chan struct{} // closed when a Serve that ran memberlist returns
	kill  sync.Once

	mu      sync.Mutex
	meta    Meta
	gossip  string
	served  bool
	subs    map[int]func(Event)
	nextSub int
	members map[string]Member // live members, kept from memberlist's callbacks

	qmu   sync.Mutex
	queue []Event
	wake  chan struct{}

	bridge *logBridge // memberlist's log lines
}

// New makes an Agent. Run it with Serve (under a supervisor) or Start.
func New(cfg Config) *Agent {
	cfg = cfg.withDefaults()
	log := ratelog.Wrap(cfg.Logger, ratelog.Config{}).With("member", cfg.Name)
	meta := Meta{Name: cfg.Name, Addr: cfg.RemoteAddr, Caps: slices.Clone(cfg.Caps)}
	if len(cfg.PublicKey) > 0 {
		meta.Key = hex.EncodeToString(cfg.PublicKey)
	}
	return &Agent{
		cfg: cfg, log: log,
		ready: make(chan struct{}), dead: make(chan struct{}), done: make(chan struct{}),
		meta: meta,
		subs: map[int]func(Event){}, wake: make(chan struct{}, 1), members: map[string]Member{},
		bridge: newLogBridge(log),
	}
}

// Ready is closed once the agent gossips (it may not have joined anyone yet).
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Name returns the member's name.
func (a *Agent) Name() string { return a.cfg.Name }

// GossipAddr returns the agent's memberlist address once it is ready ("" before).
func (a *Agent) GossipAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gossip
}

// String names the service for suture's logs.
func (a *Agent) String() string { return "cluster-agent" }

// memberlistConfig builds memberlist's configuration.
func (a *Agent) memberlistConfig() (*memberlist.Config, error) {
	cfg := a.cfg
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: no member name", ErrConfig)
	}
	if cfg.RemoteAddr == "" {
		return nil, fmt.Errorf("%w: no remote address for member %s", ErrConfig, cfg.Name)
	}
	if len(cfg.Caps) > MaxCaps || slices.ContainsFunc(cfg.Caps, func(c string) bool { return !validCap(c) }) {
		return nil, fmt.Errorf("%w: at most %d capabilities of 1..%d printable bytes", ErrConfig, MaxCaps, MaxCapLen)
	}
	var c *memberlist.Config
	switch cfg.Profile {
	case ProfileLAN:
		c = memberlist.DefaultLANConfig()
		c.DeadNodeReclaimTime = 10 * time.Second
	case ProfileLocal:
		c = memberlist.DefaultLocalConfig()
		c.DeadNodeReclaimTime = 10 * time.Second
	case ProfileFast:
		c = memberlist.DefaultLocalConfig()
		c.ProbeInterval, c.ProbeTimeout = 100*time.Millisecond, 50*time.Millisecond
		c.GossipInterval, c.SuspicionMult = 20*time.Millisecond, 2
		c.DeadNodeReclaimTime = time.Millisecond
		c.PushPullInterval = time.Second // views reconcile within a second if a gossip was missed
	default:
		return nil, fmt.Errorf("%w: unknown profile %q (lan, local or fast)", ErrConfig, cfg.Profile)
	}
	if cfg.ProbeInterval > 0 {
		c.ProbeInterval = cfg.ProbeInterval
	}
	if cfg.ProbeTimeout > 0 {
		c.ProbeTimeout = cfg.ProbeTimeout
	}
	if cfg.GossipInterval > 0 {
		c.GossipInterval = cfg.GossipInterval
	}
	if cfg.SuspicionMult > 0 {
		c.SuspicionMult = cfg.SuspicionMult
	}
	if cfg.DeadNodeReclaimTime > 0 {
		c.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("%w: bind address: %w", ErrConfig, err)
	}
	c.BindAddr, c.BindPort = host, port
	c.AdvertisePort = port
	if cfg.Advertise != "" {
		h, p, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("%w: advertise address: %w", ErrConfig, err)
		}
		c.AdvertiseAddr, c.AdvertisePort = h, p
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		c.AdvertiseAddr = host
	}
	if len(cfg.SecretKey) > 0 {
		c.SecretKey = cfg.SecretKey
	}
	c.Name = cfg.Name
	c.Delegate = (*delegate)(a)
	c.Events = (*events)(a)
	c.Logger = log.New(a.bridge, "", 0)
	return c, nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, nil
}

// Serve runs the agent until ctx is done, then leaves the cluster
// gracefully and returns ctx's error; or until Kill, when it returns
// suture.ErrDoNotRestart. An unusable configuration also returns
// suture.ErrDoNotRestart (wrapping ErrConfig); a gossip port that cannot be
// bound returns an error, so that its supervisor retries later.
func (a *Agent) Serve(ctx context.Context) error {
	a.mu.Lock()
	if a.served {
		a.mu.Unlock()
		return fmt.Errorf("%w: %w: an Agent serves once", suture.ErrDoNotRestart, ErrNotRunning)
	}
	a.mu.Unlock()
	mc, err := a.memberlistConfig()
	if err != nil {
		return fmt.Errorf("%w: %w", suture.ErrDoNotRestart, err)
	}
	select {
	case <-a.dead:
		return fmt.Errorf("%w: %w: killed", suture.ErrDoNotRestart, ErrNotRunning)
	default:
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start memberlist on %s: %w", a.cfg.Bind, err)
	}
	local := ml.LocalNode()
	a.mu.Lock()
	a.served = true
	a.gossip = local.Address()
	a.mu.Unlock()
	a.log.Info("cluster: gossiping", "gossip_addr", local.Address(), "seeds", a.cfg.Seeds)
	close(a.ready)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); a.dispatch(stop) }()
	go func() { defer wg.Done(); a.joinLoop(ctx, stop, ml) }()

	var result error
	select {
	case <-ctx.Done():
		a.leave(ml)
		result = ctx.Err()
	case <-a.dead:
		result = fmt.Errorf("%w: %w: killed", suture.ErrDoNotRestart, ErrNotRunning)
	}
	close(stop)
	wg.Wait() // the join loop is out of ml before it shuts down
	a.mu.Lock()
	clear(a.members)
	a.mu.Unlock()
	if err := ml.Shutdown(); err != nil {
		a.log.Warn("cluster: memberlist shutdown", "err", err)
	}
	close(a.done)
	return result
}

// Done is closed when the agent has stopped gossiping (after its leave, on
// a graceful stop). It stays open if Serve never got memberlist running.
func (a *Agent) Done() <-chan struct{} { return a.done }

// leave marks the member as leaving, so that others report a Leave rather
// than a Fail, and leaves.
func (a *Agent) leave(ml *memberlist.Memberlist) {
	a.mu.Lock()
	a.meta.Leaving = true
	a.mu.Unlock()
	t := a.cfg.LeaveTimeout / 2
	if err := ml.UpdateNode(t); err != nil {
		a.log.Debug("cluster: leaving mark not confirmed", "err", err)
	}
	if err := ml.Leave(t); err != nil {
		a.log.Warn("cluster: leave", "err", err)
		return
	}
	a.log.Info("cluster: left")
}

// Kill stops the agent at once without leaving: the others detect it as
// failed, as if its daemon had crashed. Serve then returns
// suture.ErrDoNotRestart.
func (a *Agent) Kill() { a.kill.Do(func() { close(a.dead) }) }

// Start runs Serve on a goroutine and waits until the agent gossips. Stop
// it with the returned function (a graceful leave), which waits for Serve
// to return.
func (a *Agent) Start(ctx context.Context) (stop func(), err error) {
	return service.Start(ctx, a.Serve, a.ready)
}

// joinLoop joins through the seeds until one of them answers, and again
// whenever the agent finds itself alone. (Knowing another member is not
// enough before a seed has answered: two daemons that joined each other
// would stay apart from the rest.)
func (a *Agent) joinLoop(ctx context.Context, stop <-chan struct{}, ml *memberlist.Memberlist) {
	self := a.GossipAddr() // not ml.LocalNode(): memberlist writes that node while we would read it
	seeds := slices.DeleteFunc(slices.Clone(a.cfg.Seeds), func(s string) bool { return s == "" || s == self })
	if len(seeds) == 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	joined, failures := false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		if !joined || ml.NumMembers() <= 1 {
			n, err := ml.Join(seeds)
			if n > 0 {
				a.log.Info("cluster: joined", "contacted", n, "members", ml.NumMembers())
				joined, failures = true, 0
			} else if failures++; failures <= 3 || failures%30 == 0 {
				// Quiet after the first few: a first daemon waits for the others.
				if err != nil && isKeyMismatch(err.Error()) {
					a.log.Error(msgKeyMismatch, "seeds", seeds, "hint", "a seed answered but refused our gossip: "+keyMismatchHint,
						"err", oneLine(err.Error()), "attempts", failures)
				} else {
					a.log.Warn("cluster: no seed answered; retrying", "seeds", seeds, "err", err, "attempts", failures)
				}
			}
		}
		t.Reset(a.cfg.JoinInterval)
	}
}

// Members returns the live members (this one included), sorted by name.
// Members whose failure is suspected but not yet declared are included.
// The list is kept from memberlist's join, leave and update callbacks
// (memberlist.Members shares nodes that memberlist goes on writing).
func (a *Agent) Members() []Member {
	a.mu.Lock()
	out := slices.Collect(maps.Values(a.members))
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Member) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// member converts a memberlist node.
func (a *Agent) member(n *memberlist.Node) Member {
	m := Member{Name: n.Name, Gossip: n.Address(), Self: n.Name == a.cfg.Name}
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err == nil {
		m.Addr = meta.Addr
		if k, err := hex.DecodeString(meta.Key); err == nil && len(k) == publicKeyLen {
			m.Key = k
		}
		for _, c := range meta.Caps {
			if len(m.Caps) < MaxCaps && validCap(c) {
				m.Caps = append(m.Caps, c)
			}
		}
	}
	return m
}

// publicKeyLen is the length of a node's public key (X25519).
const publicKeyLen = 32

// Subscribe calls f with every membership event from now on, in order, on
// the agent's dispatching goroutine (after Config.Peers has been told of a
// failure). f must not block for long: it holds up later events. The
// returned function unsubscribes.
func (a *Agent) Subscribe(f func(Event)) (cancel func()) {
	a.mu.Lock()
	id := a.nextSub
	a.nextSub++
	a.subs[id] = f
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		delete(a.subs, id)
		a.mu.Unlock()
	}
}

// push queues an event from a memberlist goroutine. It never blocks.
func (a *Agent) push(e Event) {
	a.qmu.Lock()
	a.queue = append(a.queue, e)
	a.qmu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// dispatch delivers queued events until stop.
func (a *Agent) dispatch(stop <-chan struct{}) {
	var batch []Event
	for {
		select {
		case <-stop:
			return
		case <-a.wake:
		}
		a.qmu.Lock()
		batch, a.queue = a.queue, batch[:0]
		a.qmu.Unlock()
		for _, e := range batch {
			a.deliver(e)
		}
		clear(batch)
	}
}

func (a *Agent) deliver(e Event) {
	if !e.Member.Self {
		switch e.Kind {
		case Join, Update:
			if e.Kind == Join {
				a.log.Info("cluster: member joined", "peer", e.Member.Name, "addr", e.Member.Addr, "gossip_addr", e.Member.Gossip)
			}
			if up, ok := a.cfg.Peers.(PeerUpNotifier); ok && e.Member.Addr != "" {
				up.PeerUp(e.Member.Addr)
			}
		case Leave, Fail:
			reason := ErrMemberFailed
			if e.Kind == Leave {
				reason = ErrMemberLeft
			}
			lvl := slog.LevelWarn
			if e.Kind == Leave {
				lvl = slog.LevelInfo
			}
			a.log.Log(context.Background(), lvl, "cluster: member "+e.Kind.String(), "peer", e.Member.Name, "addr", e.Member.Addr)
			if a.cfg.Peers != nil && e.Member.Addr != "" {
				a.cfg.Peers.PeerDown(e.Member.Addr, fmt.Errorf("%w: %s (gossip %s)", reason, e.Member.Name, e.Member.Gossip))
			}
		}
	}
	a.mu.Lock()
	subs := make([]func(Event), 0, len(a.subs))
	for _, id := range slices.Sorted(maps.Keys(a.subs)) {
		subs = append(subs, a.subs[id])
	}
	a.mu.Unlock()
	for _, f := range subs {
		f(e)
	}
}

// delegate gives memberlist the node's metadata. The other hooks are unused.
type delegate Agent

func (d *delegate) NodeMeta(limit int) []byte {
	a := (*Agent)(d)
	a.mu.Lock()
	b, _ := json.Marshal(a.meta)
	a.mu.Unlock()
	if len(b) > limit {
		a.log.Error("cluster: metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events receives memberlist's callbacks (on its goroutines, with its locks
// held) and only queues them.
type events Agent

func (e *events) NotifyJoin(n *memberlist.Node) {
	a := (*Agent)(e)
	m := a.member(n)
	a.setMember(m, true)
	a.push(Event{Kind: Join, Member: m, Time: time.Now()})
}

// setMember records a member as live or gone.
func (a *Agent) setMember(m Member, live bool) {
	a.mu.Lock()
	if live {
		a.members[m.Name] = m
	} else {
		delete(a.members, m.Name)
	}
	a.mu.Unlock()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	a := (*Agent)(e)
	kind := Fail
	var meta Meta
	// A leave is the member's own announcement (memberlist's StateLeft), or
	// a failure after it marked itself leaving: under load the mark may not
	// have spread before the announcement, and the announcement suffices.
	if n.State == memberlist.StateLeft || json.Unmarshal(n.Meta, &meta) == nil && meta.Leaving {
		kind = Leave
	}
	m := a.member(n)
	a.setMember(m, false)
	a.push(Event{Kind: kind, Member: m, Time: time.Now()})
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	a := (*Agent)(e)
	m := a.member(n)
	a.setMember(m, true)
	a.push(Event{Kind: Update, Member: m, Time: time.Now()})
}

// msgKeyMismatch is the log message, on both sides, of gossip refused
// because the two agents' SecretKeys differ (or one has none).
const msgKeyMismatch = "cluster: cluster key mismatch"

const keyMismatchHint = "the other side's gossip key differs from this one's, or one of them has none: check the cluster key file of both"

// keyMismatchMarks are what memberlist's errors say when gossip was sealed
// with another key, or not sealed where a key is configured (or the
// reverse), in lower case.
var keyMismatchMarks = []string{
	"no installed keys could decrypt",
	"encryption is configured but remote state is not encrypted",
	"remote state is encrypted and encryption is not configured",
	"decrypt packet failed",
}

func isKeyMismatch(s string) bool {
	s = strings.ToLower(s)
	for _, m := range keyMismatchMarks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// oneLine joins the lines of a (multi-error) message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// bridgeLimits bound memberlist's lines per message and source: junk sent
// to the gossip port in a loop costs a few lines a minute, not one per
// packet.
var bridgeLimits = ratelog.Config{Interval: time.Minute, Burst: 3}

// Bounds of the parts of a memberlist line that become a record.
const (
	maxBridgeMsg    = 120
	maxBridgeDetail = 300
)

// logBridge turns memberlist's log lines ("[LEVEL] memberlist: ...
// from=host:port") into slog records that a rate limiter can key: the
// sender's address becomes the attribute "from" (its host only, as a
// sender picks its ports), and the message keeps only memberlist's fixed
// text (up to the first ": ", with numbers and quoted strings masked),
// the rest going to "detail". So the keys stay few whatever a sender puts
// in its packets. Refusals of gossip sealed with another cluster key (or
// none) read "cluster: cluster key mismatch".
type logBridge struct {
	l    *slog.Logger
	seen atomic.Int64 // lines written by memberlist, limited or not (tests wait on it)
}

var _ io.Writer = (*logBridge)(nil)

func newLogBridge(l *slog.Logger) *logBridge {
	return &logBridge{l: slog.New(ratelog.New(l.Handler(), bridgeLimits))}
}

func (b *logBridge) Write(p []byte) (int, error) {
	b.seen.Add(1)
	line := bytes.TrimSpace(p)
	lvl := slog.LevelInfo
	for _, l := range []struct {
		tag string
		lvl slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if rest, ok := bytes.CutPrefix(line, []byte(l.tag)); ok {
			lvl, line = l.lvl, bytes.TrimSpace(rest)
			break
		}
	}
	text := strings.ToValidUTF8(string(line), "\uFFFD")
	// A failed join is memberlist's debug line; joinLoop reports it.
	mismatch := lvl >= slog.LevelInfo && isKeyMismatch(text)
	if !mismatch && !b.l.Enabled(context.Background(), lvl) {
		return len(p), nil
	}
	msg, detail, from, body := splitMemberlistLine(text)
	// memberlist logs a probe miss during a crash as an error; it is what
	// failure detection is for, so it is a warning here.
	if lvl == slog.LevelError && strings.Contains(msg, "Failed to send") {
		lvl = slog.LevelWarn
	}
	attrs := make([]any, 0, 6)
	if mismatch {
		lvl, msg = slog.LevelError, msgKeyMismatch
		attrs = append(attrs, "hint", keyMismatchHint)
		detail = truncate(body, maxBridgeDetail)
	}
	if from != "" {
		attrs = append(attrs, "from", from)
	}
	if detail != "" {
		attrs = append(attrs, "detail", detail)
	}
	b.l.Log(context.Background(), lvl, msg, attrs...)
	return len(p), nil
}

// splitMemberlistLine splits a memberlist line (its level tag removed) into
// a message of bounded variety, the detail, the sender's host, and the line
// without the sender.
func splitMemberlistLine(text string) (msg, detail, from, body string) {
	if i := strings.LastIndex(text, "from="); i >= 0 && (i == 0 || text[i-1] == ' ') {
		addr := text[i+len("from="):]
		if addr == "<unknown address>" || !strings.ContainsAny(addr, " \t") {
			text = strings.TrimRight(text[:i], " :")
			from = addr
			if h, _, err := net.SplitHostPort(addr); err == nil {
				from = h
			}
			from = truncate(from, 64)
		}
	}
	body = text
	prefix := ""
	if rest, ok := strings.CutPrefix(text, "memberlist: "); ok {
		prefix, text = "memberlist: ", rest
	}
	head, rest, _ := strings.Cut(text, ": ")
	masked := maskVariable(head)
	if masked != head {
		detail = text
	} else {
		detail = rest
	}
	return truncate(prefix+masked, maxBridgeMsg), truncate(detail, maxBridgeDetail), from, body
}

// maskVariable replaces runs of digits with "N" and quoted strings with
// "…", the parts of memberlist's messages that vary with what was received.
func maskVariable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			b.WriteByte('N')
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				i = len(s)
			} else {
				i += end + 2
			}
			b.WriteString("…")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
