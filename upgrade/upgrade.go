package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/seam"
)

// Errors of upgrades. An error of Apply or Begin that matches ErrRefused
// means the old version still runs, untouched. Apply's context's error,
// and ErrOutcomeUnknown, say nothing of the outcome: the upgrade may still
// happen (its Report tells).
var (
	// ErrRefused means the upgrade did not happen and the old version
	// keeps running as it was. The error names the cause, which it wraps.
	ErrRefused = errors.New("upgrade: refused")
	// ErrWrongVersion means the running actor is not of the type the
	// migration is from. It is wrapped in
	// an error matching ErrRefused.
	ErrWrongVersion = errors.New("upgrade: the actor does not run the version the migration is from")
	// ErrBadMigration means the Migration lacks a required field. It is
	// wrapped in an error matching ErrRefused.
	ErrBadMigration = errors.New("upgrade: incomplete migration")
	// ErrMigration means Forward failed: it returned an error (wrapped
	// too), panicked, or returned nil. It is wrapped in an error matching
	// ErrRefused.
	ErrMigration = errors.New("upgrade: migration failed")
	// ErrPending means continuations of the old version (promises it
	// attached with Then) had not run when Options.Drain ran out: the
	// upgrade was refused rather than drop them or run them against the
	// new version. It is wrapped in an error matching ErrRefused.
	ErrPending = errors.New("upgrade: continuations of the old version still pending")
	// ErrSuspended means the actor had crashed and was waiting for its
	// supervisor's restart when the upgrade reached it. It is wrapped in
	// an error matching ErrRefused.
	ErrSuspended = errors.New("upgrade: the actor is suspended after a crash")
	// ErrBusy means another upgrade of the same actor was waiting for the
	// old version's continuations (Options.Drain): one upgrade at a time.
	// It is wrapped in an error matching ErrRefused; retry once the other
	// has ended.
	ErrBusy = errors.New("upgrade: another upgrade of the actor is under way")
	// ErrSelf means an actor asked Begin to upgrade itself: its own
	// continuation on Begin's promise would belong to the version being
	// replaced, so the upgrade could neither wait for it nor ever run it.
	// It is wrapped in an error matching ErrRefused. Upgrade an actor from
	// another one, or from a goroutine with Apply.
	ErrSelf = errors.New("upgrade: an actor cannot upgrade itself")
	// ErrOutcomeUnknown means Apply or Begin could not learn whether the
	// upgrade happened: its guard stopped first (the system shut down, or
	// Begin's actor stopped). Reports and the actor itself tell. It does
	// not match ErrRefused.
	ErrOutcomeUnknown = errors.New("upgrade: outcome unknown")
)

// Migration moves an actor from version From (type Old) to version To
// (type New), both compiled into the binary.
type Migration[Old, New actor.Actor] struct {
	// From and To name the versions, for reports and errors (required).
	From, To string
	// Forward builds the new version from the old one's state (required).
	// It runs on the actor's loop, between two of its events, and must not
	// block. An error, a panic or a nil result refuses the upgrade; the
	// old instance is then left as it was, so Forward should not modify
	// it (copy what it moves). Replies the old version owes (*actor.Reply
	// from Defer) and timers it set are state: Forward moves the replies
	// into the new version; its timers' messages arrive at the new one.
	Forward func(Old) (New, error)
	// Back builds the old version from the new one's state, for a rollback
	// (optional: without it, a rollback starts a fresh Old from the
	// factory the actor had before the upgrade, running its Start).
	Back func(New) (Old, error)
	// Factory makes a fresh New (required): the actor's factory after the
	// upgrade, for its restarts, and its supervisor's Start for it.
	Factory func() New
	// Health, if set, is run on the actor's loop every
	// Options.HealthEvery during Options.Window: an error or a panic rolls
	// the upgrade back. It must not block.
	Health func(New) error
}

// Defaults of Options.
const (
	DefaultDrain       = 5 * time.Second
	DefaultWindow      = time.Minute
	DefaultHealthEvery = time.Second
)

// Options tune an upgrade. The zero value upgrades with the default drain
// and never rolls back.
type Options struct {
	// Drain bounds how long the upgrade waits, on the actor's loop clock,
	// for the old version's outstanding continuations to run, holding its
	// new messages meanwhile (default DefaultDrain; negative: no wait). If
	// some are still pending then, the upgrade is refused (ErrPending).
	Drain time.Duration
	// MaxCrashes, if positive, rolls the upgrade back at the MaxCrashes-th
	// crash of the actor within Window of the upgrade. A crash stops an
	// actor with no supervisor, so this is for supervised actors (set it
	// below the supervisor's restart intensity, or the supervisor gives
	// up first).
	MaxCrashes int
	// Window is how long after the upgrade crashes are counted and the
	// health check runs (default DefaultWindow when MaxCrashes or
	// Migration.Health is set). Once it has passed the upgrade is final.
	Window time.Duration
	// HealthEvery is the interval of Migration.Health (default
	// DefaultHealthEvery).
	HealthEvery time.Duration
	// Logger receives a line per outcome. Default slog.Default().
	Logger *slog.Logger
}

// Outcome says how an upgrade, or its watch, ended.
type Outcome uint8

// The outcomes reported.
const (
	// Upgraded: the actor runs the new version.
	Upgraded Outcome = iota + 1
	// Refused: the upgrade did not happen; the old version runs on.
	Refused
	// RolledBack: the new version failed within the window (Reason says
	// how) and the old one was restored.
	RolledBack
	// RollbackFailed: a rollback was due but could not be carried out
	// (Reason says why; typically the actor had stopped).
	RollbackFailed
)

var outcomeNames = [...]string{"", "upgraded", "refused", "rolled back", "rollback failed"}

// String returns the outcome's name as reports, logs and the bus show it
// ("upgraded", "refused", "rolled back", "rollback failed"), or "unknown".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Report is published for each outcome through actor.Context.Report by the
// upgrade's guard actor: the event hooks see it as an actor.EventReport
// whose Msg is the *Report (the debugger's event stream shows it), and an
// event.Runtime bridge emits it on its bus as an event.ActorUpgraded. It
// must not be modified.
type Report struct {
	Outcome Outcome
	Actor   actor.Ref // the actor upgraded
	From    string    // the version the outcome moves from (for RolledBack, the new one)
	To      string    // the version it moves to, or would have
	Reason  error     // why it was refused or rolled back; nil for Upgraded
	Time    time.Time // on the loop's clock
}

// UpgradeEvent returns the report as a bus event (see event.Runtime).
func (r *Report) UpgradeEvent() event.ActorUpgraded {
	return event.ActorUpgraded{Actor: r.Actor, Outcome: r.Outcome.String(), From: r.From, To: r.To,
		Reason: r.Reason, Time: r.Time}
}

// String returns the report on one line: the actor, the versions, the
// outcome and, if any, the reason.
func (r *Report) String() string {
	s := fmt.Sprintf("upgrade of %v %s -> %s: %v", r.Actor, r.From, r.To, r.Outcome)
	if r.Reason != nil {
		s += ": " + r.Reason.Error()
	}
	return s
}

// Apply upgrades the actor ref in place from m.From to m.To, and waits
// until it is done or refused (or ctx is done). On ref's loop, after the
// message it is handling: once its outstanding continuations have run
// (Options.Drain), it checks the running instance is an Old, calls
// Forward, and swaps the instance and the actor's factory, so restarts
// make a New; if ref's parent is a supervisor, the child's Start is
// swapped too (supervisor restarts and re-spawns make a New). Messages
// queued for ref stay queued, in order; ref stays valid. An error matching
// ErrRefused means nothing changed; ctx's error or ErrOutcomeUnknown, that
// the outcome is not known (it is reported). With Options.MaxCrashes or
// Migration.Health the upgrade is then watched for Options.Window, and
// rolled back (see Migration.Back) if the new version fails; Apply has
// returned by then: rollbacks are reported (see Report), not returned.
//
// If ctx ends first, Apply returns ctx's error, unwrapped, and the upgrade
// may go on (if ctx ended once its guard had started; a guard whose start
// the context's end overtook is never started).
// It needs running loops: not for a System in manual mode (use Begin from
// an actor there). A remote ref is refused (actor.ErrRemoteUnsupported).
func Apply[Old, New actor.Actor](ctx context.Context, sys *actor.System, ref actor.Ref, m Migration[Old, New], o Options) error {
	res := make(chan error, 1)
	g, err := newGuard(ref, m, o, func(err error) { res <- err })
	if err != nil {
		return err
	}
	if _, err := sys.Spawn(ctx, g.factory, g.spawnOpts()...); err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return err // the guard may have started (and been stopped): the outcome is unknown
		}
		return fmt.Errorf("%w: %v %s -> %s: starting the upgrade: %w", ErrRefused, ref, m.From, m.To, err)
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Begin is Apply from inside an actor: it returns at once a promise that
// settles (on c's loop) with nil once ref runs the new version, or with
// Apply's errors. The upgrade's guard actor is c's child. An actor cannot
// upgrade itself (ErrSelf).
func Begin[Old, New actor.Actor](c *actor.Context, ref actor.Ref, m Migration[Old, New], o Options) actor.Promise {
	p, settle := c.ExternalPromise()
	if ref == c.Self() {
		settle(nil, fmt.Errorf("%w: %v %s -> %s: %w", ErrRefused, ref, m.From, m.To, ErrSelf))
		return p
	}
	g, err := newGuard(ref, m, o, func(err error) { settle(nil, err) })
	if err != nil {
		settle(nil, err)
		return p
	}
	c.SpawnAsync(g.factory, g.spawnOpts()...).Then(func(_ *actor.Context, _ any, err error) {
		if err != nil {
			settle(nil, fmt.Errorf("%w: %v %s -> %s: starting the upgrade: %w", ErrRefused, ref, m.From, m.To, err))
		}
	})
	return p
}

// view is the runtime's upgrade seam. Its methods work through the
// Context they are given, whatever the System.
var view = seam.Upgrader((*actor.System)(nil)).(swapper)

// swapper is the runtime's upgrade seam (seam.Upgrader; actor/upgrade.go).
type swapper interface {
	Swap(c *actor.Context, r actor.Ref, drain time.Duration,
		f func(c *actor.Context, a actor.Actor, factory actor.Factory, pending int) (actor.Actor, actor.Factory, error)) actor.Promise
	Run(c *actor.Context, r actor.Ref, f func(c *actor.Context, a actor.Actor) (any, error)) actor.Promise
	WatchCrashes(c *actor.Context, watcher actor.Ref, on bool)
	Watcher(c *actor.Context) actor.Ref
}

// childUpgrader is implemented by supervisor actors (supervisor's
// UpgradeChild).
type childUpgrader interface {
	UpgradeChild(child actor.Ref, start actor.Factory) (actor.Factory, error)
}

// check refuses an incomplete migration.
func (m *Migration[Old, New]) check() error {
	switch {
	case m.From == "" || m.To == "":
		return errors.New("the versions must be named (From, To)")
	case m.Forward == nil:
		return errors.New("no Forward")
	case m.Factory == nil:
		return errors.New("no Factory")
	}
	return nil
}

func typeName[T any]() string { return reflect.TypeFor[T]().String() }

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// forward runs Forward on a, refusing a that is not an Old.
func (m *Migration[Old, New]) forward(ref actor.Ref, a actor.Actor) (n actor.Actor, err error) {
	old, ok := a.(Old)
	if !ok {
		return nil, fmt.Errorf("%w: %v runs %T, migration %s -> %s is from %s to %s",
			ErrWrongVersion, ref, a, m.From, m.To, typeName[Old](), typeName[New]())
	}
	defer func() {
		if v := recover(); v != nil {
			n, err = nil, fmt.Errorf("%w: Forward %s -> %s panicked: %v", ErrMigration, m.From, m.To, v)
		}
	}()
	nv, err := m.Forward(old)
	if err != nil {
		return nil, fmt.Errorf("%w: Forward %s -> %s: %w", ErrMigration, m.From, m.To, err)
	}
	if isNil(nv) {
		return nil, fmt.Errorf("%w: Forward %s -> %s returned nil", ErrMigration, m.From, m.To)
	}
	return nv, nil
}

// back runs Back on a, if there is one and a is a New.
func (m *Migration[Old, New]) back(a actor.Actor) (o actor.Actor, err error) {
	if m.Back == nil {
		return nil, errors.New("no Back")
	}
	n, ok := a.(New)
	if !ok {
		return nil, fmt.Errorf("the actor runs %T, not %s", a, typeName[New]())
	}
	defer func() {
		if v := recover(); v != nil {
			o, err = nil, fmt.Errorf("rollback through Back %s -> %s panicked: %v", m.To, m.From, v)
		}
	}()
	ov, err := m.Back(n)
	if err != nil {
		return nil, fmt.Errorf("rollback through Back %s -> %s: %w", m.To, m.From, err)
	}
	if isNil(ov) {
		return nil, fmt.Errorf("rollback through Back %s -> %s returned nil", m.To, m.From)
	}
	return ov, nil
}

// errSuperseded: the actor no longer runs the version an upgrade made (a
// later upgrade replaced it); that upgrade's watch ends.
var errSuperseded = errors.New("upgrade: the actor runs another version now")

// isNew reports whether a is a New.
func (m *Migration[Old, New]) isNew(a actor.Actor) bool {
	_, ok := a.(New)
	return ok
}

// health runs Health on a, if a is a New (a suspended actor, nil, is not
// checked: its supervisor's restart comes first).
func (m *Migration[Old, New]) health(a actor.Actor) (err error) {
	if a == nil {
		return nil
	}
	n, ok := a.(New)
	if !ok {
		return errSuperseded
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("health check of %s panicked: %v", m.To, v)
		}
	}()
	if err := m.Health(n); err != nil {
		return fmt.Errorf("health check of %s: %w", m.To, err)
	}
	return nil
}
