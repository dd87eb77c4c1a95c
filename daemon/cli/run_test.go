package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/cluster"
	dmn "github.com/actord/actord/daemon"
)

// TestRunBadUsage: a bad flag, argument, config file or configuration is
// one line on stderr, nothing on stdout, and exit code 2.
func TestRunBadUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := write("unknown.json", `{"listen": "127.0.0.1:7700", "lissen": "x"}`)
	broken := write("broken.json", `{"listen": "127.0.0.1:7700",`)
	badDur := write("dur.json", `{"shutdown_timeout": 10}`)
	badAddr := write("addr.json", `{"listen": "0.0.0.0:7700"}`)
	openKey := write("open.key", "0123456789abcdef0123456789abcdef")
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	shortKey := write("short.key", "0123456789\n")
	keyInFile := write("key.json", `{"cluster_key_file": "`+openKey+`"}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "bogus"},
		{[]string{"--loops", "-1"}, "loops"},
		{[]string{"--loops", "many"}, "loops"},
		{[]string{"--listen", "0.0.0.0:7700"}, "unspecified"},
		{[]string{"--seeds", "a:1,nohostport"}, "nohostport"},
		{[]string{"--log-format", "xml"}, "log format"},
		{[]string{"--log-level", "loud"}, "log level"},
		{[]string{"--shutdown-timeout", "soon"}, "shutdown-timeout"},
		{[]string{"--cluster-profile", "warp"}, "profile"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--config", filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"--config", unknown}, `unknown field "lissen"`},
		{[]string{"--config", broken}, "broken.json"},
		{[]string{"--config", badDur}, "duration"},
		{[]string{"--config", badAddr}, "unspecified"},
		// Found by Start, which reads the key file: still one line, exit 2.
		{append(localArgs(t)[1:], "--cluster-key-file", openKey), "chmod 600"},
		{append(localArgs(t)[1:], "--cluster-key-file", shortKey), "at least 16"},
		{append(localArgs(t)[1:], "--cluster-key-file", filepath.Join(dir, "missing.key")), "missing.key"},
		{append(localArgs(t)[1:], "--config", keyInFile), "chmod 600"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"run"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if code != 2 || stdout.Len() != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "actord run: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, nothing, one line mentioning %q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-seeds", "-gossip", "-config", "-data-dir", "-metrics-addr", "-cluster-key-file", "127.0.0.1:7700"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestRunConfigFile: the file sets everything; flags on the command line
// win over it; the file's absent members keep the defaults.
func TestRunConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "actord.json")
	body := `{
  "name": "n1", "listen": "10.0.0.5:7700", "gossip": "10.0.0.5:7946",
  "seeds": ["10.0.0.6:7946", "10.0.0.7:7946"], "loops": 3,
  "data_dir": "/var/lib/actord", "metrics_addr": "10.0.0.5:9100",
  "cluster_profile": "local", "shutdown_timeout": "20s", "log_format": "json",
  "cluster_key_file": "/etc/actord/cluster.key", "drain_on_stop": true, "drain_timeout": "90s"
}`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, rc, help, err := parseRun([]string{"--config", p, "--loops", "4", "--seeds", "10.0.0.8:7946"})
	if err != nil || help {
		t.Fatalf("parse: %v %v", err, help)
	}
	want := dmn.Config{Name: "n1", Listen: "10.0.0.5:7700", Gossip: "10.0.0.5:7946", Seeds: []string{"10.0.0.8:7946"},
		Loops: 4, DataDir: "/var/lib/actord", DebugAddr: "127.0.0.1:6060", MetricsAddr: "10.0.0.5:9100",
		ShutdownTimeout: 20 * time.Second, Cluster: cluster.Config{Profile: cluster.ProfileLocal},
		ClusterKeyFile: "/etc/actord/cluster.key", DrainOnStop: true, DrainTimeout: 90 * time.Second}
	// Compared as values: JSON would fail on remote.Config's func fields
	// (Authorize) and compare two empty outputs.
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config\n got %+v\nwant %+v", cfg, want)
	}
	if rc.LogFormat != "json" || rc.LogLevel != "info" {
		t.Fatalf("log settings %q %q", rc.LogFormat, rc.LogLevel)
	}
	// The flag wins over the file's member.
	cfg, _, _, err = parseRun([]string{"--config", p, "--cluster-key-file", "/run/secrets/cluster.key"})
	if err != nil || cfg.ClusterKeyFile != "/run/secrets/cluster.key" {
		t.Fatalf("--cluster-key-file over the file: %q %v", cfg.ClusterKeyFile, err)
	}
	cfg, _, _, err = parseRun([]string{"--drain-on-stop", "--drain-timeout", "1m"})
	if err != nil || !cfg.DrainOnStop || cfg.DrainTimeout != time.Minute {
		t.Fatalf("--drain-on-stop --drain-timeout 1m: %v %v %v", cfg.DrainOnStop, cfg.DrainTimeout, err)
	}
	// Without a file: the defaults (no cluster key).
	cfg, _, _, err = parseRun(nil)
	if err != nil || cfg.Listen != "127.0.0.1:7700" || cfg.Gossip != "127.0.0.1:7946" || cfg.Loops != 0 || cfg.DebugAddr != "127.0.0.1:6060" || cfg.ClusterKeyFile != "" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	cfg, _, _, err = parseRun([]string{"--cluster-key-file", "k"})
	if err != nil || cfg.ClusterKeyFile != "k" {
		t.Fatalf("--cluster-key-file: %q %v", cfg.ClusterKeyFile, err)
	}
}

// lines is an io.Writer that hands complete lines to a channel.
type lines struct {
	mu  sync.Mutex
	buf []byte
	ch  chan string
	all strings.Builder
}

func newLines() *lines { return &lines{ch: make(chan string, 1024)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		select {
		case l.ch <- string(l.buf[:i]):
		default:
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// ready waits for the ready line.
func ready(t *testing.T, ch <-chan string, d time.Duration) dmn.Info {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatal("output ended before the ready line")
			}
			if info, ok := dmn.ParseReady([]byte(l)); ok {
				return info
			}
		case <-timer.C:
			t.Fatalf("no ready line within %v", d)
		}
	}
}

func localArgs(t *testing.T) []string {
	return []string{"run", "--name", "t", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--debug-addr", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"), "--loops", "2", "--log-level", "debug"}
}

// fakeSignals makes runMain listen to a channel of the test's.
func fakeSignals(t *testing.T) chan os.Signal {
	ch := make(chan os.Signal, 2)
	old := notifySignals
	notifySignals = func() (<-chan os.Signal, func()) { return ch, func() {} }
	t.Cleanup(func() { notifySignals = old })
	return ch
}

// TestRunInProcess: the ready line comes out on stdout, alone, with the
// daemon's addresses and its token file in the data dir; a SIGTERM shuts
// it down and run returns 0.
func TestRunInProcess(t *testing.T) {
	sigs := fakeSignals(t)
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { code <- run(append(localArgs(t), "--cluster-key-file", key), stdout, stderr) }()
	info := ready(t, stdout.ch, 20*time.Second)
	if info.Node != "t" || info.Addr == "" || info.GossipAddr == "" || info.DebugAddr == "" || info.Loops != 2 || len(info.PublicKey) != 64 {
		t.Fatalf("ready line %+v", info)
	}
	if st, err := os.Stat(filepath.Join(info.DataDir, dmn.NodeKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node key file: %v %v", st, err)
	}
	if filepath.Dir(info.TokenFile) != info.DataDir {
		t.Fatalf("token file %s not in data dir %s", info.TokenFile, info.DataDir)
	}
	if st, err := os.Stat(info.TokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	if !strings.Contains(stderr.String(), `msg="actord ready"`) || !strings.Contains(stderr.String(), "token_file=") ||
		!strings.Contains(stderr.String(), "public_key="+info.PublicKey) {
		t.Fatalf("no ready log record:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "no cluster key") {
		t.Fatalf("warned of no cluster key although one was given:\n%s", stderr.String())
	}
	sigs <- syscall.SIGTERM
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after SIGTERM\n%s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), `msg="actord stopped"`) {
		t.Fatalf("no stopped record:\n%s", stderr.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 {
		t.Fatalf("stdout is not the ready line alone:\n%s", stdout.String())
	}
}

// TestRunSecondSignalForcesExit: a second signal during the shutdown makes
// run return 1 at once.
func TestRunSecondSignalForcesExit(t *testing.T) {
	sigs := fakeSignals(t)
	hold := make(chan struct{})
	var d *dmn.Daemon
	runHooks.started = func(x *dmn.Daemon) { d = x }
	runHooks.beforeShutdown = func() { <-hold }
	defer func() { runHooks.started, runHooks.beforeShutdown = nil, nil }()
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	go func() { code <- run(localArgs(t), stdout, stderr) }()
	ready(t, stdout.ch, 20*time.Second)
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGINT
	select {
	case c := <-code:
		if c == 0 {
			t.Fatal("forced exit returned 0")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not force the exit")
	}
	if !strings.Contains(stderr.String(), "second signal") {
		t.Fatalf("no log of the forced exit:\n%s", stderr.String())
	}
	close(hold) // let the abandoned shutdown finish, so nothing leaks
	select {
	case <-d.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not finish")
	}
}

// TestRunSubprocess builds actord, runs `actord run`, reads its ready line,
// attaches `actord debug loops` to it, and stops it with SIGTERM: exit 0.
func TestRunSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "actord")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/actord").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, append(localArgs(t), "--log-format", "json")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := newLines()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	outLines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outLines <- sc.Text()
		}
		close(outLines)
		exited <- cmd.Wait() // after stdout is drained, as os/exec asks
	}()
	defer func() { _ = cmd.Process.Kill() }()
	info := ready(t, outLines, 30*time.Second)
	if info.PID != cmd.Process.Pid {
		t.Fatalf("ready line pid %d, process %d", info.PID, cmd.Process.Pid)
	}
	// The logs are JSON lines, one of them the ready record. stderr is read
	// apart from stdout, so it may lag the ready line: wait for the record.
	logDeadline := time.After(30 * time.Second)
	for sawReady := false; !sawReady; {
		select {
		case l := <-stderr.ch:
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q", l)
			}
			sawReady = rec["msg"] == "actord ready"
		case <-logDeadline:
			t.Fatalf("no ready record in the logs:\n%s", stderr.String())
		}
	}

	dbg := exec.CommandContext(ctx, bin, "debug", "loops", "--addr", info.DebugAddr, "--token-file", info.TokenFile)
	if out, err := dbg.CombinedOutput(); err != nil || !strings.Contains(string(out), "LOOP") {
		t.Fatalf("actord debug loops: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20s of SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"actord stopped"`) {
		t.Fatalf("no stopped record:\n%s", stderr.String())
	}
}
