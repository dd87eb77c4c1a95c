package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/examples/kvstore"
	"github.com/actord/actord/remote"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// TestCLI runs put, get and del against an in-process store, the token
// read from the file the store wrote.
func TestCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	node := remote.New(sys, remote.Config{Name: "d", Listen: "127.0.0.1:0"})
	stop, err := node.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := kvstore.Install(ctx, node, kvstore.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(ctx); stop(); _ = sys.Shutdown(ctx) }()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		base := []string{"-addr", node.Addr(), "-token-file", filepath.Join(dir, kvstore.TokenFile)}
		rc := run(append(base, args...), &out, &errb)
		return strings.TrimSpace(out.String() + errb.String()), rc
	}
	if out, rc := cli("put", "greeting", "hello world"); rc != 0 {
		t.Fatalf("put: %d %s", rc, out)
	}
	if out, rc := cli("get", "greeting"); rc != 0 || out != "hello world" {
		t.Fatalf("get: %d %q", rc, out)
	}
	if out, rc := cli("del", "greeting"); rc != 0 {
		t.Fatalf("del: %d %s", rc, out)
	}
	if out, rc := cli("get", "greeting"); rc != 1 || !strings.Contains(out, "not found") {
		t.Fatalf("get after del: %d %q", rc, out)
	}
	if _, rc := cli("get"); rc != 2 {
		t.Fatalf("get without a key: %d, want 2", rc)
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"-addr", node.Addr(), "-token", "wrong", "get", "x"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "bad token") {
		t.Fatalf("wrong token: %d %q", rc, errb.String())
	}
}

// TestCLIClusterKey: against a store whose node has a cluster key, the CLI
// works with -cluster-key-file and fails without it; an unusable key file
// is a usage error (exit 2), for the queries and for serve.
func TestCLIClusterKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(dir, "open.key")
	if err := os.WriteFile(openKey, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1})
	node := remote.New(sys, remote.Config{Name: "d", Listen: "127.0.0.1:0", ClusterKey: []byte("0123456789abcdef0123456789abcdef")})
	stop, err := node.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	st, err := kvstore.Install(ctx, node, kvstore.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(ctx); stop(); _ = sys.Shutdown(ctx) }()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		base := []string{"-addr", node.Addr(), "-token-file", filepath.Join(data, kvstore.TokenFile), "-timeout", "5s"}
		rc := run(append(base, args...), &out, &errb)
		return strings.TrimSpace(out.String() + errb.String()), rc
	}
	if out, rc := cli("-cluster-key-file", keyFile, "put", "k", "v"); rc != 0 {
		t.Fatalf("put with the key: %d %s", rc, out)
	}
	if out, rc := cli("-cluster-key-file", keyFile, "get", "k"); rc != 0 || out != "v" {
		t.Fatalf("get with the key: %d %q", rc, out)
	}
	if out, rc := cli("get", "k"); rc != 1 {
		t.Fatalf("get without the key: %d %q, want 1", rc, out)
	} else {
		t.Logf("without the key: %s", out)
	}
	if out, rc := cli("-cluster-key-file", openKey, "get", "k"); rc != 2 || !strings.Contains(out, "chmod 600") {
		t.Fatalf("get with a group-readable key file: %d %q, want 2", rc, out)
	}
	var errb bytes.Buffer
	if rc := run([]string{"serve", "-listen", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-data", filepath.Join(dir, "serve"),
		"-cluster-key-file", openKey}, io.Discard, &errb); rc != 2 || !strings.Contains(errb.String(), "chmod 600") {
		t.Fatalf("serve with a group-readable key file: %d %q, want 2", rc, errb.String())
	}
}
