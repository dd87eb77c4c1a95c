package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// Applications: named supervision trees that the daemons of a cluster keep
// running, at most one instance at a time, through their application
// registry (docs/supervision.md, "Applications"). A client deploys,
// starts, stops, removes and lists them through any daemon's gateway.

// AppSpec describes an application: its root supervisor, the children it
// starts (each made from a kind registered on the daemons) and where the
// registry may run the root. It is written as JSON in a daemon's config
// file and by `actord app deploy`, with the member names given in the json
// tags; inside the registry it is msgpack, at most 8 KiB.
type AppSpec struct {
	// Name names the application in the cluster: 1 to 128 bytes, no
	// control characters.
	Name string `json:"name" msgpack:"name"`
	// Strategy is the root supervisor's restart strategy: "one_for_one"
	// (default), "one_for_all" or "rest_for_one".
	Strategy string `json:"strategy,omitempty" msgpack:"strategy,omitempty"`
	// Intensity and Period are the root supervisor's restart intensity:
	// more than Intensity restarts within Period make it give up (and the
	// daemon start the application again after a pause). Defaults 1 and
	// 5 s, as OTP's.
	Intensity int      `json:"intensity,omitempty" msgpack:"intensity,omitempty"`
	Period    Duration `json:"period,omitempty" msgpack:"period,omitempty"`
	// Prefer lists the daemons (member names) the root should run on,
	// most preferred first; the others are used when none of them is up.
	Prefer []string `json:"prefer,omitempty" msgpack:"prefer,omitempty"`
	// Takeover moves the application back to a daemon earlier in Prefer
	// as soon as it is up again.
	Takeover bool `json:"takeover,omitempty" msgpack:"takeover,omitempty"`
	// Children are the root supervisor's children, started in order.
	Children []AppChild `json:"children" msgpack:"children"`
}

// AppChild is one child of an application's root supervisor.
type AppChild struct {
	// Name is the child's ID among its siblings.
	Name string `json:"name" msgpack:"name"`
	// Kind is the kind it is made from, registered on the daemons.
	Kind string `json:"kind" msgpack:"kind"`
	// Args are the kind's arguments, a JSON object: a typed kind
	// (daemon.Kind) gets them decoded into its argument type, strictly.
	Args map[string]any `json:"args,omitempty" msgpack:"args,omitempty"`
	// Restart is "permanent" (default), "transient" or "temporary".
	Restart string `json:"restart,omitempty" msgpack:"restart,omitempty"`
	// Shutdown bounds the child's stop: a duration (default 5 s),
	// "brutal_kill" or "infinity".
	Shutdown string `json:"shutdown,omitempty" msgpack:"shutdown,omitempty"`
	// Node pins the child to the daemon of that member name; empty
	// spreads the children over the live daemons (supervisor.Spread).
	Node string `json:"node,omitempty" msgpack:"node,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s") in
// JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseAppSpec decodes an application spec from JSON, strictly: an
// unknown member is an error, and so is trailing data. Numbers in Args
// become int64 when they are integers, float64 otherwise. It checks the
// JSON only, not the spec (a daemon does at deploy).
func ParseAppSpec(b []byte) (AppSpec, error) {
	var s AppSpec
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return AppSpec{}, fmt.Errorf("%w: %w", ErrBadAppSpec, err)
	}
	if dec.More() {
		return AppSpec{}, fmt.Errorf("%w: trailing data after the object", ErrBadAppSpec)
	}
	for i := range s.Children {
		if s.Children[i].Args != nil {
			s.Children[i].Args = PlainNumbers(s.Children[i].Args).(map[string]any)
		}
	}
	return s, nil
}

// PlainNumbers replaces the json.Number values inside v (maps and slices
// included) by int64, or float64 when they are not integers, in place.
func PlainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = PlainNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = PlainNumbers(x[k])
		}
	}
	return v
}

// Errors of the application calls. They match on the client side too.
var (
	// ErrAppsOff: the daemon asked runs no application registry replica
	// and knows no daemon that does.
	ErrAppsOff = errors.New("actord: applications are off on this daemon")
	// ErrBadAppSpec: the spec was refused (unknown kind, bad arguments,
	// duplicate names, too big, ...).
	ErrBadAppSpec = errors.New("actord: bad application spec")
	// ErrUnknownApp: no application of that name.
	ErrUnknownApp = errors.New("actord: unknown application")
	// ErrAppRetry: the registry has no leader now (an election, or no
	// majority of its members up), or did not apply the change in time;
	// try again.
	ErrAppRetry = errors.New("actord: application registry unavailable, retry")
	// ErrAppBusy: another upgrade of the application is under way; try
	// again once it has ended.
	ErrAppBusy = errors.New("actord: application busy: another upgrade is under way")
	// ErrUpgradeFailed: a child's upgrade failed (the result's steps name
	// it and why) and the registry keeps the old spec; the children moved
	// were moved back, unless the message says "ROLLBACK INCOMPLETE" and
	// the steps "rollback failed" or "unknown" for some.
	ErrUpgradeFailed = errors.New("actord: application upgrade failed")
)

// DeployApp asks a gateway to deploy (create or update) an application
// and run it; the reply is an AppResult, once the registry applied it.
type DeployApp struct{ Spec AppSpec }

// AppOp asks a gateway to "start", "stop" or "remove" the named
// application; the reply is an AppResult, once the registry applied it.
type AppOp struct {
	App string
	Op  string
}

// ListApps asks a gateway for the applications; the reply is an AppList.
type ListApps struct{}

// AppResult answers DeployApp and AppOp: Code 0 for success, or one of
// the App* codes with a message.
type AppResult struct {
	Code int
	Msg  string
}

// Codes of AppResult and AppList.
const (
	AppOK      = 0
	AppOff     = 1 // ErrAppsOff
	AppBadSpec = 2 // ErrBadAppSpec
	AppUnknown = 3 // ErrUnknownApp
	AppRetry   = 4 // ErrAppRetry
	AppBusy    = 5 // ErrAppBusy
	AppFailed  = 6 // ErrUpgradeFailed
)

// Err returns the result's error (nil on success), matching the sentinel
// of its code.
func (r AppResult) Err() error {
	var base error
	switch r.Code {
	case AppOK:
		return nil
	case AppOff:
		base = ErrAppsOff
	case AppBadSpec:
		base = ErrBadAppSpec
	case AppUnknown:
		base = ErrUnknownApp
	case AppBusy:
		base = ErrAppBusy
	case AppFailed:
		base = ErrUpgradeFailed
	case MoveNoHandoff:
		base = ErrNoHandoff
	case MoveExport:
		base = ErrExport
	case MoveImport:
		base = ErrImport
	case MoveTargetDown:
		base = ErrTargetDown
	case MoveFailed:
		base = ErrMoveFailed
	default:
		base = ErrAppRetry
	}
	return fmt.Errorf("%w: %s", base, r.Msg)
}

// AppList answers ListApps: the applications not removed, by name, as the
// answering registry replica has applied them (Result.Code 0), or why it
// could not answer.
type AppList struct {
	Apps   []AppInfo
	Result AppResult
}

// AppInfo is an application as the registry knows it.
type AppInfo struct {
	Spec AppSpec `json:"spec"`
	// Desired is "running" or "stopped".
	Desired string `json:"desired"`
	// State is "running" (its daemon holds a lease on it), "starting"
	// (assigned, no lease yet), "waiting" (desired running, no daemon
	// assigned: none is up) or "stopped".
	State string `json:"state"`
	// Node is the daemon the registry assigned it to ("" none), Gen the
	// assignment's generation (it grows at every move).
	Node string `json:"node"`
	Gen  uint64 `json:"gen"`
}

// UpgradeApp asks a gateway to upgrade a running application in place,
// child by child across the daemons, each child's state handed to its new
// kind by the upgrade registered on its daemon (docs/upgrades.md, "Rolling
// upgrades of applications"). Either Spec is the new spec (same name, same
// children in the same order: only children's kinds may differ), or App,
// Child and Kind name one child's new kind. The reply is an UpgradeResult,
// once every child is upgraded and the registry holds the new spec, or
// once a failure has been rolled back.
//
// Progress, if set, is sent each step's outcome as it happens, as an
// UpgradeStep message (a child upgraded or refused, then, on a failure,
// each one moved back), at most 2·64+1 of them: an actor of the asker's,
// spawned to print them, say. They are a courtesy, sent one way: the
// reply's Steps are the outcome.
type UpgradeApp struct {
	Spec     AppSpec
	App      string
	Child    string
	Kind     string
	Progress actor.Ref
}

// UpgradeStep is the outcome of one child's upgrade.
type UpgradeStep struct {
	// Child is the child's name, Node the daemon it runs on.
	Child string `json:"child"`
	Node  string `json:"node"`
	// From and To are the kinds of the step.
	From string `json:"from"`
	To   string `json:"to"`
	// Outcome is "upgraded", "refused" (the child's old kind runs on),
	// "rolled back" (upgraded, then moved back because a later child
	// failed), "rollback failed" (its move back failed: it runs To, its
	// daemon says) or "unknown" (no answer in time; Reason ends with "it
	// runs its old kind" once moved back, else which kind it runs is not
	// known and its root's restarts make From).
	Outcome string `json:"outcome"`
	// Reason says why, for every outcome but "upgraded".
	Reason string `json:"reason,omitempty"`
}

// UpgradeResult answers UpgradeApp: the steps taken, in order, and the
// outcome (Result.Code 0: every child runs its new kind and the registry
// holds the new spec; AppFailed: a step failed and the upgrade was rolled
// back, as far as Steps say (see ErrUpgradeFailed); other codes: refused before any child moved, unless Steps say
// otherwise).
type UpgradeResult struct {
	App    string
	Steps  []UpgradeStep
	Result AppResult
}

// registerAppTypes registers the application messages.
func registerAppTypes(n *remote.Node) error {
	return errors.Join(
		remote.Register[DeployApp](n, "actord.gateway.DeployApp"),
		remote.Register[AppOp](n, "actord.gateway.AppOp"),
		remote.Register[ListApps](n, "actord.gateway.ListApps"),
		remote.Register[AppResult](n, "actord.gateway.AppResult"),
		remote.Register[AppList](n, "actord.gateway.AppList"),
		remote.Register[UpgradeApp](n, "actord.gateway.UpgradeApp"),
		remote.Register[UpgradeResult](n, "actord.gateway.UpgradeResult"),
		remote.Register[UpgradeStep](n, "actord.gateway.UpgradeStep"),
		remote.Register[MoveChild](n, "actord.gateway.MoveChild"),
		remote.Register[MoveResult](n, "actord.gateway.MoveResult"),
		remote.Register[Drain](n, "actord.gateway.Drain"),
		remote.Register[DrainResult](n, "actord.gateway.DrainResult"),
	)
}
