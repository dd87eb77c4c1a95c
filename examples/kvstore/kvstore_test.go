package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool, started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// testNode is a System with a remote Node on 127.0.0.1:0, and maybe a store.
type testNode struct {
	sys   *actor.System
	node  *remote.Node
	stop  func()
	store *Store
	once  sync.Once
}

func newTestNode(t testing.TB, name string) *testNode {
	t.Helper()
	return newTestNodeAt(t, name, "127.0.0.1:0")
}

// newTestNodeAt is newTestNode listening on listen.
func newTestNodeAt(t testing.TB, name, listen string) *testNode {
	t.Helper()
	sys := actor.NewSystem(actor.Config{Loops: 2, Watchdog: -1, OnCrash: func(*actor.Crash) {}})
	n := remote.New(sys, remote.Config{Name: name, Listen: listen, Logger: slog.New(slog.DiscardHandler),
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop, err := n.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{sys: sys, node: n, stop: stop}
	t.Cleanup(tn.close)
	return tn
}

// close closes the store, the node and the system, once.
func (tn *testNode) close() {
	tn.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if tn.store != nil {
			_ = tn.store.Close(ctx)
		}
		tn.stop()
		_ = tn.sys.Shutdown(ctx)
	})
}

// kill stops the node first (its peers see its connections drop while its
// store still holds requests), then the store and the system, once.
func (tn *testNode) kill() {
	tn.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tn.stop()
		if tn.store != nil {
			_ = tn.store.Close(ctx)
		}
		_ = tn.sys.Shutdown(ctx)
	})
}

func (tn *testNode) install(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.catchUpAgain == 0 {
		cfg.catchUpAgain = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := Install(ctxT(t), tn.node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.store = st
	return st
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cluster starts n nodes with a store each over the same members, and a
// separate client node that dials the first.
func cluster(t *testing.T, n int, cfg Config) ([]*testNode, *Client) {
	t.Helper()
	nodes, cl, _ := clusterClient(t, n, cfg)
	return nodes, cl
}

// clusterClient is cluster, also returning the client's node.
func clusterClient(t *testing.T, n int, cfg Config) ([]*testNode, *Client, *testNode) {
	t.Helper()
	nodes := make([]*testNode, n)
	var members []string
	for i := range nodes {
		nodes[i] = newTestNode(t, fmt.Sprintf("n%d", i))
		members = append(members, nodes[i].node.Addr())
	}
	cfg.Members, cfg.Token = members, "secret"
	for _, tn := range nodes {
		c := cfg
		c.DataDir = t.TempDir()
		tn.install(t, c)
	}
	cn := newTestNode(t, "client")
	cl, err := Dial(ctxT(t), cn.node, nodes[0].node.Addr(), "secret", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		<-tn.store.CaughtUp() // no catch-up traffic in the tests' counts
	}
	return nodes, cl, cn
}

func newClient(t testing.TB, sys *actor.System, tab Table) *Client {
	t.Helper()
	cl, err := NewClient(sys, tab, 0)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func mustPut(t testing.TB, cl *Client, k, v string) {
	t.Helper()
	if err := cl.Put(ctxT(t), k, []byte(v)); err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
}

func mustGet(t testing.TB, cl *Client, k, want string, present bool) {
	t.Helper()
	v, ok, err := cl.Get(ctxT(t), k)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	if ok != present || string(v) != want {
		t.Fatalf("get %q = %q, %v; want %q, %v", k, v, ok, want, present)
	}
}

func TestPlacement(t *testing.T) {
	p := Placement(16, 3, []string{"c", "a", "b", "a"})
	for i, hosts := range p {
		want := []string{"a", "b", "c", "a", "b"}[i%3 : i%3+3]
		if !slices.Equal(hosts, want) {
			t.Fatalf("shard %d on %v, want %v", i, hosts, want)
		}
	}
	// More replicas than members: every member, once.
	for i, hosts := range Placement(4, 3, []string{"x", "y"}) {
		if len(hosts) != 2 || hosts[0] == hosts[1] {
			t.Fatalf("shard %d on %v", i, hosts)
		}
	}
	// Five members, three replicas: each member hosts 3/5 of the shards.
	per := map[string]int{}
	for _, hosts := range Placement(20, 3, []string{"a", "b", "c", "d", "e"}) {
		for _, h := range hosts {
			per[h]++
		}
	}
	for m, n := range per {
		if n != 12 {
			t.Fatalf("%s hosts %d replicas of 20 shards, want 12", m, n)
		}
	}
	seen := map[int]bool{}
	for i := range 1000 {
		s := ShardOf(fmt.Sprint("k", i), 16)
		if s < 0 || s >= 16 {
			t.Fatalf("shard %d", s)
		}
		seen[s] = true
	}
	if len(seen) != 16 {
		t.Fatalf("1000 keys hit %d shards of 16", len(seen))
	}
}

func TestSingleNode(t *testing.T) {
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir()})
	if got := len(st.Directory().Local); got != DefaultShards {
		t.Fatalf("%d local shards, want all %d", got, DefaultShards)
	}
	cl := newClient(t, tn.sys, LocalTable(st))
	mustGet(t, cl, "missing", "", false)
	for i := range 100 {
		mustPut(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	for i := range 100 {
		mustGet(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i), true)
	}
	mustPut(t, cl, "k1", "new")
	mustGet(t, cl, "k1", "new", true)
	if err := cl.Delete(ctxT(t), "k2"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, cl, "k2", "", false)
	mustPut(t, cl, "empty", "")
	mustGet(t, cl, "empty", "", true)
	if err := cl.Put(ctxT(t), "", []byte("x")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("empty key: %v, want ErrBadKey", err)
	}
	if s := st.Stats(); s.Writes != 103 {
		t.Fatalf("stats %+v, want 103 writes", s)
	}
}

func TestThreeNodes(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	tab := cl.Table()
	for id, refs := range tab.Refs {
		if len(refs) != 3 || slices.Contains(refs, actor.Ref{}) {
			t.Fatalf("shard %d: refs %v, missing %v", id, refs, tab.Missing[id])
		}
	}
	for _, tn := range nodes {
		if n := len(tn.store.Directory().Local); n != DefaultShards {
			t.Fatalf("node %s hosts %d replicas, want one of each of the %d shards", tn.node.Addr(), n, DefaultShards)
		}
	}
	for i := range 200 {
		mustPut(t, cl, fmt.Sprint("key", i), fmt.Sprint("val", i))
	}
	for i := range 200 {
		mustGet(t, cl, fmt.Sprint("key", i), fmt.Sprint("val", i), true)
	}
	// Every put reaches every replica (a majority acknowledged it; the
	// third follows).
	waitFor(t, "every replica to hold every put", func() bool {
		for _, tn := range nodes {
			if tn.store.Stats().Writes != 200 {
				return false
			}
		}
		return true
	})
	// A second client, dialing another member, sees the same data.
	cn := newTestNode(t, "client2")
	cl2, err := Dial(ctxT(t), cn.node, nodes[2].node.Addr(), "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustGet(t, cl2, fmt.Sprint("key", i), fmt.Sprint("val", i), true)
	}
	if err := cl2.Delete(ctxT(t), "key7"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, cl, "key7", "", false)
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling, not synchronisation
	}
}

func TestDialBadToken(t *testing.T) {
	tn := newTestNode(t, "a")
	tn.install(t, Config{DataDir: t.TempDir(), Token: "right"})
	cn := newTestNode(t, "client")
	_, err := Dial(ctxT(t), cn.node, tn.node.Addr(), "wrong", 0)
	if err == nil {
		t.Fatal("dial with a wrong token succeeded")
	}
	if _, err := Dial(ctxT(t), cn.node, tn.node.Addr(), "right", 0); err != nil {
		t.Fatal(err)
	}
}

// keysOfShard returns n keys that all hash to shard id.
func keysOfShard(id, shards, n int) []string {
	var ks []string
	for i := 0; len(ks) < n; i++ {
		if k := fmt.Sprint("key-", i); ShardOf(k, shards) == id {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestGroupCommit holds a shard's first commit until 199 more puts are
// queued behind it: they must all go in one second commit.
func TestGroupCommit(t *testing.T) {
	const n = 200
	gate := make(chan struct{})
	queued := make(chan struct{})
	var first sync.Once
	h := &hooks{
		beforeCommit: func(int, []string) error {
			first.Do(func() { <-gate })
			return nil
		},
		queued: func(_, q int) {
			if q == n-1 {
				close(queued)
			}
		},
	}
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: h})
	cl := newClient(t, tn.sys, LocalTable(st))
	keys := keysOfShard(3, DefaultShards, n)
	// A Get waits for the shard's initial load, so the first put is then
	// committed alone and the others queue behind it.
	mustGet(t, cl, keys[0], "", false)
	errs := make(chan error, n)
	for _, k := range keys {
		go func() { errs <- cl.Put(ctxT(t), k, []byte(k)) }()
	}
	select {
	case <-queued:
	case <-ctxT(t).Done():
		t.Fatal("puts were not queued behind the first commit")
	}
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := st.Stats()
	if s.Writes != n || s.Commits != 2 {
		t.Fatalf("stats %+v: want %d writes in 2 commits", s, n)
	}
	for _, k := range keys {
		mustGet(t, cl, k, k, true)
	}
}

// TestBurstBatches checks, without any hook, that a burst of concurrent
// puts takes fewer commits than puts.
func TestBurstBatches(t *testing.T) {
	const n = 200
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir()})
	cl := newClient(t, tn.sys, LocalTable(st))
	keys := keysOfShard(5, DefaultShards, n)
	mustGet(t, cl, keys[0], "", false) // wait for the initial load
	var start sync.WaitGroup
	start.Add(1)
	errs := make(chan error, n)
	for _, k := range keys {
		go func() { start.Wait(); errs <- cl.Put(ctxT(t), k, []byte(k)) }()
	}
	start.Done()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := st.Stats()
	t.Logf("%d puts in %d commits", s.Writes, s.Commits)
	if s.Writes != n || s.Commits >= n {
		t.Fatalf("stats %+v: want %d writes in fewer commits", s, n)
	}
}

func TestFailedCommitIsNotAcknowledged(t *testing.T) {
	boom := errors.New("disk on fire")
	var fail sync.Mutex
	failing := true
	h := &hooks{beforeCommit: func(int, []string) error {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return boom
		}
		return nil
	}}
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: h})
	cl := newClient(t, tn.sys, LocalTable(st))
	if err := cl.Put(ctxT(t), "k", []byte("v")); !errors.Is(err, boom) {
		t.Fatalf("put with a failing disk: %v, want %v", err, boom)
	}
	mustGet(t, cl, "k", "", false)
	fail.Lock()
	failing = false
	fail.Unlock()
	mustPut(t, cl, "k", "v")
	mustGet(t, cl, "k", "v", true)
}

// TestCrashReload crashes every shard after acknowledged puts: each is
// restarted by its supervisor and reloads all of them from bolt.
func TestCrashReload(t *testing.T) {
	tn := newTestNode(t, "a")
	// 16 crashes in a row: above the default restart intensity.
	st := tn.install(t, Config{DataDir: t.TempDir(), MaxR: 100})
	cl := newClient(t, tn.sys, LocalTable(st))
	for i := range 300 {
		mustPut(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	for _, s := range st.Directory().Local {
		_, err := tn.sys.Ask(ctxT(t), s.Ref, crash{})
		if !errors.Is(err, actor.ErrCrashed) {
			t.Fatalf("crash shard %d: %v, want ErrCrashed", s.ID, err)
		}
	}
	// The refs are the same: the supervisor restarted the shards in place,
	// and the new instances start with an empty map until they reload.
	for i := range 300 {
		mustGet(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i), true)
	}
	mustPut(t, cl, "after", "crash")
	mustGet(t, cl, "after", "crash", true)
}

// heldShard is a store whose shard 0 holds its first commit until release
// is called, with probes of what the shard does meanwhile.
type heldShard struct {
	tn      *testNode
	st      *Store
	cl      *Client
	gate    chan struct{}
	first   chan string   // the key of the held commit
	queued  chan struct{} // closed once want writes queue behind it
	started chan struct{} // a shard-0 instance started (after the first)
	keys    []string      // of shard 0; keys[0] is sent first
	out     chan putRes
}

type putRes struct {
	k   string
	err error
}

// holdShard installs a store (with cfg) whose shard 0 commits keys[0] and
// holds that commit while the other n-1 keys queue behind it.
func holdShard(t *testing.T, cfg Config, n int) *heldShard {
	t.Helper()
	hs := &heldShard{gate: make(chan struct{}), first: make(chan string, 1), queued: make(chan struct{}),
		started: make(chan struct{}, 16), keys: keysOfShard(0, DefaultShards, n), out: make(chan putRes, n)}
	var first, once sync.Once
	cfg.hooks = &hooks{
		beforeCommit: func(_ int, keys []string) error {
			first.Do(func() { hs.first <- keys[0]; <-hs.gate })
			return nil
		},
		queued: func(shard, q int) {
			if shard == 0 && q == n-1 {
				once.Do(func() { close(hs.queued) })
			}
		},
		started: func(shard int) {
			if shard == 0 {
				hs.started <- struct{}{}
			}
		},
	}
	hs.tn = newTestNode(t, "a")
	hs.st = hs.tn.install(t, cfg)
	hs.cl = newClient(t, hs.tn.sys, LocalTable(hs.st))
	<-hs.started // the first instance
	// A Get waits for the load, so keys[0] is then committed alone.
	mustGet(t, hs.cl, hs.keys[0], "", false)
	put := func(k string) {
		go func() { hs.out <- putRes{k, hs.cl.Put(ctxT(t), k, []byte(k))} }()
	}
	put(hs.keys[0])
	if k := <-hs.first; k != hs.keys[0] {
		t.Fatalf("held commit of %q, want %q", k, hs.keys[0])
	}
	for _, k := range hs.keys[1:] {
		put(k)
	}
	select {
	case <-hs.queued:
	case <-ctxT(t).Done():
		t.Fatal("the writes did not queue behind the held commit")
	}
	t.Cleanup(hs.release)
	return hs
}

func (hs *heldShard) release() {
	select {
	case <-hs.gate:
	default:
		close(hs.gate)
	}
}

// results waits for n answers, failing the test if they do not come.
func (hs *heldShard) results(t *testing.T, n int) map[string]error {
	t.Helper()
	got := map[string]error{}
	for range n {
		select {
		case r := <-hs.out:
			got[r.k] = r.err
		case <-ctxT(t).Done():
			t.Fatalf("%d of %d writes answered; the others hang", len(got), n)
		}
	}
	return got
}

// crash0 crashes shard 0 and returns once the crash happened.
func (hs *heldShard) crash0(t *testing.T) {
	t.Helper()
	ref := hs.st.Directory().Local[0].Ref
	if _, err := hs.tn.sys.Ask(ctxT(t), ref, crash{}); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("crash: %v", err)
	}
}

// TestCrashWithWritesInFlight crashes a shard while a commit is in flight
// and ten writes are queued behind it. The queued writes fail at once with
// ErrShardCrashed, while the commit is still held, and were not applied;
// the restarted instance waits for the commit, whose write is acknowledged
// and read back.
func TestCrashWithWritesInFlight(t *testing.T) {
	hs := holdShard(t, Config{DataDir: t.TempDir()}, 11)
	hs.crash0(t)
	queued := hs.results(t, 10) // the commit is still held
	for k, err := range queued {
		if k == hs.keys[0] {
			t.Fatalf("the held write was answered (%v) before its commit ended", err)
		}
		if !errors.Is(err, ErrShardCrashed) {
			t.Fatalf("queued write %q: %v, want ErrShardCrashed", k, err)
		}
	}
	// The supervisor restarts the shard before the held commit ends: the
	// new instance loads only after it.
	select {
	case <-hs.started:
	case <-ctxT(t).Done():
		t.Fatal("the shard was not restarted")
	}
	hs.release()
	if err := hs.results(t, 1)[hs.keys[0]]; err != nil {
		t.Fatalf("the write whose commit was in flight: %v", err)
	}
	mustGet(t, hs.cl, hs.keys[0], hs.keys[0], true)
	for _, k := range hs.keys[1:] {
		mustGet(t, hs.cl, k, "", false)
	}
	mustPut(t, hs.cl, hs.keys[1], "after")
	mustGet(t, hs.cl, hs.keys[1], "after", true)
}

// TestCrashCommitEndsBeforeRestart is the other order: the commit in flight
// ends before any new instance runs (here none ever does: the supervisor
// may not restart). Its write is still acknowledged, by the commit job,
// and is on disk.
func TestCrashCommitEndsBeforeRestart(t *testing.T) {
	dir := t.TempDir()
	hs := holdShard(t, Config{DataDir: dir, MaxR: -1}, 3)
	hs.crash0(t)
	for k, err := range hs.results(t, 2) {
		if !errors.Is(err, ErrShardCrashed) {
			t.Fatalf("queued write %q: %v, want ErrShardCrashed", k, err)
		}
	}
	hs.release()
	if err := hs.results(t, 1)[hs.keys[0]]; err != nil {
		t.Fatalf("the write whose commit was in flight: %v", err)
	}
	hs.tn.close()
	tn := newTestNode(t, "a")
	cl := newClient(t, tn.sys, LocalTable(tn.install(t, Config{DataDir: dir})))
	mustGet(t, cl, hs.keys[0], hs.keys[0], true)
	for _, k := range hs.keys[1:] {
		mustGet(t, cl, k, "", false)
	}
}

// TestCloseWithWritesInFlight closes the store while a commit is in flight
// and writes are queued: the queued writes fail at once with ErrClosed,
// the one in flight is acknowledged when its commit ends, and Close waits
// for it.
func TestCloseWithWritesInFlight(t *testing.T) {
	hs := holdShard(t, Config{DataDir: t.TempDir()}, 4)
	closed := make(chan error, 1)
	go func() { closed <- hs.st.Close(ctxT(t)) }()
	for k, err := range hs.results(t, 3) {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("queued write %q: %v, want ErrClosed", k, err)
		}
	}
	hs.release()
	if err := hs.results(t, 1)[hs.keys[0]]; err != nil {
		t.Fatalf("the write whose commit was in flight: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestNodeRestart closes a store and its node and opens the same data dir
// on a new node: the data is back.
func TestNodeRestart(t *testing.T) {
	dir := t.TempDir()
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: dir})
	cl := newClient(t, tn.sys, LocalTable(st))
	for i := range 100 {
		mustPut(t, cl, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	if err := cl.Delete(ctxT(t), "k7"); err != nil {
		t.Fatal(err)
	}
	tok := st.Token()
	tn.close()

	tn2 := newTestNode(t, "a")
	st2 := tn2.install(t, Config{DataDir: dir})
	if st2.Token() != tok {
		t.Fatalf("token %q after restart, want %q (from the token file)", st2.Token(), tok)
	}
	cl2 := newClient(t, tn2.sys, LocalTable(st2))
	for i := range 100 {
		if i == 7 {
			mustGet(t, cl2, "k7", "", false)
			continue
		}
		mustGet(t, cl2, fmt.Sprint("k", i), fmt.Sprint("v", i), true)
	}
}

// TestNodeDown stops one of three daemons: every key stays readable and
// writable (each shard has a majority of its replicas on the other two).
// With two down, requests fail, promptly, with an unavailability error.
func TestNodeDown(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	for i := range 50 {
		mustPut(t, cl, fmt.Sprint("k", i), "v")
	}
	nodes[1].close()
	for i := range 50 {
		mustGet(t, cl, fmt.Sprint("k", i), "v", true)
		mustPut(t, cl, fmt.Sprint("k", i), "w")
		mustGet(t, cl, fmt.Sprint("k", i), "w", true)
	}
	// A client that dials now gets the down node's replicas as missing,
	// and still a majority of each shard.
	cn := newTestNode(t, "client2")
	cl2, err := Dial(ctxT(t), cn.node, nodes[0].node.Addr(), "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, cl2, "k3", "w", true)
	mustPut(t, cl2, "k3", "x")
	mustGet(t, cl, "k3", "x", true)

	nodes[2].close()
	for _, c := range []*Client{cl, cl2} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := c.Put(ctx, "k4", []byte("y"))
		cancel()
		if !IsUnavailable(err) || !errors.Is(err, ErrNotWritten) {
			t.Fatalf("put with 2 of 3 replicas down: %v, want an unavailability error before any write", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("put took %v to fail", d)
		}
		t.Logf("put with 2 of 3 daemons down failed after %v: %v", time.Since(start), err)
	}
}

// TestCrashShardMessage: CrashShard with a wrong token is refused and the
// shard keeps running; with the store's token the shard crashes, is
// restarted and still serves its acknowledged writes.
func TestCrashShardMessage(t *testing.T) {
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), Token: "tok"})
	cl := newClient(t, tn.sys, LocalTable(st))
	mustPut(t, cl, "k", "v")
	id := ShardOf("k", DefaultShards)
	if err := cl.CrashShard(ctxT(t), id, 0, "wrong"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("crash with a wrong token: %v, want ErrBadToken", err)
	}
	if err := cl.CrashShard(ctxT(t), id, 0, "tok"); !errors.Is(err, actor.ErrCrashed) {
		t.Fatalf("crash: %v, want ErrCrashed", err)
	}
	mustGet(t, cl, "k", "v", true)
	if err := cl.CrashShard(ctxT(t), DefaultShards, 0, "tok"); err == nil {
		t.Fatal("crash of a shard that does not exist: no error")
	}
}
