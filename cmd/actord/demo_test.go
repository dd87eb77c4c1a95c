package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dmn "github.com/actord/actord/daemon"
)

// asActord makes this test binary behave as the actord command when run
// with ACTORD_TEST_AS_ACTORD=1, so that the end-to-end test can run
// `actord demo`, which re-executes its own binary as the daemons, without
// building it. It runs before TestMain.
func init() {
	if os.Getenv("ACTORD_TEST_AS_ACTORD") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// TestDemoEndToEnd runs `actord demo` for a short load: three daemon
// processes, the crash of a replica, a daemon SIGKILLed and restarted, the
// read back, the restarted daemon's catch-up, the debugger view, the
// shutdown.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "demo", "--duration", "3s", "--clients", "8")
	cmd.Env = append(os.Environ(), "ACTORD_TEST_AS_ACTORD=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	if err != nil {
		t.Fatalf("actord demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	for _, want := range []string{
		"== starting 3 daemons",
		"  a  pid ", "  b  pid ", "  c  pid ",
		"  transport: Noise, authenticated with the cluster key in ", "  a  public key ",
		"holding the cluster key, dialed ",
		"== kvstore deployed: 16 shards of 3 replicas each",
		" ops/s  (puts ",
		"!! crashed the replica of shard-000 on daemon b",
		"restarted it in place",
		"!! SIGKILLed daemon c (pid ",
		"!! started daemon c again (pid ",
		"while daemon c was down (", " 0 failed: reads and writes went on with 2 replicas of 3",
		"no acknowledged write lost",
		"daemon c holds all ",
		"$ actord debug tree --addr ",
		"kvstore <", "[supervisor]",
		"$ actord debug loops --addr ",
		"LOOP  QUEUE  ACTORS",
		"  a: exit 0 after ", "  b: exit 0 after ", "  c: exit 0 after ",
		"everything shut down cleanly.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "\r") {
		t.Error("progress rewritten with \\r although stdout is not a terminal")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}

func TestDemoBadArgs(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--duration", "0s"}, &out, &errb); code != 2 {
		t.Errorf("demo --duration 0s: exit %d, want 2", code)
	}
	if code := run([]string{"demo", "extra"}, &out, &errb); code != 2 {
		t.Errorf("demo extra: exit %d, want 2", code)
	}
	for _, bad := range []string{"", "0", "-3", "x", "1,,y", "100001"} {
		if code := run([]string{"demo", "--bench-clients", bad}, &out, &errb); code != 2 {
			t.Errorf("demo --bench-clients %q: exit %d, want 2", bad, code)
		}
	}
	if code := run([]string{"demo", "_node"}, &out, &errb); code != 2 {
		t.Errorf("demo _node without arguments: exit %d, want 2", code)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		lat  []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
	} {
		if got := percentile(tc.lat, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.lat), tc.p, got, tc.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	s := sample{elapsed: 2 * time.Second, interval: 500 * time.Millisecond, puts: 100, gets: 400,
		p50: 1500 * time.Microsecond, p99: 42 * time.Microsecond, acked: 900, failed: 3}
	got := progressLine(s)
	for _, want := range []string{"2.0s", "1000 ops/s", "(puts 100, gets 400)", "p50 1.50ms", "p99 42µs", "acknowledged puts 900", "failed 3"} {
		if !strings.Contains(got, want) {
			t.Errorf("progressLine = %q, lacks %q", got, want)
		}
	}
}

func TestProgressTerminalAndNot(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, tty: true}
	p.update("one")
	p.update("two")
	p.println("event")
	p.update("three")
	p.end()
	if got, want := b.String(), "\r\033[Kone\r\033[Ktwo\nevent\n\r\033[Kthree\n"; got != want {
		t.Errorf("terminal: %q, want %q", got, want)
	}
	b.Reset()
	p = &progress{w: &b}
	p.update("one")
	p.update("two")
	p.println("event")
	p.end()
	if got, want := b.String(), "one\ntwo\nevent\n"; got != want {
		t.Errorf("not a terminal: %q, want %q", got, want)
	}
	if isTerminal(&b) {
		t.Error("a buffer is a terminal")
	}
}

func TestRecorderTake(t *testing.T) {
	r := &recorder{}
	for i := 1; i <= 100; i++ {
		r.add(time.Duration(i)*time.Microsecond, i%4 == 0)
	}
	r.acked.Add(25)
	s := r.take(time.Second, time.Second)
	if s.puts != 25 || s.gets != 75 || s.p50 != 50*time.Microsecond || s.p99 != 99*time.Microsecond || s.acked != 25 {
		t.Errorf("sample %+v", s)
	}
	if s := r.take(2*time.Second, time.Second); s.puts+s.gets != 0 || s.p50 != 0 {
		t.Errorf("second interval not empty: %+v", s)
	}
}

func readyLine(t *testing.T) []byte {
	b, err := json.Marshal(dmn.Info{Msg: dmn.ReadyMsg, Version: dmn.ReadyVersion, Node: "x", Addr: "127.0.0.1:1", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWaitReady(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	go func() {
		_, _ = pw.Write([]byte("not json\n{\"msg\":\"something else\"}\n"))
		_, _ = pw.Write(append(readyLine(t), '\n'))
		_, _ = pw.Write([]byte("more output after the ready line, drained\n"))
	}()
	info, err := waitReady(pr, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Node != "x" || info.PID != 42 || info.Addr != "127.0.0.1:1" {
		t.Errorf("info %+v", info)
	}
}

func TestWaitReadyDeadline(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() }) // ends the reader goroutine
	start := time.Now()
	_, err := waitReady(pr, 100*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "no ready line within") {
		t.Fatalf("err %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestWaitReadyEOFAndExit(t *testing.T) {
	_, err := waitReady(strings.NewReader("just logs\n"), 10*time.Second, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("EOF: %v", err)
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	exited := make(chan struct{})
	close(exited)
	if _, err := waitReady(pr, 10*time.Second, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("exited: %v", err)
	}
}

// TestStopChildren: a child that exits on SIGTERM is reported with exit 0,
// one that ignores it is SIGKILLed after the deadline.
func TestStopChildren(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// Each prints a line once its trap is set, so the signal cannot come first.
	good, err := startChild("good", sh, []string{"-c", `trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := startChild("stuck", sh, []string{"-c", `trap '' TERM; echo up; while :; do sleep 0.05; done`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*child{good, stuck} {
		line := make([]byte, 3)
		if _, err := io.ReadFull(c.stdout, line); err != nil || string(line) != "up\n" {
			t.Fatalf("%s: %q %v", c.name, line, err)
		}
	}
	// Each on its own: the good one with a deadline no loaded machine
	// reaches (it returns as soon as the child exits), the stuck one with
	// a short one.
	res := append(stopChildren([]*child{good}, time.Minute), stopChildren([]*child{stuck}, 100*time.Millisecond)...)
	if r := res[0]; r.killed || r.code != 0 || !strings.Contains(r.String(), "good: exit 0 after") {
		t.Errorf("good: %+v %s", r, r)
	}
	if r := res[1]; !r.killed || !strings.Contains(r.String(), "SIGKILLed") {
		t.Errorf("stuck: %+v %s", r, r)
	}
	for _, c := range []*child{good, stuck} {
		select {
		case <-c.done:
		default:
			t.Errorf("%s still running", c.name)
		}
	}
}

func TestFreePortsAndTail(t *testing.T) {
	ps, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] {
		t.Errorf("ports %v", ps)
	}
	tb := &tailBuffer{max: 5}
	_, _ = tb.Write([]byte("abc"))
	_, _ = tb.Write([]byte("defg"))
	if tb.String() != "cdefg" {
		t.Errorf("tail %q", tb.String())
	}
}

// TestDemoNodeStdinEOF: a demo daemon prints its ready line once the store
// is installed, and shuts down cleanly (exit 0) when its stdin ends, which
// is what happens when the demo process dies without stopping it.
func TestDemoNodeStdinEOF(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := startChild("a", os.Args[0], []string{"demo", "_node", "--name", "a", "--listen", ports[0],
		"--data-dir", t.TempDir(), "--members", ports[0], "--token", "tok", "--watch-stdin"},
		[]string{"ACTORD_TEST_AS_ACTORD=1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopChildren([]*child{c}, 10*time.Second) })
	if err := c.ready(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if c.info.Addr != ports[0] || c.info.DebugAddr == "" || c.info.TokenFile == "" {
		t.Errorf("ready line %+v", c.info)
	}
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after its stdin ended\n%s", c.logs.String())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0\n%s", code, c.logs.String())
	}
}
