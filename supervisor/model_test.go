package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/actord/actord/actor"
)

// A small executable model of the Erlang supervision rules, and a
// property test that runs random trees through random crash sequences and
// compares what the real supervisors do (the lifecycle lines the probes log,
// in order, and whether the root gives up) with what the model predicts.

type mnode struct {
	id       string
	sup      bool
	strategy Strategy
	maxR     int // as in Spec: -1 means none allowed
	maxT     time.Duration
	restart  RestartType
	children []*mnode
}

type minst struct {
	node    *mnode
	running bool
	kids    []*minst
	window  []time.Time
	parent  *minst
}

type model struct {
	now  time.Time
	log  []string
	root *minst
	dead bool // the root gave up
}

func (m *model) start(n *mnode, parent *minst) *minst {
	in := &minst{node: n, running: true, parent: parent}
	if !n.sup {
		m.log = append(m.log, "start "+n.id)
		return in
	}
	for _, c := range n.children {
		in.kids = append(in.kids, m.start(c, in))
	}
	return in
}

// stop ends in for good (reason shutdown), a supervisor after its children
// in reverse order.
func (m *model) stop(in *minst) {
	if !in.running {
		return
	}
	in.running = false
	if !in.node.sup {
		m.log = append(m.log, "stop "+in.node.id+" shutdown")
		return
	}
	for i := len(in.kids) - 1; i >= 0; i-- {
		m.stop(in.kids[i])
	}
}

// takeDown ends in for a restart in place.
func (m *model) takeDown(in *minst) {
	if !in.node.sup {
		in.running = false
		m.log = append(m.log, "stop "+in.node.id+" restart")
		return
	}
	m.stop(in)
}

func (m *model) allow(sup *minst) bool {
	maxR := sup.node.maxR
	if maxR < 0 {
		maxR = 0
	}
	sup.window = append(sup.window, m.now)
	for len(sup.window) > 0 && m.now.Sub(sup.window[0]) > sup.node.maxT {
		sup.window = sup.window[1:]
	}
	return len(sup.window) <= maxR
}

func (m *model) replace(sup *minst, old, neu *minst) {
	for i, k := range sup.kids {
		if k == old {
			sup.kids[i] = neu
		}
	}
}

func (m *model) remove(sup *minst, k *minst) {
	for i, x := range sup.kids {
		if x == k {
			sup.kids = append(sup.kids[:i], sup.kids[i+1:]...)
			return
		}
	}
}

// failed: child k of sup ended (crash or exit with reason; it is no
// longer running and has logged its own Terminate if it had one).
func (m *model) failed(sup, k *minst, reason error) {
	k.running = false
	rt := k.node.restart
	if !(rt == Permanent || (rt == Transient && abnormal(reason))) {
		if rt == Temporary {
			m.remove(sup, k)
		}
		return
	}
	if !m.allow(sup) {
		m.stop(sup) // all children, reverse order
		if sup.parent == nil {
			m.dead = true
			return
		}
		m.failed(sup.parent, sup, ErrTooManyRestarts)
		return
	}
	group := []*minst{k}
	switch sup.node.strategy {
	case OneForAll:
		group = append([]*minst(nil), sup.kids...)
	case RestForOne:
		for i, x := range sup.kids {
			if x == k {
				group = append([]*minst(nil), sup.kids[i:]...)
			}
		}
	}
	again := map[*minst]bool{k: true}
	for i := len(group) - 1; i >= 0; i-- {
		g := group[i]
		if g == k || !g.running {
			continue
		}
		if g.node.restart == Temporary {
			m.stop(g)
			m.remove(sup, g)
			continue
		}
		m.takeDown(g)
		again[g] = true
	}
	for _, g := range group {
		if again[g] {
			m.replace(sup, g, m.start(g.node, sup))
		}
	}
}

// workersOf lists the running workers under in, depth first.
func workersOf(in *minst, out []*minst) []*minst {
	if !in.running {
		return out
	}
	if !in.node.sup {
		return append(out, in)
	}
	for _, k := range in.kids {
		out = workersOf(k, out)
	}
	return out
}

func genTree(t *rapid.T, depth int, n *int, restart RestartType) *mnode {
	*n++
	node := &mnode{id: fmt.Sprintf("n%d", *n), restart: restart}
	if depth > 0 && rapid.IntRange(0, 9).Draw(t, "is_sup") < 3 || depth == 3 {
		node.sup = true
		node.strategy = rapid.SampledFrom([]Strategy{OneForOne, OneForAll, RestForOne}).Draw(t, "strategy")
		node.maxR = rapid.SampledFrom([]int{-1, 1, 2, 3}).Draw(t, "maxR")
		node.maxT = time.Duration(rapid.IntRange(1, 10).Draw(t, "maxT")) * time.Second
		k := rapid.IntRange(1, 4).Draw(t, "children")
		for range k {
			rt := rapid.SampledFrom([]RestartType{Permanent, Permanent, Transient, Temporary}).Draw(t, "restart")
			if depth <= 1 {
				*n++
				node.children = append(node.children, &mnode{id: fmt.Sprintf("n%d", *n), restart: rt})
				continue
			}
			node.children = append(node.children, genTree(t, depth-1, n, rt))
		}
	}
	return node
}

func specOf(n *mnode, rec *recorder) Spec {
	sp := Spec{Strategy: n.strategy, MaxR: n.maxR, MaxT: n.maxT, Logger: quiet}
	for _, c := range n.children {
		var cs ChildSpec
		if c.sup {
			cs = Sub(c.id, specOf(c, rec))
		} else {
			cs = Worker(c.id, probeF(rec, c.id))
		}
		cs.Restart = c.restart
		sp.Children = append(sp.Children, cs)
	}
	return sp
}

func TestSupervisionMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := 0
		tree := genTree(rt, 3, &n, Permanent)
		s, clk := manualSystem(t, 1, nil)
		defer shutdown(t, s)
		rec := newRecorder()
		m := &model{now: clk.Now()}
		root := spawn(t, s, New(specOf(tree, rec)))
		m.root = m.start(tree, nil)
		check := func(what string) {
			got := rec.take()
			if strings.Join(got, "|") != strings.Join(m.log, "|") {
				rt.Fatalf("%s:\n got  %q\n want %q", what, got, m.log)
			}
			m.log = nil
		}
		check("initial start")
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for i := range steps {
			ws := workersOf(m.root, nil)
			if len(ws) == 0 {
				break
			}
			kind := rapid.SampledFrom([]string{"crash", "crash", "normal", "shutdown", "boom", "advance"}).Draw(rt, "event")
			if kind == "advance" {
				d := time.Duration(rapid.IntRange(1, 6).Draw(rt, "seconds")) * time.Second
				clk.Advance(d)
				m.now = m.now.Add(d)
				continue
			}
			w := rapid.SampledFrom(ws).Draw(rt, "worker")
			ref := rec.ref(w.node.id)
			var reason error
			switch kind {
			case "crash":
				send(t, s, ref, "crash")
				reason = &actor.CrashError{}
			case "normal":
				send(t, s, ref, exitMsg{nil})
				m.log = append(m.log, "stop "+w.node.id+" normal")
			case "shutdown":
				reason = actor.ErrShutdown
				send(t, s, ref, exitMsg{reason})
				m.log = append(m.log, "stop "+w.node.id+" shutdown")
			case "boom":
				reason = errBoom
				send(t, s, ref, exitMsg{reason})
				m.log = append(m.log, "stop "+w.node.id+" boom")
			}
			idle(s)
			m.failed(w.parent, w, reason)
			check(fmt.Sprintf("step %d: %s %s", i, kind, w.node.id))
			if m.dead {
				break
			}
		}
		if a := alive(t, s, root); a == m.dead {
			rt.Fatalf("root alive=%v, model says gave up=%v", a, m.dead)
		}
	})
}

var _ = errors.Is
