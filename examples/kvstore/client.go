package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
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
type Client struct {
	sys     *actor.System
	tab     Table
	timeout time.Duration
}

// NewClient returns a client over sys (which must reach the refs: the same
// system, or one with a remote.Node) for the shards in tab. timeout bounds
// requests whose context has no deadline (DefaultTimeout if 0).
func NewClient(sys *actor.System, tab Table, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{sys: sys, tab: tab, timeout: timeout}
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
// system. A member that cannot be reached leaves its shards missing
// (requests for them fail with ErrUnavailable) rather than failing Dial;
// Dial fails only if addr itself cannot be reached.
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
	add := func(rep DirReply) {
		for _, s := range rep.Local {
			if s.ID >= 0 && s.ID < t.Shards {
				t.Refs[s.ID] = s.Ref
			}
		}
	}
	add(first)
	owners := Placement(t.Shards, t.Members)
	for _, m := range t.Members {
		if m == addr {
			continue
		}
		rep, err := fetchDir(ctx, node, m, token)
		if err == nil {
			add(rep)
			continue
		}
		for id, o := range owners {
			if o == m {
				t.Missing[id] = fmt.Errorf("%w: shard %d on %s: %v", ErrUnavailable, id, m, err)
			}
		}
	}
	for id, r := range t.Refs {
		if r.IsZero() && t.Missing[id] == nil {
			t.Missing[id] = fmt.Errorf("%w: shard %d: not hosted by %s", ErrUnavailable, id, owners[id])
		}
	}
	return NewClient(node.System(), t, timeout), nil
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

// Table returns the client's table.
func (cl *Client) Table() Table { return cl.tab }

// route returns the ref of key's shard.
func (cl *Client) route(key string) (actor.Ref, error) {
	if err := checkKey(key); err != nil {
		return actor.Ref{}, err
	}
	id := ShardOf(key, cl.tab.Shards)
	if r := cl.tab.Refs[id]; !r.IsZero() {
		return r, nil
	}
	if err := cl.tab.Missing[id]; err != nil {
		return actor.Ref{}, err
	}
	return actor.Ref{}, fmt.Errorf("%w: shard %d", ErrUnavailable, id)
}

func (cl *Client) ask(ctx context.Context, key string, msg any) (any, error) {
	r, err := cl.route(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	return cl.sys.Ask(ctx, r, msg)
}

// Get returns the value of key and whether it is present. It sees every
// put acknowledged before it was sent.
func (cl *Client) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := cl.ask(ctx, key, Get{K: key})
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
// daemon. An error means the write may or may not have happened (a timeout,
// a node that went down) or did not (a refused key, a failed commit).
func (cl *Client) Put(ctx context.Context, key string, val []byte) error {
	if val == nil {
		val = []byte{}
	}
	_, err := cl.ask(ctx, key, Put{K: key, V: bytes.Clone(val)})
	return err
}

// Delete removes key and returns once the removal is durable.
func (cl *Client) Delete(ctx context.Context, key string) error {
	_, err := cl.ask(ctx, key, Delete{K: key})
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
	if id < 0 || id >= cl.tab.Shards {
		return fmt.Errorf("kvstore: crash: no shard %d", id)
	}
	r := cl.tab.Refs[id]
	if r.IsZero() {
		return cl.tab.Missing[id]
	}
	ctx, cancel := withDefault(ctx, cl.timeout)
	defer cancel()
	_, err := cl.sys.Ask(ctx, r, CrashShard{Token: token})
	return err
}
