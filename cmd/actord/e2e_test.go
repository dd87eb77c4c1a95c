package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/examples/kvstore"
)

// e2eOp is one request of the e2e load.
type e2eOp struct {
	key     string
	val     string // of a put; "" for a get
	shard   int
	start   time.Time
	latency time.Duration
	err     error
}

// TestE2EKillDaemon is issue 6's end-to-end test: three daemons as
// processes (this test binary as `actord demo _node`), a short load, one
// daemon SIGKILLed under load. It checks that the surviving daemons notice
// (their log and their member count), that every request keeps succeeding
// within its timeout (each shard has a majority of its 3 replicas on the
// other two daemons), that the daemon restarted with the same name,
// addresses and data dir rejoins, that the client uses its replicas again
// and that they catch up, and that every acknowledged put is readable with
// its value afterwards.
func TestE2EKillDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemon processes")
	}
	const (
		opTimeout = 2 * time.Second
		margin    = time.Second
		workers   = 8
	)
	testStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The daemons are this binary, run as actord (see the init in demo_test.go).
	t.Setenv("ACTORD_TEST_AS_ACTORD", "1")
	dir := t.TempDir()

	dc := &demoCluster{}
	var sigkilled *child // stopped by the test, not to be stopped cleanly
	t.Cleanup(func() {
		if dc.stopNode != nil {
			dc.stopNode()
			_ = dc.sys.Shutdown(context.Background())
		}
		for _, r := range stopChildren(dc.children, 15*time.Second) {
			t.Logf("shutdown: %s", r)
			c := dc.children[slices.IndexFunc(dc.children, func(c *child) bool { return c.name == r.name })]
			if (r.killed || r.code != 0) && c != sigkilled {
				t.Errorf("daemon %s did not shut down cleanly\n--- its log (tail) ---\n%s", r.name, c.logs.String())
			}
		}
	})
	if err := startDemoCluster(ctx, dc, dir, demoOpts{shards: kvstore.DefaultShards}, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up after %v", time.Since(testStart).Round(time.Millisecond))
	a, b, c := dc.children[0], dc.children[1], dc.children[2]
	tab := dc.cl.Table()
	// The cluster is up once one daemon's view is whole; the others' views
	// converge through gossip a moment later.
	for _, d := range []*child{a, c} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			n, err := clusterMembers(ctx, d)
			if err == nil && n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("daemon %s sees %d members (%v) after 20 s, want 3", d.name, n, err)
			}
			time.Sleep(20 * time.Millisecond) // polling the daemon's metrics, not synchronisation
		}
	}

	// The load: fresh keys put, acknowledged ones read back, each request
	// bounded by opTimeout; every request is recorded with its outcome.
	var (
		mu    sync.Mutex
		ops   []e2eOp
		acked int
	)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	loadDone := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var mine []e2eOp // this worker's acknowledged puts
			for seq := 0; lctx.Err() == nil; seq++ {
				op := e2eOp{}
				if len(mine) == 0 || seq%2 == 0 {
					op.key = fmt.Sprintf("e2e-%02d-%06d", w, seq)
					op.val = fmt.Sprintf("value of %s", op.key)
				} else {
					op.key = mine[(seq*7919)%len(mine)].key
				}
				op.shard = kvstore.ShardOf(op.key, tab.Shards)
				rctx, rcancel := context.WithTimeout(context.Background(), opTimeout)
				op.start = time.Now()
				if op.val != "" {
					op.err = dc.cl.Put(rctx, op.key, []byte(op.val))
				} else {
					var got []byte
					var ok bool
					got, ok, op.err = dc.cl.Get(rctx, op.key)
					if op.err == nil && (!ok || string(got) != mine[(seq*7919)%len(mine)].val) {
						op.err = fmt.Errorf("read of acknowledged %s: got %q (present %v)", op.key, got, ok)
					}
				}
				op.latency = time.Since(op.start)
				rcancel()
				if op.val != "" && op.err == nil {
					mine = append(mine, op)
				}
				mu.Lock()
				ops = append(ops, op)
				if op.val != "" && op.err == nil {
					acked++
				}
				mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(loadDone) }()
	defer func() { // on an early failure: stop the load before the cluster
		lcancel()
		select {
		case <-loadDone:
		case <-time.After(opTimeout + margin):
		}
	}()
	snapshot := func() []e2eOp {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ops)
	}
	// count counts the requests since since matching f.
	count := func(since time.Time, f func(e2eOp) bool) int {
		n := 0
		for _, op := range snapshot() {
			if !op.start.Before(since) && f(op) {
				n++
			}
		}
		return n
	}

	// 1. Load until some puts are acknowledged.
	waitFor(ctx, t, "acknowledged puts", 15*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return acked >= 200, fmt.Sprintf("%d so far", acked)
	})

	// 2. SIGKILL b under load.
	killedAt := time.Now()
	sigkilled = b
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	mu.Lock()
	ackedAtKill := acked
	mu.Unlock()
	t.Logf("b (pid %d) SIGKILLed at %v, with %d puts acknowledged", b.info.PID, killedAt.Sub(testStart).Round(time.Millisecond), ackedAtKill)

	// 3. Membership notices: a and c log b's failure and count 2 members.
	for _, d := range []*child{a, c} {
		waitFor(ctx, t, "daemon "+d.name+" to notice b's failure", 15*time.Second, func() (bool, string) {
			if !slices.ContainsFunc(strings.Split(d.logs.String(), "\n"), func(l string) bool {
				return strings.Contains(l, `msg="cluster: member fail"`) && strings.Contains(l, " peer=b ")
			}) {
				return false, "no log record yet\n" + d.logs.String()
			}
			n, err := clusterMembers(ctx, d)
			return err == nil && n == 2, fmt.Sprintf("members %d (%v)", n, err)
		})
		t.Logf("daemon %s noticed b's failure %v after the kill", d.name, time.Since(killedAt).Round(time.Millisecond))
	}
	noticedAt := time.Now()

	// 4. The load goes on while b is down, and succeeds: every shard has
	// 2 of its 3 replicas on a and c.
	waitFor(ctx, t, "requests while b is down", 15*time.Second, func() (bool, string) {
		n := count(noticedAt, func(op e2eOp) bool { return op.err == nil })
		return n >= 50, fmt.Sprintf("%d succeeded since noticed", n)
	})
	lcancel()
	select {
	case <-loadDone:
	case <-time.After(opTimeout + margin):
		t.Fatalf("load workers still blocked %v after the load ended: a request hangs past its %v timeout", opTimeout+margin, opTimeout)
	}
	all := snapshot()
	ackedVals := map[string]string{}
	okAfter := 0
	var maxAll time.Duration
	for _, op := range all {
		maxAll = max(maxAll, op.latency)
		if op.err != nil {
			t.Errorf("request to %s (shard %d) failed with a daemon of three down: %v", op.key, op.shard, op.err)
			continue
		}
		if op.val != "" {
			ackedVals[op.key] = op.val
		}
		if op.start.After(killedAt) {
			okAfter++
		}
	}
	t.Logf("load: %d requests, %d puts acknowledged, %d succeeded after the kill; slowest request %v",
		len(all), len(ackedVals), okAfter, maxAll.Round(time.Millisecond))
	if maxAll > opTimeout+margin {
		t.Errorf("a request took %v, more than its %v timeout + %v", maxAll, opTimeout, margin)
	}

	// 5. Restart b: same name, remote and gossip addresses, data dir.
	args := slices.Clone(b.cmd.Args[1:])
	i := slices.Index(args, "--gossip")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("b's arguments lack --gossip: %q", args)
	}
	args[i+1] = b.info.GossipAddr
	restartedAt := time.Now()
	nb, err := startChild("b", b.cmd.Path, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.children[1] = nb
	if err := nb.ready(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	readyAt := time.Now()
	t.Logf("b restarted: ready line %v after the start", readyAt.Sub(restartedAt).Round(time.Millisecond))
	// The old client refreshes its stale refs of b's replicas once its
	// node has redialed b: its writes then reach b again.
	probe := "probe-after-restart"
	id := kvstore.ShardOf(probe, tab.Shards)
	j := slices.Index(tab.Hosts(id), b.info.Addr)
	waitFor(ctx, t, "the old client to use b's replicas again", 20*time.Second, func() (bool, string) {
		pctx, pcancel := context.WithTimeout(ctx, opTimeout)
		err := dc.cl.Put(pctx, probe, []byte("x"))
		pcancel()
		st := dc.cl.Stats(id)[j] // a refreshed ref is a new quorum node: new statistics
		return err == nil && st.Replies > 0 && !st.Failing, fmt.Sprintf("put: %v; b's replica: %+v", err, st)
	})
	t.Logf("the old client uses the restarted b's replicas %v after b's ready line", time.Since(readyAt).Round(time.Millisecond))
	if nb.info.Addr != b.info.Addr || nb.info.GossipAddr != b.info.GossipAddr {
		t.Fatalf("restarted b on %s (gossip %s), want %s (gossip %s)", nb.info.Addr, nb.info.GossipAddr, b.info.Addr, b.info.GossipAddr)
	}
	for _, d := range []*child{a, c, nb} {
		waitFor(ctx, t, "daemon "+d.name+" to see b back", 20*time.Second, func() (bool, string) {
			n, err := clusterMembers(ctx, d)
			return err == nil && n == 3, fmt.Sprintf("members %d (%v)", n, err)
		})
	}
	t.Logf("b rejoined: every daemon counts 3 members %v after the restart", time.Since(restartedAt).Round(time.Millisecond))

	// 6. A fresh client reaches every replica.
	waitFor(ctx, t, "a client to reach every replica", 20*time.Second, func() (bool, string) {
		dctx, dcancel := context.WithTimeout(ctx, opTimeout)
		defer dcancel()
		cl, err := kvstore.Dial(dctx, dc.node, a.info.Addr, dc.token, opTimeout)
		if err != nil {
			return false, err.Error()
		}
		defer cl.Close(context.Background())
		for id, es := range cl.Table().Missing {
			for j, e := range es {
				if e != nil {
					return false, fmt.Sprintf("shard %d replica %d: %v", id, j, e)
				}
			}
		}
		return true, ""
	})
	t.Logf("every replica reachable %v after the restart", time.Since(restartedAt).Round(time.Millisecond))

	// 7. Every acknowledged put is there with its value, and on b's own
	// replicas once they have caught up.
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	lost, errs := readBack(rctx, dc.cl, ackedVals, 16)
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed, e.g. %v", len(errs), len(ackedVals), errs[0])
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged puts LOST, e.g. %s", len(lost), len(ackedVals), lost[0])
	}
	waitFor(ctx, t, "b's replicas to catch up", 2*kvstore.CatchUpAgain+10*time.Second, func() (bool, string) {
		n, err := missingOn(ctx, dc, nb, ackedVals)
		return err == nil && n == 0, fmt.Sprintf("%d missing (%v)", n, err)
	})
	t.Logf("all %d acknowledged puts read back, and held by b's own replicas; test body took %v", len(ackedVals), time.Since(testStart).Round(time.Millisecond))
}

// waitFor polls cond every 50 ms until it holds; it fails the test after
// timeout or when ctx ends, with cond's last explanation.
func waitFor(ctx context.Context, t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("waiting for %s: not within %v: %s", what, timeout, why)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v: %s", what, ctx.Err(), why)
		}
	}
}

// clusterMembers returns the actord_cluster_members gauge of daemon d: the
// live members it sees, itself included (from /metrics on its debug server).
func clusterMembers(ctx context.Context, d *child) (int, error) {
	tok, err := os.ReadFile(d.info.TokenFile)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+d.info.DebugAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "actord_cluster_members "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, errors.New("/metrics lacks actord_cluster_members")
}
