package remote

import (
	"bytes"
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

// Types that must keep msgpack's own coder.
type (
	planHasCoder    struct{ N int }
	planText        struct{ N int }
	planInner       struct{ N int }
	planDuration    struct{ D time.Duration } // a field type with methods
	planKeyStringer string
)

func (planHasCoder) EncodeMsgpack(e *msgpack.Encoder) error  { return e.EncodeInt(1) }
func (*planHasCoder) DecodeMsgpack(d *msgpack.Decoder) error { return d.Skip() }
func (planText) MarshalText() ([]byte, error)                { return []byte("x"), nil }
func (k planKeyStringer) String() string                     { return string(k) }

func TestStructPlanRefusesWhatMsgpackCodesOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
	}{
		{"custom coder", reflect.TypeFor[planHasCoder]()},
		{"text marshaler", reflect.TypeFor[planText]()},
		{"embedded", reflect.TypeFor[struct{ planInner }]()},
		{"as_array", reflect.TypeFor[struct {
			_msgpack struct{} `msgpack:",as_array"`
			N        int
		}]()},
		{"field with methods", reflect.TypeFor[planDuration]()},
		{"named field type with a method", reflect.TypeFor[struct{ K planKeyStringer }]()},
		{"pointer field", reflect.TypeFor[struct{ P *int }]()},
		{"map field", reflect.TypeFor[struct{ M map[string]int }]()},
		{"slice of strings", reflect.TypeFor[struct{ S []string }]()},
		{"nested struct", reflect.TypeFor[struct{ In planInner }]()},
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
	} {
		if p := newStructPlan(tc.typ); p != nil {
			t.Errorf("%s (%v): got a plan, want msgpack's coder", tc.name, tc.typ)
		}
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[planAll](), reflect.TypeFor[planTags](),
		reflect.TypeFor[planEmpty](), reflect.TypeFor[planSmall](), reflect.TypeFor[planMany]()} {
		if newStructPlan(typ) == nil {
			t.Errorf("%v: no plan", typ)
		}
	}
}

// randPlanValue fills a new value of a planned type with random contents,
// edge values often.
func randPlanValue(rng *rand.Rand, typ reflect.Type) reflect.Value {
	v := reflect.New(typ)
	for i := range typ.NumField() {
		f := v.Elem().Field(i)
		if !f.CanSet() || rng.IntN(4) == 0 {
			continue // zero: omitempty's case
		}
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(rng.IntN(2) == 0)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			edges := []int64{-1, -32, -33, math.MinInt8, math.MinInt8 - 1, math.MinInt16, math.MinInt16 - 1,
				math.MinInt32, math.MinInt32 - 1, math.MinInt64, 127, 128, 255, 256, 65535, 65536, math.MaxInt64}
			if rng.IntN(2) == 0 {
				f.SetInt(edges[rng.IntN(len(edges))])
			} else {
				f.SetInt(int64(rng.Uint64()))
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			edges := []uint64{1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
			if rng.IntN(2) == 0 {
				f.SetUint(edges[rng.IntN(len(edges))])
			} else {
				f.SetUint(rng.Uint64())
			}
		case reflect.Float32, reflect.Float64:
			edges := []float64{math.Copysign(0, -1), math.Inf(1), math.NaN(), 1.5, -3e38}
			switch rng.IntN(3) {
			case 0:
				f.SetFloat(edges[rng.IntN(len(edges))])
			case 1:
				f.SetFloat(rng.NormFloat64() * 1e6)
			default: // NaNs with payloads, signalling ones too (set by bits: SetFloat would quiet them)
				if f.Kind() == reflect.Float32 {
					*(*uint32)(f.Addr().UnsafePointer()) = 0x7f800001 | rng.Uint32()&0x807fffff
				} else {
					*(*uint64)(f.Addr().UnsafePointer()) = 0x7ff0000000000001 | rng.Uint64()&0x800fffffffffffff
				}
			}
		case reflect.String:
			n := []int{0, 1, 31, 32, 255, 256, 70000}[rng.IntN(7)]
			f.SetString(string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, n)))
		case reflect.Slice:
			n := []int{0, 1, 255, 256, 70000}[rng.IntN(5)]
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			f.SetBytes(b)
		}
	}
	return v
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

// sameValue compares decoded values, floats by their bits (NaNs too).
func sameValue(a, b reflect.Value) bool {
	ca, cb := reflect.New(a.Type()).Elem(), reflect.New(b.Type()).Elem() // addressable copies, bit for bit
	ca.Set(a)
	cb.Set(b)
	a, b = ca, cb
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		switch fa.Kind() {
		case reflect.Float32:
			if *(*uint32)(unsafe.Pointer(fa.UnsafeAddr())) != *(*uint32)(unsafe.Pointer(fb.UnsafeAddr())) {
				return false
			}
			continue
		case reflect.Float64:
			if *(*uint64)(unsafe.Pointer(fa.UnsafeAddr())) != *(*uint64)(unsafe.Pointer(fb.UnsafeAddr())) {
				return false
			}
			continue
		}
		if fa.CanInterface() && !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			return false
		}
	}
	return true
}

func TestStructPlanMatchesMsgpack(t *testing.T) {
	withPrivate := planTags{A: "a", private: 7} // an unexported field is not sent
	if got, want := newStructPlan(reflect.TypeFor[planTags]()).append(nil, unsafe.Pointer(&withPrivate)),
		encodeWithMsgpackCompact(t, reflect.ValueOf(withPrivate)); !bytes.Equal(got, want) {
		t.Fatalf("plan wrote % x, msgpack % x", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []reflect.Type{reflect.TypeFor[planAll](), reflect.TypeFor[planTags](),
		reflect.TypeFor[planEmpty](), reflect.TypeFor[planSmall](), reflect.TypeFor[planMany]()} {
		p := newStructPlan(typ)
		for range 2000 {
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

// TestStructPlanDecodesAsMsgpack feeds the payload decoder values in other
// forms than the plan writes (and broken ones): what it decodes, and
// whether it fails, must not depend on the plan.
func TestStructPlanDecodesAsMsgpack(t *testing.T) {
	typ := reflect.TypeFor[planAll]()
	withPlan := newTypeInfo(1, "planAll", typ)
	if withPlan.plan == nil {
		t.Fatal("no plan")
	}
	without := *withPlan
	without.plan = nil
	rng := rand.New(rand.NewPCG(3, 4))
	var inputs [][]byte
	for range 300 {
		v := randPlanValue(rng, typ)
		inputs = append(inputs, encodeWithMsgpackCompact(t, v.Elem()))
		m := map[string]any{}
		for i := range typ.NumField() { // the same fields in other forms: keys shuffled, ints as int64, nils
			f := v.Elem().Field(i)
			switch rng.IntN(5) {
			case 0:
				continue
			case 1:
				m[typ.Field(i).Name] = nil
			case 2:
				if f.CanInt() {
					m[typ.Field(i).Name] = int8(f.Int())
				} else if f.CanUint() {
					m[typ.Field(i).Name] = -int64(f.Uint() % 100)
				} else {
					m[typ.Field(i).Name] = f.Interface()
				}
			default:
				m[typ.Field(i).Name] = f.Interface()
			}
		}
		if rng.IntN(5) == 0 {
			m["Unknown"] = []any{1, "x"}
		}
		b, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	// Mutations: every byte of some inputs changed, truncations.
	for _, in := range inputs[:40] {
		for i := range in {
			if i > 60 {
				break
			}
			m := bytes.Clone(in)
			m[i] ^= byte(1 + rng.IntN(255))
			inputs = append(inputs, m, in[:i])
		}
	}
	inputs = append(inputs, []byte{0xc0}, []byte{0x90}, []byte{0x80}, []byte{0x81, 0xa1, 'B', 0xc3},
		[]byte{0x82, 0xa1, 'B', 0xc3, 0xa1, 'B', 0xc2}, []byte{0x81, 0xa1, 'S', 0xc4, 1, 'x'},
		[]byte{0x81, 0xa2, 'F', '6', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xde, 0, 1, 0xa1, 'I', 0xd0, 0x80})
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
			t.Fatalf("% x: with the plan err=%v, without err=%v", in, err1, err2)
		}
		if r1.Len() != 0 || r2.Len() != 0 {
			t.Fatalf("% x: the reader is not at the end", in)
		}
		if err1 == nil {
			if !sameValue(reflect.ValueOf(v1), reflect.ValueOf(v2)) {
				t.Fatalf("% x: with the plan %+v, without %+v", in, v1, v2)
			}
			same++
			if withPlan.plan.decode(in, reflect.New(typ).UnsafePointer()) {
				planned++
			}
		}
	}
	t.Logf("%d inputs decoded alike, %d of them by the plan", same, planned)
	if planned < 300 || same-planned < 100 {
		t.Fatalf("the inputs did not exercise both paths: %d decoded, %d by the plan", same, planned)
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
			fw := &frameWriter{}
			fw.enc = msgpack.NewEncoder(&fw.w)
			fw.enc.UseCompactInts(true)
			var r ctxReader
			dec := msgpack.NewDecoder(&r)
			var v any = msg{ID: "client-7", Seq: 123456, OK: true}
			b.ReportAllocs()
			for b.Loop() {
				fw.w.b = fw.w.b[:0]
				if ti.plan != nil {
					fw.w.b = ti.plan.append(fw.w.b, dataOf(&v))
				} else if err := fw.enc.Encode(v); err != nil {
					b.Fatal(err)
				}
				r.Reset(fw.w.b)
				if _, err := decodeValue(dec, &r, fw.w.b, 0, len(fw.w.b), ti); err != nil {
					b.Fatal(err)
				}
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
