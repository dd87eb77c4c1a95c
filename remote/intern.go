package remote

import (
	"encoding/binary"
	"fmt"

	"github.com/actord/actord/actor"
)

// Actor ids interned per connection. Send and Ask frames name their target
// and sender by an index into a table of the connection instead of by the
// full id ([loop, slot, gen, 16-byte secret], about 22 bytes): the first
// frame that uses an id on a connection defines its index, [index, loop,
// slot, gen, secret], later ones carry the index alone, one to three bytes.
// The sender owns the tables, two per connection (targets, senders): it
// assigns indexes, and when a table is full it redefines the index of an
// entry it has not used lately (a clock). A connection's frames arrive in
// the order they were queued, so a define always precedes its uses; a new
// connection starts with empty tables on both sides (outbox.lost empties
// the sender's with the stream they belonged to).
//
// The receiver keeps, per index, the id and what it resolved to: the
// target's secret is checked once per define (a forged id is refused then,
// and every later use of its index is refused the same way), not per frame.
// An index never defined, or one past the bound, makes the frame malformed.

// maxInterned bounds each table of a connection: a define names an index
// below it, and at most one past the highest defined so far (so the
// receiver's tables grow only as far as the sender's did).
const maxInterned = 1024

// outIDs is the sending side's table of one kind of id (targets or
// senders) for the current connection stream. Not safe for concurrent use:
// the peer's lock guards it with its frame writer.
type outIDs struct {
	cap int // at most maxInterned
	// slots finds an id's entry: open addressing with linear probing,
	// entry index + 1 (0: empty), a power of two at least twice cap. (A
	// map keyed by the 28-byte id cost more than the bytes it saves.)
	slots []uint16
	ents  []outEntry
	hand  int // the clock's hand, once full
	// the last id interned, so a stream to (or from) one actor skips the table
	last   actor.WireID
	lastI  uint16
	lastOK bool
}

// home is the slot where id's probe starts.
func (t *outIDs) home(id *actor.WireID) int {
	h := uint64(id.Loop)<<48 ^ uint64(id.Gen)<<32 ^ uint64(id.Slot) ^ binary.LittleEndian.Uint64(id.Secret[:8])
	h *= 0x9e3779b97f4a7c15
	return int(h>>32) & (len(t.slots) - 1)
}

// find returns the slot holding id's entry, or the empty slot where it
// would go.
func (t *outIDs) find(id *actor.WireID) (slot int, found bool) {
	mask := len(t.slots) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == 0 {
			return i, false
		}
		if t.ents[e-1].id == *id {
			return i, true
		}
	}
}

// remove empties the slot of id's entry, moving back the entries after it
// that probed past it (no tombstones).
func (t *outIDs) remove(id *actor.WireID) {
	i, ok := t.find(id)
	if !ok {
		return
	}
	mask := len(t.slots) - 1
	t.slots[i] = 0
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		k := t.home(&t.ents[t.slots[j]-1].id)
		// the entry at j stays unless its home is cyclically outside (i, j]
		if (i < j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			t.slots[i], t.slots[j] = t.slots[j], 0
			i = j
		}
	}
}

type outEntry struct {
	id   actor.WireID
	used bool // used since the clock's hand last passed
	live bool // defined on the connection (false: free, its define was taken back)
}

// internKind is what intern did for an id.
type internKind uint8

const (
	internUse    internKind = iota // the index was defined: the frame carries it alone
	internAppend                   // a new index past the last: the frame defines it
	internEvict                    // an index redefined (another id's evicted): the frame defines it
)

// intern returns the index of id and whether the frame must define it.
func (t *outIDs) intern(id actor.WireID) (uint16, internKind) {
	if t.lastOK && id == t.last {
		t.ents[t.lastI].used = true
		return t.lastI, internUse
	}
	if t.slots == nil {
		if t.cap <= 0 || t.cap > maxInterned {
			t.cap = maxInterned
		}
		n := 2
		for n < 2*t.cap {
			n *= 2
		}
		t.slots = make([]uint16, n)
	}
	slot, found := t.find(&id)
	if found {
		i := t.slots[slot] - 1
		t.ents[i].used = true
		t.last, t.lastI, t.lastOK = id, i, true
		return i, internUse
	}
	var i int
	kind := internAppend
	if len(t.ents) < t.cap {
		i = len(t.ents)
		t.ents = append(t.ents, outEntry{})
	} else {
		kind = internEvict
		for { // a clock: an entry used since the last pass gets another
			e := &t.ents[t.hand]
			if !e.live || !e.used {
				break
			}
			e.used = false
			t.hand = (t.hand + 1) % len(t.ents)
		}
		i = t.hand
		t.hand = (t.hand + 1) % len(t.ents)
		if e := &t.ents[i]; e.live {
			t.remove(&e.id)
			slot, _ = t.find(&id) // the removal may have moved what was there
		}
	}
	t.ents[i] = outEntry{id: id, live: true}
	t.slots[slot] = uint16(i + 1)
	t.last, t.lastI, t.lastOK = id, uint16(i), true
	return uint16(i), kind
}

// undo takes back a define that did not reach the stream (the frame's
// payload failed to encode): its index is free again, and a new index past
// the last is given back, so that the next define is the receiver's next.
func (t *outIDs) undo(i uint16, kind internKind) {
	if kind == internUse {
		return
	}
	t.remove(&t.ents[i].id)
	t.lastOK = false
	if kind == internAppend {
		t.ents = t.ents[:i]
		return
	}
	t.ents[i] = outEntry{}
}

// reset empties the table: a new connection stream starts.
func (t *outIDs) reset() {
	clear(t.slots)
	t.ents = t.ents[:0]
	t.hand = 0
	t.lastOK = false
}

// idAt returns the id last defined at index i (for the dead letters of a
// lost stream).
func (t *outIDs) idAt(i uint16) (actor.WireID, bool) {
	if int(i) >= len(t.ents) || !t.ents[i].live {
		return actor.WireID{}, false
	}
	return t.ents[i].id, true
}

// outTables are a connection stream's sending tables.
type outTables struct {
	to, from outIDs
}

func (o *outTables) reset() {
	o.to.reset()
	o.from.reset()
}

// inIDs is the receiving side's table of one kind of id for one
// connection: what each index defines, and the cached resolution of the
// target's id (the secret check, once per define).
type inIDs struct {
	ents []inEntry
}

type inEntry struct {
	id actor.WireID
	// for a target: the local ref, and whether its secret was checked
	// (resolved) and found right (ok)
	ref      actor.Ref
	resolved bool
	ok       bool
}

// get returns the entry of a defined index.
func (t *inIDs) get(i uint64) (*inEntry, error) {
	if i >= uint64(len(t.ents)) {
		return nil, fmt.Errorf("actor id index %d not defined (%d are)", i, len(t.ents))
	}
	return &t.ents[i], nil
}

// checkDefine reports whether index i may be defined now: one already
// defined, or the next one, below maxInterned.
func (t *inIDs) checkDefine(i uint64) error {
	if i >= maxInterned || i > uint64(len(t.ents)) {
		return fmt.Errorf("actor id index %d defined with %d defined (max %d)", i, len(t.ents), maxInterned)
	}
	return nil
}

// define records id at index i, which checkDefine accepted; what the
// index resolved to before is forgotten.
func (t *inIDs) define(i uint16, id actor.WireID) {
	if int(i) == len(t.ents) {
		t.ents = append(t.ents, inEntry{id: id})
		return
	}
	t.ents[i] = inEntry{id: id}
}

// inTables are a connection's receiving tables.
type inTables struct {
	to, from inIDs
}

// pendingDefine is a define read in a frame, applied once the whole frame
// parsed (a malformed frame changes no table).
type pendingDefine struct {
	idx uint16
	id  actor.WireID
	set bool
}
