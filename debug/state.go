package debug

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/wI2L/jsondiff"
)

// StateReader is implemented by actors that expose their state to the
// debugger. DebugState runs on the actor's loop, between its events; it
// returns a value that encoding/json can marshal (a copy or the fields
// themselves: it is marshalled at once, on the loop).
type StateReader interface {
	DebugState() any
}

// StatePatcher is implemented by actors whose state an operator may replace
// from the debugger (as Erlang's sys:replace_state), to un-stick a stuck
// actor. DebugPatch runs on the actor's loop, between its events, with the
// JSON the operator gave; an error leaves the state as it was.
type StatePatcher interface {
	DebugPatch(state json.RawMessage) error
}

// Errors of state operations.
var (
	// ErrNoState means the actor does not implement StateReader.
	ErrNoState = errors.New("debug: actor does not expose its state (no DebugState method)")
	// ErrNotPatchable means the actor does not implement StatePatcher.
	ErrNotPatchable = errors.New("debug: actor state cannot be patched (no DebugPatch method)")
	// ErrSuspended means the actor is suspended after a crash: it has no
	// instance to read or patch until its supervisor restarts it.
	ErrSuspended = errors.New("debug: actor is suspended after a crash")
)

// trace modes of a history.
const (
	traceFollowLoop uint8 = iota // traced while its loop traces all actors
	traceOn
	traceOff
)

// history is the recent states of one traced actor, oldest first. Written
// by its loop under the loop's mutex; the loop reads it without.
type history struct {
	mode      uint8
	restarted bool // the next state is a new instance's: diff against nothing
	entries   []stateEntry
	bytes     int
}

func (h *history) traced(loopAll bool) bool {
	return h.mode == traceOn || (h.mode == traceFollowLoop && loopAll)
}

type stateEntry struct {
	n     uint64 // ring position of the event that produced this state
	time  int64  // unix nanoseconds
	state []byte // JSON
	patch []byte // JSON Patch (RFC 6902) from the previous entry's state
}

type stateChange struct{ state, patch []byte }

// marshalState reads and marshals an actor's state, bounded. A panic in
// DebugState or in marshalling is recorded as the state.
func marshalState(sr StateReader, maxBytes int) (b []byte) {
	defer func() {
		if v := recover(); v != nil {
			b, _ = json.Marshal(map[string]string{"$error": fmt.Sprintf("DebugState panicked: %v", v)})
		}
	}()
	b, err := json.Marshal(sr.DebugState())
	if err != nil {
		b, _ = json.Marshal(map[string]string{"$error": err.Error()})
	}
	if len(b) > maxBytes {
		b = fmt.Appendf(nil, `{"$too_large":%d}`, len(b))
	}
	return b
}

// Diff returns the JSON Patch (RFC 6902) that turns the JSON document prev
// into cur, as JSON, or nil when they are equal. A nil prev (no earlier
// state) gives a single replace of the whole document.
func Diff(prev, cur []byte) ([]byte, error) {
	if prev == nil {
		return wholeReplace(cur), nil
	}
	p, err := jsondiff.CompareJSON(prev, cur)
	if err != nil {
		return nil, fmt.Errorf("debug: diff: %w", err)
	}
	if len(p) == 0 {
		return nil, nil
	}
	// jsondiff writes "value" first; write each operation's members in the
	// order of RFC 6902's examples (op, from, path, value), for readers.
	out := []byte{'['}
	for i, op := range p {
		b, err := json.Marshal(op)
		if err != nil {
			return nil, fmt.Errorf("debug: diff: %w", err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("debug: diff: %w", err)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '{')
		first := true
		for _, k := range []string{"op", "from", "path", "value"} {
			if v, ok := m[k]; ok {
				if !first {
					out = append(out, ',')
				}
				first = false
				out = append(out, '"')
				out = append(out, k...)
				out = append(out, '"', ':')
				out = append(out, v...)
			}
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

func wholeReplace(doc []byte) []byte {
	b := append([]byte(`[{"op":"replace","path":"","value":`), doc...)
	return append(b, "}]"...)
}

// traceState reads the state of a traced actor after an event and diffs it
// against the last one kept. It runs on the loop, without the lock. It
// returns nil when the actor has no state or the state did not change.
func (lr *loopRec) traceState(r *Recorder, id refID, a actor.Actor, h *history) *stateChange {
	sr, ok := a.(StateReader)
	if !ok {
		return nil
	}
	state := marshalState(sr, r.cfg.StateMaxBytes)
	var prev []byte
	if h != nil && len(h.entries) > 0 && !h.restarted {
		prev = h.entries[len(h.entries)-1].state
	}
	if prev != nil && bytes.Equal(prev, state) {
		return nil
	}
	patch, err := Diff(prev, state)
	if err != nil {
		patch = wholeReplace(state)
	}
	if patch == nil {
		return nil
	}
	return &stateChange{state: state, patch: patch}
}

// keepState appends a state to the actor's history (mu held, on the loop),
// evicting its oldest states beyond Config.StateHistory or the loop's state
// budget.
func (lr *loopRec) keepState(r *Recorder, id refID, n uint64, t int64, st *stateChange) {
	h := lr.hist[id]
	if h == nil {
		h = &history{}
		lr.hist[id] = h
	}
	h.restarted = false
	e := stateEntry{n: n, time: t, state: st.state, patch: st.patch}
	size := len(e.state) + len(e.patch)
	h.entries = append(h.entries, e)
	h.bytes += size
	lr.histB += size
	for len(h.entries) > 1 && (len(h.entries) > r.cfg.StateHistory || lr.histB > lr.stateBud) {
		old := h.entries[0]
		d := len(old.state) + len(old.patch)
		h.bytes -= d
		lr.histB -= d
		h.entries[0] = stateEntry{}
		h.entries = h.entries[1:]
	}
}

// SetTraceLoop switches state tracing for every actor of loop i (actors
// switched individually with SetTraceActor keep their own setting).
func (r *Recorder) SetTraceLoop(i int, on bool) error {
	if i < 0 || i >= len(r.loops) {
		return fmt.Errorf("debug: no loop %d", i)
	}
	r.loops[i].traceAll.Store(on)
	return nil
}

// SetTraceActor switches state tracing for one actor, whatever its loop's
// setting. Switching it on records the actor's current state at once, so
// the next change has a diff. It is recorded in the ring as a KindTrace
// operator event.
func (r *Recorder) SetTraceActor(ctx context.Context, ref actor.Ref, on bool) error {
	sys := r.sys.Load()
	if sys == nil {
		return ErrNotAttached
	}
	var ferr error
	err := sys.Inspect(ctx, ref, func(c *actor.Context, a actor.Actor) {
		lr := r.loops[c.Loop()]
		id := idOf(ref)
		var st *stateChange
		h := lr.hist[id]
		if on && a != nil {
			st = lr.traceState(r, id, a, h)
		}
		lr.mu.Lock()
		if h == nil {
			h = &history{}
			lr.hist[id] = h
		}
		h.mode = traceOff
		if on {
			h.mode = traceOn
		}
		lr.mu.Unlock()
		payload := []byte(`"off"`)
		if on {
			payload = []byte(`"on"`)
		}
		lr.addOperator(KindTrace, id, payload, "", st, r)
	})
	if err != nil {
		return err
	}
	return ferr
}

// State is an actor's current state and its recent states, as the debugger
// shows them.
type State struct {
	Actor   string          `json:"actor"`   // <loop.slot.gen>
	Name    string          `json:"name"`    // its name, if any
	Type    string          `json:"type"`    // its Go type
	Traced  bool            `json:"traced"`  // state tracing is on for it
	State   json.RawMessage `json:"state"`   // now (null if it has none or is suspended)
	History []StateVersion  `json:"history"` // recent states, oldest first (traced actors)
}

// StateVersion is one recent state of a traced actor: the state after the
// event at position N of its loop's ring, and the JSON Patch (RFC 6902) from
// the state before.
type StateVersion struct {
	N     uint64          `json:"n"`
	Time  string          `json:"time"`
	State json.RawMessage `json:"state"`
	Patch json.RawMessage `json:"patch"`
}

// State reads an actor's current state on its loop, with its recent
// states when it is traced.
func (r *Recorder) State(ctx context.Context, ref actor.Ref) (*State, error) {
	sys := r.sys.Load()
	if sys == nil {
		return nil, ErrNotAttached
	}
	out := &State{Actor: idOf(ref).String(), State: json.RawMessage("null")}
	var ferr error
	err := sys.Inspect(ctx, ref, func(c *actor.Context, a actor.Actor) {
		out.Name = c.Name()
		if a == nil {
			ferr = ErrSuspended
			return
		}
		out.Type = fmt.Sprintf("%T", a)
		sr, ok := a.(StateReader)
		if !ok {
			ferr = ErrNoState
			return
		}
		out.State = marshalState(sr, r.cfg.StateMaxBytes)
	})
	if err != nil {
		return nil, err
	}
	lr := r.loops[ref.Loop()]
	id := idOf(ref)
	lr.mu.Lock()
	if h := lr.hist[id]; h != nil {
		out.Traced = h.traced(lr.traceAll.Load())
		for _, e := range h.entries {
			out.History = append(out.History, StateVersion{N: e.n, Time: fmtTime(e.time), State: e.state, Patch: e.patch})
		}
	} else {
		out.Traced = lr.traceAll.Load()
	}
	lr.mu.Unlock()
	if ferr != nil && !errors.Is(ferr, ErrSuspended) {
		return out, ferr
	}
	return out, nil
}

// Patch replaces an actor's state with the JSON doc, through its
// StatePatcher, on its loop, and returns its new state (if it exposes one).
// The patch is recorded in the loop's ring as a KindPatch operator event
// (with the error, if it failed) and, for a traced actor, in its state
// history with the diff it caused.
func (r *Recorder) Patch(ctx context.Context, ref actor.Ref, doc json.RawMessage) (json.RawMessage, error) {
	sys := r.sys.Load()
	if sys == nil {
		return nil, ErrNotAttached
	}
	if !json.Valid(doc) {
		return nil, fmt.Errorf("debug: patch is not valid JSON")
	}
	var out json.RawMessage
	var ferr error
	err := sys.Inspect(ctx, ref, func(c *actor.Context, a actor.Actor) {
		lr := r.loops[c.Loop()]
		id := idOf(ref)
		if a == nil {
			ferr = ErrSuspended
		} else if p, ok := a.(StatePatcher); !ok {
			ferr = ErrNotPatchable
		} else if perr := callPatch(p, doc); perr != nil {
			ferr = perr
		}
		var st *stateChange
		if ferr == nil {
			if sr, ok := a.(StateReader); ok {
				out = marshalState(sr, r.cfg.StateMaxBytes)
			}
			if h := lr.hist[id]; (h != nil && h.traced(lr.traceAll.Load())) || (h == nil && lr.traceAll.Load()) {
				st = lr.traceState(r, id, a, h)
			}
		}
		errText := ""
		if ferr != nil {
			errText = ferr.Error()
		}
		lr.addOperator(KindPatch, id, doc, errText, st, r)
	})
	if err != nil {
		return nil, err
	}
	return out, ferr
}

func callPatch(p StatePatcher, doc json.RawMessage) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("debug: DebugPatch panicked: %v", v)
		}
	}()
	return p.DebugPatch(doc)
}
