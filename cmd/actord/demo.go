package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/examples/kvstore"
	"github.com/actord/actord/remote"
)

func init() {
	commands["demo"] = command{run: demoMain, summary: "a local 3-daemon cluster running the kvstore: load, a shard crash, the debugger, shutdown (--bench: load generator)"}
}

// demoOpts are the flags of `actord demo`.
type demoOpts struct {
	duration time.Duration // of the load
	workers  int
	bench    bool
	cell     time.Duration // of a bench measurement
	shards   int
	keep     bool // keep the data dirs
}

const demoNodes = 3

func demoMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "_node" {
		return demoNode(args[1:], stdout, stderr)
	}
	var o demoOpts
	fs := flag.NewFlagSet("actord demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "how long the load runs")
	fs.IntVar(&o.workers, "clients", 32, "concurrent clients of the load")
	fs.BoolVar(&o.bench, "bench", false, "instead of the demo, measure get and put throughput and latency at 1, 16 and 256 clients and print a markdown table")
	fs.DurationVar(&o.cell, "cell", 3*time.Second, "with --bench: how long each measurement runs")
	fs.IntVar(&o.shards, "shards", kvstore.DefaultShards, "shards of the store")
	fs.BoolVar(&o.keep, "keep", false, "keep the daemons' data dirs (their path is printed)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: actord demo [flags]\n\nStarts three daemons on 127.0.0.1 (this program, as separate processes), deploys the\nkvstore example across them, runs a load, crashes a shard, checks that no acknowledged\nwrite was lost, shows the debugger's view of a daemon and shuts everything down.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 || o.duration <= 0 || o.workers <= 0 || o.cell <= 0 || o.shards < demoNodes {
		fmt.Fprintln(stderr, "actord demo: bad arguments (see actord demo -h)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "\nactord demo: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// demoCluster is the three daemons and the demo's client.
type demoCluster struct {
	children []*child
	token    string
	sys      *actor.System
	node     *remote.Node
	stopNode func()
	cl       *kvstore.Client
}

func runDemo(ctx context.Context, o demoOpts, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	p := &progress{w: stdout, tty: isTerminal(stdout)}
	dir, err := os.MkdirTemp("", "actord-demo-")
	if err != nil {
		return err
	}
	dc := &demoCluster{}
	defer func() {
		p.end()
		if dc.stopNode != nil {
			dc.stopNode()
			_ = dc.sys.Shutdown(context.Background())
		}
		if len(dc.children) > 0 {
			fmt.Fprintln(stdout, "\n== shutdown: SIGTERM to each daemon")
			for _, r := range stopChildren(dc.children, 15*time.Second) {
				fmt.Fprintln(stdout, "  "+r.String())
				if (r.killed || r.code != 0) && err == nil {
					c := dc.children[slices.IndexFunc(dc.children, func(c *child) bool { return c.name == r.name })]
					err = fmt.Errorf("daemon %s did not shut down cleanly\n--- its log (tail) ---\n%s", r.name, c.logs.String())
				}
			}
		}
		if o.keep {
			fmt.Fprintln(stdout, "data kept in", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
		if err == nil {
			fmt.Fprintf(stdout, "\ndone in %v: everything shut down cleanly.\n", time.Since(start).Round(100*time.Millisecond))
		}
	}()
	if err := startDemoCluster(ctx, dc, dir, o, stdout); err != nil {
		return err
	}
	if o.bench {
		return runBench(dc, o, stdout)
	}

	// The shard to crash: the first one that b hosts.
	tab := dc.cl.Table()
	b := dc.children[1]
	victim := slices.Index(kvstore.Placement(tab.Shards, tab.Members), b.info.Addr)
	fmt.Fprintf(stdout, "\n== load: %d clients, half puts of new keys (each acknowledged only once durable), half gets of acknowledged keys, for %v\n", o.workers, o.duration)
	fmt.Fprintf(stdout, "   shard-%03d on daemon %s will be crashed half-way through\n", victim, b.name)
	rec := &recorder{}
	lctx, lcancel := context.WithTimeout(ctx, o.duration)
	defer lcancel()
	var crashReport []string
	crashErr := make(chan error, 1)
	go func() { // the crash, half-way
		select {
		case <-time.After(o.duration / 2):
		case <-lctx.Done():
			crashErr <- errors.New("the load ended before the crash")
			return
		}
		lines, err := crashShard(lctx, dc, victim, b.name)
		crashReport = lines
		crashErr <- err
	}()
	loadDone := make(chan loadResult, 1)
	loadStart := time.Now()
	go func() { loadDone <- runLoad(lctx, dc.cl, o.workers, 3*time.Second, rec) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := loadStart
	var res loadResult
	var cerr error
	crashed := false
loop:
	for {
		select {
		case now := <-tick.C:
			p.update(progressLine(rec.take(now.Sub(loadStart), now.Sub(last))))
			last = now
		case cerr = <-crashErr:
			crashed = true
			for _, l := range crashReport {
				p.println(l)
			}
		case res = <-loadDone:
			break loop
		}
	}
	if now := time.Now(); now.Sub(last) >= 250*time.Millisecond { // the tail of the last second
		p.update(progressLine(rec.take(now.Sub(loadStart), now.Sub(last))))
	}
	p.end()
	if !crashed {
		cerr = <-crashErr
		for _, l := range crashReport {
			fmt.Fprintln(stdout, l)
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if cerr != nil {
		return fmt.Errorf("crash of shard-%03d: %w", victim, cerr)
	}
	took := time.Since(loadStart)
	fmt.Fprintf(stdout, "  load: %d requests in %v (%.0f/s), %d puts acknowledged, %d requests failed or timed out (%d of them puts queued in the crashed shard, failed at once as not applied; the outcome of the other failed writes is unknown, so they are not checked)\n",
		res.ops, took.Round(time.Millisecond), float64(res.ops)/took.Seconds(), len(res.acked), res.failed, res.notApplied)
	if len(res.acked) == 0 {
		return errors.New("no put was acknowledged")
	}
	if len(res.wrongReads) > 0 {
		return fmt.Errorf("%d reads did not see an acknowledged put, e.g. %s", len(res.wrongReads), res.wrongReads[0])
	}

	fmt.Fprintf(stdout, "\n== read back every acknowledged put (%d keys) through the cluster\n", len(res.acked))
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	lost, errs := readBack(rctx, dc.cl, res.acked, 64)
	if len(errs) > 0 {
		return fmt.Errorf("%d reads failed, e.g. %v", len(errs), errs[0])
	}
	if len(lost) > 0 {
		return fmt.Errorf("%d acknowledged writes LOST, e.g. %s", len(lost), lost[0])
	}
	inVictim := 0
	for k := range res.acked {
		if kvstore.ShardOf(k, tab.Shards) == victim {
			inVictim++
		}
	}
	fmt.Fprintf(stdout, "  all %d present with their acknowledged value (%d of them in the crashed shard-%03d): no acknowledged write lost\n", len(res.acked), inVictim, victim)

	fmt.Fprintf(stdout, "\n== the debugger's view of daemon %s (run in-process: the same code as these commands)\n", b.name)
	for i, sub := range []string{"tree", "loops"} {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		args := []string{sub, "--addr", b.info.DebugAddr, "--token-file", b.info.TokenFile}
		fmt.Fprintf(stdout, "$ actord debug %s\n", strings.Join(args, " "))
		if code := debugMain(args, stdout, stderr); code != 0 {
			return fmt.Errorf("actord debug %s failed (exit %d)", sub, code)
		}
	}
	return nil
}

// crashShard crashes shard id with CrashShard and measures how long until
// it serves again (a Get answered by the restarted instance, which first
// reloads its data from disk).
func crashShard(ctx context.Context, dc *demoCluster, id int, daemon string) ([]string, error) {
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("probe-%d", i); kvstore.ShardOf(k, dc.cl.Table().Shards) == id {
			key = k
		}
	}
	t0 := time.Now()
	err := dc.cl.CrashShard(ctx, id, dc.token)
	if err == nil {
		return nil, errors.New("the shard did not crash")
	}
	if !strings.Contains(err.Error(), "crash") {
		return nil, err
	}
	lines := []string{fmt.Sprintf("  !! crashed shard-%03d on daemon %s: %v", id, daemon, firstLineOf(err.Error()))}
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _, gerr := dc.cl.Get(gctx, key)
		cancel()
		if gerr == nil {
			break
		}
		if ctx.Err() != nil {
			return lines, fmt.Errorf("shard-%03d did not serve again after the crash: %v", id, gerr)
		}
	}
	lines = append(lines, fmt.Sprintf("  !! the supervisor \"kvstore\" on %s restarted shard-%03d in place (same ref): it reloaded its data from bbolt and served again %v after the crash",
		daemon, id, time.Since(t0).Round(10*time.Microsecond)))
	return lines, nil
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// startDemoCluster starts the three daemons and the demo's client node.
func startDemoCluster(ctx context.Context, dc *demoCluster, dir string, o demoOpts, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	dc.token = hex.EncodeToString(raw[:])
	// The cluster key: every daemon and the demo's client hold it, so the
	// transport between them is authenticated (and gossip encrypted).
	keyFile, err := writeClusterKey(filepath.Join(dir, "cluster.key"))
	if err != nil {
		return err
	}
	clusterKey, err := remote.ReadClusterKey(keyFile)
	if err != nil {
		return err
	}
	listen, err := freePorts(demoNodes)
	if err != nil {
		return err
	}
	names := []string{"a", "b", "c"}
	fmt.Fprintf(stdout, "== starting %d daemons on 127.0.0.1 (%s, as separate processes), data in %s\n", demoNodes, exe, dir)
	nodeArgs := func(i int, seeds string) []string {
		return []string{"demo", "_node", "--name", names[i], "--listen", listen[i], "--gossip", "127.0.0.1:0",
			"--data-dir", fmt.Sprintf("%s/%s", dir, names[i]), "--seeds", seeds,
			"--members", strings.Join(listen, ","), "--token", dc.token, "--shards", strconv.Itoa(o.shards),
			"--cluster-key-file", keyFile, "--watch-stdin"}
	}
	// a first: the others join its gossip address, which its ready line gives.
	startOne := func(i int, seeds string) error {
		c, err := startChild(names[i], exe, nodeArgs(i, seeds), nil)
		if err != nil {
			return err
		}
		dc.children = append(dc.children, c)
		return nil
	}
	if err := startOne(0, ""); err != nil {
		return err
	}
	if err := dc.children[0].ready(30 * time.Second); err != nil {
		return err
	}
	for i := 1; i < demoNodes; i++ {
		if err := startOne(i, dc.children[0].info.GossipAddr); err != nil {
			return err
		}
	}
	for _, c := range dc.children[1:] {
		if err := c.ready(30 * time.Second); err != nil {
			return err
		}
	}
	for _, c := range dc.children {
		fmt.Fprintf(stdout, "  %s  pid %-7d actors %s  gossip %s  debug %s  loops %d\n", c.name, c.info.PID, c.info.Addr, c.info.GossipAddr, c.info.DebugAddr, c.info.Loops)
	}
	fmt.Fprintf(stdout, "  transport: Noise, authenticated with the cluster key in %s (gossip encrypted with a key derived from it)\n", keyFile)
	for _, c := range dc.children {
		fmt.Fprintf(stdout, "  %s  public key %s\n", c.name, c.info.PublicKey)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dc.sys = actor.NewSystem(actor.Config{Logger: quiet})
	dc.node = remote.New(dc.sys, remote.Config{Name: fmt.Sprintf("demo-client-%d", os.Getpid()), Listen: "127.0.0.1:0",
		ClusterKey: clusterKey, Logger: quiet})
	stopNode, err := dc.node.Start(ctx)
	if err != nil {
		_ = dc.sys.Shutdown(context.Background())
		return fmt.Errorf("client node: %w", err)
	}
	dc.stopNode = stopNode
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := kvstore.Dial(dctx, dc.node, dc.children[0].info.Addr, dc.token, 3*time.Second)
	if err != nil {
		return err
	}
	dc.cl = cl
	tab := cl.Table()
	for id, e := range tab.Missing {
		if e != nil {
			return fmt.Errorf("shard %d: %w", id, e)
		}
	}
	fmt.Fprintf(stdout, "\n== kvstore deployed: %d shards, one bbolt file each, under a supervisor \"kvstore\" on each daemon\n", tab.Shards)
	owners := kvstore.Placement(tab.Shards, tab.Members)
	for _, c := range dc.children {
		var ids []string
		for id, a := range owners {
			if a == c.info.Addr {
				ids = append(ids, strconv.Itoa(id))
			}
		}
		fmt.Fprintf(stdout, "  %s hosts shards %s\n", c.name, strings.Join(ids, ","))
	}
	fmt.Fprintf(stdout, "  client: a remote node in this process (%s), holding the cluster key, dialed %s with the store's token\n", dc.node.Addr(), dc.children[0].info.Addr)
	return nil
}

// writeClusterKey writes a new cluster key to path (mode 0600, readable by
// its owner only as remote.ReadClusterKey demands): 32 random bytes, in hex.
func writeClusterKey(path string) (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cluster key: %w", err)
	}
	return path, nil
}

// runBench is `actord demo --bench`: the load generator.
func runBench(dc *demoCluster, o demoOpts, stdout io.Writer) error {
	keys := make([]string, 4096)
	val := make([]byte, 100)
	for i := range val {
		val[i] = 'x'
	}
	fmt.Fprintf(stdout, "\n== writing %d keys for the gets\n", len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-key-%05d", i)
	}
	if lost, errs := putAll(dc.cl, keys, val); len(errs) > 0 || len(lost) > 0 {
		return fmt.Errorf("populating: %d errors", len(errs))
	}
	var cells []benchCell
	for _, n := range []int{1, 16, 256} {
		for _, op := range []string{"get", "put"} {
			c := benchRun(dc.cl, op, n, o.cell, keys, val)
			fmt.Fprintf(stdout, "  %s x %d clients: %.0f ops/s, p50 %s, p99 %s, %d errors\n", op, n, c.rate(), fmtLatency(c.p50), fmtLatency(c.p99), c.errors)
			cells = append(cells, c)
		}
	}
	fmt.Fprintf(stdout, "\n%d daemons on 127.0.0.1, %d shards, 100-byte values, %v per cell, one client process (GOMAXPROCS %d, %d CPUs):\n\n",
		demoNodes, dc.cl.Table().Shards, o.cell, runtime.GOMAXPROCS(0), runtime.NumCPU())
	benchTable(stdout, cells)
	return nil
}

// putAll writes keys with 64 workers.
func putAll(cl *kvstore.Client, keys []string, val []byte) (lost []string, errs []error) {
	acked := make(map[string]string, len(keys))
	for _, k := range keys {
		acked[k] = string(val)
	}
	ch := make(chan string)
	done := make(chan []error)
	for range 64 {
		go func() {
			var es []error
			for k := range ch {
				if err := cl.Put(context.Background(), k, val); err != nil {
					es = append(es, err)
				}
			}
			done <- es
		}()
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	for range 64 {
		errs = append(errs, <-done...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return readBack(context.Background(), cl, acked, 64)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
