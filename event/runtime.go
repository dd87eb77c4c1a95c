package event

import (
	"errors"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
)

// Runtime events. One bus per actor.System (a group of loops) carries them;
// the Runtime bridge emits the actor and loop events from the system's hook
// and watchdog. Time fields read the loop's clock (actor.Config.Clock), except
// where said otherwise.

// ActorSpawned is emitted when an actor has started: its Start method, if
// any, returned without error.
type ActorSpawned struct {
	Actor  actor.Ref // the new actor
	Parent actor.Ref // the actor that spawned it; zero for a spawn from a plain goroutine
	Loop   int       // the loop it lives on
	Time   time.Time
}

// ActorStopped is emitted when an actor has stopped for good: its refs are
// dead from now on. Reason is nil for a normal stop, a *actor.CrashError
// (errors.Is(Reason, actor.ErrCrashed)) after an unsupervised crash,
// actor.ErrShutdown at system shutdown, or the reason given to Stop.
type ActorStopped struct {
	Actor  actor.Ref
	Loop   int
	Reason error
	Time   time.Time
}

// ActorCrashed is emitted when an actor's handler, continuation or Start
// method panicked. An unsupervised actor then stops (ActorStopped follows); a
// supervised one is suspended until its supervisor restarts it
// (ActorRestarted follows) or stops it.
type ActorCrashed struct {
	Actor actor.Ref
	Loop  int
	Crash *actor.Crash // panic value, stack, message, sender; shared, do not modify
	Time  time.Time
}

// ActorRestarted is emitted when a supervisor re-created an actor in its
// slot: refs to it stay valid and reach the new instance.
type ActorRestarted struct {
	Actor actor.Ref
	Loop  int
	Time  time.Time
}

// SupervisorGaveUp is emitted by the supervision layer when a supervisor's
// restart intensity was exceeded (more than Restarts restarts within Within):
// it stopped its children and failed itself, escalating to its parent. The
// Runtime bridge emits it from the supervisor's report on the event hook
// (any report with a GaveUpEvent method, as supervisor.Report has).
type SupervisorGaveUp struct {
	Supervisor actor.Ref
	Loop       int
	Restarts   int           // the intensity that was exceeded
	Within     time.Duration // over this period
	Reason     error         // the last child failure
	Time       time.Time
}

// ActorUpgraded is emitted for each outcome of a hot upgrade of an actor
// (package upgrade): Outcome is "upgraded" (the actor runs version To,
// moved from From), "refused" (it still runs From; Reason says why),
// "rolled back" (it runs From again after To failed; Reason says how To
// failed) or "rollback failed" (Reason says why). The Runtime bridge emits
// it from the upgrade's report on the event hook (any report with an
// UpgradeEvent method, as upgrade.Report has); Loop is the loop of the
// actor that reported it.
type ActorUpgraded struct {
	Actor   actor.Ref
	Loop    int
	Outcome string
	From    string // the version the outcome moves from
	To      string // the version it moves to (or would have)
	Reason  error
	Time    time.Time
}

// OverloadCause says why a loop was reported overloaded.
type OverloadCause uint8

// The causes of LoopOverloaded.
const (
	// Stalled: a handler ran longer than actor.Config.Watchdog and held up
	// every actor of the loop.
	Stalled OverloadCause = iota + 1
	// QueueFull: the loop dropped a message with actor.ErrQueueFull.
	QueueFull
)

// String returns "stalled" or "queue full".
func (c OverloadCause) String() string {
	switch c {
	case Stalled:
		return "stalled"
	case QueueFull:
		return "queue full"
	}
	return "unknown"
}

// LoopOverloaded is emitted when a loop falls behind: its watchdog saw it
// stall (Cause Stalled, from actor.Config.OnStall, with Stalled the time
// since it last made progress), or it dropped a message for lack of room
// (Cause QueueFull, with Actor the intended receiver). Its Time is read from
// the wall clock, as the watchdog's is. One event is emitted per report,
// so a burst of drops yields a burst of events, each subject to the
// subscribers' own policies.
type LoopOverloaded struct {
	Loop    int
	Cause   OverloadCause
	Stalled time.Duration // Cause Stalled only
	Actor   actor.Ref     // Cause QueueFull only
	Time    time.Time
}

// NodeUp is emitted by the remote layer when a peer node becomes reachable.
// The Runtime bridge does not emit it.
type NodeUp struct {
	Node string // the peer's identity
	Addr string // its network address
	Time time.Time
}

// NodeDown is emitted by the remote layer when a peer node is lost: every
// pending ask to it fails and monitors of its actors fire. The Runtime
// bridge does not emit it.
type NodeDown struct {
	Node   string
	Addr   string
	Reason error
	Time   time.Time
}

// ConnOpened is emitted by the remote layer when a connection to a peer is
// established. The Runtime bridge does not emit it.
type ConnOpened struct {
	Node   string
	Local  string // local address
	Remote string // remote address
	Time   time.Time
}

// ConnClosed is emitted by the remote layer when a connection to a peer
// closes, after its ConnOpened. The Runtime bridge does not emit it.
type ConnClosed struct {
	Node   string
	Local  string
	Remote string
	Reason error // nil for an orderly close
	Time   time.Time
}

// DeadLetter is emitted by the remote layer for one-way messages that Send
// accepted for another node and that were then lost with their connection:
// queued, or written but not yet acknowledged by the receiving node, when
// the connection broke (the receiving node may have handled the last few
// before the break; see docs/remote.md, "Delivery guarantees"). One event
// covers the messages of one sender to one target and of one type lost
// together: Count of them. The Runtime bridge does not emit it.
type DeadLetter struct {
	Node   string    // the peer node the messages were for
	Addr   string    // its network address
	From   actor.Ref // the local sender; zero for a plain goroutine's Send
	To     actor.Ref // the remote target
	Type   string    // the message's registered type name
	Count  int       // how many such messages were lost
	Reason error     // why the connection ended (matches remote.ErrNodeDown)
	Time   time.Time
}

// Runtime bridges an actor.System to a bus: it emits ActorSpawned,
// ActorStopped, ActorCrashed, ActorRestarted, SupervisorGaveUp,
// ActorUpgraded and LoopOverloaded from the
// system's event hook and watchdog, and ends actor subscriptions of this bus
// whose actor stopped. The actor package does not know about the bus; wire
// them with Install (or set actor.Config.Hook to Hook and OnStall to
// OnStall) before actor.NewSystem.
type Runtime struct {
	bus       *Bus
	spawned   *Emitter[ActorSpawned]
	stopped   *Emitter[ActorStopped]
	crashed   *Emitter[ActorCrashed]
	restarted *Emitter[ActorRestarted]
	overload  *Emitter[LoopOverloaded]
	gaveUp    *Emitter[SupervisorGaveUp]
	upgraded  *Emitter[ActorUpgraded]
}

// NewRuntime registers the emitters of the runtime events on b (so that
// WaitEmitter for them returns) and returns the bridge. It fails with
// ErrBusClosed on a closed bus.
func NewRuntime(b *Bus) (*Runtime, error) {
	r := &Runtime{bus: b}
	var err error
	if r.spawned, err = NewEmitter[ActorSpawned](b); err != nil {
		return nil, err
	}
	r.stopped, _ = NewEmitter[ActorStopped](b)
	r.crashed, _ = NewEmitter[ActorCrashed](b)
	r.restarted, _ = NewEmitter[ActorRestarted](b)
	r.gaveUp, _ = NewEmitter[SupervisorGaveUp](b)
	r.upgraded, _ = NewEmitter[ActorUpgraded](b)
	r.overload, err = NewEmitter[LoopOverloaded](b)
	if err != nil { // the bus closed meanwhile
		r.Close()
		return nil, err
	}
	return r, nil
}

// Install returns cfg with its LifecycleHook and OnStall set to the
// bridge's, chained after the ones cfg already had. The bridge uses the
// lifecycle hook, which costs nothing per message (a full Hook times every
// handler). When cfg had no OnStall, the stall is still logged at Warn level
// as the runtime's default does, to cfg.Logger or slog.Default().
func (r *Runtime) Install(cfg actor.Config) actor.Config {
	if prev := cfg.LifecycleHook; prev != nil {
		cfg.LifecycleHook = func(ev *actor.Event) { prev(ev); r.Hook(ev) }
	} else {
		cfg.LifecycleHook = r.Hook
	}
	prevStall := cfg.OnStall
	if prevStall == nil {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		prevStall = func(loop int, d time.Duration) {
			log.Warn("actor: loop stalled: a handler has run too long", "loop", loop, "for", d)
		}
	}
	cfg.OnStall = func(loop int, d time.Duration) { prevStall(loop, d); r.OnStall(loop, d) }
	return cfg
}

// Hook is an actor.Hook: it turns lifecycle events into bus events and
// ignores the others (one switch per message handled). It runs on loop
// goroutines and never waits on a subscriber: it takes no lock on the emit
// path, and the bus mutex only briefly, when an actor stops while the bus
// has actor subscriptions (to end those delivering to it). Emitting to channel subscriptions of the event
// types allocates nothing; to SubscribeMany and actor subscriptions, one
// small allocation per event.
func (r *Runtime) Hook(ev *actor.Event) {
	switch ev.Kind {
	case actor.EventSpawn:
		_ = r.spawned.Emit(ActorSpawned{Actor: ev.To, Parent: ev.From, Loop: ev.Loop, Time: ev.Start})
	case actor.EventStop:
		r.bus.actorGone(ev.To, ev.Err)
		_ = r.stopped.Emit(ActorStopped{Actor: ev.To, Loop: ev.Loop, Reason: ev.Err, Time: ev.Start})
	case actor.EventCrash:
		_ = r.crashed.Emit(ActorCrashed{Actor: ev.To, Loop: ev.Loop, Crash: ev.Crash, Time: ev.Start})
	case actor.EventRestart:
		_ = r.restarted.Emit(ActorRestarted{Actor: ev.To, Loop: ev.Loop, Time: ev.Start})
	case actor.EventReport:
		if g, ok := ev.Msg.(gaveUpReport); ok {
			if e, ok := g.GaveUpEvent(); ok {
				e.Loop = ev.Loop
				_ = r.gaveUp.Emit(e)
			}
		}
		if u, ok := ev.Msg.(upgradeReport); ok {
			e := u.UpgradeEvent()
			e.Loop = ev.Loop
			_ = r.upgraded.Emit(e)
		}
	case actor.EventDropped:
		if ev.Err == actor.ErrQueueFull || errors.Is(ev.Err, actor.ErrQueueFull) {
			_ = r.overload.Emit(LoopOverloaded{Loop: ev.Loop, Cause: QueueFull, Actor: ev.To, Time: time.Now()})
		}
	}
}

// OnStall has the signature of actor.Config.OnStall: it emits LoopOverloaded
// with Cause Stalled. It runs on the watchdog goroutine.
func (r *Runtime) OnStall(loop int, stalled time.Duration) {
	_ = r.overload.Emit(LoopOverloaded{Loop: loop, Cause: Stalled, Stalled: stalled, Time: time.Now()})
}

// Close unregisters the bridge's emitters; the hook then emits nothing.
// It is idempotent.
func (r *Runtime) Close() {
	closeEmitter(r.spawned)
	closeEmitter(r.stopped)
	closeEmitter(r.crashed)
	closeEmitter(r.restarted)
	closeEmitter(r.overload)
	closeEmitter(r.gaveUp)
	closeEmitter(r.upgraded)
}

// gaveUpReport is implemented by a supervision layer's reports (published
// through actor.Context.Report) that can say a supervisor gave up.
type gaveUpReport interface {
	GaveUpEvent() (SupervisorGaveUp, bool)
}

// upgradeReport is implemented by the reports of hot upgrades (published
// through actor.Context.Report).
type upgradeReport interface {
	UpgradeEvent() ActorUpgraded
}

func closeEmitter[T any](e *Emitter[T]) {
	if e != nil {
		e.Close()
	}
}
