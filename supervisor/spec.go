package supervisor

import (
	"errors"
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

// Special ChildSpec.Shutdown values.
const (
	// BrutalKill ends the child at once without running its Terminate
	// method (actor.Context.Kill; the reason is actor.ErrKilled).
	BrutalKill time.Duration = -1
	// Infinity waits for the child to end however long it takes (the
	// default for a child supervisor, whose subtree may need time).
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

// ChildSpec describes one child of a supervisor.
type ChildSpec struct {
	// ID names the child among its siblings (unique for the static
	// strategies; under SimpleOneForOne all children share the template's).
	// It is also the last element of the child's path in reports.
	ID string
	// Start makes the child's actor (called at every start and restart).
	Start actor.Factory
	// Restart is the child's restart type (default Permanent).
	Restart RestartType
	// Shutdown bounds how long the supervisor waits for the child to end
	// when it stops it: 0 means DefaultShutdown for a worker and Infinity
	// for a supervisor; BrutalKill kills it at once (no Terminate);
	// Infinity waits for ever. See the package documentation for what the
	// timeout can and cannot interrupt.
	Shutdown time.Duration
	// Supervisor marks a child that is itself a supervisor (made by Sub).
	// Before such a child is stopped or restarted, it is asked to stop its
	// own children, in its own order and with their own timeouts, within
	// this child's Shutdown.
	Supervisor bool
	// Options are extra spawn options, e.g. actor.OnLoop(i) to place the
	// child on another loop. Children go on the supervisor's loop by default.
	Options []actor.SpawnOption
}

// Spec describes a supervisor.
type Spec struct {
	// Strategy is the restart strategy (default OneForOne).
	Strategy Strategy
	// MaxR and MaxT are the restart intensity: when more than MaxR restarts
	// happen within MaxT, the supervisor stops all its children in reverse
	// start order and stops itself with an error matching
	// ErrTooManyRestarts, for its own supervisor to handle. MaxR 0 means
	// DefaultMaxR; a negative MaxR allows no restart at all. MaxT 0 means
	// DefaultMaxT.
	MaxR int
	MaxT time.Duration
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
}

// Errors of supervisors. Test for them with errors.Is.
var (
	// ErrTooManyRestarts is (wrapped in) the stop reason of a supervisor
	// that reached its restart intensity and gave up.
	ErrTooManyRestarts = errors.New("supervisor: reached max restart intensity")
	// ErrStartFailed is (wrapped in) the error of a supervisor whose child
	// failed to start while the supervisor itself started; the child's
	// error is wrapped too.
	ErrStartFailed = errors.New("supervisor: child failed to start")
	// ErrAlreadyPresent means StartChild named an ID already in use.
	ErrAlreadyPresent = errors.New("supervisor: child id already present")
	// ErrNotFound means a request named no child of the supervisor.
	ErrNotFound = errors.New("supervisor: no such child")
	// ErrRunning means DeleteChild or RestartChild named a running child.
	ErrRunning = errors.New("supervisor: child is running")
	// ErrBadSpec means a Spec or ChildSpec is unusable (no Start, duplicate
	// IDs, no template under SimpleOneForOne, a static request to a
	// SimpleOneForOne supervisor, ...).
	ErrBadSpec = errors.New("supervisor: bad spec")
	// ErrExiting means the supervisor was stopping when a request reached it.
	ErrExiting = errors.New("supervisor: exiting")
)

// Sub returns the ChildSpec of a child supervisor with the given spec.
func Sub(id string, spec Spec) ChildSpec {
	return ChildSpec{ID: id, Start: New(spec), Supervisor: true}
}

// Worker returns the ChildSpec of a permanent worker child.
func Worker(id string, start actor.Factory, opts ...actor.SpawnOption) ChildSpec {
	return ChildSpec{ID: id, Start: start, Options: opts}
}

// Requests a supervisor answers. Send them with Ask (actor.Context.Ask or
// actor.System.Ask): a supervisor may answer later, after stopping or
// starting children on other loops, so a synchronous Call gets
// actor.ErrDeferredCall when the answer is not ready at once.

// StartChild adds a child and starts it; the reply is its actor.Ref. Under
// the static strategies Spec is the new child's spec (its ID must be new)
// and it is started after the existing children (and stopped before them).
// Under SimpleOneForOne the template is used, with Spec.Start, if set,
// instead of the template's factory (the way to pass per-child arguments).
type StartChild struct{ Spec ChildSpec }

// TerminateChild stops a child (its shutdown timeout applies) and keeps its
// spec, so RestartChild can start it again; a temporary child, or a child of
// a SimpleOneForOne supervisor, is forgotten. Name the child by ID (static
// strategies) or by Ref (any strategy). The reply is nil.
type TerminateChild struct {
	ID  string
	Ref actor.Ref
}

// RestartChild starts a stopped static child again (it does not count
// towards the restart intensity); the reply is its new actor.Ref.
type RestartChild struct{ ID string }

// DeleteChild forgets the spec of a stopped static child.
type DeleteChild struct{ ID string }

// WhichChildren asks for the children, in start order; the reply is a
// []ChildInfo.
type WhichChildren struct{}

// Shutdown makes the supervisor stop all its children in reverse start
// order, each within its shutdown timeout, and then stop itself (reason
// nil). The reply (nil) comes once the children are stopped. Unlike a plain
// actor Stop, which runs the supervisor's Terminate and cannot wait for
// children on other loops, it waits for every acknowledgement.
type Shutdown struct{}

// ChildInfo describes a child in the reply to WhichChildren.
type ChildInfo struct {
	ID         string
	Ref        actor.Ref // zero when the child is not running
	Running    bool      // started and not stopped (a crashed child about to be restarted counts)
	Supervisor bool
	Restart    RestartType
}
