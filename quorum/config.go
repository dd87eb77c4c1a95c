package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/actord/actord/actor"
)

// Node is one actor that quorum calls ask: its ref, the id its Manager
// gave it, and statistics of the calls made to it. A Node is shared by
// every configuration of its Manager that holds its ref, so its statistics
// are those of all the calls, from any actor or goroutine.
type Node struct {
	id  uint32
	ref actor.Ref

	latency   atomic.Int64 // smoothed round trip in ns; 0 before the first reply
	replies   atomic.Uint64
	failures  atomic.Uint64
	lastOK    atomic.Int64 // unix ns of the last reply, 0 if none
	lastErrAt atomic.Int64 // unix ns of the last failure, 0 if none

	mu      sync.Mutex
	lastErr error
}

// ID returns the node's id: unique among the nodes its Manager holds, and
// stable for as long as a configuration holds the node.
func (n *Node) ID() uint32 { return n.id }

// Ref returns the actor the node names.
func (n *Node) Ref() actor.Ref { return n.ref }

func (n *Node) String() string { return fmt.Sprintf("node %d %v", n.id, n.ref) }

// NodeStats are the statistics of the asks made to a node by the calls of
// its Manager.
type NodeStats struct {
	// Latency is the smoothed round trip of the successful asks (an
	// exponentially weighted moving average, each new sample weighing
	// 1/8), 0 before the first.
	Latency time.Duration
	// Replies and Failures count the asks that got a reply and those that
	// failed (an error reply, a timeout, a dead actor, a node down).
	Replies, Failures uint64
	// LastErr is the error of the last failed ask, and LastErrAt when it
	// failed (on the clock of the loop that saw it); nil and zero if none
	// failed.
	LastErr   error
	LastErrAt time.Time
	// Failing is true when the node's last ask failed: no reply came
	// since LastErr.
	Failing bool
}

// Stats returns a snapshot of the node's statistics. Safe from any
// goroutine.
func (n *Node) Stats() NodeStats {
	n.mu.Lock()
	s := NodeStats{LastErr: n.lastErr}
	n.mu.Unlock()
	if at := n.lastErrAt.Load(); at != 0 {
		s.LastErrAt = time.Unix(0, at)
	}
	s.Latency = time.Duration(n.latency.Load())
	s.Replies, s.Failures = n.replies.Load(), n.failures.Load()
	s.Failing = n.Failing()
	return s
}

// Failing reports whether the node's last ask failed (no reply came since
// its last failure). It takes no lock.
func (n *Node) Failing() bool { return n.lastErrAt.Load() > n.lastOK.Load() }

// observe records the outcome of one ask that took d.
func (n *Node) observe(now time.Time, d time.Duration, err error) {
	if err != nil {
		n.failures.Add(1)
		n.mu.Lock()
		n.lastErr = err
		n.mu.Unlock()
		n.lastErrAt.Store(max(now.UnixNano(), 1))
		return
	}
	n.replies.Add(1)
	n.lastOK.Store(now.UnixNano())
	for {
		old := n.latency.Load()
		nw := int64(d)
		if old != 0 {
			nw = old + (int64(d)-old)/8
		}
		if n.latency.CompareAndSwap(old, max(nw, 1)) {
			return
		}
	}
}

// ErrNotMember means a configuration was asked to replace a ref it does
// not hold.
var ErrNotMember = errors.New("quorum: not a member of the configuration")

// ErrClosed means the Manager was closed: its callers are gone.
var ErrClosed = errors.New("quorum: manager closed")

// ManagerConfig sets up a Manager. Zero fields take the defaults.
type ManagerConfig struct {
	// Timeout bounds a call whose Spec has no Timeout and whose context
	// has no deadline. Default 5 s.
	Timeout time.Duration
	// OnFailure, if set, is called with the node and the error of every
	// failed ask of the Manager's calls, including those that fail after
	// their call has settled (which the call's result cannot report). It
	// runs on the loop of the actor that made the call, after the node's
	// statistics count the failure: it must not block. A panic of it is
	// recovered (the first one logged), so that it cannot take the call or
	// its caller down.
	OnFailure func(n *Node, err error)
}

// DefaultTimeout is the default of ManagerConfig.Timeout.
const DefaultTimeout = 5 * time.Second

// Manager holds the nodes that quorum calls ask, with their statistics,
// and the actors that run the calls of plain goroutines (see Caller). It
// is safe for concurrent use. Every Configuration belongs to one Manager.
type Manager struct {
	sys       *actor.System
	timeout   time.Duration
	onFailure func(n *Node, err error) // ManagerConfig.OnFailure
	hookPanic atomic.Bool              // OnFailure panicked once (logged then)

	mu       sync.Mutex
	nodes    map[actor.Ref]weak.Pointer[Node]
	nextID   uint32
	free     []uint32 // ids of collected nodes, reused
	svc      *Caller  // the default caller
	others   []*Caller
	closed   bool
	closedCh chan struct{} // closed by Close

	defer_ registry // thrifty asks not sent yet, per caller and node
}

// NewManager returns a manager over sys. It spawns the default Caller;
// Close stops it and the other Callers.
func NewManager(sys *actor.System, cfg ManagerConfig) (*Manager, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	m := &Manager{sys: sys, timeout: cfg.Timeout, onFailure: cfg.OnFailure, nodes: map[actor.Ref]weak.Pointer[Node]{}, closedCh: make(chan struct{})}
	m.defer_.m = map[queueKey][]*deferred{}
	svc, err := m.spawnCaller(actor.Name("quorum/caller"))
	if err != nil {
		return nil, err
	}
	m.svc = svc
	return m, nil
}

// System returns the actor system the manager runs on.
func (m *Manager) System() *actor.System { return m.sys }

// node returns the manager's node for r, making it if needed.
func (m *Manager) node(r actor.Ref) *Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	if wp, ok := m.nodes[r]; ok {
		if n := wp.Value(); n != nil {
			return n
		}
	}
	var id uint32
	if k := len(m.free); k > 0 {
		id, m.free = m.free[k-1], m.free[:k-1]
	} else {
		m.nextID++
		id = m.nextID
	}
	n := &Node{id: id, ref: r}
	wp := weak.Make(n)
	m.nodes[r] = wp
	// Forget the node once no configuration holds it, so that a manager
	// that sees refs come and go (actors restarted elsewhere) stays small.
	runtime.AddCleanup(n, func(r actor.Ref) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if cur, ok := m.nodes[r]; ok && cur == wp {
			delete(m.nodes, r)
			m.free = append(m.free, id)
		}
	}, r)
	return n
}

// Nodes returns the number of nodes the manager holds (those that some
// live configuration still names, and possibly some that none names any
// more, until the garbage collector has found them).
func (m *Manager) Nodes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.nodes)
}

// ConfigID identifies a set of nodes of a Manager: two configurations of
// the same Manager holding the same nodes have the same ID, whatever their
// order or quorum system. Different sets have different IDs but for hash
// collisions (64-bit FNV-1a of the sorted node ids); Configuration.Equal
// compares exactly.
type ConfigID uint64

// Configuration is an immutable set of nodes of one Manager, in an order,
// with the quorum System its calls use. It is a small value, safe to copy
// and to share between actors and goroutines; Add, Remove, Replace and
// WithSystem return new configurations and leave the receiver as it was.
// The zero Configuration holds no node; calls on it fail.
type Configuration struct {
	m     *Manager
	nodes []*Node
	sys   System
	id    ConfigID
}

// NewConfiguration returns the configuration of refs (duplicates are
// dropped; the order is kept, which matters to Grid) with quorum system
// sys (Majority if nil). It fails if sys does not fit (ErrSystem).
func (m *Manager) NewConfiguration(sys System, refs ...actor.Ref) (Configuration, error) {
	nodes := make([]*Node, 0, len(refs))
	for _, r := range refs {
		if r.IsZero() {
			return Configuration{}, fmt.Errorf("quorum: configuration: %w", actor.ErrInvalidRef)
		}
		n := m.node(r)
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return m.build(sys, nodes)
}

func (m *Manager) build(sys System, nodes []*Node) (Configuration, error) {
	if sys == nil {
		sys = Majority()
	}
	c := Configuration{m: m, nodes: nodes, sys: sys, id: configID(nodes)}
	if err := sys.Check(c); err != nil {
		return Configuration{}, err
	}
	return c, nil
}

func configID(nodes []*Node) ConfigID {
	ids := make([]uint32, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	slices.Sort(ids)
	h := fnv.New64a()
	var b [4]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint32(b[:], id)
		h.Write(b[:])
	}
	return ConfigID(h.Sum64())
}

// ID returns the configuration's id (see ConfigID).
func (c Configuration) ID() ConfigID { return c.id }

// Size returns the number of nodes.
func (c Configuration) Size() int { return len(c.nodes) }

// Node returns the node at position i (0 <= i < Size()).
func (c Configuration) Node(i int) *Node { return c.nodes[i] }

// Nodes returns the nodes, in order.
func (c Configuration) Nodes() []*Node { return slices.Clone(c.nodes) }

// Refs returns the nodes' refs, in order.
func (c Configuration) Refs() []actor.Ref {
	out := make([]actor.Ref, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.ref
	}
	return out
}

// Index returns the position of r, or -1.
func (c Configuration) Index(r actor.Ref) int {
	return slices.IndexFunc(c.nodes, func(n *Node) bool { return n.ref == r })
}

// System returns the configuration's quorum system.
func (c Configuration) System() System { return c.sys }

// Manager returns the manager the configuration belongs to (nil for the
// zero Configuration).
func (c Configuration) Manager() *Manager { return c.m }

// IsQuorum reports whether the nodes at the positions in set form a quorum
// of kind k in the configuration's system.
func (c Configuration) IsQuorum(k Kind, set NodeSet) bool {
	return c.sys != nil && c.sys.IsQuorum(c, k, set)
}

// Equal reports whether c and o belong to the same Manager and hold the
// same nodes (in any order, with any system).
func (c Configuration) Equal(o Configuration) bool {
	if c.m != o.m || len(c.nodes) != len(o.nodes) || c.id != o.id {
		return false
	}
	for _, n := range c.nodes {
		if !slices.Contains(o.nodes, n) {
			return false
		}
	}
	return true
}

// Add returns the configuration with refs added at the end (those already
// in it are ignored).
func (c Configuration) Add(refs ...actor.Ref) (Configuration, error) {
	if c.m == nil {
		return Configuration{}, errors.New("quorum: Add on the zero Configuration: use Manager.NewConfiguration")
	}
	nodes := slices.Clone(c.nodes)
	for _, r := range refs {
		if r.IsZero() {
			return Configuration{}, fmt.Errorf("quorum: configuration: %w", actor.ErrInvalidRef)
		}
		n := c.m.node(r)
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return c.m.build(c.sys, nodes)
}

// Remove returns the configuration without refs (refs not in it are
// ignored). It fails if the system does not fit what is left.
func (c Configuration) Remove(refs ...actor.Ref) (Configuration, error) {
	nodes := slices.DeleteFunc(slices.Clone(c.nodes), func(n *Node) bool { return slices.Contains(refs, n.ref) })
	if c.m == nil {
		return Configuration{}, errors.New("quorum: Remove on the zero Configuration")
	}
	return c.m.build(c.sys, nodes)
}

// Replace returns the configuration with old replaced by nw at its
// position. It fails with ErrNotMember if old is not in it, and if nw
// already is.
func (c Configuration) Replace(old, nw actor.Ref) (Configuration, error) {
	i := c.Index(old)
	if i < 0 {
		return Configuration{}, fmt.Errorf("%w: %v", ErrNotMember, old)
	}
	if nw.IsZero() {
		return Configuration{}, fmt.Errorf("quorum: configuration: %w", actor.ErrInvalidRef)
	}
	if old == nw {
		return c, nil
	}
	if c.Index(nw) >= 0 {
		return Configuration{}, fmt.Errorf("quorum: replace %v: %v is already a member", old, nw)
	}
	nodes := slices.Clone(c.nodes)
	nodes[i] = c.m.node(nw)
	return c.m.build(c.sys, nodes)
}

// WithSystem returns the configuration with quorum system sys (Majority if
// nil). It fails if sys does not fit (ErrSystem).
func (c Configuration) WithSystem(sys System) (Configuration, error) {
	if c.m == nil {
		return Configuration{}, errors.New("quorum: WithSystem on the zero Configuration")
	}
	return c.m.build(sys, c.nodes)
}

func (c Configuration) String() string {
	parts := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		parts[i] = fmt.Sprint(n.id)
	}
	sys := "none"
	if c.sys != nil {
		sys = c.sys.String()
	}
	return fmt.Sprintf("config %016x [%s] %s", uint64(c.id), strings.Join(parts, " "), sys)
}

// failed runs OnFailure for a failed ask of node, recovering its panic.
func (m *Manager) failed(n *Node, err error) {
	defer func() {
		if r := recover(); r != nil && m.hookPanic.CompareAndSwap(false, true) {
			slog.Error("quorum: ManagerConfig.OnFailure panicked (logged once)", "panic", fmt.Sprint(r))
		}
	}()
	m.onFailure(n, err)
}
