package kvstore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// ActorClient reads and writes a store from inside actors, without
// blocking a loop: the protocol of Client (the same quorum calls, stamps
// and write-back of reads), each request answered by a continuation of
// the calling actor. Nothing of it runs on a goroutine of its own or
// reads a clock, so a simulator can drive it on virtual time.
//
// Its table is what it is given (SetTable replaces it): unlike a Client
// made by Dial it fetches no directory and retries nothing, so a request
// fails with an error matching ErrUnavailable when it cannot reach a
// majority of the key's replicas. An ActorClient belongs to the actor
// that uses it: call its methods from that actor's handlers only.
type ActorClient struct {
	mgr    *quorum.Manager
	v      *view
	writer uint64 // the client's id (see Client.newStamp)
	writes uint64
}

// NewActorClient returns a client of the store whose replicas are in tab,
// making its quorum configurations with mgr (whose system runs the actor
// that will use it). writer is the client's id in the stamps of its
// writes: unique among the store's clients, not 0; 0 draws one at random.
func NewActorClient(mgr *quorum.Manager, tab Table, writer uint64) (*ActorClient, error) {
	if tab.Shards <= 0 || len(tab.Refs) != tab.Shards {
		return nil, fmt.Errorf("kvstore: client: a table of %d shards with %d replica lists", tab.Shards, len(tab.Refs))
	}
	for writer == 0 {
		var id [8]byte
		_, _ = rand.Read(id[:])
		writer = binary.LittleEndian.Uint64(id[:])
	}
	return &ActorClient{mgr: mgr, v: newView(mgr, tab.clone()), writer: writer}, nil
}

// SetTable replaces the client's table (a daemon restarted: its replicas
// have new refs). The shape must stay the store's.
func (a *ActorClient) SetTable(tab Table) error {
	if tab.Shards != a.v.tab.Shards || len(tab.Refs) != tab.Shards {
		return fmt.Errorf("kvstore: client: a table of %d shards for a store of %d", tab.Shards, a.v.tab.Shards)
	}
	a.v = newView(a.mgr, tab.clone())
	return nil
}

// Get reads key and calls then with its newest version on a majority of
// its replicas (the zero Entry, or one with Deleted set, if absent),
// after storing it on a majority if fewer held it, as Client.Get does.
func (a *ActorClient) Get(c *actor.Context, key string, then func(c *actor.Context, e Entry, err error)) {
	if err := checkKey(key); err != nil {
		then(c, Entry{}, err)
		return
	}
	id := ShardOf(key, a.v.tab.Shards)
	cfg := a.v.cfgs[id]
	if cfg.Size() == 0 {
		then(c, Entry{}, a.v.unavailable(id))
		return
	}
	quorum.Ask(c, cfg, Get{K: key}, readSpec).Then(func(c *actor.Context, res readResult, err error) {
		if err != nil {
			then(c, Entry{}, fmt.Errorf("%w: shard %d: %w", ErrUnavailable, id, err))
			return
		}
		if res.majority {
			then(c, res.e, nil)
			return
		}
		quorum.Ask(c, cfg, Write{K: key, E: res.e}, storeSpec).Then(func(c *actor.Context, _ struct{}, err error) {
			if err != nil {
				then(c, Entry{}, fmt.Errorf("%w: shard %d: %w", ErrUnavailable, id, err))
				return
			}
			then(c, res.e, nil)
		})
	})
}

// Put writes val under key and calls then with the write's stamp once a
// majority of the key's replicas hold it durably. Its errors are those of
// Client.Put: ErrNotWritten means that the write did not happen; after
// another error it may have happened, or may happen still.
func (a *ActorClient) Put(c *actor.Context, key string, val []byte, then func(c *actor.Context, ts Stamp, err error)) {
	if val == nil {
		val = []byte{}
	}
	a.write(c, key, Entry{V: val}, then)
}

// Delete removes key, as Put writes it.
func (a *ActorClient) Delete(c *actor.Context, key string, then func(c *actor.Context, ts Stamp, err error)) {
	a.write(c, key, Entry{Deleted: true}, then)
}

// write stamps e newer than every version a majority holds and stores it
// on a majority.
func (a *ActorClient) write(c *actor.Context, key string, e Entry, then func(c *actor.Context, ts Stamp, err error)) {
	if err := checkKey(key); err != nil {
		then(c, Stamp{}, err)
		return
	}
	id := ShardOf(key, a.v.tab.Shards)
	cfg := a.v.cfgs[id]
	if cfg.Size() == 0 {
		then(c, Stamp{}, fmt.Errorf("%w: %w", ErrNotWritten, a.v.unavailable(id)))
		return
	}
	quorum.Ask(c, cfg, Get{K: key, NoValue: true}, readSpec).Then(func(c *actor.Context, res readResult, err error) {
		if err != nil {
			then(c, Stamp{}, fmt.Errorf("%w: %w: shard %d: %w", ErrNotWritten, ErrUnavailable, id, err))
			return
		}
		if res.e.TS.N == math.MaxUint64 {
			then(c, Stamp{}, fmt.Errorf("%w: key %q: its stamp counter is exhausted", ErrNotWritten, key))
			return
		}
		if a.writes++; a.writer+a.writes == 0 {
			a.writes++ // zero is no writer's
		}
		e.TS = Stamp{N: res.e.TS.N + 1, W: a.writer + a.writes}
		quorum.Ask(c, cfg, Write{K: key, E: e}, storeSpec).Then(func(c *actor.Context, _ struct{}, err error) {
			if err != nil {
				var qe *quorum.Error
				if errors.As(err, &qe) {
					err = fmt.Errorf("%w: shard %d: %w", ErrUnavailable, id, err)
				}
				then(c, Stamp{}, err)
				return
			}
			then(c, e.TS, nil)
		})
	})
}
