package quorum

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/actord/actord/actor"
)

// Kind says which quorums of a quorum system a call needs. Systems where
// every quorum serves both (threshold, majority, weighted, byzantine) ignore
// it; a grid has smaller read quorums than write quorums.
type Kind uint8

const (
	// Read asks for a read quorum: one that intersects every write quorum.
	Read Kind = iota
	// Write asks for a write quorum: one that intersects every read
	// quorum and every other write quorum.
	Write
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// NodeSet is a set of positions in a configuration (0 to Size()-1). The
// zero NodeSet is empty. Sets of positions below 64 do not allocate.
type NodeSet struct {
	lo uint64   // positions 0-63
	hi []uint64 // positions 64 and up, 64 a word
}

// fullNodeSet returns the set of every position below n.
func fullNodeSet(n int) NodeSet {
	var s NodeSet
	for i := range n {
		s.Add(i)
	}
	return s
}

// NodeSetOf returns the set of the given positions (negative ones are
// ignored), for a System's tests and for callers that build sets by hand.
func NodeSetOf(positions ...int) NodeSet {
	var s NodeSet
	for _, p := range positions {
		if p >= 0 {
			s.Add(p)
		}
	}
	return s
}

// word returns the word holding position i, growing the set if needed.
func (s *NodeSet) word(i int) *uint64 {
	if i < 64 {
		return &s.lo
	}
	k := i/64 - 1
	for len(s.hi) <= k {
		s.hi = append(s.hi, 0)
	}
	return &s.hi[k]
}

// Add puts position i (>= 0) in the set.
func (s *NodeSet) Add(i int) { *s.word(i) |= 1 << (i % 64) }

// remove takes position i out of the set.
func (s *NodeSet) remove(i int) {
	if s.Has(i) {
		*s.word(i) &^= 1 << (i % 64)
	}
}

// Has reports whether position i is in the set.
func (s NodeSet) Has(i int) bool {
	switch {
	case i < 0:
		return false
	case i < 64:
		return s.lo&(1<<i) != 0
	case i/64-1 < len(s.hi):
		return s.hi[i/64-1]&(1<<(i%64)) != 0
	}
	return false
}

// Len returns the number of positions in the set.
func (s NodeSet) Len() int {
	n := bits.OnesCount64(s.lo)
	for _, w := range s.hi {
		n += bits.OnesCount64(w)
	}
	return n
}

// Positions returns the positions in the set, in increasing order.
func (s NodeSet) Positions() []int {
	var out []int
	for i, w := range append([]uint64{s.lo}, s.hi...) {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, i*64+b)
			w &^= 1 << b
		}
	}
	return out
}

// System is a quorum system: it decides which sets of a configuration's
// nodes are quorums. A configuration carries one (see
// Configuration.WithSystem), and the quorum functions that ask for "a
// quorum" (Quorum, Collect, Highest, Matching) consult it, so a protocol
// switches from, say, majorities to a grid by changing its configuration,
// not its code.
//
// A System must be monotone (a superset of a quorum is a quorum) and safe
// for concurrent use; the calls rely on the first to fail as soon as the
// nodes left cannot form a quorum.
type System interface {
	// Check reports why the system cannot serve cfg (too few nodes, a
	// grid that does not fit), or nil.
	Check(cfg Configuration) error
	// IsQuorum reports whether the nodes of cfg at the positions in set
	// form a quorum of kind k.
	IsQuorum(cfg Configuration, k Kind, set NodeSet) bool
	// String describes the system, for logs and errors.
	String() string
}

// ErrSystem means a quorum system does not fit a configuration (see
// System.Check).
var ErrSystem = errors.New("quorum: the quorum system does not fit the configuration")

// Majority is the system whose quorums, of either kind, are the sets of
// more than half of the configuration's nodes. It tolerates the failure of
// any minority.
func Majority() System { return majority{} }

type majority struct{}

func (majority) Check(cfg Configuration) error {
	if cfg.Size() == 0 {
		return fmt.Errorf("%w: majority of no node", ErrSystem)
	}
	return nil
}

func (majority) IsQuorum(cfg Configuration, _ Kind, set NodeSet) bool {
	return set.Len() >= cfg.Size()/2+1
}

func (majority) String() string { return "majority" }

// Threshold is the system whose read quorums are the sets of at least r
// nodes and write quorums the sets of at least w (Dynamo's R and W).
// Reads see the latest write only if r+w exceeds the configuration's size;
// Threshold does not insist, so that weaker settings can be measured.
func Threshold(r, w int) System { return threshold{r: r, w: w} }

type threshold struct{ r, w int }

func (t threshold) Check(cfg Configuration) error {
	if n := cfg.Size(); t.r < 1 || t.w < 1 || t.r > n || t.w > n {
		return fmt.Errorf("%w: threshold r=%d w=%d needs 1 <= r, w <= %d nodes", ErrSystem, t.r, t.w, n)
	}
	return nil
}

func (t threshold) IsQuorum(_ Configuration, k Kind, set NodeSet) bool {
	if k == Write {
		return set.Len() >= t.w
	}
	return set.Len() >= t.r
}

func (t threshold) String() string { return fmt.Sprintf("threshold(r=%d,w=%d)", t.r, t.w) }

// Grid lays the configuration's nodes out in rows of equal length, in the
// configuration's order (row-major), and has for read quorums the sets
// holding a node of every column, and for write quorums the sets holding a
// whole column and a node of every column. Every read quorum meets every
// write quorum, and two write quorums meet. With n = r×c nodes a read
// needs c of them and a write r+c-1, against n/2+1 for a majority: with
// 9 nodes in 3 rows, 3 and 5.
func Grid(rows int) System { return grid{rows: rows} }

type grid struct{ rows int }

func (g grid) Check(cfg Configuration) error {
	if n := cfg.Size(); g.rows < 1 || n == 0 || n%g.rows != 0 {
		return fmt.Errorf("%w: a grid of %d rows needs a multiple of %d nodes, not %d", ErrSystem, g.rows, g.rows, n)
	}
	return nil
}

func (g grid) IsQuorum(cfg Configuration, k Kind, set NodeSet) bool {
	cols := cfg.Size() / g.rows
	fullCol := false
	for c := range cols {
		hit, full := false, true
		for r := range g.rows {
			if set.Has(r*cols + c) {
				hit = true
			} else {
				full = false
			}
		}
		if !hit {
			return false
		}
		fullCol = fullCol || full
	}
	return k == Read || fullCol
}

func (g grid) String() string { return fmt.Sprintf("grid(rows=%d)", g.rows) }

// Weighted gives each node a number of votes (weights, by ref; a node not
// in the map has 1) and has for quorums, of either kind, the sets holding
// more than half of all the votes of the configuration. Weights must not
// be negative, and the configuration must have at least one vote.
func Weighted(weights map[actor.Ref]int) System {
	return weighted{w: weights}
}

type weighted struct{ w map[actor.Ref]int }

func (s weighted) weight(r actor.Ref) int {
	if w, ok := s.w[r]; ok {
		return w
	}
	return 1
}

func (s weighted) Check(cfg Configuration) error {
	total := 0
	for _, n := range cfg.nodes {
		w := s.weight(n.ref)
		if w < 0 {
			return fmt.Errorf("%w: node %v has a negative weight %d", ErrSystem, n.ref, w)
		}
		total += w
	}
	if total == 0 {
		return fmt.Errorf("%w: weighted system with no vote", ErrSystem)
	}
	return nil
}

func (s weighted) IsQuorum(cfg Configuration, _ Kind, set NodeSet) bool {
	total, in := 0, 0
	for i, n := range cfg.nodes {
		w := s.weight(n.ref)
		total += w
		if set.Has(i) {
			in += w
		}
	}
	return 2*in > total
}

func (s weighted) String() string {
	var b strings.Builder
	b.WriteString("weighted(")
	refs := make([]string, 0, len(s.w))
	for r, w := range s.w {
		refs = append(refs, fmt.Sprintf("%v=%d", r, w))
	}
	slices.Sort(refs)
	b.WriteString(strings.Join(refs, ","))
	b.WriteString(")")
	return b.String()
}

// Byzantine is the system of a configuration of n >= 3f+1 nodes of which up
// to f may lie (answer anything) or fail: its quorums, of either kind, are
// the sets of at least ceil((n+f+1)/2) nodes (2f+1 when n = 3f+1), so that
// two quorums share at least f+1 nodes, one of them honest. A reply is to
// be believed once f+1 nodes agree on it (F()+1 matching replies; see
// Matching): one of them at least is honest.
func Byzantine(f int) ByzantineSystem { return ByzantineSystem{f: f} }

// ByzantineSystem is the System returned by Byzantine.
type ByzantineSystem struct{ f int }

// F returns the number of lying or failed nodes the system tolerates.
func (b ByzantineSystem) F() int { return b.f }

// Size returns the quorum size for a configuration of n nodes.
func (b ByzantineSystem) Size(n int) int { return (n + b.f + 2) / 2 }

// Check reports an error unless the configuration has at least 3f+1 nodes.
func (b ByzantineSystem) Check(cfg Configuration) error {
	if b.f < 0 || cfg.Size() < 3*b.f+1 || cfg.Size() == 0 {
		return fmt.Errorf("%w: tolerating %d byzantine nodes needs at least %d, not %d", ErrSystem, b.f, 3*b.f+1, cfg.Size())
	}
	return nil
}

// IsQuorum reports whether set holds at least Size(n) nodes.
func (b ByzantineSystem) IsQuorum(cfg Configuration, _ Kind, set NodeSet) bool {
	return set.Len() >= b.Size(cfg.Size())
}

func (b ByzantineSystem) String() string { return fmt.Sprintf("byzantine(f=%d)", b.f) }
