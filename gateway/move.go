package gateway

import "errors"

// Moving an application's child to another daemon with its state, and
// draining a daemon (docs/upgrades.md, "Moving children and draining a
// daemon").

// Errors of a child's move. Each leaves the child running where it was,
// its state and its messages kept, unless the message says otherwise.
var (
	// ErrNoHandoff: the child's kind has no state handoff registered
	// (daemon.Handoff) on the daemon it runs on, or on the target.
	ErrNoHandoff = errors.New("actord: no state handoff registered for the child's kind")
	// ErrExport: the child's export of its state failed or panicked.
	ErrExport = errors.New("actord: the child's state export failed")
	// ErrImport: the target daemon could not make the new instance from
	// the state (its import failed or panicked, the state did not decode,
	// the kind refused the arguments).
	ErrImport = errors.New("actord: the child's state import failed")
	// ErrTargetDown: the target daemon is not a live member with a known
	// gateway, or did not answer.
	ErrTargetDown = errors.New("actord: the target daemon is not up")
	// ErrMoveFailed: any other failure of the move (the child's daemon
	// unreachable, the child restarted meanwhile, a timeout).
	ErrMoveFailed = errors.New("actord: child move failed")
)

// Codes of MoveResult (beyond AppResult's).
const (
	MoveNoHandoff  = 20 // ErrNoHandoff
	MoveExport     = 21 // ErrExport
	MoveImport     = 22 // ErrImport
	MoveTargetDown = 23 // ErrTargetDown
	MoveFailed     = 24 // ErrMoveFailed
)

// MoveChild asks a gateway to move the running child Child of the
// application App to the daemon named To (a member; empty: the live member
// with the fewest of the application's children, not the child's own),
// with its state. The reply is a MoveResult. A gateway answers within
// 2m15s (the move's own bound of 2 minutes on the daemon that runs the
// root, and the hops to it): an asker that waits less may give up on a
// move that happened.
type MoveChild struct {
	App, Child, To string
}

// MoveResult answers MoveChild: the child moved from daemon From to To
// (Result.Code 0), or why not (Result.Err matches the sentinel of the
// cause: ErrNoHandoff, ErrExport, ErrImport, ErrTargetDown, ErrMoveFailed,
// or an AppResult one).
type MoveResult struct {
	App    string `json:"app"`
	Child  string `json:"child"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Result AppResult
}

// Err returns the move's error, nil if it moved.
func (r MoveResult) Err() error { return r.Result.Err() }

// Drain asks a gateway to drain its daemon: every application child
// running there is moved, one at a time, to another live member with its
// state (see daemon.Daemon.Drain). The reply is a DrainResult.
type Drain struct{}

// DrainResult answers Drain: each child's outcome (a child left to the
// ordinary failover has its MoveResult's error), in the order tried.
type DrainResult struct {
	Node     string       `json:"node"`
	Children []MoveResult `json:"children"`
	// Roots: the application roots that ran on the daemon, each handed
	// to another daemon whose new root adopts the running children, or
	// why not (a root not handed over fails over, and its children
	// restart fresh, when the daemon stops).
	Roots  []RootMove `json:"roots"`
	Result AppResult
}

// RootMove is the handover of one application root by a drain: the
// registry gave the application to daemon To (Result.Code 0), or why not
// (Result.Err matches ErrMoveFailed).
type RootMove struct {
	App    string `json:"app"`
	To     string `json:"to,omitempty"`
	Result AppResult
}

// Err returns the handover's error, nil if the root was handed over.
func (r RootMove) Err() error { return r.Result.Err() }

// Moved counts the children moved.
func (r DrainResult) Moved() int {
	n := 0
	for _, c := range r.Children {
		if c.Result.Code == AppOK {
			n++
		}
	}
	return n
}
