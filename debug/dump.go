package debug

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// The dump protocol: the JSON the debug server serves and the CLI reads.
// Fields are only ever added within a ProtocolVersion; docs/debugging.md
// documents them.

// ProtocolVersion is the version of the dump format.
const ProtocolVersion = 1

// timeFormat has fixed-width nanoseconds, so times sort as strings.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(timeFormat) }

// Dump is everything the debugger can see at once.
type Dump struct {
	Version      int        `json:"version"`
	Time         string     `json:"time"`
	Started      string     `json:"started"`
	Loops        []Loop     `json:"loops"`
	Actors       []Actor    `json:"actors"`
	Tree         []*Node    `json:"tree"`
	Events       []Event    `json:"events"`
	Crashes      []Crash    `json:"crashes"`
	CrashesTotal uint64     `json:"crashes_total"`
	Reports      []Report   `json:"reports"`
	States       []State    `json:"states"`
	Unresponsive []int      `json:"unresponsive_loops"`
	Config       DumpConfig `json:"config"`
}

// DumpConfig is the recorder's configuration, in a dump.
type DumpConfig struct {
	RingSize     int  `json:"ring_size"`
	RecordBytes  int  `json:"record_bytes"`
	PayloadBytes int  `json:"payload_bytes"`
	Payloads     bool `json:"payloads"`
	Crashes      int  `json:"crashes"`
	CrashContext int  `json:"crash_context"`
	StateHistory int  `json:"state_history"`
}

// Loop is one loop's numbers.
type Loop struct {
	Loop         int     `json:"loop"`
	QueueDepth   int     `json:"queue_depth"` // inbound + control + local
	Inbound      int     `json:"inbound"`
	Control      int     `json:"control"`
	Local        int     `json:"local"`
	Timers       int     `json:"timers"`
	Actors       int64   `json:"actors"`
	Parked       bool    `json:"parked"`
	Handled      uint64  `json:"handled"`
	Errors       uint64  `json:"errors"`
	Crashes      uint64  `json:"crashes"`
	Restarts     uint64  `json:"restarts"`
	Dropped      uint64  `json:"dropped"`
	Recorded     uint64  `json:"recorded"`
	RingCapacity int     `json:"ring_capacity"`
	EventsPerSec uint64  `json:"events_per_sec"`
	TraceState   bool    `json:"trace_state"`
	Latency      Latency `json:"latency"`
}

// Latency summarises a loop's handler latency histogram, in nanoseconds.
type Latency struct {
	Count  uint64 `json:"count"`
	MeanNS int64  `json:"mean_ns"`
	P50NS  int64  `json:"p50_ns"`
	P90NS  int64  `json:"p90_ns"`
	P99NS  int64  `json:"p99_ns"`
	MaxNS  int64  `json:"max_ns"`
}

// parentOf renders an actor's parent for Actor.Parent: a local one as its
// id, a remote one (the owner of a linked remote spawn) with its node, so
// that it never names a local actor of the same numbers.
func parentOf(r actor.Ref) string {
	if r.IsRemote() {
		return r.String()
	}
	return idOf(r).String()
}

// Actor describes one actor.
type Actor struct {
	ID           string `json:"id"` // <loop.slot.gen>
	Loop         int    `json:"loop"`
	Name         string `json:"name"`       // its spawn name; a supervised child's name is its path, e.g. "app/db"
	Path         string `json:"path"`       // its name, or for an unnamed supervisor the path its reports use
	Type         string `json:"type"`       // Go type; empty while suspended by Suspend (a crashed actor keeps its instance until the restart)
	Parent       string `json:"parent"`     // <loop.slot.gen>, or <node/loop.slot.gen> for a remote parent
	Supervisor   string `json:"supervisor"` // the path of its supervisor, if it has one
	IsSupervisor bool   `json:"is_supervisor"`
	Status       string `json:"status"` // "running" or "suspended"
	Queue        int    `json:"queue"`  // messages held for it while suspended
	Incarnation  uint32 `json:"incarnation"`
	HasState     bool   `json:"has_state"`
	Patchable    bool   `json:"patchable"`
	Traced       bool   `json:"traced"`
	// RemoteChildren are the running children of a supervisor that live on
	// other nodes (not in this list of actors).
	RemoteChildren []RemoteChild `json:"remote_children,omitempty"`
}

// RemoteChild is a supervisor's child on another node.
type RemoteChild struct {
	ID         string `json:"id"`   // its id in the supervisor's spec
	Ref        string `json:"ref"`  // its ref, e.g. "<b/0.3.1>"
	Node       string `json:"node"` // the address of its node
	Supervisor bool   `json:"is_supervisor"`
}

// Node is an actor in the supervision tree (every actor, placed under the
// actor that spawned it).
type Node struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Path         string  `json:"path"`
	Type         string  `json:"type"`
	Loop         int     `json:"loop"`
	IsSupervisor bool    `json:"is_supervisor"`
	Status       string  `json:"status"`         // "running", "suspended", or "remote": a child on another node
	Node         string  `json:"node,omitempty"` // the address of a remote child's node
	Children     []*Node `json:"children"`
}

// Event is one recorded event.
type Event struct {
	Loop             int             `json:"loop"`
	N                uint64          `json:"n"`   // position in the loop's recording, from 1
	Seq              uint64          `json:"seq"` // the runtime's per-loop sequence number
	Time             string          `json:"time"`
	Kind             string          `json:"kind"`
	From             string          `json:"from"`
	To               string          `json:"to"`
	Type             string          `json:"type"`
	Payload          string          `json:"payload"` // JSON text, cut at payload_bytes when truncated
	PayloadTruncated bool            `json:"payload_truncated"`
	DurationNS       int64           `json:"duration_ns"`
	Outcome          string          `json:"outcome"` // "ok", "error", "crash"
	Error            string          `json:"error"`
	Operator         bool            `json:"operator"`
	Diff             json.RawMessage `json:"diff,omitempty"` // JSON Patch of a traced actor's state
}

// Crash is one entry of the crash log.
type Crash struct {
	Time             string  `json:"time"`
	Loop             int     `json:"loop"`
	N                uint64  `json:"n"`
	Actor            string  `json:"actor"`
	Name             string  `json:"name"`
	Supervisor       string  `json:"supervisor"`
	ChildID          string  `json:"child_id"`
	Restarts         int     `json:"restarts"`
	Incarnation      uint32  `json:"incarnation"`
	Panic            string  `json:"panic"`
	Stack            string  `json:"stack"`
	MessageType      string  `json:"message_type"`
	Message          string  `json:"message"`
	MessageTruncated bool    `json:"message_truncated"`
	From             string  `json:"from"`
	Preceding        []Event `json:"preceding"` // the messages the actor handled just before, oldest first
}

// Report is a supervisor report.
type Report struct {
	Time          string `json:"time"`
	Kind          string `json:"kind"`
	Supervisor    string `json:"supervisor"`
	SupervisorRef string `json:"supervisor_ref"`
	Child         string `json:"child"`
	ChildRef      string `json:"child_ref"`
	Reason        string `json:"reason"`
	Restarts      int    `json:"restarts"`
}

// EventFilter selects events.
type EventFilter struct {
	Actor *actor.Ref     // only events to or from this actor
	Loop  int            // only this loop; -1 for all
	Kinds []string       // only these kinds (names as in Event.Kind); empty for all
	Last  int            // at most the last Last events (0: all still in the rings)
	After map[int]uint64 // per loop, only events with N greater than this
}

func (r *Recorder) latency(h *Histogram) Latency {
	l := Latency{Count: h.Count(), P50NS: h.Quantile(0.5), P90NS: h.Quantile(0.9), P99NS: h.Quantile(0.99), MaxNS: h.Max()}
	if l.Count > 0 {
		l.MeanNS = int64(h.Sum() / l.Count)
	}
	return l
}

// Loops returns every loop's numbers in dump form.
func (r *Recorder) Loops() []Loop {
	stats := r.Stats()
	out := make([]Loop, len(stats))
	for i := range stats {
		s := &stats[i]
		out[i] = Loop{Loop: s.Loop, QueueDepth: s.QueueDepth(), Inbound: s.Inbound, Control: s.Control, Local: s.Local,
			Timers: s.Timers, Actors: s.Actors, Parked: s.Parked, Handled: s.Handled, Errors: s.Errors,
			Crashes: s.Crashes, Restarts: s.Restarts, Dropped: s.Dropped, Recorded: s.Recorded,
			RingCapacity: s.RingCapacity, EventsPerSec: s.EventsPerSec, TraceState: s.TraceAll, Latency: r.latency(&s.Latency)}
	}
	return out
}

func (r *Recorder) event(loop int, rec *record) Event {
	e := Event{Loop: loop, N: rec.n, Seq: rec.seq, Time: fmtTime(rec.start), Kind: kindName(rec.kind),
		From: rec.from.String(), To: rec.to.String(), Type: r.types.name(rec.typ),
		PayloadTruncated: rec.flags&fTruncated != 0, DurationNS: rec.dur, Outcome: outcomeNames[rec.outcome],
		Error: string(rec.errText()), Operator: rec.flags&fOperator != 0}
	if rec.flags&fPayload != 0 {
		e.Payload = string(rec.payload())
	}
	if rec.flags&fFromRemote != 0 {
		e.From = "remote:" + e.From
	}
	if rec.flags&fToRemote != 0 {
		e.To = "remote:" + e.To
	}
	return e
}

// Events returns recorded events that pass f, ordered by time (then loop
// and position).
func (r *Recorder) Events(f EventFilter) []Event {
	var id refID
	if f.Actor != nil {
		id = idOf(*f.Actor)
	}
	kinds := map[string]bool{}
	for _, k := range f.Kinds {
		kinds[k] = true
	}
	keep := func(rec *record) bool {
		if f.Actor != nil && rec.to != id && rec.from != id {
			return false
		}
		return len(kinds) == 0 || kinds[kindName(rec.kind)]
	}
	var out []Event
	for i, lr := range r.loops {
		if f.Loop >= 0 && i != f.Loop {
			continue
		}
		recs := lr.copyRecords(f.After[i], f.Last, keep)
		var diffs []int
		for j := range recs {
			out = append(out, r.event(i, &recs[j]))
			if recs[j].flags&fDiff != 0 {
				diffs = append(diffs, len(out)-1)
			}
		}
		if len(diffs) > 0 {
			lr.mu.Lock()
			for _, k := range diffs {
				rec := &recs[k-(len(out)-len(recs))]
				if h := lr.hist[rec.to]; h != nil {
					for _, se := range h.entries {
						if se.n == rec.n {
							out[k].Diff = se.patch
							break
						}
					}
				}
			}
			lr.mu.Unlock()
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Loop, b.Loop), cmp.Compare(a.N, b.N))
	})
	if f.Last > 0 && len(out) > f.Last {
		out = out[len(out)-f.Last:]
	}
	return out
}

// Crashes returns the crash log, oldest first, and the number of crashes
// ever recorded.
func (r *Recorder) Crashes() ([]Crash, uint64) {
	entries, total := r.crashes.snapshot()
	out := make([]Crash, len(entries))
	for i := range entries {
		e := &entries[i]
		c := Crash{Time: fmtTime(e.time), Loop: e.loop, N: e.n, Actor: e.actor.String(), Name: e.name,
			Supervisor: e.supervisor, ChildID: e.childID, Restarts: e.restarts, Incarnation: e.inc,
			Panic: e.panicText, Stack: e.stack, MessageType: r.types.name(e.typ), Message: string(e.msg),
			MessageTruncated: e.msgTrunc, From: e.from.String(), Preceding: []Event{}}
		for j := range e.preceding {
			c.Preceding = append(c.Preceding, r.event(e.loop, &e.preceding[j]))
		}
		out[i] = c
	}
	return out, total
}

// Reports returns the last supervisor reports, oldest first.
func (r *Recorder) Reports() []Report { return r.reports.snapshot() }

// remoteChildren is what the debugger needs of a supervisor with children
// on other nodes (package supervisor's actor).
type remoteChildren interface {
	RemoteChildren() []seam.RemoteChild
}

func isSupervisor(a actor.Actor) bool {
	t := reflect.TypeOf(a)
	if t == nil || t.Kind() != reflect.Pointer {
		return false
	}
	t = t.Elem()
	return t.PkgPath() == "github.com/actord/actord/supervisor" && t.Name() == "sup"
}

// Actors lists the actors of every loop. A loop that does not answer
// before ctx is done (stuck in a long handler) is listed in unresponsive;
// its actors are missing.
func (r *Recorder) Actors(ctx context.Context) (actors []Actor, unresponsive []int, err error) {
	sys := r.sys.Load()
	if sys == nil {
		return nil, nil, ErrNotAttached
	}
	for i := range sys.Loops() {
		lr := r.loops[i]
		all := lr.traceAll.Load()
		var got []Actor
		verr := visitActors(ctx, sys, i, func(ai actorInfo) {
			a := Actor{ID: idOf(ai.Ref).String(), Loop: i, Name: ai.Name, Parent: parentOf(ai.Parent),
				Status: "running", Queue: ai.Stashed, Incarnation: ai.Incarnation}
			if ai.Suspended {
				a.Status = "suspended"
			}
			if ai.Actor != nil {
				a.Type = fmt.Sprintf("%T", ai.Actor)
				_, a.HasState = ai.Actor.(StateReader)
				_, a.Patchable = ai.Actor.(StatePatcher)
				a.IsSupervisor = isSupervisor(ai.Actor)
				if rc, ok := ai.Actor.(remoteChildren); ok {
					for _, c := range rc.RemoteChildren() {
						a.RemoteChildren = append(a.RemoteChildren, RemoteChild(c))
					}
				}
			}
			if h := lr.hist[idOf(ai.Ref)]; h != nil { // on the loop: no lock needed to read
				a.Traced = h.traced(all) && a.HasState
			} else {
				a.Traced = all && a.HasState
			}
			got = append(got, a)
		})
		if verr != nil {
			if ctx.Err() != nil {
				unresponsive = append(unresponsive, i)
				continue
			}
			return nil, nil, verr
		}
		actors = append(actors, got...)
	}
	byID := make(map[string]*Actor, len(actors))
	for i := range actors {
		byID[actors[i].ID] = &actors[i]
	}
	for i := range actors {
		actors[i].Path = actors[i].Name
	}
	for i := range actors {
		a := &actors[i]
		// An unnamed supervisor's path (Spec.Name) shows in its children's
		// names, which are "path/id".
		if p := byID[a.Parent]; p != nil && p.IsSupervisor && p.Name == "" {
			if k := strings.LastIndexByte(a.Name, '/'); k > 0 {
				p.Path = a.Name[:k]
			}
		}
	}
	for i := range actors {
		if p := byID[actors[i].Parent]; p != nil && p.IsSupervisor {
			actors[i].Supervisor = p.Path
		}
	}
	return actors, unresponsive, nil
}

// Tree arranges actors by parent: roots are the actors with no (live)
// parent; children are in loop and slot order.
func Tree(actors []Actor) []*Node {
	nodes := make(map[string]*Node, len(actors))
	for _, a := range actors {
		nodes[a.ID] = &Node{ID: a.ID, Name: a.Name, Path: a.Path, Type: a.Type, Loop: a.Loop, IsSupervisor: a.IsSupervisor,
			Status: a.Status, Children: []*Node{}}
	}
	roots := []*Node{}
	for _, a := range actors {
		n := nodes[a.ID]
		if p := nodes[a.Parent]; p != nil && a.Parent != a.ID {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	var sortN func([]*Node)
	sortN = func(ns []*Node) {
		slices.SortFunc(ns, func(a, b *Node) int { return compareIDs(a.ID, b.ID) })
		for _, n := range ns {
			sortN(n.Children)
		}
	}
	sortN(roots)
	// A supervisor's children on other nodes come after its local ones,
	// in its start order.
	for _, a := range actors {
		n := nodes[a.ID]
		for _, c := range a.RemoteChildren {
			n.Children = append(n.Children, &Node{ID: c.Ref, Name: c.ID, Path: a.Path + "/" + c.ID, Type: "remote",
				Loop: -1, IsSupervisor: c.Supervisor, Status: "remote", Node: c.Node, Children: []*Node{}})
		}
	}
	return roots
}

func compareIDs(a, b string) int {
	pa, _ := parseID(a)
	pb, _ := parseID(b)
	return cmp.Or(cmp.Compare(pa.loop, pb.loop), cmp.Compare(pa.slot, pb.slot), cmp.Compare(pa.gen, pb.gen))
}

// parseID parses "<loop.slot.gen>" or "loop.slot.gen".
func parseID(s string) (refID, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return refID{loop: -1}, false
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return refID{loop: -1}, false
		}
		n[i] = v
	}
	return refID{loop: int32(n[0]), slot: uint32(n[1]), gen: uint32(n[2])}, true
}

// Resolve finds a live actor by its id ("<0.3.1>" or "0.3.1") or by its
// name (which must be unique).
func (r *Recorder) Resolve(ctx context.Context, s string) (actor.Ref, error) {
	sys := r.sys.Load()
	if sys == nil {
		return actor.Ref{}, ErrNotAttached
	}
	var found []actor.Ref
	var match func(ai actorInfo)
	loops := []int{}
	if id, ok := parseID(s); ok {
		if int(id.loop) >= sys.Loops() {
			return actor.Ref{}, fmt.Errorf("debug: no actor %s", s)
		}
		loops = append(loops, int(id.loop))
		match = func(ai actorInfo) {
			if idOf(ai.Ref) == id {
				found = append(found, ai.Ref)
			}
		}
	} else {
		for i := range sys.Loops() {
			loops = append(loops, i)
		}
		match = func(ai actorInfo) {
			if ai.Name == s {
				found = append(found, ai.Ref)
			}
		}
	}
	for _, i := range loops {
		if err := visitActors(ctx, sys, i, match); err != nil {
			return actor.Ref{}, err
		}
	}
	switch len(found) {
	case 0:
		return actor.Ref{}, fmt.Errorf("debug: no actor %s: %w", s, actor.ErrDead)
	case 1:
		return found[0], nil
	}
	return actor.Ref{}, fmt.Errorf("debug: %d actors are named %q: use an id", len(found), s)
}

// States returns the current state of every traced actor.
func (r *Recorder) States(ctx context.Context, actors []Actor) []State {
	sys := r.sys.Load()
	out := []State{}
	if sys == nil {
		return out
	}
	for _, a := range actors {
		if !a.Traced {
			continue
		}
		ref, err := r.Resolve(ctx, a.ID)
		if err != nil {
			continue
		}
		if st, err := r.State(ctx, ref); err == nil {
			out = append(out, *st)
		}
	}
	return out
}

// Dump gathers everything: loops, actors, the tree, the last events of
// every loop (at most last per loop, 0 for all in the rings), crashes,
// supervisor reports and the states of traced actors.
func (r *Recorder) Dump(ctx context.Context, last int) (*Dump, error) {
	d := &Dump{Version: ProtocolVersion, Time: time.Now().UTC().Format(timeFormat),
		Started: r.started.UTC().Format(timeFormat), Loops: r.Loops(), Unresponsive: []int{},
		Config: DumpConfig{RingSize: r.cfg.RingSize, RecordBytes: RecordBytes, PayloadBytes: PayloadBytes,
			Payloads: !r.cfg.NoPayloads, Crashes: r.cfg.Crashes, CrashContext: r.cfg.CrashContext, StateHistory: r.cfg.StateHistory}}
	actors, unresp, err := r.Actors(ctx)
	if err != nil && err != ErrNotAttached {
		return nil, err
	}
	if actors == nil {
		actors = []Actor{}
	}
	d.Actors, d.Tree = actors, Tree(actors)
	if unresp != nil {
		d.Unresponsive = unresp
	}
	d.Events = []Event{}
	for i := range r.loops {
		d.Events = append(d.Events, r.Events(EventFilter{Loop: i, Last: last})...)
	}
	slices.SortStableFunc(d.Events, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Loop, b.Loop), cmp.Compare(a.N, b.N))
	})
	d.Crashes, d.CrashesTotal = r.Crashes()
	d.Reports = r.Reports()
	if d.Reports == nil {
		d.Reports = []Report{}
	}
	d.States = r.States(ctx, actors)
	return d, nil
}
