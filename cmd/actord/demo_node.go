package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/actord/actord/cluster"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/examples/kvstore"
)

// demoNode is `actord demo _node`, one daemon of the demo's cluster (not
// meant to be run by hand): it starts a daemon (as `actord run` does),
// installs the kvstore's replicas on it, prints the ready line once both are
// up, and on SIGTERM or SIGINT closes the store, shuts the daemon down and
// exits 0; with --watch-stdin, also when its stdin ends (the demo died).
func demoNode(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("actord demo _node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg dmn.Config
	fs.StringVar(&cfg.Name, "name", "", "node name")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "remote address")
	fs.StringVar(&cfg.Gossip, "gossip", "127.0.0.1:0", "gossip address")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data dir")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "127.0.0.1:0", "debug server address")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops")
	fs.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", "", "file holding the cluster key (see actord run)")
	seeds := fs.String("seeds", "", "gossip seeds, comma-separated")
	members := fs.String("members", "", "remote addresses of the store's daemons, comma-separated")
	token := fs.String("token", "", "the store's token")
	shards := fs.Int("shards", kvstore.DefaultShards, "shards of the store")
	replicas := fs.Int("replicas", kvstore.DefaultReplicas, "replicas of each shard")
	watchStdin := fs.Bool("watch-stdin", false, "shut down when stdin ends (the demo holds it open while it runs)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || cfg.DataDir == "" || *token == "" {
		fmt.Fprintln(stderr, "actord demo _node: bad arguments (needs --data-dir and --token)")
		return 2
	}
	cfg.Seeds = splitList(*seeds)
	cfg.Cluster = cluster.Config{Profile: cluster.ProfileLocal}
	cfg.ShutdownTimeout = 5 * time.Second
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *watchStdin {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	d, err := dmn.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "actord demo _node:", err)
		return 1
	}
	st, err := kvstore.Install(ctx, d.Node(), kvstore.Config{DataDir: cfg.DataDir, Shards: *shards, Replicas: *replicas,
		Members: splitList(*members), Token: *token, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "actord demo _node:", err)
		_ = d.Shutdown(context.Background())
		return 1
	}
	line, _ := json.Marshal(d.Info())
	fmt.Fprintf(stdout, "%s\n", line)
	select {
	case <-ctx.Done():
	case <-d.Done():
		fmt.Fprintln(stderr, "actord demo _node: the daemon stopped by itself:", d.Err())
		_ = st.Close(context.Background())
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(st.Close(sctx), d.Shutdown(sctx)); err != nil {
		fmt.Fprintln(stderr, "actord demo _node: shutdown:", err)
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
