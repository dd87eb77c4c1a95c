package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrMemberFailed is the reason simulated membership gives remote nodes
// (Node.PeerDown) for a member it declares dead.
var ErrMemberFailed = errors.New("sim: member failed")

// MembershipConfig configures simulated membership (World.EnableMembership).
type MembershipConfig struct {
	// Detect is the range, drawn per observer and change, of the delay
	// before a node notices that another became unreachable or reachable
	// again (memberlist's probe and suspicion time). Default: 500 ms to 2 s.
	Detect [2]time.Duration
	// Every is how often the reachability is looked at. Default: 100 ms.
	Every time.Duration
}

// MemberEvent is a change of membership as one node sees it.
type MemberEvent struct {
	Observer, Member *Node
	Alive            bool
}

// membership is the simulated membership layer: in place of package
// cluster's memberlist agents, each live node sees as members the nodes it
// can reach both ways, directly or through other live nodes (gossip and
// indirect probes), and learns of a change after a delay drawn from the
// seed. On a change it tells the observer's remote node (PeerUp, PeerDown:
// the calls package cluster makes) and the subscribers.
type membership struct {
	w       *World
	cfg     MembershipConfig
	view    map[[2]*Node]bool      // (observer, member) -> seen alive
	pending map[[2]*Node]time.Time // a change noticed, applied then
	subs    []func(MemberEvent)
}

// EnableMembership starts simulated membership (see membership). Call it
// once, after adding the first nodes or before; nodes added later join.
func (w *World) EnableMembership(cfg MembershipConfig) {
	if w.members != nil {
		return
	}
	if cfg.Detect == ([2]time.Duration{}) {
		cfg.Detect = [2]time.Duration{500 * time.Millisecond, 2 * time.Second}
	}
	if cfg.Every <= 0 {
		cfg.Every = 100 * time.Millisecond
	}
	w.members = &membership{w: w, cfg: cfg, view: map[[2]*Node]bool{}, pending: map[[2]*Node]time.Time{}}
	w.members.tick()
}

// OnMembership calls f with every change of membership any node sees, in
// the order they happen. Membership must be enabled.
func (w *World) OnMembership(f func(MemberEvent)) {
	if w.members == nil {
		panic("sim: OnMembership without EnableMembership")
	}
	w.members.subs = append(w.members.subs, f)
}

// Members returns the nodes n sees as members (itself included while up),
// in the order they were added. Without membership it returns every live
// node.
func (n *Node) Members() []*Node {
	var out []*Node
	for _, m := range n.w.nodes {
		switch {
		case m == n:
			if n.up {
				out = append(out, m)
			}
		case n.w.members == nil:
			if m.up {
				out = append(out, m)
			}
		case n.w.members.view[[2]*Node{n, m}]:
			out = append(out, m)
		}
	}
	return out
}

// reachable returns, for each live node, the live nodes it reaches both
// ways directly or through others.
func (m *membership) reachable() map[*Node]map[*Node]bool {
	nw := m.w.nw
	live := slices.DeleteFunc(slices.Clone(m.w.nodes), func(n *Node) bool { return !n.up })
	link := func(a, b *Node) bool { return !nw.Blocked(a.host, b.host) && !nw.Blocked(b.host, a.host) }
	out := map[*Node]map[*Node]bool{}
	for _, o := range live {
		seen := map[*Node]bool{o: true}
		queue := []*Node{o}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, y := range live {
				if !seen[y] && link(x, y) {
					seen[y] = true
					queue = append(queue, y)
				}
			}
		}
		out[o] = seen
	}
	return out
}

// tick looks at the reachability, notices changes and applies those whose
// delay has passed, then arms the next tick.
func (m *membership) tick() {
	w := m.w
	now := w.nw.Now()
	reach := m.reachable()
	for _, o := range w.nodes {
		for _, t := range w.nodes {
			if o == t {
				continue
			}
			k := [2]*Node{o, t}
			if !o.up {
				delete(m.view, k) // a crashed node's view is gone with its memory
				delete(m.pending, k)
				continue
			}
			want := reach[o][t]
			if want == m.view[k] {
				delete(m.pending, k)
				continue
			}
			at, noticed := m.pending[k]
			if !noticed {
				lo, hi := m.cfg.Detect[0], m.cfg.Detect[1]
				d := lo
				if hi > lo {
					d += time.Duration(w.rng.Int64N(int64(hi - lo + 1)))
				}
				m.pending[k] = now.Add(d)
				continue
			}
			if now.Before(at) {
				continue
			}
			delete(m.pending, k)
			m.view[k] = want
			w.addLine(fmt.Sprintf("member %s sees %s %s", o.name, t.name, map[bool]string{true: "alive", false: "failed"}[want]))
			if want {
				o.rem.PeerUp(t.Addr())
			} else {
				o.rem.PeerDown(t.Addr(), fmt.Errorf("%w: %s (as %s sees it)", ErrMemberFailed, t.name, o.name))
			}
			for _, f := range m.subs {
				f(MemberEvent{Observer: o, Member: t, Alive: want})
			}
		}
	}
	w.nw.AfterFunc(m.cfg.Every, m.tick)
}
