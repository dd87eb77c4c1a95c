package upgrade

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/actord/actord/actor"
)

// Handoffs: moving a live actor's state elsewhere (another node's actor).
// Hold suspends the actor as an upgrade does (after its current message,
// once its continuations have run) and exports its state; while it is
// held its messages wait, in order. The mover then either resumes it
// (Held.Resume: nothing happened) or turns it into a forwarder
// (Held.Forward): what it held, then every later message, goes to the new
// actor, in order, until a grace period ends.

// Errors of handoffs.
var (
	// ErrExport means the actor's export failed (an error, a panic): it
	// runs on, untouched. It is wrapped in an error matching ErrRefused.
	ErrExport = errors.New("upgrade: exporting the actor's state failed")
	// ErrHoldEnded means the hold ended before Resume or Forward: the
	// actor stopped, was restarted, or the hold's own bound
	// (HoldOptions.Max) passed and it was resumed.
	ErrHoldEnded = errors.New("upgrade: the actor is no longer held")
)

// HoldOptions tune Hold.
type HoldOptions struct {
	// Drain bounds the wait for the actor's outstanding continuations, as
	// Options.Drain (default DefaultDrain): past it the hold is refused
	// (ErrPending).
	Drain time.Duration
	// Max bounds the hold: if neither Resume nor Forward came by then,
	// the actor is resumed (default DefaultHoldMax), or killed if the hold
	// was armed (Held.Arm). A mover that lost track of it thus never
	// leaves it held.
	Max time.Duration
}

// DefaultHoldMax is HoldOptions.Max's default.
const DefaultHoldMax = time.Minute

// Held is an actor held by Hold. Its methods may be called from any
// goroutine; the first of Resume and Forward ends the hold.
type Held struct {
	sys   *actor.System
	guard actor.Ref
	done  chan struct{}
}

// Done is closed once the hold has ended, whichever way: Resume, Forward,
// its bound (HoldOptions.Max), or the actor's end. Whoever keeps a record
// of holds forgets the ended ones by it.
func (h *Held) Done() <-chan struct{} { return h.done }

// holder is the runtime's hold seam (actor/upgrade.go).
type holder interface {
	Hold(c *actor.Context, r actor.Ref, drain time.Duration,
		f func(c *actor.Context, a actor.Actor, factory actor.Factory, pending int) (actor.Actor, actor.Factory, error)) actor.Promise
	Release(c *actor.Context, r actor.Ref,
		f func(c *actor.Context, a actor.Actor, factory actor.Factory, pending int) (actor.Actor, actor.Factory, error)) actor.Promise
	Asking(c *actor.Context) bool
	DropTimers(c *actor.Context)
	SendOn(c *actor.Context, to actor.Ref) (bool, error)
}

var holds = view.(holder)

// Hold holds the actor ref, which must run an A, and returns its state
// as export makes it from the instance. On ref's loop, after the message
// it is handling and once its outstanding continuations have run (within
// HoldOptions.Drain), export is called on the instance; from then on
// ref's messages and timers wait, in order, until Resume or Forward (or
// HoldOptions.Max). Export must copy what it returns (the instance may run
// on after a Resume) and must not block. An error matching ErrRefused
// means nothing happened: the actor was not held and runs on (ErrExport:
// export failed or panicked; ErrWrongVersion: it does not run an A; and
// Apply's other refusals). ctx's error means the outcome is not known: a
// hold that happened all the same is resumed by HoldOptions.Max.
func Hold[A actor.Actor, S any](ctx context.Context, sys *actor.System, ref actor.Ref, export func(A) (S, error), o HoldOptions) (*Held, S, error) {
	var zero S
	if export == nil {
		return nil, zero, fmt.Errorf("%w: %v: %w: no export", ErrRefused, ref, ErrBadMigration)
	}
	if o.Drain == 0 {
		o.Drain = DefaultDrain
	}
	if o.Max <= 0 {
		o.Max = DefaultHoldMax
	}
	type outcome struct {
		s   S
		err error
	}
	res := make(chan outcome, 1)
	hg := &holdGuard{target: ref, max: o.Max, drain: o.Drain, done: make(chan struct{})}
	hg.hold = func(c *actor.Context, a actor.Actor) error {
		x, ok := a.(A)
		if !ok {
			return fmt.Errorf("%w: %v runs %T, not %s", ErrWrongVersion, ref, a, typeName[A]())
		}
		s, err := exportSafely(export, x)
		if err != nil {
			return err
		}
		res <- outcome{s: s}
		return nil
	}
	hg.refused = func(err error) {
		select {
		case res <- outcome{err: err}:
		default: // held, then the swap failed after all: Resume says so
		}
	}
	ghost, err := sys.Spawn(ctx, func() actor.Actor { return hg }, actor.OnLoop(ref.Loop()), actor.Name("handoff hold"))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return nil, zero, err
		}
		return nil, zero, fmt.Errorf("%w: %v: starting the hold: %w", ErrRefused, ref, err)
	}
	select {
	case r := <-res:
		if r.err != nil {
			return nil, zero, r.err
		}
		return &Held{sys: sys, guard: ghost, done: hg.done}, r.s, nil
	case <-ctx.Done():
		return nil, zero, ctx.Err()
	}
}

// exportSafely runs export, a panic turned into ErrExport.
func exportSafely[A, S any](export func(A) (S, error), a A) (s S, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %w: export panicked: %v", ErrRefused, ErrExport, v)
		}
	}()
	s, err = export(a)
	if err != nil {
		return s, fmt.Errorf("%w: %w: %w", ErrRefused, ErrExport, err)
	}
	return s, nil
}

// Arm does not end the hold: from then on, its bound (HoldOptions.Max)
// kills the actor (Context.Kill: ErrKilled to its monitors and links)
// rather than resume it, for its mover may have another instance take its
// place; Resume and Forward still end it as they say. ErrHoldEnded if the
// hold had ended (then it was not armed).
func (h *Held) Arm(ctx context.Context) error {
	return h.release(ctx, holdArm{})
}

// Resume ends the hold with nothing changed: the actor handles what it
// held, in order, then the rest. ErrHoldEnded if the hold had ended.
func (h *Held) Resume(ctx context.Context) error {
	return h.release(ctx, holdRelease{})
}

// Forward ends the hold by turning the actor into a forwarder to to: the
// messages it held, then every later one, go to to in order (an ask is
// answered by to, to its asker), until a Down of to comes or grace has
// passed on its loop's clock (grace <= 0: never); then it stops, and a
// sender finds its ref dead. Any Down of to ends it, whatever its reason:
// to's end, but also the loss of the connection to to's node (the remote
// layer's Down then, while to may still run there): a sender then finds
// the ref dead and must find to (or its successor) again, rather than
// have its messages handed to a node this one cannot reach. The actor's timers stop there: they, and the ticks they fired
// while it was held, are dropped (to sets its own). A one-way message
// forwarded to another node keeps its sender if that is this node's (or
// none); one from a third node's actor arrives from the forwarder, and
// what to sends back to the forwarder is dropped, not handed back to to.
// The actor's monitors and links do not cross either: a Down of what it
// monitored, or a trapped Exited of a link, reaching the forwarder (held
// or later) is dropped; to sets up its own.
// An ask forwarded to another node is asked on by the forwarder, within
// the system's ask timeout (actor.Config.AskTimeout) whatever the asker's
// own deadline (an ask does not carry it): an asker that waits longer
// gets the timeout's error after it. Its restarts (a crash of the
// forwarder) make forwarders too. ErrHoldEnded if the hold had ended.
func (h *Held) Forward(ctx context.Context, to actor.Ref, grace time.Duration) error {
	if to.IsZero() {
		return errors.New("upgrade: forward to the zero Ref")
	}
	return h.release(ctx, holdRelease{to: to, grace: grace})
}

func (h *Held) release(ctx context.Context, m any) error {
	_, err := h.sys.Ask(ctx, h.guard, m)
	if errors.Is(err, actor.ErrDead) {
		return fmt.Errorf("%w: its hold's bound passed, or it stopped", ErrHoldEnded)
	}
	return err
}

// holdRelease tells a hold's guard how to end it: zero to, resume.
type holdRelease struct {
	to    actor.Ref
	grace time.Duration
}

// holdMax is the hold guard's timer: its bound passed.
type holdMax struct{}

// holdArm arms a hold (Held.Arm).
type holdArm struct{}

// holdGuard carries out a hold, on the target's loop, and ends it.
type holdGuard struct {
	target  actor.Ref
	max     time.Duration
	drain   time.Duration
	hold    func(c *actor.Context, a actor.Actor) error
	refused func(error)
	holding bool
	ending  bool
	armed   bool          // its bound kills the target rather than resume it
	done    chan struct{} // closed when the guard stops: the hold has ended
	closed  sync.Once
}

// Terminate: the guard stops once the hold has ended (or was refused).
func (g *holdGuard) Terminate(*actor.Context, error) {
	g.closed.Do(func() { close(g.done) })
}

func (g *holdGuard) Start(c *actor.Context) error {
	holds.Hold(c, g.target, g.drain, func(c *actor.Context, a actor.Actor, f actor.Factory, pending int) (actor.Actor, actor.Factory, error) {
		if pending > 0 {
			return nil, nil, fmt.Errorf("%w: %d continuations outstanding", ErrPending, pending)
		}
		if a == nil {
			return nil, nil, ErrSuspended
		}
		if err := g.hold(c, a); err != nil {
			return nil, nil, err
		}
		return a, f, nil // the same instance, held
	}).Then(func(c *actor.Context, _ any, err error) {
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				err = fmt.Errorf("%w: %v: %w", ErrRefused, g.target, err)
			}
			g.refused(err)
			_ = c.Stop(c.Self(), nil)
			return
		}
		g.holding = true
		c.After(g.max, holdMax{})
		// The actor's end ends the hold: Done need not wait for the bound.
		if c.Monitor(g.target) != nil {
			_ = c.Stop(c.Self(), nil)
		}
	})
	return nil
}

// Receive ends the hold once: by a release, or at its bound (resumed, or
// killed if armed).
func (g *holdGuard) Receive(c *actor.Context, msg any) (any, error) {
	var m holdRelease
	switch x := msg.(type) {
	case holdRelease:
		m = x
	case holdArm:
		if !g.holding || g.ending {
			return nil, ErrHoldEnded
		}
		g.armed = true
		return nil, nil
	case holdMax:
		if g.armed && g.holding && !g.ending {
			// The guard stops on the target's Down.
			return nil, c.Kill(g.target)
		}
	case actor.Down:
		if x.Ref == g.target && !g.ending {
			return nil, c.Stop(c.Self(), nil)
		}
		return nil, nil
	default:
		return nil, actor.Unhandled(msg)
	}
	if !g.holding || g.ending {
		return nil, ErrHoldEnded
	}
	g.ending = true
	rep := c.Defer()
	holds.Release(c, g.target, func(c *actor.Context, a actor.Actor, f actor.Factory, _ int) (actor.Actor, actor.Factory, error) {
		if m.to.IsZero() {
			return a, f, nil
		}
		// Timers do not cross: the old instance's, and the ticks they
		// fired while it was held, would reach the new one beside its own.
		holds.DropTimers(c)
		fw := &forwarder{to: m.to, grace: m.grace}
		// A message to itself behind the held ones: it starts the watch
		// of to and the grace timer once the held ones are on their way.
		_ = c.Send(c.Self(), forwardSetup{})
		return fw, func() actor.Actor { return &forwarder{to: m.to, grace: m.grace} }, nil
	}).Then(func(c *actor.Context, _ any, err error) {
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrHoldEnded, err)
		}
		rep.Reply(nil, err)
		_ = c.Stop(c.Self(), nil)
	})
	return nil, nil
}

// EndForward ends the forwarding of ref, which Held.Forward made a
// forwarder, as its grace ending does, but waits for it: it stops once no
// ask it passed on waits for its answer (the answers reach their askers),
// and what comes after finds its ref dead, never handled. A node about to
// stop calls it first, so that no ask in flight is answered with an error
// while the new actor still handles it, after its asker has gone on. nil
// once the forwarder has stopped (or if ref had already ended); ctx's
// error if the answers did not come in time. ref must be a forwarder: any
// other actor gets a message it does not know.
func EndForward(ctx context.Context, sys *actor.System, ref actor.Ref) error {
	_, err := sys.Ask(ctx, ref, forwardRetire{})
	if errors.Is(err, actor.ErrDead) {
		return nil
	}
	return err
}

// forwardSetup starts a forwarder's watch of its target and its grace.
type forwardSetup struct{}

// forwardRetire asks a forwarder to stop once its asks are answered
// (EndForward); answered then.
type forwardRetire struct{}

// forwardEnd: a forwarder's grace has passed.
type forwardEnd struct{}

// forwarder hands every message on to the actor to: locally with
// Context.Forward (sender and ask kept), to another node by asking it
// on (within the system's ask timeout) and answering the asker with its
// answer, or sending it on (from its sender if that is this node's, else
// from the forwarder; a one-way message from to itself is dropped). Once its grace has passed it stops as soon as
// no ask it passed on is waiting for its answer.
type forwarder struct {
	to      actor.Ref
	grace   time.Duration
	setup   bool
	asks    int // asks passed on, not answered yet
	expired bool
	retires []*actor.Reply // EndForward's, answered when it stops
}

// end stops the forwarder once no ask it passed on waits.
func (f *forwarder) end(c *actor.Context) error {
	if f.asks > 0 {
		return nil
	}
	for _, r := range f.retires {
		r.Reply(nil, nil)
	}
	f.retires = nil
	return c.Stop(c.Self(), nil)
}

// Start runs for a forwarder made by a restart: it sets up again.
func (f *forwarder) Start(c *actor.Context) error {
	f.arm(c)
	return nil
}

func (f *forwarder) arm(c *actor.Context) {
	if f.setup {
		return
	}
	f.setup = true
	if err := c.Monitor(f.to); err != nil {
		_ = c.Stop(c.Self(), nil)
		return
	}
	if f.grace > 0 {
		c.After(f.grace, forwardEnd{})
	}
}

func (f *forwarder) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case forwardSetup:
		f.arm(c)
		return nil, nil
	case forwardEnd:
		f.expired = true
		return nil, f.end(c)
	case forwardRetire:
		f.expired = true
		f.retires = append(f.retires, c.Defer())
		return nil, f.end(c)
	case actor.Down:
		if m.Ref == f.to {
			// Ended, or its node unreachable (see Held.Forward).
			return nil, c.Stop(c.Self(), nil)
		}
		// A monitor of the actor it replaced: monitors do not cross (to
		// is not watching), as timers do not.
		return nil, nil
	case actor.Exited:
		// A trapped exit of a link of the actor it replaced: links do
		// not cross either. Dropped, rather than followed: a stop here
		// would fail the messages held behind it, which to should get.
		return nil, nil
	}
	if !f.to.IsRemote() {
		if err := c.Forward(f.to); err == nil {
			return nil, nil
		}
	}
	if !holds.Asking(c) {
		if c.Sender() == f.to {
			// From to itself: an answer to a message this forwarder sent
			// on as its own (its sender could not be kept), or to's own
			// message to its old ref. Handed on, it would come back to
			// to as if from to: a loop, never what to meant.
			return nil, nil
		}
		if ok, err := holds.SendOn(c, f.to); ok {
			return nil, err // the sender kept: to answers it directly
		}
		return nil, c.Send(f.to, msg)
	}
	rep := c.Defer()
	f.asks++
	c.Ask(f.to, msg).Then(func(c *actor.Context, v any, err error) {
		rep.Reply(v, err)
		if f.asks--; f.expired {
			_ = f.end(c)
		}
	})
	return nil, nil
}
