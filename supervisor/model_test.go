package supervisor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/actord/actord/actor"
)

// A small executable model of OTP's supervision rules, and a property test
// that runs random trees through random sequences of crashes, exits, failing
// and ignored (re)starts, and TerminateChild and RestartChild requests, and
// compares what the real supervisors do (the lifecycle lines the probes
// log, in order, and whether the root is still alive) with what the model
// predicts. The model covers the strategies, restart types, intensity,
// escalation (a supervisor that gives up ends with shutdown), the group
// restart of one_for_all and rest_for_one (which also brings back members
// that were not running, and starts over when a member fails to start),
// retries of failed restarts, ignore, significant children and
// auto_shutdown.

type mnode struct {
	id          string
	sup         bool
	strategy    Strategy
	maxR        int // as in Spec: -1 means none allowed
	maxT        time.Duration
	auto        AutoShutdown
	restart     RestartType
	significant bool
	children    []*mnode
}

type mstate uint8

const (
	mRunning mstate = iota
	mStopped
	mSuspended  // ended, to be restarted in place by the job under way
	mRestarting // its restart failed; the retry is under way
)

type minst struct {
	node   *mnode
	state  mstate
	kids   []*minst
	window []time.Time
	parent *minst
}

type model struct {
	now      time.Time
	log      []string
	root     *minst
	dead     bool           // the root ended
	failing  map[string]int // worker id -> next starts that fail
	ignoring map[string]int // worker id -> next starts that ignore
}

// startNode starts a fresh instance of n: a worker logs its start (or its
// failure, or ignore); a supervisor starts its children in order and, if
// one fails, stops those started, in reverse order, and fails.
func (m *model) startNode(n *mnode, parent *minst) (*minst, startResult) {
	if !n.sup {
		switch {
		case m.failing[n.id] > 0:
			m.failing[n.id]--
			m.log = append(m.log, "startfail "+n.id)
			return nil, failedStart
		case m.ignoring[n.id] > 0:
			m.ignoring[n.id]--
			m.log = append(m.log, "ignore "+n.id)
			return nil, ignored
		}
		m.log = append(m.log, "start "+n.id)
		return &minst{node: n, parent: parent}, started
	}
	in := &minst{node: n, parent: parent}
	for _, c := range n.children {
		k, res := m.startNode(c, in)
		switch res {
		case started:
			in.kids = append(in.kids, k)
		case ignored:
			if c.restart != Temporary {
				in.kids = append(in.kids, &minst{node: c, state: mStopped, parent: in})
			}
		default:
			for i := len(in.kids) - 1; i >= 0; i-- {
				m.stop(in.kids[i])
			}
			return nil, failedStart
		}
	}
	return in, started
}

// stop ends in for good (reason shutdown), a supervisor after its children
// in reverse order. Only a running instance has anything to stop.
func (m *model) stop(in *minst) {
	if in.state == mRunning {
		if !in.node.sup {
			m.log = append(m.log, "stop "+in.node.id+" shutdown")
		}
		for i := len(in.kids) - 1; i >= 0; i-- {
			m.stop(in.kids[i])
		}
	}
	in.state = mStopped
}

// takeDown ends in for a restart in place (a supervisor's children are
// stopped for good: its new instance starts new ones).
func (m *model) takeDown(in *minst) {
	if !in.node.sup {
		m.log = append(m.log, "stop "+in.node.id+" restart")
	}
	for i := len(in.kids) - 1; i >= 0; i-- {
		m.stop(in.kids[i])
	}
	in.state = mSuspended
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

// failed: child k of sup ended by itself (a crash, or an exit with reason;
// it has logged its own Terminate if it had one).
func (m *model) failed(sup, k *minst, reason error) {
	k.state = mSuspended
	rt := k.node.restart
	if !(rt == Permanent || (rt == Transient && abnormal(reason))) {
		k.state = mStopped
		if rt == Temporary {
			m.remove(sup, k)
		}
		m.autoShutdown(sup, k)
		return
	}
	if !m.allow(sup) {
		m.exit(sup, ErrTooManyRestarts)
		return
	}
	m.restart(sup, k)
}

// autoShutdown: significant child k ended by itself and is not restarted.
func (m *model) autoShutdown(sup, k *minst) {
	if !k.node.significant || sup.node.auto == Never {
		return
	}
	if sup.node.auto == AllSignificant {
		for _, x := range sup.kids {
			if x.node.significant && x.state != mStopped {
				return
			}
		}
	}
	m.exit(sup, actor.ErrShutdown)
}

// exit stops sup's children in reverse order and ends sup with shutdown
// (a give-up or an auto-shutdown): its parent sees a shutdown.
func (m *model) exit(sup *minst, _ error) {
	for i := len(sup.kids) - 1; i >= 0; i-- {
		m.stop(sup.kids[i])
	}
	sup.state = mStopped
	if sup.parent == nil {
		m.dead = true
		return
	}
	m.failed(sup.parent, sup, actor.ErrShutdown)
}

// restart restarts failed with the siblings its strategy says; a member
// that fails to start is retried (every attempt counts), starting its group
// over.
func (m *model) restart(sup, failed *minst) {
	group := []*minst{failed}
	switch sup.node.strategy {
	case OneForAll:
		group = append([]*minst(nil), sup.kids...)
	case RestForOne:
		for i, x := range sup.kids {
			if x == failed {
				group = append([]*minst(nil), sup.kids[i:]...)
			}
		}
	}
	gone := map[*minst]bool{}
	for i := len(group) - 1; i >= 0; i-- {
		g := group[i]
		if g == failed || g.state != mRunning {
			continue
		}
		if g.node.restart == Temporary {
			m.stop(g)
			m.remove(sup, g)
			gone[g] = true
			continue
		}
		m.takeDown(g)
	}
	for _, g := range group {
		if gone[g] {
			continue
		}
		neu, res := m.startNode(g.node, sup)
		switch res {
		case started:
			m.replace(sup, g, neu)
		case ignored:
			if g.node.restart == Temporary {
				m.remove(sup, g)
			} else {
				g.state, g.kids = mStopped, nil
			}
		default:
			g.state, g.kids = mRestarting, nil
			for _, x := range sup.kids {
				if x.state == mSuspended {
					x.state, x.kids = mStopped, nil
				}
			}
			if !m.allow(sup) {
				m.exit(sup, ErrTooManyRestarts)
				return
			}
			m.restart(sup, g)
			return
		}
	}
}

// workersOf lists the workers under in (running ones, or all), depth first.
func workersOf(in *minst, all bool, out []*minst) []*minst {
	if in.state != mRunning && !(all && !in.node.sup) {
		return out
	}
	if !in.node.sup {
		return append(out, in)
	}
	for _, k := range in.kids {
		out = workersOf(k, all, out)
	}
	return out
}

func genTree(t *rapid.T, depth int, n *int, restart RestartType, significant bool) *mnode {
	*n++
	node := &mnode{id: fmt.Sprintf("n%d", *n), restart: restart, significant: significant}
	if depth > 0 && rapid.IntRange(0, 9).Draw(t, "is_sup") < 3 || depth == 3 {
		node.sup = true
		node.strategy = rapid.SampledFrom([]Strategy{OneForOne, OneForAll, RestForOne}).Draw(t, "strategy")
		node.maxR = rapid.SampledFrom([]int{-1, 1, 2, 3}).Draw(t, "maxR")
		node.maxT = time.Duration(rapid.IntRange(1, 10).Draw(t, "maxT")) * time.Second
		node.auto = rapid.SampledFrom([]AutoShutdown{Never, Never, AnySignificant, AllSignificant}).Draw(t, "auto")
		k := rapid.IntRange(1, 4).Draw(t, "children")
		for range k {
			rt := rapid.SampledFrom([]RestartType{Permanent, Permanent, Transient, Temporary}).Draw(t, "restart")
			sig := node.auto != Never && rt != Permanent && rapid.Bool().Draw(t, "significant")
			if depth <= 1 {
				*n++
				node.children = append(node.children, &mnode{id: fmt.Sprintf("n%d", *n), restart: rt, significant: sig})
				continue
			}
			node.children = append(node.children, genTree(t, depth-1, n, rt, sig))
		}
	}
	return node
}

func specOf(n *mnode, rec *recorder) Spec {
	sp := Spec{Strategy: n.strategy, MaxR: n.maxR, MaxT: n.maxT, AutoShutdown: n.auto, Logger: quiet}
	for _, c := range n.children {
		var cs ChildSpec
		if c.sup {
			cs = Sub(c.id, specOf(c, rec))
		} else {
			cs = Worker(c.id, probeF(rec, c.id))
		}
		cs.Restart, cs.Significant = c.restart, c.significant
		sp.Children = append(sp.Children, cs)
	}
	return sp
}

// supRef finds the ref of supervisor instance in by asking its ancestors.
func supRef(t testing.TB, s *actor.System, root actor.Ref, in *minst) actor.Ref {
	if in.parent == nil {
		return root
	}
	pr := supRef(t, s, root, in.parent)
	for _, ci := range children(t, s, pr) {
		if ci.ID == in.node.id {
			return ci.Ref
		}
	}
	t.Fatalf("no supervisor %s", in.node.id)
	return actor.Ref{}
}

func TestSupervisionMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := 0
		tree := genTree(rt, 3, &n, Permanent, false)
		s, clk := manualSystem(t, 1, nil)
		defer shutdown(t, s)
		rec := newRecorder()
		m := &model{now: clk.Now(), failing: map[string]int{}, ignoring: map[string]int{}}
		root := spawn(t, s, New(specOf(tree, rec)))
		m.root, _ = m.startNode(tree, nil)
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
			ws := workersOf(m.root, false, nil)
			all := workersOf(m.root, true, nil)
			if len(ws) == 0 {
				break
			}
			kind := rapid.SampledFrom([]string{"crash", "crash", "normal", "shutdown", "boom", "advance",
				"failstart", "failstart", "ignore", "terminate", "restartchild"}).Draw(rt, "event")
			switch kind {
			case "advance":
				d := time.Duration(rapid.IntRange(1, 6).Draw(rt, "seconds")) * time.Second
				clk.Advance(d)
				m.now = m.now.Add(d)
				continue
			case "terminate", "restartchild":
				w := rapid.SampledFrom(all).Draw(rt, "child")
				if kind == "restartchild" && w.state != mStopped {
					continue
				}
				sref := supRef(t, s, root, w.parent)
				if kind == "terminate" {
					if _, err := ask(t, s, sref, TerminateChild{ID: w.node.id}); err != nil {
						rt.Fatalf("TerminateChild %s: %v", w.node.id, err)
					}
					m.stop(w)
					if w.node.restart == Temporary {
						m.remove(w.parent, w)
					}
				} else {
					v, err := ask(t, s, sref, RestartChild{ID: w.node.id})
					if err != nil || v.(actor.Ref).IsZero() {
						rt.Fatalf("RestartChild %s: %v %v", w.node.id, v, err)
					}
					neu, _ := m.startNode(w.node, w.parent)
					m.replace(w.parent, w, neu)
				}
				idle(s)
				check(fmt.Sprintf("step %d: %s %s", i, kind, w.node.id))
				continue
			}
			w := rapid.SampledFrom(ws).Draw(rt, "worker")
			ref := rec.ref(w.node.id)
			var reason error
			switch kind {
			case "failstart", "ignore":
				// w crashes while f (maybe w, maybe a sibling taken down
				// with it) will fail, or ignore, its next starts.
				f := rapid.SampledFrom(all).Draw(rt, "starter")
				k := 1
				if kind == "failstart" {
					k = rapid.IntRange(1, 3).Draw(rt, "failures")
					rec.failNext(f.node.id, k)
					m.failing[f.node.id] = k
				} else {
					rec.ignoreNext(f.node.id, k)
					m.ignoring[f.node.id] = k
				}
				send(t, s, ref, "crash")
				reason = &actor.CrashError{}
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
			for id := range m.failing {
				rec.failNext(id, 0)
				rec.ignoreNext(id, 0)
			}
			for id := range m.ignoring {
				rec.failNext(id, 0)
				rec.ignoreNext(id, 0)
			}
			clear(m.failing)
			clear(m.ignoring)
			if m.dead {
				break
			}
		}
		if a := alive(t, s, root); a == m.dead {
			rt.Fatalf("root alive=%v, model says ended=%v", a, m.dead)
		}
	})
}
