package daemon

import (
	"errors"
	"time"

	"github.com/actord/actord/actor"
)

// A move's import whose answer is lost (mvUnknown) may have made the new
// instance all the same: tied to the root, with the child's state, it
// would run beside the old instance, which resumes. So each move names
// its import (spawnImport.Move), and on an unknown outcome the mover
// sends the target's gateway a cancelImport for it: the instance made for
// that move is killed, and an import for it that comes later is refused.
// The gateway remembers each move for importKeep (at most maxImports).

// cancelImport asks a member's gateway to kill the instance it made for
// the move named Move (spawnImport.Move), and to refuse a later import
// for it. Idempotent; the answer is nil once done.
type cancelImport struct {
	Move string
}

// importForget ends the record of a move's import (a local message).
type importForget struct {
	Move string
	Seq  uint64
}

// importKeep is how long a gateway remembers a move's import: longer
// than a mover waits for its answer (importTimeout).
const importKeep = time.Minute

// maxImports bounds the moves' imports a gateway remembers at once; past
// it an import is refused (a gateway runs at most a few moves at once).
const maxImports = 4096

// maxMoveID bounds a move's name.
const maxMoveID = 64

// errTooManyImports refuses a cancelImport past maxImports.
var errTooManyImports = errors.New("too many moves' imports remembered on this daemon")

// imports is a gateway's record of moves' imports, by move; its loop
// only.
type imports struct {
	m   map[string]*importRec
	seq uint64
}

// importRec is one move's import: pending (under way), its instance once
// made, or cancelled.
type importRec struct {
	seq       uint64
	ref       actor.Ref
	cancelled bool
}

// begin records the import of move under way; false if it may not run
// (cancelled already, or the table is full).
func (t *imports) begin(c *actor.Context, move string) (*importRec, bool) {
	if _, ok := t.m[move]; ok {
		return nil, false // cancelled, or a repeat: one import per move
	}
	return t.add(c, move)
}

// add records move, forgotten after importKeep; false if the table is
// full.
func (t *imports) add(c *actor.Context, move string) (*importRec, bool) {
	if t.m == nil {
		t.m = map[string]*importRec{}
	}
	if len(t.m) >= maxImports {
		return nil, false
	}
	t.seq++
	r := &importRec{seq: t.seq}
	t.m[move] = r
	c.After(importKeep, importForget{Move: move, Seq: r.seq})
	return r, true
}

// cancel kills what was made for move, and refuses what comes for it.
func (t *imports) cancel(c *actor.Context, move string) error {
	r, ok := t.m[move]
	if !ok {
		if r, ok = t.add(c, move); !ok {
			return errTooManyImports
		}
	}
	r.cancelled = true
	if !r.ref.IsZero() {
		_ = c.Kill(r.ref)
		r.ref = actor.Ref{}
	}
	return nil
}

// forget ends a record whose time is up.
func (t *imports) forget(m importForget) {
	if r, ok := t.m[m.Move]; ok && r.seq == m.Seq {
		delete(t.m, m.Move)
	}
}

// cancelCall answers a cancelImport, on the gateway's loop.
func (g *Gateway) cancelCall(c *actor.Context, m cancelImport) (any, error) {
	if m.Move == "" || len(m.Move) > maxMoveID {
		return nil, errors.New("a move's name of 1 to 64 bytes")
	}
	return nil, g.imports.cancel(c, m.Move)
}

// localCancel is a cancelImport of this daemon's own mover (see
// localImport).
type localCancel struct{ m cancelImport }
