package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/ratelog"
)

// Catch-up. A daemon that returns after being down has missed the writes
// acknowledged meanwhile by the other replicas of its shards. The store
// stays linearizable without it (every read and write needs a majority, and
// any two majorities meet), but until it catches up the shard has one
// up-to-date copy fewer. So after Install each replica reads the durable
// entries of one other replica of its shard, page by page (SyncRequest),
// and stores those newer than its own, as any Write. It serves requests
// meanwhile.
//
// Clients find the restarted replicas only once they have reconnected to
// the daemon and fetched its directory again (up to a few seconds: their
// node redials with a backoff): the writes they make until then skip this
// daemon, and a pass that starts at once misses those made after it
// began. So the catch-up makes a second pass, CatchUpAgain later.

// catchUpPage is how many entries one SyncRequest asks for.
const catchUpPage = 512

// catchUpTimeout bounds one page: its request and storing it.
const catchUpTimeout = 30 * time.Second

// CatchUpAgain is how long after its first pass the catch-up makes its
// second (see Install).
const CatchUpAgain = 5 * time.Second

type catchUpStats struct {
	entries atomic.Uint64
	passes  atomic.Uint64
}

// runCatchUp makes the two passes of the catch-up.
func (st *Store) runCatchUp(ctx context.Context) {
	defer close(st.caughtUp)
	log := ratelog.Wrap(st.cfg.Logger, ratelog.Config{})
	if !st.catchUpPass(ctx, log) {
		return
	}
	again := time.NewTimer(st.cfg.catchUpAgain)
	defer again.Stop()
	var hook <-chan struct{}
	if h := st.cfg.hooks; h != nil && h.secondPass != nil {
		hook, again.C = h.secondPass, nil
	}
	select {
	case <-ctx.Done():
		return
	case <-again.C:
	case <-hook:
	}
	st.catchUpPass(ctx, log)
}

// catchUpPass brings every local replica up to date with one other replica
// of its shard, retrying with a backoff (100 ms doubling to 2 s) while the
// other daemons cannot be reached, until ctx ends (Close). It reports
// whether it finished.
func (st *Store) catchUpPass(ctx context.Context, log *slog.Logger) bool {
	start := time.Now()
	self := st.node.Addr()
	hosts := Placement(st.cfg.Shards, st.cfg.Replicas, st.cfg.Members)
	todo := map[int]actor.Ref{} // local replicas not caught up
	for _, s := range st.local {
		if len(hosts[s.ID]) > 1 {
			todo[s.ID] = s.Ref
		}
	}
	if len(todo) == 0 {
		return false
	}
	backoff := RefreshInterval
	for {
		for _, m := range st.members {
			if m == self || ctx.Err() != nil {
				continue
			}
			rep, err := fetchDir(ctx, st.node, m, st.cfg.Token)
			if err == nil && (rep.Shards != st.cfg.Shards || rep.Replicas != st.cfg.Replicas || !slices.Equal(rep.Members, st.members)) {
				err = fmt.Errorf("it describes another store: %d shards of %d replicas, members %v", rep.Shards, rep.Replicas, rep.Members)
			}
			if err != nil {
				log.Warn("kvstore: catch-up: cannot read a peer's directory", "peer", m, "err", err)
				continue
			}
			for _, s := range rep.Local {
				local, ok := todo[s.ID]
				if !ok || !slices.Contains(hosts[s.ID], m) {
					continue
				}
				if err := st.syncShard(ctx, local, s.Ref); err != nil {
					log.Warn("kvstore: catch-up: a shard's sync failed", "peer", m, "shard", s.ID, "err", err)
					continue
				}
				delete(todo, s.ID)
			}
		}
		if len(todo) == 0 {
			st.catchUp.passes.Add(1)
			log.Info("kvstore: caught up with the other replicas", "entries", st.catchUp.entries.Load(), "took", time.Since(start).Round(time.Millisecond))
			return true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, MaxRefreshBackoff)
	}
}

// syncShard copies into the local replica the entries of the peer replica
// that are newer than its own, and returns once they are durable.
func (st *Store) syncShard(ctx context.Context, local, peer actor.Ref) error {
	after := ""
	for {
		rctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
		v, err := st.sys.Ask(rctx, peer, SyncRequest{After: after, Max: catchUpPage})
		cancel()
		if err != nil {
			return err
		}
		rep, ok := v.(SyncReply)
		if !ok {
			return fmt.Errorf("the peer answered %T", v)
		}
		if err := checkPage(rep, after); err != nil {
			return err
		}
		if n := len(rep.Entries); n > 0 {
			rctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
			_, err := st.sys.Ask(rctx, local, apply{entries: rep.Entries})
			cancel()
			if err != nil {
				return fmt.Errorf("storing: %w", err)
			}
			st.catchUp.entries.Add(uint64(n))
			after = rep.Entries[n-1].K
		}
		if !rep.More {
			return nil
		}
	}
}

// errBadPage means a peer's SyncReply broke the protocol.
var errBadPage = errors.New("kvstore: catch-up: bad page")

// checkPage checks a page from a peer: at most catchUpPage entries, keys
// increasing after after (so that the sync ends), and progress if more
// follow.
func checkPage(rep SyncReply, after string) error {
	if len(rep.Entries) > catchUpPage {
		return fmt.Errorf("%w: %d entries, asked for %d", errBadPage, len(rep.Entries), catchUpPage)
	}
	prev := after
	for i, e := range rep.Entries {
		if (i > 0 || after != "") && e.K <= prev {
			return fmt.Errorf("%w: key %q after %q", errBadPage, e.K, prev)
		}
		if err := checkKey(e.K); err != nil {
			return fmt.Errorf("%w: %w", errBadPage, err)
		}
		prev = e.K
	}
	if rep.More && len(rep.Entries) == 0 {
		return fmt.Errorf("%w: more entries announced, none given", errBadPage)
	}
	return nil
}
