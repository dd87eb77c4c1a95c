package debug

import (
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/actord/actord/actor"
)

// PayloadBytes bounds the rendering of a message payload kept in the ring.
const PayloadBytes = 256

// renderer writes a bounded JSON rendering of a message. One per loop, used
// only by that loop's goroutine: its buffer and type caches need no lock.
//
// Why JSON written by hand and not the first bytes of the msgpack encoding:
// the remote layer registers msgpack coders for actor.Ref that only work
// inside a node connection, so a message holding a Ref would not encode at
// all; a hand-written walker renders Refs as <loop.slot.gen>, errors by their
// text and times as RFC 3339, stops as soon as the bound is reached (a huge
// or cyclic message costs no more than a small one), and its output needs no
// second decoding step on dump. Each message type is compiled once per loop
// into an encoder (compile.go); the reflection walker (value) renders what
// the compiled encoders leave to it (maps, mostly).
type renderer struct {
	limit int // the bound of a rendering: PayloadBytes for the ring
	buf   []byte
	types map[reflect.Type]*typeInfo // the reflection walker's
	encs  map[reflect.Type]*encoder  // compiled encoders
	msgs  map[uintptr]*msgType       // dynamic types seen, by type word
	lastW uintptr                    // the type word of the last msgType looked up
	lastT *msgType
}

func newRenderer() renderer { return newRendererLimit(PayloadBytes) }

// newRendererLimit returns a renderer whose renderings are cut at limit
// bytes.
func newRendererLimit(limit int) renderer {
	return renderer{limit: limit, buf: make([]byte, 0, limit+64), types: make(map[reflect.Type]*typeInfo),
		encs: make(map[reflect.Type]*encoder), msgs: make(map[uintptr]*msgType)}
}

type typeInfo struct {
	special int      // one of the sp* constants
	fields  []int    // exported fields of a struct
	keys    [][]byte // their JSON keys, quoted, with the colon
}

const (
	spNone = iota
	spRef
	spTime
	spError
)

const maxDepth = 6

var (
	refType      = reflect.TypeFor[actor.Ref]()
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	errorType    = reflect.TypeFor[error]()
)

// msgType returns what the loop knows of the dynamic type of v, whose type
// word is w (v must not be nil).
func (r *renderer) msgType(w uintptr, v any) *msgType {
	if w == r.lastW {
		return r.lastT
	}
	mt, ok := r.msgs[w]
	if !ok {
		if len(r.msgs) > 4096 { // bound the cache on programs that make types at run time
			clear(r.msgs)
		}
		mt = &msgType{t: reflect.TypeOf(v)}
		r.msgs[w] = mt
	}
	r.lastW, r.lastT = w, mt
	return mt
}

// render returns a JSON rendering of v, whose type is mt (nil for a nil v),
// cut at the renderer's limit (truncated is then true and the text is not valid
// JSON). The slice is reused by the next call.
func (r *renderer) render(v any, mt *msgType) (out []byte, truncated bool) {
	r.buf = r.buf[:0]
	if !r.top(v, mt) {
		return r.cut(), true
	}
	return r.buf, false
}

// cut trims the buffer to the limit on a UTF-8 boundary.
func (r *renderer) cut() []byte {
	b := r.buf
	if len(b) > r.limit {
		b = b[:r.limit]
	}
	for len(b) > 0 && !utf8.Valid(b[max(0, len(b)-3):]) {
		b = b[:len(b)-1]
	}
	return b
}

func (r *renderer) full() bool { return len(r.buf) > r.limit }

// top renders a message: as any value, except that a message that is an
// error renders as its text whatever its kind, and a nil []byte as "".
func (r *renderer) top(v any, mt *msgType) bool {
	if mt == nil {
		r.buf = append(r.buf, "null"...)
		return true
	}
	if !mt.compiled {
		r.compileMsg(mt)
	}
	switch {
	case mt.topErr:
		r.str(v.(error).Error())
		return !r.full()
	case mt.bytes:
		r.bytes(v.([]byte))
		return !r.full()
	}
	return r.anyValue(v, mt, 0)
}

func (r *renderer) info(t reflect.Type) *typeInfo {
	if ti, ok := r.types[t]; ok {
		return ti
	}
	ti := &typeInfo{}
	switch {
	case t == refType:
		ti.special = spRef
	case t == timeType:
		ti.special = spTime
	case t.Implements(errorType):
		ti.special = spError
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			ti.fields = append(ti.fields, i)
			k := strconv.AppendQuote(nil, f.Name)
			ti.keys = append(ti.keys, append(k, ':'))
		}
	}
	if len(r.types) > 4096 { // bound the cache on programs that make types at run time
		clear(r.types)
	}
	r.types[t] = ti
	return ti
}

// value renders v; it returns false once the bound is reached.
func (r *renderer) value(v reflect.Value, depth int) bool {
	if r.full() {
		return false
	}
	if !v.IsValid() {
		r.buf = append(r.buf, "null"...)
		return true
	}
	if depth > maxDepth {
		r.buf = append(r.buf, `"…"`...)
		return !r.full()
	}
	k := v.Kind()
	if k == reflect.Int64 && v.Type() == durationType {
		r.str(time.Duration(v.Int()).String())
		return !r.full()
	}
	if k == reflect.Struct || k == reflect.Pointer || k == reflect.Interface {
		if v.CanInterface() && (k == reflect.Struct || !v.IsNil()) {
			switch r.info(v.Type()).special {
			case spRef:
				r.str(v.Interface().(actor.Ref).String())
				return !r.full()
			case spTime:
				r.buf = append(r.buf, '"')
				r.buf = v.Interface().(time.Time).AppendFormat(r.buf, time.RFC3339Nano)
				r.buf = append(r.buf, '"')
				return !r.full()
			case spError:
				if s, ok := safeError(v.Interface().(error)); ok {
					r.str(s)
					return !r.full()
				}
			}
		}
	}
	switch k {
	case reflect.Bool:
		r.buf = strconv.AppendBool(r.buf, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		r.buf = strconv.AppendInt(r.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		r.buf = strconv.AppendUint(r.buf, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		r.float(v.Float())
	case reflect.Complex64, reflect.Complex128:
		r.str(strconv.FormatComplex(v.Complex(), 'g', -1, 128))
	case reflect.String:
		r.str(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			r.buf = append(r.buf, "null"...)
			return true
		}
		return r.value(v.Elem(), depth+1)
	case reflect.Struct:
		ti := r.info(v.Type())
		r.buf = append(r.buf, '{')
		for i, fi := range ti.fields {
			if i > 0 {
				r.buf = append(r.buf, ',')
			}
			r.buf = append(r.buf, ti.keys[i]...)
			if !r.value(v.Field(fi), depth+1) {
				return false
			}
		}
		r.buf = append(r.buf, '}')
	case reflect.Slice, reflect.Array:
		if k == reflect.Slice && v.IsNil() {
			r.buf = append(r.buf, "null"...)
			return true
		}
		if v.Type().Elem().Kind() == reflect.Uint8 && k == reflect.Slice {
			r.bytes(v.Bytes())
			return !r.full()
		}
		r.buf = append(r.buf, '[')
		for i := range v.Len() {
			if i > 0 {
				r.buf = append(r.buf, ',')
			}
			if !r.value(v.Index(i), depth+1) {
				return false
			}
		}
		r.buf = append(r.buf, ']')
	case reflect.Map:
		if v.IsNil() {
			r.buf = append(r.buf, "null"...)
			return true
		}
		r.buf = append(r.buf, '{')
		it := v.MapRange()
		first := true
		for it.Next() {
			if !first {
				r.buf = append(r.buf, ',')
			}
			first = false
			key := it.Key()
			if key.Kind() == reflect.String {
				r.str(key.String())
			} else {
				// a non-string key is rendered, then quoted as a string
				mark := len(r.buf)
				if !r.value(key, depth+1) {
					return false
				}
				s := string(r.buf[mark:])
				r.buf = r.buf[:mark]
				r.str(s)
			}
			r.buf = append(r.buf, ':')
			if !r.value(it.Value(), depth+1) {
				return false
			}
		}
		r.buf = append(r.buf, '}')
	default: // chan, func, unsafe pointer
		r.str("<" + v.Type().String() + ">")
	}
	return !r.full()
}

func safeError(e error) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return e.Error(), true
}

func (r *renderer) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		r.str(strconv.FormatFloat(f, 'g', -1, 64))
		return
	}
	r.buf = strconv.AppendFloat(r.buf, f, 'g', -1, 64)
}

// bytes renders a byte slice as a JSON string when it is short printable
// UTF-8, else as {"$bytes": n, "hex": "..."} (the hex bounded by the buffer).
func (r *renderer) bytes(b []byte) {
	if utf8.Valid(b) && printable(b) {
		r.str(string(b))
		return
	}
	r.buf = append(r.buf, `{"$bytes":`...)
	r.buf = strconv.AppendInt(r.buf, int64(len(b)), 10)
	r.buf = append(r.buf, `,"hex":"`...)
	const hexd = "0123456789abcdef"
	for _, c := range b {
		if r.full() {
			return
		}
		r.buf = append(r.buf, hexd[c>>4], hexd[c&15])
	}
	r.buf = append(r.buf, `"}`...)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// str appends s as a JSON string, stopping early once the bound is reached.
func (r *renderer) str(s string) {
	if len(s) > r.limit+8 {
		s = s[:r.limit+8]
	}
	r.buf = appendJSONString(r.buf, s)
}

// appendJSONString appends s quoted as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		rn, size := utf8.DecodeRuneInString(s[i:])
		if rn == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
