package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/supervisor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool (imported with the daemon by
		// run.go), started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

type gate struct {
	Stuck bool `json:"stuck"`
	Done  int  `json:"done"`
}

var errStuck = errors.New("stuck")

func (g *gate) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "boom" {
		panic("gate exploded")
	}
	if g.Stuck {
		return nil, errStuck
	}
	g.Done++
	return g.Done, nil
}

func (g *gate) DebugState() any { return g }

func (g *gate) DebugPatch(doc json.RawMessage) error { return json.Unmarshal(doc, g) }

// daemon starts a System with the debug server and a supervisor "svc" with
// one child "gate", and returns the flags to reach it.
func daemon(t *testing.T) (flags []string, sys *actor.System, gateRef actor.Ref) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	acfg := actor.Config{Loops: 2, Watchdog: -1, Logger: quiet, OnCrash: func(*actor.Crash) {}}
	rec := debug.Install(&acfg, debug.Config{})
	sys = actor.NewSystem(acfg)
	if err := rec.Attach(sys); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	srv, err := debug.NewServer(rec, debug.ServerConfig{TokenFile: tok, Logger: quiet, Peers: testPeers(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		_ = sys.Shutdown(context.Background())
	})
	sup, err := sys.Spawn(context.Background(), supervisor.New(supervisor.Spec{Name: "svc", MaxR: 10, MaxT: time.Minute, Logger: quiet,
		Children: []supervisor.ChildSpec{supervisor.Worker("gate", func() actor.Actor { return &gate{Stuck: true} })}}),
		actor.Name("svc"), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	v, err := sys.Ask(context.Background(), sup, supervisor.WhichChildren{})
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--addr", srv.Addr(), "--token-file", tok}, sys, v.([]supervisor.ChildInfo)[0].Ref
}

// testPeers lists a connection manager with a stable peer and a managed
// one, tagged and locked, for `debug peers`.
func testPeers(t *testing.T) debug.PeersSource {
	t.Helper()
	m, err := connmgr.New(connmgr.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := m.Add("10.0.0.1:7000", connmgr.Stable, now); err != nil {
		t.Fatal(err)
	}
	p, err := m.Add("10.0.0.2:7000", connmgr.Managed, now)
	if err != nil {
		t.Fatal(err)
	}
	p.AddLinks(1)
	if err := m.Connected("10.0.0.2:7000", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := m.Protect("10.0.0.2:7000", "membership"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lock("10.0.0.2:7000", "handoff", time.Minute, now, nil); err != nil {
		t.Fatal(err)
	}
	return func(now time.Time) ([]connmgr.PeerInfo, connmgr.Stats) { return m.Snapshot(now), m.Stats() }
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestDebugCLI(t *testing.T) {
	flags, sys, g := daemon(t)
	ctx := context.Background()
	if _, err := sys.Ask(ctx, g, "work"); !errors.Is(err, errStuck) {
		t.Fatalf("gate: %v", err)
	}
	if _, err := sys.Ask(ctx, g, "boom"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("boom: %v", err)
	}
	cli := func(args ...string) string {
		t.Helper()
		// flags after the positional arguments work too
		code, out, errOut := runCLI(t, append(append([]string{"debug"}, args...), flags...)...)
		if code != 0 {
			t.Fatalf("actord debug %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := cli("loops"); !strings.HasPrefix(out, "LOOP  QUEUE") || !strings.Contains(out, "\n0 ") || !strings.Contains(out, "\n1 ") {
		t.Fatalf("loops:\n%s", out)
	}
	if out := cli("actors"); !strings.Contains(out, "svc/gate") || !strings.Contains(out, "*cli.gate") || !strings.Contains(out, "patchable") {
		t.Fatalf("actors:\n%s", out)
	}
	out := cli("tree")
	if !strings.HasPrefix(out, "svc <0.0.0> loop 0 *supervisor.sup [supervisor]\n└── svc/gate <0.1.0> loop 0 *cli.gate\n") {
		t.Fatalf("tree:\n%s", out)
	}
	if out := cli("tree", "--format", "dot"); !strings.HasPrefix(out, "digraph actord {") || !strings.Contains(out, `"<0.0.0>" -> "<0.1.0>";`) {
		t.Fatalf("dot:\n%s", out)
	}
	if out := cli("crashes"); !strings.Contains(out, "panic: gate exploded") || !strings.Contains(out, "supervisor svc (child gate") ||
		!strings.Contains(out, `"work"`) {
		t.Fatalf("crashes:\n%s", out)
	}
	if out := cli("events", "--actor", "svc/gate", "--last", "2"); strings.Count(out, "\n") != 2 {
		t.Fatalf("events:\n%s", out)
	}
	var ev debug.EventsReply
	if err := json.Unmarshal([]byte(cli("events", "--json", "--kind", "crash")), &ev); err != nil || len(ev.Events) != 1 || ev.Events[0].Outcome != "crash" {
		t.Fatalf("events --json: %v %+v", err, ev)
	}
	// The gate restarted stuck; the patch un-sticks it.
	if out := cli("patch", "svc/gate", `{"stuck":false,"done":41}`); !strings.Contains(out, `"stuck": false`) {
		t.Fatalf("patch:\n%s", out)
	}
	if v, err := sys.Ask(ctx, g, "work"); err != nil || v != 42 {
		t.Fatalf("gate after patch: %v %v", v, err)
	}
	if out := cli("state", "svc/gate"); !strings.Contains(out, `"done": 42`) {
		t.Fatalf("state:\n%s", out)
	}
	if out := cli("trace", "svc/gate", "on"); out != "state tracing on for svc/gate\n" {
		t.Fatalf("trace: %q", out)
	}
	if _, err := sys.Ask(ctx, g, "work"); err != nil {
		t.Fatal(err)
	}
	if out := cli("state", "svc/gate", "--history"); !strings.Contains(out, `diff:  [{"op":"replace","path":"/done","value":43}]`) {
		t.Fatalf("state --history:\n%s", out)
	}
	out = cli("peers")
	if !strings.HasPrefix(out, "PEER ") || !strings.Contains(out, "10.0.0.1:7000  stable ") ||
		!regexp.MustCompile(`10\.0\.0\.2:7000  managed  connected \(grace\)  \S+ +1000 +0 +1 +0 +0 +membership +handoff until `).MatchString(out) ||
		!strings.Contains(out, "(2 peers, 1 connected;") {
		t.Fatalf("peers:\n%s", out)
	}
	var d debug.Dump
	if err := json.Unmarshal([]byte(cli("dump")), &d); err != nil || d.Version != 1 || len(d.Crashes) != 1 {
		t.Fatalf("dump: %v %+v", err, d)
	}
}

func TestDebugCLIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"debug", "loops", "--bogus"},
		{"debug", "nosuch"},
		{"debug", "state"},
		{"debug", "events", "--last", "x"},
		{"debug", "tree", "--format", "svg", "--token-file", "/nonexistent"},
		{"nosuchcommand"},
		{},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != 2 {
			t.Fatalf("%v: exit %d, want 2 (%s%s)", args, code, out, errOut)
		}
		if len(args) > 0 && strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%v: want one error line, got %q", args, errOut)
		}
	}
	// A missing token file is an error (exit 1), not a usage error.
	if code, _, errOut := runCLI(t, "debug", "loops", "--token-file", filepath.Join(t.TempDir(), "none")); code != 1 || !strings.Contains(errOut, "token file") {
		t.Fatalf("missing token: %d %s", code, errOut)
	}
	// A wrong token gets nothing.
	flags, _, _ := daemon(t)
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := debug.WriteTokenFile(bad); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "debug", "dump", "--addr", flags[1], "--token-file", bad)
	if code != 1 || out != "" || !strings.Contains(errOut, "unauthorized") {
		t.Fatalf("wrong token: %d %q %q", code, out, errOut)
	}
}
