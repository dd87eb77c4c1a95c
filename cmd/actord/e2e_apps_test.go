package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/daemon/cli"
	"github.com/actord/actord/debug"
)

// e2eWorker is the kind the application of TestE2EApplicationFailover is
// made of: an actor that answers its greeting.
type e2eWorker struct{ greeting string }

func (w e2eWorker) Receive(_ *actor.Context, msg any) (any, error) {
	return w.greeting + fmt.Sprint(msg), nil
}

type e2eWorkerArgs struct {
	Greeting string `msgpack:"greeting"`
}

// asActordWithApps makes this test binary an actord with the kind
// "e2e.worker" when run with ACTORD_TEST_AS_ACTORD=apps.
func init() {
	if os.Getenv("ACTORD_TEST_AS_ACTORD") == "apps" {
		os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr, dmn.Kinds{
			"e2e.worker": dmn.Kind(func(a e2eWorkerArgs) (actor.Factory, error) {
				return func() actor.Actor { return e2eWorker{greeting: a.Greeting} }, nil
			}),
		}))
	}
}

// e2eAppConfig is the config file of the daemons: all three are registry
// members, with short leases (a failover in about half a second).
const e2eAppConfig = `{
  "cluster_profile": "fast",
  "app_members": ["a", "b", "c"],
  "app_tick": "20ms", "app_election_ticks": 10, "app_lease": "400ms", "app_renew_every": "100ms", "app_margin": "60ms"
}`

// e2eAppSpec is the application: a root supervisor with three workers
// spread over the live daemons. It is deployed with `actord app deploy`
// once the three daemons know each other (deployed from the config file,
// it could start while one of them is still joining, and stay on two).
const e2eAppSpec = `{
  "name": "shop", "strategy": "one_for_one", "intensity": 10, "period": "10s",
  "children": [
    {"name": "w1", "kind": "e2e.worker", "args": {"greeting": "hello "}, "shutdown": "1s"},
    {"name": "w2", "kind": "e2e.worker", "args": {"greeting": "hello "}, "shutdown": "1s"},
    {"name": "w3", "kind": "e2e.worker", "args": {"greeting": "hello "}, "shutdown": "1s"}
  ]
}`

// appDaemon is one daemon process of the test, with its debug client.
type appDaemon struct {
	*child
	dbg     *debug.Client
	started time.Time
}

// actorsNamed counts the running actors named name on d.
func (d *appDaemon) actorsNamed(ctx context.Context, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := d.dbg.Actors(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range r.Actors {
		if a.Name == name && a.Status == "running" {
			n++
		}
	}
	return n, nil
}

// TestE2EApplicationFailover: three actord processes, all registry
// members, and an application deployed from their config file whose root
// supervisor runs on one daemon with its three children spread over all
// three. The daemon running the root is SIGKILLed: the root and three
// children run again on the two survivors (and none is left over from the
// old tree). It logs the time from the kill to that, and the time the
// survivors' membership took to declare the daemon failed.
func TestE2EApplicationFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemon processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t.Setenv("ACTORD_TEST_AS_ACTORD", "apps")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "actord.json")
	if err := os.WriteFile(cfgFile, []byte(e2eAppConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var ds []*appDaemon
	var killed *appDaemon
	t.Cleanup(func() {
		var cs []*child
		for _, d := range ds {
			cs = append(cs, d.child)
		}
		for _, r := range stopChildren(cs, 15*time.Second) {
			d := ds[slices.IndexFunc(ds, func(d *appDaemon) bool { return d.name == r.name })]
			if (r.killed || r.code != 0) && d != killed {
				t.Errorf("daemon %s did not shut down cleanly: %s\n--- its log (tail) ---\n%s", r.name, r, d.logs.String())
			}
		}
	})
	seed := ""
	for _, name := range []string{"a", "b", "c"} {
		args := []string{"run", "--config", cfgFile, "--name", name, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
			"--debug-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, name), "--loops", "2", "--log-level", "warn"}
		if seed != "" {
			args = append(args, "--seeds", seed)
		}
		c, err := startChild(name, os.Args[0], args, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := &appDaemon{child: c, started: time.Now()}
		ds = append(ds, d)
		if err := c.ready(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		if seed == "" {
			seed = c.info.GossipAddr
		}
		if d.dbg, err = debug.NewClient(c.info.DebugAddr, c.info.TokenFile); err != nil {
			t.Fatal(err)
		}
	}
	byName := map[string]*appDaemon{}
	clients := map[string]*client.Client{}
	for _, d := range ds {
		byName[d.name] = d
		capability, err := client.ReadCapabilityFile(d.info.CapabilityFile)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.Dial(ctx, capability, client.Options{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		clients[d.name] = cl
	}
	var last string // what the last check saw, for a failure's message
	// where returns the daemon the registry (as d's replica has applied it)
	// runs shop on, if its state is running.
	where := func(d *appDaemon) string {
		apps, err := clients[d.name].Apps(ctx)
		if err != nil || len(apps) != 1 || apps[0].Spec.Name != "shop" || apps[0].State != "running" {
			last = fmt.Sprintf("%s's registry: %+v, %v", d.name, apps, err)
			return ""
		}
		return apps[0].Node
	}
	// running reports whether shop's root runs on holder and three
	// workers run on the daemons of among, spread so that each has one
	// when there are three.
	running := func(holder string, among []*appDaemon) bool {
		total, each, ok := 0, true, true
		last = "registry: shop on " + holder + "; actors:"
		for _, d := range among {
			n, err := d.actorsNamed(ctx, "e2e.worker")
			roots, err2 := d.actorsNamed(ctx, "app/shop")
			last += fmt.Sprintf(" %s: %d workers, %d roots (%v, %v);", d.name, n, roots, err, err2)
			total += n
			each = each && n == 1
			ok = ok && err == nil && err2 == nil && (roots == 1) == (d.name == holder) && roots <= 1
		}
		return ok && total == 3 && (len(among) != 3 || each)
	}
	for _, d := range ds {
		pollFor(t, ctx, 20*time.Second, d.name+" knows the three daemons' gateways", func() bool {
			ms, err := clients[d.name].Members(ctx)
			last = fmt.Sprintf("%s's members: %+v, %v", d.name, ms, err)
			return err == nil && len(ms) == 3 && !slices.ContainsFunc(ms, func(m client.Member) bool { return m.Capability == "" })
		}, &last, ds)
	}
	specFile := filepath.Join(dir, "shop.json")
	if err := os.WriteFile(specFile, []byte(e2eAppSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"app", "deploy", specFile, "--capability-file", ds[1].info.CapabilityFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("actord app deploy: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	// One worker per daemon is where Spread puts them. A false failure
	// detection (the fast profile on a loaded machine) may move workers,
	// and nothing moves them back: then stop and start the application
	// (at most twice) to place them again.
	var holder string
	for attempt := 0; ; attempt++ {
		settled := time.Now().Add(10 * time.Second)
		if attempt == 2 {
			settled = time.Now().Add(30 * time.Second)
		}
		for time.Now().Before(settled) {
			if holder = where(ds[0]); holder != "" && running(holder, ds) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if holder != "" && running(holder, ds) {
			break
		}
		if attempt == 2 {
			pollFor(t, ctx, 0, "shop runs with its three children, one per daemon", func() bool { return false }, &last, ds)
		}
		t.Logf("not one worker per daemon within 10 s (%s): stopping and starting shop to place them again", last)
		for _, op := range []string{"stop", "start"} {
			var stdout, stderr strings.Builder
			if code := run([]string{"app", op, "shop", "--capability-file", ds[1].info.CapabilityFile}, &stdout, &stderr); code != 0 {
				t.Fatalf("actord app %s: exit %d: %s%s", op, code, stdout.String(), stderr.String())
			}
		}
	}
	t.Logf("shop's root runs on %s, its children on a, b and c", holder)

	killed = byName[holder]
	var survivors []*appDaemon
	for _, d := range ds {
		if d != killed {
			survivors = append(survivors, d)
		}
	}
	start := time.Now()
	if err := killed.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	// The phases, each the first poll that saw it: membership declared the
	// holder failed; the registry moved shop; shop's new root runs; the
	// old tree's workers on the survivors ended.
	var detected, moved, rooted, oldGone, failedOver time.Duration
	pollFor(t, ctx, 30*time.Second, "shop runs again on a survivor with its three children on the survivors", func() bool {
		if detected == 0 {
			ms, err := clients[survivors[0].name].Members(ctx)
			if err == nil && !slices.ContainsFunc(ms, func(m client.Member) bool { return m.Name == holder }) {
				detected = time.Since(start)
			}
		}
		if oldGone == 0 {
			n := 0
			for _, d := range survivors {
				w, err := d.actorsNamed(ctx, "e2e.worker")
				n += w
				if err != nil {
					n = -1
					break
				}
			}
			if n == 0 {
				oldGone = time.Since(start)
			}
		}
		h := where(survivors[0])
		if h == "" || h == holder {
			return false
		}
		if moved == 0 {
			moved = time.Since(start)
		}
		if rooted == 0 {
			if roots, err := byName[h].actorsNamed(ctx, "app/shop"); err == nil && roots == 1 {
				rooted = time.Since(start)
			}
		}
		if !running(h, survivors) {
			return false
		}
		failedOver = time.Since(start)
		return true
	}, &last, survivors)
	ms := func(d time.Duration) any {
		if d == 0 {
			return "not seen apart"
		}
		return d.Round(time.Millisecond)
	}
	t.Logf("phases after the kill: registry moved shop %v, new root running %v, old workers on the survivors gone %v", ms(moved), ms(rooted), ms(oldGone))
	if detected == 0 {
		detected = failedOver // seen in the same poll at the latest
	}
	apps, err := clients[survivors[1].name].Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(apps)
	t.Logf("kill -9 of %s: membership declared it failed after %v; shop ran again (root and 3 children on the survivors) after %v (2x failure detection: %v); registry: %s",
		holder, detected.Round(time.Millisecond), failedOver.Round(time.Millisecond), (2 * detected).Round(time.Millisecond), b)
	if !strings.Contains(string(b), `"state":"running"`) {
		t.Fatalf("the other survivor's replica does not show shop running: %s", b)
	}
	// The registry store's synced writes (on the worker pool, off the loops).
	for _, d := range survivors {
		m, err := metricValues(ctx, d.child, "actord_appreg_store_writes_total", "actord_appreg_store_write_seconds_total",
			"actord_appreg_store_write_seconds_max")
		if err != nil {
			t.Fatal(err)
		}
		up := time.Since(d.started).Seconds()
		t.Logf("%s's registry store: %.0f synced writes in %.1f s (%.1f/s), %.2f ms each on average, %.2f ms at most",
			d.name, m[0], up, m[0]/up, 1000*m[1]/max(m[0], 1), 1000*m[2])
	}
}

// metricValues reads gauges and counters without labels from a daemon's
// /metrics (on its debug server), in the order of names.
func metricValues(ctx context.Context, d *child, names ...string) ([]float64, error) {
	tok, err := os.ReadFile(d.info.TokenFile)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+d.info.DebugAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	for i, n := range names {
		found := false
		for _, l := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(l, n+" "); ok {
				if out[i], err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
					return nil, err
				}
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("/metrics of %s lacks %s", d.name, n)
		}
	}
	return out, nil
}

// pollFor polls cond every 20 ms until it holds, or fails the test after d.
// On a failure it shows *last and the daemons' logs.
func pollFor(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() bool, last *string, ds []*appDaemon) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			logs := ""
			for _, d := range ds {
				logs += fmt.Sprintf("\n--- %s's log (tail) ---\n%s", d.name, d.logs.String())
			}
			t.Fatalf("not within %v: %s\nlast seen: %s%s", d, what, *last, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
