package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many records have msg and, if attr is not "", an
// attribute attr=val.
func (r *records) count(msg, attr, val string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Message != msg {
			continue
		}
		ok := attr == ""
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == attr && a.Value.String() == val {
				ok = true
			}
			return !ok
		})
		if ok {
			n++
		}
	}
	return n
}

// testNode starts a bare remote node (an attacker's, or a client's) with
// the cluster key key.
func testNode(t *testing.T, name string, key []byte) *remote.Node {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: testLogger()})
	n := remote.New(sys, remote.Config{Name: name, ClusterKey: key, Logger: testLogger()})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	return n
}

func startNode(t *testing.T, n *remote.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// gatewayOf returns d's record of member's gateway, as a capability.
func gatewayOf(d *Daemon, member string) (Capability, bool) {
	for _, m := range d.gw.members().Members {
		if m.Name == member && !m.Gateway.IsZero() {
			return CapabilityOf(d.node, m.Gateway)
		}
	}
	return Capability{}, false
}

// keyedPair starts daemons a and b sharing a cluster key, with a gateway
// kind "echo" on b, and waits until each knows the other's gateway.
func keyedPair(t *testing.T, logA *slog.Logger) (a, b *Daemon, key []byte) {
	t.Helper()
	const k = "0123456789abcdef0123456789abcdef"
	file := writeKeyFile(t, k, 0o600)
	cfgA := testConfig(t, "a")
	cfgA.ClusterKeyFile = file
	if logA != nil {
		cfgA.Logger = logA
	}
	a = start(t, cfgA)
	cfgB := testConfig(t, "b", a.Info().GossipAddr)
	cfgB.ClusterKeyFile = file
	b = start(t, cfgB)
	b.Gateway().RegisterKind("echo", func(any) (actor.Factory, error) {
		return func() actor.Actor { return fnActor(func(_ *actor.Context, m any) (any, error) { return m, nil }) }, nil
	})
	for _, p := range [][2]*Daemon{{a, b}, {b, a}} {
		eventually(t, 10*time.Second, p[0].Info().Node+" knows "+p[1].Info().Node+"'s gateway", func() bool {
			c, ok := gatewayOf(p[0], p[1].Info().Node)
			return ok && c == p[1].Gateway().Capability()
		})
	}
	return a, b, []byte(k)
}

// spawnThrough spawns kind on member through d's gateway, as a client of
// d with the cluster key would, and asks the new actor.
func spawnThrough(t *testing.T, d *Daemon, key []byte, member, kind string) {
	t.Helper()
	c := testNode(t, "client", key)
	if err := RegisterGatewayTypes(c); err != nil {
		t.Fatal(err)
	}
	startNode(t, c)
	gw, err := d.Gateway().Capability().Ref(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.System().Ask(ctx, gw, SpawnKind{Member: member, Kind: kind})
	if err != nil {
		t.Fatalf("spawn %s on %s through %s: %v", kind, member, d.Info().Node, err)
	}
	res, ok := v.(SpawnResult)
	if !ok || res.Err() != nil {
		t.Fatalf("spawn %s on %s through %s: %#v (%v)", kind, member, d.Info().Node, v, res.Err())
	}
	if v, err := c.System().Ask(ctx, res.Ref, "hi"); err != nil || v != "hi" {
		t.Fatalf("ask the actor spawned on %s: %v, %v", member, v, err)
	}
}

// Messages as an attacker sends them: registered under the gateway's
// names, so they arrive as the gateway's own types (the first two are the
// ones that replaced a record before gateways proved their introductions).
type forgedAnnounce struct{ Gateway actor.Ref }
type forgedWelcome struct {
	Member string
	Msg    []byte
}

func randomID(t *testing.T) actor.WireID {
	id := actor.WireID{Loop: 1, Slot: 2, Gen: 3}
	if _, err := rand.Read(id.Secret[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGatewayRecordNotPoisoned: a node that holds the cluster key, and
// even a's gateway capability, tries every way it has to replace a's
// record of b's gateway with a forged one (a ref at b's address with a
// made-up identity): an introduction through the old introduce kind, an
// announce, hellos, a welcome. a's record stays b's own, and a client's
// spawn on b through a still works.
func TestGatewayRecordNotPoisoned(t *testing.T) {
	a, b, key := keyedPair(t, nil)
	evil := testNode(t, "evil", key)
	for _, err := range []error{
		remote.Register[forgedAnnounce](evil, "actord.gateway.Announce"),
		remote.Register[forgedWelcome](evil, "actord.gateway.Welcome"),
		remote.Register[ListMembers](evil, "actord.gateway.ListMembers"),
		remote.Register[MemberList](evil, "actord.gateway.MemberList"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	startNode(t, evil)
	forged, err := evil.ImportRef("b", b.Info().Addr, randomID(t))
	if err != nil {
		t.Fatal(err)
	}
	gwA, err := a.Gateway().Capability().Ref(evil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, kind := range []string{"actord.gateway.introduce", helloKind} {
		for _, arg := range []any{forged, []byte("junk"), bytes.Repeat([]byte{1}, 4096), nil} {
			r, err := evil.Spawn(ctx, a.Info().Addr, kind, arg)
			if err == nil || errors.Is(err, errAnswered) {
				t.Errorf("a answered %s(%T): %v, %v", kind, arg, r, err)
			}
		}
	}
	for range 3 {
		welcome := make([]byte, welcomeLen)
		_, _ = rand.Read(welcome)
		for _, m := range []any{forgedAnnounce{Gateway: forged}, forgedWelcome{Member: "b", Msg: welcome}} {
			if err := evil.System().Send(gwA, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The gateway handles its messages in order: once this is answered,
	// the sends before it have been handled.
	if _, err := evil.System().Ask(ctx, gwA, ListMembers{}); err != nil {
		t.Fatal(err)
	}
	// Poisoned would be a record of another gateway. The record may be
	// missing for a while on a loaded machine (membership can flap and
	// a relearns it), so only its presence is waited for.
	if c, ok := gatewayOf(a, "b"); ok && c != b.Gateway().Capability() {
		t.Fatalf("a's record of b's gateway is %v, want b's own %v", c, b.Gateway().Capability())
	}
	eventually(t, 10*time.Second, "a knows b's own gateway", func() bool {
		c, ok := gatewayOf(a, "b")
		if ok && c != b.Gateway().Capability() {
			t.Fatalf("a's record of b's gateway is %v, want b's own %v", c, b.Gateway().Capability())
		}
		return ok
	})
	spawnThrough(t, a, key, "b", "echo")
}

// TestGatewayHelloImpersonation: a node with the cluster key and a node
// key of its own seals a hello that claims to come from b: a refuses it
// (its key is not b's), sends no welcome, and keeps its record.
func TestGatewayHelloImpersonation(t *testing.T) {
	a, b, key := keyedPair(t, nil)
	evil := testNode(t, "evil", key)
	startNode(t, evil)
	priv, err := remote.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := remote.PublicKey(priv)
	bCap := b.Gateway().Capability()
	hello, _, err := newHello(noise.DHKey{Private: priv, Public: pub}, "b", randomID(t), "a", a.Info().Addr, a.Node().PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := evil.Spawn(ctx, a.Info().Addr, helloKind, hello); !errors.Is(err, actor.ErrDead) || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("a hello sealed with another key than b's: %v, want refused as not a member", err)
	}
	if c, ok := gatewayOf(a, "b"); !ok || c != bCap {
		t.Fatalf("a's record of b's gateway is %v, want %v", c, bCap)
	}
}

// TestGatewayChangeLogged: a member that says hello with another gateway
// than the one recorded for it (as a member restarted at the same address
// does, without the membership reporting a change) is asked again; the
// new record replaces the old one, and the change is logged.
func TestGatewayChangeLogged(t *testing.T) {
	recs := &records{}
	a, b, _ := keyedPair(t, slog.New(recs))
	// Make a's record stale, as if b had restarted.
	a.gw.mu.Lock()
	rec := a.gw.peers["b"]
	rec.id = randomID(t)
	rec.ref, _ = a.node.ImportRef("b", b.Info().Addr, rec.id)
	a.gw.peers["b"] = rec
	a.gw.mu.Unlock()
	// b says hello to a (it learns a's gateway again).
	for _, m := range b.Agent().Members() {
		if m.Name == "a" {
			b.gw.mu.Lock()
			b.gw.startPullLocked(m)
			b.gw.mu.Unlock()
		}
	}
	eventually(t, 10*time.Second, "a learns b's gateway again", func() bool {
		c, ok := gatewayOf(a, "b")
		return ok && c == b.Gateway().Capability()
	})
	eventually(t, 5*time.Second, "a logs the change", func() bool {
		return recs.count("gateway: member's gateway changed", "peer", "b") == 1
	})
}

// TestGatewayIntroductionCrypto: a welcome opens only with the hello it
// answers, made by the node key the hello was sealed to, for the member
// name and address it names.
func TestGatewayIntroductionCrypto(t *testing.T) {
	keyPair := func() noise.DHKey {
		priv, err := remote.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := remote.PublicKey(priv)
		return noise.DHKey{Private: priv, Public: pub}
	}
	d, m, evil := keyPair(), keyPair(), keyPair()
	gwD, gwM := randomID(t), randomID(t)
	hello, recv, err := newHello(d, "d", gwD, "m", "127.0.0.1:2", m.Public)
	if err != nil {
		t.Fatal(err)
	}
	// Only m, at the address and under the name d meant, opens it.
	for _, c := range []struct {
		key        noise.DHKey
		name, addr string
	}{{evil, "m", "127.0.0.1:2"}, {m, "m", "127.0.0.1:3"}, {m, "x", "127.0.0.1:2"}} {
		if _, err := openHello(c.key, c.name, c.addr, hello); !errors.Is(err, errBadHello) {
			t.Errorf("opened by %s at %s with another key or identity: %v", c.name, c.addr, err)
		}
	}
	h, err := openHello(m, "m", "127.0.0.1:2", hello)
	if err != nil {
		t.Fatal(err)
	}
	if h.from != "d" || !bytes.Equal(h.key, d.Public) || h.gateway != gwD {
		t.Fatalf("opened hello %+v", h)
	}
	// A welcome to another hello of d's (a replay) does not open this one.
	hello2, _, _ := newHello(d, "d", gwD, "m", "127.0.0.1:2", m.Public)
	h2, err := openHello(m, "m", "127.0.0.1:2", hello2)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := h2.welcome(gwM)
	junk := make([]byte, welcomeLen)
	_, _ = rand.Read(junk)
	for _, w := range [][]byte{other, junk, nil, append(other, 0)} {
		if _, err := openWelcome(recv, w); !errors.Is(err, errBadHello) {
			t.Errorf("welcome %x opened: %v", w, err)
		}
	}
	w, err := h.welcome(gwM)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := openWelcome(recv, w); err != nil || got != gwM {
		t.Fatalf("welcome: %v, %v; want %v", got, err, gwM)
	}
	if _, err := openHello(m, "m", "127.0.0.1:2", make([]byte, maxHello+1)); !errors.Is(err, errBadHello) {
		t.Fatalf("oversized hello: %v", err)
	}
}

// TestDaemonLogsRateLimited: the daemon's logger goes through the rate
// limiter, so lines a peer can cause (here: hellos that do not open, sent
// in a loop) are bounded.
func TestDaemonLogsRateLimited(t *testing.T) {
	began := time.Now()
	recs := &records{}
	cfg := testConfig(t, "a")
	cfg.Logger = slog.New(recs)
	a := start(t, cfg)
	evil := testNode(t, "evil", nil)
	startNode(t, evil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 50
	for i := range n {
		if _, err := evil.Spawn(ctx, a.Info().Addr, helloKind, []byte{byte(i)}); errors.Is(err, errAnswered) || err == nil {
			t.Fatalf("junk hello answered: %v", err)
		}
	}
	// ratelog's default: 5 per 10 s.
	bound := 5 * (1 + int(time.Since(began)/(10*time.Second)))
	if got := recs.count("gateway: hello refused", "", ""); got < 1 || got > bound {
		t.Fatalf("%d junk hellos logged %d lines, want 1 to %d", n, got, bound)
	}
}
