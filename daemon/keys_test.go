package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/remote"
)

// writeKeyFile writes a cluster key file with the given mode.
func writeKeyFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
	return p
}

// TestDaemonClusterKey: two daemons given the same cluster key file form a
// cluster (the gossip key derived from it matches) and serve each other's
// asks; a daemon with another key neither joins them nor reaches their
// actors, nor they its, and every attempt fails with remote.ErrNodeDown
// within its deadline.
func TestDaemonClusterKey(t *testing.T) {
	key := writeKeyFile(t, "  0123456789abcdef0123456789abcdef\n", 0o600)
	other := writeKeyFile(t, "fedcba9876543210fedcba9876543210", 0o400)

	cfgA := testConfig(t, "a")
	cfgA.ClusterKeyFile = key
	a := start(t, cfgA)
	cfgB := testConfig(t, "b", a.Info().GossipAddr)
	cfgB.ClusterKeyFile = key
	b := start(t, cfgB)
	for _, d := range []*Daemon{a, b} {
		eventually(t, 5*time.Second, d.Info().Node+" sees a and b", func() bool {
			return slices.Equal(names(d.Agent().Members()), []string{"a", "b"})
		})
		if pk := d.Info().PublicKey; pk == "" || pk != hex.EncodeToString(d.Node().PublicKey()) {
			t.Fatalf("%s: ready line public key %q, node's %x", d.Info().Node, pk, d.Node().PublicKey())
		}
	}
	if a.Info().PublicKey == b.Info().PublicKey {
		t.Fatal("two daemons share a public key")
	}
	registerKinds(a, nil)
	registerKinds(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range [][2]*Daemon{{a, b}, {b, a}} {
		r, err := p[0].Node().Spawn(ctx, p[1].Info().Addr, "echo", nil)
		if err != nil {
			t.Fatalf("%s spawns on %s: %v", p[0].Info().Node, p[1].Info().Node, err)
		}
		if v, err := p[0].System().Ask(ctx, r, "hi"); err != nil || v != "hi" {
			t.Fatalf("%s asks %s: %v, %v", p[0].Info().Node, p[1].Info().Node, v, err)
		}
	}

	// c holds another key and is told to join through a.
	cfgC := testConfig(t, "c", a.Info().GossipAddr)
	cfgC.ClusterKeyFile = other
	c := start(t, cfgC)
	registerKinds(c, nil)
	for _, p := range [][2]*Daemon{{c, a}, {a, c}} {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := p[0].Node().Spawn(sctx, p[1].Info().Addr, "echo", nil)
		scancel()
		if !errors.Is(err, remote.ErrNodeDown) {
			t.Fatalf("%s spawns on %s (another cluster key): %v, want remote.ErrNodeDown", p[0].Info().Node, p[1].Info().Node, err)
		}
		t.Logf("%s spawns on %s (another cluster key): %v", p[0].Info().Node, p[1].Info().Node, err)
	}
	// By now c has tried to join through a many times (every 100 ms).
	if got := names(a.Agent().Members()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("a's members %v: c joined with another key", got)
	}
	if got := names(c.Agent().Members()); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("c's members %v: it joined with another key", got)
	}
	if st := a.Node().Stats(); st.BadFrames == 0 {
		t.Errorf("a refused c's connections without counting them: %+v", st)
	}
}

// TestDaemonClusterKeyFileErrors: an unusable cluster key file fails Start,
// before anything listens, with an error matching ErrConfig and
// remote.ErrKeyFile; so does a key set twice or a malformed one.
func TestDaemonClusterKeyFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
		file bool // the error is about the file: remote.ErrKeyFile
	}{
		{"group readable", func(c *Config) { c.ClusterKeyFile = writeKeyFile(t, strings.Repeat("k", 32), 0o640) }, "chmod 600", true},
		{"world readable", func(c *Config) { c.ClusterKeyFile = writeKeyFile(t, strings.Repeat("k", 32), 0o604) }, "chmod 600", true},
		{"too short", func(c *Config) { c.ClusterKeyFile = writeKeyFile(t, "  short-key-15b \n", 0o600) }, "at least 16", true},
		{"missing", func(c *Config) { c.ClusterKeyFile = filepath.Join(t.TempDir(), "nope") }, "nope", true},
		{"set twice", func(c *Config) {
			c.ClusterKeyFile = writeKeyFile(t, strings.Repeat("k", 32), 0o600)
			c.Remote.ClusterKey = []byte(strings.Repeat("k", 32))
		}, "set one", false},
		{"short Remote.ClusterKey", func(c *Config) { c.Remote.ClusterKey = []byte("short") }, "at least 16", false},
		{"gossip key length", func(c *Config) { c.Cluster.SecretKey = []byte("short") }, "gossip secret key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "x")
			tc.mod(&cfg)
			d, err := Start(context.Background(), cfg)
			if err == nil {
				_ = d.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !errors.Is(err, ErrConfig) || errors.Is(err, remote.ErrKeyFile) != tc.file || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrConfig (and remote.ErrKeyFile: %v) mentioning %q", err, tc.file, tc.want)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, NodeKeyFile)); tc.file && err == nil {
				t.Error("node key written although Start failed on the cluster key file")
			}
		})
	}
}

// TestDaemonNodeKey: a daemon makes its node key in the data dir (mode 0600)
// on its first start and keeps its public key across a restart; a bad key
// file fails Start with ErrConfig; Remote.PrivateKey, when set, is used and
// no file is written.
func TestDaemonNodeKey(t *testing.T) {
	cfg := testConfig(t, "n")
	d := start(t, cfg)
	pk := d.Info().PublicKey
	if pk == "" || pk != hex.EncodeToString(d.Node().PublicKey()) {
		t.Fatalf("ready line public key %q, node's %x", pk, d.Node().PublicKey())
	}
	path := filepath.Join(cfg.DataDir, NodeKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("node key file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(priv) != 32 || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("node key file %q: not 64 hex digits and a newline", b)
	}
	if pub, err := remote.PublicKey(priv); err != nil || hex.EncodeToString(pub) != pk {
		t.Fatalf("the file's key has public key %x (%v), the daemon %s", pub, err, pk)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	d2 := start(t, cfg)
	if got := d2.Info().PublicKey; got != pk {
		t.Fatalf("public key after a restart %s, before %s", got, pk)
	}
	if err := d2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A corrupt key file is not replaced: Start fails.
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := Start(context.Background(), cfg); err == nil {
		_ = d.Shutdown(context.Background())
		t.Fatal("started with a corrupt node key file")
	} else if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), NodeKeyFile) {
		t.Fatalf("corrupt node key file: %v, want ErrConfig naming the file", err)
	}

	// A key given in the configuration wins, and no file is made.
	own, err := remote.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := remote.PublicKey(own)
	cfg2 := testConfig(t, "p")
	cfg2.Remote.PrivateKey = own
	d3 := start(t, cfg2)
	if !bytes.Equal(d3.Node().PublicKey(), pub) || d3.Info().PublicKey != hex.EncodeToString(pub) {
		t.Fatalf("public key %s, want %x", d3.Info().PublicKey, pub)
	}
	if _, err := os.Stat(filepath.Join(cfg2.DataDir, NodeKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("node key file with Remote.PrivateKey set: %v", err)
	}
}

// TestGossipKey: 32 bytes (AES-256 for memberlist), deterministic, distinct
// per cluster key and from the key itself.
func TestGossipKey(t *testing.T) {
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	g1 := GossipKey(k1)
	if len(g1) != 32 || !bytes.Equal(g1, GossipKey(k1)) || bytes.Equal(g1, GossipKey(k2)) || bytes.Equal(g1, k1) {
		t.Fatalf("gossip keys %x %x", g1, GossipKey(k2))
	}
}
