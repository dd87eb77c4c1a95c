package remote

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/ratelog"
	"github.com/actord/actord/internal/service"
	"github.com/panjf2000/gnet/v2"
	"github.com/vmihailenco/msgpack/v5"
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
	// MaxOutbound bounds the bytes queued for one peer and not yet written.
	// Beyond it, Send and Ask to that peer fail at once with
	// actor.ErrQueueFull (counted in Stats.Refused). Default 32 MiB.
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
		c.MaxOutbound = 32 << 20
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
}

type counters struct {
	framesIn, framesOut, bytesIn, bytesOut, opened, closed, badFrames, refused, dropped, peersDown atomic.Uint64
	deadLetters, downRefused, forgotten, dials                                                     atomic.Uint64
	connsRefused, handshakeTimeouts, bufferLimited, acceptErrors                                   atomic.Uint64
}

// Node connects an actor.System to other nodes over TCP: actors on any node
// reach each other with the same Send and Ask, refs travel inside messages,
// and a lost peer fails the asks and fires the monitors that depended on it.
// See docs/remote.md for the protocol.
type Node struct {
	sys  *actor.System
	wire *actor.Wire
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

	mu      sync.Mutex
	peers   map[string]*peer // by listen address
	kinds   map[string]Kind
	exports exports // names exported as sturdy refs (sturdy.go)
	// resolve requests being answered, at most maxResolving (sturdy.go)
	resolving atomic.Int64
	answer    func(req []byte) ([]byte, bool) // answerResolve; tests make a node relay instead
	remotes   map[inKey]*inState
	inbound   map[*inConn]struct{}
	// epochs numbers connections node-wide, so every connection this node
	// dials has a higher epoch than all before it, whichever peer object
	// made it (a forgotten peer's successor included).
	epochs atomic.Uint64
	// answerDials bounds the dials made to answer other nodes (replies and
	// signals to a node whose address only its Hello named).
	answerDials tokenBucket
	linkCfg     linkConfig   // what every peer's link follows
	lastNudge   atomic.Int64 // unix ns of the last nudgeGC
	cli         *gnet.Client

	// unauthenticated connections (accept.go) and the bytes of incomplete
	// frames held for all accepted connections (Config.MaxBuffered)
	pending  pendingConns
	buffered budget
}

// inKey names an incarnation of a remote node.
type inKey struct {
	name string
	inc  uint64
}

// inState tracks the newest connection epoch seen from a remote incarnation,
// so frames from an older connection are refused rather than reordered, and
// how many of its connections are open (n.mu), so the entry is forgotten
// some time after the last one closed (Node.sweep).
type inState struct {
	epoch    atomic.Uint64
	open     int
	closedAt time.Time
}

// New makes a Node for sys. Start it with Serve (for a supervisor) or Start.
func New(sys *actor.System, cfg Config) *Node {
	cfg = cfg.withDefaults()
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{
		// Every line a peer can cause is rate-limited by its source.
		sys: sys, wire: sys.Wire(), cfg: cfg, log: ratelog.Wrap(cfg.Logger, ratelog.Config{}).With("node", cfg.Name),
		reg: newRegistry(), name: cfg.Name, inc: binary.BigEndian.Uint64(b[:]),
		ready: make(chan struct{}), peers: map[string]*peer{}, kinds: map[string]Kind{},
		remotes: map[inKey]*inState{}, inbound: map[*inConn]struct{}{},
		answerDials: tokenBucket{rate: answerDialRate, burst: answerDialBurst},
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
	if cfg.Events != nil {
		ev, err := newNodeEvents(cfg.Events)
		if err != nil {
			n.log.Warn("remote: no lifecycle events: the bus refused emitters", "err", err)
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
		BufferLimited: c.bufferLimited.Load(), AcceptErrors: c.acceptErrors.Load(),
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
	if n.sec.psk == nil {
		n.log.Warn("remote: no cluster key: the transport is encrypted, but any node that reaches the listen address may connect (set Config.ClusterKey)")
	}
	cli, err := gnet.NewClient(&clientHandler{n: n}, gnet.WithNumEventLoop(n.cfg.EventLoops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(gnetLogger{n.log}))
	if err != nil {
		return fmt.Errorf("remote: gnet client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return fmt.Errorf("remote: gnet client: %w", err)
	}
	// Accepted connections are served by a second engine: the node
	// accepts them itself (acceptLoop), so that an accept error does not
	// stop the engine and drop every peer.
	srv, err := gnet.NewClient(&serverHandler{n: n}, gnet.WithNumEventLoop(n.cfg.EventLoops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(gnetLogger{n.log}))
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		_ = cli.Stop()
		return fmt.Errorf("remote: gnet server: %w", err)
	}
	ln, err := listen(n.cfg.Listen)
	if err != nil {
		_ = srv.Stop()
		_ = cli.Stop()
		return fmt.Errorf("remote: node %s: listen: %w", n.name, err)
	}
	n.mu.Lock()
	n.cli = cli
	n.mu.Unlock()
	n.listening(ln.Addr().String())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.heartbeats(ctx, done) }()
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
		}
		_ = ln.Close() // ends acceptLoop
	}()
	err = n.acceptLoop(ctx, ln, srv)
	_ = ln.Close()
	_ = srv.Stop() // accepted connections close
	if ctx.Err() != nil {
		n.closing.Store(true) // stopped on purpose: for good
	}
	close(done)
	wg.Wait()
	n.mu.Lock()
	n.cli = nil
	n.mu.Unlock()
	if n.closing.Load() {
		n.shutdownPeers()
		defer n.ev.close() // after the last ConnClosed and NodeDown
	}
	_ = cli.Stop() // dialed connections close; if the engine merely died, peers redial after a restart
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
	peers := make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	n.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
}

// boundedPeer is peerFor for addresses that came from the network: it
// refuses to create a peer beyond Config.MaxPeers.
func (n *Node) boundedPeer(addr, name string) (*peer, error) {
	n.mu.Lock()
	_, known := n.peers[addr]
	full := len(n.peers) >= n.cfg.MaxPeers
	n.mu.Unlock()
	if !known && full && n.sweep(time.Now(), true) == 0 {
		// Peers that only refs nobody holds any more keep are let go once
		// the garbage collector has run: make it run soon, for the next try.
		n.nudgeGC()
		return nil, fmt.Errorf("%w: %d nodes known, refusing %s", ErrTooManyPeers, n.cfg.MaxPeers, addr)
	}
	return n.peerFor(addr, name), nil
}

// peerFor returns the peer listening at addr, creating it.
func (n *Node) peerFor(addr, name string) *peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peers[addr]
	if !ok {
		p = newPeer(n, addr, name)
		n.peers[addr] = p
		return p
	}
	if name != "" {
		p.setName(name)
	}
	// In use again: not to be forgotten by a sweep that runs before the
	// caller makes its ref (n.mu orders the two).
	p.mu.Lock()
	p.link.lastActive = time.Now()
	p.mu.Unlock()
	return p
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

// encodeRef writes a ref inside a payload: [node, addr, loop, slot, gen,
// secret], or nil for the zero Ref.
func (n *Node) encodeRef(e *msgpack.Encoder, r actor.Ref) error {
	if r.IsZero() {
		return e.EncodeNil()
	}
	var name, addr string
	id, ok := n.wire.LocalID(r)
	if ok {
		name, addr = n.name, n.Addr()
	} else {
		p, rid, ok := n.wire.Remote(r)
		if !ok {
			return fmt.Errorf("remote: ref %v belongs to another system", r)
		}
		pp, ok := p.(*peer)
		if !ok {
			return fmt.Errorf("remote: ref %v belongs to another transport", r)
		}
		name, addr, id = pp.name(), pp.addr, rid
	}
	_ = e.EncodeArrayLen(6)
	_ = e.EncodeString(name)
	_ = e.EncodeString(addr)
	_ = e.EncodeUint(uint64(id.Loop))
	_ = e.EncodeUint(uint64(id.Slot))
	_ = e.EncodeUint(uint64(id.Gen))
	return e.EncodeBytes(id.Secret[:])
}

// maxRefField bounds the node name and the address in a ref on the wire (a
// DNS name is at most 253 bytes).
const maxRefField = 512

func (n *Node) decodeRef(d *msgpack.Decoder) (actor.Ref, error) {
	c, err := d.PeekCode()
	if err != nil {
		return actor.Ref{}, err
	}
	if c == 0xc0 {
		return actor.Ref{}, d.DecodeNil()
	}
	if l, err := d.DecodeArrayLen(); err != nil || l != 6 {
		return actor.Ref{}, fmt.Errorf("%w: ref of %d fields", ErrBadFrame, l)
	}
	name, err := d.DecodeString()
	if err != nil {
		return actor.Ref{}, err
	}
	addr, err := d.DecodeString()
	if err != nil {
		return actor.Ref{}, err
	}
	if len(name) > maxRefField || len(addr) > maxRefField {
		// Every ref to a new node costs a peer (MaxPeers bounds how many):
		// bound what each keeps too.
		return actor.Ref{}, fmt.Errorf("%w: ref with a %d-byte node name and a %d-byte address (max %d)", ErrBadFrame, len(name), len(addr), maxRefField)
	}
	// Stop at the first bad field: a read past one that failed is out of step
	// with the value checkValue walked, and could take any bytes for a
	// length. The secret is read in place, as DecodeBytes would first
	// allocate whatever length is declared.
	var id actor.WireID
	if id.Loop, err = d.DecodeUint16(); err == nil {
		if id.Slot, err = d.DecodeUint32(); err == nil {
			id.Gen, err = d.DecodeUint32()
		}
	}
	if err == nil {
		var l int
		if l, err = d.DecodeBytesLen(); err == nil && l != len(id.Secret) {
			err = fmt.Errorf("secret of %d bytes", l)
		}
	}
	if err == nil {
		err = d.ReadFull(id.Secret[:])
	}
	if err != nil {
		return actor.Ref{}, fmt.Errorf("%w: ref fields: %v", ErrBadFrame, err)
	}
	if addr == n.Addr() {
		r, _ := n.wire.Resolve(id) // a forged one comes back dead
		return r, nil
	}
	if addr == "" {
		return actor.Ref{}, fmt.Errorf("%w: ref without address", ErrBadFrame)
	}
	p, err := n.boundedPeer(addr, name)
	if err != nil {
		return actor.Ref{}, err
	}
	return n.wire.RemoteRef(p, id), nil
}

// heartbeats pings dialed peers and closes connections silent for too long.
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
			n.mu.Lock()
			peers := make([]*peer, 0, len(n.peers))
			for _, p := range n.peers {
				peers = append(peers, p)
			}
			ins := make([]*inConn, 0, len(n.inbound))
			for c := range n.inbound {
				ins = append(ins, c)
			}
			n.mu.Unlock()
			for _, p := range peers {
				p.heartbeat(now, seq)
			}
			for _, c := range ins {
				if now.Sub(time.Unix(0, c.lastHeard.Load())) > n.cfg.HeartbeatTimeout {
					n.log.Warn("remote: closing silent inbound connection", "peer", c.remoteName, "remote_addr", hostOf(c.conn.RemoteAddr()))
					_ = c.conn.Close()
				}
			}
			n.sweep(now, false)
		}
	}
}

// deliver posts a message into a loop, waiting up to DeliverWait while the
// loop's queue is full (see Config.DeliverWait).
func (n *Node) deliver(ic *inConn, post func() error) error {
	err := post()
	if err == nil || !errors.Is(err, actor.ErrQueueFull) {
		return err
	}
	ic.kickAll(n) // what this read queued must drain for room to appear
	deadline := time.Now().Add(n.cfg.DeliverWait)
	for i := 0; ; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
		if err = post(); err == nil || !errors.Is(err, actor.ErrQueueFull) || time.Now().After(deadline) {
			return err
		}
	}
}

// gnetLogger sends gnet's own logs to slog, its chatter at debug level.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }

// readFrames drains every complete frame from c, handing each body (valid
// only during the call) to handle. It reports an error (and the caller
// closes the connection) for an oversized frame or when handle fails.
func readFrames(c stream, max int, handle func(body []byte) error) error {
	for {
		h, err := c.Peek(4)
		if err != nil {
			return nil // fewer than 4 bytes: wait for more
		}
		size := int(binary.BigEndian.Uint32(h))
		if size > max {
			return fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, size, max)
		}
		if c.InboundBuffered() < 4+size {
			return nil
		}
		buf, err := c.Peek(4 + size)
		if err != nil {
			return nil
		}
		herr := handle(buf[4:])
		_, _ = c.Discard(4 + size)
		if herr != nil {
			return herr
		}
	}
}

// serverHandler serves accepted connections.
type serverHandler struct {
	gnet.BuiltinEventEngine
	n *Node
}

// inConn is the state of an accepted connection.
type inConn struct {
	conn       gnet.Conn
	sess       *session
	fr         *frameReader
	f          frame
	hello      bool
	remoteName string
	epoch      uint64
	state      *inState
	from       *peer // the peer to answer through (its listen address)
	lastHeard  atomic.Int64
	out        []byte // pongs and welcome, written on the loop
	wbuf       []byte // out, sealed
	localAddr  string
	remoteAddr string
	// the last target id whose secret checked out, so a stream to one
	// actor is verified once (loop goroutine only)
	lastTo  actor.WireID
	lastRef actor.Ref
	lastOK  bool
	// the last sender's ref, so a stream from one actor is interned once
	lastFromID  actor.WireID
	lastFromRef actor.Ref
	// one local actor per loop that messages were queued to during this
	// read, to kick at its end (kickAll)
	kick []actor.Ref
	// frame bytes read, and acknowledged to the sender (ackInbound)
	rx, rxAcked uint64
	// the connection's place among the unauthenticated ones and its
	// handshake deadline, until its Hello is accepted (then nil)
	pre *preAuth
}

// queued notes that a message was queued (quietly) for to's loop.
func (ic *inConn) queued(to actor.Ref) {
	for _, r := range ic.kick {
		if r.Loop() == to.Loop() {
			return
		}
	}
	ic.kick = append(ic.kick, to)
}

// kickAll makes the loops messages were queued to handle them.
func (ic *inConn) kickAll(n *Node) {
	for i, r := range ic.kick {
		n.wire.Kick(r)
		ic.kick[i] = actor.Ref{}
	}
	ic.kick = ic.kick[:0]
}

// remoteFrom is Wire.RemoteRef for the sender of a frame, with a one-entry
// cache: interning takes a lock and a map lookup. The cached ref keeps the
// interned one alive, so equal ids still give equal refs.
func (ic *inConn) remoteFrom(n *Node, id actor.WireID) actor.Ref {
	if !ic.lastFromRef.IsZero() && id == ic.lastFromID {
		return ic.lastFromRef
	}
	r := n.wire.RemoteRef(ic.from, id)
	ic.lastFromID, ic.lastFromRef = id, r
	return r
}

// resolve is Wire.Resolve with a one-entry cache of the last verified id:
// only an id equal, secret included, to one already verified skips the check.
func (ic *inConn) resolve(n *Node, id actor.WireID) (actor.Ref, bool) {
	if ic.lastOK && id == ic.lastTo {
		return ic.lastRef, true
	}
	r, ok := n.wire.Resolve(id)
	if ok {
		ic.lastTo, ic.lastRef, ic.lastOK = id, r, true
	}
	return r, ok
}

// listening records the listen address and announces it.
func (n *Node) listening(addr string) {
	n.addr.Store(addr)
	n.log.Info("remote: node listening", "addr", addr)
	select {
	case <-n.ready:
	default:
		close(n.ready)
	}
}

func (h *serverHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	n := h.n
	pa, ok := c.Context().(*preAuth)
	if !ok {
		return nil, gnet.Close
	}
	hs, err := n.sec.handshake(false)
	if err != nil {
		pa.authenticated()
		n.log.Error("remote: cannot start a handshake", "err", err)
		return nil, gnet.Close
	}
	sess := newSession(hs, n.helloLimit())
	sess.budget = &n.buffered
	ic := &inConn{conn: c, sess: sess, fr: newFrameReader(n, nil), pre: pa}
	ic.lastHeard.Store(time.Now().UnixNano())
	c.SetContext(ic)
	n.stats.opened.Add(1)
	n.mu.Lock()
	n.inbound[ic] = struct{}{}
	n.mu.Unlock()
	pa.start(c)
	return nil, gnet.None
}

func (h *serverHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	ic, ok := c.Context().(*inConn)
	if !ok {
		return gnet.None
	}
	h.n.stats.closed.Add(1)
	h.n.inboundClosed(ic)
	if ic.pre != nil {
		ic.pre.authenticated() // gives its place back
	}
	ic.sess.release()
	ic.fr.release()
	if ic.hello {
		h.n.ev.connClosed(ic.remoteName, ic.localAddr, ic.remoteAddr, err)
	}
	return gnet.None
}

func (h *serverHandler) OnTraffic(c gnet.Conn) gnet.Action {
	n := h.n
	ic := c.Context().(*inConn)
	ic.lastHeard.Store(time.Now().UnixNano())
	ic.out = ic.out[:0]
	buffered := c.InboundBuffered()
	handshake := func(msg []byte) ([]byte, error) { return ic.sess.handshakeStep(false, msg) }
	var replies []byte
	var err error
	for {
		// Records are decrypted up to what the session may hold, then
		// parsed into frames, which makes room for more.
		var r []byte
		var more bool
		r, more, err = ic.sess.records(c, handshake, true)
		replies = append(replies, r...)
		if err != nil || !ic.sess.ready() {
			break
		}
		held := ic.sess.InboundBuffered()
		if err = n.readInbound(ic); err != nil || !more {
			break
		}
		if ic.sess.InboundBuffered() >= held { // cannot happen: a full session holds a whole frame
			err = fmt.Errorf("%w: no frame in %d bytes of plaintext", ErrFrameTooLarge, held)
			break
		}
	}
	ic.sess.compact()
	ic.kickAll(n)
	ic.ackInbound(ackEvery)
	n.stats.bytesIn.Add(uint64(buffered - c.InboundBuffered()))
	if len(ic.out) > 0 && ic.sess.tx != nil {
		replies = seal(append(ic.wbuf[:0], replies...), ic.sess.tx, ic.out)
		ic.wbuf = replies
	}
	if len(replies) > 0 {
		_, _ = c.Write(replies)
	}
	if err != nil {
		if errors.Is(err, ErrBufferLimit) {
			n.stats.bufferLimited.Add(1)
		} else {
			n.stats.badFrames.Add(1)
		}
		n.log.Warn("remote: closing connection", "peer", ic.remoteName, "remote_addr", hostOf(c.RemoteAddr()), "reason", err)
		return gnet.Close
	}
	return gnet.None
}

// helloLimit bounds the frames before the Hello.
func (n *Node) helloLimit() int { return min(maxHelloFrame, n.cfg.MaxFrame) }

// errHelloDone stops readFrames at an accepted Hello, so the frames after
// it are read with the limits of an authenticated connection.
var errHelloDone = errors.New("hello accepted")

// readInbound handles the complete frames an accepted connection's session
// holds. Until the Hello is accepted, frames are limited to maxHelloFrame.
func (n *Node) readInbound(ic *inConn) error {
	handle := func(body []byte) error {
		n.stats.framesIn.Add(1)
		ic.countInbound(len(body))
		if err := ic.fr.parse(body, &ic.f); err != nil {
			return err
		}
		if err := n.handleInbound(ic, &ic.f); err != nil {
			return err
		}
		if ic.pre != nil && ic.hello {
			return errHelloDone
		}
		return nil
	}
	if ic.pre == nil {
		return readFrames(ic.sess, n.cfg.MaxFrame, handle)
	}
	err := readFrames(ic.sess, n.helloLimit(), handle)
	if err != errHelloDone {
		return err
	}
	ic.pre.authenticated()
	ic.pre = nil
	ic.sess.setMaxFrame(n.cfg.MaxFrame)
	return readFrames(ic.sess, n.cfg.MaxFrame, handle)
}

// handleInbound acts on one frame from an accepted connection.
func (n *Node) handleInbound(ic *inConn, f *frame) error {
	if !ic.hello {
		if f.kind != fHello {
			return bad(fmt.Sprintf("frame kind %d before hello", f.kind), nil)
		}
		if f.version != protocolVersion {
			ic.out = appendControl(ic.out, &frame{kind: fGoodbye, code: codeVersion, msg: fmt.Sprintf("protocol version %d, want %d", f.version, protocolVersion)})
			return fmt.Errorf("%w: peer %s speaks %d", ErrVersion, f.name, f.version)
		}
		if f.addr == "" || f.addr == n.Addr() {
			return bad("hello with bad listen address "+f.addr, nil)
		}
		if err := n.authorize(f.name, ic.sess.peerKey); err != nil {
			return err
		}
		from, err := n.boundedPeer(f.addr, f.name)
		if err != nil {
			return err
		}
		key := inKey{f.name, f.incarnation}
		n.mu.Lock()
		st, ok := n.remotes[key]
		if !ok {
			st = &inState{}
			n.remotes[key] = st
		}
		var prev uint64
		for {
			prev = st.epoch.Load()
			if f.epoch <= prev {
				n.mu.Unlock()
				return fmt.Errorf("remote: stale connection epoch %d from %s (current %d)", f.epoch, f.name, prev)
			}
			if st.epoch.CompareAndSwap(prev, f.epoch) {
				break
			}
		}
		st.open++
		n.mu.Unlock()
		ic.hello, ic.remoteName, ic.epoch, ic.state = true, f.name, f.epoch, st
		ic.localAddr, ic.remoteAddr = ic.conn.LocalAddr().String(), ic.conn.RemoteAddr().String()
		n.ev.connOpened(f.name, ic.localAddr, ic.remoteAddr)
		ic.from = from
		ic.fr.setFrom(n, ic.from)
		from.claimOpened(ic.sess.peerKey)
		if prev != 0 {
			// The node lost its connection here and dialed again: what it
			// sent meanwhile may be lost, so links with its actors end as
			// they did on its side (peer.lost), before this connection's
			// frames can make new ones.
			n.wire.BreakLinks(from, math.MaxUint64, fmt.Errorf("%w: %s: connection lost", ErrNodeDown, f.name))
		}
		ic.out = appendControl(ic.out, &frame{kind: fWelcome, version: protocolVersion, name: n.name, incarnation: n.inc})
		return nil
	}
	if ic.state.epoch.Load() != ic.epoch {
		return fmt.Errorf("remote: connection from %s superseded by a newer one", ic.remoteName)
	}
	switch f.kind {
	case fSend:
		to, ok := ic.resolve(n, f.to)
		if !ok || f.payloadErr != nil {
			n.stats.dropped.Add(1)
			return nil
		}
		var from actor.Ref
		if f.hasFrom {
			from = ic.remoteFrom(n, f.from)
		}
		if _, isDown := f.payload.(actor.Down); isDown {
			return nil // Downs travel as fDown frames only
		}
		if err := n.deliver(ic, func() error { return n.wire.QueueSend(to, from, f.payload) }); err != nil {
			n.stats.dropped.Add(1)
		} else {
			ic.queued(to)
		}
	case fAsk:
		from := ic.remoteFrom(n, f.from)
		to, ok := ic.resolve(n, f.to)
		switch {
		case !ok:
			ic.from.Reply(from, f.pidx, f.pgen, nil, actor.ErrDead)
		case f.payloadErr != nil:
			ic.from.Reply(from, f.pidx, f.pgen, nil, f.payloadErr)
		default:
			if err := n.deliver(ic, func() error { return n.wire.QueueAsk(to, from, f.payload, f.pidx, f.pgen) }); err != nil {
				ic.from.Reply(from, f.pidx, f.pgen, nil, err)
			} else {
				ic.queued(to)
			}
		}
	case fReply:
		if !ic.mayAnswer() {
			// Another node that claims the address in its Hello: a reply
			// names its ask by numbers that can be guessed, so only the
			// node this one asked may settle it.
			n.stats.dropped.Add(1)
			n.log.Warn("remote: dropping a reply from a node that is not the one asked", "peer", ic.remoteName, "remote_addr", ic.remoteAddr)
			return nil
		}
		err := decodeError(ic.remoteName, f.code, f.msg)
		v := f.payload
		if err == nil && f.payloadErr != nil {
			v, err = nil, f.payloadErr
		}
		if f.loop == actor.GoroutineLoop {
			ic.from.completeAsk(uint64(f.pgen)<<32|uint64(f.pidx), v, err)
		} else {
			n.wire.Settle(f.loop, f.pidx, f.pgen, v, err)
		}
	case fPing:
		ic.ackInbound(1)
		ic.out = appendControl(ic.out, &frame{kind: fPong, seq: f.seq})
	case fMonitor:
		watcher := n.wire.RemoteRef(ic.from, f.from)
		peer, targetID, watcherID := ic.from, f.to, f.from
		// never echo a corrected secret; an answer, so it may be refused
		noproc := func() { peer.sendDown(targetID, watcherID, actor.ErrDead, false) }
		if target, ok := n.wire.Resolve(f.to); !ok || n.wire.MonitorLocal(target, watcher, noproc) != nil {
			noproc()
		}
	case fDemonitor:
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.DemonitorLocal(target, n.wire.RemoteRef(ic.from, f.from))
		}
	case fStop:
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.StopLocal(target, decodeError(ic.remoteName, f.code, f.msg))
		}
	case fDown:
		ic.from.deliverDown(f.to, f.from, decodeError(ic.remoteName, f.code, f.msg))
	case fLink:
		from, peer, fromID, toID := ic.remoteFrom(n, f.from), ic.from, f.from, f.to
		// noproc, from the id as it came: never echo a corrected secret
		noproc := func() { _ = peer.sendExit(fromID, toID, actor.ErrDead, true, answer) }
		if target, ok := n.wire.Resolve(f.to); !ok || n.wire.LinkLocal(target, from, peer.currentEpoch, noproc) != nil {
			noproc()
		} else {
			// This half of the link ends when this node's own connection to
			// the linking node is lost (peer.lost): make sure there is one,
			// with its heartbeat, even if nothing else is sent there.
			ic.from.ensureConnected()
		}
	case fUnlink:
		if target, ok := n.wire.Resolve(f.to); ok {
			_ = n.wire.UnlinkLocal(target, ic.remoteFrom(n, f.from))
		}
	case fExit:
		if to, ok := ic.resolve(n, f.to); ok {
			_ = n.wire.SignalLocal(to, ic.remoteFrom(n, f.from), decodeError(ic.remoteName, f.code, f.msg), f.link == 1)
		}
	case fSpawn:
		proxy := n.wire.RemoteRef(ic.from, actor.WireID{Loop: actor.GoroutineLoop})
		if f.payloadErr != nil {
			ic.from.Reply(proxy, f.pidx, f.pgen, nil, f.payloadErr)
			return nil
		}
		n.mu.Lock()
		k, ok := n.kinds[f.kindName]
		n.mu.Unlock()
		if ok && n.cfg.AuthorizeSpawn != nil {
			if err := n.cfg.AuthorizeSpawn(ic.remoteName, append([]byte(nil), ic.sess.peerKey...), f.kindName); err != nil {
				n.log.Info("remote: spawn refused", "peer", ic.remoteName, "kind", f.kindName, "reason", err)
				ok = false
			}
		}
		if !ok {
			ic.from.Reply(proxy, f.pidx, f.pgen, nil, fmt.Errorf("%w: %q on node %s", ErrUnknownKind, f.kindName, n.name))
			return nil
		}
		pidx, pgen, args := f.pidx, f.pgen, f.payload
		go func() { // spawning waits for Start: off the network loop
			fac, err := k(args)
			var r actor.Ref
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout+5*time.Second)
				r, err = n.sys.Spawn(ctx, fac)
				cancel()
			}
			ic.from.Reply(proxy, pidx, pgen, r, err)
		}()
	case fResolve:
		proxy := n.wire.RemoteRef(ic.from, actor.WireID{Loop: actor.GoroutineLoop})
		req, _ := f.payload.([]byte)
		pidx, pgen := f.pidx, f.pgen
		if n.resolving.Add(1) > maxResolving {
			n.resolving.Add(-1)
			ic.from.Reply(proxy, pidx, pgen, nil, fmt.Errorf("%w: node %s is resolving %d sturdy refs", actor.ErrQueueFull, n.name, maxResolving))
			return nil
		}
		go func() { // a Diffie-Hellman per request: off the network loop
			defer n.resolving.Add(-1)
			if sealed, ok := n.answer(req); ok {
				ic.from.Reply(proxy, pidx, pgen, sealed, nil)
				return
			}
			ic.from.Reply(proxy, pidx, pgen, nil, fmt.Errorf("%w: sturdy ref not exported on node %s", actor.ErrDead, n.name))
		}()
	case fGoodbye:
		return fmt.Errorf("remote: %s said goodbye: %v", ic.remoteName, decodeError(ic.remoteName, f.code, f.msg))
	default:
		return bad(fmt.Sprintf("unexpected frame kind %d on an accepted connection", f.kind), nil)
	}
	return nil
}
