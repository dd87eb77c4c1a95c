package debug

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/actord/actord/actor"
)

type rtInner struct {
	A int8
	B uint16
	C float32
	D []string
	E [3]byte
	F *rtInner
}

type rtEmbedded struct{ X int }

type rtErrVal struct{ Code int }

func (e rtErrVal) Error() string { return "code" }

type rtErrPtr struct{ Code int }

func (e *rtErrPtr) Error() string { return "ptr code" }

type rtPanicErr struct{ Msg string }

func (e *rtPanicErr) Error() string { panic("no") }

type rtStrErr string

func (e rtStrErr) Error() string { return "str err" }

type rtOnePtr struct{ P *int }

type rtAll struct {
	rtEmbedded
	Embedded   rtEmbedded
	I          int
	I64        int64
	U          uint
	U8         uint8
	Up         uintptr
	F64        float64
	NaN        float64
	Bool       bool
	S          string
	Bs         []byte
	NilBs      []byte
	Nested     rtInner
	PNil       *rtInner
	Any        any
	AnyNil     any
	AnyInt     any
	AnyPtr     any
	Err        error
	ErrNil     error
	ErrVal     rtErrVal
	ErrPtr     *rtErrPtr
	ErrPtrNil  *rtErrPtr
	ErrPanic   error
	StrErr     rtStrErr
	AnyStrErr  any
	Time       time.Time
	PTime      *time.Time
	Dur        time.Duration
	Ref        actor.Ref
	M          map[string]int
	C          complex128
	Ch         chan int
	Fn         func()
	UP         unsafe.Pointer
	Arr        [2]rtEmbedded
	Slice      []*rtEmbedded
	NilSlice   []int
	EmptySlice []int
	OnePtr     rtOnePtr
	Stringer   interface{ String() string }
	unexported int // not rendered
}

// TestCompiledMatchesWalker checks that the compiled encoders render every
// kind of value as the reflection walker does.
func TestCompiledMatchesWalker(t *testing.T) {
	n := 5
	tm := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	cyc := &rtInner{A: 1}
	cyc.F = cyc
	all := rtAll{rtEmbedded: rtEmbedded{1}, Embedded: rtEmbedded{2}, I: -3, I64: math.MinInt64, U: 4, U8: 5, Up: 6,
		F64: 1.5, NaN: math.NaN(), Bool: true, S: "é\"\n\x01\xff", Bs: []byte("hi"), Nested: rtInner{A: -1, B: 2, C: 0.25, D: []string{"a"}, E: [3]byte{1, 2, 3}, F: cyc},
		Any: rtEmbedded{7}, AnyInt: 8, AnyPtr: &rtEmbedded{9}, Err: errors.New("e"), ErrVal: rtErrVal{1}, ErrPtr: &rtErrPtr{2},
		ErrPanic: &rtPanicErr{"m"}, StrErr: "s", AnyStrErr: rtStrErr("t"), Time: tm, PTime: &tm, Dur: time.Millisecond,
		M: map[string]int{"k": 1}, C: complex(1, 2), Ch: make(chan int), Fn: func() {}, UP: unsafe.Pointer(&n),
		Arr: [2]rtEmbedded{{1}, {2}}, Slice: []*rtEmbedded{{3}, nil}, EmptySlice: []int{}, OnePtr: rtOnePtr{&n}, Stringer: time.Second, unexported: 1}
	big := make([]int, 1000)
	long := strings.Repeat("x", 1000)
	values := []any{all, &all, cyc, rtOnePtr{&n}, rtOnePtr{}, &n, (*int)(nil), map[int]string{1: "a"}, big, long,
		[]any{1, "a", nil, &n}, [4]int{1, 2, 3, 4}, tm, time.Second, actor.Ref{}, 3.25, uint8(7), true,
		struct{ A, B any }{rtErrVal{3}, &rtErrPtr{4}}, []rtAll{all, all}, make(chan int), func() {}}
	// each field of all on its own (all is cut at PayloadBytes), in a
	// struct of one field and behind a pointer
	av := reflect.ValueOf(all)
	for i := range av.NumField() {
		f := av.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		st := reflect.StructOf([]reflect.StructField{{Name: "F", Type: f.Type}})
		w := reflect.New(st)
		w.Elem().Field(0).Set(av.Field(i))
		values = append(values, w.Elem().Interface(), w.Interface())
	}
	for i, v := range values {
		var got, want renderer
		got, want = newRenderer(), newRenderer()
		gb, gt := got.render(v, got.msgType(typeWord(v), v))
		want.buf = want.buf[:0]
		wok := want.value(reflectValueOf(v), 0)
		wb, wt := want.buf, !wok
		if wt {
			wb = want.cut()
		}
		if string(gb) != string(wb) || gt != wt {
			t.Errorf("value %d (%T):\ncompiled %s (truncated %v)\nwalker   %s (truncated %v)", i, v, gb, gt, wb, wt)
		}
		// a second rendering with the compiled encoders in the cache
		gb2, _ := got.render(v, got.msgType(typeWord(v), v))
		if string(gb2) != string(gb) {
			t.Errorf("value %d: second rendering differs: %s", i, gb2)
		}
	}
}

func TestRenderTopLevel(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{nil, "null"},
		{[]byte(nil), `""`},
		{rtStrErr("x"), `"str err"`},
		{rtErrVal{}, `"code"`},
		{&rtErrPtr{}, `"ptr code"`},
		{errors.New("plain"), `"plain"`},
	}
	for _, c := range cases {
		r := newRenderer()
		var mt *msgType
		if c.v != nil {
			mt = r.msgType(typeWord(c.v), c.v)
		}
		if b, _ := r.render(c.v, mt); string(b) != c.want {
			t.Errorf("%T: %s, want %s", c.v, b, c.want)
		}
	}
}

func TestRecordLayout(t *testing.T) {
	if RecordBytes%64 != 0 {
		t.Fatalf("record of %d bytes: not a whole number of cache lines", RecordBytes)
	}
	if off := unsafe.Offsetof(record{}.data); off > 66 {
		t.Fatalf("record header of %d bytes", off)
	}
}

func reflectValueOf(v any) reflect.Value { return reflect.ValueOf(v) }
