package kvstore

import (
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

// catchUpper is the catch-up, an actor: every wait is an ask or a timer of
// its loop, so it holds no goroutine, and a store under the simulator
// (package sim) catches up as a daemon's does. It makes the first pass at
// its start, the second CatchUpAgain after the first ends, then stops;
// CaughtUp is closed when it stops, whatever the reason (the store's
// Close stops it).
type catchUpper struct {
	st      *Store
	log     *slog.Logger
	pass    int // 1, then 2
	start   time.Time
	hosts   [][]string        // each shard's replicas' members (Placement), for the pass
	todo    map[int]actor.Ref // local replicas this pass has not caught up yet
	backoff time.Duration
	next    int           // the member to ask next in this round
	hook    chan struct{} // closed at Terminate: ends the test hook's goroutine
}

type (
	catchUpRound  struct{} // the next round of the pass (after a backoff)
	catchUpSecond struct{} // the second pass
)

// Start begins the first pass.
func (cu *catchUpper) Start(c *actor.Context) error {
	cu.log = ratelog.Wrap(cu.st.cfg.Logger, ratelog.Config{})
	cu.pass = 1
	cu.begin(c)
	return nil
}

// Terminate closes CaughtUp.
func (cu *catchUpper) Terminate(*actor.Context, error) {
	cu.st.caughtUpOnce.Do(func() { close(cu.st.caughtUp) })
	if cu.hook != nil {
		close(cu.hook)
	}
}

// Receive takes the timers' messages.
func (cu *catchUpper) Receive(c *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case catchUpRound:
		cu.round(c)
	case catchUpSecond:
		cu.pass = 2
		cu.begin(c)
	default:
		return nil, actor.ErrUnknownMessage
	}
	return nil, nil
}

// begin starts a pass: every local replica whose shard has other replicas
// is to catch up with one of them. A store with none has nothing to do,
// then or later.
func (cu *catchUpper) begin(c *actor.Context) {
	st := cu.st
	cu.start, cu.backoff = c.Now(), RefreshInterval
	cu.hosts = Placement(st.cfg.Shards, st.cfg.Replicas, st.cfg.Members)
	cu.todo = map[int]actor.Ref{}
	for _, s := range st.local {
		if len(cu.hosts[s.ID]) > 1 {
			cu.todo[s.ID] = s.Ref
		}
	}
	if len(cu.todo) == 0 {
		_ = c.Stop(c.Self(), nil)
		return
	}
	cu.round(c)
}

// round asks every other member in turn (member), then ends the pass or
// tries again after a backoff (100 ms doubling to 2 s) while some replica
// is behind.
func (cu *catchUpper) round(c *actor.Context) {
	cu.next = 0
	cu.member(c)
}

// member asks the next member for its directory and syncs the replicas it
// holds that are behind here; at the end of the round, it ends the pass
// or arms the next round.
func (cu *catchUpper) member(c *actor.Context) {
	st := cu.st
	self := st.node.Addr()
	for cu.next < len(st.members) && st.members[cu.next] == self {
		cu.next++
	}
	if cu.next == len(st.members) {
		cu.endRound(c)
		return
	}
	m := st.members[cu.next]
	cu.next++
	p, settle := c.ExternalPromise()
	st.node.SpawnAsync(m, DirectoryKind, st.cfg.Token, DefaultTimeout, func(r actor.Ref, err error) { settle(r, err) })
	p.Then(func(c *actor.Context, v any, err error) {
		if err != nil {
			cu.log.Warn("kvstore: catch-up: cannot read a peer's directory", "peer", m, "err", err)
			cu.member(c)
			return
		}
		c.AskTimeout(v.(actor.Ref), DirRequest{}, DefaultTimeout).Then(func(c *actor.Context, v any, err error) {
			rep, ok := v.(DirReply)
			switch {
			case err != nil:
			case !ok:
				err = fmt.Errorf("the directory answered %T", v)
			case rep.Shards != st.cfg.Shards || rep.Replicas != st.cfg.Replicas || !slices.Equal(rep.Members, st.members):
				err = fmt.Errorf("it describes another store: %d shards of %d replicas, members %v", rep.Shards, rep.Replicas, rep.Members)
			}
			if err != nil {
				cu.log.Warn("kvstore: catch-up: cannot read a peer's directory", "peer", m, "err", err)
				cu.member(c)
				return
			}
			var shards []ShardRef
			for _, s := range rep.Local {
				if _, ok := cu.todo[s.ID]; ok && slices.Contains(cu.hosts[s.ID], m) {
					shards = append(shards, s)
				}
			}
			cu.syncShards(c, m, shards)
		})
	})
}

// syncShards syncs the replicas of shards, one after the other, with
// member m's, then goes on to the next member.
func (cu *catchUpper) syncShards(c *actor.Context, m string, shards []ShardRef) {
	if len(shards) == 0 {
		cu.member(c)
		return
	}
	s := shards[0]
	cu.syncShard(c, cu.todo[s.ID], s.Ref, "", func(c *actor.Context, err error) {
		if err != nil {
			cu.log.Warn("kvstore: catch-up: a shard's sync failed", "peer", m, "shard", s.ID, "err", err)
		} else {
			delete(cu.todo, s.ID)
		}
		cu.syncShards(c, m, shards[1:])
	})
}

// syncShard copies into the local replica the entries of the peer replica
// after key after that are newer than its own, page by page, and calls
// done once they are durable (or with the first error).
func (cu *catchUpper) syncShard(c *actor.Context, local, peer actor.Ref, after string, done func(*actor.Context, error)) {
	c.AskTimeout(peer, SyncRequest{After: after, Max: catchUpPage}, catchUpTimeout).Then(func(c *actor.Context, v any, err error) {
		if err != nil {
			done(c, err)
			return
		}
		rep, ok := v.(SyncReply)
		if !ok {
			done(c, fmt.Errorf("the peer answered %T", v))
			return
		}
		if err := checkPage(rep, after); err != nil {
			done(c, err)
			return
		}
		if len(rep.Entries) == 0 {
			done(c, nil) // checkPage: no more either
			return
		}
		c.AskTimeout(local, apply{entries: rep.Entries}, catchUpTimeout).Then(func(c *actor.Context, _ any, err error) {
			if err != nil {
				done(c, fmt.Errorf("storing: %w", err))
				return
			}
			cu.st.catchUp.entries.Add(uint64(len(rep.Entries)))
			if !rep.More {
				done(c, nil)
				return
			}
			cu.syncShard(c, local, peer, rep.Entries[len(rep.Entries)-1].K, done)
		})
	})
}

// endRound ends the pass if every replica caught up, else arms the next
// round.
func (cu *catchUpper) endRound(c *actor.Context) {
	if len(cu.todo) > 0 {
		c.After(cu.backoff, catchUpRound{})
		cu.backoff = min(2*cu.backoff, MaxRefreshBackoff)
		return
	}
	st := cu.st
	st.catchUp.passes.Add(1)
	cu.log.Info("kvstore: caught up with the other replicas", "entries", st.catchUp.entries.Load(), "took", c.Now().Sub(cu.start).Round(time.Millisecond))
	if cu.pass == 2 {
		_ = c.Stop(c.Self(), nil)
		return
	}
	if h := st.cfg.hooks; h != nil && h.secondPass != nil {
		self, sys, stop := c.Self(), st.sys, make(chan struct{})
		cu.hook = stop
		go func() { // tests only: the second pass when the test says
			select {
			case <-h.secondPass:
				_ = sys.Send(self, catchUpSecond{})
			case <-stop:
			}
		}()
		return
	}
	c.After(st.cfg.catchUpAgain, catchUpSecond{})
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
