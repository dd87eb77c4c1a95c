package main

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/client"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/examples/customd/counter"
	"github.com/actord/actord/remote"
)

// startCustomd builds this command and runs `customd run` on 127.0.0.1
// (ports chosen by the system) until the test ends: SIGTERM, then it must
// exit 0. It returns the daemon's ready line.
func startCustomd(t *testing.T, ctx context.Context) daemon.Info {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "customd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Not CommandContext: the test's context ends before its cleanup,
	// which stops the daemon with SIGTERM and checks how it exits.
	cmd := exec.Command(bin, "run", "--name", "c1", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--debug-addr", "off", "--data-dir", filepath.Join(dir, "data"), "--cluster-profile", "fast", "--loops", "2",
		"--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		exited <- cmd.Wait() // after stdout is drained, as Wait requires
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("customd after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("customd did not stop within 30 s of SIGTERM")
		}
	})
	select {
	case l := <-lines:
		info, ok := daemon.ParseReady([]byte(l))
		if !ok {
			t.Fatalf("not a ready line: %q", l)
		}
		return info
	case err := <-exited:
		t.Fatalf("customd exited before it was ready: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("customd not ready: %v\n%s", ctx.Err(), stderr.String())
	}
	return daemon.Info{}
}

func dial(t *testing.T, ctx context.Context, info daemon.Info) *client.Client {
	t.Helper()
	capability, err := client.ReadCapabilityFile(info.CapabilityFile)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(ctx, capability, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := counter.RegisterTypes(cl.Node()); err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestCustomd runs the customd binary and spawns both its kinds from a
// client: typed arguments arrive typed, and the kind's message types
// (cli.Types) are registered on the daemon.
func TestCustomd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := dial(t, ctx, startCustomd(t, ctx))

	c, err := cl.Spawn(ctx, "", "counter", counter.Args{Start: 5, Step: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		msg  any
		want int64
	}{{"incr", 7}, {counter.Add{N: 10}, 17}, {"get", 17}} {
		if v, err := cl.Ask(ctx, c, step.msg); err != nil || v != step.want {
			t.Fatalf("ask %#v: %v, %v; want %d", step.msg, v, err, step.want)
		}
	}
	g, err := cl.Spawn(ctx, "", "greeter", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := cl.Ask(ctx, g, "there"); err != nil || v != "hi, there" {
		t.Fatalf("greeter: %v, %v", v, err)
	}
	g, err = cl.Spawn(ctx, "", "greeter", nil) // no arguments: the zero string
	if err != nil {
		t.Fatal(err)
	}
	if v, err := cl.Ask(ctx, g, "you"); err != nil || v != "hello, you" {
		t.Fatalf("greeter without arguments: %v, %v", v, err)
	}
}

// TestCustomdBadArgs: arguments that do not decode into the kind's type,
// or that the kind refuses, fail the spawn with an error that names the
// kind and the cause; the daemon goes on serving.
func TestCustomdBadArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := dial(t, ctx, startCustomd(t, ctx))

	type otherArgs struct{ Start, Step, Stop int64 }
	for _, tc := range []struct {
		kind string
		args any
		want []string
	}{
		{"counter", "five", []string{`kind "counter"`, "want counter.Args, got string", "msgpack"}},
		{"counter", map[string]any{"Start": "five"}, []string{`kind "counter"`, "want counter.Args", "msgpack", "decoding int64"}},
		{"counter", otherArgs{1, 2, 3}, []string{`kind "counter"`, "want counter.Args", `unknown field "Stop"`}},
		{"counter", counter.Args{Start: 1}, []string{`kind "counter"`, counter.ErrZeroStep.Error()}},
		{"greeter", []any{"a", "b"}, []string{`kind "greeter"`, "want string, got []interface {}", "msgpack"}},
	} {
		_, err := cl.Spawn(ctx, "", tc.kind, tc.args)
		if !errors.Is(err, client.ErrSpawn) {
			t.Errorf("spawn %s with %#v: %v, want client.ErrSpawn", tc.kind, tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("spawn %s with %#v: %q lacks %q", tc.kind, tc.args, err, w)
			}
		}
	}
	if _, err := cl.Spawn(ctx, "", "counter", counter.Args{Step: 1}); err != nil {
		t.Fatalf("a good spawn after the bad ones: %v", err)
	}
	if _, err := cl.Spawn(ctx, "", "nosuch", nil); !errors.Is(err, remote.ErrUnknownKind) {
		t.Fatalf("an unknown kind: %v", err)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool (imported with the client's
		// node), started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}
