// Command kvstore runs and queries the kvstore example.
//
//	kvstore serve [-listen ADDR] [-gossip ADDR] [-data DIR] [-members A,B,C] [-seeds G1,G2] [-token T] [-shards N] [-replicas R] [-cluster-key-file F]
//	kvstore [-addr ADDR] [-token T | -token-file FILE] [-timeout D] [-cluster-key-file F] get KEY
//	kvstore [-addr ADDR] [-token T | -token-file FILE] [-timeout D] [-cluster-key-file F] put KEY VALUE
//	kvstore [-addr ADDR] [-token T | -token-file FILE] [-timeout D] [-cluster-key-file F] del KEY
//
// serve starts an actord daemon (package daemon) and installs the store's
// replicas on it; it writes the token to DATA/kvstore.token unless -token
// is given (give every daemon of a store the same -token, -members, -shards
// and -replicas). get, put and del start a small client node on 127.0.0.1,
// dial the daemon at -addr with the token (the capability: see package
// kvstore), and read or write the key on a majority of its shard's
// replicas. get prints the value and exits 1 if the key is absent.
//
// -cluster-key-file names the cluster key file (mode 0600 or 0400, at
// least 16 bytes; see actord run's --cluster-key-file): give the same one
// to every daemon of the store and to the commands that query it, so only
// nodes holding the key can connect. An unusable file exits 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/daemon"
	"github.com/actord/actord/examples/kvstore"
	"github.com/actord/actord/remote"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve" {
		return serve(args[1:], stderr)
	}
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7700", "remote address of a kvstore daemon")
	token := fs.String("token", "", "the store's token")
	tokenFile := fs.String("token-file", filepath.Join("actord-data", kvstore.TokenFile), "file holding the store's token (when -token is empty)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of the whole command")
	keyFile := fs.String("cluster-key-file", "", "the daemons' cluster key file, if they have one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmd := fs.Args()
	want := map[string]int{"get": 2, "put": 3, "del": 2}
	if len(cmd) == 0 || want[cmd[0]] != len(cmd) {
		fmt.Fprintln(stderr, "usage: kvstore [flags] get KEY | put KEY VALUE | del KEY | serve [flags]")
		return 2
	}
	if *token == "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "kvstore: token:", err)
			return 2
		}
		*token = strings.TrimSpace(string(b))
	}
	var clusterKey []byte
	if *keyFile != "" {
		k, err := remote.ReadClusterKey(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "kvstore:", err)
			return 2
		}
		clusterKey = k
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: quiet})
	node := remote.New(sys, remote.Config{Name: fmt.Sprintf("kvstore-cli-%d", os.Getpid()), Listen: "127.0.0.1:0",
		ClusterKey: clusterKey, Logger: quiet})
	stop, err := node.Start(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kvstore:", err)
		return 1
	}
	defer func() { stop(); _ = sys.Shutdown(context.Background()) }()
	cl, err := kvstore.Dial(ctx, node, *addr, *token, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch cmd[0] {
	case "get":
		v, ok, err := cl.Get(ctx, cmd[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if !ok {
			fmt.Fprintf(stderr, "kvstore: %q not found\n", cmd[1])
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", v)
	case "put":
		err = cl.Put(ctx, cmd[1], []byte(cmd[2]))
	case "del":
		err = cl.Delete(ctx, cmd[1])
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvstore serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg daemon.Config
	fs.StringVar(&cfg.Name, "name", "", "node name (default: host name)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7700", "remote address")
	fs.StringVar(&cfg.Gossip, "gossip", "127.0.0.1:7946", "gossip address")
	fs.StringVar(&cfg.DataDir, "data", "actord-data", "data dir")
	fs.StringVar(&cfg.DebugAddr, "debug", daemon.Off, "debug server address, or off")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses to join")
	members := fs.String("members", "", "comma-separated remote addresses of every daemon of the store (default: this one)")
	token := fs.String("token", "", "the store's token (default: DATA/kvstore.token, made if absent)")
	shards := fs.Int("shards", kvstore.DefaultShards, "number of shards of the store")
	replicas := fs.Int("replicas", kvstore.DefaultReplicas, "replicas of each shard (on as many daemons)")
	fs.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", "", "cluster key file (mode 0600 or 0400): only nodes holding the key can connect")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	cfg.Seeds = split(*seeds)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kvstore:", err)
		if errors.Is(err, daemon.ErrConfig) {
			return 2
		}
		return 1
	}
	st, err := kvstore.Install(ctx, d.Node(), kvstore.Config{DataDir: cfg.DataDir, Shards: *shards, Replicas: *replicas,
		Members: split(*members), Token: *token})
	if err != nil {
		fmt.Fprintln(stderr, "kvstore:", err)
		_ = d.Shutdown(context.Background())
		return 1
	}
	slog.Info("kvstore ready", "addr", d.Node().Addr(), "replicas", len(st.Directory().Local),
		"token_file", filepath.Join(cfg.DataDir, kvstore.TokenFile))
	select {
	case <-ctx.Done():
	case <-d.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err = errors.Join(st.Close(sctx), d.Shutdown(sctx))
	if err != nil {
		fmt.Fprintln(stderr, "kvstore:", err)
		return 1
	}
	return 0
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
