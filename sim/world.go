package sim

import (
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/memnet"
	"github.com/actord/actord/remote"
)

// Config configures a World. The zero value (with a Seed) is a good start.
type Config struct {
	// Seed decides every choice of the run: latencies, the order of
	// simultaneous events, the nodes' keys and randomness, and World.Rand.
	Seed uint64
	// Start is the virtual time the run starts at. Default: 2030-01-01 UTC.
	Start time.Time
	// Latency is the range one-way network latencies are drawn from,
	// uniformly. Default: 1 ms to 5 ms.
	Latency [2]time.Duration
	// Remote, if set, adjusts each node's remote configuration after the
	// simulator's defaults (heartbeat every 100 ms, node down after 1 s of
	// silence, reconnect backoff 50–400 ms, dial timeout 1 s). Name, Listen
	// and PrivateKey are the simulator's.
	Remote func(name string, cfg *remote.Config)
	// Actor, if set, adjusts each node's actor.System configuration. Manual,
	// Clock, Seed and Hook are the simulator's.
	Actor func(name string, cfg *actor.Config)
	// Timeline keeps the last Timeline lines of the merged timeline (every
	// network event and every loop event, formatted) for Timeline(); 0
	// keeps none, which runs faster. A failing test reruns its seed with a
	// timeline to print it.
	Timeline int
	// Logger receives the nodes' runtime logs. Default: discarded.
	Logger *slog.Logger
	// BlockingTime is the range of virtual time a Context.Blocking job
	// takes, drawn uniformly per job. Default: 1 ms to 10 ms.
	BlockingTime [2]time.Duration
}

// World is a simulated cluster: nodes with their actor systems and remote
// nodes, on one in-memory network, all driven by the goroutine that calls
// Run, on virtual time. Its methods, and the methods of the nodes'
// systems, must be called from that goroutine only.
type World struct {
	cfg    Config
	nw     *memnet.Network
	rng    *rand.Rand
	nodes  []*Node
	events uint64
	digest uint64
	types  map[unsafe.Pointer]uint64 // digest words of message types, by type word
	addrs  map[memnet.Addr]uint64    // digest words of network addresses
	line   []string                  // ring of the last cfg.Timeline lines
	lineAt int
	// the last type looked up: a loop's events come in runs of one type
	lastType unsafe.Pointer
	lastID   uint64
	// the network's start in Unix nanoseconds: now's, without a time.Time
	startNano int64
	// members is the simulated membership, if enabled.
	members *membership
	// livelock detection: events run at one virtual instant
	sameAt      time.Duration // since the start; -1 before the first event
	sameEvents  uint64
	stuck       int    // advances in a row that ran nothing
	stuckEvents uint64 // events when the last advance ran something
	closed      bool
}

// New makes an empty world.
func New(cfg Config) *World {
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Latency == ([2]time.Duration{}) {
		cfg.Latency = [2]time.Duration{time.Millisecond, 5 * time.Millisecond}
	}
	if cfg.BlockingTime == ([2]time.Duration{}) {
		cfg.BlockingTime = [2]time.Duration{time.Millisecond, 10 * time.Millisecond}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &World{
		cfg: cfg, nw: memnet.New(cfg.Seed, cfg.Start),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x51a7e)),
		digest: 14695981039346656037,
		types:  map[unsafe.Pointer]uint64{},
		addrs:  map[memnet.Addr]uint64{},
		sameAt: -1,
	}
	w.startNano = w.nw.Now().UnixNano()
	w.nw.SetLatency(cfg.Latency[0], cfg.Latency[1])
	w.nw.Trace(w.netEvent)
	w.nw.TraceData(w.netData)
	return w
}

// Seed returns the world's seed.
func (w *World) Seed() uint64 { return w.cfg.Seed }

// Now returns the virtual time.
func (w *World) Now() time.Time { return w.nw.Now() }

// Elapsed returns the virtual time since the start.
func (w *World) Elapsed() time.Duration { return w.nw.Now().Sub(w.cfg.Start) }

// Rand is the world's seeded source, for a test's own random choices
// (which fault, which workload): drawing from it keeps the run
// reproducible from the seed.
func (w *World) Rand() *rand.Rand { return w.rng }

// Events returns how many events ran: loop events (every message, timer,
// continuation and lifecycle event of every actor) and network events.
func (w *World) Events() uint64 { return w.events }

// Digest is a hash of every event that ran, in order, with its virtual
// time: two runs with the same seed and the same test code have the same
// digest, bit for bit.
func (w *World) Digest() string { return fmt.Sprintf("%016x", w.digest) }

// Summary is the line a test prints: the seed, the number of events and
// the digest.
func (w *World) Summary() string {
	return fmt.Sprintf("sim seed=%d events=%d digest=%s", w.cfg.Seed, w.events, w.Digest())
}

// Timeline returns the last Config.Timeline lines of the merged timeline,
// oldest first.
func (w *World) Timeline() []string {
	if len(w.line) < w.cfg.Timeline {
		return append([]string(nil), w.line...)
	}
	return append(append([]string(nil), w.line[w.lineAt:]...), w.line[:w.lineAt]...)
}

// Logf adds a line of the test's own to the timeline (and the digest).
func (w *World) Logf(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	w.mix(uint64(len(s)))
	for i := 0; i < len(s); i++ {
		w.mix(uint64(s[i]))
	}
	w.addLine("test " + s)
}

func (w *World) addLine(s string) {
	if w.cfg.Timeline > 0 {
		w.addLineAt(w.nw.Now(), s)
	}
}

// addLineAt adds s to the timeline, stamped with the virtual time at
// (seconds since the start).
func (w *World) addLineAt(at time.Time, s string) {
	d := at.Sub(w.cfg.Start)
	s = fmt.Sprintf("%4d.%06d %s", d/time.Second, (d%time.Second)/time.Microsecond, s)
	if len(w.line) < w.cfg.Timeline {
		w.line = append(w.line, s)
		return
	}
	w.line[w.lineAt] = s
	w.lineAt = (w.lineAt + 1) % w.cfg.Timeline
}

// mix folds v into the digest: a word at a time, an xor, a multiplication
// by FNV's 64-bit prime and a rotation, each a bijection, so that any one
// word that differs changes the digest. It runs several times per event:
// hashing each word's 8 bytes apart (FNV-1a proper) cost 3-4% of the
// simulator's CPU.
func (w *World) mix(v uint64) {
	w.digest = bits.RotateLeft64((w.digest^v)*1099511628211, 29)
}

// netEvent is the network's trace: one line per delivery, open, close.
// It runs under the network's lock: it must not call the network.
func (w *World) netEvent(at time.Time, s string) {
	w.events++
	w.mix(uint64(at.UnixNano()))
	for i := 0; i < len(s); i++ {
		w.mix(uint64(s[i]))
	}
	if w.cfg.Timeline > 0 {
		w.addLineAt(at, "net "+s)
	}
}

// netData is the network's trace of a data delivery, without formatting.
// It runs under the network's lock: it must not call the network.
func (w *World) netData(at time.Time, c *memnet.Conn, n int) {
	w.events++
	w.mix(uint64(at.UnixNano()))
	if !c.Tagged { // the connection's word, kept on it: no map lookup per delivery
		c.Tag, c.Tagged = w.addrID(c.LocalAddr().(memnet.Addr))*31+w.addrID(c.RemoteAddr().(memnet.Addr)), true
	}
	w.mix(c.Tag)
	w.mix(uint64(n))
	if w.cfg.Timeline > 0 {
		w.addLineAt(at, fmt.Sprintf("net data %s->%s %d", c.LocalAddr(), c.RemoteAddr(), n))
	}
}

// addrID is a network address's word in the digest.
func (w *World) addrID(a memnet.Addr) uint64 {
	id, ok := w.addrs[a]
	if !ok {
		id = 14695981039346656037
		for i := 0; i < len(a); i++ {
			id = (id ^ uint64(a[i])) * 1099511628211
		}
		w.addrs[a] = id
	}
	return id
}

// mixRef folds a ref's ids (loop, slot, generation) into the digest: the
// order in which actors get their events is part of the run.
func (w *World) mixRef(r actor.Ref) {
	l, slot, gen := r.ID()
	w.mix(uint64(l)<<48 ^ uint64(slot)<<24 ^ uint64(gen))
}

// typeID names a message type in the digest, by its name (stable across
// runs, unlike a pointer). It is looked up by the interface's type word
// (a pointer: cheaper to hash than a reflect.Type, an interface), which
// stands for one type as long as the process runs.
func (w *World) typeID(v any) uint64 {
	tw := (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[0]
	if tw == w.lastType && tw != nil {
		return w.lastID
	}
	id, ok := w.types[tw]
	if !ok {
		name := "<nil>"
		if t := reflect.TypeOf(v); t != nil {
			name = t.String()
		}
		id = 14695981039346656037
		for i := 0; i < len(name); i++ {
			id = (id ^ uint64(name[i])) * 1099511628211
		}
		w.types[tw] = id
	}
	w.lastType, w.lastID = tw, id
	return id
}

// maxSameInstant bounds the events of one virtual instant: beyond it
// the run is a livelock (something that reschedules itself without
// letting time pass), reported rather than spun on for ever.
const maxSameInstant = 1 << 20

// loopEvent is a node's actor hook: one loop event.
func (w *World) loopEvent(n *Node, ev *actor.Event) {
	w.events++
	since := w.nw.Since()
	if since == w.sameAt {
		if w.sameEvents++; w.sameEvents > maxSameInstant {
			panic(fmt.Sprintf("sim: seed %d: livelock: over %d loop events at virtual time %v without time passing (last: %s on %s, %T)",
				w.cfg.Seed, maxSameInstant, w.Elapsed(), ev.Kind, n.name, ev.Msg))
		}
	} else {
		w.sameAt, w.sameEvents = since, 0
	}
	w.mix(uint64(w.startNano + int64(since))) // now's Unix nanoseconds
	w.mix(uint64(n.idx)<<32 | uint64(ev.Loop)<<8 | uint64(ev.Kind))
	w.mix(w.typeID(ev.Msg))
	w.mixRef(ev.To)
	w.mixRef(ev.From)
	if ev.Err != nil {
		w.mix(1)
	}
	if w.cfg.Timeline > 0 {
		s := fmt.Sprintf("%s loop%d %s %v", n.name, ev.Loop, ev.Kind, ev.To)
		if ev.From != (actor.Ref{}) {
			s += fmt.Sprintf(" from %v", ev.From)
		}
		if ev.Msg != nil {
			s += fmt.Sprintf(" %T", ev.Msg)
		}
		if ev.Err != nil {
			s += fmt.Sprintf(" err=%v", ev.Err)
		}
		w.addLine(s)
	}
}

// Step runs one batch of work: the ready loop events of every node (in a
// fixed order), else the next network event or loop timer, moving the
// virtual time to it. It reports whether there was anything to run.
func (w *World) Step() bool {
	if w.settle() {
		return true
	}
	at, net, ok := w.next()
	if !ok {
		return false
	}
	w.advance(at, net)
	return true
}

// advance runs the network event due at at (net: next found one), or
// moves the clock to at for the loop timers (or the slow node) due then.
func (w *World) advance(at time.Time, net bool) {
	if net {
		w.nw.Step()
		return
	}
	now := w.nw.Now()
	if !at.After(now) && w.events == w.stuckEvents {
		// A loop timer due at or before now that no loop ran.
		if w.stuck++; w.stuck > 1000 {
			var b strings.Builder
			for _, n := range w.nodes {
				t, ok := n.view.NextTimer()
				fmt.Fprintf(&b, " [%s up=%v timer=%v(%v) now=%v readyAt=%v]", n.name, n.up, t, ok, n.clk.Now(), n.readyAt)
			}
			panic(fmt.Sprintf("sim: seed %d: stuck at %v: a timer due at %v does not run:%s", w.cfg.Seed, now, at, b.String()))
		}
	} else {
		w.stuck, w.stuckEvents = 0, w.events
	}
	w.nw.AdvanceTo(at)
}

// settle runs every live node's ready loop work, and reports whether
// there was some.
func (w *World) settle() bool {
	ran := false
	for {
		busy := false
		since := w.nw.Since() // compared as a duration: cheaper than a time.Time
		var now time.Time
		for _, n := range w.nodes {
			if !n.up {
				continue
			}
			if !n.readyAt.IsZero() { // slow once
				if now.IsZero() {
					now = w.nw.Now()
				}
				if now.Before(n.readyAt) {
					continue
				}
			}
			if n.idle && n.idleSince == since && !n.view.Queued() && !n.timerDue(since) {
				// Nothing queued, no timer due (one armed from outside a
				// step, as a spawn's Start runs in manual mode, is seen
				// here): a step would find nothing (the common case: most
				// events are for one node, and every pass ends with one
				// over all of them).
				continue
			}
			budget := 4096
			if n.slow > 0 {
				budget = 1 // one event, then the node is busy for n.slow
			}
			if n.sys.RunUntilIdle(budget) > 0 {
				busy = true
				n.idle = false
				if n.slow > 0 {
					n.readyAt = w.nw.Now().Add(n.slow)
				}
			} else {
				n.idleSince, n.idle = since, true
			}
		}
		if !busy {
			return ran
		}
		ran = true
	}
}

// next returns the virtual time of the next thing due: a network event,
// a loop timer, or a slow node's end of busy time; net reports whether
// a network event is due then.
func (w *World) next() (at time.Time, net, ok bool) {
	// As durations since the start: a time.Time per node per step cost
	// more than the comparisons.
	best, ok := w.nw.NextSince()
	netAt, netOK := best, ok
	consider := func(d time.Duration) {
		if !ok || d < best {
			best, ok = d, true
		}
	}
	now := w.nw.Since()
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		if !n.readyAt.IsZero() {
			if r := n.readyAt.Sub(w.cfg.Start); r > now {
				consider(r) // busy: its timers wait until then
				continue
			}
		}
		if t, has := n.view.NextTimerNanos(); has {
			consider(n.clk.worldSinceNanos(t))
		}
	}
	if !ok {
		return time.Time{}, false, false
	}
	return w.cfg.Start.Add(best), netOK && netAt <= best, true
}

// Run runs the world for d of virtual time.
func (w *World) Run(d time.Duration) { w.RunUntil(d, func() bool { return false }) }

// RunUntil runs the world until cond holds (checked between steps) or
// limit of virtual time has passed, and reports whether cond held.
func (w *World) RunUntil(limit time.Duration, cond func() bool) bool {
	end := w.nw.Now().Add(limit)
	settled := false
	for !cond() {
		// A settle that ran something ended with a pass that found
		// nothing: cond is checked, and the next thing due comes next,
		// without another pass over every node.
		if !settled && w.settle() {
			settled = true
			continue
		}
		settled = false
		at, net, ok := w.next()
		if !ok || at.After(end) {
			w.nw.AdvanceTo(end)
			w.settle()
			return cond()
		}
		w.advance(at, net)
	}
	return true
}

// Close stops every node, as a shutdown does, and runs what that
// schedules. Call it once the test's checks are done.
func (w *World) Close() {
	if w.closed {
		return
	}
	w.closed = true
	for _, n := range w.nodes {
		if n.up {
			n.stop()
		}
	}
	w.Run(time.Minute)
	for _, n := range w.nodes {
		n.shutdown()
	}
}
