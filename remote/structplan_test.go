package remote

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// Types a plan must code exactly as msgpack does.
type (
	planKey string // a named type without methods
	planAll struct {
		B   bool
		I   int
		I8  int8
		I16 int16
		I32 int32
		I64 int64
		U   uint
		U8  uint8
		U16 uint16
		U32 uint32
		U64 uint64
		F32 float32
		F64 float64
		S   string
		K   planKey
		Bs  []byte
	}
	planTags struct {
		A       string  `msgpack:"a"`
		B       int     `msgpack:"b,omitempty"`
		C       []byte  `msgpack:",omitempty"`
		D       bool    `msgpack:"-"`
		E       string  `json:"e"` // msgpack reads only its own tag here
		F       float64 `msgpack:"f,omitempty"`
		private int     // skipped, as msgpack does
		G       uint16  `msgpack:""`
		H       string  `msgpack:"h,omitempty"`
		I       bool    `msgpack:",omitempty"`
		J       int8    `msgpack:",omitempty"`
		K       float32 `msgpack:",omitempty"`
	}
	planEmpty struct{}
	planSmall struct{ N int }
	planMany  struct {
		A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17 int `msgpack:",omitempty"`
	}
)

// Shapes of real messages: as_array structs, nested by value and in
// slices, fields whose types have methods that do not change the coding.
type (
	planStamp struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		N, W     uint64
	}
	planGet struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		K        string
		NoValue  bool
	}
	planEntry struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		TS       planStamp
		V        []byte
		Deleted  bool
	}
	planWrite struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		K        string
		E        planEntry
	}
	planGetMany struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		Gets     []planGet
	}
	planEntries struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		E        []planEntry
	}
	planArr struct { // as_array: tags, skipped and unexported fields, nested map-form structs
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",asArray"`
		I        int8
		//lint:ignore U1000 present to be skipped
		skip int    `msgpack:"-"`
		Skip string `msgpack:"-"`
		S    string `msgpack:"s,omitempty"` // omitempty does not apply to an array
		Bs   []byte
		F    float32
		In   planSmall
		L    []planTags
		//lint:ignore U1000 present to be skipped
		priv bool
	}
	planNested struct { // map form holding every new shape
		A  planSmall
		T  planTags    `msgpack:"t,omitempty"`
		L  []planSmall `msgpack:",omitempty"`
		Ls []planAll
		E  planEmpty `msgpack:",omitempty"`
		X  planArr
		O  planOmits `msgpack:",omitempty"`
		D  time.Duration
		K  planKeyStringer
		G  planGets
	}
	planOmits struct { // empty, for omitempty, when all its fields are
		A int    `msgpack:",omitempty"`
		B string `msgpack:",omitempty"`
	}
	planGets []planGet // a named slice type
)

func (s planStamp) Less(o planStamp) bool { return s.N < o.N || (s.N == o.N && s.W < o.W) }
func (s planStamp) IsZero() bool          { return s.N == 0 && s.W == 0 }

// plannedTypes are the types a plan codes, for the randomized tests.
var plannedTypes = []reflect.Type{reflect.TypeFor[planAll](), reflect.TypeFor[planTags](),
	reflect.TypeFor[planEmpty](), reflect.TypeFor[planSmall](), reflect.TypeFor[planMany](),
	reflect.TypeFor[planStamp](), reflect.TypeFor[planGet](), reflect.TypeFor[planEntry](),
	reflect.TypeFor[planWrite](), reflect.TypeFor[planGetMany](), reflect.TypeFor[planEntries](),
	reflect.TypeFor[planArr](), reflect.TypeFor[planNested](), reflect.TypeFor[planDuration](),
	reflect.TypeFor[planPrivField]()}

// Types that must keep msgpack's own coder.
type (
	planHasCoder    struct{ N int }
	planPtrCoder    struct{ N int }
	planText        struct{ N int }
	planTextIn      struct{ N int }
	planBinary      string
	planInner       struct{ N int }
	planDuration    struct{ D time.Duration } // a field type with methods, none of them a coder
	planKeyStringer string
	planRegistered  struct{ N int }
	planPrivate     struct{ N int } // an unexported method: no coder
	planZeroer      struct{ N int }
	planTree        struct{ Kids []planTree }
	planCoderField  struct{ C planHasCoder }
	planCoderSlice  struct{ C []planPtrCoder }
	planDeepCoder   struct{ W planCoderField }
	planRegField    struct{ R planRegistered }
	planRegSlice    struct{ R []planRegistered }
	planPrivField   struct{ P planPrivate }
	planZeroOmit    struct {
		Z planZeroer `msgpack:",omitempty"`
	}
	planStampOmit struct {
		TS planStamp `msgpack:",omitempty"`
	}
	planCodedList []planSmall // a coder that probe values cannot tell from msgpack's (below)
	planListField struct{ L planCodedList }
	planTextField struct{ T planTextIn }
	planBinField  struct{ B planBinary }
	planAllOmit   struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",omitempty"`
		N        int
	}
	planArrField   struct{ A [2]planSmall }
	planPtrField   struct{ P *planSmall }
	planSliceSlice struct{ S [][]planSmall }
	planUnnamedIn  struct{ In struct{ N int } }
)

func (planHasCoder) EncodeMsgpack(e *msgpack.Encoder) error  { return e.EncodeInt(1) }
func (*planHasCoder) DecodeMsgpack(d *msgpack.Decoder) error { return d.Skip() }
func (*planPtrCoder) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeInt(1) }
func (planText) MarshalText() ([]byte, error)                { return []byte("x"), nil }
func (*planTextIn) UnmarshalText([]byte) error               { return nil }
func (planBinary) MarshalBinary() ([]byte, error)            { return nil, nil }
func (k planKeyStringer) String() string                     { return string(k) }

//lint:ignore U1000 present for its effect on the type
func (planPrivate) private()      {}
func (z planZeroer) IsZero() bool { return z.N == 1 }

// planRegistered's registered coder writes what msgpack would, but its
// decoder refuses N == 7: probe values cannot tell it from msgpack's.
func encodeRegistered(e *msgpack.Encoder, v reflect.Value) error {
	if err := e.EncodeMapLen(1); err != nil {
		return err
	}
	if err := e.EncodeString("N"); err != nil {
		return err
	}
	return e.EncodeInt(v.Field(0).Int())
}

func decodeRegistered(d *msgpack.Decoder, v reflect.Value) error {
	if n, err := d.DecodeMapLen(); err != nil || n != 1 {
		return fmt.Errorf("planRegistered: map of %d: %w", n, err)
	}
	if _, err := d.DecodeString(); err != nil {
		return err
	}
	n, err := d.DecodeInt64()
	if err == nil && n == 7 {
		err = errors.New("planRegistered: 7")
	}
	v.Field(0).SetInt(n)
	return err
}

func init() { msgpack.Register(planRegistered{}, encodeRegistered, decodeRegistered) }

// planCodedList's coder writes what msgpack would, and refuses more than
// two elements.
func (l planCodedList) EncodeMsgpack(e *msgpack.Encoder) error {
	if l == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(l)); err != nil {
		return err
	}
	for _, x := range l {
		if err := e.Encode(x); err != nil {
			return err
		}
	}
	return nil
}

func (l *planCodedList) DecodeMsgpack(d *msgpack.Decoder) error {
	var xs []planSmall
	if err := d.Decode(&xs); err != nil {
		return err
	}
	if len(xs) > 2 {
		return errors.New("planCodedList: more than 2")
	}
	*l = xs
	return nil
}

func TestStructPlanRefusesWhatMsgpackCodesOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
	}{
		{"custom coder", reflect.TypeFor[planHasCoder]()},
		{"custom coder on the pointer", reflect.TypeFor[planPtrCoder]()},
		{"text marshaler", reflect.TypeFor[planText]()},
		{"embedded", reflect.TypeFor[struct{ planInner }]()},
		{"pointer field", reflect.TypeFor[struct{ P *int }]()},
		{"map field", reflect.TypeFor[struct{ M map[string]int }]()},
		{"slice of strings", reflect.TypeFor[struct{ S []string }]()},
		{"alias option", reflect.TypeFor[struct {
			N int `msgpack:"n,alias:m"`
		}]()},
		{"dash with options", reflect.TypeFor[struct {
			N int `msgpack:"-,"`
		}]()},
		{"repeated name", reflect.TypeFor[struct {
			A int `msgpack:"x"`
			B int `msgpack:"x"`
		}]()},
		{"not a struct", reflect.TypeFor[[]int]()},
		{"pointer-shaped, its one field skipped", reflect.TypeFor[struct {
			T *int `msgpack:"-"`
		}]()},
		{"pointer-shaped, its one field unexported", reflect.TypeFor[struct{ ch chan int }]()},
		{"pointer-shaped, nested", reflect.TypeFor[struct{ in struct{ m map[string]int } }]()},
		{"unnamed (msgpack.Register cannot be checked)", reflect.TypeFor[struct{ N int }]()},
		{"nested unnamed", reflect.TypeFor[planUnnamedIn]()},
		{"registered with msgpack.Register", reflect.TypeFor[planRegistered]()},
		{"nested field registered", reflect.TypeFor[planRegField]()},
		{"slice of registered", reflect.TypeFor[planRegSlice]()},
		{"coder on a nested field's type", reflect.TypeFor[planCoderField]()},
		{"pointer coder on a slice's elements", reflect.TypeFor[planCoderSlice]()},
		{"coder two levels down", reflect.TypeFor[planDeepCoder]()},
		{"coder on a slice field's type", reflect.TypeFor[planListField]()},
		{"text unmarshaler on a nested field's pointer", reflect.TypeFor[planTextField]()},
		{"binary marshaler on a string field", reflect.TypeFor[planBinField]()},
		{"IsZero on an omitempty field", reflect.TypeFor[planZeroOmit]()},
		{"IsZero on an omitempty nested as_array field", reflect.TypeFor[planStampOmit]()},
		{"recursive", reflect.TypeFor[planTree]()},
		{"omitempty for all", reflect.TypeFor[planAllOmit]()},
		{"array of structs", reflect.TypeFor[planArrField]()},
		{"pointer to struct", reflect.TypeFor[planPtrField]()},
		{"slice of slices", reflect.TypeFor[planSliceSlice]()},
	} {
		if p := newStructPlan(tc.typ); p != nil {
			t.Errorf("%s (%v): got a plan, want msgpack's coder", tc.name, tc.typ)
		}
	}
	for _, typ := range plannedTypes {
		if newStructPlan(typ) == nil {
			t.Errorf("%v: no plan", typ)
		}
	}
}

// randPlanValue fills a new value of a planned type with random contents,
// edge values often.
func randPlanValue(rng *rand.Rand, typ reflect.Type) reflect.Value {
	v := reflect.New(typ)
	randFill(rng, v.Elem(), 0)
	return v
}

// randFill sets v, settable, to random contents, depth levels down.
func randFill(rng *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() && rng.IntN(4) != 0 { // else zero: omitempty's case
				randFill(rng, f, depth)
			}
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		edges := []int64{-1, -32, -33, math.MinInt8, math.MinInt8 - 1, math.MinInt16, math.MinInt16 - 1,
			math.MinInt32, math.MinInt32 - 1, math.MinInt64, 127, 128, 255, 256, 65535, 65536, math.MaxInt64}
		if rng.IntN(2) == 0 {
			v.SetInt(edges[rng.IntN(len(edges))])
		} else {
			v.SetInt(int64(rng.Uint64()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		edges := []uint64{1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
		if rng.IntN(2) == 0 {
			v.SetUint(edges[rng.IntN(len(edges))])
		} else {
			v.SetUint(rng.Uint64())
		}
	case reflect.Float32, reflect.Float64:
		edges := []float64{math.Copysign(0, -1), math.Inf(1), math.NaN(), 1.5, -3e38}
		switch rng.IntN(3) {
		case 0:
			v.SetFloat(edges[rng.IntN(len(edges))])
		case 1:
			v.SetFloat(rng.NormFloat64() * 1e6)
		default: // NaNs with payloads, signalling ones too (set by bits: SetFloat would quiet them)
			if v.Kind() == reflect.Float32 {
				*(*uint32)(v.Addr().UnsafePointer()) = 0x7f800001 | rng.Uint32()&0x807fffff
			} else {
				*(*uint64)(v.Addr().UnsafePointer()) = 0x7ff0000000000001 | rng.Uint64()&0x800fffffffffffff
			}
		}
	case reflect.String:
		sizes := []int{0, 1, 31, 32, 255, 256, 70000}
		if depth > 0 {
			sizes = sizes[:5]
		}
		v.SetString(string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, sizes[rng.IntN(len(sizes))])))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			sizes := []int{0, 1, 255, 256, 70000}
			if depth > 0 {
				sizes = sizes[:4]
			}
			b := make([]byte, sizes[rng.IntN(len(sizes))])
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			v.SetBytes(b)
			return
		}
		n := []int{0, 1, 2, 3, 16}[rng.IntN(5)]
		if depth > 1 {
			n = min(n, 2)
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for k := range n {
			randFill(rng, s.Index(k), depth+1)
		}
		v.Set(s)
	}
}

// encodeWithMsgpackCompact encodes v as the frame writer's encoder does.
func encodeWithMsgpackCompact(t *testing.T, v reflect.Value) []byte {
	t.Helper()
	var w bufWriter
	enc := msgpack.NewEncoder(&w)
	enc.UseCompactInts(true)
	if err := enc.EncodeValue(v); err != nil {
		t.Fatal(err)
	}
	return w.b
}

// sameValue compares decoded values, floats by their bits (NaNs too),
// nil and empty slices apart, unexported fields too.
func sameValue(a, b reflect.Value) bool {
	ca, cb := reflect.New(a.Type()).Elem(), reflect.New(b.Type()).Elem() // addressable copies, bit for bit
	ca.Set(a)
	cb.Set(b)
	return sameAt(ca, cb)
}

func sameAt(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameAt(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameAt(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Float32:
		return *(*uint32)(unsafe.Pointer(a.UnsafeAddr())) == *(*uint32)(unsafe.Pointer(b.UnsafeAddr()))
	case reflect.Float64:
		return *(*uint64)(unsafe.Pointer(a.UnsafeAddr())) == *(*uint64)(unsafe.Pointer(b.UnsafeAddr()))
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() == b.Uint()
	case reflect.String:
		return a.String() == b.String()
	}
	panic("sameAt: " + a.Type().String())
}

func TestStructPlanMatchesMsgpack(t *testing.T) {
	withPrivate := planTags{A: "a", private: 7} // an unexported field is not sent
	if got, want := newStructPlan(reflect.TypeFor[planTags]()).append(nil, unsafe.Pointer(&withPrivate)),
		encodeWithMsgpackCompact(t, reflect.ValueOf(withPrivate)); !bytes.Equal(got, want) {
		t.Fatalf("plan wrote % x, msgpack % x", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, typ := range plannedTypes {
		p := newStructPlan(typ)
		for range 150 {
			v := randPlanValue(rng, typ)
			want := encodeWithMsgpackCompact(t, v.Elem())
			got := p.append(nil, v.UnsafePointer())
			if !bytes.Equal(got, want) {
				t.Fatalf("%v %+v: plan wrote % x, msgpack % x", typ, v.Elem().Interface(), got, want)
			}
			mine := reflect.New(typ)
			if !p.decode(got, mine.UnsafePointer()) {
				t.Fatalf("%v: the plan does not read what it wrote: % x", typ, got)
			}
			theirs := reflect.New(typ)
			if err := msgpack.Unmarshal(got, theirs.Interface()); err != nil {
				t.Fatal(err)
			}
			if !sameValue(mine.Elem(), theirs.Elem()) {
				t.Fatalf("%v: the plan read %+v, msgpack %+v", typ, mine.Elem().Interface(), theirs.Elem().Interface())
			}
		}
	}
}

// otherForm is the struct v (of p's type) in a form msgpack's decoder
// reads but the plan does not write, or a broken one: a map whatever the
// tag (keys left out, values nil, integers narrowed, an unknown key), an
// array whatever the tag (sometimes with an element more or less), nil, an
// empty array; nested structs likewise.
func otherForm(rng *rand.Rand, p *structPlan, v reflect.Value) any {
	switch rng.IntN(12) {
	case 0:
		return nil
	case 1:
		return []any{}
	}
	val := func(f *planField) any {
		fv := v.Field(f.index)
		switch {
		case rng.IntN(8) == 0:
			return nil
		case f.kind == planStruct:
			return otherForm(rng, f.sub, fv)
		case f.kind == planSlice:
			if fv.IsNil() {
				return nil
			}
			xs := make([]any, fv.Len())
			for k := range xs {
				xs[k] = otherForm(rng, f.sub, fv.Index(k))
			}
			return xs
		case fv.CanInt() && rng.IntN(3) == 0:
			return int8(fv.Int())
		case fv.CanUint() && rng.IntN(3) == 0:
			return -int64(fv.Uint() % 100)
		}
		return fv.Interface()
	}
	if rng.IntN(2) == 0 {
		m := map[string]any{}
		for i := range p.fields {
			if rng.IntN(6) != 0 {
				m[p.fields[i].name] = val(&p.fields[i])
			}
		}
		if rng.IntN(8) == 0 {
			m["Unknown"] = []any{1, "x"}
		}
		return m
	}
	var xs []any
	for i := range p.fields {
		xs = append(xs, val(&p.fields[i]))
	}
	switch rng.IntN(10) {
	case 0:
		xs = append(xs, "extra")
	case 1:
		if len(xs) > 0 {
			xs = xs[:len(xs)-1]
		}
	}
	return xs
}

// TestStructPlanDecodesAsMsgpack feeds the payload decoder values in other
// forms than the plan writes (and broken ones): what it decodes, and
// whether it fails, must not depend on the plan.
func TestStructPlanDecodesAsMsgpack(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, typ := range plannedTypes {
		withPlan := newTypeInfo(1, typ.Name(), typ)
		if withPlan.plan == nil {
			t.Fatalf("%v: no plan", typ)
		}
		without := *withPlan
		without.plan = nil
		var inputs [][]byte
		for range 100 {
			v := randPlanValue(rng, typ)
			inputs = append(inputs, encodeWithMsgpackCompact(t, v.Elem()))
			b, err := msgpack.Marshal(otherForm(rng, withPlan.plan, v.Elem()))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, b)
		}
		// Mutations: each of the first bytes of some short inputs changed, truncations.
		mutated := 0
		for _, in := range inputs {
			if len(in) > 2000 || mutated == 24 {
				continue
			}
			mutated++
			for i := range in {
				if i > 40 {
					break
				}
				m := bytes.Clone(in)
				m[i] ^= byte(1 + rng.IntN(255))
				inputs = append(inputs, m, in[:i])
			}
		}
		inputs = append(inputs, []byte{0xc0}, []byte{0x90}, []byte{0x80}, []byte{0x81, 0xa1, 'B', 0xc3},
			[]byte{0x82, 0xa1, 'B', 0xc3, 0xa1, 'B', 0xc2}, []byte{0x81, 0xa1, 'S', 0xc4, 1, 'x'},
			[]byte{0x81, 0xa2, 'F', '6', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xde, 0, 1, 0xa1, 'I', 0xd0, 0x80},
			[]byte{0x91, 0x91, 0xc0}, []byte{0x91, 0x90}, []byte{0x91, 0xdc, 0, 0}, []byte{0x91, 0xdd, 0, 0, 0, 1, 0x90},
			[]byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x90})
		var same, planned int
		for _, in := range inputs {
			end, err := checkValue(in, 0, 0)
			if err != nil || end != len(in) {
				continue // the frame reader refuses it before any decoder sees it
			}
			var r1, r2 ctxReader
			r1.Reset(in)
			r2.Reset(in)
			v1, err1 := decodeValue(msgpack.NewDecoder(&r1), &r1, in, 0, len(in), withPlan)
			v2, err2 := decodeValue(msgpack.NewDecoder(&r2), &r2, in, 0, len(in), &without)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("%v % x: with the plan err=%v, without err=%v", typ, in, err1, err2)
			}
			if r1.Len() != 0 || r2.Len() != 0 {
				t.Fatalf("%v % x: the reader is not at the end", typ, in)
			}
			if err1 == nil {
				if !sameValue(reflect.ValueOf(v1), reflect.ValueOf(v2)) {
					t.Fatalf("%v % x: with the plan %+v, without %+v", typ, in, v1, v2)
				}
				same++
				if withPlan.plan.decode(in, reflect.New(typ).UnsafePointer()) {
					planned++
				}
			}
		}
		t.Logf("%v: %d inputs decoded alike, %d of them by the plan", typ, same, planned)
		if planned < 100 || same-planned < 5 {
			t.Fatalf("%v: the inputs did not exercise both paths: %d decoded, %d by the plan", typ, same, planned)
		}
	}
}

// A slice's length header cannot make the plan allocate more than the
// bytes that follow could fill: a short input claiming a long array is
// refused before anything is allocated.
func TestStructPlanSliceLengthBounded(t *testing.T) {
	p := newStructPlan(reflect.TypeFor[planEntries]())
	for _, in := range [][]byte{
		{0x91, 0xdd, 0x00, 0x10, 0x00, 0x00, 0x90}, // 1 Mi entries claimed, one there
		{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x90},
		{0x91, 0xdc, 0xff, 0xff, 0x90, 0x90},
		{0x91, 0x92, 0x90}, // two claimed, one there
	} {
		v := reflect.New(p.typ)
		if allocs := testing.AllocsPerRun(5, func() {
			if p.decode(in, v.UnsafePointer()) {
				t.Fatalf("% x: decoded", in)
			}
		}); in[1] != 0x92 && allocs != 0 {
			t.Fatalf("% x: %v allocations", in, allocs)
		}
	}
	// Through the frame reader's path: the same, and the same as msgpack.
	in := []byte{0x91, 0xdd, 0x00, 0x10, 0x00, 0x00, 0x90}
	if _, err := checkValue(in, 0, 0); err == nil {
		t.Fatal("checkValue accepted a short array")
	}
}

// A payload of a planned type crosses two nodes intact, and costs one
// allocation to encode and decode (the value) plus its strings.
func BenchmarkPayloadStruct(b *testing.B) {
	type msg struct {
		ID  string
		Seq int
		OK  bool
	}
	for _, planned := range []bool{true, false} {
		name := "plan"
		if !planned {
			name = "reflection"
		}
		b.Run(name, func(b *testing.B) {
			ti := newTypeInfo(1, "msg", reflect.TypeFor[msg]())
			if !planned {
				ti.plan = nil
			}
			rt := newPayloadRound()
			var v any = msg{ID: "client-7", Seq: 123456, OK: true}
			b.ReportAllocs()
			for b.Loop() {
				rt.run(b, ti, v)
			}
		})
	}
}

// The common scalar payloads decoded without reflection decode as
// reflection does, whatever the encoding (and fail where it fails).
func TestBuiltinPayloadsDecodeAsReflection(t *testing.T) {
	inputs := [][]byte{{0x05}, {0xff}, {0xc0}, {0xc2}, {0xc3}, {0xcc, 0xff}, {0xd0, 0x80}, {0xd1, 0x80, 0},
		{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0},
		{0xca, 0x3f, 0xc0, 0, 0}, {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, {0xa1, 'x'}, {0xc4, 1, 'x'}, {0x90}, {0x80}}
	for _, typ := range []reflect.Type{typeInt, typeBool, typeFloat, typeInt64, typeUint64, typeString, typeBytes} {
		ti := newTypeInfo(1, typ.String(), typ)
		for _, in := range inputs {
			var r ctxReader
			r.Reset(in)
			got, err := decodeValue(msgpack.NewDecoder(&r), &r, in, 0, len(in), ti)
			p := reflect.New(typ)
			rerr := msgpack.NewDecoder(bytes.NewReader(in)).DecodeValue(p.Elem())
			if (err == nil) != (rerr == nil) {
				t.Fatalf("%v % x: builtin err=%v, reflection err=%v", typ, in, err, rerr)
			}
			if err == nil && !reflect.DeepEqual(got, p.Elem().Interface()) {
				t.Fatalf("%v % x: builtin %#v, reflection %#v", typ, in, got, p.Elem().Interface())
			}
		}
	}
}

// A []byte payload comes back as a copy of its bytes, in one allocation up
// to 232 bytes, with no room past its length, through garbage collections.
func TestBytesPayloadBoxedOnce(t *testing.T) {
	ti := newTypeInfo(1, "bytes", typeBytes)
	var vs []any
	var ins [][]byte
	for _, n := range []int{0, 1, 8, 9, 24, 25, 40, 41, 72, 73, 136, 137, 232, 233, 5000} {
		in := appendBin(nil, bytes.Repeat([]byte{byte(n)}, n))
		var r ctxReader
		r.Reset(in)
		dec := msgpack.NewDecoder(&r)
		allocs := testing.AllocsPerRun(10, func() {
			r.Reset(in)
			if _, err := decodeValue(dec, &r, in, 0, len(in), ti); err != nil {
				t.Fatal(err)
			}
		})
		if n <= 232 && allocs != 1 {
			t.Fatalf("%d bytes: %v allocations, want 1", n, allocs)
		}
		r.Reset(in)
		v, err := decodeValue(dec, &r, in, 0, len(in), ti)
		if err != nil {
			t.Fatal(err)
		}
		vs, ins = append(vs, v), append(ins, in)
	}
	runtime.GC()
	for i, v := range vs {
		b, ok := v.([]byte)
		if !ok || b == nil || len(b) != cap(b) {
			t.Fatalf("value %d: %T len %d cap %d", i, v, len(b), cap(b))
		}
		want := ins[i][len(ins[i])-len(b):]
		if !bytes.Equal(b, want) {
			t.Fatalf("value %d changed", i)
		}
		ins[i][len(ins[i])-1] ^= 0xff // the input's bytes are not the value's
		if len(b) > 0 && bytes.Equal(b, ins[i][len(ins[i])-len(b):]) {
			t.Fatalf("value %d shares the input's bytes", i)
		}
		_ = append(b, 1) // must not write into a neighbour
	}
}

// Structs of pointer size whose only pointer is one field, beside fields
// of size zero, are kept in the interface word itself: their decoded value
// must be boxed that way, not as a pointer to fresh memory (which Go would
// read as the channel or map).
type planDirectChan struct {
	//lint:ignore U1000 msgpack reads this field's tag
	_msgpack struct{} `msgpack:",as_array"`
	C        chan int `msgpack:"-"`
}

type planDirectMap struct {
	E    planEmpty
	memo map[string]int
}

func TestStructPlanPointerShapedAsTheRuntimeSays(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[planDirectChan](), reflect.TypeFor[planDirectMap]()} {
		if !pointerShaped(typ) {
			t.Errorf("%v: not pointer-shaped, but the runtime keeps it in the interface word", typ)
		}
		ti := newTypeInfo(1, typ.Name(), typ)
		var w bufWriter
		if err := msgpack.NewEncoder(&w).EncodeValue(reflect.New(typ).Elem()); err != nil {
			t.Fatal(err)
		}
		var r ctxReader
		r.Reset(w.b)
		v, err := decodeValue(msgpack.NewDecoder(&r), &r, w.b, 0, len(w.b), ti)
		if err != nil {
			t.Fatal(err)
		}
		switch x := v.(type) {
		case planDirectChan:
			if x.C != nil {
				t.Errorf("decoded %v has a channel %p, want nil", typ, x.C)
			}
		case planDirectMap:
			if x.memo != nil {
				t.Errorf("decoded %v has a map, want nil", typ)
			}
		default:
			t.Errorf("decoded %T", v)
		}
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[int](), reflect.TypeFor[struct{ A, B *int }](), reflect.TypeFor[planEmpty]()} {
		if pointerShaped(typ) {
			t.Errorf("%v: pointer-shaped, but the runtime boxes it", typ)
		}
	}
}
