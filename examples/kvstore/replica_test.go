package kvstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/actord/actord/actor"
)

// gate holds the commits of one store until opened.
type gate struct {
	once sync.Once
	ch   chan struct{}
	in   chan struct{} // a commit is waiting at the gate
}

func newGate() *gate { return &gate{ch: make(chan struct{}), in: make(chan struct{}, 64)} }

func (g *gate) hook(int, []string) error {
	g.in <- struct{}{}
	<-g.ch
	return nil
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// TestPutWaitsForAMajorityOfCommits: a put is acknowledged only once a
// majority of the key's replicas have committed (fsynced) it; one replica
// is not enough.
func TestPutWaitsForAMajorityOfCommits(t *testing.T) {
	gates := []*gate{nil, newGate(), newGate()}
	nodes := make([]*testNode, 3)
	var members []string
	for i := range nodes {
		nodes[i] = newTestNode(t, fmt.Sprint("n", i))
		members = append(members, nodes[i].node.Addr())
	}
	for i, tn := range nodes {
		cfg := Config{DataDir: t.TempDir(), Members: members, Token: "secret"}
		if g := gates[i]; g != nil {
			cfg.hooks = &hooks{beforeCommit: g.hook}
			t.Cleanup(g.open)
		}
		tn.install(t, cfg)
	}
	cn := newTestNode(t, "client")
	cl, err := Dial(ctxT(t), cn.node, members[0], "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.Put(ctxT(t), "k", []byte("v")) }()
	// Replica 0 commits; replicas 1 and 2 are held at their gate.
	for _, g := range gates[1:] {
		select {
		case <-g.in:
		case <-ctxT(t).Done():
			t.Fatal("the write did not reach a held replica")
		}
	}
	waitFor(t, "replica 0's commit", func() bool { return nodes[0].store.Stats().Writes == 1 })
	select {
	case err := <-done:
		t.Fatalf("the put returned (%v) with one replica of three durable", err)
	default:
	}
	gates[1].open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gates[2].open()
	mustGet(t, cl, "k", "v", true)
}

// TestOlderWriteWaitsForTheNewerCommit: a replica acknowledges a Write
// whose version is older than one it is committing only once that commit
// is done (before, a crash could lose both).
func TestOlderWriteWaitsForTheNewerCommit(t *testing.T) {
	g := newGate()
	t.Cleanup(g.open)
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir(), hooks: &hooks{beforeCommit: g.hook}})
	ref := st.Directory().Local[ShardOf("k", DefaultShards)].Ref
	ask := func(w Write) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := tn.sys.Ask(ctxT(t), ref, w)
			ch <- err
		}()
		return ch
	}
	newer := ask(Write{K: "k", E: Entry{TS: Stamp{N: 5, W: 1}, V: []byte("five")}})
	<-g.in // its commit is held
	older := ask(Write{K: "k", E: Entry{TS: Stamp{N: 3, W: 1}, V: []byte("three")}})
	// The older write is queued behind the commit: asking the replica
	// something else and getting the answer orders it after the Write.
	if _, err := tn.sys.Ask(ctxT(t), ref, Get{K: "k"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-older:
		t.Fatalf("the older write was acknowledged (%v) before the newer one was durable", err)
	default:
	}
	g.open()
	if err := <-newer; err != nil {
		t.Fatal(err)
	}
	if err := <-older; err != nil {
		t.Fatal(err)
	}
	v, err := tn.sys.Ask(ctxT(t), ref, Get{K: "k"})
	if e, _ := v.(Entry); err != nil || string(e.V) != "five" {
		t.Fatalf("after both: %+v %v, want the newer version", v, err)
	}
	// Once the newer version is durable, an older write is acknowledged at
	// once, without a commit.
	before := st.Stats().Commits
	if err := <-ask(Write{K: "k", E: Entry{TS: Stamp{N: 4, W: 9}, V: []byte("four")}}); err != nil {
		t.Fatal(err)
	}
	if st.Stats().Commits != before {
		t.Fatal("an older write was committed")
	}
}

// TestCatchUpPageBounds: a peer's page that breaks the protocol is
// refused, so a catch-up neither loops nor takes more than it asked for.
func TestCatchUpPageBounds(t *testing.T) {
	e := Entry{TS: Stamp{N: 1}}
	many := make([]SyncEntry, catchUpPage+1)
	for i := range many {
		many[i] = SyncEntry{K: fmt.Sprintf("k%05d", i), E: e}
	}
	for _, tc := range []struct {
		name  string
		rep   SyncReply
		after string
		ok    bool
	}{
		{"a page", SyncReply{Entries: many[:3], More: true}, "", true},
		{"the last page", SyncReply{Entries: many[5:7]}, "k00004", true},
		{"empty and done", SyncReply{}, "k", true},
		{"too many", SyncReply{Entries: many}, "", false},
		{"not after the cursor", SyncReply{Entries: many[2:4]}, "k00003", false},
		{"not increasing", SyncReply{Entries: []SyncEntry{many[1], many[0]}}, "", false},
		{"more, but nothing", SyncReply{More: true}, "k", false},
		{"a bad key", SyncReply{Entries: []SyncEntry{{K: "", E: e}}}, "", false},
	} {
		err := checkPage(tc.rep, tc.after)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errBadPage)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestDialRefusesAHugeDirectory: a directory announcing more shards,
// replicas or members than the bounds is refused before the client
// allocates for them.
func TestDialRefusesAHugeDirectory(t *testing.T) {
	d := newTestNode(t, "liar")
	if err := RegisterTypes(d.node); err != nil {
		t.Fatal(err)
	}
	var rep DirReply
	var mu sync.Mutex
	d.node.RegisterKind(DirectoryKind, func(any) (actor.Factory, error) {
		mu.Lock()
		defer mu.Unlock()
		r := rep
		return func() actor.Actor { return &directory{rep: r} }, nil
	})
	c := newTestNode(t, "client")
	many := make([]string, maxMembers+1)
	for i := range many {
		many[i] = fmt.Sprint("10.0.0.1:", i)
	}
	for _, bad := range []DirReply{
		{Shards: maxShards + 1, Replicas: 3, Members: []string{d.node.Addr()}},
		{Shards: 16, Replicas: maxReplicas + 1, Members: []string{d.node.Addr()}},
		{Shards: 16, Replicas: 3, Members: many},
	} {
		mu.Lock()
		rep = bad
		mu.Unlock()
		_, err := Dial(context.Background(), c.node, d.node.Addr(), "tok", 0)
		if err == nil || !strings.Contains(err.Error(), "bad directory") {
			t.Fatalf("dial of a directory of %d shards, %d replicas, %d members: %v", bad.Shards, bad.Replicas, len(bad.Members), err)
		}
	}
}

// TestStampCounterExhausted: a key whose stamp counter is at its maximum
// (a hostile or broken writer) refuses writes rather than wrap around to
// versions older than the one it has.
func TestStampCounterExhausted(t *testing.T) {
	tn := newTestNode(t, "a")
	st := tn.install(t, Config{DataDir: t.TempDir()})
	cl := newClient(t, tn.sys, LocalTable(st))
	ref := st.Directory().Local[ShardOf("k", DefaultShards)].Ref
	if _, err := tn.sys.Ask(ctxT(t), ref, Write{K: "k", E: Entry{TS: Stamp{N: math.MaxUint64, W: 1}, V: []byte("last")}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(ctxT(t), "k", []byte("next")); !errors.Is(err, ErrNotWritten) {
		t.Fatalf("put after the last stamp: %v, want ErrNotWritten", err)
	}
	mustGet(t, cl, "k", "last", true)
}

// TestCatchUpSecondPass: writes that clients make after a restarted
// daemon's first catch-up pass, before they find its new replicas, reach it
// with the second pass.
func TestCatchUpSecondPass(t *testing.T) {
	nodes, cl := cluster(t, 3, Config{})
	mustPut(t, cl, "early", "1")
	victim := nodes[1]
	addr, cfg := victim.node.Addr(), victim.store.cfg
	victim.close()
	mustPut(t, cl, "while-down", "2")
	second := make(chan struct{})
	cfg.hooks = &hooks{secondPass: second}
	back := newTestNodeAt(t, "n1", addr)
	st := back.install(t, cfg)
	waitFor(t, "the first pass", func() bool { return st.Stats().CatchUpPasses == 1 })
	// A client that has not found the restarted replicas writes to the
	// other two only.
	tab := cl.Table()
	for id := range tab.Shards {
		tab.Refs[id][slices.Index(tab.Hosts(id), addr)] = actor.Ref{}
	}
	stale := newClient(t, cl.sys, tab)
	mustPut(t, stale, "after-first-pass", "3")
	has := func(k, want string) bool {
		r := st.Directory().Local[ShardOf(k, DefaultShards)].Ref
		v, err := back.sys.Ask(ctxT(t), r, Get{K: k})
		e, _ := v.(Entry)
		return err == nil && string(e.V) == want
	}
	if !has("early", "1") || !has("while-down", "2") || has("after-first-pass", "3") {
		t.Fatal("after the first pass, the restarted replicas should hold the writes made before it, not after")
	}
	close(second)
	select {
	case <-st.CaughtUp():
	case <-ctxT(t).Done():
		t.Fatal("no second pass")
	}
	if !has("after-first-pass", "3") || st.Stats().CatchUpPasses != 2 {
		t.Fatalf("after the second pass: %+v", st.Stats())
	}
}
