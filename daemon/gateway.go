package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/cluster"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/remote"
)

// The gateway is the daemon's front door for Go programs (package client).
// It is an actor; its ref, written down as a Capability in the file
// CapabilityFile of the data dir (mode 0600), is the authority to use the
// daemon: to list the cluster's members and to spawn actors of the kinds
// registered with Gateway.RegisterKind, here or on another member. Like any
// ref that crosses the network it carries a 128-bit secret, so a program
// without the file gets nothing: a forged or stale capability behaves
// exactly like a dead actor (asks fail with actor.ErrDead).
//
// Gateways of a cluster learn each other's refs so that a client connected
// to one daemon can reach the others (see docs/client.md, "Gateways"); a
// member's gateway is recorded only as the member's node key proves it
// (gateway_intro.go).

// The client-facing protocol lives in package gateway; these names are
// kept for the daemon's own code and its users.

// CapabilityFile is gateway.CapabilityFile.
const CapabilityFile = gateway.CapabilityFile

// Errors of the gateway (see package gateway).
var (
	ErrBadCapability = gateway.ErrBadCapability
	ErrNoSuchMember  = gateway.ErrNoSuchMember
	ErrNoGateway     = gateway.ErrNoGateway
	ErrSpawn         = gateway.ErrSpawn
)

// The gateway's protocol (see package gateway).
type (
	Capability  = gateway.Capability
	ListMembers = gateway.ListMembers
	MemberList  = gateway.MemberList
	MemberInfo  = gateway.MemberInfo
	SpawnKind   = gateway.SpawnKind
	SpawnResult = gateway.SpawnResult
)

// Codes of SpawnResult (see package gateway).
const (
	SpawnOK          = gateway.SpawnOK
	SpawnNoMember    = gateway.SpawnNoMember
	SpawnNoGateway   = gateway.SpawnNoGateway
	SpawnUnknownKind = gateway.SpawnUnknownKind
	SpawnFailed      = gateway.SpawnFailed
)

// ParseCapability is gateway.ParseCapability.
func ParseCapability(s string) (Capability, error) { return gateway.ParseCapability(s) }

// ReadCapability is gateway.ReadCapability.
func ReadCapability(path string) (Capability, error) { return gateway.ReadCapability(path) }

// CapabilityOf is gateway.CapabilityOf.
func CapabilityOf(n *remote.Node, r actor.Ref) (Capability, bool) { return gateway.CapabilityOf(n, r) }

// gatewayWelcome answers a hello: Member's gateway, sealed for the asker
// (see gateway_intro.go).
type gatewayWelcome struct {
	Member string
	Msg    []byte
}

// RegisterGatewayTypes registers the gateway protocol's message types on
// n: the client-facing ones (gateway.RegisterTypes) and those the gateways
// of a cluster exchange among themselves.
func RegisterGatewayTypes(n *remote.Node) error {
	return errors.Join(
		gateway.RegisterTypes(n),
		remote.Register[gatewayWelcome](n, "actord.gateway.Welcome"),
		remote.RegisterError("actord.gateway.answered", errAnswered),
		remote.Register[appregWhere](n, "actord.gateway.AppregWhere"),
		remote.Register[appregHere](n, "actord.gateway.AppregHere"),
		remote.Register[appUpgradeAt](n, "actord.gateway.AppUpgradeAt"),
		remote.Register[childUpgrade](n, "actord.gateway.ChildUpgrade"),
		remote.Register[childUpgraded](n, "actord.gateway.ChildUpgraded"),
		remote.Register[appMoveAt](n, "actord.gateway.AppMoveAt"),
		remote.Register[appEvacuateAt](n, "actord.gateway.AppEvacuateAt"),
		remote.Register[appEvacuated](n, "actord.gateway.AppEvacuated"),
		remote.Register[childHold](n, "actord.gateway.ChildHold"),
		remote.Register[childHeld](n, "actord.gateway.ChildHeld"),
		remote.Register[childRelease](n, "actord.gateway.ChildRelease"),
		remote.Register[childReleased](n, "actord.gateway.ChildReleased"),
		remote.Register[spawnImport](n, "actord.gateway.SpawnImport"),
		remote.Register[cancelImport](n, "actord.gateway.CancelImport"),
		remote.Register[holdTie](n, "actord.gateway.HoldTie"),
		remote.Register[adoptTie](n, "actord.gateway.AdoptTie"),
		remote.Register[dropTie](n, "actord.gateway.DropTie"),
		remote.Register[abandonTie](n, "actord.gateway.AbandonTie"),
		remote.Register[heldQuery](n, "actord.gateway.HeldQuery"),
	)
}

// helloKind is the one remote kind the gateway registers on the node:
// "spawning" it with a hello as argument asks for the gateway (see
// gateway_intro.go). It never spawns anything.
const helloKind = "actord.gateway.hello"

// errAnswered is how a hello is answered when the welcome is on its way.
var errAnswered = errors.New("actord: gateway hello answered (nothing spawned)")

// Introductions: how long one attempt may take, the pause after a failed
// one (doubling up to the maximum), the attempt after which a failure is a
// warning, and how many hellos a gateway opens at once (each costs two
// Diffie-Hellman operations).
const (
	pullTimeout    = 5 * time.Second
	pullBackoffMin = 100 * time.Millisecond
	pullBackoffMax = 10 * time.Second
	pullWarnAfter  = 10
	maxAnswering   = 32
)

// Gateway is a daemon's gateway (see CapabilityFile).
type Gateway struct {
	d      *Daemon
	ref    actor.Ref
	cap    Capability
	file   string
	ctx    context.Context // ends when the daemon stops
	static noise.DHKey     // the node's key pair: introductions are sealed with it

	answering atomic.Int32 // hellos being opened
	appCalls  atomic.Int32 // application calls under way (gateway_apps.go)
	// upgradeCalls and childCalls count the application upgrades and the
	// child moves under way (appupgrade.go).
	upgradeCalls, childCalls atomic.Int32
	moveCalls                atomic.Int32 // moves and evacuations under way (move.go)

	mu    sync.Mutex
	kinds map[string]remote.Kind
	peers map[string]peerGateway // other members' gateways, by member name
	pulls map[string]*puller     // introductions under way, by member name

	ties ties // actors spawned for an owner (SpawnKind.Owner); the gateway's loop only
	// imports are the moves' imports (spawnImport.Move); its loop only.
	imports imports
}

// peerGateway is a member's gateway, and the member's address and key as
// they were when the member's node proved it.
type peerGateway struct {
	ref  actor.Ref
	id   actor.WireID
	addr string
	key  []byte
}

// puller learns one member's gateway (Gateway.pull).
type puller struct {
	m      cluster.Member
	cancel context.CancelFunc
	pend   *pendingHello // the hello awaiting its welcome, nil between attempts
}

type pendingHello struct {
	recv *noise.CipherState // opens the welcome; used under Gateway.mu
	done chan actor.WireID  // the member's gateway, once (buffered)
}

// Gateway returns the daemon's gateway.
func (d *Daemon) Gateway() *Gateway { return d.gw }

// Ref returns the gateway actor's ref.
func (g *Gateway) Ref() actor.Ref { return g.ref }

// Capability returns the gateway's capability, as written to File.
func (g *Gateway) Capability() Capability { return g.cap }

// File returns the path of the capability file.
func (g *Gateway) File() string { return g.file }

// RegisterKind lets holders of the gateway's capability spawn actors of
// kind name on this daemon (client.Client.Spawn). k makes the actor from
// the spawn's arguments; it runs on the gateway's loop, so it must be quick.
// A kind whose factory is supervisor.New(...) spawns a whole tree.
// Kinds are not registered on the remote node: they are reachable only
// through the gateway.
func (g *Gateway) RegisterKind(name string, k remote.Kind) {
	g.mu.Lock()
	g.kinds[name] = k
	g.mu.Unlock()
}

// startGateway spawns the gateway, writes its capability file, and starts
// learning the other members' gateways (and answering their hellos).
func (d *Daemon) startGateway(ctx context.Context) error {
	if err := RegisterGatewayTypes(d.node); err != nil {
		return err
	}
	gctx, cancel := context.WithCancel(context.Background())
	go func() { <-d.done; cancel() }()
	g := &Gateway{d: d, ctx: gctx, kinds: make(map[string]remote.Kind, len(d.cfg.Kinds)), peers: map[string]peerGateway{},
		pulls: map[string]*puller{}, file: filepath.Join(d.cfg.DataDir, CapabilityFile),
		static: noise.DHKey{Private: d.nodeKey, Public: d.node.PublicKey()}}
	maps.Copy(g.kinds, d.cfg.Kinds) // before the gateway runs: no spawn finds them missing
	ref, err := d.sys.Spawn(ctx, func() actor.Actor { return (*gatewayActor)(g) }, actor.Name("actord.gateway"))
	if err != nil {
		return err
	}
	g.ref = ref
	c, ok := CapabilityOf(d.node, ref)
	if !ok {
		return errors.New("no capability for the gateway")
	}
	g.cap = c
	if err := writeSecretFile(g.file, c.String()+"\n"); err != nil {
		return fmt.Errorf("capability file: %w", err)
	}
	d.gw = g
	d.node.RegisterKind(helloKind, g.hello)
	d.agent.Subscribe(g.onEvent)
	for _, m := range d.agent.Members() {
		g.want(m)
	}
	d.log.Info("gateway capability written", "capability_file", g.file)
	return nil
}

// writeSecretFile writes s to path with mode 0600, atomically.
func writeSecretFile(path, s string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".cap-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// onEvent follows membership: a member's gateway is learned when it joins
// or its address or key changes, and forgotten when it goes away.
func (g *Gateway) onEvent(e cluster.Event) {
	switch e.Kind {
	case cluster.Join, cluster.Update:
		g.want(e.Member)
	case cluster.Leave, cluster.Fail:
		g.mu.Lock()
		delete(g.peers, e.Member.Name)
		g.stopPullLocked(e.Member.Name)
		g.mu.Unlock()
		g.d.apps.wake()
	}
}

// want makes sure member m's gateway is known for m's current address and
// key, or being learned. A record made under another address or key is
// dropped (and the change logged): it was proved by another node.
func (g *Gateway) want(m cluster.Member) {
	if m.Self || m.Addr == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec, ok := g.peers[m.Name]; ok {
		if rec.addr == m.Addr && bytes.Equal(rec.key, m.Key) {
			return
		}
		delete(g.peers, m.Name)
		g.d.log.Warn("gateway: member's address or node key changed; its gateway is forgotten until its node proves it again",
			"peer", m.Name, "addr", m.Addr, "old_addr", rec.addr, "key", hex.EncodeToString(m.Key), "old_key", hex.EncodeToString(rec.key))
	}
	g.startPullLocked(m)
}

// startPullLocked starts learning m's gateway, unless that is under way
// for m's address and key already. A record stays until a newer one
// replaces it. g.mu held.
func (g *Gateway) startPullLocked(m cluster.Member) {
	if p := g.pulls[m.Name]; p != nil && p.m.Addr == m.Addr && bytes.Equal(p.m.Key, m.Key) {
		return
	}
	g.stopPullLocked(m.Name)
	if len(m.Key) == 0 {
		g.d.log.Warn("gateway: member gossips no node key; its gateway cannot be learned", "peer", m.Name, "addr", m.Addr)
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	p := &puller{m: m, cancel: cancel}
	g.pulls[m.Name] = p
	go g.pull(ctx, p)
}

func (g *Gateway) stopPullLocked(name string) {
	if p := g.pulls[name]; p != nil {
		p.cancel()
		delete(g.pulls, name)
	}
}

// pull asks p's member for its gateway until it answers, with backoff
// (the member may not have seen this daemon join yet, or not have started
// its gateway), or until ctx ends (the member left or changed, or the
// daemon stops).
func (g *Gateway) pull(ctx context.Context, p *puller) {
	backoff := pullBackoffMin
	for attempt := 1; ; attempt++ {
		err := g.pullOnce(ctx, p)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == pullWarnAfter {
			g.d.log.Warn("gateway: member's gateway still unknown; retrying", "peer", p.m.Name, "addr", p.m.Addr, "attempts", attempt, "err", err)
		} else {
			g.d.log.Debug("gateway: member's gateway not learned; retrying", "peer", p.m.Name, "attempts", attempt, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, pullBackoffMax)
	}
}

// pullOnce sends one hello to p's member and waits for its welcome.
func (g *Gateway) pullOnce(ctx context.Context, p *puller) error {
	m := p.m
	hello, recv, err := newHello(g.static, g.d.cfg.Name, g.cap.ID, m.Name, m.Addr, m.Key)
	if err != nil {
		return err
	}
	pend := &pendingHello{recv: recv, done: make(chan actor.WireID, 1)}
	g.mu.Lock()
	if g.pulls[m.Name] != p {
		g.mu.Unlock()
		return context.Canceled
	}
	p.pend = pend
	g.mu.Unlock()
	actx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	if _, err := g.d.node.Spawn(actx, m.Addr, helloKind, hello); !errors.Is(err, errAnswered) {
		return fmt.Errorf("hello refused: %w", err)
	}
	select {
	case id := <-pend.done:
		return g.record(p, id)
	case <-actx.Done():
		return fmt.Errorf("no welcome: %w", actx.Err())
	}
}

// welcomed opens a welcome with the hello outstanding for its member.
func (g *Gateway) welcomed(w gatewayWelcome) {
	g.mu.Lock()
	p := g.pulls[w.Member]
	if p == nil || p.pend == nil {
		g.mu.Unlock()
		g.d.log.Debug("gateway: welcome without a hello, dropped", "claimed", truncate(w.Member, 64))
		return
	}
	id, err := openWelcome(p.pend.recv, w.Msg)
	if err != nil {
		g.mu.Unlock()
		// Not made by the member's node key for this hello: forged or stale.
		g.d.log.Warn("gateway: welcome that the member's node did not make, dropped", "peer", p.m.Name, "err", err)
		return
	}
	pend := p.pend
	p.pend = nil
	g.mu.Unlock()
	pend.done <- id
}

// record keeps the gateway p's member proved, unless p was superseded.
func (g *Gateway) record(p *puller, id actor.WireID) error {
	m := p.m
	ref, err := g.d.node.ImportRef(m.Name, m.Addr, id)
	if err != nil {
		return err
	}
	g.mu.Lock()
	if g.pulls[m.Name] != p {
		g.mu.Unlock()
		return nil // the member changed or left meanwhile
	}
	delete(g.pulls, m.Name)
	p.cancel()
	old, had := g.peers[m.Name]
	g.peers[m.Name] = peerGateway{ref: ref, id: id, addr: m.Addr, key: m.Key}
	g.mu.Unlock()
	g.d.apps.wake()
	switch {
	case !had:
		g.d.log.Info("gateway: member's gateway learned", "peer", m.Name, "addr", m.Addr, "key", hex.EncodeToString(m.Key))
	case old.id != id || old.addr != m.Addr:
		g.d.log.Warn("gateway: member's gateway changed", "peer", m.Name, "addr", m.Addr, "key", hex.EncodeToString(m.Key))
	}
	return nil
}

// hello is the hello kind: it answers a member's hello with a welcome (see
// gateway_intro.go). Anyone who reaches the node can call it, so it bounds
// the hellos it opens at once, and records nothing.
func (g *Gateway) hello(args any) (actor.Factory, error) {
	b, ok := args.([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: gateway hello of type %T", actor.ErrDead, args)
	}
	if g.answering.Add(1) > maxAnswering {
		g.answering.Add(-1)
		return nil, fmt.Errorf("%w: gateway is answering %d hellos", actor.ErrQueueFull, maxAnswering)
	}
	defer g.answering.Add(-1)
	h, err := openHello(g.static, g.d.cfg.Name, g.d.node.Addr(), b)
	if err != nil {
		g.d.log.Warn("gateway: hello refused", "err", err)
		return nil, fmt.Errorf("%w: %w", actor.ErrDead, err)
	}
	m, ok := g.member(h.from)
	if !ok || !bytes.Equal(m.Key, h.key) {
		// Often a member whose join this daemon has not seen yet: it asks again.
		g.d.log.Debug("gateway: hello from a node that is not a member (yet)", "claimed", truncate(h.from, 64), "key", hex.EncodeToString(h.key))
		return nil, fmt.Errorf("%w: %q with key %x is not a member of %s's cluster", actor.ErrDead, truncate(h.from, 64), h.key, g.d.cfg.Name)
	}
	ref, err := g.d.node.ImportRef(m.Name, m.Addr, h.gateway)
	if err != nil {
		return nil, err
	}
	w, err := h.welcome(g.cap.ID)
	if err != nil {
		return nil, err
	}
	if err := g.d.sys.Send(ref, gatewayWelcome{Member: g.d.cfg.Name, Msg: w}); err != nil {
		return nil, err
	}
	// The hello proves only that this gateway was the member's at some
	// time (it may be replayed): another one than recorded means ask the
	// member, not record it.
	g.mu.Lock()
	if rec, ok := g.peers[m.Name]; !ok || rec.id != h.gateway {
		g.startPullLocked(m)
	}
	g.mu.Unlock()
	return nil, errAnswered
}

// member returns the member named name, if this daemon sees it.
func (g *Gateway) member(name string) (cluster.Member, bool) {
	for _, m := range g.d.agent.Members() {
		if m.Name == name && !m.Self {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// truncate cuts s (a name from the network, for a log line) to n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// gatewayActor is the gateway's actor. Its state is the Gateway's, behind
// its mutex (the hello kind runs on the network's goroutines).
type gatewayActor Gateway

func (a *gatewayActor) Receive(c *actor.Context, msg any) (any, error) {
	g := (*Gateway)(a)
	switch m := msg.(type) {
	case ListMembers:
		return g.members(), nil
	case SpawnKind:
		return g.spawn(c, m)
	case gatewayWelcome:
		g.welcomed(m)
		return nil, nil
	case appregWhere:
		return g.where(c)
	case gateway.DeployApp, gateway.AppOp, gateway.ListApps:
		return g.appCall(c, m)
	case gateway.UpgradeApp:
		return g.upgradeCall(c, m, false)
	case appUpgradeAt:
		if node, ok := g.fromMember(c); !ok || !g.d.apps.isMember(node) {
			return nil, actor.ErrUnknownMessage
		}
		return g.upgradeCall(c, m.Req, true)
	case childUpgrade:
		if _, ok := g.fromMember(c); !ok {
			return nil, actor.ErrUnknownMessage
		}
		return g.childUpgradeCall(c, m)
	case gateway.MoveChild:
		return g.moveCall(c, m, false)
	case appMoveAt:
		if node, ok := g.fromMember(c); !ok || !g.d.apps.isMember(node) {
			return nil, actor.ErrUnknownMessage
		}
		return g.moveCall(c, m.Req, true)
	case appEvacuateAt:
		if _, ok := g.fromMember(c); !ok {
			return nil, actor.ErrUnknownMessage
		}
		return g.evacuateCall(c, m)
	case gateway.Drain:
		return g.drainCall(c)
	case childHold:
		if _, ok := g.fromMember(c); !ok {
			return nil, actor.ErrUnknownMessage
		}
		return g.moveStep(c, func(ctx context.Context) any { return g.d.holdChild(ctx, m) })
	case childRelease:
		if _, ok := g.fromMember(c); !ok {
			return nil, actor.ErrUnknownMessage
		}
		return g.moveStep(c, func(ctx context.Context) any { return g.d.releaseChild(ctx, m) })
	case spawnImport:
		// From a registry member only: a move runs where its root runs
		// (a member), and each import takes a place in a bounded table
		// (maxImports) another daemon must not fill.
		if node, ok := g.fromMember(c); !ok || !g.d.apps.isMember(node) {
			return nil, actor.ErrUnknownMessage
		}
		return g.spawnImported(c, m)
	case localImport: // from this daemon only: the type is not registered on the node
		return g.spawnImported(c, m.m)
	case cancelImport:
		if node, ok := g.fromMember(c); !ok || !g.d.apps.isMember(node) { // as spawnImport
			return nil, actor.ErrUnknownMessage
		}
		return g.cancelCall(c, m)
	case localCancel: // from this daemon only: the type is not registered on the node
		return g.cancelCall(c, m.m)
	case importForget:
		if c.Sender().IsZero() { // this gateway's own timer only
			g.imports.forget(m)
		}
		return nil, nil
	case aliveCheck: // from this daemon only: the type is not registered on the node
		rep := c.Defer()
		c.AliveAsync(m.ref).Then(func(_ *actor.Context, _ any, err error) { rep.Reply(nil, err) })
		return nil, nil
	case *AppUpgraded: // from this daemon only: the type is not registered on the node
		c.Report(m)
		return nil, nil
	case actor.Down:
		g.ties.down(c, m)
		return nil, nil
	case tieLocal:
		return nil, g.ties.tieNow(c, m)
	case holdTie, adoptTie, abandonTie, dropTie, heldQuery, heldExpired, handoverLocal:
		return g.handoverCall(c, m)
	}
	return nil, actor.ErrUnknownMessage
}

func (g *Gateway) members() MemberList {
	ms := g.d.agent.Members()
	out := MemberList{Members: make([]MemberInfo, 0, len(ms))}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range ms {
		mi := MemberInfo{Name: m.Name, Addr: m.Addr, Self: m.Self}
		if m.Self {
			mi.Gateway = g.ref
		} else {
			mi.Gateway = g.peers[m.Name].ref
		}
		out.Members = append(out.Members, mi)
	}
	return out
}

func (g *Gateway) spawn(c *actor.Context, m SpawnKind) (any, error) {
	if m.Member != "" && m.Member != g.d.cfg.Name {
		return g.forward(c, m)
	}
	g.mu.Lock()
	k, ok := g.kinds[m.Kind]
	g.mu.Unlock()
	if !ok {
		return SpawnResult{Code: SpawnUnknownKind, Msg: fmt.Sprintf("%q on %s", m.Kind, g.d.cfg.Name)}, nil
	}
	f, err := callKind(k, normalise(m.Args))
	if err != nil {
		return SpawnResult{Code: SpawnFailed, Msg: fmt.Sprintf("kind %q: %v", m.Kind, err)}, nil
	}
	rep := c.Defer()
	g.spawnTied(c, m.Kind, f, m.Owner, func(ref actor.Ref, err error) {
		if err != nil {
			rep.Reply(SpawnResult{Code: SpawnFailed, Msg: fmt.Sprintf("kind %q: %v", m.Kind, err)}, nil)
			return
		}
		rep.Reply(SpawnResult{Ref: ref}, nil)
	})
	return nil, nil
}

// spawnTied spawns f (an actor of kind), tied to owner if it is set (see
// ties), and calls done with the outcome on the gateway's loop.
func (g *Gateway) spawnTied(c *actor.Context, kind string, f actor.Factory, owner actor.Ref, done func(actor.Ref, error)) {
	var tie *owned
	if !owner.IsZero() {
		var err error
		if tie, err = g.ties.expect(c, owner); err != nil {
			done(actor.Ref{}, err)
			return
		}
	}
	c.SpawnAsync(f, actor.LeastLoaded(), actor.Name(kind)).Then(func(c *actor.Context, v any, err error) {
		if err == nil && tie != nil {
			err = g.ties.tie(c, owner, tie, v.(actor.Ref))
		} else if tie != nil {
			g.ties.abandon(c, owner, tie)
		}
		if err != nil {
			done(actor.Ref{}, err)
			return
		}
		done(v.(actor.Ref), nil)
	})
}

// normalise makes the integers msgpack decoded into an any (int8 ...
// uint64, by their encoded width) int64, or uint64 above MaxInt64, inside
// []any and map[string]any too, so that kinds see one integer type.
func normalise(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return normalise(uint64(x))
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case float32:
		return float64(x)
	case []any:
		for i := range x {
			x[i] = normalise(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalise(x[k])
		}
	}
	return v
}

// callKind runs a kind's function, turning a panic into an error so that
// a bad kind cannot crash the gateway (whose ref is the daemon's
// capability).
func callKind(k remote.Kind, args any) (f actor.Factory, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	f, err = k(args)
	if err == nil && f == nil {
		err = actor.ErrNilActor
	}
	return f, err
}

// forward passes a spawn for another member to that member's gateway.
func (g *Gateway) forward(c *actor.Context, m SpawnKind) (any, error) {
	found := false
	for _, mem := range g.d.agent.Members() {
		if mem.Name == m.Member {
			found = true
			break
		}
	}
	if !found {
		return SpawnResult{Code: SpawnNoMember, Msg: fmt.Sprintf("%q (asked %s)", m.Member, g.d.cfg.Name)}, nil
	}
	g.mu.Lock()
	rec, ok := g.peers[m.Member]
	peer := rec.ref
	g.mu.Unlock()
	if !ok {
		return SpawnResult{Code: SpawnNoGateway, Msg: fmt.Sprintf("%q (asked %s)", m.Member, g.d.cfg.Name)}, nil
	}
	rep := c.Defer()
	c.Ask(peer, m).Then(func(c *actor.Context, v any, err error) { rep.Reply(v, err) })
	return nil, nil
}
