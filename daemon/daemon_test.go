package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/cluster"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
	"github.com/actord/actord/remote"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

// testLogger discards logs unless ACTORD_TEST_LOG is set (then they go to
// stderr: a goroutine of memberlist may log after a test has ended, which
// t.Log does not allow).
func testLogger() *slog.Logger {
	if os.Getenv("ACTORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a daemon on 127.0.0.1 with every port chosen by the
// system, fast failure detection (cluster.ProfileFast, with a probe
// timeout of 100 ms and a suspicion multiplier of 3 instead of 50 ms and 2:
// under -race on a loaded machine the fast profile declared live members
// failed), and remote heartbeats that would take 30 s to notice a dead
// peer: so a failure noticed sooner was noticed by the membership layer.
func testConfig(t *testing.T, name string, seeds ...string) Config {
	return Config{
		Name: name, Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: "127.0.0.1:0",
		Seeds: seeds, Loops: 2, DataDir: t.TempDir(), ShutdownTimeout: 10 * time.Second,
		Remote: remote.Config{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 30 * time.Second},
		Cluster: cluster.Config{Profile: cluster.ProfileFast, JoinInterval: 100 * time.Millisecond,
			ProbeTimeout: 100 * time.Millisecond, SuspicionMult: 3},
		Logger: testLogger(),
	}
}

func start(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(ms []cluster.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// events collects an agent's membership events.
type events struct{ ch chan cluster.Event }

func watch(t *testing.T, a *cluster.Agent) *events {
	e := &events{ch: make(chan cluster.Event, 64)}
	t.Cleanup(a.Subscribe(func(ev cluster.Event) {
		select {
		case e.ch <- ev:
		default:
		}
	}))
	return e
}

// await waits up to d for an event of kind about member name.
func (e *events) await(t *testing.T, d time.Duration, kind cluster.EventKind, name string) cluster.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind && ev.Member.Name == name {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %v event for %s within %v", kind, name, d)
		}
	}
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

// registerKinds registers "echo" and "hold" (never answers; reports each
// message on arrived) on d.
func registerKinds(d *Daemon, arrived chan<- any) {
	d.Node().RegisterKind("echo", func(any) (actor.Factory, error) {
		return func() actor.Actor { return fnActor(func(_ *actor.Context, m any) (any, error) { return m, nil }) }, nil
	})
	d.Node().RegisterKind("hold", func(any) (actor.Factory, error) {
		return func() actor.Actor {
			return fnActor(func(c *actor.Context, m any) (any, error) {
				holdReply(c.Defer())
				arrived <- m
				return nil, nil
			})
		}, nil
	})
}

// TestDaemonClusterFailureAndRejoin starts three daemons that join through
// a seed, checks that their views converge with the right remote
// addresses, then makes one stop gossiping without leaving (its network
// node stays up and healthy): the others must declare it failed within a
// bound, and an ask pending on it must fail with remote.ErrNodeDown caused
// by the membership failure, long before the 30 s remote heartbeat timeout.
// The daemon is then killed and restarted under the same name on new
// ports: it must rejoin, with its new remote address, and be reachable.
func TestDaemonClusterFailureAndRejoin(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	seed := a.Info().GossipAddr
	b := start(t, testConfig(t, "b", seed))
	c := start(t, testConfig(t, "c", seed))
	all := []*Daemon{a, b, c}
	for _, d := range all {
		eventually(t, 5*time.Second, d.Info().Node+" sees 3 members", func() bool {
			return slices.Equal(names(d.Agent().Members()), []string{"a", "b", "c"})
		})
	}
	for _, m := range c.Agent().Members() {
		var want string
		for _, d := range all {
			if d.Info().Node == m.Name {
				want = d.Info().Addr
			}
		}
		if m.Addr != want || m.Addr == "" {
			t.Fatalf("member %s has remote address %q, want %q", m.Name, m.Addr, want)
		}
		if m.Self != (m.Name == "c") {
			t.Fatalf("member %s: Self = %v", m.Name, m.Self)
		}
	}
	evA, evC := watch(t, a.Agent()), watch(t, c.Agent())

	arrived := make(chan any, 4)
	registerKinds(b, arrived)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := a.Node().Spawn(ctx, b.Info().Addr, "hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { _, err := a.System().Ask(context.Background(), held, "wait"); pending <- err }()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the ask did not reach b")
	}

	// b stops gossiping, as if partitioned or crashed, but its remote node
	// still answers heartbeats.
	killed := time.Now()
	b.Agent().Kill()
	const bound = 5 * time.Second // fast profile: ~0.5 s on an idle machine
	ev := evA.await(t, bound, cluster.Fail, "b")
	if ev.Member.Addr != b.Info().Addr {
		t.Fatalf("fail event for b carries address %q, want %q", ev.Member.Addr, b.Info().Addr)
	}
	evC.await(t, bound, cluster.Fail, "b")
	t.Logf("b declared failed after %v", time.Since(killed).Round(time.Millisecond))
	select {
	case err := <-pending:
		if !errors.Is(err, remote.ErrNodeDown) || !errors.Is(err, cluster.ErrMemberFailed) {
			t.Fatalf("pending ask: %v, want remote.ErrNodeDown caused by cluster.ErrMemberFailed", err)
		}
	case <-time.After(bound):
		t.Fatal("the ask pending on b did not fail after b was declared failed")
	}
	for _, d := range []*Daemon{a, c} {
		eventually(t, bound, d.Info().Node+" drops b", func() bool {
			return slices.Equal(names(d.Agent().Members()), []string{"a", "c"})
		})
	}

	// The whole daemon goes; a new one with the same name comes back on
	// new ports and rejoins.
	b.Kill()
	if b.Err() == nil {
		t.Fatal("a killed daemon reports no error")
	}
	b2 := start(t, testConfig(t, "b", seed, c.Info().GossipAddr))
	registerKinds(b2, arrived)
	evA.await(t, bound, cluster.Join, "b")
	for _, d := range []*Daemon{a, b2, c} {
		eventually(t, bound, d.Info().Node+" sees b again", func() bool {
			ms := d.Agent().Members()
			return slices.Equal(names(ms), []string{"a", "b", "c"}) && slices.ContainsFunc(ms, func(m cluster.Member) bool {
				return m.Name == "b" && m.Addr == b2.Info().Addr
			})
		})
	}
	// The new b may be declared failed for a moment after it joined (under
	// load, or by the old b's death gossiped late and taken for the new
	// one's, which has the same name), until it refutes it: it is then
	// missing from a's member list, and a's peer is down with that reason
	// until b is seen alive again (PeerUp). So its address is the one a saw
	// above, and a spawn that finds the node down is tried again, up to the
	// bound.
	addrB := b2.Info().Addr
	var r actor.Ref
	for deadline := time.Now().Add(bound); ; time.Sleep(10 * time.Millisecond) { // polling
		r, err = a.Node().Spawn(ctx, addrB, "echo", nil)
		if err == nil {
			break
		}
		if !errors.Is(err, remote.ErrNodeDown) || time.Now().After(deadline) {
			t.Fatalf("spawn on the restarted b: %v", err)
		}
	}
	if v, err := a.System().Ask(ctx, r, "back"); err != nil || v != "back" {
		t.Fatalf("ask the restarted b: %v, %v", v, err)
	}
}

// TestDaemonGracefulShutdown checks that a daemon that shuts down leaves
// the cluster (the others see Leave, not Fail), that Shutdown returns nil
// promptly, and that an ask pending on it from another daemon fails with
// remote.ErrNodeDown.
func TestDaemonGracefulShutdown(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	b := start(t, testConfig(t, "b", a.Info().GossipAddr))
	eventually(t, 5*time.Second, "a sees b", func() bool { return len(a.Agent().Members()) == 2 })
	evA := watch(t, a.Agent())
	arrived := make(chan any, 1)
	registerKinds(b, arrived)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := a.Node().Spawn(ctx, b.Info().Addr, "hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { _, err := a.System().Ask(context.Background(), held, "wait"); pending <- err }()
	<-arrived

	t0 := time.Now()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("Shutdown took %v", el)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
	evA.await(t, 5*time.Second, cluster.Leave, "b")
	select {
	case err := <-pending:
		if !errors.Is(err, remote.ErrNodeDown) {
			t.Fatalf("pending ask: %v, want remote.ErrNodeDown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ask pending on b did not fail when b shut down")
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestDaemonDebugAndMetrics checks the token file (in the data dir, mode
// 0600), that the debug server wants it, and the separate metrics listener.
func TestDaemonDebugAndMetrics(t *testing.T) {
	cfg := testConfig(t, "m")
	cfg.MetricsAddr = "127.0.0.1:0"
	d := start(t, cfg)
	info := d.Info()
	if want := filepath.Join(cfg.DataDir, "debug.token"); info.TokenFile != want {
		t.Fatalf("token file %q, want %q", info.TokenFile, want)
	}
	st, err := os.Stat(info.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", st.Mode().Perm())
	}
	if info.DebugAddr == "" || info.MetricsAddr == "" || info.MetricsAddr == info.DebugAddr {
		t.Fatalf("addresses: debug %q metrics %q", info.DebugAddr, info.MetricsAddr)
	}
	if info.Loops != 2 || info.Msg != ReadyMsg || info.Version != ReadyVersion || info.PID != os.Getpid() {
		t.Fatalf("info %+v", info)
	}

	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://"+info.DebugAddr+"/debug/v1/loops", ""); code != http.StatusUnauthorized {
		t.Fatalf("debug without token: %d", code)
	}
	tok, err := debug.ReadTokenFile(info.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get("http://"+info.DebugAddr+"/debug/v1/loops", tok); code != http.StatusOK || !strings.Contains(body, `"loops"`) {
		t.Fatalf("debug with token: %d %s", code, body)
	}
	// The remote node's peers, as its connection manager sees them.
	if code, body := get("http://"+info.DebugAddr+"/debug/v1/peers", tok); code != http.StatusOK || !strings.Contains(body, `"peers": [`) || !strings.Contains(body, `"stats"`) {
		t.Fatalf("debug peers: %d %s", code, body)
	}
	code, body := get("http://"+info.MetricsAddr+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{"actord_cluster_members 1", "actord_remote_frames_in_total", "actord_remote_handshake_timeouts_total 0",
		"actord_remote_connections_refused_total 0", "actord_remote_dead_letters_total 0", `actord_loop_events_total{loop="1"}`,
		"actord_connmgr_peers_connected 0", "actord_connmgr_peers_trimmed_total 0", "actord_connmgr_peers_forgotten_total 0"} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	if code, _ := get("http://"+info.MetricsAddr+"/debug/v1/loops", ""); code != http.StatusNotFound {
		t.Fatalf("the metrics listener serves more than /metrics: %d", code)
	}
	if code, body := get("http://"+info.DebugAddr+"/metrics", tok); code != http.StatusOK || !strings.Contains(body, "actord_cluster_members") {
		t.Fatalf("metrics on the debug listener: %d", code)
	}
}

// TestDaemonConfigErrors checks that unusable configurations are refused
// before anything starts, with ErrConfig.
func TestDaemonConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unspecified listen", func(c *Config) { c.Listen = "0.0.0.0:7700" }, "unspecified"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen address"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"nohostport"} }, "seed"},
		{"negative loops", func(c *Config) { c.Loops = -1 }, "loops"},
		{"profile", func(c *Config) { c.Cluster.Profile = "warp" }, "profile"},
		{"debug addr", func(c *Config) { c.DebugAddr = "localhost:http:x" }, "debug address"},
		{"gossip port", func(c *Config) { c.Gossip = "127.0.0.1:99999" }, "gossip address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "x")
			tc.mod(&cfg)
			d, err := Start(context.Background(), cfg)
			if err == nil {
				_ = d.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// TestParseReady checks the ready line round trip.
func TestParseReady(t *testing.T) {
	if _, ok := ParseReady([]byte(`{"msg":"something else"}`)); ok {
		t.Fatal("accepted another message")
	}
	if _, ok := ParseReady([]byte(`time=... msg="actord ready"`)); ok {
		t.Fatal("accepted a text log line")
	}
	i, ok := ParseReady([]byte(`{"msg":"actord ready","version":1,"node":"n","addr":"127.0.0.1:1","gossip_addr":"127.0.0.1:2","data_dir":"d","loops":2,"pid":7}`))
	if !ok || i.Node != "n" || i.Addr != "127.0.0.1:1" || i.GossipAddr != "127.0.0.1:2" || i.Loops != 2 {
		t.Fatalf("parsed %+v, %v", i, ok)
	}
}

// held keeps deferred Replies that a test means never to answer reachable:
// a Reply dropped unanswered is answered with actor.ErrNoReply once it is
// garbage collected, which would end the wait the test is about.
var held struct {
	sync.Mutex
	r []*actor.Reply
}

func holdReply(r *actor.Reply) {
	held.Lock()
	held.r = append(held.r, r)
	held.Unlock()
}

// The daemon's bus carries its actors', remote node's and membership's
// events; Membership is stateful (a late subscriber gets the current one
// first); the bus closes after the daemon stopped.
func TestDaemonEventBus(t *testing.T) {
	a := start(t, testConfig(t, "bus-a"))
	bus := a.Bus()
	if bus == nil {
		t.Fatal("no bus")
	}
	ms, err := event.Subscribe[event.Membership](bus, event.Buffer(16))
	if err != nil {
		t.Fatal(err)
	}
	first := recvEvent(t, ms.Out(), "the current membership")
	if len(first.Members) != 1 || first.Members[0].Name != "bus-a" || !first.Members[0].Self {
		t.Fatalf("first membership %+v, want bus-a alone", first)
	}
	changes, err := event.Subscribe[event.MemberChanged](bus, event.Buffer(16), event.MatchQuery("Change = 'join' AND Member.Name = 'bus-b'"))
	if err != nil {
		t.Fatal(err)
	}
	ups, err := event.Subscribe[event.ActorSpawned](bus, event.Buffer(16))
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, testConfig(t, "bus-b", a.Info().GossipAddr))
	if ch := recvEvent(t, changes.Out(), "bus-b joining"); ch.Member.Addr != b.Info().Addr {
		t.Fatalf("join event %+v, want bus-b at %s", ch, b.Info().Addr)
	}
	for {
		m := recvEvent(t, ms.Out(), "a membership of two")
		if len(m.Members) == 2 {
			break
		}
	}
	ref, err := a.System().Spawn(context.Background(), func() actor.Actor {
		return fnActor(func(*actor.Context, any) (any, error) { return nil, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if sp := recvEvent(t, ups.Out(), "the spawn"); sp.Actor == ref {
			break
		}
	}
	known := map[string]bool{}
	for _, ti := range bus.Types() {
		known[ti.Type.String()] = ti.Emitters > 0
	}
	for _, name := range []string{"event.ActorSpawned", "event.NodeUp", "event.ConnOpened", "event.MemberChanged", "event.Membership", "event.ServiceFailed"} {
		if !known[name] {
			t.Errorf("no emitter of %s on the daemon's bus", name)
		}
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ms.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the bus outlived the daemon")
	}
	if !errors.Is(ms.Err(), event.ErrBusClosed) {
		t.Fatalf("subscription ended with %v, want ErrBusClosed", ms.Err())
	}
}

func recvEvent[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the subscription ended", what)
		}
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: nothing after 20s", what)
	}
	panic("unreachable")
}

// The service tree's failures reach the bus as ServiceFailed (the tree's
// hook is called here as suture calls it).
func TestDaemonServiceFailedEvent(t *testing.T) {
	d := start(t, testConfig(t, "svc"))
	s, err := event.Subscribe[event.ServiceFailed](d.Bus(), event.Buffer(4))
	if err != nil {
		t.Fatal(err)
	}
	d.hook(suture.EventServiceTerminate{SupervisorName: "actord", ServiceName: "debug-http", Err: errors.New("listener gone"), Restarting: true})
	d.hook(suture.EventServicePanic{SupervisorName: "actord", ServiceName: "metrics-http", PanicMsg: "boom", Restarting: false})
	d.hook(suture.EventServiceTerminate{SupervisorName: "actord", ServiceName: "odd", Err: "not an error value", Restarting: true})
	got := []event.ServiceFailed{recvEvent(t, s.Out(), "terminate"), recvEvent(t, s.Out(), "panic"), recvEvent(t, s.Out(), "odd")}
	if got[0].Service != "debug-http" || got[0].Err.Error() != "listener gone" || got[0].Panicked || !got[0].Restarting {
		t.Errorf("terminate: %+v", got[0])
	}
	if got[1].Service != "metrics-http" || got[1].Err.Error() != "boom" || !got[1].Panicked || got[1].Restarting {
		t.Errorf("panic: %+v", got[1])
	}
	if got[2].Err == nil || got[2].Err.Error() != "not an error value" {
		t.Errorf("a non-error value: %+v", got[2])
	}
}
