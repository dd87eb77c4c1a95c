package debug

import (
	"reflect"
	"strconv"
	"time"
	"unsafe"

	"github.com/actord/actord/actor"
)

// Compiled renderers. The first time a loop sees a message type, its
// renderer builds, by reflection, an encoder for it: a tree of small
// functions that read the value's fields at their offsets and append their
// JSON. Later messages of that type cost a map lookup (or none, when it is
// the same type as the previous message) and the encoder's work, with no
// reflect.Value, no interface conversion and no allocation on the common
// paths (structs, pointers, slices, arrays, strings, numbers, refs, times,
// durations). Maps and the rare types that need it are rendered by the
// reflection walker (renderer.value), with the same output.
//
// The output is the same as the reflection walker's: exported fields in
// declaration order, depth bounded by maxDepth, stopping once the buffer
// holds more than its limit.

// encFn appends the JSON of the value at p (of the type it was compiled
// for). It returns false once the bound is reached. depth is the value's
// depth, already checked against maxDepth by the caller (renderer.enc).
type encFn func(r *renderer, p unsafe.Pointer, depth int) bool

// encoder is a compiled type's encoder. Types refer to each other through
// *encoder, so a recursive type's encoder can refer to itself before it is
// complete.
type encoder struct {
	fn encFn
}

// msgType is what a loop knows of a message's dynamic type, by type word.
type msgType struct {
	id     uint32 // in the recorder's type registry
	t      reflect.Type
	direct bool // the interface's data word is the value itself (pointer-shaped types)
	topErr bool // implements error: a top-level message renders as its Error text
	bytes  bool // []byte: rendered as text or hex, even when nil
	// elem is, for a pointer type, its element's encoder; enc, for an
	// indirect type, the type's own encoder. Both nil until the first
	// rendering (types of loops that record no payloads are never compiled).
	elem     *encoder
	enc      *encoder
	ptrErr   bool // pointer type that implements error
	compiled bool
}

// enc renders the value at p with e at depth, after the checks every value
// goes through: the bound, then the depth.
func (r *renderer) enc(e *encoder, p unsafe.Pointer, depth int) bool {
	if r.full() {
		return false
	}
	if depth > maxDepth {
		r.buf = append(r.buf, `"…"`...)
		return !r.full()
	}
	return e.fn(r, p, depth)
}

// isDirect reports whether values of t are stored in an interface's data
// word itself rather than pointed to by it: boxing t's zero value leaves a
// nil data word only then.
func isDirect(t reflect.Type) bool {
	z := reflect.Zero(t).Interface()
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&z))[1] == nil
}

func (r *renderer) compileMsg(mt *msgType) {
	t := mt.t
	mt.direct = isDirect(t)
	mt.topErr = t.Implements(errorType)
	mt.bytes = t == bytesType
	if mt.direct {
		if t.Kind() == reflect.Pointer {
			mt.elem = r.compile(t.Elem())
			mt.ptrErr = mt.topErr
		}
	} else {
		mt.enc = r.compile(t)
	}
	mt.compiled = true
}

// anyValue renders v, whose type is mt, at depth (not the top level: no
// top-level special cases).
func (r *renderer) anyValue(v any, mt *msgType, depth int) bool {
	if r.full() {
		return false
	}
	if depth > maxDepth {
		r.buf = append(r.buf, `"…"`...)
		return !r.full()
	}
	if !mt.compiled {
		r.compileMsg(mt)
	}
	word := (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1]
	if !mt.direct {
		return mt.enc.fn(r, word, depth)
	}
	if mt.elem == nil { // a map, chan, func or pointer-shaped struct or array
		return r.value(reflect.ValueOf(v), depth)
	}
	if word == nil {
		r.buf = append(r.buf, "null"...)
		return true
	}
	if mt.ptrErr {
		if s, ok := safeError(v.(error)); ok {
			r.str(s)
			return !r.full()
		}
	}
	return r.enc(mt.elem, word, depth+1)
}

// compile returns the encoder of values of type t.
func (r *renderer) compile(t reflect.Type) *encoder {
	if e, ok := r.encs[t]; ok {
		return e
	}
	if len(r.encs) > 4096 { // bound the cache on programs that make types at run time
		clear(r.encs)
	}
	// Until it is built (and if building it fails), the reflection walker
	// renders t.
	e := &encoder{fn: func(r *renderer, p unsafe.Pointer, depth int) bool {
		return r.value(reflect.NewAt(t, p).Elem(), depth)
	}}
	r.encs[t] = e
	e.fn = r.build(t)
	return e
}

var bytesType = reflect.TypeFor[[]byte]()

func (r *renderer) build(t reflect.Type) encFn {
	switch t {
	case refType:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.str((*actor.Ref)(p).String())
			return !r.full()
		}
	case timeType:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = append(r.buf, '"')
			r.buf = (*time.Time)(p).AppendFormat(r.buf, time.RFC3339Nano)
			r.buf = append(r.buf, '"')
			return !r.full()
		}
	case durationType:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.str((*time.Duration)(p).String())
			return !r.full()
		}
	}
	k := t.Kind()
	if (k == reflect.Struct || k == reflect.Pointer) && t.Implements(errorType) {
		base := r.buildKind(t)
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			if k == reflect.Struct || *(*unsafe.Pointer)(p) != nil {
				if s, ok := safeError(reflect.NewAt(t, p).Elem().Interface().(error)); ok {
					r.str(s)
					return !r.full()
				}
			}
			return base(r, p, depth)
		}
	}
	return r.buildKind(t)
}

func (r *renderer) buildKind(t reflect.Type) encFn {
	switch t.Kind() {
	case reflect.Bool:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendBool(r.buf, *(*bool)(p))
			return !r.full()
		}
	case reflect.Int:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendInt(r.buf, int64(*(*int)(p)), 10)
			return !r.full()
		}
	case reflect.Int8:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendInt(r.buf, int64(*(*int8)(p)), 10)
			return !r.full()
		}
	case reflect.Int16:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendInt(r.buf, int64(*(*int16)(p)), 10)
			return !r.full()
		}
	case reflect.Int32:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendInt(r.buf, int64(*(*int32)(p)), 10)
			return !r.full()
		}
	case reflect.Int64:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendInt(r.buf, *(*int64)(p), 10)
			return !r.full()
		}
	case reflect.Uint, reflect.Uintptr:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendUint(r.buf, uint64(*(*uintptr)(p)), 10)
			return !r.full()
		}
	case reflect.Uint8:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendUint(r.buf, uint64(*(*uint8)(p)), 10)
			return !r.full()
		}
	case reflect.Uint16:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendUint(r.buf, uint64(*(*uint16)(p)), 10)
			return !r.full()
		}
	case reflect.Uint32:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendUint(r.buf, uint64(*(*uint32)(p)), 10)
			return !r.full()
		}
	case reflect.Uint64:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.buf = strconv.AppendUint(r.buf, *(*uint64)(p), 10)
			return !r.full()
		}
	case reflect.Float32:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.float(float64(*(*float32)(p)))
			return !r.full()
		}
	case reflect.Float64:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.float(*(*float64)(p))
			return !r.full()
		}
	case reflect.String:
		return func(r *renderer, p unsafe.Pointer, _ int) bool {
			r.str(*(*string)(p))
			return !r.full()
		}
	case reflect.Pointer:
		elem := r.compile(t.Elem())
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			q := *(*unsafe.Pointer)(p)
			if q == nil {
				r.buf = append(r.buf, "null"...)
				return true
			}
			return r.enc(elem, q, depth+1)
		}
	case reflect.Struct:
		type field struct {
			off uintptr
			key []byte
			enc *encoder
		}
		var fields []field
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			k := strconv.AppendQuote(nil, f.Name)
			fields = append(fields, field{off: f.Offset, key: append(k, ':'), enc: r.compile(f.Type)})
		}
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			r.buf = append(r.buf, '{')
			for i := range fields {
				f := &fields[i]
				if i > 0 {
					r.buf = append(r.buf, ',')
				}
				r.buf = append(r.buf, f.key...)
				if !r.enc(f.enc, unsafe.Add(p, f.off), depth+1) {
					return false
				}
			}
			r.buf = append(r.buf, '}')
			return !r.full()
		}
	case reflect.Slice:
		et := t.Elem()
		if et.Kind() == reflect.Uint8 {
			return func(r *renderer, p unsafe.Pointer, _ int) bool {
				b := *(*[]byte)(p)
				if b == nil {
					r.buf = append(r.buf, "null"...)
					return true
				}
				r.bytes(b)
				return !r.full()
			}
		}
		elem, size := r.compile(et), et.Size()
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			data, n := *(*unsafe.Pointer)(p), (*[3]int)(p)[1]
			if data == nil {
				r.buf = append(r.buf, "null"...)
				return true
			}
			return r.list(elem, data, size, n, depth)
		}
	case reflect.Array:
		et := t.Elem()
		elem, size, n := r.compile(et), et.Size(), t.Len()
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			return r.list(elem, p, size, n, depth)
		}
	case reflect.Interface:
		isErr := t.Implements(errorType)
		empty := t.NumMethod() == 0
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			var v any
			if empty {
				v = *(*any)(p)
			} else {
				v = reflect.NewAt(t, p).Elem().Interface() // an iface to an eface: no allocation
			}
			if v == nil {
				r.buf = append(r.buf, "null"...)
				return true
			}
			if isErr {
				if s, ok := safeError(v.(error)); ok {
					r.str(s)
					return !r.full()
				}
			}
			return r.anyValue(v, r.msgType(typeWord(v), v), depth+1)
		}
	case reflect.Complex64, reflect.Complex128:
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			return r.value(reflect.NewAt(t, p).Elem(), depth)
		}
	default: // map (rendered by reflection), chan, func, unsafe pointer
		return func(r *renderer, p unsafe.Pointer, depth int) bool {
			return r.value(reflect.NewAt(t, p).Elem(), depth)
		}
	}
}

// list renders n elements of size bytes from data.
func (r *renderer) list(elem *encoder, data unsafe.Pointer, size uintptr, n, depth int) bool {
	r.buf = append(r.buf, '[')
	for i := range n {
		if i > 0 {
			r.buf = append(r.buf, ',')
		}
		if !r.enc(elem, unsafe.Add(data, uintptr(i)*size), depth+1) {
			return false
		}
	}
	r.buf = append(r.buf, ']')
	return !r.full()
}
