package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	"github.com/actord/actord/cluster"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

func quiet() *slog.Logger {
	if os.Getenv("ACTORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type fnActor func(c *actor.Context, msg any) (any, error)

func (f fnActor) Receive(c *actor.Context, msg any) (any, error) { return f(c, msg) }

func echo(c *actor.Context, msg any) (any, error) { return msg, nil }

// kinds registers the test kinds on a daemon's gateway and the message
// types they use on its node.
func kinds(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	g := d.Gateway()
	g.RegisterKind("echo", func(any) (actor.Factory, error) {
		return func() actor.Actor { return fnActor(echo) }, nil
	})
	// "tree": a supervisor (one-for-one) of args (a number) echo workers.
	g.RegisterKind("tree", func(args any) (actor.Factory, error) {
		n, ok := args.(int64)
		if !ok || n < 1 || n > 10 {
			return nil, errors.New("tree: want a worker count in 1..10")
		}
		spec := supervisor.Spec{Name: "tree", Logger: quiet()}
		for i := range n {
			spec.Children = append(spec.Children, supervisor.Worker("echo-"+string(rune('a'+i)),
				func() actor.Actor { return fnActor(echo) }))
		}
		return supervisor.New(spec), nil
	})
	g.RegisterKind("panics", func(any) (actor.Factory, error) { panic("bad kind") })
	if err := registerTree(d.Node()); err != nil {
		t.Fatal(err)
	}
}

func registerTree(n *remote.Node) error {
	return errors.Join(
		remote.Register[supervisor.WhichChildren](n, "supervisor.WhichChildren"),
		remote.Register[[]supervisor.ChildInfo](n, "[]supervisor.ChildInfo"),
	)
}

func startDaemon(t *testing.T, name string, seeds ...string) *daemon.Daemon {
	t.Helper()
	return startDaemonKey(t, name, "", seeds...)
}

// startDaemonKey starts a daemon with a cluster key file ("" for none).
func startDaemonKey(t *testing.T, name, keyFile string, seeds ...string) *daemon.Daemon {
	t.Helper()
	cfg := daemon.Config{ClusterKeyFile: keyFile,
		Name: name, Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: daemon.Off,
		Seeds: seeds, Loops: 2, DataDir: t.TempDir(), ShutdownTimeout: 10 * time.Second,
		Remote:  remote.Config{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 30 * time.Second},
		Cluster: cluster.Config{Profile: cluster.ProfileFast, JoinInterval: 100 * time.Millisecond},
		Logger:  quiet(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	kinds(t, d)
	return d
}

func dial(t *testing.T, capability string) *client.Client {
	t.Helper()
	c, err := client.Dial(ctxT(t), capability, client.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readCap reads a daemon's capability file, checking its mode.
func readCap(t *testing.T, d *daemon.Daemon) string {
	t.Helper()
	path := d.Info().CapabilityFile
	if path != filepath.Join(d.Info().DataDir, daemon.CapabilityFile) {
		t.Fatalf("capability file %q, want it in the data dir %q", path, d.Info().DataDir)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("capability file mode %v, want 0600", st.Mode().Perm())
	}
	s, err := client.ReadCapabilityFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
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

func TestTwoDaemons(t *testing.T) {
	a := startDaemon(t, "a")
	b := startDaemon(t, "b", a.Info().GossipAddr)
	c := dial(t, readCap(t, a))
	if err := registerTree(c.Node()); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)

	// Both members, each with its gateway's capability, once gossip and
	// the gateways' introductions have gone round.
	var ms []client.Member
	eventually(t, 10*time.Second, "a sees b and its gateway", func() bool {
		var err error
		ms, err = c.Members(ctx)
		if err != nil {
			t.Fatalf("members: %v", err)
		}
		return len(ms) == 2 && ms[1].Capability != ""
	})
	want := []client.Member{
		{Name: "a", Addr: a.Info().Addr, Self: true, Capability: a.Gateway().Capability().String()},
		{Name: "b", Addr: b.Info().Addr, Capability: b.Gateway().Capability().String()},
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Fatalf("member %d = %+v, want %+v", i, ms[i], want[i])
		}
	}

	// An echo actor on b, spawned through a's gateway.
	ref, err := c.Spawn(ctx, "b", "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, ok := daemon.CapabilityOf(c.Node(), ref); !ok || cp.Node != "b" || cp.Addr != b.Info().Addr {
		t.Fatalf("echo ref %v is at %+v, want on b (%s)", ref, cp, b.Info().Addr)
	}
	if v, err := c.Ask(ctx, ref, "hello"); err != nil || v != "hello" {
		t.Fatalf("ask echo on b: %v, %v", v, err)
	}
	if err := c.Send(ref, "one way"); err != nil {
		t.Fatal(err)
	}
	// And one on a itself.
	ref, err = c.Spawn(ctx, "", "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := daemon.CapabilityOf(c.Node(), ref); cp.Addr != a.Info().Addr {
		t.Fatalf("echo ref %v at %s, want a (%s)", ref, cp.Addr, a.Info().Addr)
	}
	if v, err := c.Ask(ctx, ref, "here"); err != nil || v != "here" {
		t.Fatalf("ask echo on a: %v, %v", v, err)
	}

	// A supervisor tree on b: its children answer.
	tree, err := c.Spawn(ctx, "b", "tree", 3)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Ask(ctx, tree, supervisor.WhichChildren{})
	if err != nil {
		t.Fatal(err)
	}
	children, _ := v.([]supervisor.ChildInfo)
	if len(children) != 3 {
		t.Fatalf("tree children: %#v", v)
	}
	for _, ch := range children {
		if !ch.Running {
			t.Fatalf("child %s not running", ch.ID)
		}
		if v, err := c.Ask(ctx, ch.Ref, ch.ID); err != nil || v != ch.ID {
			t.Fatalf("ask child %s: %v, %v", ch.ID, v, err)
		}
	}

	// Failures, each with its sentinel.
	for _, tc := range []struct {
		member, kind string
		args         any
		want         error
	}{
		{"c", "echo", nil, client.ErrNoSuchMember},
		{"b", "nope", nil, client.ErrUnknownKind},
		{"", "nope", nil, client.ErrUnknownKind},
		{"b", "tree", "x", client.ErrSpawn},
		{"a", "panics", nil, client.ErrSpawn},
	} {
		if _, err := c.Spawn(ctx, tc.member, tc.kind, tc.args); !errors.Is(err, tc.want) {
			t.Errorf("spawn %s on %q: %v, want %v", tc.kind, tc.member, err, tc.want)
		}
	}

	// b's capability, as listed, reaches b directly.
	cb := dial(t, ms[1].Capability)
	ref, err = cb.Spawn(ctx, "", "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := daemon.CapabilityOf(cb.Node(), ref); cp.Addr != b.Info().Addr {
		t.Fatalf("echo ref %v at %s, want b", ref, cp.Addr)
	}
}

func TestForgedCapability(t *testing.T) {
	a := startDaemon(t, "a")
	good := readCap(t, a)
	cp, err := client.ParseCapability(good)
	if err != nil {
		t.Fatal(err)
	}
	actors := func() (n int64) {
		for _, s := range a.System().Stats() {
			n += s.Actors
		}
		return n
	}
	before := actors()
	ctx := ctxT(t)
	forged := []client.Capability{cp, cp, cp}
	forged[0].ID.Secret[7] ^= 0x10 // one secret bit
	forged[1].ID.Gen++             // a stale generation
	forged[2].ID.Slot++            // another slot, with the gateway's secret
	for _, f := range forged {
		c := dial(t, f.String())
		if _, err := c.Members(ctx); !errors.Is(err, actor.ErrDead) {
			t.Fatalf("members with %v: %v, want actor.ErrDead", f, err)
		}
		if _, err := c.Spawn(ctx, "", "echo", nil); !errors.Is(err, actor.ErrDead) {
			t.Fatalf("spawn with %v: %v, want actor.ErrDead", f, err)
		}
		if _, err := c.Spawn(ctx, "a", "echo", nil); !errors.Is(err, actor.ErrDead) {
			t.Fatalf("spawn with %v: %v, want actor.ErrDead", f, err)
		}
	}
	if n := actors(); n != before {
		t.Fatalf("forged capabilities changed the daemon's actors: %d, then %d", before, n)
	}
	// The real one works.
	c := dial(t, good)
	if _, err := c.Spawn(ctx, "", "echo", nil); err != nil {
		t.Fatal(err)
	}
	if n := actors(); n != before+1 {
		t.Fatalf("actors %d, want %d", n, before+1)
	}
}

func TestCapabilityText(t *testing.T) {
	c := client.Capability{Node: "n 1@x/y", Addr: "127.0.0.1:7700"}
	c.ID.Loop, c.ID.Slot, c.ID.Gen = 1, 2, 3
	for i := range c.ID.Secret {
		c.ID.Secret[i] = byte(i * 17)
	}
	s := c.String()
	if want := "actord://n+1%40x%2Fy@127.0.0.1:7700/1.2.3#00112233445566778899aabbccddeeff"; s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
	back, err := client.ParseCapability(" " + s + "\n")
	if err != nil || back != c {
		t.Fatalf("parse(%q) = %+v, %v", s, back, err)
	}
	v6 := client.Capability{Node: "b", Addr: "[::1]:7700"}
	if back, err := client.ParseCapability(v6.String()); err != nil || back != v6 {
		t.Fatalf("parse(%q) = %+v, %v", v6.String(), back, err)
	}

	sec := "#00112233445566778899aabbccddeeff"
	for _, bad := range []string{
		"",
		"http://a@127.0.0.1:1/1.2.3" + sec,
		"actord://a@127.0.0.1:1/1.2.3",
		"actord://a@127.0.0.1:1/1.2.3#0011",
		"actord://a@127.0.0.1:1/1.2.3#zz112233445566778899aabbccddeeff",
		"actord://a@127.0.0.1:1/1.2" + sec,
		"actord://a@127.0.0.1:1/1.2.3.4" + sec,
		"actord://a@127.0.0.1:1/70000.2.3" + sec,
		"actord://a@127.0.0.1:1/1.-2.3" + sec,
		"actord://a@127.0.0.1:1" + sec,
		"actord://127.0.0.1:1/1.2.3" + sec,
		"actord://@127.0.0.1:1/1.2.3" + sec,
		"actord://a@127.0.0.1/1.2.3" + sec,
		"actord://a@0.0.0.0:1/1.2.3" + sec,
		"actord://a@:1/1.2.3" + sec,
		"actord://a%zz@127.0.0.1:1/1.2.3" + sec,
	} {
		if _, err := client.ParseCapability(bad); !errors.Is(err, client.ErrBadCapability) {
			t.Errorf("parse(%q): %v, want ErrBadCapability", bad, err)
		}
		if c, err := client.Dial(context.Background(), bad, client.Options{}); !errors.Is(err, client.ErrBadCapability) || c != nil {
			t.Errorf("dial(%q): %v, %v, want ErrBadCapability", bad, c, err)
		}
	}
	if _, err := client.ReadCapabilityFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read missing file: %v", err)
	}
}

func TestClose(t *testing.T) {
	a := startDaemon(t, "a")
	c, err := client.Dial(ctxT(t), readCap(t, a), client.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	ref, err := c.Spawn(ctx, "", "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := c.Node().Addr()
	if addr == "" {
		t.Fatal("client node does not listen")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Ask(ctx, ref, "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("ask after close: %v", err)
	}
	if _, err := c.Members(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("members after close: %v", err)
	}
	if err := c.Send(ref, "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	// Its node no longer listens (and its goroutines are gone: goleak in
	// TestMain checks the whole package).
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("client node still listens on %s after Close", addr)
	}
}

// A client program links neither the daemon nor its debugger, membership
// or profiling: only the runtime, the remote layer and the gateway's
// protocol.
func TestClientDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/actord/actord/daemon", "github.com/actord/actord/debug",
			"github.com/actord/actord/cluster", "github.com/hashicorp/memberlist", "net/http/pprof", "go.etcd.io/bbolt"} {
			if dep == banned {
				t.Errorf("package client depends on %s", dep)
			}
		}
	}
}
