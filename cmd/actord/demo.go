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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/daemon/cli"
	"github.com/actord/actord/examples/kvstore"
	"github.com/actord/actord/remote"
)

func init() {
	commands["demo"] = command{run: demoMain, summary: "a local 3-daemon cluster running the replicated kvstore: load, a replica crash, a daemon killed and restarted, the debugger, shutdown (--bench: load generator)"}
}

// demoOpts are the flags of `actord demo`.
type demoOpts struct {
	duration time.Duration // of the load
	workers  int
	bench    bool
	cell     time.Duration // of a bench measurement
	shards   int
	replicas int
	keep     bool   // keep the data dirs
	profile  string // with bench: write CPU profiles of the 256-client cells there
	levels   []int  // with bench: the numbers of clients measured
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
	fs.IntVar(&o.replicas, "replicas", kvstore.DefaultReplicas, "replicas of each shard (at most 3: one per daemon)")
	levels := fs.String("bench-clients", "1,16,256", "with --bench: the numbers of concurrent clients to measure, comma-separated")
	fs.StringVar(&o.profile, "profile", "", "with --bench: write CPU profiles of the client and of each daemon during the cells of the last --bench-clients to this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the daemons' data dirs (their path is printed)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: actord demo [flags]\n\nStarts three daemons on 127.0.0.1 (this program, as separate processes), deploys the\nreplicated kvstore example across them, runs a load, crashes a replica, SIGKILLs a whole\ndaemon and starts it again, checks that no acknowledged write was lost and that the\nrestarted daemon caught up, shows the debugger's view of a daemon and shuts everything down.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, f := range splitList(*levels) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100000 {
			fmt.Fprintln(stderr, "actord demo: bad --bench-clients (numbers from 1 to 100000, comma-separated)")
			return 2
		}
		o.levels = append(o.levels, n)
	}
	if fs.NArg() != 0 || len(o.levels) == 0 || o.duration <= 0 || o.workers <= 0 || o.cell <= 0 || o.shards < demoNodes || o.replicas < 1 || o.replicas > demoNodes {
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

	tab := dc.cl.Table()
	b, c := dc.children[1], dc.children[2]
	// The replica to crash: b's replica of shard 0.
	const victim = 0
	replica := slices.Index(tab.Hosts(victim), b.info.Addr)
	crashAt, killAt, restartAt := o.duration/5, o.duration*7/20, o.duration*13/20
	fmt.Fprintf(stdout, "\n== load: %d clients, half puts of new keys (each acknowledged once durable on a majority of its shard's %d replicas), half gets of acknowledged keys, for %v\n",
		o.workers, len(tab.Hosts(victim)), o.duration)
	fmt.Fprintf(stdout, "   at %v the replica of shard-%03d on daemon %s crashes; at %v daemon %s is SIGKILLed (the whole process); at %v it is started again\n",
		crashAt.Round(100*time.Millisecond), victim, b.name, killAt.Round(100*time.Millisecond), c.name, restartAt.Round(100*time.Millisecond))
	down := &downWindow{start: time.Now()}
	rec := &recorder{during: down.contains}
	lctx, lcancel := context.WithTimeout(ctx, o.duration)
	defer lcancel()
	events := make(chan string, 16)
	faults := make(chan error, 1)
	go func() { faults <- runFaults(lctx, dc, events, down, victim, replica, crashAt, killAt, restartAt) }()
	loadDone := make(chan loadResult, 1)
	loadStart := down.start
	go func() { loadDone <- runLoad(lctx, dc.cl, o.workers, 3*time.Second, rec) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := loadStart
	var res loadResult
loop:
	for {
		select {
		case now := <-tick.C:
			p.update(progressLine(rec.take(now.Sub(loadStart), now.Sub(last))))
			last = now
		case l := <-events:
			p.println(l)
		case res = <-loadDone:
			break loop
		}
	}
	if now := time.Now(); now.Sub(last) >= 250*time.Millisecond { // the tail of the last second
		p.update(progressLine(rec.take(now.Sub(loadStart), now.Sub(last))))
	}
	p.end()
	ferr := <-faults // the restart may outlast the load
	for len(events) > 0 {
		fmt.Fprintln(stdout, <-events)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if ferr != nil {
		return ferr
	}
	took := time.Since(loadStart)
	fmt.Fprintf(stdout, "  load: %d requests in %v (%.0f/s), %d puts acknowledged, %d requests failed or timed out (%d of them puts known not applied; the outcome of the other failed writes is unknown, so they are not checked)\n",
		res.ops, took.Round(time.Millisecond), float64(res.ops)/took.Seconds(), len(res.acked), res.failed, res.notApplied)
	fmt.Fprintf(stdout, "  while daemon %s was down (%v): %d requests, %d failed: reads and writes went on with 2 replicas of 3\n",
		c.name, down.length().Round(time.Millisecond), res.opsDown, res.failedDown)
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
	fmt.Fprintf(stdout, "  all %d present with their acknowledged value: no acknowledged write lost\n", len(res.acked))
	if err := checkCaughtUp(ctx, dc, dc.children[2], res.acked, stdout); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\n== the debugger's view of daemon %s (run in-process: the same code as these commands)\n", b.name)
	for i, sub := range []string{"tree", "loops"} {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		args := []string{sub, "--addr", b.info.DebugAddr, "--token-file", b.info.TokenFile}
		fmt.Fprintf(stdout, "$ actord debug %s\n", strings.Join(args, " "))
		if code := cli.Run(append([]string{"debug"}, args...), stdout, stderr, nil); code != 0 {
			return fmt.Errorf("actord debug %s failed (exit %d)", sub, code)
		}
	}
	return nil
}

// downWindow is when the killed daemon was down, for the load's counts.
type downWindow struct {
	start    time.Time    // of the load
	from, to atomic.Int64 // ns since start; to is 0 while down
}

func (w *downWindow) contains(t time.Time) bool {
	from, to := w.from.Load(), w.to.Load()
	d := int64(t.Sub(w.start))
	return from > 0 && d >= from && (to == 0 || d < to)
}

func (w *downWindow) length() time.Duration {
	from, to := w.from.Load(), w.to.Load()
	if from == 0 || to == 0 {
		return 0
	}
	return time.Duration(to - from)
}

// runFaults injects the demo's faults at their times: the crash of a
// replica, the SIGKILL of daemon c, its restart. It reports on events.
func runFaults(ctx context.Context, dc *demoCluster, events chan<- string, down *downWindow, shard, replica int, crashAt, killAt, restartAt time.Duration) error {
	start := time.Now()
	sleepUntil := func(d time.Duration) error {
		t := time.NewTimer(time.Until(start.Add(d)))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return errors.New("the load ended before the faults")
		}
	}
	b, c := dc.children[1], dc.children[2]
	if err := sleepUntil(crashAt); err != nil {
		return err
	}
	lines, err := crashShard(ctx, dc, shard, replica, b.name)
	for _, l := range lines {
		events <- l
	}
	if err != nil {
		return fmt.Errorf("crash of shard-%03d's replica on %s: %w", shard, b.name, err)
	}
	if err := sleepUntil(killAt); err != nil {
		return err
	}
	if err := c.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill daemon %s: %w", c.name, err)
	}
	<-c.done
	killed := time.Now()
	down.from.Store(int64(killed.Sub(down.start)))
	events <- fmt.Sprintf("  !! SIGKILLed daemon %s (pid %d): its replicas of every shard are gone; each shard goes on with its 2 other replicas", c.name, c.info.PID)
	if err := sleepUntil(restartAt); err != nil {
		return err
	}
	nc, took, err := restartChild(dc, 2)
	down.to.Store(int64(time.Since(down.start)))
	if err != nil {
		return fmt.Errorf("restart daemon %s: %w", c.name, err)
	}
	events <- fmt.Sprintf("  !! started daemon %s again (pid %d, same addresses and data dir) %v after the kill: ready in %v; it reopened its replicas and catches up from the others",
		nc.name, nc.info.PID, time.Since(killed).Round(time.Millisecond), took.Round(time.Millisecond))
	return nil
}

// restartChild starts daemon i again with its arguments (the same name,
// data dir and remote address) and the gossip address it had, and waits
// for its ready line.
func restartChild(dc *demoCluster, i int) (*child, time.Duration, error) {
	old := dc.children[i]
	args := slices.Clone(old.cmd.Args[1:])
	if j := slices.Index(args, "--gossip"); j >= 0 && j+1 < len(args) {
		args[j+1] = old.info.GossipAddr
	}
	t0 := time.Now()
	nc, err := startChild(old.name, old.cmd.Path, args, nil)
	if err != nil {
		return nil, 0, err
	}
	dc.children[i] = nc
	if err := nc.ready(30 * time.Second); err != nil {
		return nil, 0, err
	}
	return nc, time.Since(t0), nil
}

// checkCaughtUp reads every acknowledged put of the restarted daemon d
// from d's own replicas (a client would read a majority, which need not
// include d): the writes made while it was down reach it through its
// catch-up from the other replicas.
func checkCaughtUp(ctx context.Context, dc *demoCluster, d *child, acked map[string]string, stdout io.Writer) error {
	fmt.Fprintf(stdout, "\n== daemon %s's own replicas, after its restart and catch-up\n", d.name)
	start := time.Now()
	deadline := start.Add(2*kvstore.CatchUpAgain + 10*time.Second)
	for {
		missing, err := missingOn(ctx, dc, d, acked)
		if err == nil && missing == 0 {
			fmt.Fprintf(stdout, "  daemon %s holds all %d acknowledged writes itself, those made while it was down included\n", d.name, len(acked))
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("reading daemon %s's replicas: %w", d.name, err)
			}
			return fmt.Errorf("daemon %s lacks %d of the %d acknowledged writes %v after its restart", d.name, missing, len(acked), time.Since(start).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond) // polling: the catch-up's second pass comes kvstore.CatchUpAgain after the restart
	}
}

// missingOn counts the acknowledged puts that d's replicas do not hold.
func missingOn(ctx context.Context, dc *demoCluster, d *child, acked map[string]string) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := kvstore.Dial(rctx, dc.node, d.info.Addr, dc.token, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer cl.Close(context.Background())
	tab := cl.Table()
	missing := 0
	for k, v := range acked {
		id := kvstore.ShardOf(k, tab.Shards)
		j := slices.Index(tab.Hosts(id), d.info.Addr)
		if j < 0 {
			continue
		}
		got, err := dc.sys.Ask(rctx, tab.Refs[id][j], kvstore.Get{K: k})
		if err != nil {
			return 0, err
		}
		if e, _ := got.(kvstore.Entry); string(e.V) != v {
			missing++
		}
	}
	return missing, nil
}

// crashShard crashes replica j of shard id with CrashShard and measures
// how long until it serves again (a Get to that replica answered by the
// restarted instance, which first reloads its data from disk).
func crashShard(ctx context.Context, dc *demoCluster, id, j int, daemon string) ([]string, error) {
	ref := dc.cl.Table().Refs[id][j]
	t0 := time.Now()
	err := dc.cl.CrashShard(ctx, id, j, dc.token)
	if err == nil {
		return nil, errors.New("the replica did not crash")
	}
	if !strings.Contains(err.Error(), "crash") {
		return nil, err
	}
	lines := []string{fmt.Sprintf("  !! crashed the replica of shard-%03d on daemon %s: %v", id, daemon, firstLineOf(err.Error()))}
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		_, gerr := dc.sys.Ask(gctx, ref, kvstore.Get{K: "probe"})
		cancel()
		if gerr == nil {
			break
		}
		if ctx.Err() != nil {
			return lines, fmt.Errorf("the replica of shard-%03d did not serve again after the crash: %v", id, gerr)
		}
	}
	lines = append(lines, fmt.Sprintf("  !! the supervisor \"kvstore\" on %s restarted it in place (same ref): it reloaded its data from bbolt and served again %v after the crash (the shard's other replicas served meanwhile)",
		daemon, time.Since(t0).Round(10*time.Microsecond)))
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
			"--members", strings.Join(listen, ","), "--token", dc.token, "--shards", strconv.Itoa(o.shards), "--replicas", strconv.Itoa(o.replicas),
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
	for id, es := range tab.Missing {
		for _, e := range es {
			if e != nil {
				return fmt.Errorf("shard %d: %w", id, e)
			}
		}
	}
	fmt.Fprintf(stdout, "\n== kvstore deployed: %d shards of %d replicas each (reads and writes are quorum calls to a majority of them); the replicas of a daemon share one bbolt file, under a supervisor \"kvstore\"\n",
		tab.Shards, tab.Replicas)
	hosts := kvstore.Placement(tab.Shards, tab.Replicas, tab.Members)
	for _, c := range dc.children {
		var ids []string
		for id, h := range hosts {
			if slices.Contains(h, c.info.Addr) {
				ids = append(ids, strconv.Itoa(id))
			}
		}
		fmt.Fprintf(stdout, "  %s hosts replicas of shards %s\n", c.name, strings.Join(ids, ","))
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
	for _, n := range o.levels {
		for _, op := range []string{"get", "put"} {
			var bp *benchProfile
			if o.profile != "" && n == o.levels[len(o.levels)-1] {
				var err error
				if bp, err = startProfile(dc, o.profile, op, o.cell); err != nil {
					return err
				}
			}
			c := benchRun(dc.cl, op, n, o.cell, keys, val)
			if bp != nil {
				if err := bp.stop(); err != nil {
					return err
				}
			}
			fmt.Fprintf(stdout, "  %s x %d clients: %.0f ops/s, p50 %s, p99 %s, %d errors\n", op, n, c.rate(), fmtLatency(c.p50), fmtLatency(c.p99), c.errors)
			cells = append(cells, c)
		}
	}
	tab := dc.cl.Table()
	fmt.Fprintf(stdout, "\n%d daemons on 127.0.0.1, %d shards of %d replicas, 100-byte values, %v per cell, one client process (GOMAXPROCS %d, %d CPUs):\n\n",
		demoNodes, tab.Shards, tab.Replicas, o.cell, runtime.GOMAXPROCS(0), runtime.NumCPU())
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
