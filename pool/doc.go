// Package pool runs a pool of workers behind a router actor, as a
// supervisor would run it: it starts Min workers from a factory, restarts
// a worker that crashes, replaces one that ends, routes every message it
// receives to a worker, and grows and shrinks between Min and Max with the
// load.
//
//	p, err := pool.New(pool.Config{
//		New:       newResizer,
//		Strategy:  pool.LeastLoaded,
//		Scale:     pool.ScaleConfig{Min: 2, Max: 16},
//		LoopStats: sys.Stats,
//	})
//	ref, err := sys.Spawn(ctx, p.Factory())            // or a supervisor child
//	v, err := sys.Ask(ctx, ref, resize{...})            // answered by a worker
//
// # Routing
//
// The router hands each message on with actor.Context.ForwardMsg: the
// worker answers the original asker directly and sees the original sender,
// at the cost of one post. Strategies: RoundRobin, LeastLoaded (fewest
// messages in flight) and ConsistentHash (by Config.Key, or the message's
// Key method; one of N workers joining or leaving moves about 1/N of the
// keys, and a worker that replaces one that ended takes its ID, so its
// keys come back to it).
//
// The load of a worker is the number of the pool's messages in flight to
// it: handed on and not yet handled, plus those it deferred with
// Pool.Defer and has not answered. The router counts what it hands on; the
// worker (wrapped by the pool) counts what it has handled, in a counter
// the two share. The runtime's own queue depths are per loop, not per
// actor (a loop's queue mixes every actor on it), so they cannot tell two
// workers of one loop apart; the in-flight count can, costs one atomic add
// per message, and also sees work a worker does after its handler returns
// (a Blocking job, an ask of its own) when it uses Pool.Defer.
//
// # Failures
//
// Workers are spawned actor.Supervised and linked to the pool, which traps
// exits. A crashed worker is restarted in place (actor.Context.Restart):
// its ref stays valid, the message that crashed it fails at its asker
// with a *actor.CrashError, and the messages queued behind it reach the
// new instance. A worker that ends (its restart failed, it stopped by
// itself) is replaced while the pool is below Min; the messages that were
// in flight to it fail at their askers with actor.ErrDead, and are counted
// in Stats.Dropped. Messages that arrive while no worker runs and some are
// starting (the pool's first, or replacements) wait for the first to start
// (they then reach it by an ask whose answer the pool relays). Nothing is
// lost without a signal: refused messages are
// answered with an error (ErrFull, which matches actor.ErrQueueFull, past
// Config.MaxPending in flight; ErrNoWorker; ErrNoKey) and counted.
//
// The pool restarts its workers itself rather than through a supervisor's
// SimpleOneForOne child: it needs, in the same turn as it routes, which
// workers are running, their IDs (for the hash ring) and their in-flight
// counts, and a supervisor would only report those through asks, after
// the fact; a worker that had to be started afresh would come back with a
// new ref the pool would have to look up. The pool is itself the unit of
// supervision: run it as a supervisor's child and a crash of the pool
// takes its workers down with it (links) and the supervisor restarts it
// with fresh ones; a pool restarted in place stops the workers its
// predecessor left.
//
// # Remote workers
//
// With Config.Remote, workers beyond RemoteWorkers.LocalMax go to other
// nodes of a supervisor.Cluster (remote.NodeSet), created from a
// registered kind, the node with the fewest of the pool's workers first.
// They are reached by an ask whose reply the pool relays (Forward stays on
// one node), linked to the pool, and replaced when they end or their node
// is lost; the asks in flight to them then fail with the node-down error
// and count as dropped.
//
// # Scaling
//
// Every Config.SampleEvery the pool samples its workers' loads and feeds
// them to a Scaler, a pure state machine (no clock, no actor) that decides
// to grow or shrink with hysteresis: separate Up and Down thresholds, an
// overload that must last UpAfter, a low pool-wide load that must last
// IdleAfter, and
// a Cooldown after each scale event. New workers go to the least loaded
// loop (Config.LoopStats, read when a worker is placed, not per message).
// Each scale event is counted in Stats and emitted as a ScaleEvent on
// Config.Bus. The pool reads time only from its actor's clock, so it runs
// on a fake clock and in the simulator.
//
// # Bounds
//
// Max is at most HardMax workers, MaxPending at most HardMaxPending
// messages; a message to a crashed worker waits (bounded by its loop's
// queue capacity) for its restart.
package pool
