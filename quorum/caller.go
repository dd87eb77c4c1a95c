package quorum

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
)

// Caller runs the quorum calls of plain goroutines (Call, CallCorrectable,
// CallMulticast). It is an actor: a goroutine hands it each call with a
// one-way message, and it sends the call's asks and counts the replies on
// its loop, without a goroutine per ask. Messages from one goroutine to one
// actor arrive in the order sent, and so do the Caller's to each node, so
// the calls a goroutine makes one after the other through one Caller reach
// each node in that order. Calls of several goroutines through one Caller
// are ordered as the Caller receives them.
//
// One Caller runs on one loop; for more throughput, make a Caller per loop
// (Manager.NewCaller with actor.OnLoop) and spread the goroutines over
// them, each keeping to one Caller for the calls whose order matters (the
// calls about one key, say). A Caller is safe for concurrent use.
type Caller struct {
	m   *Manager
	ref actor.Ref
}

// Ref returns the Caller's actor.
func (cl *Caller) Ref() actor.Ref { return cl.ref }

// Caller returns the Manager's default Caller.
func (m *Manager) Caller() *Caller { return m.svc }

// NewCaller spawns another Caller (opts place it: actor.OnLoop, say).
// Close stops it with the others.
func (m *Manager) NewCaller(opts ...actor.SpawnOption) (*Caller, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	cl, err := m.spawnCaller(append([]actor.SpawnOption{actor.Name("quorum/caller")}, opts...)...)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.others = append(m.others, cl)
	m.mu.Unlock()
	return cl, nil
}

func (m *Manager) spawnCaller(opts ...actor.SpawnOption) (*Caller, error) {
	r, err := m.sys.Spawn(context.Background(), func() actor.Actor { return &proxy{active: map[job]struct{}{}} }, opts...)
	if err != nil {
		return nil, fmt.Errorf("quorum: spawn caller: %w", err)
	}
	return &Caller{m: m, ref: r}, nil
}

// Close stops the Manager's Callers; the calls they run fail with an
// error matching ErrClosed, and so do later calls through them. Calls made
// by other actors (Ask) are not affected. Close waits for the Callers to
// stop, up to ctx.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closedCh)
	var refs []actor.Ref
	for _, cl := range append([]*Caller{m.svc}, m.others...) {
		refs = append(refs, cl.ref)
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range refs {
		if _, err := m.sys.Ask(ctx, r, stopCaller{}); err != nil && !errors.Is(err, actor.ErrDead) && !errors.Is(err, actor.ErrShutdown) {
			errs = append(errs, fmt.Errorf("quorum: stop %v: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// job is a call handed to a Caller's actor.
type job interface {
	run(c *actor.Context, p *proxy)
	stop(c *actor.Context, err error) // the Caller stops: fail the call
}

type stopCaller struct{}

// proxy is a Caller's actor.
type proxy struct {
	active map[job]struct{} // calls started and not settled
}

func (p *proxy) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case job:
		m.run(c, p)
	case stopCaller:
		return nil, c.Stop(c.Self(), nil)
	default:
		return nil, actor.Unhandled(msg)
	}
	return nil, nil
}

// Terminate fails the calls still running.
func (p *proxy) Terminate(c *actor.Context, _ error) {
	for j := range p.active {
		j.stop(c, ErrClosed)
	}
}

// run starts a goroutine's call on the Caller's loop.
func (cl *call[Req, Rep, Res]) run(c *actor.Context, p *proxy) {
	p.active[cl] = struct{}{}
	done := cl.onDone
	cl.onDone = func(c *actor.Context, res Res, level int, err error) {
		delete(p.active, cl)
		done(c, res, level, err)
	}
	cl.start(c)
}

func (cl *call[Req, Rep, Res]) stop(c *actor.Context, err error) {
	var zero Res
	cl.finish(c, zero, 0, cl.fail(err))
}

// goOptions bounds a goroutine's call by its context's deadline.
func goOptions[Req any](ctx context.Context, cfg Configuration, o options[Req]) (options[Req], error) {
	if cfg.m == nil {
		return o, fmt.Errorf("%w: the zero Configuration", ErrBadSpec)
	}
	if o.timeout <= 0 {
		o.timeout = cfg.m.timeout
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return o, &Error{Config: cfg.id, Cause: context.DeadlineExceeded}
		}
		o.timeout = min(o.timeout, d)
	}
	return o, nil
}

// hand gives a goroutine's call to the Caller.
func (cl *Caller) hand(j job) error {
	if cl.m.isClosed() {
		return ErrClosed
	}
	if err := cl.m.sys.Send(cl.ref, j); err != nil {
		return fmt.Errorf("quorum: caller: %w", err)
	}
	return nil
}

// Call makes a quorum call from a plain goroutine (not from an actor's
// handler: it blocks) through cl: like Ask, it asks every node of cfg and
// returns as spec.Quorum decides, or an *Error matching ErrNoQuorum. It
// returns when ctx ends too (an *Error whose Cause is ctx's error); the
// call's asks are bounded by ctx's deadline. Calls made one after the other
// through one Caller reach each node in that order.
func Call[Req, Rep, Res any](ctx context.Context, cl *Caller, cfg Configuration, req Req, spec Spec[Req, Rep, Res]) (Res, error) {
	var zero Res
	if spec.Quorum == nil {
		return zero, fmt.Errorf("%w: no quorum function", ErrBadSpec)
	}
	o, err := goOptions(ctx, cfg, options[Req]{spec.PerNode, spec.Timeout, spec.Thrifty, spec.Kind})
	if err != nil {
		return zero, err
	}
	qc, _ := newCall[Req, Rep, Res](cfg, req, o)
	qc.qf, qc.contain = spec.Quorum, true
	var abort atomic.Bool
	qc.abort = &abort
	done := make(chan struct{})
	var res Res
	qc.onDone = func(_ *actor.Context, r Res, _ int, e error) {
		res, err = r, e
		close(done)
	}
	if err := cl.hand(qc); err != nil {
		return zero, err
	}
	// A call ends by its deadline on the Caller's loop; the wait is bounded
	// anyway, in case that loop never gets to it.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout+time.Second)
		defer cancel()
	}
	select {
	case <-done:
		return res, err
	case <-ctx.Done():
		abort.Store(true)
		return zero, &Error{Config: cfg.id, Cause: ctx.Err()}
	case <-cl.m.closedCh:
		abort.Store(true)
		return zero, &Error{Config: cfg.id, Cause: ErrClosed}
	}
}

// Correctable is a correctable call made from a goroutine (CallCorrectable):
// its result improves as replies arrive. Safe for concurrent use.
type Correctable[Res any] struct {
	mu     sync.Mutex
	val    Res
	level  int
	err    error
	done   bool
	doneCh chan struct{}
	watch  []levelWatch
	abort  atomic.Bool
	stop   func() bool // stops watching the caller's context
}

type levelWatch struct {
	level int
	ch    chan struct{}
}

// Get returns the latest result, its level (0: none yet), and the call's
// error if it failed.
func (cr *Correctable[Res]) Get() (Res, int, error) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.val, cr.level, cr.err
}

// Done is closed once the call has settled.
func (cr *Correctable[Res]) Done() <-chan struct{} { return cr.doneCh }

// Watch returns a channel closed once the result reaches level, or the
// call settles (whatever its level: check Get).
func (cr *Correctable[Res]) Watch(level int) <-chan struct{} {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	ch := make(chan struct{})
	if cr.done || cr.level >= level {
		close(ch)
		return ch
	}
	cr.watch = append(cr.watch, levelWatch{level, ch})
	return ch
}

func (cr *Correctable[Res]) set(res Res, level int, final bool, err error) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.done {
		return
	}
	if err == nil && (level > cr.level || final) {
		cr.val, cr.level = res, max(level, cr.level)
	}
	cr.err = err
	k := 0
	for _, w := range cr.watch {
		if final || cr.level >= w.level {
			close(w.ch)
		} else {
			cr.watch[k] = w
			k++
		}
	}
	clear(cr.watch[k:])
	cr.watch = cr.watch[:k]
	if final {
		cr.done = true
		close(cr.doneCh)
	}
}

// CallCorrectable makes a correctable call from a goroutine through cl and
// returns at once; the Correctable reports the result as it improves (see
// CorrectableFunc). It settles with an *Error whose Cause is ctx's error
// if ctx ends first.
func CallCorrectable[Req, Rep, Res any](ctx context.Context, cl *Caller, cfg Configuration, req Req, spec CorrectableSpec[Req, Rep, Res]) *Correctable[Res] {
	cr := &Correctable[Res]{doneCh: make(chan struct{})}
	var zero Res
	if spec.Levels == nil {
		cr.set(zero, 0, true, fmt.Errorf("%w: no correctable function", ErrBadSpec))
		return cr
	}
	o, err := goOptions(ctx, cfg, options[Req]{spec.PerNode, spec.Timeout, spec.Thrifty, spec.Kind})
	if err != nil {
		cr.set(zero, 0, true, err)
		return cr
	}
	qc, _ := newCall[Req, Rep, Res](cfg, req, o)
	qc.contain, qc.abort = true, &cr.abort
	qc.corr = &correctable[Req, Rep, Res]{f: spec.Levels, onLevel: func(_ *actor.Context, res Res, level int) { cr.set(res, level, false, nil) }}
	qc.onDone = func(_ *actor.Context, res Res, level int, err error) {
		cr.set(res, level, true, err)
		if cr.stop != nil {
			cr.stop()
		}
	}
	cr.mu.Lock()
	cr.stop = context.AfterFunc(ctx, func() {
		cr.abort.Store(true)
		cr.set(zero, 0, true, &Error{Config: cfg.id, Cause: ctx.Err()})
	})
	cr.mu.Unlock()
	if err := cl.hand(qc); err != nil {
		cr.set(zero, 0, true, err)
	}
	return cr
}

// castJob is a goroutine's multicast.
type castJob[Req any] struct {
	cfg     Configuration
	msg     Req
	perNode func(req Req, n *Node) (Req, bool)
	err     error
	done    chan struct{}
}

func (j *castJob[Req]) run(c *actor.Context, _ *proxy) {
	j.err = Multicast(c, j.cfg, j.msg, j.perNode)
	close(j.done)
}

func (j *castJob[Req]) stop(*actor.Context, error) {}

// CallMulticast is Multicast from a plain goroutine through cl: it
// returns once the Caller has sent the messages (or ctx ends), with the
// errors of the sends that failed. The messages reach each node after the
// requests of the calls made earlier through cl.
func CallMulticast[Req any](ctx context.Context, cl *Caller, cfg Configuration, msg Req, perNode func(req Req, n *Node) (Req, bool)) error {
	j := &castJob[Req]{cfg: cfg, msg: msg, perNode: perNode, done: make(chan struct{})}
	if err := cl.hand(j); err != nil {
		return err
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return fmt.Errorf("quorum: multicast: %w", ctx.Err())
	case <-cl.m.closedCh:
		return ErrClosed
	}
}
