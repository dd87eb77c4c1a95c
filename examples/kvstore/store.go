package kvstore

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
	"github.com/actord/actord/supervisor"
)

// DefaultShards is the number of shards of a store whose Config.Shards is 0.
const DefaultShards = 16

// DefaultReplicas is the number of replicas of each shard when
// Config.Replicas is 0 (fewer if the store has fewer members).
const DefaultReplicas = 3

// DefaultMaxBatch bounds the writes of one commit when Config.MaxBatch is 0.
const DefaultMaxBatch = 4096

// TokenFile is the name of the token file a store writes in its data dir
// when Config.Token is empty.
const TokenFile = "kvstore.token"

// Config sets up the part of a store that one daemon hosts. Every daemon of
// a store must be given the same Shards, Replicas, Members and Token.
type Config struct {
	// DataDir holds the daemon's replicas (DataDir/kvstore/store.db, one
	// bbolt file with a bucket per replica) and, if Token is empty, the
	// token file. Required, unless Storage and Token are set. The data
	// dirs of earlier, unreplicated versions are refused (ErrOldFormat).
	DataDir string
	// Storage, if set, holds the daemon's replicas instead of the bbolt
	// file under DataDir (a MemDisk, in a simulator). The store makes its
	// buckets there and does not close it.
	Storage Storage
	// NoCatchUp skips the catch-up after Install (see "A daemon that
	// returns" in the package doc); the store is linearizable without it,
	// with one up-to-date copy fewer of what a returning daemon missed.
	NoCatchUp bool
	// Shards is the number of shards of the whole store. Default
	// DefaultShards. It cannot change once data is written.
	Shards int
	// Replicas is the number of replicas of each shard, on as many
	// daemons (all of them if there are fewer). Default DefaultReplicas.
	// It cannot change once data is written.
	Replicas int
	// Members are the remote addresses (remote.Node.Addr) of every daemon
	// of the store, this one included. Default: this node alone.
	Members []string
	// Token is the capability that lets a client fetch shard refs (see
	// DirectoryKind). Default: read from DataDir/kvstore.token, or made at
	// random and written there (mode 0600).
	Token string
	// MaxBatch bounds the writes of one commit. Default DefaultMaxBatch.
	MaxBatch int
	// MaxR and MaxT are the shard supervisor's restart intensity. Default
	// 10 restarts in 10 s.
	MaxR int
	MaxT time.Duration
	// Logger receives the supervisor's reports. Default slog.Default().
	Logger *slog.Logger

	hooks        *hooks        // tests only
	catchUpAgain time.Duration // tests only; default CatchUpAgain
}

// ShardOf returns the shard of key in a store of the given number of
// shards: the 32-bit FNV-1a hash of the key modulo shards.
func ShardOf(key string, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(shards))
}

// Placement returns the replicas of every shard: the members are sorted
// and shard i has its replicas on members i, i+1, ... i+r-1 (mod the number
// of members), r = min(replicas, members). It is deterministic, so every
// daemon and client computes the same placement from the same member list.
func Placement(shards, replicas int, members []string) [][]string {
	ms := slices.Compact(slices.Sorted(slices.Values(members)))
	r := min(max(replicas, 1), len(ms))
	out := make([][]string, shards)
	for i := range out {
		out[i] = make([]string, r)
		for j := range r {
			out[i][j] = ms[(i+j)%len(ms)]
		}
	}
	return out
}

// Store is one daemon's part of a store: its replicas (a supervisor and its
// children), their storage and group committer, and the directory kind.
type Store struct {
	node    *remote.Node
	sys     *actor.System
	cfg     Config
	members []string
	sup     actor.Ref
	db      Storage    // DataDir/kvstore/store.db, or Config.Storage
	ownDB   bool       // db was opened by Install: Close closes it
	com     *committer // commits the shards' writes to db
	disks   []*disk    // local shards, by position in local
	local   []ShardRef

	mu           sync.Mutex
	closed       bool
	catchUpRef   actor.Ref     // the catch-up's actor (zero with Config.NoCatchUp)
	caughtUp     chan struct{} // closed when the catch-up is done
	caughtUpOnce sync.Once
	catchUp      catchUpStats
}

// Install starts this daemon's replicas on node's system and registers the
// store's message types and the directory kind on node, which must be
// listening (its address decides which shards it replicates: see
// Placement). The replicas run as workers "shard-NNN" of a one-for-one
// supervisor named "kvstore", each on loop NNN mod the number of loops.
// Once they have loaded their data, Install returns, and the replicas
// catch up in the background with the other replicas of their shards (the
// writes this daemon missed while it was down), in two passes: one at
// once, one CatchUpAgain later, for the writes that clients made before
// they found the restarted replicas (see CaughtUp). Close the
// store before shutting the system down to close its file cleanly.
func Install(ctx context.Context, node *remote.Node, cfg Config) (*Store, error) {
	self := node.Addr()
	if self == "" {
		return nil, errors.New("kvstore: install: node is not listening")
	}
	if cfg.DataDir == "" && (cfg.Storage == nil || cfg.Token == "") {
		return nil, errors.New("kvstore: install: no data dir")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultShards
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxR == 0 {
		cfg.MaxR = 10
	}
	if cfg.MaxT <= 0 {
		cfg.MaxT = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.catchUpAgain <= 0 {
		cfg.catchUpAgain = CatchUpAgain
	}
	if len(cfg.Members) == 0 {
		cfg.Members = []string{self}
	}
	if !slices.Contains(cfg.Members, self) {
		return nil, fmt.Errorf("kvstore: install: this node's address %s is not among the members %v", self, cfg.Members)
	}
	if err := RegisterTypes(node); err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		t, err := loadToken(filepath.Join(cfg.DataDir, TokenFile))
		if err != nil {
			return nil, err
		}
		cfg.Token = t
	}
	st := &Store{node: node, sys: node.System(), cfg: cfg, caughtUp: make(chan struct{})}
	st.members = slices.Compact(slices.Sorted(slices.Values(cfg.Members)))
	var ids []int
	for id, hosts := range Placement(cfg.Shards, cfg.Replicas, cfg.Members) {
		if slices.Contains(hosts, self) {
			ids = append(ids, id)
		}
	}
	db := cfg.Storage
	if db == nil {
		dir := filepath.Join(cfg.DataDir, "kvstore")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("kvstore: data dir: %w", err)
		}
		var err error
		if db, err = openStore(dir, ids); err != nil {
			return nil, fmt.Errorf("kvstore: %w", err)
		}
		st.ownDB = true
	} else {
		names := make([][]byte, len(ids))
		for i, id := range ids {
			names[i] = shardBucket(id)
		}
		if err := db.Buckets(names); err != nil {
			return nil, fmt.Errorf("kvstore: storage: %w", err)
		}
	}
	st.db, st.com = db, newCommitter(db)
	if err := st.com.start(ctx, st.sys); err != nil {
		st.closeDBs()
		return nil, fmt.Errorf("kvstore: start the committer: %w", err)
	}
	var children []supervisor.ChildSpec
	for _, id := range ids {
		d := &disk{id: id, st: db, bucket: shardBucket(id), c: st.com, hooks: cfg.hooks}
		st.disks = append(st.disks, d)
		name := shardName(id)
		children = append(children, supervisor.Worker(name, newShard(d, cfg.MaxBatch, cfg.Token), actor.OnLoop(id), actor.Name("kvstore/"+name)))
	}
	spec := supervisor.Spec{Strategy: supervisor.OneForOne, MaxR: cfg.MaxR, MaxT: cfg.MaxT,
		Children: children, Name: "kvstore", Logger: cfg.Logger}
	sup, err := st.sys.Spawn(ctx, supervisor.New(spec), actor.Name("kvstore"))
	if err != nil {
		st.closeDBs()
		return nil, fmt.Errorf("kvstore: start shards: %w", err)
	}
	st.sup = sup
	if err := st.collectRefs(ctx); err != nil {
		_ = st.Close(ctx)
		return nil, err
	}
	node.RegisterKind(DirectoryKind, st.directoryKind)
	if cfg.NoCatchUp {
		st.caughtUpOnce.Do(func() { close(st.caughtUp) })
		return st, nil
	}
	cu, err := st.sys.Spawn(ctx, func() actor.Actor { return &catchUpper{st: st} }, actor.Name("kvstore/catch-up"))
	if err != nil {
		_ = st.Close(ctx)
		return nil, fmt.Errorf("kvstore: start the catch-up: %w", err)
	}
	st.catchUpRef = cu
	return st, nil
}

// barrierID names no child: a request for it is answered, with
// supervisor.ErrNotFound, only after the supervisor's work under way (the
// start of the shards on other loops) is done.
const barrierID = "\x00kvstore-barrier"

// collectRefs waits until the supervisor has started every shard and
// records their refs.
func (st *Store) collectRefs(ctx context.Context) error {
	if _, err := st.sys.Ask(ctx, st.sup, supervisor.DeleteChild{ID: barrierID}); !errors.Is(err, supervisor.ErrNotFound) {
		return fmt.Errorf("kvstore: start shards: %v", err)
	}
	v, err := st.sys.Ask(ctx, st.sup, supervisor.WhichChildren{})
	if err != nil {
		return fmt.Errorf("kvstore: list shards: %w", err)
	}
	byID := map[string]actor.Ref{}
	for _, ci := range v.([]supervisor.ChildInfo) {
		byID[ci.ID] = ci.Ref
	}
	for _, d := range st.disks {
		r := byID[shardName(d.id)]
		if r.IsZero() {
			return fmt.Errorf("kvstore: shard %d did not start", d.id)
		}
		st.local = append(st.local, ShardRef{ID: d.id, Ref: r})
	}
	return nil
}

func shardName(id int) string { return fmt.Sprintf("shard-%03d", id) }

// loadToken reads the token file, or makes a token and writes it.
func loadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("kvstore: token: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("kvstore: token: %w", err)
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("kvstore: token: %w", err)
	}
	return t, nil
}

// Token returns the store's token, the capability a client dials with.
func (st *Store) Token() string { return st.cfg.Token }

// Supervisor returns the ref of the supervisor of this daemon's replicas.
func (st *Store) Supervisor() actor.Ref { return st.sup }

// Directory returns what a directory actor answers: the store's shape and
// this daemon's replicas.
func (st *Store) Directory() DirReply {
	return DirReply{Shards: st.cfg.Shards, Replicas: st.cfg.Replicas, Members: slices.Clone(st.members), Local: slices.Clone(st.local)}
}

// Stats counts a store's commits and its catch-up.
type Stats struct {
	Commits uint64 // storage transactions committed (each one fsync), for all of this daemon's replicas
	Writes  uint64 // versions they wrote (puts, deletes, write-backs, catch-up)
	// CaughtUp counts the entries the catch-up got from other replicas,
	// CatchUpPasses its passes done (every local replica read one peer's
	// copy through), and CatchUpDone whether it is over (both passes, or
	// the store is closed, or has no peers).
	CaughtUp      uint64
	CatchUpPasses uint64
	CatchUpDone   bool
}

// Stats returns the counters of this daemon's replicas.
func (st *Store) Stats() Stats {
	s := Stats{Commits: st.com.txs.Load(), CaughtUp: st.catchUp.entries.Load(), CatchUpPasses: st.catchUp.passes.Load()}
	for _, d := range st.disks {
		s.Writes += d.writes.Load()
	}
	select {
	case <-st.caughtUp:
		s.CatchUpDone = true
	default:
	}
	return s
}

// CaughtUp is closed once the replicas of this daemon have caught up with
// the others, both passes (see Install), or the store is closed.
func (st *Store) CaughtUp() <-chan struct{} { return st.caughtUp }

// Close stops the catch-up and the replicas (through their supervisor),
// waits for the commits in flight and closes the bolt file (not a
// Config.Storage). The system and
// node keep running. Writes not yet acknowledged may fail with an error or
// a timeout.
func (st *Store) Close(ctx context.Context) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	st.mu.Unlock()
	if !st.catchUpRef.IsZero() {
		if err := st.sys.Stop(ctx, st.catchUpRef); err != nil && !errors.Is(err, actor.ErrDead) && !errors.Is(err, actor.ErrShutdown) {
			return fmt.Errorf("kvstore: stop the catch-up: %w", err)
		}
	}
	var errs []error
	if !st.sup.IsZero() {
		if _, err := st.sys.Ask(ctx, st.sup, supervisor.Shutdown{}); err != nil &&
			!errors.Is(err, actor.ErrShutdown) && !errors.Is(err, actor.ErrDead) {
			errs = append(errs, fmt.Errorf("kvstore: stop shards: %w", err))
		}
	}
	done := make(chan struct{})
	go func() {
		for _, d := range st.disks {
			d.pending.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(append(errs, fmt.Errorf("kvstore: waiting for commits: %w", ctx.Err()))...)
	}
	if _, err := st.sys.Ask(ctx, st.com.ref, stopCommitter{}); err != nil && !errors.Is(err, actor.ErrShutdown) && !errors.Is(err, actor.ErrDead) {
		errs = append(errs, fmt.Errorf("kvstore: stop the committer: %w", err))
	}
	errs = append(errs, st.closeDBs())
	return errors.Join(errs...)
}

func (st *Store) closeDBs() error {
	st.com.close()
	if !st.ownDB {
		return nil
	}
	return st.db.Close()
}

func (st *Store) isClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closed
}

// directoryKind makes a directory actor for a client that knows the token.
func (st *Store) directoryKind(args any) (actor.Factory, error) {
	tok, _ := args.(string)
	if subtle.ConstantTimeCompare([]byte(tok), []byte(st.cfg.Token)) != 1 {
		return nil, ErrBadToken
	}
	if st.isClosed() {
		return nil, ErrClosed
	}
	rep := st.Directory()
	return func() actor.Actor { return &directory{rep: rep} }, nil
}
