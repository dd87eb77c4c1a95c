package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/debug"
)

// TestDebugJSONShape: with --json every subcommand prints one JSON object
// with "version": 1 and the members of its dump-protocol route (follow: one
// such object per line, {"version", "event"}), with actor ids as <0.1.0>,
// not HTML-escaped.
func TestDebugJSONShape(t *testing.T) {
	flags, sys, g := daemon(t)
	if _, err := sys.Ask(context.Background(), g, "boom"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("boom: %v", err)
	}
	for _, tc := range []struct {
		args    []string
		members []string
	}{
		{[]string{"loops"}, []string{"loops"}},
		{[]string{"actors"}, []string{"actors", "unresponsive_loops"}},
		{[]string{"tree"}, []string{"tree", "unresponsive_loops"}},
		{[]string{"state", "svc/gate"}, []string{"actor", "name", "type", "traced", "state", "history"}},
		{[]string{"state", "svc/gate", "--history"}, []string{"actor", "state", "history"}},
		{[]string{"events", "--last", "5"}, []string{"events"}},
		{[]string{"crashes"}, []string{"total", "crashes", "reports"}},
		{[]string{"peers"}, []string{"peers", "stats"}},
		{[]string{"dump", "--last", "5"}, []string{"loops", "actors", "events", "crashes"}},
		{[]string{"patch", "svc/gate", `{"stuck":true,"done":7}`}, []string{"actor", "state"}},
		{[]string{"trace", "svc/gate", "on"}, []string{"actor", "on"}},
		{[]string{"trace", "--loop", "1", "off"}, []string{"loop", "on"}},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"debug"}, tc.args...), append(flags, "--json")...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		var m map[string]json.RawMessage
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&m); err != nil || dec.More() {
			t.Fatalf("%v: not one JSON object (%v):\n%s", tc.args, err, out)
		}
		if string(m["version"]) != "1" {
			t.Errorf("%v: version %s, want 1", tc.args, m["version"])
		}
		for _, k := range tc.members {
			if _, ok := m[k]; !ok {
				t.Errorf("%v: no member %q in %s", tc.args, k, out)
			}
		}
		if strings.Contains(out, `\u003c`) || strings.Contains(out, `\u003e`) {
			t.Errorf("%v: HTML-escaped output: %s", tc.args, out)
		}
	}
	// follow: one {"version", "event"} per line.
	var buf lines
	buf.ch = make(chan string, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan int, 1)
	o := &debugOpts{stdout: &buf, json: true, loop: -1, last: 3}
	o.client = clientFor(t, flags)
	go func() {
		_ = debugFollow(ctx, o, nil)
		done <- 0
	}()
	for i := 0; i < 3; i++ {
		select {
		case l := <-buf.ch:
			var fl struct {
				Version *int            `json:"version"`
				Event   json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal([]byte(l), &fl); err != nil || fl.Version == nil || *fl.Version != 1 || !strings.Contains(string(fl.Event), `"kind"`) ||
				strings.Contains(l, `\u003c`) {
				t.Fatalf("follow line %q: %v", l, err)
			}
		case <-ctx.Done():
			t.Fatal("no follow line")
		}
	}
	cancel()
	<-done
}

// TestDebugExitCodes: bad input is exit 2 with one line on stderr,
// whether the CLI sees it (a negative count, an unknown kind) or the
// daemon does (a loop it does not have, a patch its actor refuses); a
// runtime failure (no such actor) is exit 1; nothing is accepted silently.
func TestDebugExitCodes(t *testing.T) {
	flags, _, _ := daemon(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"loops", "extra"}, 2, "want arguments none"},
		{[]string{"loops", "--timeout", "0s"}, 2, "--timeout"},
		{[]string{"actors", "--bogus"}, 2, "bogus"},
		{[]string{"tree", "--format", "svg"}, 2, "text or dot"},
		{[]string{"tree", "--format", "dot", "--json"}, 2, "choose one"},
		{[]string{"state"}, 2, "want arguments ACTOR"},
		{[]string{"state", "nobody"}, 1, "no actor nobody"},
		{[]string{"state", "<7.0.0>"}, 1, "no actor <7.0.0>"},
		{[]string{"events", "--kind", "bogus"}, 2, `unknown event kind "bogus"`},
		{[]string{"events", "--kind", "send,"}, 2, `unknown event kind ""`},
		{[]string{"events", "--loop", "9"}, 2, "loops 0 to 1"},
		{[]string{"events", "--loop", "-3"}, 2, "--loop -3"},
		{[]string{"events", "--last", "-1"}, 2, "--last -1"},
		{[]string{"events", "--actor", "nobody"}, 1, "no actor nobody"},
		{[]string{"crashes", "x"}, 2, "want arguments none"},
		{[]string{"peers", "x"}, 2, "want arguments none"},
		{[]string{"follow", "--kind", "bogus"}, 2, "unknown event kind"},
		{[]string{"follow", "--loop", "9"}, 2, "loops 0 to 1"},
		{[]string{"dump", "--last", "-1"}, 2, "--last -1"},
		{[]string{"patch", "svc/gate", "{not json"}, 2, "valid JSON"},
		{[]string{"patch", "svc/gate", `{"stuck":"yes"}`}, 2, "refused the state"},
		{[]string{"patch", "svc"}, 2, "want arguments ACTOR JSON"},
		{[]string{"trace", "svc/gate", "maybe"}, 2, "on or off"},
		{[]string{"trace", "--loop", "9", "on"}, 2, "loops 0 to 1"},
		{[]string{"trace", "svc/gate", "--loop", "1", "on"}, 2, "either ACTOR or --loop"},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"debug"}, tc.args...), flags...)...)
		if code != tc.code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, nothing, one line with %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
		if strings.Contains(errOut, "debug: ") || strings.Count(errOut, "bad request") > 1 {
			t.Errorf("%v: repeated prefixes in %q", tc.args, errOut)
		}
	}
}

// TestDebugHelp: every subcommand's -h describes each of its flags.
func TestDebugHelp(t *testing.T) {
	for _, sub := range debugOrder {
		code, out, _ := runCLI(t, "debug", sub, "-h")
		if code != 0 || !strings.HasPrefix(out, "usage: actord debug "+sub) {
			t.Fatalf("%s -h: exit %d\n%s", sub, code, out)
		}
		for _, l := range strings.Split(out, "\n") {
			// PrintDefaults: "  -name type" then the description
			// indented on the next line; a blank one is a missing usage.
			if strings.HasPrefix(l, "  -") {
				continue
			}
			if strings.HasPrefix(l, "    \t") && strings.TrimSpace(l) == "" {
				t.Errorf("%s -h: a flag without a description:\n%s", sub, out)
			}
		}
		for _, f := range []string{"-addr", "-token-file", "-json", "-timeout"} {
			if !strings.Contains(out, f) {
				t.Errorf("%s -h lacks %s", sub, f)
			}
		}
		if strings.Contains(out, "\n    \t\n") {
			t.Errorf("%s -h: blank flag description:\n%s", sub, out)
		}
	}
	code, out, _ := runCLI(t, "debug", "help")
	if code != 0 || !strings.Contains(out, "debug server HOST:PORT") || !strings.Contains(out, "exit status") {
		t.Fatalf("debug help: %d\n%s", code, out)
	}
}

// TestDefaultsPairUp: `actord debug` looks for the token where `actord
// run` writes it by default, and the ready line's paths are absolute even
// for a relative --data-dir.
func TestDefaultsPairUp(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("ACTORD_DEBUG_TOKEN", "")
	cfg, _, _, err := parseRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.WithDefaults()
	if d.TokenFile != defaultTokenFile() || d.TokenFile != filepath.Join(home, ".actord", "debug.token") {
		t.Fatalf("run writes %s, debug reads %s", d.TokenFile, defaultTokenFile())
	}
	if d.DebugAddr != defaultAddr() {
		t.Fatalf("run listens on %s, debug dials %s", d.DebugAddr, defaultAddr())
	}

	// A relative data dir comes out absolute in the ready line.
	t.Chdir(t.TempDir())
	sigs := fakeSignals(t)
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	args := []string{"run", "--name", "t", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--debug-addr", "127.0.0.1:0", "--data-dir", "rel", "--loops", "1"}
	go func() { code <- run(args, stdout, stderr) }()
	info := ready(t, stdout.ch, 20*time.Second)
	wd, _ := os.Getwd()
	for _, p := range []string{info.DataDir, info.TokenFile, info.CapabilityFile} {
		if !filepath.IsAbs(p) || !strings.HasPrefix(p, filepath.Join(wd, "rel")) {
			t.Errorf("ready line path %q: want absolute, under %s", p, filepath.Join(wd, "rel"))
		}
	}
	sigs <- syscall.SIGTERM
	if c := <-code; c != 0 {
		t.Fatalf("exit %d\n%s", c, stderr.String())
	}
}

// TestRunSignalDuringStart: a signal while the daemon is still starting
// stops it at once (the start is cancelled, what it started is undone),
// exit 0, nothing on stdout.
func TestRunSignalDuringStart(t *testing.T) {
	sigs := fakeSignals(t)
	entered := make(chan struct{})
	old := startDaemon
	startDaemon = func(ctx context.Context, cfg dmn.Config) (*dmn.Daemon, error) {
		close(entered)
		<-ctx.Done() // a start that would take long
		return nil, ctx.Err()
	}
	defer func() { startDaemon = old }()
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	go func() { code <- run(localArgs(t), stdout, stderr) }()
	<-entered
	sigs <- syscall.SIGINT
	select {
	case c := <-code:
		if c != 0 || stdout.String() != "" || !strings.Contains(stderr.String(), "signal received during startup") {
			t.Fatalf("exit %d, stdout %q\n%s", c, stdout.String(), stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the signal during the start was not heard")
	}
}

// TestRunPortInUse: a port in use is exit 1 at once, with the address.
func TestRunPortInUse(t *testing.T) {
	fakeSignals(t)
	busy := busyAddr(t)
	stdout, stderr := newLines(), newLines()
	args := append(localArgs(t), "--listen", busy, "--log-format", "json")
	if c := run(args, stdout, stderr); c != 1 || stdout.String() != "" {
		t.Fatalf("exit %d stdout %q", c, stdout.String())
	}
	if !strings.Contains(stderr.String(), busy) || !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("the error does not name %s and the cause:\n%s", busy, stderr.String())
	}
}

// TestRunNotifiesSystemd: under systemd (NOTIFY_SOCKET set) the daemon
// sends READY=1 once ready and STOPPING=1 when a stop begins.
func TestRunNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := listenUnixgram(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	sigs := fakeSignals(t)
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	go func() { code <- run(localArgs(t), stdout, stderr) }()
	read := func() string {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 512)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, stderr.String())
		}
		return string(b[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q", got)
	}
	ready(t, stdout.ch, 20*time.Second) // printed before READY=1
	sigs <- syscall.SIGTERM
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("second notification %q", got)
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit %d", c)
	}
}

func clientFor(t *testing.T, flags []string) *debug.Client {
	t.Helper()
	cl, err := debug.NewClient(flags[1], flags[3])
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// busyAddr holds a TCP port on 127.0.0.1 for the test's duration.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func listenUnixgram(path string) (*net.UnixConn, error) {
	return net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
}
