package debug_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/supervisor"
)

// The actors of the end-to-end test.

// Add adds N to a counter.
type Add struct{ N int }

// counter exposes its state: it is the traced actor.
type counter struct {
	Total int
	Last  string
}

func (c *counter) Receive(_ *actor.Context, msg any) (any, error) {
	if a, ok := msg.(Add); ok {
		c.Total += a.N
		c.Last = fmt.Sprintf("add %d", a.N)
	}
	return c.Total, nil
}

func (c *counter) DebugState() any { return c }

// gate refuses work while stuck; only a patch of its state un-sticks it.
type gate struct {
	Stuck bool `json:"stuck"`
	Done  int  `json:"done"`
}

var errStuck = errors.New("gate: stuck")

func (g *gate) Receive(_ *actor.Context, msg any) (any, error) {
	if g.Stuck {
		return nil, errStuck
	}
	g.Done++
	return g.Done, nil
}

func (g *gate) DebugState() any { return g }

func (g *gate) DebugPatch(doc json.RawMessage) error {
	var n gate
	if err := json.Unmarshal(doc, &n); err != nil {
		return err
	}
	*g = n
	return nil
}

// crasher panics on "boom".
type crasher struct{}

func (crasher) Receive(_ *actor.Context, msg any) (any, error) {
	if msg == "boom" {
		panic("crasher: boom received")
	}
	return msg, nil
}

type daemon struct {
	sys    *actor.System
	rec    *debug.Recorder
	srv    *debug.Server
	client *debug.Client
	tokenF string
	sup    actor.Ref
	tr     *http.Transport
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "invalid JSON: " + string(b)
	}
	return buf.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startDaemon starts a System with the recorder and the debug server, and
// a supervisor "app" with a counter, a gate (stuck) and a crasher (on loop 1).
func startDaemon(t testing.TB, dcfg debug.Config) *daemon {
	t.Helper()
	acfg := actor.Config{Loops: 2, Watchdog: -1, Logger: quietLogger(), OnCrash: func(*actor.Crash) {}}
	rec := debug.Install(&acfg, dcfg)
	sys := actor.NewSystem(acfg)
	if err := rec.Attach(sys); err != nil {
		t.Fatal(err)
	}
	tokenF := filepath.Join(t.TempDir(), "debug.token")
	srv, err := debug.NewServer(rec, debug.ServerConfig{TokenFile: tokenF, FollowInterval: 10 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := debug.NewClient(srv.Addr(), tokenF)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	cl.HTTP = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	d := &daemon{sys: sys, rec: rec, srv: srv, client: cl, tokenF: tokenF, tr: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
		_ = sys.Shutdown(context.Background())
	})
	d.sup, err = sys.Spawn(context.Background(), supervisor.New(supervisor.Spec{
		Name: "app", MaxR: 10, MaxT: time.Minute, Logger: quietLogger(),
		Children: []supervisor.ChildSpec{
			supervisor.Worker("counter", func() actor.Actor { return &counter{} }),
			supervisor.Worker("gate", func() actor.Actor { return &gate{Stuck: true} }),
			supervisor.Worker("crasher", func() actor.Actor { return crasher{} }, actor.OnLoop(1)),
		},
	}), actor.OnLoop(0))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// child returns the ref of a child of the supervisor. A child on another
// loop starts asynchronously: each ask is a step of the supervisor.
func (d *daemon) child(t *testing.T, id string) actor.Ref {
	t.Helper()
	for range 1000 {
		v, err := d.sys.Ask(context.Background(), d.sup, supervisor.WhichChildren{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range v.([]supervisor.ChildInfo) {
			if c.ID == id && !c.Ref.IsZero() {
				return c.Ref
			}
		}
	}
	t.Fatalf("no child %s", id)
	return actor.Ref{}
}

func TestEndToEnd(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	ctx := context.Background()
	cl := d.client

	// The token file is the daemon user's only.
	st, err := os.Stat(d.tokenF)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}

	// Trace the counter's state, then change it.
	if _, err := cl.TraceActor(ctx, "app/counter", true); err != nil {
		t.Fatal(err)
	}
	counterRef := d.child(t, "counter")
	for _, n := range []int{1, 2} {
		if _, err := d.sys.Ask(ctx, counterRef, Add{N: n}); err != nil {
			t.Fatal(err)
		}
	}

	// The crasher handles two messages, then crashes.
	crash := d.child(t, "crasher")
	for _, m := range []string{"hello", "world"} {
		if _, err := d.sys.Ask(ctx, crash, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.sys.Ask(ctx, crash, "boom"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("boom: %v, want a crash", err)
	}
	// The supervisor's report reaches the crash log once the supervisor has
	// handled the Crashed message: each ask to it is a step of its loop.
	var crashes *debug.CrashesReply
	for i := 0; ; i++ {
		crashes, err = cl.Crashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(crashes.Crashes) == 1 && crashes.Crashes[0].Supervisor != "" {
			break
		}
		if i == 1000 {
			t.Fatalf("crash log never got the supervisor path: %+v", crashes)
		}
		d.child(t, "crasher")
	}

	// The gate is stuck until patched.
	gateRef := d.child(t, "gate")
	if _, err := d.sys.Ask(ctx, gateRef, "work"); !errors.Is(err, errStuck) {
		t.Fatalf("gate before patch: %v, want %v", err, errStuck)
	}
	pr, err := cl.Patch(ctx, "app/gate", json.RawMessage(`{"stuck":false,"done":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if compact(pr.State) != `{"stuck":false,"done":0}` {
		t.Fatalf("patched state %s", pr.State)
	}
	if v, err := d.sys.Ask(ctx, gateRef, "work"); err != nil || v != 1 {
		t.Fatalf("gate after patch: %v %v, want 1 <nil>", v, err)
	}

	dump, err := cl.Dump(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if dump.Version != debug.ProtocolVersion {
		t.Fatalf("version %d", dump.Version)
	}

	// The crash, with the messages before it and its supervisor path.
	if len(dump.Crashes) != 1 {
		t.Fatalf("%d crashes in the dump, want 1", len(dump.Crashes))
	}
	c := dump.Crashes[0]
	if c.Name != "app/crasher" || c.Supervisor != "app" || c.ChildID != "crasher" || c.Loop != 1 {
		t.Fatalf("crash %+v", c)
	}
	if !strings.Contains(c.Panic, "boom received") || !strings.Contains(c.Stack, "crasher.Receive") {
		t.Fatalf("crash panic %q / stack %q", c.Panic, c.Stack)
	}
	if c.Message != `"boom"` || c.MessageType != "string" {
		t.Fatalf("crash message %q %q", c.MessageType, c.Message)
	}
	var before []string
	for _, e := range c.Preceding {
		before = append(before, e.Payload)
	}
	if strings.Join(before, " ") != `"hello" "world"` {
		t.Fatalf("messages before the crash: %v", before)
	}

	// The state diffs of the traced counter.
	var diffs []string
	for _, e := range dump.Events {
		if e.To == c.Actor && e.Kind == "ask" && e.Outcome == "crash" && e.Payload != `"boom"` {
			t.Fatalf("crash event %+v", e)
		}
		if e.Type == "debug_test.Add" && e.Diff != nil {
			diffs = append(diffs, compact(e.Diff))
		}
	}
	want := []string{
		`[{"op":"replace","path":"/Last","value":"add 1"},{"op":"replace","path":"/Total","value":1}]`,
		`[{"op":"replace","path":"/Last","value":"add 2"},{"op":"replace","path":"/Total","value":3}]`,
	}
	if strings.Join(diffs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("counter diffs:\n%s\nwant:\n%s", strings.Join(diffs, "\n"), strings.Join(want, "\n"))
	}
	var cs *debug.State
	for i := range dump.States {
		if dump.States[i].Name == "app/counter" {
			cs = &dump.States[i]
		}
	}
	if cs == nil || compact(cs.State) != `{"Total":3,"Last":"add 2"}` || len(cs.History) != 3 {
		t.Fatalf("counter state in dump: %+v", cs)
	}

	// The patch is an operator event in the ring.
	patched := false
	for _, e := range dump.Events {
		if e.Kind == "patch" && e.Operator && e.To == pr.Actor && e.Payload == `{"stuck":false,"done":0}` {
			patched = true
		}
	}
	if !patched {
		t.Fatal("no patch event in the dump")
	}

	// The supervisor tree.
	if len(dump.Tree) != 1 {
		t.Fatalf("tree roots: %+v", dump.Tree)
	}
	root := dump.Tree[0]
	var kids []string
	for _, k := range root.Children {
		kids = append(kids, k.Name)
	}
	if root.Path != "app" || !root.IsSupervisor || strings.Join(kids, ",") != "app/counter,app/gate,app/crasher" {
		t.Fatalf("tree: root %s (%v) children %v", root.Path, root.IsSupervisor, kids)
	}
	for _, a := range dump.Actors {
		if a.Path != "app" && a.Supervisor != "app" {
			t.Fatalf("actor %s has supervisor %q", a.Name, a.Supervisor)
		}
	}

	// Loops and metrics.
	loops, err := cl.Loops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loops) != 2 || loops[1].Crashes != 1 || loops[1].Restarts != 1 || loops[0].Handled == 0 || loops[0].Latency.Count == 0 {
		t.Fatalf("loops %+v", loops)
	}
	m, err := cl.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`actord_loop_crashes_total{loop="1"} 1`, `actord_loop_restarts_total{loop="1"} 1`, `# TYPE actord_loop_handler_seconds histogram`} {
		if !strings.Contains(m, line+"\n") {
			t.Fatalf("metrics lack %q:\n%s", line, m)
		}
	}
}

func TestUnauthorizedGetsNothing(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	ctx := context.Background()
	hc := &http.Client{Transport: d.tr}
	for _, path := range []string{"/debug/v1/dump", "/debug/v1/loops", "/metrics", "/debug/pprof/cmdline", "/debug/v1/patch?actor=app/gate"} {
		for _, auth := range []string{"", "Bearer ", "Bearer wrong", "Basic " + d.client.Token, "Bearer " + d.client.Token + "x"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.srv.Addr()+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || len(body) != 0 {
				t.Fatalf("%s with %q: %d %q, want 401 and nothing", path, auth, resp.StatusCode, body)
			}
		}
	}
	bad := *d.client
	bad.Token = strings.Repeat("0", 64)
	if _, err := bad.Dump(ctx, 0); !errors.Is(err, debug.ErrUnauthorized) {
		t.Fatalf("dump with a wrong token: %v", err)
	}
	// The right token opens pprof too.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.srv.Addr()+"/debug/pprof/cmdline", nil)
	req.Header.Set("Authorization", "Bearer "+d.client.Token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof with the token: %d", resp.StatusCode)
	}
	// A token file others can read is refused by the client.
	if err := os.Chmod(d.tokenF, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := debug.NewClient(d.srv.Addr(), d.tokenF); err == nil {
		t.Fatal("client accepted a world-readable token file")
	}
}

func TestFollowStreamsNewEvents(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ref := d.child(t, "counter")
	got := make(chan debug.Event, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- d.client.Follow(ctx, debug.EventQuery{Actor: "app/counter", Loop: -1, Kinds: []string{"send"}}, func(e debug.Event) bool {
			if e.Kind == "lost" {
				return true
			}
			got <- e
			return false
		})
	}()
	// Keep sending until the stream, which starts at "now", sees one.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	check := func(e debug.Event) {
		if e.Type != "debug_test.Add" || !strings.HasPrefix(e.Payload, `{"N":`) {
			t.Fatalf("followed %+v", e)
		}
	}
	for n := 1; ; n++ {
		select {
		case e := <-got:
			check(e)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			return
		case err := <-errc:
			// The callback hands over its event, then ends the follow: both
			// may be ready by now, and select picks either.
			select {
			case e := <-got:
				if err != nil {
					t.Fatal(err)
				}
				check(e)
				return
			default:
			}
			t.Fatalf("follow ended: %v", err)
		case <-tick.C:
			if err := d.sys.Send(ref, Add{N: n}); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no event followed")
		}
	}
}
