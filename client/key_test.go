package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/client"
	"github.com/actord/actord/remote"
)

func keyFile(t *testing.T, key string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterKey: against daemons with a cluster key, a client holding the
// key (in a file, or in Remote.ClusterKey) works across the cluster; one
// without it, or with another, fails with remote.ErrNodeDown within its
// deadline; an unusable key file fails Dial.
func TestClusterKey(t *testing.T) {
	const key = "a cluster key of more than sixteen bytes"
	kf := keyFile(t, key+"\n", 0o600)
	a := startDaemonKey(t, "a", kf)
	startDaemonKey(t, "b", kf, a.Info().GossipAddr)
	capA := readCap(t, a)
	ctx := ctxT(t)

	c, err := client.Dial(ctx, capA, client.Options{Logger: quiet(), ClusterKeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	eventually(t, 10*time.Second, "a sees b and knows its gateway", func() bool {
		ms, err := c.Members(ctx)
		if err != nil {
			t.Fatalf("members: %v", err)
		}
		return len(ms) == 2 && ms[0].Capability != "" && ms[1].Capability != ""
	})
	ref, err := c.Spawn(ctx, "b", "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Ask(ctx, ref, "hello"); err != nil || v != "hello" {
		t.Fatalf("ask echo on b: %v, %v", v, err)
	}

	// The key given directly works as well.
	c2, err := client.Dial(ctx, capA, client.Options{Logger: quiet(), Remote: remote.Config{ClusterKey: []byte(key)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	if v, err := c2.Ask(ctx, ref, "again"); err != nil || v != "again" {
		t.Fatalf("ask with Remote.ClusterKey: %v, %v", v, err)
	}

	// No key, another key: the daemon refuses the handshake, and the error
	// says why.
	for name, opts := range map[string]client.Options{
		"no key":      {Logger: quiet()},
		"another key": {Logger: quiet(), ClusterKeyFile: keyFile(t, "another cluster key, same length!!", 0o400)},
	} {
		c, err := client.Dial(ctx, capA, opts)
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = c.Members(actx)
		cancel()
		if !errors.Is(err, remote.ErrNodeDown) || !errors.Is(err, remote.ErrClusterKey) {
			t.Errorf("%s: members: %v, want remote.ErrNodeDown and remote.ErrClusterKey", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		_ = c.Close()
	}

	// Unusable key files, or the key set twice, fail Dial.
	for _, tc := range []struct {
		name string
		opts client.Options
		want error
	}{
		{"readable by others", client.Options{ClusterKeyFile: keyFile(t, key, 0o644)}, remote.ErrKeyFile},
		{"too short", client.Options{ClusterKeyFile: keyFile(t, "short\n", 0o600)}, remote.ErrKeyFile},
		{"missing", client.Options{ClusterKeyFile: filepath.Join(t.TempDir(), "missing")}, remote.ErrKeyFile},
		{"twice", client.Options{ClusterKeyFile: kf, Remote: remote.Config{ClusterKey: []byte(key)}}, nil},
	} {
		c, err := client.Dial(ctx, capA, tc.opts)
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: dialed", tc.name)
			continue
		}
		if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.HasPrefix(err.Error(), "client: dial: ") {
			t.Errorf("%s: %v, want a dial error matching %v", tc.name, err, tc.want)
		}
	}
}
