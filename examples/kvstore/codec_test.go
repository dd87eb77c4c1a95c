package kvstore

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Earlier versions coded Get, Entry, GetMany and Entries with hand-written
// msgpack coders; remote now codes the messages from their as_array tags
// (and the frame writer writes exactly what msgpack writes for them). The
// encoders below are those coders, kept to show that the bytes on the
// wire did not change: nodes of both versions understand each other.

func oldEncodeGet(e *msgpack.Encoder, g Get) {
	_ = e.EncodeArrayLen(2)
	_ = e.EncodeString(g.K)
	_ = e.EncodeBool(g.NoValue)
}

func oldEncodeEntry(e *msgpack.Encoder, en Entry) {
	_ = e.EncodeArrayLen(3)
	_ = e.EncodeArrayLen(2)
	_ = e.EncodeUint(en.TS.N)
	_ = e.EncodeUint(en.TS.W)
	_ = e.EncodeBytes(en.V)
	_ = e.EncodeBool(en.Deleted)
}

func oldEncodeList[T any](e *msgpack.Encoder, xs []T, one func(*msgpack.Encoder, T)) {
	_ = e.EncodeArrayLen(1)
	if xs == nil {
		_ = e.EncodeNil()
		return
	}
	_ = e.EncodeArrayLen(len(xs))
	for _, x := range xs {
		one(e, x)
	}
}

// oldEncode writes v as the hand-written coders did (remote's encoder
// options: compact integers).
func oldEncode(v any) []byte {
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.UseCompactInts(true)
	switch v := v.(type) {
	case Get:
		oldEncodeGet(e, v)
	case Entry:
		oldEncodeEntry(e, v)
	case GetMany:
		oldEncodeList(e, v.Gets, oldEncodeGet)
	case Entries:
		oldEncodeList(e, v.E, oldEncodeEntry)
	case Write:
		_ = e.EncodeArrayLen(2)
		_ = e.EncodeString(v.K)
		oldEncodeEntry(e, v.E)
	default:
		panic(v)
	}
	return b.Bytes()
}

// marshal encodes v as remote does (compact integers).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.UseCompactInts(true)
	err := e.Encode(v)
	return b.Bytes(), err
}

func randEntry(rng *rand.Rand) Entry {
	en := Entry{Deleted: rng.IntN(4) == 0}
	for _, p := range []*uint64{&en.TS.N, &en.TS.W} {
		switch rng.IntN(4) {
		case 0:
		case 1:
			*p = uint64(rng.IntN(300))
		default:
			*p = rng.Uint64() >> rng.IntN(64)
		}
	}
	if n := rng.IntN(5); n > 0 {
		en.V = bytes.Repeat([]byte{byte(n)}, []int{0, 1, 31, 256, 70000}[n-1])
	}
	return en
}

// The messages encode as the hand-written coders of earlier versions did,
// byte for byte, and decode what those wrote.
func TestWireFormatUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var vals []any
	for i := range 500 {
		var gets []Get
		var ents []Entry
		switch n := rng.IntN(20); {
		case n == 0: // nil lists
		case n == 1:
			gets, ents = []Get{}, []Entry{}
		default:
			for range rng.IntN(MaxGetMany + 1) {
				gets = append(gets, Get{K: "k" + strconv.Itoa(rng.IntN(1000)), NoValue: rng.IntN(2) == 0})
				ents = append(ents, randEntry(rng))
			}
		}
		g := Get{}
		if len(gets) > 0 {
			g = gets[0]
		}
		vals = append(vals, g, randEntry(rng), GetMany{Gets: gets}, Entries{E: ents},
			Write{K: strconv.Itoa(i), E: randEntry(rng)})
	}
	for _, v := range vals {
		old := oldEncode(v)
		now, err := marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(old, now) {
			t.Fatalf("%T: encodes as %x, the hand-written coder wrote %x", v, now, old)
		}
		p := reflect.New(reflect.TypeOf(v))
		if err := msgpack.Unmarshal(old, p.Interface()); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if got := p.Elem().Interface(); !reflect.DeepEqual(got, v) {
			t.Fatalf("%T: the old bytes decode as %+v, want %+v", v, got, v)
		}
	}
}
