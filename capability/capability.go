package capability

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
)

// Errors of this package. Test for them with errors.Is.
var (
	// ErrNotPermitted is the answer to a message a facet's rules do not
	// admit. The message does not reach the target. The error returned wraps
	// it and names the message's Go type (the holder's own knowledge, so it
	// tells the holder nothing about the target). A rejected one-way message
	// is dropped; its error goes to the event hook like any handler error.
	//
	// Across nodes it arrives as a *remote.Error whose text starts with this
	// error's text: the wire carries only the runtime's own sentinels.
	ErrNotPermitted = errors.New("capability: message not permitted by facet")
	// ErrRevoked is the reason a revoked facet stops with: monitors of the
	// facet see it in actor.Down. Messages to a revoked facet fail with
	// actor.ErrDead, never with ErrRevoked, exactly as for a dead actor.
	ErrRevoked = errors.New("capability: facet revoked")
	// ErrTargetDown is the reason a facet stops with when its target stopped
	// abnormally (it crashed, was killed, its node went down, ...). When the
	// target stopped normally the facet stops normally too (reason nil). The
	// target's own reason is not passed on: a facet holder learns that the
	// target is gone, not why.
	ErrTargetDown = errors.New("capability: facet target stopped")
)

// Option configures a facet: its rules ([Allow], [AllowIf]) and how it
// forwards ([Synchronous], [Handoff], [ForwardTimeout], [Name]).
type Option func(*config)

type config struct {
	rules   []rule
	sync    bool
	handoff bool
	timeout time.Duration // < 0: the system's Config.AskTimeout
	name    string
}

// rule reports whether it admits msg.
type rule func(msg any) bool

// Allow admits every message whose dynamic type is T (or, when T is an
// interface type, every message that implements T). A facet admits a message
// when at least one of its rules does; a facet with no rule admits nothing.
func Allow[T any]() Option {
	return func(c *config) {
		c.rules = append(c.rules, func(msg any) bool { _, ok := msg.(T); return ok })
	}
}

// AllowIf admits the messages of type T for which ok returns true (the
// message's contents are checked, not only its type: a path inside one
// directory, an amount under a limit). ok runs on the facet's loop, for
// every message of type T, and must not block; it sees a copy of the message
// when T is not a pointer or reference type. A panic in ok is recovered and
// the message is rejected with an error wrapping ErrNotPermitted (a facet
// fails closed).
func AllowIf[T any](ok func(T) bool) Option {
	return func(c *config) {
		c.rules = append(c.rules, func(msg any) bool {
			v, is := msg.(T)
			return is && ok(v)
		})
	}
}

// Synchronous makes the facet forward with [actor.Context.Call] when its
// target is on the facet's loop (the default placement of [Spawn] and
// [NewAsync]): the target's handler runs on the facet's stack, with no queue
// hop and no allocation, and its reply or error is the facet's. Holders on
// that loop may then Call the facet too. The target must answer in its
// handler: one that defers its reply ([actor.Context.Defer]) answers
// [actor.ErrDeferredCall], and a target suspended after a crash answers
// [actor.ErrCrashed] at once instead of holding the message for its restart.
// A synchronous facet is itself such a target, so chains of synchronous
// facets work; an asynchronous facet (the default) is not. For a target on
// another loop or node the facet forwards asynchronously anyway.
func Synchronous() Option { return func(c *config) { c.sync = true } }

// Handoff makes the facet hand each admitted message to a target on this
// node with [actor.Context.Forward] instead of asking it: one post and no
// allocation per message, and the target sees the original sender (not the
// facet) and answers the asker itself. The price: a message handed on
// before [Facet.Revoke], or before the facet dies, still reaches the target
// and is answered by it (the default facet fails what it has not yet seen
// answered). Revocation still stops every message the facet handles after
// it. A target on another node is forwarded as by the default facet.
func Handoff() Option { return func(c *config) { c.handoff = true } }

// ForwardTimeout sets the deadline of the asks an asynchronous facet makes to
// its target. The default is the system's Config.AskTimeout; d <= 0 means no
// deadline. The holder's own deadline still applies: a holder's ask fails
// with actor.ErrTimeout at whichever deadline passes first. A deadline
// protects the facet from a target that never answers: each ask without one
// holds an entry of the facet's loop until the target answers or dies.
func ForwardTimeout(d time.Duration) Option {
	if d < 0 {
		d = 0
	}
	return func(c *config) { c.timeout = d }
}

// Name names the facet actor for logs, crash reports and the debugger
// (default "capability.facet"). Names confer no authority.
func Name(name string) Option { return func(c *config) { c.name = name } }

// Facet is the grantor's handle on a facet: the facet's [Facet.Ref], which
// it gives away, and the authority to [Facet.Revoke] it, which it keeps.
// Holding the Ref does not allow revoking it. A Facet is safe for concurrent
// use by any goroutine or actor.
type Facet struct {
	ref actor.Ref
	st  *state
}

// Ref returns the facet's ref: an ordinary actor.Ref that admits only what
// the facet's rules admit. Give it away like any other ref (in a message, to
// another loop or node).
func (f *Facet) Ref() actor.Ref { return f.ref }

// Revoke turns the facet off, for good. Once it returns, the facet forwards
// no more messages: every message it handles from then on (including those
// already queued for it) is answered exactly like a message to a dead actor
// (asks fail with actor.ErrDead, sends are dropped), the facet actor is
// stopped with reason ErrRevoked as soon as its loop gets to it, and from then
// on its ref is dead for every holder, on every node. Facets built on this one
// die with it. Messages the facet forwarded before Revoke are already on their
// way and still reach the target; an ask among them whose answer has not come
// back when the facet stops fails with an error matching actor.ErrDead (the
// message may have reached the target). Revoke may be called from any
// goroutine or actor, any number of times; it never blocks.
func (f *Facet) Revoke() {
	f.st.revoked.Store(true)
	f.st.poke()
}

// Revoked reports whether Revoke has been called.
func (f *Facet) Revoked() bool { return f.st.revoked.Load() }

// New makes a facet of target from inside an actor, on the calling actor's
// loop, and returns once it runs. Its forwarding hop is cheapest for holders
// and a target on that loop; for a target on another loop, [NewAsync] places
// the facet beside it. It fails with actor.ErrInvalidRef for the zero Ref
// and with the errors of actor.Context.Spawn. A target that is already dead
// yields a facet that dies at once.
func New(c *actor.Context, target actor.Ref, opts ...Option) (*Facet, error) {
	f, factory, sopts, err := prepare(target, opts)
	if err != nil {
		return nil, err
	}
	r, err := c.Spawn(factory, sopts...)
	if err != nil {
		return nil, fmt.Errorf("capability: spawn facet: %w", err)
	}
	return f.done(r), nil
}

// NewAsync makes a facet of target from inside an actor, on the target's loop
// (the caller's loop for a remote target), and returns a promise of its
// *Facet. Attach the continuation in the same turn, as for any promise; if the
// calling actor stops before it runs, the facet lives on until its target dies.
func NewAsync(c *actor.Context, target actor.Ref, opts ...Option) actor.Promise {
	p, resolve := c.Promise()
	f, factory, sopts, err := prepare(target, opts)
	if err != nil {
		resolve(nil, err)
		return p
	}
	if !target.IsRemote() {
		sopts = append(sopts, actor.OnLoop(target.Loop()))
	}
	c.SpawnAsync(factory, sopts...).Then(func(_ *actor.Context, v any, err error) {
		if err != nil {
			resolve(nil, fmt.Errorf("capability: spawn facet: %w", err))
			return
		}
		resolve(f.done(v.(actor.Ref)), nil)
	})
	return p
}

// Spawn makes a facet of target from a plain goroutine, on the target's loop
// (the least loaded loop for a remote target), and waits until it runs or
// ctx is done. It fails with actor.ErrInvalidRef for the zero Ref and with
// the errors of actor.System.Spawn.
func Spawn(ctx context.Context, sys *actor.System, target actor.Ref, opts ...Option) (*Facet, error) {
	f, factory, sopts, err := prepare(target, opts)
	if err != nil {
		return nil, err
	}
	if target.IsRemote() {
		sopts = append(sopts, actor.LeastLoaded())
	} else {
		sopts = append(sopts, actor.OnLoop(target.Loop()))
	}
	r, err := sys.Spawn(ctx, factory, sopts...)
	if err != nil {
		return nil, fmt.Errorf("capability: spawn facet: %w", err)
	}
	return f.done(r), nil
}

func prepare(target actor.Ref, opts []Option) (*Facet, actor.Factory, []actor.SpawnOption, error) {
	if target.IsZero() {
		return nil, nil, nil, fmt.Errorf("capability: facet of the zero ref: %w", actor.ErrInvalidRef)
	}
	cfg := config{timeout: -1, name: "capability.facet"}
	for _, o := range opts {
		o(&cfg)
	}
	st := &state{}
	p := &proxy{target: target, rules: cfg.rules, sync: cfg.sync, handoff: cfg.handoff, timeout: cfg.timeout, st: st}
	factory := func() actor.Actor { return p }
	return &Facet{st: st}, factory, []actor.SpawnOption{actor.Name(cfg.name)}, nil
}

// done completes the handle once the facet runs. When the grantor drops the
// handle, nobody can revoke the facet any more: the cleanup releases the
// facet's pending wake-up ask (see state) so that it does not outlive the
// facet.
func (f *Facet) done(r actor.Ref) *Facet {
	f.ref = r
	runtime.AddCleanup(f, (*state).release, f.st)
	return f
}

// state is shared by a Facet handle and its proxy actor.
//
// Revocation must work from any goroutine without a System or Context, and
// must stop the facet promptly even if nobody messages it again. The proxy
// therefore asks itself, at start, a question it answers only later with
// Context.Defer: the *actor.Reply it keeps in wake may be used from any
// goroutine, and answering it runs the proxy's continuation on its loop,
// which stops the proxy when revoked. Every way the proxy ends (revocation,
// its target's death, an outside stop, the handle's collection) answers the
// Reply, so the proxy's promise never outlives the proxy.
type state struct {
	revoked atomic.Bool
	closed  atomic.Bool // the wake-up is no longer needed
	wake    atomic.Pointer[actor.Reply]
}

// arm stores the wake-up Reply, answering it at once if it is already due
// (Revoke or release ran before it was stored).
func (s *state) arm(r *actor.Reply) {
	s.wake.Store(r)
	if s.revoked.Load() || s.closed.Load() {
		r.Reply(nil, nil)
	}
}

func (s *state) poke() {
	if r := s.wake.Load(); r != nil {
		r.Reply(nil, nil)
	}
}

func (s *state) release() {
	s.closed.Store(true)
	s.poke()
}

// wake is the proxy's question to itself (see state).
type wake struct{ st *state }

// errInFlight answers the asks a facet had forwarded and not yet answered
// when it stopped.
var errInFlight = fmt.Errorf("%w: the facet stopped before its target answered (the message may have reached the target)", actor.ErrDead)

// proxy is the facet actor.
type proxy struct {
	target  actor.Ref
	rules   []rule
	sync    bool
	handoff bool
	timeout time.Duration
	st      *state

	// The deferred replies of forwarded asks not yet answered, so that a
	// stop answers them rather than leave their askers waiting: the runtime
	// drops the continuations of a stopped actor.
	inflight []*actor.Reply
	free     []int
	n        int
	dying    bool // the target is down; stopping once its last replies are in
}

func (p *proxy) Start(c *actor.Context) error {
	if err := c.Monitor(p.target); err != nil {
		return fmt.Errorf("capability: monitor target: %w", err)
	}
	st := p.st
	c.AskTimeout(c.Self(), wake{st}, 0).Then(func(c *actor.Context, _ any, _ error) {
		if st.revoked.Load() {
			_ = c.Stop(c.Self(), ErrRevoked)
		}
	})
	return nil
}

func (p *proxy) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case wake:
		// Only the proxy itself can send its own ref as the sender; the
		// type is unexported, so nothing outside this package makes one.
		if m.st == p.st && c.Sender() == c.Self() {
			p.st.arm(c.Defer())
			return nil, nil
		}
	case actor.Down:
		// Naming the target in a Down takes a ref to the target, which a
		// holder of the facet does not have.
		if m.Ref == p.target {
			p.targetDown(c, m.Reason)
			return nil, nil
		}
	}
	if p.st.revoked.Load() {
		_ = c.Stop(c.Self(), ErrRevoked)
		return nil, actor.ErrDead
	}
	if p.dying {
		return nil, actor.ErrDead
	}
	if err := p.admit(msg); err != nil {
		return nil, err
	}
	if p.sync && !p.target.IsRemote() && p.target.Loop() == c.Loop() {
		return c.Call(p.target, msg)
	}
	if p.handoff && !p.target.IsRemote() {
		return nil, c.Forward(p.target) // on success the target answers
	}
	// The runtime does not tell a handler whether it serves a send or an
	// ask, so both are forwarded as asks; a send's Reply discards the answer.
	r := c.Defer()
	i := p.track(r)
	var fwd actor.Promise
	if p.timeout < 0 {
		fwd = c.Ask(p.target, msg)
	} else {
		fwd = c.AskTimeout(p.target, msg, p.timeout)
	}
	fwd.Then(func(_ *actor.Context, v any, err error) {
		p.untrack(i, r)
		r.Reply(v, err)
	})
	return nil, nil
}

// targetDown stops the facet after its target stopped. Replies the target
// sent before it stopped may still be queued behind its Down (a Down travels
// with messages, replies on the loop's control queue), so with asks in
// flight the facet first lets the control queue drain: a promise it settles
// itself runs its continuation from the end of that queue.
func (p *proxy) targetDown(c *actor.Context, why error) {
	var reason error
	if why != nil {
		reason = ErrTargetDown
	}
	if p.n == 0 {
		_ = c.Stop(c.Self(), reason)
		return
	}
	p.dying = true
	pr, resolve := c.Promise()
	resolve(nil, nil)
	pr.Then(func(c *actor.Context, _ any, _ error) { _ = c.Stop(c.Self(), reason) })
}

func (p *proxy) track(r *actor.Reply) int {
	p.n++
	if k := len(p.free); k > 0 {
		i := p.free[k-1]
		p.free = p.free[:k-1]
		p.inflight[i] = r
		return i
	}
	p.inflight = append(p.inflight, r)
	return len(p.inflight) - 1
}

func (p *proxy) untrack(i int, r *actor.Reply) {
	if p.inflight[i] == r {
		p.inflight[i] = nil
		p.free = append(p.free, i)
		p.n--
	}
}

// admit checks msg against the rules; a panicking rule rejects it.
func (p *proxy) admit(msg any) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %T (rule panicked: %v)", ErrNotPermitted, msg, v)
		}
	}()
	for _, r := range p.rules {
		if r(msg) {
			return nil
		}
	}
	return fmt.Errorf("%w: %T", ErrNotPermitted, msg)
}

func (p *proxy) Terminate(c *actor.Context, _ error) {
	_ = c.Demonitor(p.target)
	for i, r := range p.inflight {
		if r != nil {
			p.inflight[i] = nil
			r.Reply(nil, errInFlight)
		}
	}
	p.n = 0
	p.st.release()
}
