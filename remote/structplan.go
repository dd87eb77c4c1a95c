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
// whose fields are booleans, numbers, strings, byte slices, plain structs
// and slices of plain structs (most message types), a structPlan does the
// same work from offsets computed once, at registration, and writes the
// same bytes msgpack would: a map of the fields' names to their values, in
// declaration order, empty fields left out where the tag says omitempty;
// or, for a struct tagged as_array (a field `_msgpack struct{}
// `msgpack:",as_array"``), an array of every field's value in declaration
// order. Integers take their shortest form (the frame writer's encoder
// uses compact integers).
//
// A plan is made only where it cannot differ from msgpack: every field
// exported or skipped, not embedded, its tag at most a name and omitempty,
// its type one of those kinds, and no type on the way (the struct's own,
// its fields', their elements') implementing one of the interfaces msgpack
// checks before coding by kind: msgpack.CustomEncoder/CustomDecoder,
// msgpack.Marshaler/Unmarshaler, encoding.BinaryMarshaler/Unmarshaler,
// encoding.TextMarshaler/Unmarshaler, on the type or its pointer; nor, on
// an omitempty field, IsZero (which msgpack's omitempty asks). Other
// methods are fine. A coder registered with msgpack.Register for a struct
// type is detected (msgpack then does not inline the type into a struct
// embedding it, which a probe observes) where the type is named; unnamed
// struct types, which cannot be embedded, are refused. A coder
// msgpack.Register'ed for a named non-struct type (the probes below may
// catch an encoder, never a decoder alone), or for any type after
// remote.Register, is not seen: do not use msgpack.Register for the field
// types of payloads; implement the interfaces above, which the plan
// checks for. At
// registration, values with every field set and with every field empty
// are coded both ways and must agree, or no plan is used.
//
// Decoding takes the fast way for what the plan's own encoder writes and
// the other forms msgpack's decoder reads the same way (a struct given as
// a map or as an array of all its fields whatever its tag, nil or an empty
// array for a zero struct, nil for a field's zero value, integers of any
// width); anything else (an unknown or repeated key, an array of another
// length, a float given as an integer, a string as bin, ...) is decoded
// again from the start by msgpack, into a zeroed value, so what a payload
// decodes to never depends on the path. A slice's length is checked
// against the bytes left before its elements are allocated (every element
// takes at least a byte).

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
	planStruct // a plain struct, by value: sub
	planSlice  // a slice of plain structs: sub codes the elements
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
	sub       *structPlan  // planStruct: the field's plan; planSlice: its elements'
	typ       reflect.Type // planSlice: the slice type, to allocate one
}

// structPlan codes one struct type.
type structPlan struct {
	typ     reflect.Type
	fields  []planField
	anyOmit bool
	asArray bool // an array of every field, not a map
}

// sliceHeader is the layout of a slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// emptyData is the data pointer of the empty, non-nil slices decode makes.
var emptyData [0]uint64

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
	typeIsZeroer        = reflect.TypeFor[interface{ IsZero() bool }]()
)

// hasCoder reports whether msgpack codes t (or *t) through one of the
// interfaces its getEncoder and getDecoder check before the type's kind.
func hasCoder(t reflect.Type) bool {
	for _, it := range []reflect.Type{typeCustomEncoder, typeCustomDecoder, typeMarshaler, typeUnmarshaler,
		typeBinaryMarshaler, typeBinaryUnmarsh, typeTextMarshaler, typeTextUnmarshaler} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return true
		}
	}
	return false
}

// newStructPlan returns the plan for t, or nil where msgpack must code it.
func newStructPlan(t reflect.Type) *structPlan {
	if t.Kind() != reflect.Struct || pointerShaped(t) {
		return nil // a pointer-shaped struct is kept in an interface itself: box and dataOf need a pointer
	}
	p := buildPlan(t, map[reflect.Type]bool{})
	if p == nil || !p.agrees() {
		return nil
	}
	return p
}

// buildPlan makes the plan of the struct type t, nil if it has none.
// building holds the types whose plans are being made, to refuse a
// recursive type (a slice of itself).
func buildPlan(t reflect.Type, building map[reflect.Type]bool) *structPlan {
	if t.Kind() != reflect.Struct || t.NumField() > maxPlanFields || hasCoder(t) || building[t] {
		return nil
	}
	building[t] = true
	defer delete(building, t)
	p := &structPlan{typ: t}
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("msgpack")
		if tag == "-" {
			continue
		}
		if f.Name == "_msgpack" {
			switch tag {
			case "": // no options
			case ",as_array", ",asArray":
				p.asArray = true
			default:
				return nil // omitempty for all, or tags msgpack's parser reads in its own way
			}
			continue
		}
		if f.Anonymous {
			return nil // msgpack may inline it
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
		pf := planField{index: i, name: name, key: appendStr(nil, name), off: f.Offset,
			size: f.Type.Size(), omitEmpty: omit}
		if hasCoder(f.Type) || omit && (f.Type.Implements(typeIsZeroer) || reflect.PointerTo(f.Type).Implements(typeIsZeroer)) {
			return nil
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			pf.kind, pf.sub = planStruct, buildPlan(f.Type, building)
			if pf.sub == nil {
				return nil
			}
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			pf.kind, pf.sub, pf.typ = planSlice, buildPlan(f.Type.Elem(), building), f.Type
			if pf.sub == nil {
				return nil
			}
		default:
			var ok bool
			if pf.kind, ok = planKindOf(f.Type); !ok {
				return nil
			}
		}
		p.fields = append(p.fields, pf)
		p.anyOmit = p.anyOmit || omit
	}
	if !p.defaultCoded() {
		return nil
	}
	return p
}

// pointerShaped reports whether Go keeps a value of t in an interface's
// data word itself rather than a pointer to it (a pointer-sized value
// whose only pointer data is that word: a pointer, map, channel or
// function, alone or beside fields of size zero). Asked of the runtime,
// not worked out from t's fields: the zero value's data word is nil
// exactly when it holds the value itself.
func pointerShaped(t reflect.Type) bool {
	z := reflect.Zero(t).Interface()
	return efaceOf(&z).data == nil
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

// planKindOf is how a plan codes a scalar or []byte field of type t
// (false: it cannot). The caller has checked t for coders.
func planKindOf(t reflect.Type) (planKind, bool) {
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
		if t.Elem().Kind() == reflect.Uint8 && t.Elem().NumMethod() == 0 && reflect.PointerTo(t.Elem()).NumMethod() == 0 {
			return planBytes, true
		}
	}
	return 0, false
}

// defaultCoded reports whether msgpack codes p's type with its own struct
// coder, not one registered with msgpack.Register: msgpack inlines an
// embedded struct's fields only then, so a struct embedding the type must
// encode as the map of the type's fields. An unnamed type cannot be
// embedded: it is refused, as is a type reflect.StructOf will not embed.
func (p *structPlan) defaultCoded() (ok bool) {
	if p.typ.Name() == "" {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	w := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "X", Type: p.typ, Anonymous: true}})).Elem()
	p.fill(w.Field(0), 1)
	var b bufWriter
	enc := msgpack.NewEncoder(&b)
	enc.UseCompactInts(true)
	if enc.EncodeValue(w) != nil {
		return false
	}
	asMap := *p
	asMap.asArray = false
	return string(b.b) == string(asMap.append(nil, w.Field(0).Addr().UnsafePointer()))
}

// fill sets every field of the struct v (addressable, of p's type) to a
// value that is not empty, salt making them differ; a slice gets two
// elements, one filled, one zero.
func (p *structPlan) fill(v reflect.Value, salt int) {
	for i, f := range p.fields {
		fv := v.Field(f.index)
		switch f.kind {
		case planBool:
			fv.SetBool(true)
		case planInt:
			fv.SetInt(-int64(i+salt) - 100)
		case planUint:
			fv.SetUint(uint64(i+salt) + 200)
		case planFloat32, planFloat64:
			fv.SetFloat(float64(i+salt) + 0.5)
		case planString:
			fv.SetString(strings.Repeat("s", 40+i+salt))
		case planBytes:
			fv.SetBytes([]byte{byte(i + salt), 1, 2})
		case planStruct:
			f.sub.fill(fv, salt+i+1)
		case planSlice:
			fv.Set(reflect.MakeSlice(f.typ, 2, 2))
			f.sub.fill(fv.Index(0), salt+i+1)
		}
	}
}

// agrees checks the plan against msgpack on two values of its type: every
// field set, and every field empty.
func (p *structPlan) agrees() bool {
	full := reflect.New(p.typ)
	p.fill(full.Elem(), 0)
	for _, v := range []reflect.Value{full, reflect.New(p.typ)} {
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
		back := reflect.New(p.typ)
		if !p.decode(mine, back.UnsafePointer()) || !reflect.DeepEqual(back.Elem().Interface(), v.Elem().Interface()) {
			return false
		}
		viaMsgpack := reflect.New(p.typ)
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

// empty reports whether the field at v is empty as msgpack's omitempty
// sees it: a string or slice of length 0, false, 0, a struct whose fields
// are all left out.
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
	case planStruct:
		return f.sub.kept(p) == 0
	default: // planBytes, planSlice
		return (*sliceHeader)(p).len == 0
	}
}

// kept is how many fields of the struct at v a map holds: those not left
// out by omitempty.
func (p *structPlan) kept(v unsafe.Pointer) int {
	n := len(p.fields)
	if p.anyOmit {
		for i := range p.fields {
			if f := &p.fields[i]; f.omitEmpty && f.empty(v) {
				n--
			}
		}
	}
	return n
}

// append appends the struct at v as msgpack would encode it.
func (p *structPlan) append(b []byte, v unsafe.Pointer) []byte {
	if p.asArray {
		b = appendArrayLen(b, len(p.fields))
		for i := range p.fields {
			b = p.fields[i].append(b, v)
		}
		return b
	}
	n := p.kept(v)
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
		b = f.append(b, v)
	}
	return b
}

// appendArrayLen appends an array header for n elements.
func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// append appends the value of the field f of the struct at v.
func (f *planField) append(b []byte, v unsafe.Pointer) []byte {
	fp := unsafe.Add(v, f.off)
	switch f.kind {
	case planBool:
		if *(*bool)(fp) {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case planInt:
		return appendInt(b, loadInt(fp, f.size))
	case planUint:
		return appendUint(b, loadUint(fp, f.size))
	case planFloat32:
		return binary.BigEndian.AppendUint32(append(b, 0xca), quiet32(math.Float32bits(*(*float32)(fp))))
	case planFloat64:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(*(*float64)(fp)))
	case planString:
		return appendStr(b, *(*string)(fp))
	case planBytes:
		if bs := *(*[]byte)(fp); bs != nil {
			return appendBin(b, bs)
		}
		return append(b, 0xc0)
	case planStruct:
		return f.sub.append(b, fp)
	default: // planSlice
		s := (*sliceHeader)(fp)
		if s.data == nil {
			return append(b, 0xc0)
		}
		b = appendArrayLen(b, s.len)
		size := f.sub.typ.Size()
		for k := range s.len {
			b = f.sub.append(b, unsafe.Add(s.data, uintptr(k)*size))
		}
		return b
	}
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
	i, ok := p.decodeAt(b, 0, v)
	return ok && i == len(b)
}

// decodeAt decodes the struct at b[i:] into the zero struct at v, as a map
// of its fields' names or an array of all its fields (msgpack's decoder
// reads both, whatever the struct's tag), and returns where it ends.
func (p *structPlan) decodeAt(b []byte, i int, v unsafe.Pointer) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	var n int
	switch c := b[i]; {
	case c == 0xc0: // nil: the zero struct
		return i + 1, true
	case c >= 0x80 && c <= 0x8f:
		return p.decodeMap(b, i+1, int(c&0x0f), v)
	case c == 0xde && len(b)-i >= 3:
		return p.decodeMap(b, i+3, int(b[i+1])<<8|int(b[i+2]), v)
	case c >= 0x90 && c <= 0x9f:
		n, i = int(c&0x0f), i+1
	case c == 0xdc && len(b)-i >= 3:
		n, i = int(b[i+1])<<8|int(b[i+2]), i+3
	default:
		return i, false
	}
	if n == 0 {
		return i, true // msgpack: an empty array is the zero struct
	}
	if n != len(p.fields) {
		return i, false // msgpack refuses it
	}
	for k := range p.fields {
		var ok bool
		if i, ok = p.fields[k].decode(b, i, v); !ok {
			return i, false
		}
	}
	return i, true
}

// decodeMap decodes n keys and values at b[i:] into the struct at v.
func (p *structPlan) decodeMap(b []byte, i, n int, v unsafe.Pointer) (int, bool) {
	var seen uint64
	next := 0 // the field expected next: keys usually come in the plan's order
	for range n {
		kl, ks, ok := planLen(b, i, true)
		if !ok || kl < 0 {
			return i, false
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
			return i, false // unknown (msgpack skips it) or repeated (msgpack decodes into what is there)
		}
		seen |= 1 << fi
		next = fi + 1
		if i, ok = p.fields[fi].decode(b, ks+kl, v); !ok {
			return i, false
		}
	}
	return i, true
}

// decode decodes the value at b[i:] into the field f, zero, of the struct
// at v, and returns where it ends.
func (f *planField) decode(b []byte, i int, v unsafe.Pointer) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	fp := unsafe.Add(v, f.off)
	switch f.kind {
	case planBool:
		switch b[i] {
		case 0xc0, 0xc2:
			*(*bool)(fp) = false
		case 0xc3:
			*(*bool)(fp) = true
		default:
			return i, false
		}
		return i + 1, true
	case planInt, planUint:
		x, next, ok := planInteger(b, i)
		if !ok {
			return i, false
		}
		storeInt(fp, f.size, x)
		return next, true
	case planFloat32:
		if b[i] != 0xca || len(b)-i < 5 {
			return i, false
		}
		*(*float32)(fp) = math.Float32frombits(quiet32(binary.BigEndian.Uint32(b[i+1:])))
		return i + 5, true
	case planFloat64:
		switch {
		case b[i] == 0xcb && len(b)-i >= 9:
			*(*float64)(fp) = math.Float64frombits(binary.BigEndian.Uint64(b[i+1:]))
			return i + 9, true
		case b[i] == 0xca && len(b)-i >= 5:
			*(*float64)(fp) = float64(math.Float32frombits(binary.BigEndian.Uint32(b[i+1:])))
			return i + 5, true
		}
		return i, false
	case planString:
		l, s, ok := planLen(b, i, true)
		if !ok {
			return i, false
		}
		if l > 0 {
			*(*string)(fp) = string(b[s : s+l])
			return s + l, true
		}
		*(*string)(fp) = ""
		return s, true
	case planBytes:
		l, s, ok := planLen(b, i, false)
		if !ok {
			return i, false
		}
		if l < 0 {
			*(*[]byte)(fp) = nil
			return s, true
		}
		bs := make([]byte, l) // msgpack's decoder: a new slice, empty but not nil for length 0
		copy(bs, b[s:])
		*(*[]byte)(fp) = bs
		return s + l, true
	case planStruct:
		return f.sub.decodeAt(b, i, fp)
	default: // planSlice
		return f.decodeSlice(b, i, fp)
	}
}

// decodeSlice decodes the array at b[i:] into the nil slice at fp. Its
// length is checked against the bytes left before anything is allocated:
// every element takes at least one.
func (f *planField) decodeSlice(b []byte, i int, fp unsafe.Pointer) (int, bool) {
	var n int
	switch c := b[i]; {
	case c == 0xc0:
		return i + 1, true // nil
	case c >= 0x90 && c <= 0x9f:
		n, i = int(c&0x0f), i+1
	case c == 0xdc && len(b)-i >= 3:
		n, i = int(b[i+1])<<8|int(b[i+2]), i+3
	case c == 0xdd && len(b)-i >= 5:
		n, i = int(binary.BigEndian.Uint32(b[i+1:])), i+5
	default:
		return i, false
	}
	if n < 0 || n > len(b)-i { // n < 0: a 32-bit length wrapped on a 32-bit machine
		return i, false
	}
	s := (*sliceHeader)(fp)
	if n == 0 {
		*s = sliceHeader{data: unsafe.Pointer(&emptyData)} // msgpack: empty, not nil
		return i, true
	}
	sv := reflect.NewAt(f.typ, fp).Elem() // the field itself: Grow allocates into it, with no Value of its own on the heap
	sv.Grow(n)
	sv.SetLen(n)
	data := s.data
	size := f.sub.typ.Size()
	for k := range n {
		var ok bool
		if i, ok = f.sub.decodeAt(b, i, unsafe.Add(data, uintptr(k)*size)); !ok {
			return i, false
		}
	}
	return i, true
}
