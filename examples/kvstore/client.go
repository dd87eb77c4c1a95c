package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// DefaultTimeout bounds a client request whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Table is what a client knows of a store: its shape and a ref per shard.
type Table struct {
	Shards  int
	Members []string    // sorted remote addresses of the daemons
	Refs    []actor.Ref // by shard; the zero Ref for a shard not reached
	Missing []error     // by shard: why its ref is missing (nil when present)
}

// Owner returns the address of the daemon that hosts shard id.
func (t Table) Owner(id int) string { return Placement(t.Shards, t.Members)[id] }

// Client reaches a store's shards from plain goroutines: it routes each
// key to its shard's ref and asks it. It is safe for concurrent use.
//
// A client made by Dial keeps its table fresh: when a request fails because
// its shard's ref names an actor that is gone (actor.ErrDead: the shard's
// daemon restarted, or its store was installed again) or a node that is
// down (remote.ErrNodeDown), it fetches that daemon's directory again and
// retries with the new ref (see Client.Get and Client.Put for which
// requests are retried). Fetches are bounded: at most one per daemon at a
// time, which the requests that need it wait for (within their own
// deadline); none sooner than RefreshInterval after a successful one (the
// requests wait for the interval to pass, if their deadline allows); and
// after a failed one, none for a backoff that doubles from RefreshInterval
// up to MaxRefreshBackoff (RefreshInterval when the fetch was refused
// unsent, its daemon being known down), during which requests that need a
// fetch fail at once with their own error.
type Client struct {
	sys     *actor.System
	timeout time.Duration
	tab     atomic.Pointer[Table] // replaced, never modified
	dir     *refresher            // nil: the table is fixed
}

// RefreshInterval is the shortest time between two directory fetches of one
// daemon by a client; MaxRefreshBackoff bounds the interval after failed
// fetches, which doubles from RefreshInterval.
const (
	RefreshInterval   = 100 * time.Millisecond
	MaxRefreshBackoff = 2 * time.Second
)

// maxAttempts bounds the asks of one request: the first and the retries
// with a ref refreshed after the previous one failed.
const maxAttempts = 3

// A request refused with remote.ErrNotSent (its daemon's node was known
// down: nothing was sent) is asked again through the same ref after a
// pause, while its node reconnects: up to notSentRetries times, pausing
// from notSentPause, doubling, within the request's context. These retries
// do not count against maxAttempts: a connection lost for a moment (a
// missed heartbeat) costs a pause, not a failed request.
const (
	notSentRetries = 6
	notSentPause   = 10 * time.Millisecond
)

// NewClient returns a client over sys (which must reach the refs: the same
// system, or one with a remote.Node) for the shards in tab. timeout bounds
// requests whose context has no deadline (DefaultTimeout if 0). Its table
// is fixed: a request through a stale ref fails (use Dial for a client that
// refreshes it).
func NewClient(sys *actor.System, tab Table, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cl := &Client{sys: sys, timeout: timeout}
	cl.tab.Store(&tab)
	return cl
}

// LocalTable returns a table of the shards of the given stores, for a client
// in the same process as the stores (tests, benchmarks, a single daemon).
func LocalTable(stores ...*Store) Table {
	var t Table
	for _, st := range stores {
		if t.Refs == nil {
			t.Shards, t.Members = st.cfg.Shards, slices.Clone(st.members)
			t.Refs = make([]actor.Ref, t.Shards)
			t.Missing = make([]error, t.Shards)
		}
		for _, s := range st.local {
			t.Refs[s.ID] = s.Ref
		}
	}
	for i, r := range t.Refs {
		if r.IsZero() {
			t.Missing[i] = fmt.Errorf("%w: shard %d: its store was not given", ErrUnavailable, i)
		}
	}
	return t
}

// Dial fetches a store's table through the daemon at addr and then every
// other member, with the store's token, and returns a client on node's
// system that keeps the table fresh (see Client). A member that cannot be
// reached leaves its shards missing (requests for them fail with
// ErrUnavailable until a fetch of its directory succeeds) rather than
// failing Dial; Dial fails only if addr itself cannot be reached.
func Dial(ctx context.Context, node *remote.Node, addr, token string, timeout time.Duration) (*Client, error) {
	if err := RegisterTypes(node); err != nil {
		return nil, err
	}
	first, err := fetchDir(ctx, node, addr, token)
	if err != nil {
		return nil, fmt.Errorf("kvstore: dial %s: %w", addr, err)
	}
	if first.Shards <= 0 || len(first.Members) == 0 {
		return nil, fmt.Errorf("kvstore: dial %s: empty directory", addr)
	}
	t := Table{Shards: first.Shards, Members: first.Members,
		Refs: make([]actor.Ref, first.Shards), Missing: make([]error, first.Shards)}
	for id := range t.Missing {
		t.Missing[id] = fmt.Errorf("%w: shard %d: not fetched yet", ErrUnavailable, id)
	}
	cl := NewClient(node.System(), t, timeout)
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

// refresher bounds the directory fetches of a client: one per member at a
// time, spaced by RefreshInterval, or by a backoff after failures.
type refresher struct {
	fetch   func(ctx context.Context, member string) (DirReply, error)
	now     func() time.Time
	mu      sync.Mutex
	members map[string]*memberFetch
	fetches atomic.Uint64 // fetches started, Dial's included
}

// memberFetch is the fetch state of one member.
type memberFetch struct {
	running chan struct{} // closed when the fetch in flight ends; nil if none
	next    time.Time     // no new fetch before then
	backoff time.Duration // the interval after the last failure; 0 after a success
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
// fetched) into a new table. A failed fetch keeps the refs the table has
// (they may still work; if not, their requests say why).
func (cl *Client) apply(m string, rep DirReply, err error) {
	for {
		old := cl.tab.Load()
		if err == nil && (rep.Shards != old.Shards || !slices.Equal(rep.Members, old.Members)) {
			err = fmt.Errorf("kvstore: %s describes another store: %d shards, members %v", m, rep.Shards, rep.Members)
		}
		t := Table{Shards: old.Shards, Members: old.Members,
			Refs: slices.Clone(old.Refs), Missing: slices.Clone(old.Missing)}
		owners := Placement(t.Shards, t.Members)
		for id, o := range owners {
			switch {
			case o != m:
			case err != nil:
				if t.Refs[id].IsZero() {
					t.Missing[id] = fmt.Errorf("%w: shard %d on %s: %v", ErrUnavailable, id, m, err)
				}
			default:
				t.Refs[id] = actor.Ref{}
				t.Missing[id] = fmt.Errorf("%w: shard %d: not hosted by %s", ErrUnavailable, id, m)
			}
		}
		if err == nil {
			for _, s := range rep.Local {
				if s.ID >= 0 && s.ID < t.Shards && owners[s.ID] == m && !s.Ref.IsZero() {
					t.Refs[s.ID], t.Missing[s.ID] = s.Ref, nil
				}
			}
		}
		if cl.tab.CompareAndSwap(old, &t) {
			return
		}
	}
}

// refresh brings a fresher ref for shard id than failed (the zero Ref for
// a missing shard) and reports whether the table now has one. It waits,
// within ctx, for the fetch of the shard's member in flight, or starts one
// if the member's rate limit allows. If the last fetch succeeded less
// than RefreshInterval ago it waits for the interval to pass (if ctx
// allows); if the last one failed and its backoff runs, it does not wait.
func (cl *Client) refresh(ctx context.Context, id int, failed actor.Ref) bool {
	if cl.dir == nil {
		return false
	}
	fresh := func() bool {
		r := cl.tab.Load().Refs[id]
		return !r.IsZero() && r != failed
	}
	m := cl.tab.Load().Owner(id)
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
func (cl *Client) Table() Table {
	t := *cl.tab.Load()
	t.Members, t.Refs, t.Missing = slices.Clone(t.Members), slices.Clone(t.Refs), slices.Clone(t.Missing)
	return t
}

// ask sends msg to key's shard. When the ask fails because the shard's ref
// is stale (see Client), it refreshes the ref and retries, at most
// maxAttempts asks in all, within ctx: always after actor.ErrDead (the
// message reached no actor, so it was not applied) and remote.ErrNotSent
// (the node was known down: nothing was sent), and after any other
// remote.ErrNodeDown only if retry is set (the message may have been
// delivered); otherwise a fetch is still started for the next requests.
func (cl *Client) ask(ctx context.Context, key string, msg any, retry bool) (any, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	id := ShardOf(key, cl.tab.Load().Shards)
	pause, waits := notSentPause, 0
	for attempt := 1; ; attempt++ {
		tab := cl.tab.Load()
		r := tab.Refs[id]
		if r.IsZero() {
			if attempt < maxAttempts && cl.refresh(ctx, id, r) {
				continue
			}
			if err := cl.tab.Load().Missing[id]; err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: shard %d", ErrUnavailable, id)
		}
		v, err := cl.sys.Ask(ctx, r, msg)
		if errors.Is(err, remote.ErrNotSent) && waits < notSentRetries && sleepCtx(ctx, pause) {
			waits, pause = waits+1, pause*2
			attempt--
			continue
		}
		switch {
		case err == nil || attempt >= maxAttempts:
			return v, err
		case errors.Is(err, actor.ErrDead), errors.Is(err, remote.ErrNotSent), retry && errors.Is(err, remote.ErrNodeDown):
			if !cl.refresh(ctx, id, r) {
				return v, err
			}
		case errors.Is(err, remote.ErrNodeDown):
			if cl.dir != nil {
				cl.startFetch(tab.Owner(id)) // for the next requests
			}
			return v, err
		default:
			return v, err
		}
	}
}

// Get returns the value of key and whether it is present. It sees every
// put acknowledged before it was sent. A client made by Dial retries a Get
// that failed with a stale ref (actor.ErrDead or remote.ErrNodeDown) once
// it has a fresher ref.
func (cl *Client) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := cl.ask(ctx, key, Get{K: key}, true)
	if err != nil {
		return nil, false, err
	}
	rep, ok := v.(GetReply)
	if !ok {
		return nil, false, fmt.Errorf("kvstore: get answered %T", v)
	}
	return bytes.Clone(rep.V), rep.OK, nil // the shard's own slice when local
}

// Put sets key to val and returns once the write is durable on the shard's
// daemon. An error means the write did not happen if it matches
// ErrShardCrashed, ErrClosed, ErrBadKey, ErrUnavailable, actor.ErrDead or
// remote.ErrNotSent, or a failed commit's error; otherwise (a timeout,
// another remote.ErrNodeDown) it may or may not have happened. A client
// made by Dial retries a Put that failed with actor.ErrDead (it reached no
// shard) or remote.ErrNotSent (its node was known down) once it has a
// fresher ref, but not one that failed otherwise with remote.ErrNodeDown,
// which may have been applied: retrying it could apply it again after
// another client's write of the key.
func (cl *Client) Put(ctx context.Context, key string, val []byte) error {
	if val == nil {
		val = []byte{}
	}
	_, err := cl.ask(ctx, key, Put{K: key, V: bytes.Clone(val)}, false)
	return err
}

// Delete removes key and returns once the removal is durable. Its errors
// and retries are those of Put.
func (cl *Client) Delete(ctx context.Context, key string) error {
	_, err := cl.ask(ctx, key, Delete{K: key}, false)
	return err
}

// IsUnavailable reports whether err means the key's shard could not be
// reached: missing from the table, its node down, or the request timed out.
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, remote.ErrNodeDown) ||
		errors.Is(err, actor.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// CrashShard makes shard id panic (see the CrashShard message) with the
// store's token, and returns the error the crash produced: nil means the
// shard did not crash (which it always does with the right token). A
// fault-injection aid for demos and drills.
func (cl *Client) CrashShard(ctx context.Context, id int, token string) error {
	tab := cl.Table()
	if id < 0 || id >= tab.Shards {
		return fmt.Errorf("kvstore: crash: no shard %d", id)
	}
	r := tab.Refs[id]
	if r.IsZero() {
		return tab.Missing[id]
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
