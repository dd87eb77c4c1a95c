package appreg

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Limits on what the registry holds. Commands reach the state through the
// raft log, which peers write, so every one is checked at apply (the same
// way on every replica) as well as at propose.
const (
	// MaxNameLen bounds an application's and a node's name, in bytes.
	MaxNameLen = 128
	// MaxSpecSize bounds an application's spec, in bytes.
	MaxSpecSize = 8 << 10
	// MaxPrefer bounds a preference list.
	MaxPrefer = 16
	// MaxApps bounds the applications that are not removed.
	MaxApps = 256
	// MaxRecords bounds all records, removed ones (kept for their
	// generation history, see Remove) included.
	MaxRecords = 4 * MaxApps
	// MaxLease bounds the lease a renewal may ask for.
	MaxLease = time.Hour
	// MaxHandoverSize bounds what a release records for the next holder
	// (Command.Handover, App.Handover).
	MaxHandoverSize = 8 << 10
	// MaxCommandSize bounds an encoded command.
	MaxCommandSize = 2*MaxSpecSize + 4<<10
	// MaxStateSize bounds an encoded state (a snapshot's data).
	MaxStateSize = 8 << 20
)

// Sentinel errors of commands rejected at propose or at apply.
var (
	ErrMalformed   = errors.New("appreg: malformed command")
	ErrTooLarge    = errors.New("appreg: too large")
	ErrUnknownApp  = errors.New("appreg: unknown application")
	ErrStaleGen    = errors.New("appreg: stale assignment generation")
	ErrNotAssigned = errors.New("appreg: not the assigned node")
	ErrNotRunning  = errors.New("appreg: application not desired running")
	ErrLimit       = errors.New("appreg: registry full")
	ErrConflict    = errors.New("appreg: the record is not the one the command expects")
)

// Desired is what the cluster should do with an application.
type Desired uint8

// The desired states.
const (
	Running Desired = iota + 1 // keep one instance running
	Stopped                    // run no instance, keep the record
	Removed                    // run no instance; the record keeps only its generation history
)

// String names the desired state.
func (d Desired) String() string {
	switch d {
	case Running:
		return "running"
	case Stopped:
		return "stopped"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("desired(%d)", uint8(d))
}

// Op is a command's kind.
type Op uint8

// The commands.
const (
	OpDeploy  Op = iota + 1 // create or update an application, desired running
	OpStart                 // desired running
	OpStop                  // desired stopped
	OpRemove                // desired removed; spec and assignment dropped
	OpAssign                // move the assignment: compare-and-set on Gen
	OpRenew                 // the holder renews its lease for (Node, Gen)
	OpRelease               // the holder of (Node, Gen) hands the application to To
)

// String names the command.
func (o Op) String() string {
	switch o {
	case OpDeploy:
		return "deploy"
	case OpStart:
		return "start"
	case OpStop:
		return "stop"
	case OpRemove:
		return "remove"
	case OpAssign:
		return "assign"
	case OpRenew:
		return "renew"
	case OpRelease:
		return "release"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one change to the registry, proposed through raft and applied
// in log order on every replica.
type Command struct {
	Op  Op     `json:"op"`
	App string `json:"app"`
	// Deploy.
	Spec     []byte   `json:"spec,omitempty"`
	Prefer   []string `json:"prefer,omitempty"`
	Takeover bool     `json:"takeover,omitempty"`
	// IfSpec makes a deploy conditional (a compare-and-set): it applies
	// only if the record is desired running, holds a spec whose SpecHash
	// is IfSpec and is of generation Gen; otherwise it is rejected with
	// ErrConflict and changes nothing. "" deploys unconditionally.
	// Replicas that predate IfSpec ignore it: all must know it first.
	IfSpec string `json:"if_spec,omitempty"`
	// Assign: the new node, and the generation it replaces (the new one is
	// Gen+1). Renew: the holder and the generation it holds.
	Node string `json:"node,omitempty"`
	Gen  uint64 `json:"gen,omitempty"`
	// Renew: the lease the holder counts from its proposal, and its
	// incarnation and sequence number, which let it match the committed
	// renewal to the time it proposed it.
	Lease time.Duration `json:"lease,omitempty"`
	Inc   uint64        `json:"inc,omitempty"`
	Seq   uint64        `json:"seq,omitempty"`
	// Release: the holder (Node, Gen, its incarnation Inc) gives the
	// assignment to To (generation Gen+1). Clean claims that no instance
	// of this or an earlier generation runs any more, so To may start
	// without waiting for the holder's lease (see Replica.Release; the
	// claim is honoured only if every renewal of Gen was Inc's).
	// Handover is opaque to the registry: what the next holder needs to
	// take over (at most MaxHandoverSize bytes).
	To       string `json:"to,omitempty"`
	Clean    bool   `json:"clean,omitempty"`
	Handover []byte `json:"handover,omitempty"`
}

// App is an application's record.
type App struct {
	Name     string   `json:"name"`
	Spec     []byte   `json:"spec,omitempty"`
	Prefer   []string `json:"prefer,omitempty"`
	Takeover bool     `json:"takeover,omitempty"`
	Desired  Desired  `json:"desired"`
	// Node holds the assignment ("" none) of generation Gen. Gen only
	// grows, across Remove and a later Deploy too.
	Node string `json:"node,omitempty"`
	Gen  uint64 `json:"gen,omitempty"`
	// RenewGen is the generation of the last accepted renewal (0 none),
	// LastLease the lease it asked for, Renewals how many were accepted.
	RenewGen  uint64        `json:"renew_gen,omitempty"`
	LastLease time.Duration `json:"last_lease,omitempty"`
	Renewals  uint64        `json:"renewals,omitempty"`
	// RenewInc is the incarnation of the accepted renewals of RenewGen;
	// MixedInc is set when they came from more than one (a restart of the
	// holder's process): a release then cannot vouch for them all.
	RenewInc uint64 `json:"renew_inc,omitempty"`
	MixedInc bool   `json:"mixed_inc,omitempty"`
	// The last release: Handover is what it recorded for the holder of
	// generation HandoverGen (dropped once an assignment moves the
	// application past it); CleanGen is HandoverGen if the release was
	// clean (its holder may start without the wait); ReleasedBy is the
	// node that released (takeover does not move the application back to
	// it, for ReleasedByFor: see Plan; ReleaseRenewals is Renewals at the
	// release, which measures that time), cleared by a later assignment.
	Handover    []byte `json:"handover,omitempty"`
	HandoverGen uint64 `json:"handover_gen,omitempty"`
	CleanGen    uint64 `json:"clean_gen,omitempty"`
	ReleasedBy  string `json:"released_by,omitempty"`
	// ReleaseRenewals is Renewals when the last release applied.
	ReleaseRenewals uint64 `json:"release_renewals,omitempty"`
}

func (a *App) clone() *App {
	c := *a
	c.Spec = slices.Clone(a.Spec)
	c.Prefer = slices.Clone(a.Prefer)
	c.Handover = slices.Clone(a.Handover)
	return &c
}

// State is the registry: the applications by name. It changes only by
// Apply, and the same commands in the same order give the same state on
// every replica (no clock, no map order, no randomness).
type State struct {
	apps  map[string]*App
	live  int // records not removed
	index uint64
}

// NewState returns an empty registry.
func NewState() *State { return &State{apps: map[string]*App{}} }

// Index is the raft index of the last command applied (or of the snapshot
// the state was restored from).
func (s *State) Index() uint64 { return s.index }

// App returns a copy of the named record, removed ones included.
func (s *State) App(name string) (App, bool) {
	a, ok := s.apps[name]
	if !ok {
		return App{}, false
	}
	return *a.clone(), true
}

// Apps returns copies of all records in name order.
func (s *State) Apps() []App {
	out := make([]App, 0, len(s.apps))
	for _, n := range s.names() {
		out = append(out, *s.apps[n].clone())
	}
	return out
}

func (s *State) names() []string {
	ns := make([]string, 0, len(s.apps))
	for n := range s.apps {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func validName(n string) bool { return n != "" && len(n) <= MaxNameLen }

// SpecHash is the hash of a spec that a conditional deploy (IfSpec)
// expects: hex SHA-256.
func SpecHash(spec []byte) string {
	h := sha256.Sum256(spec)
	return hex.EncodeToString(h[:])
}

// Validate checks a command's shape (not the state it applies to).
func (c *Command) Validate() error {
	if !validName(c.App) {
		return fmt.Errorf("%w: application name must be 1..%d bytes", ErrMalformed, MaxNameLen)
	}
	switch c.Op {
	case OpDeploy:
		if len(c.Spec) > MaxSpecSize {
			return fmt.Errorf("%w: spec of %d bytes (max %d)", ErrTooLarge, len(c.Spec), MaxSpecSize)
		}
		if len(c.Prefer) > MaxPrefer {
			return fmt.Errorf("%w: preference list of %d nodes (max %d)", ErrTooLarge, len(c.Prefer), MaxPrefer)
		}
		for _, n := range c.Prefer {
			if !validName(n) {
				return fmt.Errorf("%w: node name must be 1..%d bytes", ErrMalformed, MaxNameLen)
			}
		}
		if c.IfSpec != "" {
			if b, err := hex.DecodeString(c.IfSpec); err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: if_spec must be %d hex digits", ErrMalformed, 2*sha256.Size)
			}
		}
	case OpStart, OpStop, OpRemove:
	case OpAssign:
		if !validName(c.Node) {
			return fmt.Errorf("%w: assign needs a node", ErrMalformed)
		}
	case OpRenew:
		if !validName(c.Node) || c.Gen == 0 || c.Lease <= 0 || c.Lease > MaxLease {
			return fmt.Errorf("%w: renew needs a node, a generation and a lease in (0, %v]", ErrMalformed, MaxLease)
		}
	case OpRelease:
		if !validName(c.Node) || !validName(c.To) || c.To == c.Node || c.Gen == 0 {
			return fmt.Errorf("%w: release needs the holder, a generation and another node", ErrMalformed)
		}
		if len(c.Handover) > MaxHandoverSize {
			return fmt.Errorf("%w: handover of %d bytes (max %d)", ErrTooLarge, len(c.Handover), MaxHandoverSize)
		}
	default:
		return fmt.Errorf("%w: unknown op %d", ErrMalformed, c.Op)
	}
	return nil
}

// EncodeCommand encodes a valid command for the raft log.
func EncodeCommand(c Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("%w: command of %d bytes (max %d)", ErrTooLarge, len(b), MaxCommandSize)
	}
	return b, nil
}

// DecodeCommand decodes a command from the raft log, bounded by
// MaxCommandSize, and validates it.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxCommandSize {
		return c, fmt.Errorf("%w: command of %d bytes (max %d)", ErrTooLarge, len(b), MaxCommandSize)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c, c.Validate()
}

// Apply applies the command at raft index idx. A rejected command (the
// error says why) leaves the records unchanged; the index advances either
// way. Apply never panics on any input.
func (s *State) Apply(idx uint64, c Command) error {
	if idx > s.index {
		s.index = idx
	}
	if err := c.Validate(); err != nil {
		return err
	}
	a := s.apps[c.App]
	switch c.Op {
	case OpDeploy:
		if c.IfSpec != "" {
			if a == nil || a.Desired != Running || a.Gen != c.Gen || SpecHash(a.Spec) != c.IfSpec {
				return fmt.Errorf("%w: conditional deploy of %q (generation %d)", ErrConflict, c.App, c.Gen)
			}
		}
		if a == nil {
			if len(s.apps) >= MaxRecords || s.live >= MaxApps {
				return fmt.Errorf("%w: deploy %q", ErrLimit, c.App)
			}
			a = &App{Name: c.App}
			s.apps[c.App] = a
			s.live++
		} else if a.Desired == Removed {
			if s.live >= MaxApps {
				return fmt.Errorf("%w: deploy %q", ErrLimit, c.App)
			}
			s.live++
		}
		a.Spec = slices.Clone(c.Spec)
		a.Prefer = slices.Clone(c.Prefer)
		a.Takeover = c.Takeover
		a.Desired = Running
		return nil
	}
	if a == nil || a.Desired == Removed {
		return fmt.Errorf("%w: %s %q", ErrUnknownApp, c.Op, c.App)
	}
	switch c.Op {
	case OpStart:
		a.Desired = Running
	case OpStop:
		a.Desired = Stopped
	case OpRemove:
		a.Desired = Removed
		a.Spec, a.Prefer, a.Takeover, a.Node = nil, nil, false, ""
		a.Handover, a.ReleasedBy = nil, ""
		s.live--
	case OpAssign:
		if c.Gen != a.Gen {
			return fmt.Errorf("%w: assign %q expects generation %d, is %d", ErrStaleGen, c.App, c.Gen, a.Gen)
		}
		if a.Desired != Running {
			return fmt.Errorf("%w: assign %q", ErrNotRunning, c.App)
		}
		a.Node = c.Node
		a.Gen++
		// Only the holder of HandoverGen uses it: not kept past it. Nor
		// is the releaser kept from takeover once the application has
		// been assigned on since (a failover, a takeover): the record
		// of the release is history then.
		a.Handover, a.ReleasedBy = nil, ""
	case OpRenew:
		if c.Node != a.Node || c.Gen != a.Gen {
			return fmt.Errorf("%w: renew %q by %q of generation %d (assigned to %q, generation %d)",
				ErrNotAssigned, c.App, c.Node, c.Gen, a.Node, a.Gen)
		}
		if a.Desired != Running {
			return fmt.Errorf("%w: renew %q", ErrNotRunning, c.App)
		}
		if a.RenewGen != c.Gen {
			a.RenewInc, a.MixedInc = c.Inc, false
		} else if a.RenewInc != c.Inc {
			a.MixedInc = true
		}
		a.RenewGen = c.Gen
		a.LastLease = c.Lease
		a.Renewals++
	case OpRelease:
		if c.Node != a.Node || c.Gen != a.Gen {
			return fmt.Errorf("%w: release %q by %q of generation %d (assigned to %q, generation %d)",
				ErrNotAssigned, c.App, c.Node, c.Gen, a.Node, a.Gen)
		}
		if a.Desired != Running {
			return fmt.Errorf("%w: release %q", ErrNotRunning, c.App)
		}
		// The holder vouches only for its own process: a renewal of this
		// generation by another (an earlier process of the node whose
		// renewal came late, or a later one) may have let that one run.
		clean := c.Clean && a.RenewGen == c.Gen && a.RenewInc == c.Inc && !a.MixedInc
		a.Node = c.To
		a.Gen++
		a.Handover, a.HandoverGen, a.ReleasedBy = slices.Clone(c.Handover), a.Gen, c.Node
		a.ReleaseRenewals = a.Renewals
		if clean {
			a.CleanGen = a.Gen
		}
	}
	return nil
}

type stateJSON struct {
	Index uint64 `json:"index"`
	Apps  []*App `json:"apps"`
}

// Marshal encodes the state for a raft snapshot: the same state gives the
// same bytes.
func (s *State) Marshal() ([]byte, error) {
	st := stateJSON{Index: s.index, Apps: make([]*App, 0, len(s.apps))}
	for _, n := range s.names() {
		st.Apps = append(st.Apps, s.apps[n])
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("%w: state of %d bytes (max %d)", ErrTooLarge, len(b), MaxStateSize)
	}
	return b, nil
}

// UnmarshalState decodes a snapshot's state, bounded by MaxStateSize, and
// checks every record as Apply would have made it.
func UnmarshalState(b []byte) (*State, error) {
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("%w: state of %d bytes (max %d)", ErrTooLarge, len(b), MaxStateSize)
	}
	s := NewState()
	if len(b) == 0 {
		return s, nil
	}
	var st stateJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: state: %w", ErrMalformed, err)
	}
	if len(st.Apps) > MaxRecords {
		return nil, fmt.Errorf("%w: %d records (max %d)", ErrTooLarge, len(st.Apps), MaxRecords)
	}
	s.index = st.Index
	for _, a := range st.Apps {
		if a == nil || !validName(a.Name) || s.apps[a.Name] != nil || a.Desired < Running || a.Desired > Removed ||
			len(a.Spec) > MaxSpecSize || len(a.Prefer) > MaxPrefer || len(a.Node) > MaxNameLen ||
			len(a.Handover) > MaxHandoverSize || len(a.ReleasedBy) > MaxNameLen {
			return nil, fmt.Errorf("%w: state: bad record", ErrMalformed)
		}
		s.apps[a.Name] = a
		if a.Desired != Removed {
			s.live++
		}
	}
	if s.live > MaxApps {
		return nil, fmt.Errorf("%w: %d applications (max %d)", ErrTooLarge, s.live, MaxApps)
	}
	return s, nil
}
