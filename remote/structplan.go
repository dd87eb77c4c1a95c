package remote

import (
	"encoding"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// Plain struct payloads without reflection.
//
// msgpack codes a struct by reflection: per value a lookup of the type's
// coder in a concurrent map, then a reflect.Value per field. For a struct
// whose fields are all booleans, numbers, strings and byte slices (most
// message types), a structPlan does the same work from offsets computed
// once, at registration, and writes the same bytes msgpack would: a map of
// the fields' names to their values, in declaration order, integers in
// their shortest form (the frame writer's encoder uses compact integers),
// empty fields left out where the tag says omitempty.
//
// (A coder registered with msgpack.Register for the struct type itself
// after remote.Register is not seen by the plan: register such coders
// first, or implement msgpack.CustomEncoder, which the plan checks for.)
//
// A plan is made only where it cannot differ from msgpack: every field
// exported, not embedded, its tag at most a name and omitempty, its type
// one of those kinds with no methods at all (so no custom coder, marshaler
// or IsZero can apply), and the struct itself implementing none of
// msgpack's or encoding's coder interfaces. At registration, values with
// every field set and with every field empty are coded both ways and must
// agree, or no plan is used. Decoding takes the fast way only for what the
// plan's own encoder writes and a few equivalent forms (a field's value
// given as nil, integers of any width); anything else (an unknown or
// repeated key, a float given as an integer, a string as bin, ...) is
// decoded again from the start by msgpack, into a zeroed value, so what a
// payload decodes to never depends on the path.

// planKind is how a plan codes one field.
type planKind uint8

const (
	planBool planKind = iota
	planInt
	planUint
	planFloat32
	planFloat64
	planString
	planBytes
)

// planField is one field of a structPlan.
type planField struct {
	index     int // in the struct's fields
	name      string
	key       []byte // the field's name as msgpack writes it
	off       uintptr
	kind      planKind
	size      uintptr // of an integer field
	omitEmpty bool
}

// structPlan codes one struct type.
type structPlan struct {
	fields  []planField
	anyOmit bool
}

// maxPlanFields bounds the fields a plan takes (decode tracks them in a
// 64-bit set).
const maxPlanFields = 64

var (
	typeCustomEncoder   = reflect.TypeFor[msgpack.CustomEncoder]()
	typeCustomDecoder   = reflect.TypeFor[msgpack.CustomDecoder]()
	typeMarshaler       = reflect.TypeFor[msgpack.Marshaler]()
	typeUnmarshaler     = reflect.TypeFor[msgpack.Unmarshaler]()
	typeBinaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	typeBinaryUnmarsh   = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	typeTextMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	typeTextUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// newStructPlan returns the plan for t, or nil where msgpack must code it.
func newStructPlan(t reflect.Type) *structPlan {
	if t.Kind() != reflect.Struct || t.NumField() > maxPlanFields || pointerShaped(t) {
		return nil // a pointer-shaped struct is kept in an interface itself: box and dataOf need a pointer
	}
	for _, it := range []reflect.Type{typeCustomEncoder, typeCustomDecoder, typeMarshaler, typeUnmarshaler,
		typeBinaryMarshaler, typeBinaryUnmarsh, typeTextMarshaler, typeTextUnmarshaler} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return nil
		}
	}
	p := &structPlan{}
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("msgpack")
		if tag == "-" {
			continue
		}
		if f.Name == "_msgpack" || f.Anonymous {
			return nil // struct options (as_array, omitempty for all) or inlining
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			return nil // "-," and the like: leave such tags to msgpack's parser
		}
		omit := false
		switch opts {
		case "":
		case "omitempty":
			omit = true
		default:
			return nil
		}
		if !hasTag || name == "" {
			name = f.Name
		}
		if !plainName(name) || seen[name] {
			return nil
		}
		seen[name] = true
		kind, ok := planKindOf(f.Type)
		if !ok {
			return nil
		}
		p.fields = append(p.fields, planField{index: i, name: name, key: appendStr(nil, name), off: f.Offset,
			kind: kind, size: f.Type.Size(), omitEmpty: omit})
		p.anyOmit = p.anyOmit || omit
	}
	if !p.agrees(t) {
		return nil
	}
	return p
}

// pointerShaped reports whether Go keeps a value of t in an interface's
// data word itself rather than a pointer to it: pointers, maps, channels,
// functions, and structs and arrays of exactly one such element (a struct
// whose one field is unexported or skipped is one too).
func pointerShaped(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Struct:
		return t.NumField() == 1 && pointerShaped(t.Field(0).Type)
	case reflect.Array:
		return t.Len() == 1 && pointerShaped(t.Elem())
	}
	return false
}

// plainName reports whether a tag's name is one msgpack's tag parser reads
// as it is written (no quotes, escapes or separators).
func plainName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '\'' || r == ',' || r == ':' || r == '\\' || r >= 0x7f {
			return false
		}
	}
	return s != ""
}

// planKindOf is how a plan codes a field of type t (false: it cannot).
func planKindOf(t reflect.Type) (planKind, bool) {
	if t.NumMethod() > 0 || reflect.PointerTo(t).NumMethod() > 0 {
		return 0, false
	}
	switch t.Kind() {
	case reflect.Bool:
		return planBool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return planInt, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return planUint, true
	case reflect.Float32:
		return planFloat32, true
	case reflect.Float64:
		return planFloat64, true
	case reflect.String:
		return planString, true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Elem().NumMethod() == 0 {
			return planBytes, true
		}
	}
	return 0, false
}

// agrees checks the plan against msgpack on two values of t: every field
// set, and every field empty.
func (p *structPlan) agrees(t reflect.Type) bool {
	full := reflect.New(t)
	for i, f := range p.fields {
		v := full.Elem().Field(f.index)
		switch f.kind {
		case planBool:
			v.SetBool(true)
		case planInt:
			v.SetInt(-int64(i) - 100)
		case planUint:
			v.SetUint(uint64(i) + 200)
		case planFloat32, planFloat64:
			v.SetFloat(float64(i) + 0.5)
		case planString:
			v.SetString(strings.Repeat("s", 40+i))
		case planBytes:
			v.SetBytes([]byte{byte(i), 1, 2})
		}
	}
	for _, v := range []reflect.Value{full, reflect.New(t)} {
		var w bufWriter
		enc := msgpack.NewEncoder(&w)
		enc.UseCompactInts(true)
		if enc.EncodeValue(v.Elem()) != nil {
			return false
		}
		mine := p.append(nil, v.UnsafePointer())
		if string(mine) != string(w.b) {
			return false
		}
		back := reflect.New(t)
		if !p.decode(mine, back.UnsafePointer()) || !reflect.DeepEqual(back.Elem().Interface(), v.Elem().Interface()) {
			return false
		}
		viaMsgpack := reflect.New(t)
		if msgpack.Unmarshal(mine, viaMsgpack.Interface()) != nil ||
			!reflect.DeepEqual(viaMsgpack.Elem().Interface(), back.Elem().Interface()) {
			return false
		}
	}
	return true
}

// dataOf is the data word of the interface at v: for a planned struct, a
// pointer to the value (such a struct is never kept in the word itself).
func dataOf(v *any) unsafe.Pointer { return efaceOf(v).data }

// empty reports whether the field at v is its type's zero (msgpack's
// omitempty: a string or slice of length 0, false, 0).
func (f *planField) empty(v unsafe.Pointer) bool {
	p := unsafe.Add(v, f.off)
	switch f.kind {
	case planBool:
		return !*(*bool)(p)
	case planInt:
		return loadInt(p, f.size) == 0
	case planUint:
		return loadUint(p, f.size) == 0
	case planFloat32:
		return *(*float32)(p) == 0
	case planFloat64:
		return *(*float64)(p) == 0
	case planString:
		return len(*(*string)(p)) == 0
	default:
		return len(*(*[]byte)(p)) == 0
	}
}

// append appends the struct at v as msgpack would encode it.
func (p *structPlan) append(b []byte, v unsafe.Pointer) []byte {
	n := len(p.fields)
	if p.anyOmit {
		for i := range p.fields {
			if f := &p.fields[i]; f.omitEmpty && f.empty(v) {
				n--
			}
		}
	}
	switch {
	case n < 16:
		b = append(b, 0x80|byte(n))
	default: // maxPlanFields < 1<<16
		b = append(b, 0xde, byte(n>>8), byte(n))
	}
	for i := range p.fields {
		f := &p.fields[i]
		if f.omitEmpty && f.empty(v) {
			continue
		}
		b = append(b, f.key...)
		fp := unsafe.Add(v, f.off)
		switch f.kind {
		case planBool:
			if *(*bool)(fp) {
				b = append(b, 0xc3)
			} else {
				b = append(b, 0xc2)
			}
		case planInt:
			b = appendInt(b, loadInt(fp, f.size))
		case planUint:
			b = appendUint(b, loadUint(fp, f.size))
		case planFloat32:
			b = binary.BigEndian.AppendUint32(append(b, 0xca), quiet32(math.Float32bits(*(*float32)(fp))))
		case planFloat64:
			b = binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(*(*float64)(fp)))
		case planString:
			b = appendStr(b, *(*string)(fp))
		case planBytes:
			if bs := *(*[]byte)(fp); bs == nil {
				b = append(b, 0xc0)
			} else {
				b = appendBin(b, bs)
			}
		}
	}
	return b
}

// quiet32 sets the quiet bit of a float32 NaN's bits, as msgpack's coder
// does by passing float32 values through float64 (reflect's Float and
// SetFloat): a signalling NaN comes out quiet.
func quiet32(bits uint32) uint32 {
	if bits&0x7f800000 == 0x7f800000 && bits&0x007fffff != 0 {
		bits |= 0x00400000
	}
	return bits
}

// appendInt appends v as msgpack's compact signed integer.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func loadInt(p unsafe.Pointer, size uintptr) int64 {
	switch size {
	case 1:
		return int64(*(*int8)(p))
	case 2:
		return int64(*(*int16)(p))
	case 4:
		return int64(*(*int32)(p))
	}
	return *(*int64)(p)
}

func loadUint(p unsafe.Pointer, size uintptr) uint64 {
	switch size {
	case 1:
		return uint64(*(*uint8)(p))
	case 2:
		return uint64(*(*uint16)(p))
	case 4:
		return uint64(*(*uint32)(p))
	}
	return *(*uint64)(p)
}

// storeInt stores v truncated to size bytes, as reflect's SetInt and
// SetUint do (what msgpack's decoder does with a value too wide).
func storeInt(p unsafe.Pointer, size uintptr, v uint64) {
	switch size {
	case 1:
		*(*uint8)(p) = uint8(v)
	case 2:
		*(*uint16)(p) = uint16(v)
	case 4:
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
}

// planInteger reads an integer at b[i:] as msgpack's decoder reads one
// into an integer field (nil is 0; every width; a signed encoding into an
// unsigned field converts as Go does), returning its bits and the position
// after it.
func planInteger(b []byte, i int) (uint64, int, bool) {
	if i >= len(b) {
		return 0, i, false
	}
	c := b[i]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return uint64(int64(int8(c))), i + 1, true
	case c == 0xc0:
		return 0, i + 1, true
	}
	var w int
	switch c {
	case 0xcc, 0xd0:
		w = 1
	case 0xcd, 0xd1:
		w = 2
	case 0xce, 0xd2:
		w = 4
	case 0xcf, 0xd3:
		w = 8
	default:
		return 0, i, false
	}
	if len(b)-i-1 < w {
		return 0, i, false
	}
	var v uint64
	for _, x := range b[i+1 : i+1+w] {
		v = v<<8 | uint64(x)
	}
	if c >= 0xd0 { // signed: extend
		shift := 64 - 8*w
		v = uint64(int64(v<<shift) >> shift)
	}
	return v, i + 1 + w, true
}

// planLen reads a str (str: true) or bin header at b[i:]: the length, the
// position of the bytes, and -1 for nil.
func planLen(b []byte, i int, str bool) (int, int, bool) {
	if i >= len(b) {
		return 0, i, false
	}
	c := b[i]
	if c == 0xc0 {
		return -1, i + 1, true
	}
	var w int
	switch {
	case str && c >= 0xa0 && c <= 0xbf:
		n := int(c & 0x1f)
		return n, i + 1, n <= len(b)-i-1
	case str && c >= 0xd9 && c <= 0xdb:
		w = 1 << (c - 0xd9)
	case !str && c >= 0xc4 && c <= 0xc6:
		w = 1 << (c - 0xc4)
	default:
		return 0, i, false
	}
	if len(b)-i-1 < w {
		return 0, i, false
	}
	n := 0
	for _, x := range b[i+1 : i+1+w] {
		n = n<<8 | int(x)
	}
	start := i + 1 + w
	if n < 0 || n > len(b)-start { // n < 0: a 32-bit length wrapped on a 32-bit machine
		return 0, i, false
	}
	return n, start, true
}

// decode decodes b, all of it, into the zero struct at v. False: b is not
// in a form the plan reads (v is then partly written: zero it before
// anything else decodes into it).
func (p *structPlan) decode(b []byte, v unsafe.Pointer) bool {
	if len(b) == 0 {
		return false
	}
	var n, i int
	switch c := b[0]; {
	case c >= 0x80 && c <= 0x8f:
		n, i = int(c&0x0f), 1
	case c == 0xde && len(b) >= 3:
		n, i = int(b[1])<<8|int(b[2]), 3
	default:
		return false
	}
	var seen uint64
	next := 0 // the field expected next: keys usually come in the plan's order
	for range n {
		kl, ks, ok := planLen(b, i, true)
		if !ok || kl < 0 {
			return false
		}
		key := b[ks : ks+kl]
		fi := -1
		for k := range p.fields {
			j := (next + k) % len(p.fields)
			if p.fields[j].name == string(key) {
				fi = j
				break
			}
		}
		if fi < 0 || seen&(1<<fi) != 0 {
			return false // unknown (msgpack skips it) or repeated (msgpack decodes into what is there)
		}
		seen |= 1 << fi
		next = fi + 1
		f := &p.fields[fi]
		fp := unsafe.Add(v, f.off)
		i = ks + kl
		if i >= len(b) {
			return false
		}
		switch f.kind {
		case planBool:
			switch b[i] {
			case 0xc0, 0xc2:
				*(*bool)(fp) = false
			case 0xc3:
				*(*bool)(fp) = true
			default:
				return false
			}
			i++
		case planInt, planUint:
			x, next, ok := planInteger(b, i)
			if !ok {
				return false
			}
			storeInt(fp, f.size, x)
			i = next
		case planFloat32:
			if b[i] != 0xca || len(b)-i < 5 {
				return false
			}
			*(*float32)(fp) = math.Float32frombits(quiet32(binary.BigEndian.Uint32(b[i+1:])))
			i += 5
		case planFloat64:
			switch {
			case b[i] == 0xcb && len(b)-i >= 9:
				*(*float64)(fp) = math.Float64frombits(binary.BigEndian.Uint64(b[i+1:]))
				i += 9
			case b[i] == 0xca && len(b)-i >= 5:
				*(*float64)(fp) = float64(math.Float32frombits(binary.BigEndian.Uint32(b[i+1:])))
				i += 5
			default:
				return false
			}
		case planString:
			l, s, ok := planLen(b, i, true)
			if !ok {
				return false
			}
			if l > 0 {
				*(*string)(fp) = string(b[s : s+l])
				i = s + l
			} else {
				*(*string)(fp) = ""
				i = s
			}
		case planBytes:
			l, s, ok := planLen(b, i, false)
			if !ok {
				return false
			}
			if l < 0 {
				*(*[]byte)(fp) = nil
				i = s
			} else {
				bs := make([]byte, l) // msgpack's decoder: a new slice, empty but not nil for length 0
				copy(bs, b[s:])
				*(*[]byte)(fp) = bs
				i = s + l
			}
		}
	}
	return i == len(b)
}
