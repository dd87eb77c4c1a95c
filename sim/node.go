package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/memnet"
	"github.com/actord/actord/internal/seam"
	"github.com/actord/actord/internal/simhook"
	"github.com/actord/actord/remote"
)

// ErrNodeDown is returned by a Node's methods while the node is crashed
// or killed and not restarted.
var ErrNodeDown = errors.New("sim: node is down")

// Node is one simulated machine: an actor.System in manual mode and a
// remote.Node on the world's network, at address "10.0.0.i:7000". Crash
// and Restart replace both with new ones (a new incarnation); the name,
// the key and the address stay.
type Node struct {
	w    *World
	idx  int
	name string
	host string
	key  []byte
	init func(*Node) error

	up   bool
	gen  uint64 // incarnation, incremented by every crash
	sys  *actor.System
	rem  *remote.Node
	stop func()
	view simView
	// idleSince is the world time (since the start) at which the node
	// last ran out of work, timers checked (idle says it did): until the
	// time moves or an event is queued for it, it has nothing to do (see
	// World.settle).
	idleSince time.Duration
	idle      bool
	clk       *nodeClock
	old       []*actor.System // crashed incarnations, shut down at Close
	drift     float64
	slow      time.Duration // virtual time each loop event keeps the node busy
	readyAt   time.Time     // a slow node runs no loop work before this
}

// simView is what the simulator needs of a manual actor.System (seam.Sim).
type simView interface {
	NextTimer() (time.Time, bool)
	NextTimerNanos() (int64, bool)
	Queued() bool
	SetBlocking(run func(job func()) error)
}

// newRemote is remote's in-memory node (simhook.Remote).
type newRemote = func(*actor.System, remote.Config, *memnet.Network, simhook.Clock) (*remote.Node, func() error, func())

// AddNode adds a node named name and starts it. init, if not nil, runs at
// every start and restart, before the node listens: register kinds and
// message types there, spawn the node's actors, export names.
func (w *World) AddNode(name string, init func(*Node) error) (*Node, error) {
	i := len(w.nodes)
	n := &Node{w: w, idx: i, name: name, host: fmt.Sprintf("10.0.%d.%d", (i+1)/250, (i+1)%250+1), init: init}
	keys := rand.New(rand.NewPCG(w.cfg.Seed, uint64(i)+0xca11))
	n.key = make([]byte, 32)
	for j := range n.key {
		n.key[j] = byte(keys.Uint32())
	}
	w.nodes = append(w.nodes, n)
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

// MustAddNode is AddNode for tests: it panics on an error.
func (w *World) MustAddNode(name string, init func(*Node) error) *Node {
	n, err := w.AddNode(name, init)
	if err != nil {
		panic(err)
	}
	return n
}

// Nodes returns the world's nodes, in the order they were added.
func (w *World) Nodes() []*Node { return append([]*Node(nil), w.nodes...) }

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Addr returns the node's network address.
func (n *Node) Addr() string { return n.host + ":7000" }

// Host returns the node's host (its IP).
func (n *Node) Host() string { return n.host }

// Up reports whether the node runs (not crashed or killed).
func (n *Node) Up() bool { return n.up }

// Incarnation counts the node's restarts.
func (n *Node) Incarnation() uint64 { return n.gen }

// System returns the node's current actor system (manual mode: call its
// methods from the world's goroutine only). Nil while the node is down.
func (n *Node) System() *actor.System {
	if !n.up {
		return nil
	}
	return n.sys
}

// Remote returns the node's current remote node. Nil while it is down.
func (n *Node) Remote() *remote.Node {
	if !n.up {
		return nil
	}
	return n.rem
}

// start makes the node's current incarnation and starts it.
func (n *Node) start() error {
	w := n.w
	n.clk = &nodeClock{w: w, n: n, gen: n.gen, base: w.nw.Now(), baseSince: w.nw.Since(), nodeBase: w.nw.Now(), rate: 1 + n.drift}
	// Small queues and pool: a simulated node's loops are stepped, not
	// raced, and its Blocking jobs are events (the pool stays idle).
	acfg := actor.Config{Loops: 1, Watchdog: -1, Logger: w.cfg.Logger, OnCrash: func(*actor.Crash) {},
		QueueCapacity: 1024, Workers: 1, WorkerQueue: 1}
	if w.cfg.Actor != nil {
		w.cfg.Actor(n.name, &acfg)
	}
	acfg.Manual, acfg.Clock, acfg.Seed = true, n.clk, w.cfg.Seed^(uint64(n.idx)<<32)^n.gen
	user := acfg.Hook
	acfg.Hook = func(ev *actor.Event) {
		w.loopEvent(n, ev)
		if user != nil {
			user(ev)
		}
	}
	n.sys = actor.NewSystem(acfg)
	n.view = seam.Sim(n.sys).(simView)
	n.idle = false
	n.view.SetBlocking(n.blocking)
	rcfg := remote.Config{
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 400 * time.Millisecond, DialTimeout: time.Second,
		Logger: w.cfg.Logger,
	}
	if w.cfg.Remote != nil {
		w.cfg.Remote(n.name, &rcfg)
	}
	rcfg.Name, rcfg.Listen, rcfg.PrivateKey = n.name, n.Addr(), n.key
	mk := simhook.Remote.(newRemote)
	var start func() error
	n.rem, start, n.stop = mk(n.sys, rcfg, w.nw, n.clk)
	n.up = true
	if n.init != nil {
		if err := n.init(n); err != nil {
			return fmt.Errorf("sim: node %s: init: %w", n.name, err)
		}
	}
	if err := start(); err != nil {
		return fmt.Errorf("sim: node %s: %w", n.name, err)
	}
	w.addLine(fmt.Sprintf("%s start (incarnation %d)", n.name, n.gen))
	return nil
}

// blocking runs a Context.Blocking job as an event of virtual time, after
// a duration drawn from Config.BlockingTime; it is lost if the node
// crashes first.
func (n *Node) blocking(job func()) error {
	lo, hi := n.w.cfg.BlockingTime[0], n.w.cfg.BlockingTime[1]
	d := lo
	if hi > lo {
		d += time.Duration(n.w.rng.Int64N(int64(hi - lo + 1)))
	}
	n.clk.AfterFunc(d, job)
	return nil
}

// down ends the current incarnation: its timers never fire, its loops
// never run again. Its system is shut down only at Close (a crashed
// machine runs no code: no Terminate, no Down from it).
func (n *Node) down(how string) {
	n.w.addLine(fmt.Sprintf("%s %s", n.name, how))
	n.up = false
	n.gen++
	n.old = append(n.old, n.sys)
}

// shutdown stops every system the node had (at Close).
func (n *Node) shutdown() {
	systems := n.old
	if n.up {
		systems = append(systems, n.sys)
	}
	for _, s := range systems {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
}

// Crash takes the node down as a machine that loses power: its actors and
// everything in its memory are gone, no code of it runs again, and the
// other nodes learn only by their heartbeat timeout (or from the reset
// their next segment meets after a Restart).
func (w *World) Crash(n *Node) {
	if !n.up {
		return
	}
	n.down("crash")
	w.nw.Crash(n.host)
}

// Kill ends the node's process as kill -9 does: as Crash, but its
// connections are reset at once, so the other nodes learn without
// waiting.
func (w *World) Kill(n *Node) {
	if !n.up {
		return
	}
	n.down("kill")
	w.nw.Kill(n.host)
}

// Restart starts a crashed or killed node again, with its name, key and
// address, a new incarnation and empty memory; its init runs again.
func (w *World) Restart(n *Node) error {
	if n.up {
		return fmt.Errorf("sim: node %s is up", n.name)
	}
	w.nw.Restart(n.host)
	return n.start()
}

// SetDrift makes the node's clock run at 1+drift times the world's from
// now on (0.01: 1% fast; -0.01: 1% slow), for its timers, deadlines and
// heartbeats. It holds across restarts.
func (n *Node) SetDrift(drift float64) {
	if drift <= -1 {
		panic("sim: drift must be above -1")
	}
	n.drift = drift
	if n.up {
		now := n.clk.Now()
		n.clk.base, n.clk.baseSince, n.clk.nodeBase, n.clk.rate = n.w.nw.Now(), n.w.nw.Since(), now, 1+drift
		n.clk.forget()
		n.idle = false
	}
}

// Jump moves the node's clock forward by d at once, as a virtual machine
// that was paused finds it: its loops' due timers fire at its next step
// (its remote node's timers, armed on the network, keep their times).
func (n *Node) Jump(d time.Duration) {
	if d < 0 {
		panic("sim: a monotonic clock does not go back")
	}
	if n.up {
		n.clk.nodeBase = n.clk.nodeBase.Add(d)
		n.clk.forget()
		n.idle = false
	}
}

// SetSlow makes the node slow: each loop event keeps it busy for d of
// virtual time, during which its loops run nothing (its network still
// receives). 0 makes it normal again.
func (n *Node) SetSlow(d time.Duration) { n.slow = max(d, 0) }

// Ref returns r, a ref of an actor on owner, as a ref that the node viewer
// can use (the ref itself when viewer is owner): it names the same actor
// through viewer's connection to owner.
func (w *World) Ref(r actor.Ref, owner, viewer *Node) (actor.Ref, error) {
	if owner == viewer {
		return r, nil
	}
	if !owner.up || !viewer.up {
		return actor.Ref{}, ErrNodeDown
	}
	node, addr, id, ok := owner.rem.ExportRef(r)
	if !ok {
		return actor.Ref{}, fmt.Errorf("sim: %v is not an actor of node %s", r, owner.name)
	}
	return viewer.rem.ImportRef(node, addr, id)
}

// Spawn spawns an actor on the node, as System.Spawn does.
func (n *Node) Spawn(f actor.Factory, opts ...actor.SpawnOption) (actor.Ref, error) {
	if !n.up {
		return actor.Ref{}, ErrNodeDown
	}
	return n.sys.Spawn(context.Background(), f, opts...)
}

// Send sends msg to the actor to from a plain goroutine of the node.
func (n *Node) Send(to actor.Ref, msg any) error {
	if !n.up {
		return ErrNodeDown
	}
	return n.sys.Send(to, msg)
}

// Ask asks the actor to (on any node, through a ref of this node's) from
// the node and runs the world until the answer comes or timeout of
// virtual time passes (then it fails with actor.ErrTimeout).
func (n *Node) Ask(to actor.Ref, msg any, timeout time.Duration) (any, error) {
	if !n.up {
		return nil, ErrNodeDown
	}
	var (
		done bool
		v    any
		err  error
	)
	asker, serr := n.sys.Spawn(context.Background(), func() actor.Actor {
		return askOnce(func(c *actor.Context) {
			c.AskTimeout(to, msg, timeout).Then(func(c *actor.Context, rv any, rerr error) {
				done, v, err = true, rv, rerr
				_ = c.Stop(c.Self(), nil)
			})
		})
	})
	if serr != nil {
		return nil, serr
	}
	if serr := n.sys.Send(asker, askGo{}); serr != nil {
		return nil, serr
	}
	// The ask settles after timeout of the node's time, however its
	// clock drifts or it is slowed: wait for that, not for a world bound.
	limit := time.Duration(float64(timeout)/min(1, 1+n.drift)) + time.Minute
	if !n.w.RunUntil(limit, func() bool { return done || !n.up }) || !done {
		return nil, fmt.Errorf("sim: ask from %s: no answer: %w", n.name, ErrNodeDown)
	}
	return v, err
}

type askGo struct{}

// askOnce is an actor that runs f on its first message.
type askOnce func(c *actor.Context)

func (f askOnce) Receive(c *actor.Context, msg any) (any, error) {
	if _, ok := msg.(askGo); ok {
		f(c)
	}
	return nil, nil
}

// timerDue reports whether a loop timer of the node is due at world time
// since (since the start).
func (n *Node) timerDue(since time.Duration) bool {
	t, ok := n.view.NextTimerNanos()
	return ok && n.clk.worldSinceNanos(t) <= since
}

// nodeClock is a node's clock: the world's virtual time, at the node's
// rate, with its jumps; its timers are the network's, dropped once the
// node's incarnation ends.
type nodeClock struct {
	w         *World
	n         *Node
	gen       uint64
	base      time.Time     // world time at which the node read nodeBase
	baseSince time.Duration // base, since the world's start
	nodeBase  time.Time
	rate      float64

	// The last reading and the last worldTime, kept: a node's loops read
	// the clock at every idle step and the world asks for each node's
	// next timer at every step, far more often than either changes.
	nowSince   time.Duration // the world time of nowVal, since the start
	nowVal     time.Time
	nowNs      int64 // nowVal as Unix nanoseconds
	wtIn       int64 // a node reading as Unix nanoseconds (a timer's deadline)
	wtInOK     bool
	wtOut      time.Time     // worldTime of wtIn
	wtOutSince time.Duration // wtOut since the world's start
	cached     bool
}

// forget drops the kept readings when the clock's rate or base changes.
func (c *nodeClock) forget() { c.cached = false }

// at is the node's reading at world time t.
func (c *nodeClock) at(t time.Time) time.Time {
	d := t.Sub(c.base)
	if c.rate != 1 {
		d = time.Duration(float64(d) * c.rate)
	}
	return c.nodeBase.Add(d)
}

// Now is at(the world's time), from the world's time as a duration: the
// loops read it at every step, and building a time.Time per reading cost
// more than the rest of the reading.
func (c *nodeClock) Now() time.Time {
	s := c.w.nw.Since()
	if c.cached && s == c.nowSince {
		return c.nowVal
	}
	d := s - c.baseSince // what at's t.Sub(c.base) is, exactly
	if c.rate != 1 {
		d = time.Duration(float64(d) * c.rate)
	}
	v := c.nodeBase.Add(d)
	if !c.cached {
		c.wtInOK = false
	}
	c.nowSince, c.nowVal, c.nowNs, c.cached = s, v, v.UnixNano(), true
	return v
}

// NowNanos is Now as Unix nanoseconds (loop.NanoClock): what the loops
// read at their steps.
func (c *nodeClock) NowNanos() int64 {
	if c.cached && c.w.nw.Since() == c.nowSince {
		return c.nowNs
	}
	c.Now()
	return c.nowNs
}

// worldTime is the earliest world time at which the node reads t or later
// (to the nanosecond, give or take float rounding, corrected upward).
func (c *nodeClock) worldTime(t time.Time) time.Time {
	ns := t.UnixNano()
	if c.cached && c.wtInOK && ns == c.wtIn {
		return c.wtOut
	}
	wt := c.computeWorldTime(t)
	if c.cached {
		c.wtIn, c.wtInOK, c.wtOut, c.wtOutSince = ns, true, wt, wt.Sub(c.w.cfg.Start)
	}
	return wt
}

// worldSinceNanos is worldTime, since the world's start, of a node
// reading given as Unix nanoseconds (a loop timer's deadline): the world
// asks at every step, and the answer is kept, so a repeated question
// builds no time.Time.
func (c *nodeClock) worldSinceNanos(ns int64) time.Duration {
	if c.cached && c.wtInOK && ns == c.wtIn {
		return c.wtOutSince
	}
	return c.worldTime(time.Unix(0, ns)).Sub(c.w.cfg.Start)
}

func (c *nodeClock) computeWorldTime(t time.Time) time.Time {
	d := t.Sub(c.nodeBase)
	if d > 1<<60 { // far future (or saturated): no rounding to correct
		return c.base.Add(1 << 60)
	}
	if c.rate != 1 {
		d = time.Duration(math.Ceil(float64(d) / c.rate))
	}
	wt := c.base.Add(d)
	for step := time.Duration(1); c.at(wt).Before(t) && step < 1<<40; step *= 2 {
		wt = wt.Add(step)
	}
	return wt
}

// AfterFunc runs f after d of the node's time, unless the node's
// incarnation ended first.
func (c *nodeClock) AfterFunc(d time.Duration, f func()) simhook.Timer {
	if c.rate != 1 {
		d = time.Duration(math.Ceil(float64(d) / c.rate))
	}
	return c.w.nw.AfterFunc(d, func() {
		if c.n.gen == c.gen && c.n.up {
			f()
		}
	})
}
