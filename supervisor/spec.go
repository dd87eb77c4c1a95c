package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/actord/actord/actor"
)

// Strategy says which children a supervisor restarts when one of them
// crashes or exits and is to be restarted.
type Strategy uint8

// The restart strategies, as Erlang/OTP's.
const (
	// OneForOne restarts only the child that failed.
	OneForOne Strategy = iota
	// OneForAll terminates every other running child (in reverse start
	// order, each within its shutdown timeout) and then restarts them all,
	// the failed one included, in start order.
	OneForAll
	// RestForOne terminates the children started after the failed one (in
	// reverse start order), then restarts the failed one and those, in
	// start order. Children started before it are not touched.
	RestForOne
	// SimpleOneForOne is OneForOne for a supervisor of dynamic children
	// that all come from one template ChildSpec (Spec.Children[0]): none is
	// started with the supervisor; each StartChild starts one more.
	SimpleOneForOne
)

var strategyNames = [...]string{"one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// RestartType says whether a child that ended is restarted.
type RestartType uint8

// The restart types, as Erlang/OTP's.
const (
	// Permanent children are always restarted, whatever ended them.
	Permanent RestartType = iota
	// Transient children are restarted only after an abnormal end: a crash,
	// or a stop with a reason other than nil (normal) or one matching
	// actor.ErrShutdown.
	Transient
	// Temporary children are never restarted, and are forgotten when they
	// end (also when a sibling's failure takes them down under OneForAll or
	// RestForOne).
	Temporary
)

var restartNames = [...]string{"permanent", "transient", "temporary"}

func (r RestartType) String() string {
	if int(r) < len(restartNames) {
		return restartNames[r]
	}
	return "unknown"
}

// Special ChildSpec.Shutdown values. Any other negative value is invalid.
const (
	// BrutalKill ends the child at once without running its Terminate
	// method (actor.Context.Kill; the reason is actor.ErrKilled).
	BrutalKill time.Duration = -1
	// Infinity waits for the child to end however long it takes (the
	// default for a child supervisor, whose subtree may need time; allowed
	// for a worker too, whose Terminate must then always return).
	Infinity time.Duration = math.MaxInt64
	// DefaultShutdown is the shutdown timeout of a worker child whose
	// ChildSpec.Shutdown is zero (Erlang's default, 5 s).
	DefaultShutdown = 5 * time.Second
)

// Defaults of the restart intensity, as Erlang's: more than 1 restart in 5 s
// makes a supervisor give up.
const (
	DefaultMaxR = 1
	DefaultMaxT = 5 * time.Second
)

// AutoShutdown says whether a supervisor stops by itself when significant
// children end (OTP's auto_shutdown flag; see ChildSpec.Significant).
type AutoShutdown uint8

// The auto-shutdown modes, as OTP's.
const (
	// Never: no automatic shutdown (the default); no child may then be
	// significant.
	Never AutoShutdown = iota
	// AnySignificant: the supervisor shuts down as soon as a significant
	// child ends by itself and is not restarted.
	AnySignificant
	// AllSignificant: the supervisor shuts down when a significant child
	// ends by itself and is not restarted, and no other significant child
	// is left with an instance (running or restarting).
	AllSignificant
)

var autoNames = [...]string{"never", "any_significant", "all_significant"}

func (a AutoShutdown) String() string {
	if int(a) < len(autoNames) {
		return autoNames[a]
	}
	return "unknown"
}

// ChildSpec describes one child of a supervisor. Every field is checked
// when the supervisor starts (and when StartChild adds a child); a bad field
// fails with a *SpecError naming it.
type ChildSpec struct {
	// ID names the child among its siblings (required; unique for the
	// static strategies; under SimpleOneForOne all children share the
	// template's, or the one StartChild gives). It is also the last element
	// of the child's path in reports.
	ID string
	// Start makes the child's actor (called at every start and restart;
	// required, unless Remote places the child on another node). The
	// actor's Start method may return an error matching ErrIgnore to tell
	// the supervisor not to start it (OTP's ignore).
	Start actor.Factory
	// Remote, when its Kind is set, places the child on another node of
	// Spec.Cluster, created there from a registered kind instead of Start
	// (which must then be nil), at every start and restart. See Remote.
	Remote Remote
	// Restart is the child's restart type (default Permanent).
	Restart RestartType
	// Shutdown bounds how long the supervisor waits for the child to end
	// when it stops it: 0 means DefaultShutdown for a worker and Infinity
	// for a supervisor; BrutalKill kills it at once (no Terminate);
	// Infinity waits for ever. Other negative values are invalid. See the
	// package documentation for what the timeout can and cannot interrupt.
	Shutdown time.Duration
	// Supervisor marks a child that is itself a supervisor (made by Sub).
	// Before such a child is stopped or restarted, it is asked to stop its
	// own children, in its own order and with their own timeouts, within
	// this child's Shutdown.
	Supervisor bool
	// Significant marks a child whose own end (not one the supervisor
	// caused) may shut the supervisor down, per Spec.AutoShutdown. Only a
	// Transient or Temporary child may be significant, and only under a
	// supervisor whose AutoShutdown is not Never.
	Significant bool
	// Options are extra spawn options, e.g. actor.OnLoop(i) to place the
	// child on another loop. Children go on the supervisor's loop by default.
	// A remote child takes none.
	Options []actor.SpawnOption
}

// Spec describes a supervisor.
type Spec struct {
	// Strategy is the restart strategy (default OneForOne).
	Strategy Strategy
	// MaxR and MaxT are the restart intensity: when more than MaxR restarts
	// happen within MaxT, the supervisor stops all its children in reverse
	// start order and stops itself with a reason matching both
	// actor.ErrShutdown (OTP's shutdown) and ErrTooManyRestarts. MaxR 0
	// means DefaultMaxR; a negative MaxR allows no restart at all. MaxT 0
	// means DefaultMaxT; a negative MaxT is invalid.
	MaxR int
	MaxT time.Duration
	// AutoShutdown says whether the supervisor stops by itself when
	// significant children end (default Never). It must be Never under
	// SimpleOneForOne.
	AutoShutdown AutoShutdown
	// Children are the static children, started in order with the
	// supervisor. Under SimpleOneForOne, Children[0] is the template of the
	// dynamic children and is not started.
	Children []ChildSpec
	// Name is the supervisor's path in reports when it is not a child of
	// another supervisor (a child's path is its parent's path, "/", its ID).
	// Default "supervisor".
	Name string
	// Logger receives the crash and restart reports. Default slog.Default().
	Logger *slog.Logger
	// Cluster is where the remote children (ChildSpec.Remote) are created:
	// required when one is, including one StartChild adds later.
	Cluster Cluster
	// Adopt lists, by child ID, running remote children that another
	// supervisor let go of (Detach) for this one: at its first start of
	// such a child the supervisor claims it (Adopter, if the Cluster is
	// one) and links to it instead of starting it: no new instance, no
	// restart counted. One that cannot be claimed is started afresh; one
	// that has ended meanwhile ends as any child, by its link. Static
	// children only.
	Adopt map[string]Detached
}

// Errors of supervisors. Test for them with errors.Is.
var (
	// ErrTooManyRestarts is (wrapped in) the stop reason of a supervisor
	// that reached its restart intensity and gave up. That reason also
	// matches actor.ErrShutdown, as OTP's supervisor exits with shutdown.
	ErrTooManyRestarts = errors.New("supervisor: reached max restart intensity")
	// ErrStartFailed is (wrapped in) the error of a supervisor whose child
	// failed to start while the supervisor itself started; the child's
	// error is wrapped too.
	ErrStartFailed = errors.New("supervisor: child failed to start")
	// ErrIgnore, returned (or wrapped) by a child's Start method, tells its
	// supervisor not to start it (OTP's ignore): a static child keeps its
	// spec and is not running (a temporary one is forgotten), a dynamic
	// child is not added, and StartChild and RestartChild answer the zero
	// Ref with no error. It is not a failure and is not retried.
	ErrIgnore = errors.New("supervisor: child ignored its start")
	// ErrAlreadyPresent means StartChild named an ID already in use by a
	// child that is not running.
	ErrAlreadyPresent = errors.New("supervisor: child id already present")
	// ErrAlreadyStarted means StartChild named an ID already in use by a
	// running child. It matches ErrAlreadyPresent too.
	ErrAlreadyStarted = fmt.Errorf("%w and running", ErrAlreadyPresent)
	// ErrNotFound means a request named no child of the supervisor.
	ErrNotFound = errors.New("supervisor: no such child")
	// ErrRunning means DeleteChild or RestartChild named a running child.
	ErrRunning = errors.New("supervisor: child is running")
	// ErrRestarting means DeleteChild or RestartChild named a child whose
	// restart failed and is being retried.
	ErrRestarting = errors.New("supervisor: child is restarting")
	// ErrBadSpec means a Spec or ChildSpec is unusable (see SpecError), or
	// a request by ID was sent to a SimpleOneForOne supervisor, whose
	// children have no IDs of their own (OTP's simple_one_for_one error).
	ErrBadSpec = errors.New("supervisor: bad spec")
	// ErrExiting means the supervisor was stopping when a request reached it.
	ErrExiting = errors.New("supervisor: exiting")
)

// SpecError is a Spec or ChildSpec field that cannot be used. It matches
// ErrBadSpec.
type SpecError struct {
	Child  string // the child's ID, or "Children[i]" when it has none; "" for a field of the Spec
	Field  string // the field's name, e.g. "Shutdown"
	Reason string // what is wrong with it
}

func (e *SpecError) Error() string {
	if e.Child == "" {
		return fmt.Sprintf("supervisor: bad spec: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("supervisor: bad spec: child %s: %s: %s", e.Child, e.Field, e.Reason)
}

// Is reports whether target is ErrBadSpec.
func (e *SpecError) Is(target error) bool { return target == ErrBadSpec }

// Validate checks every field of the spec and of its children, as the
// supervisor does when it starts, and returns a *SpecError for the first
// bad one.
func (sp Spec) Validate() error {
	if sp.Strategy > SimpleOneForOne {
		return &SpecError{Field: "Strategy", Reason: fmt.Sprintf("unknown strategy %d", sp.Strategy)}
	}
	if sp.MaxT < 0 {
		return &SpecError{Field: "MaxT", Reason: fmt.Sprintf("%v is negative", sp.MaxT)}
	}
	if sp.AutoShutdown > AllSignificant {
		return &SpecError{Field: "AutoShutdown", Reason: fmt.Sprintf("unknown mode %d", sp.AutoShutdown)}
	}
	if sp.Strategy == SimpleOneForOne {
		if len(sp.Children) != 1 {
			return &SpecError{Field: "Children", Reason: fmt.Sprintf("simple_one_for_one needs exactly one template child, not %d", len(sp.Children))}
		}
		if sp.AutoShutdown != Never {
			return &SpecError{Field: "AutoShutdown", Reason: "must be never under simple_one_for_one"}
		}
	}
	seen := make(map[string]bool, len(sp.Children))
	for i, cs := range sp.Children {
		if err := cs.check(&sp, fmt.Sprintf("Children[%d]", i)); err != nil {
			return err
		}
		if seen[cs.ID] {
			return &SpecError{Child: fmt.Sprintf("%q", cs.ID), Field: "ID", Reason: "duplicate"}
		}
		seen[cs.ID] = true
	}
	return nil
}

// check validates cs for the supervisor of spec sp; name stands for the
// child when it has no ID.
func (cs ChildSpec) check(sp *Spec, name string) *SpecError {
	if cs.ID != "" {
		name = fmt.Sprintf("%q", cs.ID)
	}
	auto := sp.AutoShutdown
	bad := func(field, reason string) *SpecError { return &SpecError{Child: name, Field: field, Reason: reason} }
	if err := cs.Remote.check(cs, sp); err != nil {
		return bad(err[0], err[1])
	}
	switch {
	case cs.ID == "":
		return bad("ID", "empty")
	case cs.Start == nil && !cs.remote():
		return bad("Start", "nil")
	case cs.Restart > Temporary:
		return bad("Restart", fmt.Sprintf("unknown restart type %d", cs.Restart))
	case cs.Shutdown < 0 && cs.Shutdown != BrutalKill:
		return bad("Shutdown", fmt.Sprintf("%v is negative and not BrutalKill", cs.Shutdown))
	case cs.Significant && cs.Restart == Permanent:
		return bad("Significant", "a permanent child cannot be significant")
	case cs.Significant && auto == Never:
		return bad("Significant", "needs a supervisor whose AutoShutdown is not never")
	}
	for i, o := range cs.Options {
		if o == nil {
			return bad("Options", fmt.Sprintf("option %d is nil", i))
		}
	}
	return nil
}

// Sub returns the ChildSpec of a child supervisor with the given spec.
func Sub(id string, spec Spec) ChildSpec {
	return ChildSpec{ID: id, Start: New(spec), Supervisor: true}
}

// Worker returns the ChildSpec of a permanent worker child.
func Worker(id string, start actor.Factory, opts ...actor.SpawnOption) ChildSpec {
	return ChildSpec{ID: id, Start: start, Options: opts}
}

// Requests a supervisor answers. Send them with Ask (actor.Context.Ask or
// actor.System.Ask). A supervisor handles them in the order they arrive,
// between its other work (a restart, a shutdown), as OTP's does; it may
// answer later, after stopping or starting children on other loops, so a
// synchronous Call gets actor.ErrDeferredCall when the answer is not ready
// at once. A supervisor retrying a restart that failed handles the requests
// that arrived meanwhile before the next attempt.

// StartChild adds a child and starts it; the reply is its actor.Ref, or
// the zero Ref if its Start returned ErrIgnore. Under the static strategies
// Spec is the new child's spec, checked as at the supervisor's start (a
// *SpecError if it is bad); its ID must be new (ErrAlreadyStarted or
// ErrAlreadyPresent otherwise); it is started after the existing children
// (and stopped before them); if its start fails it is not kept, and if it
// is ignored it is kept, not running (unless temporary). Under
// SimpleOneForOne the template is used, with Spec.Start (or Spec.Remote,
// for a child on another node) and Spec.ID, if set, instead of the
// template's (the way to pass per-child arguments); the other fields come
// from the template and must be left zero.
type StartChild struct{ Spec ChildSpec }

// TerminateChild stops a child (its shutdown timeout applies) and keeps its
// spec, so RestartChild can start it again; a temporary child, or a child of
// a SimpleOneForOne supervisor, is forgotten. A child whose restart is being
// retried stops being retried. Name the child by ID (static strategies) or
// by Ref (any strategy; under SimpleOneForOne only by Ref, an ID fails with
// ErrBadSpec). The reply is nil. Under SimpleOneForOne a Ref that names no
// child is answered nil if that actor is dead (already gone, as OTP) and
// ErrNotFound if it is alive.
type TerminateChild struct {
	ID  string
	Ref actor.Ref
}

// RestartChild starts a stopped static child again (it does not count
// towards the restart intensity); the reply is its new actor.Ref (the zero
// Ref if it ignored its start). It fails with ErrRunning for a running
// child, ErrRestarting for one whose restart is being retried, the start's
// error if the start fails (the child stays stopped), and ErrBadSpec under
// SimpleOneForOne.
type RestartChild struct{ ID string }

// DeleteChild forgets the spec of a stopped static child. It fails with
// ErrRunning, ErrRestarting, ErrNotFound, or ErrBadSpec under
// SimpleOneForOne.
type DeleteChild struct{ ID string }

// WhichChildren asks for the children, in start order; the reply is a
// []ChildInfo.
type WhichChildren struct{}

// CountChildren asks for the counts of OTP's count_children; the reply is
// a ChildCounts.
type CountChildren struct{}

// ChildCounts is the reply to CountChildren.
type ChildCounts struct {
	Specs       int // child specs (1 under SimpleOneForOne: the template)
	Active      int // children running (not stopped, not restarting)
	Supervisors int // children (specs, or dynamic children) that are supervisors, running or not
	Workers     int // children (specs, or dynamic children) that are workers, running or not
}

// GetChildSpec asks for the spec of a child (OTP's get_childspec), named by
// ID (static strategies) or Ref (any strategy; under SimpleOneForOne only
// by Ref, an ID fails with ErrBadSpec). The reply is a ChildSpec with its
// defaults filled in (Shutdown DefaultShutdown for a worker, Infinity for a
// supervisor); ErrNotFound if there is no such child.
type GetChildSpec struct {
	ID  string
	Ref actor.Ref
}

// Shutdown makes the supervisor stop all its children in reverse start
// order, each within its shutdown timeout, and then stop itself (reason
// nil). The reply (nil) comes once the children are stopped. Unlike a plain
// actor Stop, which runs the supervisor's Terminate and cannot wait for
// children on other loops, it waits for every acknowledgement.
type Shutdown struct{}

// ChildState is the state of a child in WhichChildren.
type ChildState uint8

// The child states.
const (
	// ChildStopped: no instance (never started, ignored its start, stopped
	// by TerminateChild, or ended and not restarted); OTP's undefined.
	ChildStopped ChildState = iota
	// ChildRunning: a live instance.
	ChildRunning
	// ChildRestarting: a restart attempt failed and is being retried; no
	// instance meanwhile. OTP's restarting.
	ChildRestarting
)

var stateNames = [...]string{"stopped", "running", "restarting"}

func (s ChildState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ChildInfo describes a child in the reply to WhichChildren.
type ChildInfo struct {
	ID          string
	Ref         actor.Ref // zero unless the child is running
	State       ChildState
	Running     bool // State == ChildRunning
	Supervisor  bool
	Significant bool
	Restart     RestartType
	// Node is the address of the node a running remote child is on ("" for
	// a child of this node).
	Node string
}
