package remote

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/connmgr"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/internal/service"
	"github.com/actord/actord/internal/tsc"
)

// Config sets up a Node. Zero fields take the defaults.
type Config struct {
	// Name identifies the node to its peers and in logs. Default: host-pid.
	Name string
	// Listen is the TCP address to accept peers on. Default "127.0.0.1:0"
	// (a free port; Addr reports it).
	Listen string
	// MaxFrame bounds one frame; a peer that sends a larger one is
	// disconnected. Default 16 MiB.
	MaxFrame int
	// MaxOutbound bounds the bytes of frames for one peer that it has not
	// acknowledged yet (queued, or written and perhaps not read).
	// Beyond it, Send and Ask to that peer fail at once with
	// actor.ErrQueueFull (counted in Stats.Refused). Default 4 MiB: more
	// keeps more bytes in flight and in memory (BenchmarkRemoteThroughput
	// ran about 3× slower with 32 MiB; docs/performance.md).
	MaxOutbound int
	// HeartbeatInterval is how often a node pings the peers it dials.
	// Default 500 ms.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a connection may stay silent before its
	// peer is declared down. Default 5 s.
	HeartbeatTimeout time.Duration
	// DialTimeout bounds one connection attempt. Default 2 s.
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// ±50% jitter) between connection attempts. Defaults 20 ms and 2 s.
	ReconnectMin, ReconnectMax time.Duration
	// EventLoops is the number of gnet event loops for accepted and for
	// dialed connections each. Default 1.
	EventLoops int
	// DeliverWait is how long a network loop waits for room when a message
	// arrives for an actor whose loop's queue is full. While it waits it
	// reads nothing, so TCP flow control slows the sender down, whose own
	// bounded outbound queue then refuses new messages with
	// actor.ErrQueueFull: backpressure from end to end. Past the wait the
	// message is dropped (a send, counted in Stats.Dropped) or answered with
	// actor.ErrQueueFull (an ask). Default 1 s.
	DeliverWait time.Duration
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger
	// MaxPeers bounds how many other nodes this node keeps state for. A ref
	// in a message, or a handshake, naming a new node beyond it is refused
	// (the message gets ErrTooManyPeers as a payload error; the connection is
	// closed), so a hostile peer cannot exhaust memory by naming endless
	// addresses. Default 4096.
	MaxPeers int
	// Events, if set, receives the node's lifecycle: event.NodeUp and
	// event.NodeDown for the peers it dials, event.ConnOpened and
	// event.ConnClosed for every connection, and event.DeadLetter for
	// one-way messages lost with a connection (docs/events.md).
	Events *event.Bus
	// ForgetAfter is how long a peer may sit unused, unconnected and
	// unreferenced (no live ref to its actors, no monitor, no pending call,
	// no connection from it, not reported alive by PeerUp) before the node
	// forgets it: it is no longer redialed nor counted against MaxPeers.
	// When MaxPeers is reached, such peers idle for a second are forgotten
	// at once. Default 30 s.
	ForgetAfter time.Duration

	// The connection manager (package connmgr, docs/connmgr.md; Node.ConnManager)
	// bounds the connections this node dials by trimming, not refusal.

	// ConnHighWater and ConnLowWater are its watermarks, in peers whose
	// dialed connection is up: above ConnHighWater, the lowest-scoring
	// managed peers are closed until ConnLowWater remain (their links and
	// monitors see the node down). Defaults 1024 and three quarters of
	// ConnHighWater; ConnLowWater must be below ConnHighWater (Serve fails
	// otherwise).
	ConnHighWater, ConnLowWater int
	// ConnGracePeriod protects a new connection from trimming. Default 30
	// s; negative: none.
	ConnGracePeriod time.Duration
	// ConnSilencePeriod is the least time between two trims. Default 10 s;
	// negative: none.
	ConnSilencePeriod time.Duration
	// ConnVeto, if set, is asked "may I close this peer?" (by its listen
	// address, score and usage) for each peer a trim picks; true keeps it.
	// At most 8 vetoes are honoured per trim. It runs on the goroutine
	// that trims, without the node's locks: it may call the node.
	ConnVeto func(connmgr.Candidate) bool

	// Every connection is encrypted and authenticated with the Noise
	// protocol (docs/remote.md, "Transport security").

	// PrivateKey is the node's X25519 private key (see GenerateKey): its
	// identity on the wire, which peers see in Authorize. Default: a new
	// key for every Node.
	PrivateKey []byte
	// ClusterKey, if set, admits only nodes that hold the same key: the
	// handshake mixes it in, so a node without it cannot connect, and this
	// node does not connect to one without it (ErrHandshake). Use at least
	// 16 random bytes (shorter keys make Serve fail). Without it the
	// transport is still encrypted, but any node that can reach the listen
	// address may connect, and a warning is logged at start.
	ClusterKey []byte
	// Authorize, if set, is asked about every peer once its handshake is
	// done, with the node name the peer claims and its public key; an error
	// refuses the peer (the connection is closed, the reason logged and
	// counted in Stats.BadFrames). Use it to pin the keys of known nodes.
	Authorize func(name string, publicKey []byte) error
	// AuthorizeSpawn, if set, is asked about every remote spawn request
	// (Node.Spawn from another node), with the requesting node's name and
	// public key and the kind; an error refuses it. A refused request gets
	// the same answer as one for a kind this node does not have (an error
	// matching ErrUnknownKind), so the requester learns nothing about the
	// kinds registered; the refusal is logged with its reason. Without it
	// any node admitted to the cluster may spawn any registered kind.
	AuthorizeSpawn func(node string, publicKey []byte, kind string) error

	// Limits on connections that have not authenticated yet: an accepted
	// connection is unauthenticated until its secure handshake is done and
	// its Hello accepted. Until then each frame may be 4 KiB at most, and a
	// handshake message 256 bytes (docs/deploy.md, "Hardening").

	// HandshakeTimeout bounds the time from accepting a connection to
	// accepting its Hello, and from opening a dialed connection to reading
	// the peer's Welcome, whatever it sends meanwhile. Past it the
	// connection is closed (counted in Stats.HandshakeTimeouts). Default
	// 10 s.
	HandshakeTimeout time.Duration
	// MaxPending bounds the unauthenticated connections the node holds;
	// one accepted beyond it is closed at once (counted in
	// Stats.ConnsRefused). Default 256.
	MaxPending int
	// MaxPendingPerIP is MaxPending for the connections from one source
	// address (an IPv4 address, or an IPv6 /64). Default 16.
	MaxPendingPerIP int
	// MaxBuffered bounds the bytes of incomplete incoming frames that the
	// node holds across all its accepted connections (a frame is read
	// whole before it is handled). A connection whose next bytes would go
	// past it is closed (counted in Stats.BufferLimited): a peer announcing
	// large frames and trickling them in costs what it sent, and all peers
	// together no more than this. Default 256 MiB or 4 × MaxFrame,
	// whichever is larger; never less than one MaxFrame and a record.
	MaxBuffered int
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 16 << 20
	}
	if c.MaxOutbound <= 0 {
		c.MaxOutbound = 4 << 20
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 500 * time.Millisecond
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 5 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 20 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 2 * time.Second
	}
	if c.EventLoops <= 0 {
		c.EventLoops = 1
	}
	if c.DeliverWait <= 0 {
		c.DeliverWait = time.Second
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = 4096
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 256
	}
	if c.MaxPendingPerIP <= 0 {
		c.MaxPendingPerIP = 16
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = max(256<<20, 4*c.MaxFrame)
	}
	c.MaxBuffered = max(c.MaxBuffered, 4+c.MaxFrame+maxRecord)
	return c
}

// Kind makes an actor from spawn arguments sent by another node.
type Kind func(args any) (actor.Factory, error)

// Stats counts a node's traffic. All fields are totals since the node started.
type Stats struct {
	FramesIn, FramesOut uint64 // frames decoded / encoded
	BytesIn, BytesOut   uint64 // bytes read / handed to the network
	ConnsOpened         uint64 // connections opened (both directions)
	ConnsClosed         uint64 // connections closed (both directions)
	BadFrames           uint64 // connections closed for a malformed or oversized frame
	Refused             uint64 // sends and asks refused because a peer's queue was full
	Dropped             uint64 // one-way messages received but not delivered (dead target, bad secret, full loop, unknown type)
	PeersDown           uint64 // times a peer was declared down
	// DeadLetters counts one-way messages Send accepted for a peer and that
	// were lost with its connection (each also reported in an
	// event.DeadLetter): still queued, or written but not acknowledged by
	// the peer when the connection broke.
	DeadLetters uint64
	// NodeDownRefused counts sends, asks and other requests that failed at
	// once with ErrNodeDown because their peer was known down.
	NodeDownRefused uint64
	// PeersForgotten counts peers forgotten (see Config.ForgetAfter).
	PeersForgotten uint64
	// Dials counts the connections this node tried to open.
	Dials uint64
	// ConnsRefused counts accepted connections closed at once: over
	// MaxPending or MaxPendingPerIP, or while out of file descriptors.
	ConnsRefused uint64
	// HandshakeTimeouts counts connections closed for not completing the
	// handshake and Hello within HandshakeTimeout.
	HandshakeTimeouts uint64
	// BufferLimited counts connections closed because their incomplete
	// frames would have taken the node past MaxBuffered.
	BufferLimited uint64
	// AcceptErrors counts failed accepts (such as EMFILE: out of file
	// descriptors); the node waits a little after each, from 5 ms
	// doubling to 1 s, and goes on accepting.
	AcceptErrors uint64
	// SpawnsStopped counts actors stopped because the answer to their
	// spawn came after its caller stopped waiting (Spawn's context ended,
	// SpawnAsync's timeout passed): nobody knew of them.
	SpawnsStopped uint64
	// SpawnsUnconfirmed counts actors of linked spawns (SpawnLinkAsync)
	// made here and stopped because the owner's node never confirmed
	// them: their answer was lost, or came after it gave up.
	SpawnsUnconfirmed uint64
}

type counters struct {
	framesIn, framesOut, bytesIn, bytesOut, opened, closed, badFrames, refused, dropped, peersDown atomic.Uint64
	deadLetters, downRefused, forgotten, dials                                                     atomic.Uint64
	spawnsUnconfirmed                                                                              atomic.Uint64
	connsRefused, handshakeTimeouts, bufferLimited, acceptErrors                                   atomic.Uint64
	spawnsStopped                                                                                  atomic.Uint64
}

// Node connects an actor.System to other nodes over TCP: actors on any node
// reach each other with the same Send and Ask, refs travel inside messages,
// and a lost peer fails the asks and fires the monitors that depended on it.
// See docs/remote.md for the protocol.
type Node struct {
	sys  *actor.System
	wire actorWire
	cfg  Config
	log  *slog.Logger
	reg  *registry
	name string
	inc  uint64 // incarnation: random per Node, tells a restarted peer apart

	sec     *security    // nil when secErr is set
	secErr  error        // a bad key in Config: Serve fails with it
	ev      *nodeEvents  // nil without Config.Events
	addr    atomic.Value // string, once listening
	ready   chan struct{}
	closing atomic.Bool
	stats   counters
	// idCap bounds the tables a connection's sender interns actor ids in
	// (intern.go): maxInterned, smaller in tests of eviction; read when a
	// peer's frame writer is made
	idCap int

	mu      sync.Mutex
	peers   map[string]*peer // by listen address
	kinds   map[string]Kind
	spawns  unconfirmed // linked spawns waiting for their owner's confirmation
	exports exports     // names exported as sturdy refs (sturdy.go)
	// resolve requests being answered, at most maxResolving (sturdy.go)
	resolving atomic.Int64
	answer    func(req []byte) ([]byte, bool) // answerResolve; tests make a node relay instead
	remotes   incarnations                    // of the nodes connected here (n.mu)
	nextMark  uint64                          // the last incarnation mark given (inState.mark; n.mu)
	inbound   map[*inConn]struct{}
	// the peers and inbound connections of the heartbeat round under way,
	// kept for the next round (heartbeat: one round at a time)
	hbPeers []*peer
	hbIns   []*inConn
	// epochs numbers connections node-wide, so every connection this node
	// dials has a higher epoch than all before it, whichever peer object
	// made it (a forgotten peer's successor included).
	epochs atomic.Uint64
	// answerDials bounds the dials made to answer other nodes (replies and
	// signals to a node whose address only its Hello named).
	answerDials tokenBucket
	linkCfg     linkConfig   // what every peer's link follows
	lastNudge   atomic.Int64 // unix ns of the last nudgeGC

	// The I/O seam (transport.go): the driver while serving (nil
	// otherwise), what makes it (nil: gnet), the clock and the jitter
	// source (nil: the wall clock and the global source).
	drv      atomic.Pointer[driverSlot]
	mkDriver func(*Node) driver
	clk      clock
	rnd      *mrand.Rand
	// sturdyRandom, if set, replaces crypto/rand in sturdy-ref exchanges
	// (a simulated node's, from its seed).
	sturdyRandom io.Reader
	rndMu        sync.Mutex

	// unauthenticated connections (accept.go) and the bytes of incomplete
	// frames held for all accepted connections (Config.MaxBuffered)
	pending  pendingConns
	buffered budget
	// the connection manager (connmgr.go)
	conns connTable
}

// New makes a Node for sys. Start it with Serve (for a supervisor) or Start.
func New(sys *actor.System, cfg Config) *Node {
	cfg = cfg.withDefaults()
	tsc.Calibrate() // before any hold is timed (once per process)
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{
		// Every line a peer can cause is rate-limited by its source.
		sys: sys, wire: wireOf(sys), cfg: cfg, log: ratelog.Wrap(cfg.Logger, ratelog.Config{}).With("node", cfg.Name),
		reg: newRegistry(), name: cfg.Name, inc: binary.BigEndian.Uint64(b[:]),
		ready: make(chan struct{}), peers: map[string]*peer{}, kinds: map[string]Kind{},
		remotes: incarnations{}, inbound: map[*inConn]struct{}{},
		answerDials: tokenBucket{rate: answerDialRate, burst: answerDialBurst},
		idCap:       maxInterned,
	}
	n.linkCfg = linkConfig{
		reconnectMin: cfg.ReconnectMin, reconnectMax: cfg.ReconnectMax,
		heartbeatTimeout: cfg.HeartbeatTimeout, handshakeTimeout: cfg.HandshakeTimeout,
		nextEpoch: n.nextEpoch, mayAnswer: n.answerDials.allow,
	}
	n.addr.Store("")
	n.buffered.max = int64(cfg.MaxBuffered)
	n.answer = n.answerResolve
	n.sec, n.secErr = newSecurity(cfg)
	n.conns.init(cfg)
	if cfg.Events != nil {
		ev, err := newNodeEvents(cfg.Events)
		if err != nil {
			n.log.Warn("remote: no lifecycle events: the bus refused emitters", "err", err)
		}
		if ev != nil {
			ev.now = n.now // the simulator's clock, once set
		}
		n.ev = ev
	}
	return n
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// PublicKey returns the node's public key, its identity on the wire (nil if
// Config.PrivateKey is malformed).
func (n *Node) PublicKey() []byte {
	if n.sec == nil {
		return nil
	}
	return append([]byte(nil), n.sec.static.Public...)
}

// authorize applies Config.Authorize to a peer whose handshake is done.
func (n *Node) authorize(name string, key []byte) error {
	if n.cfg.Authorize == nil {
		return nil
	}
	if err := n.cfg.Authorize(name, append([]byte(nil), key...)); err != nil {
		return fmt.Errorf("%w: node %s (key %x) refused: %v", ErrHandshake, name, key, err)
	}
	return nil
}

// Addr returns the address the node listens on, once it does ("" before).
func (n *Node) Addr() string { return n.addr.Load().(string) }

// System returns the actor system the node serves.
func (n *Node) System() *actor.System { return n.sys }

// Ready is closed once the node listens.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	c := &n.stats
	return Stats{
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		ConnsOpened: c.opened.Load(), ConnsClosed: c.closed.Load(), BadFrames: c.badFrames.Load(),
		Refused: c.refused.Load(), Dropped: c.dropped.Load(), PeersDown: c.peersDown.Load(),
		DeadLetters: c.deadLetters.Load(), NodeDownRefused: c.downRefused.Load(), PeersForgotten: c.forgotten.Load(),
		Dials:        c.dials.Load(),
		ConnsRefused: c.connsRefused.Load(), HandshakeTimeouts: c.handshakeTimeouts.Load(),
		BufferLimited: c.bufferLimited.Load(), AcceptErrors: c.acceptErrors.Load(), SpawnsStopped: c.spawnsStopped.Load(), SpawnsUnconfirmed: c.spawnsUnconfirmed.Load(),
	}
}

// RegisterKind lets other nodes spawn actors of this kind here with Spawn.
func (n *Node) RegisterKind(name string, k Kind) {
	n.mu.Lock()
	n.kinds[name] = k
	n.mu.Unlock()
}

// Serve runs the node until ctx is done: it listens, dials peers as refs to
// them are used, and keeps heartbeats. It implements suture's Service, so a
// daemon runs it under its service tree; a node that returns is restarted by
// its supervisor with a new listener (its peers reconnect). A Node's Serve
// may run only once at a time.
func (n *Node) Serve(ctx context.Context) error {
	if n.closing.Load() {
		return ErrClosed
	}
	if n.secErr != nil {
		return n.secErr
	}
	if n.conns.err != nil {
		return n.conns.err
	}
	if n.sec.psk == nil {
		n.log.Warn("remote: no cluster key: the transport is encrypted, but any node that reaches the listen address may connect (set Config.ClusterKey)")
	}
	d := n.newDriver()
	addr, err := d.listen(n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("remote: node %s: %w", n.name, err)
	}
	n.drv.Store(&driverSlot{d})
	n.listening(addr)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.heartbeats(ctx, done) }()
	err = d.serve(ctx)
	d.stopAccepting() // accepted connections close
	if ctx.Err() != nil {
		n.closing.Store(true) // stopped on purpose: for good
	}
	close(done)
	wg.Wait()
	n.drv.Store(nil)
	if n.closing.Load() {
		n.shutdownPeers()
		defer n.ev.close() // after the last ConnClosed and NodeDown
		defer n.conns.m.Close()
	}
	d.stopDialing() // dialed connections close; if the engine merely died, peers redial after a restart
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		err = errors.New("listener closed")
	}
	return fmt.Errorf("remote: node %s: %w", n.name, err)
}

// Start runs Serve on a goroutine and waits until the node listens. Stop it
// with the returned function, which waits for Serve to return.
func (n *Node) Start(ctx context.Context) (stop func(), err error) {
	stopServe, err := service.Start(ctx, n.Serve, n.ready)
	if err != nil {
		return nil, err
	}
	return func() { n.closing.Store(true); stopServe() }, nil // closing first: no "peer down" warnings
}

// shutdownPeers closes every connection and fails what depended on them.
func (n *Node) shutdownPeers() {
	n.mu.Lock()
	peers := n.peerListLocked()
	n.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
}

// peerListLocked returns the peers; a simulated node (one with a clock)
// gets them in address order, not the map's, so that a run is
// reproducible. n.mu held.
func (n *Node) peerListLocked() []*peer { return n.listPeersLocked(nil) }

// listPeersLocked is peerListLocked in buf's storage, if it has room.
func (n *Node) listPeersLocked(buf []*peer) []*peer {
	peers := buf[:0]
	if cap(peers) < len(n.peers) {
		peers = make([]*peer, 0, len(n.peers))
	}
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	if n.clk != nil {
		slices.SortFunc(peers, func(a, b *peer) int { return strings.Compare(a.addr, b.addr) })
	}
	return peers
}

// boundedPeer is peerFor for addresses that came from the network: it
// refuses to create a peer beyond Config.MaxPeers (the connection manager
// refuses to track it), after a sweep that forgets idle peers failed to
// make room.
func (n *Node) boundedPeer(addr, name string) (*peer, error) {
	p, err := n.peerAt(addr, name, true)
	if err != nil && n.sweep(n.now(), true) > 0 {
		p, err = n.peerAt(addr, name, true)
	}
	if err != nil {
		// Peers that only refs nobody holds any more keep are let go once
		// the garbage collector has run: make it run soon, for the next try.
		n.nudgeGC()
		return nil, fmt.Errorf("%w: %d nodes known, refusing %s: %w", ErrTooManyPeers, n.cfg.MaxPeers, addr, err)
	}
	return p, nil
}

// peerFor returns the peer listening at addr, creating it. A local caller
// is not bounded: a peer the connection manager has no room for is kept
// untracked until it has.
func (n *Node) peerFor(addr, name string) *peer {
	p, _ := n.peerAt(addr, name, false)
	return p
}

// peerAt returns the peer listening at addr, creating it and making the
// connection manager track it; bounded, it fails when the manager is full.
func (n *Node) peerAt(addr, name string, bounded bool) (*peer, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peers[addr]
	if !ok {
		p = newPeer(n, addr, name)
		if err := n.trackLocked(p, now); err != nil {
			if bounded {
				return nil, err
			}
			n.conns.untracked[p] = struct{}{}
		}
		n.peers[addr] = p
		return p, nil
	}
	if name != "" {
		p.setName(name)
	}
	// In use again: not to be forgotten by a sweep that runs before the
	// caller makes its ref (n.mu orders the two).
	p.mu.Lock()
	p.link.lastActive = now
	p.mu.Unlock()
	return p, nil
}

// Connect returns the peer at addr (dialing it if need be) as the remote
// node's goroutine-facing handle: Spawn uses it.
func (n *Node) peer(addr string) (*peer, error) {
	if addr == "" {
		return nil, fmt.Errorf("remote: empty peer address")
	}
	if addr == n.Addr() {
		return nil, fmt.Errorf("remote: %s is this node's own address", addr)
	}
	return n.peerFor(addr, ""), nil
}

// Spawn creates an actor of a kind registered (with RegisterKind) on the node
// at addr, passing it args, and returns its ref. The kind may be a
// supervisor, so a tree can span nodes.
func (n *Node) Spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error) {
	p, err := n.peer(addr)
	if err != nil {
		return actor.Ref{}, err
	}
	v, err := p.spawn(ctx, kind, args)
	if err != nil {
		return actor.Ref{}, err
	}
	r, ok := v.(actor.Ref)
	if !ok {
		return actor.Ref{}, fmt.Errorf("%w: spawn reply of type %T", ErrBadFrame, v)
	}
	return r, nil
}

// SpawnAsync is Spawn without waiting: it sends the request and returns,
// and done runs once, with the new actor's ref or why there is none (no
// answer within timeout, the node lost, the kind unknown there, ...). done
// runs on one of the node's goroutines (the one that reads the reply, or a
// timer's), or on the caller's before SpawnAsync returns when the request
// cannot be sent; it must not block. It is the spawn for code that may not
// wait: an actor's handler (settle a Context.ExternalPromise in done), or
// any code the simulator runs, where nothing may wait on a channel.
//
// A timeout does not cancel the spawn on the other node; if its answer
// still comes, the actor it names is stopped (Stats.SpawnsStopped), as
// after Spawn's context ends. But an answer lost with its connection
// leaves the actor running there, known to nobody: SpawnLinkAsync does not.
func (n *Node) SpawnAsync(addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	n.spawnAsync(actor.Ref{}, addr, kind, args, timeout, done)
}

// SpawnLinkAsync is SpawnAsync with the new actor linked to owner, a
// local actor of this node, as Erlang's spawn_link: the request carries
// the link, and the other node makes the new actor with its half (and
// owner as its Context.Parent) in one step, before its Start, and
// answers right after Start in that step, ahead of the actor's exit
// signal; this node confirms with a link request. So no instance
// is left running unlinked:
//
//   - if the connection the request came on was lost by the time the
//     actor would be made, none is made, and done gets an error;
//   - if the answer is lost with its connection, the actor's half ends as
//     any link's across a lost connection: it stops with a reason matching
//     ErrNodeDown (an actor that traps exits gets an actor.Exited instead,
//     as with any link, and is stopped when its unconfirmed time is up);
//     done gets the loss;
//   - when done gets a ref, owner is linked to it: done runs on owner's
//     loop, after owner's half was made, and an end of the actor that
//     came meanwhile reaches owner after done, with its reason;
//   - if owner ended before the answer came, the actor gets owner's exit
//     signal (actor.ErrDead) instead, and done still runs, with the ref.
//
// A timeout, as SpawnAsync's, stops the actor if its answer comes later;
// an actor whose spawn this node never confirms (its answer lost on a
// dial back that failed) stops on its own node after a while
// (docs/remote.md, "Remote spawn").
func (n *Node) SpawnLinkAsync(owner actor.Ref, addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	if _, ok := n.wire.LocalID(owner); !ok {
		done(actor.Ref{}, fmt.Errorf("remote: spawn of kind %q on %s: owner %v is not an actor of this node: %w", kind, addr, owner, actor.ErrInvalidRef))
		return
	}
	n.spawnAsync(owner, addr, kind, args, timeout, done)
}

// spawnAsync is SpawnAsync, and SpawnLinkAsync when owner is not zero.
func (n *Node) spawnAsync(owner actor.Ref, addr, kind string, args any, timeout time.Duration, done func(actor.Ref, error)) {
	if timeout <= 0 {
		done(actor.Ref{}, fmt.Errorf("remote: spawn of kind %q on %s: timeout %v is not positive", kind, addr, timeout))
		return
	}
	p, err := n.peer(addr)
	if err != nil {
		done(actor.Ref{}, err)
		return
	}
	ownerID, _ := n.wire.LocalID(owner)
	var tm atomic.Pointer[timer]
	corr, err := p.startCall(fSpawn, waiter{fn: func(v any, err error) {
		if t := tm.Load(); t != nil {
			(*t).Stop()
		}
		if err != nil {
			done(actor.Ref{}, err)
			return
		}
		r, ok := v.(actor.Ref)
		if !ok {
			done(actor.Ref{}, fmt.Errorf("%w: spawn reply of type %T", ErrBadFrame, v))
			return
		}
		if owner.IsZero() {
			done(r, nil)
			return
		}
		n.linkSpawned(p, owner, ownerID, r, done)
	}}, func(f *frame) {
		f.kindName, f.payload = kind, args
		if !owner.IsZero() {
			f.from, f.hasFrom = ownerID, true
		}
	})
	if errors.Is(err, errSettled) {
		return // a loss settled it
	}
	if err != nil {
		done(actor.Ref{}, err)
		return
	}
	t := n.afterFunc(timeout, func() {
		if w, ok := p.abandonCall(corr, !owner.IsZero()); ok {
			w.settle(nil, fmt.Errorf("remote: spawn of kind %q on %s: no answer within %v: %w", kind, addr, timeout, context.DeadlineExceeded))
		}
	})
	tm.Store(&t)
}

// linkSpawned links owner to r, the actor a spawn that carried the link
// made on p's node (SpawnLinkAsync), which confirms the spawn there, then
// runs done.
func (n *Node) linkSpawned(p *peer, owner actor.Ref, ownerID actor.WireID, r actor.Ref, done func(actor.Ref, error)) {
	rp, rid, ok := n.wire.Remote(r)
	if !ok || rp != actorPeer(p) {
		done(actor.Ref{}, fmt.Errorf("%w: spawn reply names %v, not an actor of %s", ErrBadFrame, r, p.name()))
		return
	}
	dead := func() {
		p.addLinks(1) // r's half, which the exit below takes off
		if p.sendExit(rid, ownerID, actor.ErrDead, true, forced) != nil {
			p.addLinks(-1)
		}
	}
	link := func() (uint64, error) { return p.linkFrom(forced, r, owner) }
	err := n.wire.LinkSpawned(owner, r, link, dead, func(err error) {
		if err != nil {
			done(actor.Ref{}, fmt.Errorf("remote: linking to the actor spawned on %s: %w", p.name(), err))
			return
		}
		done(r, nil)
	})
	if err != nil { // owner's system is shutting down: r's half ends with it
		dead()
		done(actor.Ref{}, err)
	}
}

// heartbeats pings dialed peers and closes connections silent for too long,
// every HeartbeatInterval of the wall clock.
func (n *Node) heartbeats(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case now := <-t.C:
			seq++
			n.heartbeat(now, seq)
		}
	}
}

// heartbeat is one round of heartbeats. Rounds do not overlap (one
// goroutine, or the simulator's, runs them), so the lists are reused.
func (n *Node) heartbeat(now time.Time, seq uint64) {
	n.mu.Lock()
	peers := n.listPeersLocked(n.hbPeers)
	ins := n.hbIns[:0]
	for c := range n.inbound {
		ins = append(ins, c)
	}
	n.mu.Unlock()
	defer func() {
		clear(peers) // hold no peer or connection until the next round
		clear(ins)
		n.hbPeers, n.hbIns = peers[:0], ins[:0]
	}()
	if n.clk != nil { // simulated: in a reproducible order, not the map's
		slices.SortFunc(ins, func(a, b *inConn) int {
			return strings.Compare(a.remoteAddr, b.remoteAddr)
		})
	}
	for _, p := range peers {
		p.heartbeat(now, seq)
	}
	for _, c := range ins {
		if now.Sub(time.Unix(0, c.lastHeard.Load())) > n.cfg.HeartbeatTimeout {
			host, _, _ := net.SplitHostPort(c.remoteAddr)
			name := ""
			if p := c.namedAs.Load(); p != nil {
				name = *p
			}
			n.log.Warn("remote: closing silent inbound connection", "peer", name, "remote_addr", host)
			_ = c.conn.Close()
		}
	}
	n.sweep(now, false)
}
