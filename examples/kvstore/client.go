package kvstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
	"github.com/actord/actord/remote"
)

// DefaultTimeout bounds a client request whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// ReadThrifty is how long a read (or a write's first phase) waits for the
// replies of the fastest majority of a shard's replicas, which it asks
// first, before it asks the others too. It asks them at once when one of
// the first fails.
const ReadThrifty = 20 * time.Millisecond

// ErrNotWritten means a Put or Delete failed before any replica was asked
// to store it (its first phase, which reads the key's newest stamp, could
// not reach a majority): the write did not happen.
var ErrNotWritten = errors.New("kvstore: the write was not applied")

// Table is what a client knows of a store: its shape and a ref per replica.
type Table struct {
	Shards   int
	Replicas int
	Members  []string      // sorted remote addresses of the daemons
	Refs     [][]actor.Ref // by shard, then by replica as Placement orders them; the zero Ref for a replica not reached
	Missing  [][]error     // the same: why a ref is missing (nil when present)
}

// Hosts returns the addresses of the daemons that replicate shard id, in
// the order of Refs[id].
func (t Table) Hosts(id int) []string { return Placement(t.Shards, t.Replicas, t.Members)[id] }

func (t Table) clone() Table {
	c := t
	c.Members = slices.Clone(t.Members)
	c.Refs, c.Missing = make([][]actor.Ref, len(t.Refs)), make([][]error, len(t.Missing))
	for i := range t.Refs {
		c.Refs[i], c.Missing[i] = slices.Clone(t.Refs[i]), slices.Clone(t.Missing[i])
	}
	return c
}

// Client reads and writes a store from plain goroutines. It is safe for
// concurrent use.
//
// Every shard has its replicas on several daemons (see Placement), and
// every request is a quorum call (package quorum) to them, that needs a
// majority: the register protocol of Attiya, Bar-Noy and Dolev (ABD), with
// multiple writers. A Put first reads the newest stamp of the key from a
// majority, then stores the value with a newer stamp (the counter plus
// one, and a writer id unique to this write: the client's random id plus
// the number of its writes) on a majority; each replica keeps
// the version with the newest stamp and acknowledges only once it holds
// it, or a newer one, durably. A Get reads the versions of a majority and
// returns the newest; if not a majority holds it yet (a write in progress,
// or one that failed half-way), it first stores it on a majority itself,
// so that no later Get can return an older version. Any two majorities
// meet, so the store is linearizable and available while a majority of
// each shard's replicas is up.
//
// A client made by Dial keeps its table fresh: when a replica's ref names
// an actor that is gone (actor.ErrDead: its daemon restarted) or a node
// that is down (remote.ErrNodeDown), it fetches that daemon's directory
// again, and retries the request if it could not reach a majority without
// it. A failure that comes after its request returned (the other replicas
// were faster) starts a fetch too, or schedules one for when the rate
// limit allows it, so that even an idle client replaces a dead ref (unless
// the fetch fails or brings the same ref back: then the next request that
// sees it failing asks again). Every step of the protocol may be retried
// safely (reads, and a Write of the same version). Fetches are bounded: at
// most one per daemon at a time, which the requests that need it wait for (within their own
// deadline); none sooner than RefreshInterval after a successful one; and
// after a failed one, none for a backoff that doubles from RefreshInterval
// up to MaxRefreshBackoff (RefreshInterval when the fetch was refused
// unsent, its daemon being known down), during which requests that need a
// fetch fail at once with their own error.
//
// The calls about one shard go through one quorum.Caller, so that the
// requests a goroutine makes one after the other reach each replica in
// that order.
//
// Reads (a Get, a write's first phase) of one shard are batched: at most
// readsInFlight of them run at once, and the ones made meanwhile go
// together in one GetMany when a running one ends. Each read still gets
// its versions from a majority after it was made and before it returns.
type Client struct {
	sys     *actor.System
	mgr     *quorum.Manager
	callers []*quorum.Caller
	timeout time.Duration
	// writer is the client's random id; writes counts its writes. A
	// write's stamp carries writer+writes (see newStamp), so no two writes
	// of one client, concurrent ones included, share a stamp.
	writer uint64
	writes atomic.Uint64
	cur    atomic.Pointer[view] // replaced, never modified
	dir    *refresher           // nil: the table is fixed
	reads  []readBatch          // by shard
}

// readsInFlight is how many reads (quorum calls of Get or GetMany) of one
// shard a client runs at once; the reads made meanwhile wait and go
// together in one GetMany when one of them ends. Under load a read then
// costs a fraction of a request per replica, not one each; alone, a read
// is a Get as before.
const readsInFlight = 2

// readBatch is the reads of one shard: how many run, and those waiting.
type readBatch struct {
	mu      sync.Mutex
	running int
	waiting []*waitingRead
}

// waitingRead is a read waiting for a batch, and then its outcome.
type waitingRead struct {
	g    Get
	done chan struct{} // closed once res and err are set
	res  readResult
	err  error
}

// view is a table and the quorum configurations of its shards.
type view struct {
	tab  Table
	cfgs []quorum.Configuration // by shard; the zero Configuration when fewer than a majority of replicas have a ref
	// hosts maps each replica ref of tab to its member, made at the
	// first stale failure (memberOf), not per view: most views never
	// need it.
	hostsOnce sync.Once
	hosts     map[actor.Ref]string
}

// RefreshInterval is the shortest time between two directory fetches of one
// daemon by a client; MaxRefreshBackoff bounds the interval after failed
// fetches, which doubles from RefreshInterval.
const (
	RefreshInterval   = 100 * time.Millisecond
	MaxRefreshBackoff = 2 * time.Second
)

// maxAttempts bounds the quorum calls of one step of a request: the first
// and the retries after refreshing stale refs.
const maxAttempts = 3

// A step that could not reach a majority because replicas' nodes were down
// is tried again after a pause, while they reconnect: up to notSentRetries
// times, pausing from notSentPause, doubling, within the request's
// context. So a connection lost for a moment (a missed heartbeat) costs a
// pause, not a failed request.
const (
	notSentRetries = 6
	notSentPause   = 10 * time.Millisecond
)

// NewClient returns a client over sys (which must reach the refs: the same
// system, or one with a remote.Node) for the replicas in tab. timeout
// bounds requests whose context has no deadline (DefaultTimeout if 0). Its
// table is fixed: a request through a stale ref fails (use Dial for a
// client that refreshes it). It spawns one quorum.Caller per loop of sys;
// Close stops them.
func NewClient(sys *actor.System, tab Table, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if tab.Shards <= 0 || len(tab.Refs) != tab.Shards {
		return nil, fmt.Errorf("kvstore: client: a table of %d shards with %d replica lists", tab.Shards, len(tab.Refs))
	}
	cl := &Client{sys: sys, timeout: timeout, reads: make([]readBatch, tab.Shards)}
	mgr, err := quorum.NewManager(sys, quorum.ManagerConfig{Timeout: timeout, OnFailure: cl.askFailed})
	if err != nil {
		return nil, err
	}
	cl.mgr = mgr
	for i := range sys.Loops() {
		c, err := mgr.NewCaller(actor.OnLoop(i))
		if err != nil {
			_ = mgr.Close(context.Background())
			return nil, err
		}
		cl.callers = append(cl.callers, c)
	}
	var id [8]byte
	for cl.writer == 0 {
		_, _ = rand.Read(id[:])
		cl.writer = binary.LittleEndian.Uint64(id[:])
	}
	cl.cur.Store(cl.newView(tab.clone()))
	return cl, nil
}

// Close stops the client's quorum callers: requests in flight fail. It
// starts no directory fetch after it returns.
func (cl *Client) Close(ctx context.Context) error {
	if d := cl.dir; d != nil {
		d.mu.Lock()
		d.closed = true
		for _, mf := range d.members {
			if mf.retry != nil {
				mf.retry.Stop()
				mf.retry = nil
			}
		}
		d.mu.Unlock()
	}
	return cl.mgr.Close(ctx)
}

// newView makes the configurations of tab's shards: the replicas with a
// ref, under a threshold of a majority of all the shard's replicas (a
// missing one counts as down).
func (cl *Client) newView(tab Table) *view { return newView(cl.mgr, tab) }

// newView makes the configurations of tab's shards with mgr (see
// Client.newView).
func newView(mgr *quorum.Manager, tab Table) *view {
	v := &view{tab: tab, cfgs: make([]quorum.Configuration, tab.Shards)}
	for id, refs := range tab.Refs {
		var have []actor.Ref
		for _, r := range refs {
			if !r.IsZero() {
				have = append(have, r)
			}
		}
		q := len(refs)/2 + 1
		if len(have) >= q {
			// An error leaves the zero Configuration: the shard is unavailable.
			v.cfgs[id], _ = mgr.NewConfiguration(quorum.Threshold(q, q), have...)
		}
	}
	return v
}

// unavailable is the error of a shard without a majority of refs.
func (v *view) unavailable(id int) error {
	var why []error
	for j, e := range v.tab.Missing[id] {
		if e != nil {
			why = append(why, fmt.Errorf("replica %d: %w", j, e))
		}
	}
	return fmt.Errorf("%w: shard %d: fewer than a majority of its replicas reached: %w", ErrUnavailable, id, errors.Join(why...))
}

// LocalTable returns a table of the replicas of the given stores, for a
// client in the same process as the stores (tests, benchmarks, a single
// daemon).
func LocalTable(stores ...*Store) Table {
	var t Table
	for _, st := range stores {
		if t.Refs == nil {
			t.Shards, t.Replicas, t.Members = st.cfg.Shards, st.cfg.Replicas, slices.Clone(st.members)
			t.Refs, t.Missing = make([][]actor.Ref, t.Shards), make([][]error, t.Shards)
			for id := range t.Shards {
				n := len(t.Hosts(id))
				t.Refs[id], t.Missing[id] = make([]actor.Ref, n), make([]error, n)
			}
		}
		self := st.node.Addr()
		for _, s := range st.local {
			if j := slices.Index(t.Hosts(s.ID), self); j >= 0 {
				t.Refs[s.ID][j] = s.Ref
			}
		}
	}
	for id, refs := range t.Refs {
		for j, r := range refs {
			if r.IsZero() {
				t.Missing[id][j] = fmt.Errorf("%w: shard %d replica %d: its store was not given", ErrUnavailable, id, j)
			}
		}
	}
	return t
}

// Dial fetches a store's table through the daemon at addr and then every
// other member, with the store's token, and returns a client on node's
// system that keeps the table fresh (see Client). A member that cannot be
// reached leaves its replicas missing (until a fetch of its directory
// succeeds) rather than failing Dial; Dial fails only if addr itself
// cannot be reached.
func Dial(ctx context.Context, node *remote.Node, addr, token string, timeout time.Duration) (*Client, error) {
	if err := RegisterTypes(node); err != nil {
		return nil, err
	}
	first, err := fetchDir(ctx, node, addr, token)
	if err != nil {
		return nil, fmt.Errorf("kvstore: dial %s: %w", addr, err)
	}
	if first.Shards <= 0 || first.Replicas <= 0 || len(first.Members) == 0 ||
		first.Shards > maxShards || first.Replicas > maxReplicas || len(first.Members) > maxMembers {
		return nil, fmt.Errorf("kvstore: dial %s: bad directory: %d shards, %d replicas, %d members", addr, first.Shards, first.Replicas, len(first.Members))
	}
	t := Table{Shards: first.Shards, Replicas: first.Replicas, Members: first.Members,
		Refs: make([][]actor.Ref, first.Shards), Missing: make([][]error, first.Shards)}
	for id := range t.Shards {
		n := len(t.Hosts(id))
		t.Refs[id], t.Missing[id] = make([]actor.Ref, n), make([]error, n)
		for j := range n {
			t.Missing[id][j] = fmt.Errorf("%w: shard %d replica %d: not fetched yet", ErrUnavailable, id, j)
		}
	}
	cl, err := NewClient(node.System(), t, timeout)
	if err != nil {
		return nil, err
	}
	cl.dir = &refresher{now: time.Now, members: map[string]*memberFetch{},
		fetch: func(ctx context.Context, m string) (DirReply, error) { return fetchDir(ctx, node, m, token) }}
	cl.fetched(addr, first, nil)
	for _, m := range t.Members {
		if m != addr {
			rep, err := fetchDir(ctx, node, m, token)
			cl.fetched(m, rep, err)
		}
	}
	return cl, nil
}

// maxShards, maxReplicas and maxMembers bound the shape a directory may
// announce, so that a hostile daemon cannot make a client allocate
// without end (a table holds shards × replicas refs).
const (
	maxShards   = 1 << 16
	maxReplicas = 15
	maxMembers  = 4096
)

// refresher bounds the directory fetches of a client: one per member at a
// time, spaced by RefreshInterval, or by a backoff after failures.
type refresher struct {
	fetch   func(ctx context.Context, member string) (DirReply, error)
	now     func() time.Time
	mu      sync.Mutex
	members map[string]*memberFetch
	closed  bool          // by Client.Close: no more fetches
	fetches atomic.Uint64 // fetches started, Dial's included
}

// memberFetch is the fetch state of one member.
type memberFetch struct {
	running chan struct{} // closed when the fetch in flight ends; nil if none
	next    time.Time     // no new fetch before then
	backoff time.Duration // the interval after the last failure; 0 after a success
	retry   *time.Timer   // a fetch scheduled by fetchSoon; nil if none
}

// fetched records a fetch of member m (done with rep, or failed with err):
// it updates the table, then the fetch's rate limit.
func (cl *Client) fetched(m string, rep DirReply, err error) {
	cl.apply(m, rep, err)
	d := cl.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	mf := d.member(m)
	switch {
	case err == nil:
		mf.backoff = 0
		mf.next = d.now().Add(RefreshInterval)
	case errors.Is(err, remote.ErrNotSent):
		// Refused by this client's own node, the member being known down:
		// the member saw nothing, so there is no load to back off from,
		// and the next fetch should find it as soon as it is back.
		mf.backoff = RefreshInterval
		mf.next = d.now().Add(mf.backoff)
	default:
		mf.backoff = min(max(2*mf.backoff, RefreshInterval), MaxRefreshBackoff)
		mf.next = d.now().Add(mf.backoff)
	}
}

func (d *refresher) member(m string) *memberFetch {
	mf := d.members[m]
	if mf == nil {
		mf = &memberFetch{}
		d.members[m] = mf
	}
	return mf
}

// apply puts what member m's directory said (or why it could not be
// fetched) into a new view. A failed fetch keeps the refs the table has
// (they may still work; if not, their requests say why).
func (cl *Client) apply(m string, rep DirReply, err error) {
	for {
		old := cl.cur.Load()
		if err == nil && (rep.Shards != old.tab.Shards || rep.Replicas != old.tab.Replicas || !slices.Equal(rep.Members, old.tab.Members)) {
			err = fmt.Errorf("kvstore: %s describes another store: %d shards of %d replicas, members %v", m, rep.Shards, rep.Replicas, rep.Members)
		}
		t := old.tab.clone()
		hosts := Placement(t.Shards, t.Replicas, t.Members)
		for id := range hosts {
			j := slices.Index(hosts[id], m)
			switch {
			case j < 0:
			case err != nil:
				if t.Refs[id][j].IsZero() {
					t.Missing[id][j] = fmt.Errorf("%w: shard %d replica %d on %s: %v", ErrUnavailable, id, j, m, err)
				}
			default:
				t.Refs[id][j] = actor.Ref{}
				t.Missing[id][j] = fmt.Errorf("%w: shard %d replica %d: not hosted by %s", ErrUnavailable, id, j, m)
			}
		}
		if err == nil {
			for _, s := range rep.Local {
				if s.ID < 0 || s.ID >= t.Shards || s.Ref.IsZero() {
					continue
				}
				if j := slices.Index(hosts[s.ID], m); j >= 0 {
					t.Refs[s.ID][j], t.Missing[s.ID][j] = s.Ref, nil
				}
			}
		}
		if cl.cur.CompareAndSwap(old, cl.newView(t)) {
			return
		}
	}
}

// refresh brings a fresher ref for replica j of shard id than failed (the
// zero Ref for a missing one) and reports whether the table now has one.
// It waits, within ctx, for the fetch of the replica's member in flight,
// or starts one if the member's rate limit allows. If the last fetch
// succeeded less than RefreshInterval ago it waits for the interval to
// pass (if ctx allows); if the last one failed and its backoff runs, it
// does not wait.
func (cl *Client) refresh(ctx context.Context, id, j int, failed actor.Ref) bool {
	if cl.dir == nil {
		return false
	}
	fresh := func() bool {
		r := cl.cur.Load().tab.Refs[id][j]
		return !r.IsZero() && r != failed
	}
	m := cl.cur.Load().tab.Hosts(id)[j]
	for range 2 {
		if fresh() {
			return true // refreshed since the request took its ref
		}
		done, wait := cl.startFetch(m)
		switch {
		case done != nil:
			select {
			case <-done:
				return fresh()
			case <-ctx.Done():
				return false
			}
		case wait <= 0:
			return false
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	return fresh()
}

// startFetch returns the channel of member m's fetch in flight, starting
// one if none is and the rate limit allows. If it does not, it returns how
// long until it does after a successful fetch, or 0 during the backoff
// after a failed one. The fetch runs on its own goroutine, bounded by the
// client's timeout, so that a request that gives up does not cancel it for
// the others.
func (cl *Client) startFetch(m string) (<-chan struct{}, time.Duration) {
	d := cl.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	mf := d.member(m)
	if mf.running != nil {
		return mf.running, 0
	}
	if d.closed {
		return nil, 0
	}
	if now := d.now(); now.Before(mf.next) {
		if mf.backoff > 0 {
			return nil, 0
		}
		return nil, mf.next.Sub(now)
	}
	ch := make(chan struct{})
	mf.running = ch
	d.fetches.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cl.timeout)
		rep, err := d.fetch(ctx, m)
		cancel()
		cl.fetched(m, rep, err)
		d.mu.Lock()
		mf.running = nil
		d.mu.Unlock()
		close(ch)
	}()
	return ch, 0
}

// fetchDir spawns a directory actor on addr and asks it.
func fetchDir(ctx context.Context, node *remote.Node, addr, token string) (DirReply, error) {
	ctx, cancel := withDefault(ctx, DefaultTimeout)
	defer cancel()
	r, err := node.Spawn(ctx, addr, DirectoryKind, token)
	if err != nil {
		return DirReply{}, err
	}
	v, err := node.System().Ask(ctx, r, DirRequest{})
	if err != nil {
		return DirReply{}, err
	}
	rep, ok := v.(DirReply)
	if !ok {
		return DirReply{}, fmt.Errorf("kvstore: directory answered %T", v)
	}
	return rep, nil
}

func withDefault(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Table returns a copy of the client's current table.
func (cl *Client) Table() Table { return cl.cur.Load().tab.clone() }

// Stats returns the quorum statistics of the replicas of shard id, in the
// order of Table().Refs[id] (zero for a replica without a ref).
func (cl *Client) Stats(id int) []quorum.NodeStats {
	v := cl.cur.Load()
	out := make([]quorum.NodeStats, len(v.tab.Refs[id]))
	cfg := v.cfgs[id]
	for j, r := range v.tab.Refs[id] {
		if i := cfg.Index(r); i >= 0 && !r.IsZero() {
			out[j] = cfg.Node(i).Stats()
		}
	}
	return out
}

// The quorum calls of the protocol.

// readResult is the outcome of a read's first phase: the newest version of
// a majority, and whether a majority holds it already.
type readResult struct {
	e        Entry
	majority bool
}

// readQuorum settles once a majority has answered, with the newest of
// their versions.
func readQuorum(_ Get, rs *quorum.Replies[Entry]) (readResult, bool, error) {
	if !rs.IsQuorum(quorum.Read) {
		if !rs.Reachable(quorum.Read) {
			return readResult{}, false, quorum.ErrUnreachable
		}
		return readResult{}, false, nil
	}
	vals := rs.Values()
	best := vals[0].Value
	for _, r := range vals[1:] {
		if best.TS.Less(r.Value.TS) {
			best = r.Value
		}
	}
	cfg := rs.Config()
	var holders quorum.NodeSet
	for _, r := range vals {
		if r.Value.TS == best.TS {
			holders.Add(cfg.Index(r.Node.Ref()))
		}
	}
	return readResult{e: best, majority: cfg.IsQuorum(quorum.Write, holders)}, true, nil
}

// storeQuorum settles once a majority holds the version durably.
func storeQuorum(_ Write, rs *quorum.Replies[struct{}]) (struct{}, bool, error) {
	if rs.IsQuorum(quorum.Write) {
		return struct{}{}, true, nil
	}
	if !rs.Reachable(quorum.Write) {
		return struct{}{}, false, quorum.ErrUnreachable
	}
	return struct{}{}, false, nil
}

// manyQuorum settles once a majority has answered a GetMany with an Entry
// per key, with the newest version of each key among them. A reply with
// another number of entries counts as no reply.
func manyQuorum(req GetMany, rs *quorum.Replies[Entries]) ([]readResult, bool, error) {
	cfg := rs.Config()
	var good, bad NodeSet
	var vals []quorum.Reply[Entries]
	for _, r := range rs.Values() {
		if len(r.Value.E) == len(req.Gets) {
			good.Add(cfg.Index(r.Node.Ref()))
			vals = append(vals, r)
		} else {
			bad.Add(cfg.Index(r.Node.Ref()))
		}
	}
	if !cfg.IsQuorum(quorum.Read, good) {
		possible := good
		for i := range cfg.Size() {
			if !good.Has(i) && !bad.Has(i) && !failed(rs, i) {
				possible.Add(i)
			}
		}
		if !cfg.IsQuorum(quorum.Read, possible) {
			return nil, false, quorum.ErrUnreachable
		}
		return nil, false, nil
	}
	out := make([]readResult, len(req.Gets))
	for k := range req.Gets {
		best := vals[0].Value.E[k]
		for _, r := range vals[1:] {
			if e := r.Value.E[k]; best.TS.Less(e.TS) {
				best = e
			}
		}
		var holders quorum.NodeSet
		for _, r := range vals {
			if r.Value.E[k].TS == best.TS {
				holders.Add(cfg.Index(r.Node.Ref()))
			}
		}
		out[k] = readResult{e: best, majority: cfg.IsQuorum(quorum.Write, holders)}
	}
	return out, true, nil
}

// NodeSet is quorum.NodeSet, for short.
type NodeSet = quorum.NodeSet

// failed reports whether node i of the call's configuration failed.
func failed[Rep any](rs *quorum.Replies[Rep], i int) bool {
	for _, f := range rs.Failures() {
		if rs.Config().Index(f.Node.Ref()) == i {
			return true
		}
	}
	return false
}

var (
	readSpec  = quorum.Spec[Get, Entry, readResult]{Quorum: readQuorum, Thrifty: ReadThrifty, Kind: quorum.Read}
	manySpec  = quorum.Spec[GetMany, Entries, []readResult]{Quorum: manyQuorum, Thrifty: ReadThrifty, Kind: quorum.Read}
	storeSpec = quorum.Spec[Write, struct{}, struct{}]{Quorum: storeQuorum}
)

// read runs the first phase of a Get or a Put: the newest version of g.K
// among a majority of its replicas. If readsInFlight reads of the shard
// run, it waits for the next batch of them (within ctx).
func (cl *Client) read(ctx context.Context, id int, g Get) (readResult, error) {
	b := &cl.reads[id]
	b.mu.Lock()
	if b.running < readsInFlight || len(b.waiting) >= 4*MaxGetMany {
		// A free slot; or, with that many waiting, one more read alone
		// costs less than making the batches wait longer.
		b.running++
		b.mu.Unlock()
		res, err := step(ctx, cl, id, g, readSpec)
		cl.readDone(id)
		return res, err
	}
	w := &waitingRead{g: g, done: make(chan struct{})}
	b.waiting = append(b.waiting, w)
	b.mu.Unlock()
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		// The batch goes on without this read: a read changes nothing.
		return readResult{}, fmt.Errorf("%w: shard %d: waiting for a batch of reads: %w", ErrUnavailable, id, ctx.Err())
	}
}

// readDone ends a read of shard id: the next batch of waiting reads, if
// any, takes its slot.
func (cl *Client) readDone(id int) {
	b := &cl.reads[id]
	b.mu.Lock()
	if len(b.waiting) == 0 {
		b.running--
		b.mu.Unlock()
		return
	}
	n := min(len(b.waiting), MaxGetMany)
	batch := b.waiting[:n:n]
	b.waiting = slices.Clone(b.waiting[n:])
	b.mu.Unlock()
	go cl.readMany(id, batch)
}

// readMany reads a batch of waiting reads with one GetMany quorum call
// (bounded by the client's timeout: each read waits within its own
// context) and answers each.
func (cl *Client) readMany(id int, batch []*waitingRead) {
	defer cl.readDone(id)
	ctx, cancel := context.WithTimeout(context.Background(), cl.timeout)
	defer cancel()
	req := GetMany{Gets: make([]Get, len(batch))}
	for i, w := range batch {
		req.Gets[i] = w.g
	}
	res, err := step(ctx, cl, id, req, manySpec)
	for i, w := range batch {
		if err != nil {
			w.err = err
		} else {
			w.res = res[i]
		}
		close(w.done)
	}
}

// step runs one quorum call of a request to shard id, retrying it (every
// step may be retried) after refreshing stale refs, or after a pause when
// the replicas' nodes were down; see Client.
func step[Req, Rep, Res any](ctx context.Context, cl *Client, id int, req Req, spec quorum.Spec[Req, Rep, Res]) (Res, error) {
	var zero Res
	pause, waits := notSentPause, 0
	for attempt := 1; ; attempt++ {
		v := cl.cur.Load()
		cfg := v.cfgs[id]
		if cfg.Size() == 0 {
			if attempt < maxAttempts && cl.refreshMissing(ctx, v, id) {
				continue
			}
			return zero, v.unavailable(id)
		}
		res, err := quorum.Call(ctx, cl.callers[id%len(cl.callers)], cfg, req, spec)
		if err == nil {
			cl.failing(v, id, cfg) // refresh for the next requests
			return res, nil
		}
		var qe *quorum.Error
		if !errors.As(err, &qe) {
			return zero, err
		}
		err = fmt.Errorf("%w: shard %d: %w", ErrUnavailable, id, err)
		if attempt >= maxAttempts || ctx.Err() != nil {
			return zero, err
		}
		if cl.stale(ctx, v, id, qe.Failures) {
			continue
		}
		if allDown(qe.Failures) && waits < notSentRetries && sleepCtx(ctx, pause) {
			waits, pause = waits+1, pause*2
			attempt--
			continue
		}
		return zero, err
	}
}

// stale waits (within ctx) for a fetch of the directory of every member
// whose replica failed with actor.ErrDead or remote.ErrNodeDown, and
// reports whether one brought a fresher ref.
func (cl *Client) stale(ctx context.Context, v *view, id int, failures []quorum.Failure) bool {
	if cl.dir == nil {
		return false
	}
	refreshed := false
	for _, f := range failures {
		if !isStale(f.Err) {
			continue
		}
		if j := slices.Index(v.tab.Refs[id], f.Node.Ref()); j >= 0 {
			refreshed = cl.refresh(ctx, id, j, f.Node.Ref()) || refreshed
		}
	}
	return refreshed
}

// isStale reports whether an ask's error says that its ref may be stale.
func isStale(err error) bool {
	return errors.Is(err, actor.ErrDead) || errors.Is(err, remote.ErrNodeDown)
}

// askFailed is the quorum manager's OnFailure: an ask to ref n failed with
// err, maybe after its call settled, when no request will look at it. If
// err says the ref may be stale and the table still holds it, the
// directory of the member that hosts it is fetched, now or as soon as the
// rate limit allows (fetchSoon). It runs on a caller's loop: it does not
// block.
func (cl *Client) askFailed(n *quorum.Node, err error) {
	if cl.dir == nil || !isStale(err) {
		return
	}
	if m, ok := cl.memberOf(n.Ref()); ok {
		cl.fetchSoon(m, n.Ref())
	}
}

// memberOf returns the member whose replica has ref r in the current
// table, if any.
func (cl *Client) memberOf(r actor.Ref) (string, bool) {
	v := cl.cur.Load()
	v.hostsOnce.Do(func() {
		ms := slices.Compact(slices.Sorted(slices.Values(v.tab.Members)))
		v.hosts = make(map[actor.Ref]string)
		for id, refs := range v.tab.Refs {
			for j, ref := range refs {
				if !ref.IsZero() && len(ms) > 0 {
					v.hosts[ref] = ms[(id+j)%len(ms)] // as Placement places it
				}
			}
		}
	})
	m, ok := v.hosts[r]
	return m, ok
}

// fetchSoon starts a fetch of member m's directory, for its stale ref r,
// unless one is in flight or the backoff after a failed one runs (then the
// next request that sees r failing asks again: see failing). If the last
// fetch succeeded less than RefreshInterval ago, it schedules one for when
// the interval has passed, at most one per member, which happens only if
// the table still holds r then.
func (cl *Client) fetchSoon(m string, r actor.Ref) {
	done, wait := cl.startFetch(m)
	if done != nil || wait <= 0 {
		return
	}
	d := cl.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	mf := d.member(m)
	if mf.retry != nil || d.closed {
		return
	}
	mf.retry = time.AfterFunc(wait, func() {
		d.mu.Lock()
		mf.retry = nil
		d.mu.Unlock()
		if got, ok := cl.memberOf(r); ok && got == m {
			cl.fetchSoon(m, r)
		}
	})
}

// failing starts a fetch of the directory of every member whose replica
// of shard id failed its last ask with an error that isStale: a call that
// succeeded without it may have settled before its failure came.
func (cl *Client) failing(v *view, id int, cfg quorum.Configuration) {
	if cl.dir == nil {
		return
	}
	for i := range cfg.Size() {
		n := cfg.Node(i)
		if !n.Failing() {
			continue
		}
		if st := n.Stats(); isStale(st.LastErr) {
			if j := slices.Index(v.tab.Refs[id], n.Ref()); j >= 0 {
				cl.startFetch(v.tab.Hosts(id)[j])
			}
		}
	}
}

// refreshMissing fetches the directories of the members whose replicas of
// shard id have no ref, and reports whether one brought one.
func (cl *Client) refreshMissing(ctx context.Context, v *view, id int) bool {
	refreshed := false
	for j, r := range v.tab.Refs[id] {
		if r.IsZero() {
			refreshed = cl.refresh(ctx, id, j, r) || refreshed
		}
	}
	return refreshed
}

// allDown reports whether every failure is a node down.
func allDown(failures []quorum.Failure) bool {
	for _, f := range failures {
		if !errors.Is(f.Err, remote.ErrNodeDown) {
			return false
		}
	}
	return len(failures) > 0
}

// Get returns the value of key and whether it is present. It sees every
// write acknowledged before it was called, and no write older than one a
// Get that returned before it saw (linearizability). It fails (with an
// error matching ErrUnavailable) when it cannot reach a majority of the
// key's replicas.
func (cl *Client) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	id := ShardOf(key, cl.cur.Load().tab.Shards)
	res, err := cl.read(ctx, id, Get{K: key})
	if err != nil {
		return nil, false, err
	}
	if !res.majority {
		// A write in progress, or one that stopped half-way: store it on
		// a majority before returning it, so that no later Get returns an
		// older version.
		if _, err := step(ctx, cl, id, Write{K: key, E: res.e}, storeSpec); err != nil {
			return nil, false, err
		}
	}
	if res.e.TS.IsZero() || res.e.Deleted {
		return nil, false, nil
	}
	return bytes.Clone(res.e.V), true, nil // the replica's own slice when local
}

// Put sets key to val and returns once a majority of the key's replicas
// hold it durably. An error matching ErrNotWritten means the write did not
// happen; after any other error it may have happened, or may happen
// still (a later Get that finds it on a replica completes it).
func (cl *Client) Put(ctx context.Context, key string, val []byte) error {
	if val == nil {
		val = []byte{}
	}
	return cl.write(ctx, key, Entry{V: bytes.Clone(val)})
}

// Delete removes key and returns once the removal is durable on a majority
// of the key's replicas. Its errors are those of Put. Deleting an absent
// key is not an error.
func (cl *Client) Delete(ctx context.Context, key string) error {
	return cl.write(ctx, key, Entry{Deleted: true})
}

// write stamps e newer than every version a majority holds, and stores it
// on a majority.
func (cl *Client) write(ctx context.Context, key string, e Entry) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	id := ShardOf(key, cl.cur.Load().tab.Shards)
	res, err := cl.read(ctx, id, Get{K: key, NoValue: true})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotWritten, err)
	}
	if res.e.TS.N == math.MaxUint64 {
		return fmt.Errorf("%w: key %q: its stamp counter is exhausted", ErrNotWritten, key)
	}
	e.TS = cl.newStamp(res.e.TS.N + 1)
	_, err = step(ctx, cl, id, Write{K: key, E: e}, storeSpec)
	return err
}

// newStamp returns the stamp of a write with counter n: its writer part
// is unique to this write. The client's id alone is not: two puts of one
// client running at once may read the same newest counter, and two writes
// under one stamp with different values break the register (each replica
// keeps whichever it gets first and acknowledges the other unstored).
// Offsets from a random 64-bit id keep writes of different clients apart
// too, but for a chance of about one in 2^64 per pair of writes.
func (cl *Client) newStamp(n uint64) Stamp {
	w := cl.writer + cl.writes.Add(1)
	if w == 0 {
		w = cl.writer + cl.writes.Add(1) // zero is no writer's
	}
	return Stamp{N: n, W: w}
}

// IsUnavailable reports whether err means the key's replicas could not be
// reached: too few of them, their nodes down, or the request timed out.
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, remote.ErrNodeDown) ||
		errors.Is(err, actor.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// CrashShard makes replica j of shard id panic (see the CrashShard
// message) with the store's token, and returns the error the crash
// produced: nil means the replica did not crash (which it always does with
// the right token). A fault-injection aid for demos and drills.
func (cl *Client) CrashShard(ctx context.Context, id, j int, token string) error {
	tab := cl.Table()
	if id < 0 || id >= tab.Shards || j < 0 || j >= len(tab.Refs[id]) {
		return fmt.Errorf("kvstore: crash: no replica %d of shard %d", j, id)
	}
	r := tab.Refs[id][j]
	if r.IsZero() {
		return tab.Missing[id][j]
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	_, err := cl.sys.Ask(ctx, r, CrashShard{Token: token})
	return err
}

// sleepCtx waits for d, or until ctx is done; it reports whether it waited
// the whole d with time left in ctx.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
