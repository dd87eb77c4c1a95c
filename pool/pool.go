package pool

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/ratelog"
)

// Bounds of a pool's configuration.
const (
	// HardMax is the most workers a pool may have (ScaleConfig.Max).
	HardMax = 1024
	// HardMaxPending is the largest Config.MaxPending.
	HardMaxPending = 1 << 20
)

// maxName bounds Config.Name, which goes into logs, worker names and metric
// labels.
const maxName = 128

// Defaults of Config.
const (
	DefaultMaxPending = 4096
	// DefaultQueueCapacity is actor.Config.QueueCapacity's default.
	DefaultQueueCapacity = 8192
	DefaultSampleEvery   = 100 * time.Millisecond
	DefaultStopTimeout   = 5 * time.Second
)

// Errors of pools. Test for them with errors.Is.
var (
	// ErrBadConfig means a Config or ScaleConfig field is unusable; the
	// error says which and why.
	ErrBadConfig = errors.New("pool: bad config")
	// ErrFull is (wrapped in) the answer to a message the pool refused
	// because MaxPending messages were in flight to its workers. It
	// matches actor.ErrQueueFull.
	ErrFull = fmt.Errorf("pool: full: %w", actor.ErrQueueFull)
	// ErrNoWorker is (wrapped in) the answer to a message that arrived when
	// no worker was running and none was starting (the messages that arrive
	// while the first workers start, or while the only ones are replaced,
	// wait for them, and fail with it if every start fails).
	ErrNoWorker = errors.New("pool: no worker running")
	// ErrNoKey is (wrapped in) the answer to a message a ConsistentHash
	// pool cannot key (see Config.Key).
	ErrNoKey = errors.New("pool: message has no key")
	// ErrRestarted is (wrapped in) the answer to a message the pool's
	// router held when it crashed: one waiting for a worker to start, or
	// for a remote worker's answer to relay. The restarted router answers
	// them with it as it starts.
	ErrRestarted = errors.New("pool: the router restarted and lost the message")
)

// Strategy is how a pool chooses the worker of a message.
type Strategy uint8

// The routing strategies.
const (
	// RoundRobin hands messages to the running workers in turn.
	RoundRobin Strategy = iota
	// LeastLoaded hands each message to the running worker with the fewest
	// messages in flight from the pool (handed and not yet handled); ties go
	// in turn.
	LeastLoaded
	// ConsistentHash hands each message to the worker that owns its key on
	// a hash ring: one key, one worker, while the set of workers does not
	// change; adding or removing one of N workers moves about 1/N of the
	// keys.
	ConsistentHash
)

var strategyNames = [...]string{"round_robin", "least_loaded", "consistent_hash"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// Keyed is a message that names its key for ConsistentHash routing.
type Keyed interface {
	Key() string
}

// Config describes a pool. Zero fields take the defaults.
type Config struct {
	// Name names the pool in its workers' names, logs and events. Default
	// "pool".
	Name string
	// New makes a worker (required). It is called at every worker start
	// and restart. A worker's reply answers the asker directly.
	New actor.Factory
	// Strategy chooses the worker of each message (default RoundRobin).
	Strategy Strategy
	// Key returns the key of a message for ConsistentHash. Default: the
	// message's Key method (Keyed), hashed with StringKey. A message
	// without a key is refused with ErrNoKey.
	Key func(msg any) (uint64, bool)
	// Scale bounds the workers and sets when the pool grows and shrinks.
	// Scale.Min defaults to 1 and Scale.Max to Scale.Min (a fixed pool).
	Scale ScaleConfig
	// MaxPending bounds the messages in flight to the workers (handed and
	// not yet handled); beyond it the pool refuses with ErrFull. Default
	// DefaultMaxPending, at most HardMaxPending.
	MaxPending int
	// QueueCapacity is the queue capacity of the loops the local workers
	// run on (actor.Config.QueueCapacity of their System). Default
	// DefaultQueueCapacity, the runtime's default. The pool keeps at most
	// that many messages in flight to one worker (beyond, it refuses with
	// ErrFull): while a crashed worker restarts, its messages wait in a
	// stash bounded by that capacity, and one refused there would never
	// reach the worker, so the pool would count it in flight for good. The
	// worker's other messages (its timers, direct sends) share that stash.
	QueueCapacity int
	// SampleEvery is how often the pool samples its workers' loads to
	// scale. Default DefaultSampleEvery.
	SampleEvery time.Duration
	// StopTimeout bounds the stop of a worker (see actor.Context.StopAsync).
	// Default DefaultStopTimeout.
	StopTimeout time.Duration
	// LoopStats, if set (to an actor.System's Stats), places each new
	// worker on the least loaded loop. Without it every worker goes on the
	// pool's own loop.
	LoopStats func() []actor.Stats
	// Remote, if set, places workers on other nodes once this node has
	// Remote.LocalMax of them.
	Remote *RemoteWorkers
	// Bus, if set, receives a ScaleEvent at every scale up and down.
	Bus *event.Bus
	// Logger receives the pool's reports (a worker lost, a failed start),
	// rate limited. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "pool"
	}
	if c.Scale.Min == 0 {
		c.Scale.Min = 1
	}
	if c.Scale.Max == 0 {
		c.Scale.Max = max(c.Scale.Min, 1)
	}
	c.Scale = c.Scale.withDefaults()
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.SampleEvery == 0 {
		c.SampleEvery = DefaultSampleEvery
	}
	if c.QueueCapacity == 0 {
		c.QueueCapacity = DefaultQueueCapacity
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(f, a...)) }
	switch {
	case c.New == nil:
		return bad("New: nil worker factory")
	case len(c.Name) > maxName:
		return bad("Name: %d bytes, at most %d", len(c.Name), maxName)
	case c.Strategy > ConsistentHash:
		return bad("Strategy: unknown strategy %d", c.Strategy)
	case c.MaxPending < 1 || c.MaxPending > HardMaxPending:
		return bad("MaxPending %d: must be in 1..%d", c.MaxPending, HardMaxPending)
	case c.QueueCapacity < 1:
		return bad("QueueCapacity %d: must be at least 1", c.QueueCapacity)
	case c.SampleEvery < 0:
		return bad("SampleEvery %v is negative", c.SampleEvery)
	case c.Scale.UpLatency > 0 && c.Scale.UpLatency <= c.SampleEvery:
		return bad("Scale.UpLatency %v must be above SampleEvery %v: the time in flight is estimated from the samples", c.Scale.UpLatency, c.SampleEvery)
	case c.StopTimeout < 0:
		return bad("StopTimeout %v is negative", c.StopTimeout)
	}
	if err := c.Remote.validate(); err != nil {
		return err
	}
	return c.Scale.validate()
}

// Stats are a pool's counters, for metrics. Counters only grow, across
// restarts of the pool actor; Workers and InFlight are gauges.
type Stats struct {
	Workers     int64  // running workers
	InFlight    int64  // messages in flight to the workers, at the last sample
	Routed      uint64 // messages handed to a worker
	Held        uint64 // messages that waited for the first worker to start
	Refused     uint64 // messages refused (ErrFull, ErrNoWorker, ErrNoKey, a full loop queue)
	Dropped     uint64 // messages in flight to a worker when it ended: they failed (actor.ErrDead; remote.ErrNodeDown for a lost node); and those the router held or relayed when it crashed (ErrRestarted)
	Crashes     uint64 // worker crashes (the message being handled failed with a *actor.CrashError)
	Restarts    uint64 // workers restarted in place after a crash
	Started     uint64 // workers started
	StartFailed uint64 // worker starts that failed
	Retired     uint64 // idle workers stopped by a scale down
	ScaleUps    uint64 // scale-up events
	ScaleDowns  uint64 // scale-down events
}

type counters struct {
	workers, inFlight                                   atomic.Int64
	routed, held, refused, dropped, crashes, restarts   atomic.Uint64
	started, startFailed, retired, scaleUps, scaleDowns atomic.Uint64
}

// Direction is the way a ScaleEvent went.
type Direction uint8

// The directions of a scale event.
const (
	Up Direction = iota + 1
	Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// ScaleEvent is emitted on Config.Bus when a pool scales: from From workers
// to To (counting those still starting), and why.
type ScaleEvent struct {
	Pool      string
	Direction Direction
	From, To  int
	Reason    string
	Time      time.Time // the pool loop's clock
}

// Pool is a pool of workers behind a router actor. Make one with New, run
// its actor from Factory (spawned directly or as a supervisor's child), read
// its counters with Stats. One Pool runs one actor at a time.
type Pool struct {
	cfg Config
	log *slog.Logger
	ctr counters
	mu  sync.Mutex
	// live are the workers started by this pool's actor, so that an
	// instance restarted in place (its ref, and the workers' links to it,
	// survive) stops the workers its crashed predecessor left.
	live map[actor.Ref]*shared
	// pending are the answers the router owes (held messages, relayed
	// asks): kept here, which outlives a router instance, so that a
	// crashed one's are answered by its successor.
	pending map[*actor.Reply]struct{}
	// epoch counts the router's starts and stops: a worker spawned by an
	// instance that has since ended must not start (nobody would route to
	// it, or stop it).
	epoch uint64
	// orphans are remote workers whose start ended after the router that
	// asked for them: the next router stops them.
	orphans []actor.Ref
}

// New checks cfg (a clear error matching ErrBadConfig) and returns the pool.
func New(cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, log: ratelog.Wrap(cfg.Logger, ratelog.Config{}), live: make(map[actor.Ref]*shared),
		pending: make(map[*actor.Reply]struct{})}, nil
}

// Factory returns the factory of the pool's router actor.
func (p *Pool) Factory() actor.Factory {
	return func() actor.Actor { return &router{p: p, cfg: &p.cfg} }
}

// Stats returns the pool's counters. Safe from any goroutine.
func (p *Pool) Stats() Stats {
	c := &p.ctr
	return Stats{
		Workers: c.workers.Load(), InFlight: c.inFlight.Load(),
		Routed: c.routed.Load(), Held: c.held.Load(), Refused: c.refused.Load(), Dropped: c.dropped.Load(),
		Crashes: c.crashes.Load(), Restarts: c.restarts.Load(),
		Started: c.started.Load(), StartFailed: c.startFailed.Load(), Retired: c.retired.Load(),
		ScaleUps: c.scaleUps.Load(), ScaleDowns: c.scaleDowns.Load(),
	}
}

// track records a worker started by the router of epoch, and reports
// whether that router still runs.
func (p *Pool) track(r actor.Ref, sh *shared, epoch uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch != epoch {
		return false
	}
	p.live[r] = sh
	return true
}

// current reports whether the router of epoch still runs.
func (p *Pool) current(epoch uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch == epoch
}

// orphan records a remote worker of an ended router, for the next one to
// stop.
func (p *Pool) orphan(r actor.Ref) {
	p.mu.Lock()
	p.orphans = append(p.orphans, r)
	p.mu.Unlock()
}

func (p *Pool) untrack(r actor.Ref) {
	p.mu.Lock()
	delete(p.live, r)
	p.mu.Unlock()
}

// owe records an answer the router owes.
func (p *Pool) owe(rep *actor.Reply) {
	p.mu.Lock()
	p.pending[rep] = struct{}{}
	p.mu.Unlock()
}

// answer answers an owed reply.
func (p *Pool) answer(rep *actor.Reply, v any, err error) {
	p.mu.Lock()
	delete(p.pending, rep)
	p.mu.Unlock()
	rep.Reply(v, err)
}

// failPending answers every owed reply with err, and returns how many.
func (p *Pool) failPending(err error) int {
	p.mu.Lock()
	reps := make([]*actor.Reply, 0, len(p.pending))
	for rep := range p.pending {
		reps = append(reps, rep)
	}
	clear(p.pending)
	p.mu.Unlock()
	for _, rep := range reps {
		rep.Reply(nil, err)
	}
	return len(reps)
}

// takeLive starts a new epoch (a router starts or stops: the workers still
// starting for the old one will not start) and returns the workers the old
// one left, to be stopped.
func (p *Pool) takeLive() ([]actor.Ref, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch++
	out := make([]actor.Ref, 0, len(p.live)+len(p.orphans))
	for r := range p.live {
		out = append(out, r)
	}
	out = append(out, p.orphans...)
	clear(p.live)
	p.orphans = nil
	// In a fixed order, so that a simulated run replays.
	slices.SortFunc(out, func(a, b actor.Ref) int {
		al, as, ag := a.ID()
		bl, bs, bg := b.ID()
		return cmp.Or(cmp.Compare(al, bl), cmp.Compare(as, bs), cmp.Compare(ag, bg))
	})
	return out, p.epoch
}

// routed is a message the pool hands to a worker: the tag tells it from
// the worker's other messages (its timers, monitors), so that only the
// pool's count as handled.
type routed struct{ msg any }

// shared is what a worker and its router share: the worker's count of the
// pool's messages it has handled, and of those it has deferred (Pool.Defer)
// and not answered yet. The router counts what it handed, so the difference
// is the worker's own queue and work, without asking the runtime.
type shared struct {
	handled atomic.Uint64
	held    atomic.Int64
}

// Reply is the deferred answer of a pool worker (see Pool.Defer).
type Reply struct {
	r       *actor.Reply
	sh      *shared
	used    atomic.Bool
	cleanup runtime.Cleanup
}

// Reply answers the deferred message with v and err, and ends its time in
// flight. Only the first call counts; it is safe from any goroutine.
func (r *Reply) Reply(v any, err error) {
	if r == nil || !r.used.CompareAndSwap(false, true) {
		return
	}
	r.cleanup.Stop()
	if r.sh != nil {
		r.sh.held.Add(-1)
	}
	r.r.Reply(v, err)
}

// Defer is actor.Context.Defer for a worker of this pool that answers a
// message the pool handed it later (after a Blocking job, say, or its own
// asks; not for the worker's other messages, which the pool does not
// count): the message stays in
// flight, counted in the worker's load for LeastLoaded routing and for
// scaling, until the returned Reply is answered (or, if it is dropped
// unanswered, until the garbage collector finds it: the asker then gets
// actor.ErrNoReply). Called from an actor that is not this pool's worker,
// it is plain Defer.
func (p *Pool) Defer(c *actor.Context) *Reply {
	p.mu.Lock()
	sh := p.live[c.Self()]
	p.mu.Unlock()
	r := &Reply{r: c.Defer(), sh: sh}
	if sh != nil {
		sh.held.Add(1)
		r.cleanup = runtime.AddCleanup(r, func(sh *shared) { sh.held.Add(-1) }, sh)
	}
	return r
}

// worker wraps a worker made by Config.New: it links itself to the pool,
// counts the pool's messages and unwraps them.
type worker struct {
	p     *Pool
	sh    *shared
	epoch uint64 // of the router that spawned it
	inner actor.Actor
}

// errStale is why a worker whose router has ended does not start.
var errStale = errors.New("the router that spawned it has ended")

func (w *worker) Start(c *actor.Context) error {
	if !w.p.current(w.epoch) {
		return fmt.Errorf("pool %s: %w", w.p.cfg.Name, errStale)
	}
	w.inner = w.p.cfg.New()
	if w.inner == nil {
		return actor.ErrNilActor
	}
	// Linked from its own start, so a pool that dies before it learns of
	// the worker still takes it down.
	if err := c.Link(c.Parent()); err != nil {
		return fmt.Errorf("pool %s: link to the pool: %w", w.p.cfg.Name, err)
	}
	// Tracked only once started: a start that fails (or panics) gives no
	// exit signal, so nothing would untrack it.
	if s, ok := w.inner.(actor.Starter); ok {
		if err := s.Start(c); err != nil {
			return err
		}
	}
	if !w.p.track(c.Self(), w.sh, w.epoch) { // its router ended meanwhile
		w.Terminate(c, actor.ErrShutdown)
		return fmt.Errorf("pool %s: %w", w.p.cfg.Name, errStale)
	}
	return nil
}

func (w *worker) Receive(c *actor.Context, msg any) (any, error) {
	r, ok := msg.(routed)
	if !ok {
		return w.inner.Receive(c, msg)
	}
	defer w.sh.handled.Add(1) // also when the handler panics
	return w.inner.Receive(c, r.msg)
}

func (w *worker) Terminate(c *actor.Context, reason error) {
	if t, ok := w.inner.(actor.Terminator); ok {
		t.Terminate(c, reason)
	}
}

// member is the router's record of one worker.
type member struct {
	id         uint64 // stable across restarts in place; reused by a replacement
	ref        actor.Ref
	loop       int
	sh         *shared
	sent       uint64
	restarting bool
	remote     bool   // on another node: sh is nil, done counts its answered asks
	node       string // its node's address
	done       uint64
}

func (m *member) inFlight() int {
	if m.remote {
		return int(m.sent - m.done)
	}
	return int(m.sent-m.sh.handled.Load()) + int(m.sh.held.Load())
}

// tick is the router's sampling timer.
type tick struct{}

// router is the pool's actor.
type router struct {
	p            *Pool
	cfg          *Config
	scaler       *Scaler
	members      []*member // running workers, in start order
	byRef        map[actor.Ref]*member
	byID         map[uint64]*member
	starting     map[uint64]int    // worker ID -> loop (-1: remote), while its spawn is under way
	startingNode map[uint64]string // worker ID -> node, for a remote one starting
	free         []uint64          // IDs of workers that ended or failed to start (see takeID)
	nextID       uint64
	ring         ring
	rr           int
	em           *event.Emitter[ScaleEvent]
	timer        actor.Timer
	// held are the messages that arrived while no worker ran and some were
	// starting, and those behind them; see settle.
	held []heldMsg
	// startErr is the error of the last worker start that failed, for the
	// messages refused with ErrNoWorker; nil once a worker starts.
	startErr error
	// epoch is this instance's (see Pool.epoch).
	epoch uint64
	// bound is at least the messages in flight to the workers (see route).
	bound int
	// replaced is when exited last replaced workers.
	replaced time.Time
	// vacant are the free IDs of workers that ended and were not replaced
	// yet: a replacement takes one, so that it owns the ended worker's
	// keys on the ring.
	vacant map[uint64]bool
}

type heldMsg struct {
	msg any
	rep *actor.Reply
}

func (r *router) Start(c *actor.Context) error {
	c.TrapExits(true)
	var err error
	if r.scaler, err = NewScaler(r.cfg.Scale); err != nil {
		return err
	}
	r.byRef, r.byID, r.starting = make(map[actor.Ref]*member), make(map[uint64]*member), make(map[uint64]int)
	r.startingNode = make(map[uint64]string)
	r.vacant = make(map[uint64]bool)
	var old []actor.Ref
	old, r.epoch = r.p.takeLive()
	for _, w := range old { // a crashed predecessor's
		c.StopAsync(w, actor.ErrShutdown, r.cfg.StopTimeout)
	}
	if n := r.p.failPending(fmt.Errorf("pool %s: %w", r.cfg.Name, ErrRestarted)); n > 0 {
		r.p.ctr.dropped.Add(uint64(n))
	}
	r.p.ctr.workers.Store(0)
	if r.cfg.Bus != nil {
		if r.em, err = event.NewEmitter[ScaleEvent](r.cfg.Bus); err != nil {
			return fmt.Errorf("pool %s: scale events: %w", r.cfg.Name, err)
		}
	}
	for range r.cfg.Scale.Min {
		r.spawn(c, 0)
	}
	r.timer = c.Every(r.cfg.SampleEvery, tick{})
	return nil
}

func (r *router) Terminate(c *actor.Context, reason error) {
	r.timer.Cancel()
	stopped := fmt.Errorf("pool %s: stopped: %w", r.cfg.Name, actor.ErrShutdown)
	r.failHeld(stopped)
	// The relayed asks: their continuations end with this actor.
	r.p.failPending(stopped)
	// Every worker, also those started whose start this router has not
	// learnt yet; those still starting will not start.
	old, _ := r.p.takeLive()
	for _, w := range old {
		c.StopAsync(w, actor.ErrShutdown, r.cfg.StopTimeout)
	}
	r.members = nil
	r.p.ctr.workers.Store(0)
	if r.em != nil {
		r.em.Close()
	}
}

func (r *router) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case tick:
		r.sample(c)
		return nil, nil
	case actor.Crashed:
		r.crashed(c, m)
		return nil, nil
	case actor.Exited:
		r.exited(c, m)
		return nil, nil
	}
	return r.route(c, msg)
}

// route hands msg to a worker, which answers the asker itself.
func (r *router) route(c *actor.Context, msg any) (any, error) {
	// bound is an upper bound of the messages in flight (it grows with
	// every message handed on; only the workers make it shrink), so the
	// exact sum over the workers is needed only near the limit.
	if r.bound+len(r.held) >= r.cfg.MaxPending {
		r.bound = r.inFlight()
	}
	if total := r.bound + len(r.held); total >= r.cfg.MaxPending {
		r.p.ctr.refused.Add(1)
		return nil, fmt.Errorf("pool %s: %d messages in flight: %w", r.cfg.Name, total, ErrFull)
	}
	// Behind held messages, a message waits too: it must not overtake an
	// earlier one of its key (see settle).
	if len(r.held) > 0 || (len(r.members) == 0 && len(r.starting) > 0) {
		rep := c.Defer()
		r.p.owe(rep)
		r.held = append(r.held, heldMsg{msg, rep})
		r.p.ctr.held.Add(1)
		return nil, nil
	}
	m, err := r.pick(msg)
	if errors.Is(err, ErrNoWorker) {
		r.p.ctr.refused.Add(1)
		return nil, r.noWorker()
	}
	if err == nil && r.full(m) {
		// Round-robin may go on to the next worker; the others have
		// chosen the least loaded one, or the key's owner.
		for i := 1; i < len(r.members) && r.cfg.Strategy == RoundRobin && r.full(m); i++ {
			m, _ = r.pick(msg)
		}
		if r.full(m) {
			r.p.ctr.refused.Add(1)
			return nil, fmt.Errorf("pool %s: worker %d has %d messages in flight, its loop's QueueCapacity: %w",
				r.cfg.Name, m.id, m.inFlight(), ErrFull)
		}
	}
	if err == nil && m.remote {
		r.relay(c, m, msg, c.Defer())
		return nil, nil
	}
	if err == nil {
		err = c.ForwardMsg(m.ref, routed{msg})
	}
	if err != nil {
		r.p.ctr.refused.Add(1)
		return nil, fmt.Errorf("pool %s: %w", r.cfg.Name, err)
	}
	m.sent++
	r.bound++
	r.p.ctr.routed.Add(1)
	return nil, nil
}

// full reports whether local worker m has QueueCapacity messages in flight
// (see Config.QueueCapacity). bound is at least the sum over the workers,
// so below the capacity no worker needs a look.
func (r *router) full(m *member) bool {
	return !m.remote && r.bound >= r.cfg.QueueCapacity && m.inFlight() >= r.cfg.QueueCapacity
}

// inFlight is the exact number of messages in flight to the workers.
func (r *router) inFlight() int {
	total := 0
	for _, m := range r.members {
		total += m.inFlight()
	}
	return total
}

// pick chooses the worker of msg.
func (r *router) pick(msg any) (*member, error) {
	n := len(r.members)
	if r.cfg.Strategy == ConsistentHash {
		k, ok := r.key(msg)
		if !ok {
			return nil, fmt.Errorf("%w: %T", ErrNoKey, msg)
		}
		id, ok := r.ring.lookup(mix64(k))
		if !ok {
			return nil, ErrNoWorker
		}
		return r.byID[id], nil
	}
	var best *member
	bestLoad := 0
	for i := range n {
		m := r.members[(r.rr+i)%n]
		if r.cfg.Strategy == RoundRobin {
			best = m
			break
		}
		if l := m.inFlight(); best == nil || l < bestLoad {
			best, bestLoad = m, l
		}
	}
	if best == nil {
		return nil, ErrNoWorker
	}
	r.rr++
	return best, nil
}

func (r *router) key(msg any) (uint64, bool) {
	if r.cfg.Key != nil {
		return r.cfg.Key(msg)
	}
	if k, ok := msg.(Keyed); ok {
		return StringKey(k.Key()), true
	}
	return 0, false
}

// takeID returns the ID of a new worker: want if it is free; else the
// smallest vacant one (an ended worker's, so that its keys come back); else
// the smallest free one; else a new one.
func (r *router) takeID(want uint64) uint64 {
	i := -1
	if want != 0 {
		i = slices.Index(r.free, want)
	}
	if i < 0 {
		for j, id := range r.free {
			if r.vacant[id] && (i < 0 || id < r.free[i]) {
				i = j
			}
		}
	}
	if i < 0 && len(r.free) > 0 {
		i = slices.Index(r.free, slices.Min(r.free))
	}
	if i < 0 {
		r.nextID++
		return r.nextID
	}
	id := r.free[i]
	r.free = slices.Delete(r.free, i, i+1)
	// A reused ID is a new worker: no idle time of its predecessor.
	r.scaler.Forget(id)
	return id
}

// spawn starts a worker, under ID want if it is free (see takeID), on the
// least loaded loop.
func (r *router) spawn(c *actor.Context, want uint64) {
	id := r.takeID(want)
	if r.cfg.Remote != nil && r.locals() >= r.localMax() {
		if node := r.pickNode(); node != "" {
			r.spawnRemote(c, id, node)
			return
		}
	}
	lp := r.place(c)
	r.starting[id] = lp
	sh := &shared{}
	p := r.p
	epoch := r.epoch
	f := func() actor.Actor { return &worker{p: p, sh: sh, epoch: epoch} }
	c.SpawnAsync(f, actor.OnLoop(lp), actor.Supervised(), actor.Name(fmt.Sprintf("%s/%d", r.cfg.Name, id))).
		Then(func(c *actor.Context, v any, err error) {
			r.started(c, &member{id: id, loop: lp, sh: sh}, v, err)
		})
}

// started records the outcome of a worker's start: m, with the ref in v, or
// the start's error.
func (r *router) started(c *actor.Context, m *member, v any, err error) {
	delete(r.starting, m.id)
	delete(r.startingNode, m.id)
	ref, _ := v.(actor.Ref)
	if err == nil && ref.IsZero() {
		err = fmt.Errorf("%w: a worker's start gave no ref", actor.ErrInvalidRef)
	}
	if err != nil {
		r.free = append(r.free, m.id)
		r.p.ctr.startFailed.Add(1)
		r.p.log.Warn("pool: a worker failed to start", "pool", r.cfg.Name, "worker", m.id, "loop", m.loop, "node", m.node, "err", err)
		r.startErr = err
		r.settle(c)
		return
	}
	m.ref = ref
	delete(r.vacant, m.id) // replaced (a failed start leaves it vacant)
	r.members = append(r.members, m)
	r.byRef[m.ref], r.byID[m.id] = m, m
	r.rebuild()
	r.p.ctr.started.Add(1)
	r.startErr = nil
	r.settle(c)
}

// settle hands on the held messages once it can. With ConsistentHash it
// waits until no start is under way, so that each message goes to its
// key's owner among all the workers that started (handed to the first one
// up, a key would then run on two workers at once, out of order). The other
// strategies hand them on at the first start, spread over the workers
// started so far: they promise no worker per message, and waiting would
// delay them for nothing.
func (r *router) settle(c *actor.Context) {
	switch {
	case len(r.held) == 0:
	case r.cfg.Strategy == ConsistentHash && len(r.starting) > 0:
	case len(r.members) > 0:
		r.flush(c)
	case len(r.starting) == 0:
		r.failHeld(r.noWorker())
	}
}

// flush hands the held messages to the workers. They were deferred, so
// they go by ask (no deadline: the askers have theirs) and the answer is
// relayed; the worker sees the pool as their sender.
func (r *router) flush(c *actor.Context) {
	held := r.held
	r.held = nil
	for _, h := range held {
		m, err := r.pick(h.msg)
		if err != nil {
			r.p.ctr.refused.Add(1)
			r.p.answer(h.rep, nil, fmt.Errorf("pool %s: %w", r.cfg.Name, err))
			continue
		}
		r.relay(c, m, h.msg, h.rep)
	}
}

// relay hands msg to m by an ask and answers rep with its reply: for the
// messages that waited for a worker, and for every message to a worker on
// another node (Forward stays on this node).
func (r *router) relay(c *actor.Context, m *member, msg any, rep *actor.Reply) {
	m.sent++
	r.bound++
	r.p.ctr.routed.Add(1)
	r.p.owe(rep)
	out := msg
	if !m.remote {
		out = routed{msg}
	}
	c.AskTimeout(m.ref, out, 0).Then(func(_ *actor.Context, v any, err error) {
		if m.remote {
			m.done++
			if lostRemote(err) {
				r.p.ctr.dropped.Add(1)
			}
		}
		r.p.answer(rep, v, err)
	})
}

// noWorker is the error for a message no worker can take.
func (r *router) noWorker() error {
	if r.startErr != nil {
		return fmt.Errorf("pool %s: %w: the last worker start failed: %w", r.cfg.Name, ErrNoWorker, r.startErr)
	}
	return fmt.Errorf("pool %s: %w", r.cfg.Name, ErrNoWorker)
}

// failHeld answers every held message with err.
func (r *router) failHeld(err error) {
	for _, h := range r.held {
		r.p.ctr.refused.Add(1)
		r.p.answer(h.rep, nil, err)
	}
	r.held = nil
}

// place returns the loop for a new worker: the one with the fewest queued
// events plus workers of this pool (each counts as one event), then the
// fewest actors, then the lowest index. Without LoopStats, the pool's loop.
func (r *router) place(c *actor.Context) int {
	if r.cfg.LoopStats == nil {
		return c.Loop()
	}
	st := r.cfg.LoopStats()
	if len(st) == 0 {
		return c.Loop()
	}
	mine := make([]int, len(st))
	for _, m := range r.members {
		if m.loop >= 0 && m.loop < len(mine) {
			mine[m.loop]++
		}
	}
	for _, lp := range r.starting {
		if lp >= 0 && lp < len(mine) {
			mine[lp]++
		}
	}
	best, bestScore, bestActors := 0, -1, int64(0)
	for i, s := range st {
		score := s.Inbound + s.Control + s.Local + mine[i]
		if bestScore < 0 || score < bestScore || (score == bestScore && s.Actors < bestActors) {
			best, bestScore, bestActors = i, score, s.Actors
		}
	}
	return best
}

// rebuild refreshes what depends on the set of running workers.
func (r *router) rebuild() {
	r.p.ctr.workers.Store(int64(len(r.members)))
	if r.cfg.Strategy != ConsistentHash {
		return
	}
	ids := make([]uint64, len(r.members))
	for i, m := range r.members {
		ids[i] = m.id
	}
	r.ring.build(ids)
}

// remove forgets a worker; its messages still in flight are counted as
// dropped when it ended (the runtime failed them).
func (r *router) remove(m *member, ended bool) {
	if ended && !m.remote { // a remote worker's are counted as their asks fail (lostRemote)
		r.p.ctr.dropped.Add(uint64(max(m.inFlight(), 0)))
	}
	r.members = slices.DeleteFunc(r.members, func(x *member) bool { return x == m })
	delete(r.byRef, m.ref)
	delete(r.byID, m.id)
	r.free = append(r.free, m.id)
	r.p.untrack(m.ref)
	r.rebuild()
}

// crashed restarts a crashed worker in place: its ref stays valid and the
// messages queued behind the one that crashed it go to the new instance.
func (r *router) crashed(c *actor.Context, cr actor.Crashed) {
	m := r.byRef[cr.Child]
	if m == nil { // not ours (any more)
		c.StopAsync(cr.Child, actor.ErrShutdown, r.cfg.StopTimeout)
		return
	}
	r.p.ctr.crashes.Add(1)
	m.restarting = true
	c.RestartAsync(m.ref).Then(func(c *actor.Context, _ any, err error) {
		m.restarting = false
		if err == nil {
			r.p.ctr.restarts.Add(1)
		}
		// On failure the worker was stopped: its exit signal follows.
	})
}

// exited handles the end of a linked actor: a worker (replaced if the pool
// is below Min) or the pool's parent (the pool ends with it).
func (r *router) exited(c *actor.Context, e actor.Exited) {
	m := r.byRef[e.From]
	if m == nil {
		r.p.untrack(e.From)
		if p := c.Parent(); !p.IsZero() && e.From == p {
			_ = c.Stop(c.Self(), e.Reason)
		}
		return
	}
	lost := max(m.inFlight(), 0)
	r.remove(m, true)
	r.vacant[m.id] = true
	r.p.log.Warn("pool: a worker ended", "pool", r.cfg.Name, "worker", m.id, "reason", e.Reason, "lost", lost)
	// Replaced at once, but at most once per sample period: a worker that
	// ends as soon as it starts is replaced at the sampling pace (the
	// scaler's Min rule), not in a tight loop.
	if now := c.Now(); r.replaced.IsZero() || now.Sub(r.replaced) >= r.cfg.SampleEvery {
		r.replaced = now
		for want := m.id; len(r.members)+len(r.starting) < r.cfg.Scale.Min; want = 0 {
			r.spawn(c, want) // under the ended worker's ID: its keys come back
		}
	}
}

// sample feeds the scaler and carries out its decision.
func (r *router) sample(c *actor.Context) {
	loads := make([]Load, 0, len(r.members)+len(r.starting))
	total := 0
	for _, m := range r.members {
		l := m.inFlight()
		total += l
		handled := m.done
		if !m.remote {
			// Finished: handled, less those deferred and not answered yet
			// (a Defer counts in held before its message counts as
			// handled, so this can dip by one mid-handler: the Scaler
			// counts finishes against the most it has seen).
			handled = uint64(max(int64(m.sh.handled.Load())-m.sh.held.Load(), 0))
		}
		loads = append(loads, Load{ID: m.id, InFlight: l, Handled: handled})
	}
	for id := range r.starting {
		loads = append(loads, Load{ID: id})
	}
	slices.SortFunc(loads, func(a, b Load) int { return cmp.Compare(a.ID, b.ID) })
	r.p.ctr.inFlight.Store(int64(total))
	r.bound = total
	now := c.Now()
	d := r.scaler.Observe(now, loads)
	from := len(loads)
	switch {
	case d.Grow > 0:
		for range d.Grow {
			r.spawn(c, 0)
		}
		if !d.Replace {
			r.p.ctr.scaleUps.Add(1)
			r.emit(ScaleEvent{Pool: r.cfg.Name, Direction: Up, From: from, To: from + d.Grow, Reason: d.Reason, Time: now})
		}
	case len(d.Shrink) > 0:
		n := 0
		for _, id := range d.Shrink {
			m := r.byID[id]
			if m == nil || m.inFlight() != 0 || m.restarting {
				continue
			}
			r.remove(m, false)
			c.StopAsync(m.ref, nil, r.cfg.StopTimeout)
			r.p.ctr.retired.Add(1)
			n++
		}
		if n > 0 {
			r.p.ctr.scaleDowns.Add(1)
			r.emit(ScaleEvent{Pool: r.cfg.Name, Direction: Down, From: from, To: from - n, Reason: d.Reason, Time: now})
		}
	}
}

func (r *router) emit(ev ScaleEvent) {
	if r.em != nil {
		_ = r.em.Emit(ev) // a closed bus: nobody to tell
	}
}
