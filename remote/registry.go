package remote

import (
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// typeInfo is one registered message type.
type typeInfo struct {
	id   uint64
	name string
	typ  reflect.Type
	// lazy: a Send's or an Ask's value is decoded on the target's loop
	// (lazy.go). Not for the builtin types decodeBuiltin decodes, which
	// cost no more to decode than to copy for later, nor for actor.Down,
	// which inSend drops.
	lazy bool
	// etyp is the type word of an any holding a value of typ, for box;
	// nil when typ is not larger than a pointer (Go may keep such a value
	// in the interface itself), unless plan is set (a planned struct is
	// never pointer-shaped, so an interface always points to it).
	etyp unsafe.Pointer
	// plan codes typ without reflection (structplan.go); nil: msgpack.
	plan *structPlan
}

// newTypeInfo describes the type t registered under name.
func newTypeInfo(id uint64, name string, t reflect.Type) *typeInfo {
	ti := &typeInfo{id: id, name: name, typ: t, lazy: !builtin(t) && t != typeDown, plan: newStructPlan(t)}
	if t.Size() > unsafe.Sizeof(uintptr(0)) || ti.plan != nil {
		ti.etyp = typeWord(t)
	}
	return ti
}

// box returns the value at p, a fresh allocation of ti's type that nothing
// else refers to, as an any, without copying it: an interface keeps a value
// larger than a pointer as a pointer to a copy of its own, and p can be
// that copy. reflect's Value.Interface would allocate the copy, a second
// allocation per decoded payload. Only for types with etyp set.
func (ti *typeInfo) box(p unsafe.Pointer) any { return makeAny(ti.etyp, p) }

// eface is the layout of an any: its type word and its data word.
type eface struct{ typ, data unsafe.Pointer }

func efaceOf(v *any) *eface { return (*eface)(unsafe.Pointer(v)) }

// makeAny is the any of type word typ and data word data.
func makeAny(typ, data unsafe.Pointer) (v any) {
	*efaceOf(&v) = eface{typ, data}
	return v
}

// registry maps message types to stable names and wire ids. A type's wire id
// is the 64-bit FNV-1a hash of its name, so nodes agree on ids without
// negotiating; two names that collide on one node are refused at
// registration.
//
// Lookups, on the path of every message, read an immutable snapshot without
// a lock; registration (rare) copies it.
type registry struct {
	mu   sync.Mutex // serialises add
	maps atomic.Pointer[regMaps]
}

type regMaps struct {
	byType map[reflect.Type]*typeInfo
	byID   map[uint64]*typeInfo
	// byWord is byType keyed by the type word of an interface holding a
	// value of the type: what a send looks up, without hashing a
	// reflect.Type (an interface) per message.
	byWord map[unsafe.Pointer]*typeInfo
}

// typeWord is the type word of an interface holding a value of t (nil for
// an interface type, which no value has as its dynamic type).
func typeWord(t reflect.Type) unsafe.Pointer {
	z := reflect.Zero(t).Interface()
	return efaceOf(&z).typ
}

func newRegistry() *registry {
	r := &registry{}
	r.maps.Store(&regMaps{byType: map[reflect.Type]*typeInfo{}, byID: map[uint64]*typeInfo{}, byWord: map[unsafe.Pointer]*typeInfo{}})
	for name, v := range map[string]any{
		"string": "", "bytes": []byte(nil), "int": int(0), "int64": int64(0), "uint64": uint64(0),
		"float64": float64(0), "bool": false, "actor.Ref": actor.Ref{}, "actor.Down": actor.Down{},
		"[]any": []any(nil), "map[string]any": map[string]any(nil),
		"remote.reason": reason{},
	} {
		if err := r.add(name, reflect.TypeOf(v)); err != nil {
			panic(err)
		}
	}
	return r
}

func typeID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func (r *registry) add(name string, t reflect.Type) error {
	if name == "" {
		return fmt.Errorf("remote: register %v: empty name", t)
	}
	id := typeID(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.maps.Load()
	if old, ok := cur.byType[t]; ok {
		if old.name == name {
			return nil
		}
		return fmt.Errorf("remote: type %v already registered as %q", t, old.name)
	}
	if old, ok := cur.byID[id]; ok {
		return fmt.Errorf("remote: name %q (for %v) collides with %q (for %v)", name, t, old.name, old.typ)
	}
	next := &regMaps{byType: maps.Clone(cur.byType), byID: maps.Clone(cur.byID), byWord: maps.Clone(cur.byWord)}
	ti := newTypeInfo(id, name, t)
	next.byType[t], next.byID[id] = ti, ti
	if w := typeWord(t); w != nil {
		next.byWord[w] = ti
	}
	r.maps.Store(next)
	return nil
}

func (r *registry) ofValue(v any) (*typeInfo, bool) {
	ti, ok := r.maps.Load().byWord[efaceOf(&v).typ]
	return ti, ok
}

func (r *registry) ofID(id uint64) (*typeInfo, bool) {
	ti, ok := r.maps.Load().byID[id]
	return ti, ok
}

// Register makes values of type T sendable between nodes under a stable
// name. Every node that exchanges T must register it under the same name;
// a message of a type the receiving node does not know is refused with
// ErrUnknownType (an ask gets the error back). T is encoded with msgpack:
// a plain struct, named, is coded from its fields' offsets, without
// reflection, into the bytes msgpack writes. Plain: its exported fields
// are booleans, numbers, strings, []byte, plain structs (by value) and
// slices of plain structs; tags at most a name and omitempty, or
// `msgpack:",as_array"` on a `_msgpack struct{}` field; no embedded
// fields; and no type among them has a coder of its own (msgpack's
// CustomEncoder/CustomDecoder, Marshaler/Unmarshaler, encoding's
// Binary- and TextMarshaler/Unmarshaler, or, for a struct type, one
// registered with msgpack.Register), nor IsZero on an omitempty field.
// Other methods are fine. A coder msgpack.Register'ed for a named
// non-struct field type, or after Register, is not seen: implement the
// interfaces instead. A plan allocates every element a slice declares: up
// to the frame's length times the element's size (MaxFrame bounds it);
// a type that must refuse long lists before allocating them needs a coder
// of its own (as examples/kvstore's GetMany has).
// For other types implement msgpack.CustomEncoder and
// msgpack.CustomDecoder on T for the fast path, otherwise reflection is
// used. actor.Ref fields travel as capabilities (with their secret) and
// stay usable on the receiving node.
// Common types (string, []byte, int, int64, uint64, float64, bool,
// actor.Ref, actor.Down, []any, map[string]any) are registered already.
func Register[T any](n *Node, name string) error {
	return n.reg.add(name, reflect.TypeFor[T]())
}

// codecCtx is what encoding or decoding an actor.Ref inside a payload
// needs: the node whose connection the payload travels on. msgpack has no
// user context on its encoders and decoders, so it rides on their writer
// (bufWriter) and reader (ctxReader).
type codecCtx struct {
	n    *Node
	from *peer // decoding: the node the frame came from
}

func init() {
	msgpack.Register(actor.Ref{}, encodeRefValue, decodeRefValue)
	msgpack.Register(actor.Down{}, encodeDownValue, decodeDownValue)
}

// A Ref in a payload is [node, addr, loop, slot, gen, secret]; the zero Ref
// is nil.
func encodeRefValue(e *msgpack.Encoder, v reflect.Value) error {
	r := v.Interface().(actor.Ref)
	w, ok := e.Writer().(*bufWriter)
	if !ok || w.ctx == nil {
		return fmt.Errorf("remote: actor.Ref encoded outside a node connection")
	}
	return w.ctx.n.encodeRef(e, r)
}

func decodeRefValue(d *msgpack.Decoder, v reflect.Value) error {
	c := decodeCtx(d)
	if c == nil {
		return fmt.Errorf("remote: actor.Ref decoded outside a node connection")
	}
	r, err := c.n.decodeRef(d)
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(r))
	return nil
}

// Down travels as [ref, code, message].
func encodeDownValue(e *msgpack.Encoder, v reflect.Value) error {
	dn := v.Interface().(actor.Down)
	if err := e.EncodeArrayLen(3); err != nil {
		return err
	}
	if err := encodeRefValue(e, reflect.ValueOf(dn.Ref)); err != nil {
		return err
	}
	msg := ""
	if dn.Reason != nil {
		msg = dn.Reason.Error()
	}
	if err := e.EncodeUint(errorCode(dn.Reason)); err != nil {
		return err
	}
	return e.EncodeString(msg)
}

func decodeDownValue(d *msgpack.Decoder, v reflect.Value) error {
	if n, err := d.DecodeArrayLen(); err != nil || n != 3 {
		return fmt.Errorf("%w: Down", ErrBadFrame)
	}
	var r actor.Ref
	if err := decodeRefValue(d, reflect.ValueOf(&r).Elem()); err != nil {
		return err
	}
	code, err := d.DecodeUint64()
	if err != nil {
		return err
	}
	msg, err := d.DecodeString()
	if err != nil {
		return err
	}
	node := ""
	if c := decodeCtx(d); c != nil && c.from != nil {
		node = c.from.name()
	}
	var reason error
	if code != codeNone {
		reason = decodeError(node, code, msg)
	} else if msg != "" {
		reason = decodeError(node, codeOther, msg)
	}
	v.Set(reflect.ValueOf(actor.Down{Ref: r, Reason: reason}))
	return nil
}

// decodeCtx returns the codec context of a frame reader's decoder, or nil.
func decodeCtx(d *msgpack.Decoder) *codecCtx {
	if r, ok := d.Buffered().(*ctxReader); ok {
		return r.ctx
	}
	return nil
}
