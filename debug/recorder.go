package debug

import (
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/supervisor"
)

// Config sets up a Recorder. Zero fields take the defaults.
type Config struct {
	// Loops is the number of loops of the System the recorder is installed
	// in. Default runtime.GOMAXPROCS(0), as actor.Config.Loops; Install sets
	// it from the actor.Config. Events of other loops are ignored.
	Loops int
	// MemoryBudget bounds the recorder's memory, all loops together:
	// three quarters go to the event rings, one eighth to the state
	// histories of traced actors, the rest covers the crash log. Default 64 MiB.
	MemoryBudget int
	// RingSize is the number of events each loop's ring keeps (rounded up
	// to a power of two). Default: what three quarters of MemoryBudget hold,
	// between 256 and 65536 per loop. One event takes RecordBytes bytes.
	RingSize int
	// NoPayloads records message types but not their rendering (saves the
	// rendering cost, ~10–20 ns for a small struct with the compiled
	// encoders, more for large payloads).
	NoPayloads bool
	// Crashes is how many crashes the crash log keeps. Default 100.
	Crashes int
	// CrashContext is how many messages received by a crashing actor just
	// before its crash are kept with the crash. Default 20.
	CrashContext int
	// TraceState turns state tracing on for every loop from the start (it
	// can be switched per loop and per actor at run time, see SetTraceLoop
	// and SetTraceActor).
	TraceState bool
	// StateHistory is how many recent states are kept per traced actor.
	// Default 32.
	StateHistory int
	// StateMaxBytes bounds one state's JSON; a larger state is recorded as
	// {"$too_large": size} without a diff. Default 16 KiB.
	StateMaxBytes int
	// Next, if set, is called with every event before the recorder sees it
	// (Install sets it to the actor.Config's previous Hook).
	Next actor.Hook
}

// RecordBytes is the size of one event in a ring.
const RecordBytes = int(unsafe.Sizeof(record{}))

func (c Config) withDefaults() Config {
	if c.Loops <= 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 64 << 20
	}
	if c.RingSize <= 0 {
		per := c.MemoryBudget * 3 / 4 / c.Loops / RecordBytes
		c.RingSize = min(max(per, 256), 65536)
		if c.RingSize != 1<<(bits.Len(uint(c.RingSize))-1) {
			c.RingSize = 1 << (bits.Len(uint(c.RingSize)) - 1) // round down: stay within the budget
		}
	}
	c.RingSize = 1 << bits.Len(uint(c.RingSize-1))
	if c.Crashes <= 0 {
		c.Crashes = 100
	}
	if c.CrashContext <= 0 {
		c.CrashContext = 20
	}
	if c.StateHistory <= 0 {
		c.StateHistory = 32
	}
	if c.StateMaxBytes <= 0 {
		c.StateMaxBytes = 16 << 10
	}
	return c
}

// Event kinds the recorder adds to the runtime's (actor.EventKind): things
// an operator did through the debugger.
const (
	// KindPatch is recorded when an operator replaced an actor's state.
	KindPatch actor.EventKind = 100 + iota
	// KindTrace is recorded when an operator switched state tracing.
	KindTrace
)

func kindName(k actor.EventKind) string {
	switch k {
	case KindPatch:
		return "patch"
	case KindTrace:
		return "trace"
	}
	return k.String()
}

// Outcomes of an event.
const (
	outOK uint8 = iota
	outError
	outCrash
)

var outcomeNames = [...]string{"ok", "error", "crash"}

// record flags.
const (
	fTruncated uint8 = 1 << iota // payload cut at PayloadBytes
	fFromRemote
	fToRemote
	fDiff     // the event changed a traced actor's state: see its history
	fOperator // recorded by an operator action, not the runtime
	fPayload  // a payload was rendered
)

// errBytes is the room for an error's text in a record: what the header
// and PayloadBytes leave of a whole number of cache lines (see record).
const errBytes = 62

// refID identifies an actor without holding a pointer, so rings are not
// scanned by the garbage collector.
type refID struct {
	loop      int32 // -1: none
	slot, gen uint32
}

func idOf(r actor.Ref) refID {
	if r.IsZero() {
		return refID{loop: -1}
	}
	l, s, g := r.ID()
	return refID{int32(l), s, g}
}

func (id refID) String() string {
	if id.loop < 0 {
		return ""
	}
	return fmt.Sprintf("<%d.%d.%d>", id.loop, id.slot, id.gen)
}

// record is one event in a ring: fixed size, no pointers. Its 66-byte
// header is followed by the payload and the error text, in 384 bytes (six
// cache lines: rings are allocated line-aligned, so a record never shares a
// line with its neighbours, and an event with a small payload and no error
// touches two lines).
type record struct {
	n       uint64 // position in the loop's recording, from 1
	seq     uint64 // the runtime's Event.Seq (for operator events: the last one seen)
	start   int64  // unix nanoseconds
	dur     int64
	from    refID
	to      refID
	typ     uint32 // the message's type in the recorder's typeRegistry, 0 for none
	kind    actor.EventKind
	outcome uint8
	flags   uint8
	elen    uint8
	plen    uint16
	data    [PayloadBytes + errBytes]byte // payload, then error text
}

func (r *record) payload() []byte { return r.data[:r.plen] }
func (r *record) errText() []byte { return r.data[r.plen : int(r.plen)+int(r.elen)] }

// typeRegistry names the message types seen by any loop, by a small number
// (from 1) that records hold. Loops add to it only the first time they see
// a type, so its lock is off the hot path.
type typeRegistry struct {
	mu    sync.RWMutex
	ids   map[reflect.Type]uint32
	names []string // names[id-1]
}

func (t *typeRegistry) add(rt reflect.Type) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.ids[rt]
	if !ok {
		t.names = append(t.names, rt.String())
		id = uint32(len(t.names))
		t.ids[rt] = id
	}
	return id
}

func (t *typeRegistry) name(id uint32) string {
	if id == 0 {
		return ""
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.names[id-1]
}

// typeWord returns the dynamic type word of v: runtime type descriptors are
// never freed, so the word identifies the type for the life of the process.
func typeWord(v any) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&v))[0]
}

// loopRec is one loop's recording. Only the loop's goroutine writes it
// (holding mu, so that readers on other goroutines get consistent copies);
// readers hold mu briefly, copying at most a chunk of records at a time.
type loopRec struct {
	id int
	mu sync.Mutex

	// guarded by mu (written by the loop only: the loop reads them without it)
	recs     []record
	mask     uint64
	n        uint64 // records written
	lastSeq  uint64
	handled  uint64 // handler events (send, ask, call, timer, continuation)
	errs     uint64
	crashes  uint64
	restarts uint64
	drops    uint64
	lat      Histogram
	rateSec  int64 // unix second of rateCur
	rateCur  uint64
	ratePrev uint64
	hist     map[refID]*history // traced actors
	histB    int                // bytes of state kept on this loop

	// loop-owned, no lock
	rend     renderer
	traceAll atomic.Bool
	stateBud int
	_        [64]byte // keep loops' hot fields apart
}

// Recorder records what the loops of a System process: a ring of events
// per loop, state histories of traced actors, a crash log, and latency
// histograms. Install it as actor.Config.Hook (see Install), then Attach it
// to the System so that the debugger can list actors and read their state.
type Recorder struct {
	cfg     Config
	loops   []*loopRec
	types   typeRegistry
	crashes crashLog
	reports reportLog
	sys     atomic.Pointer[actor.System]
	started time.Time
}

// New makes a Recorder. Its Hook method is the actor.Hook to install.
func New(cfg Config) *Recorder {
	cfg = cfg.withDefaults()
	r := &Recorder{cfg: cfg, started: time.Now()}
	r.types.ids = make(map[reflect.Type]uint32)
	r.crashes.max = cfg.Crashes
	r.reports.max = cfg.Crashes
	stateBudget := cfg.MemoryBudget / 8 / cfg.Loops
	r.loops = make([]*loopRec, cfg.Loops)
	for i := range r.loops {
		lr := &loopRec{id: i, recs: make([]record, cfg.RingSize), mask: uint64(cfg.RingSize - 1),
			hist: make(map[refID]*history), rend: newRenderer(), stateBud: stateBudget}
		lr.traceAll.Store(cfg.TraceState)
		r.loops[i] = lr
	}
	return r
}

// Install makes a Recorder for the System that acfg will configure and
// installs it as acfg.Hook (chaining a hook already there, which is called
// first). Call Attach with the System once it is made.
func Install(acfg *actor.Config, cfg Config) *Recorder {
	if cfg.Loops <= 0 {
		cfg.Loops = acfg.Loops
	}
	if cfg.Next == nil {
		cfg.Next = acfg.Hook
	}
	r := New(cfg)
	acfg.Hook = r.Hook
	return r
}

// Attach tells the recorder which System it records, so that it can list
// actors, read and patch their state and read queue depths. It fails if the
// System has more loops than the recorder was made for.
func (r *Recorder) Attach(sys *actor.System) error {
	if sys.Loops() > len(r.loops) {
		return fmt.Errorf("debug: recorder made for %d loops, system has %d", len(r.loops), sys.Loops())
	}
	r.sys.Store(sys)
	return nil
}

// System returns the attached System, or nil.
func (r *Recorder) System() *actor.System { return r.sys.Load() }

// Config returns the recorder's configuration, with defaults applied.
func (r *Recorder) Config() Config { return r.cfg }

func isHandler(k actor.EventKind) bool {
	return k >= actor.EventSend && k <= actor.EventContinuation
}

// Hook is the actor.Hook that records every event. It runs on the loop's
// goroutine; its cost with payloads is a bounded rendering of the message by
// an encoder compiled for its type (no allocation for common types) and a
// brief uncontended lock.
func (r *Recorder) Hook(ev *actor.Event) {
	if r.cfg.Next != nil {
		r.cfg.Next(ev)
	}
	if uint(ev.Loop) >= uint(len(r.loops)) {
		return
	}
	lr := r.loops[ev.Loop]
	var payload []byte
	var flags uint8
	var typ uint32
	if ev.Msg != nil {
		mt := lr.rend.msgType(typeWord(ev.Msg), ev.Msg)
		if mt.id == 0 {
			mt.id = r.types.add(mt.t)
		}
		typ = mt.id
		if !r.cfg.NoPayloads {
			var trunc bool
			payload, trunc = lr.renderSafe(ev.Msg, mt)
			flags |= fPayload
			if trunc {
				flags |= fTruncated
			}
		}
	}
	outcome := outOK
	var errText string
	if ev.Err != nil {
		outcome = outError
		if _, ok := ev.Err.(*actor.CrashError); ok || ev.Kind == actor.EventCrash {
			outcome = outCrash
		}
		errText, _ = safeError(ev.Err)
	}
	if ev.From.IsRemote() {
		flags |= fFromRemote
	}
	if ev.To.IsRemote() {
		flags |= fToRemote
	}
	var start int64
	if ev.Start.IsZero() {
		start = time.Now().UnixNano()
	} else {
		start = ev.Start.UnixNano()
	}
	to := idOf(ev.To)
	handler := isHandler(ev.Kind)

	// State tracing: the actor's state after the event, diffed against the
	// last one kept (read without the lock: only this goroutine writes it).
	var st *stateChange
	if handler && ev.Actor != nil && (len(lr.hist) > 0 || lr.traceAll.Load()) {
		if h := lr.hist[to]; (h != nil && h.traced(lr.traceAll.Load())) || (h == nil && lr.traceAll.Load()) {
			st = lr.traceState(r, to, ev.Actor, h)
			if st != nil {
				flags |= fDiff
			}
		}
	}

	lr.mu.Lock()
	lr.n++
	n := lr.n
	rec := &lr.recs[(n-1)&lr.mask]
	rec.n, rec.seq, rec.start, rec.dur = n, ev.Seq, start, int64(ev.Duration)
	rec.from, rec.to, rec.typ = idOf(ev.From), to, typ
	rec.kind, rec.outcome, rec.flags = ev.Kind, outcome, flags
	rec.plen = uint16(copy(rec.data[:PayloadBytes], payload))
	rec.elen = 0
	if errText != "" {
		rec.elen = uint8(copy(rec.data[rec.plen:], errText))
	}
	lr.lastSeq = ev.Seq
	if handler {
		lr.handled++
		lr.lat.Record(int64(ev.Duration))
		if sec := start / 1e9; sec != lr.rateSec {
			if sec == lr.rateSec+1 {
				lr.ratePrev = lr.rateCur
			} else {
				lr.ratePrev = 0
			}
			lr.rateSec, lr.rateCur = sec, 0
		}
		lr.rateCur++
		if outcome != outOK {
			lr.errs++
		}
	} else {
		switch ev.Kind {
		case actor.EventCrash:
			lr.crashes++
		case actor.EventRestart:
			lr.restarts++
			if h := lr.hist[to]; h != nil {
				h.restarted = true // the next state is a new instance's: no diff against the old one
			}
		case actor.EventDropped:
			lr.drops++
		case actor.EventStop:
			if h := lr.hist[to]; h != nil {
				lr.histB -= h.bytes
				delete(lr.hist, to)
			}
		}
	}
	if st != nil {
		lr.keepState(r, to, n, rec.start, st)
	}
	var ctx []record
	if ev.Kind == actor.EventCrash && ev.Crash != nil {
		ctx = lr.lastReceived(to, r.cfg.CrashContext)
	}
	lr.mu.Unlock()
	// The ring is megabytes, written once per wrap: the next record's
	// header and first payload line are not in the cache. Ask for them now,
	// so that they arrive while the loop does something else.
	prefetch2(unsafe.Pointer(&lr.recs[n&lr.mask]))

	switch ev.Kind {
	case actor.EventCrash:
		if ev.Crash != nil {
			r.crashes.add(r, ev.Crash, n, ctx, payload, flags&fTruncated != 0, typ)
		}
	case actor.EventReport:
		if rep, ok := ev.Msg.(*supervisor.Report); ok {
			r.reports.add(rep)
			if rep.Kind == supervisor.ChildCrashed {
				r.crashes.supervised(rep)
			}
		}
	}
}

// renderSafe renders a payload; a panic in user code it calls (an Error
// method, say) costs the payload, not the loop.
func (lr *loopRec) renderSafe(v any, mt *msgType) (b []byte, trunc bool) {
	defer func() {
		if recover() != nil {
			b, trunc = []byte(`"<render panicked>"`), false
		}
	}()
	return lr.rend.render(v, mt)
}

// lastReceived returns, oldest first, up to n handler events of actor id
// still in the ring (mu held).
func (lr *loopRec) lastReceived(id refID, n int) []record {
	var out []record
	lo := uint64(0)
	if lr.n > uint64(len(lr.recs)) {
		lo = lr.n - uint64(len(lr.recs))
	}
	for i := lr.n; i > lo && len(out) < n; i-- {
		rec := &lr.recs[(i-1)&lr.mask]
		if rec.to == id && isHandler(rec.kind) {
			out = append(out, *rec)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// copyRecords copies the newest records with positions after after that
// are still in the ring and pass keep (nil keeps all), at most max of them
// (0: no limit), oldest first. It walks back from the newest, taking the
// lock for at most a chunk of records at a time so that the loop is never
// held up for long.
func (lr *loopRec) copyRecords(after uint64, max int, keep func(*record) bool) []record {
	const chunk = 512
	lr.mu.Lock()
	pos := lr.n // next position to look at, walking down
	lr.mu.Unlock()
	var out []record
	for pos > after && (max <= 0 || len(out) < max) {
		lr.mu.Lock()
		lo := uint64(0) // positions <= lo are overwritten
		if lr.n > uint64(len(lr.recs)) {
			lo = lr.n - uint64(len(lr.recs))
		}
		if pos <= lo {
			lr.mu.Unlock()
			break
		}
		for i := 0; i < chunk && pos > after && pos > lo && (max <= 0 || len(out) < max); i++ {
			rec := &lr.recs[(pos-1)&lr.mask]
			if keep == nil || keep(rec) {
				out = append(out, *rec)
			}
			pos--
		}
		lr.mu.Unlock()
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// addOperator records an operator action in the loop's ring. It must run
// on the loop's goroutine (inside actor.System.Inspect).
func (lr *loopRec) addOperator(kind actor.EventKind, to refID, payload []byte, errText string, st *stateChange, r *Recorder) {
	now := time.Now()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.n++
	rec := &lr.recs[(lr.n-1)&lr.mask]
	flags := fOperator | fPayload
	if len(payload) > PayloadBytes {
		flags |= fTruncated
	}
	if st != nil {
		flags |= fDiff
	}
	outcome := outOK
	if errText != "" {
		outcome = outError
	}
	*rec = record{n: lr.n, seq: lr.lastSeq, start: now.UnixNano(), from: refID{loop: -1}, to: to,
		kind: kind, outcome: outcome, flags: flags}
	rec.plen = uint16(copy(rec.data[:PayloadBytes], payload))
	rec.elen = uint8(copy(rec.data[rec.plen:], errText))
	if st != nil {
		lr.keepState(r, to, lr.n, rec.start, st)
	}
}

// LoopStats are one loop's numbers, as the recorder and the runtime see
// them.
type LoopStats struct {
	Loop         int
	Inbound      int // queued from other loops and goroutines
	Control      int // replies, completions, runtime requests
	Local        int // queued between actors of the loop
	Timers       int
	Actors       int64
	Parked       bool
	Handled      uint64 // handler events recorded
	Errors       uint64 // handler events that returned an error or crashed
	Crashes      uint64
	Restarts     uint64
	Dropped      uint64
	Recorded     uint64 // events recorded (all kinds)
	RingCapacity int
	EventsPerSec uint64 // handler events in the last whole second of the loop's clock
	TraceAll     bool   // state tracing on for the whole loop
	Latency      Histogram
}

// QueueDepth is the number of events waiting on the loop.
func (s *LoopStats) QueueDepth() int { return s.Inbound + s.Control + s.Local }

// Stats returns every loop's numbers. Safe from any goroutine; queue depths
// and actor counts are zero until the recorder is attached to a System.
func (r *Recorder) Stats() []LoopStats {
	var sys []actor.Stats
	if s := r.sys.Load(); s != nil {
		sys = s.Stats()
	}
	now := time.Now().Unix()
	out := make([]LoopStats, len(r.loops))
	for i, lr := range r.loops {
		st := &out[i]
		st.Loop, st.RingCapacity, st.TraceAll = i, len(lr.recs), lr.traceAll.Load()
		lr.mu.Lock()
		st.Handled, st.Errors, st.Crashes, st.Restarts, st.Dropped, st.Recorded =
			lr.handled, lr.errs, lr.crashes, lr.restarts, lr.drops, lr.n
		st.Latency = lr.lat
		switch lr.rateSec {
		case now:
			st.EventsPerSec = lr.ratePrev
		case now - 1:
			st.EventsPerSec = lr.rateCur
		}
		lr.mu.Unlock()
		if i < len(sys) {
			st.Inbound, st.Control, st.Local, st.Timers, st.Actors, st.Parked =
				sys[i].Inbound, sys[i].Control, sys[i].Local, sys[i].Timers, sys[i].Actors, sys[i].Parked
		}
	}
	return out
}

// ErrNotAttached means the recorder has no System (see Attach).
var ErrNotAttached = errors.New("debug: recorder not attached to a system")
