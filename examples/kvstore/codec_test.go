package kvstore

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The shapes msgpack gives the messages by reflection, without the
// hand-written codecs.
type (
	plainStamp struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		N, W     uint64
	}
	plainGet struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		K        string
		NoValue  bool
	}
	plainEntry struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		TS       plainStamp
		V        []byte
		Deleted  bool
	}
	plainGetMany struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		Gets     []plainGet
	}
	plainWrite struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		K        string
		E        plainEntry
	}
	plainEntries struct {
		//lint:ignore U1000 msgpack reads this field's tag
		_msgpack struct{} `msgpack:",as_array"`
		E        []plainEntry
	}
)

// marshal encodes v as remote does (compact integers).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.UseCompactInts(true)
	err := e.Encode(v)
	return b.Bytes(), err
}

// roundTrip encodes v, decodes the bytes into a new value of out's type,
// and returns it.
func roundTrip(t *testing.T, v, out any) any {
	t.Helper()
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := reflect.New(reflect.TypeOf(out))
	if err := msgpack.Unmarshal(b, p.Interface()); err != nil {
		t.Fatalf("%T: %v", out, err)
	}
	return p.Elem().Interface()
}

// The hand-written codecs write what reflection writes (with remote's
// encoder options) and read what it
// writes: nodes with and without them understand each other.
func TestCodecsMatchReflection(t *testing.T) {
	many := GetMany{Gets: []Get{{K: "a"}, {K: "b", NoValue: true}}}
	plainMany := plainGetMany{Gets: []plainGet{{K: "a"}, {K: "b", NoValue: true}}}
	ents := Entries{E: []Entry{{}, {TS: Stamp{N: 1, W: 1 << 60}, V: []byte("v")}, {TS: Stamp{N: 7, W: 3}, V: []byte{}, Deleted: true}}}
	plainEnts := plainEntries{E: []plainEntry{{}, {TS: plainStamp{N: 1, W: 1 << 60}, V: []byte("v")}, {TS: plainStamp{N: 7, W: 3}, V: []byte{}, Deleted: true}}}
	for _, c := range []struct{ custom, plain any }{
		{many, plainMany},
		{GetMany{}, plainGetMany{}},
		{GetMany{Gets: []Get{}}, plainGetMany{Gets: []plainGet{}}},
		{ents, plainEnts},
		{Entries{}, plainEntries{}},
		{ents.E[1], plainEnts.E[1]},
		{many.Gets[1], plainMany.Gets[1]},
		{Write{K: "k", E: ents.E[2]}, plainWrite{K: "k", E: plainEnts.E[2]}},
		{Write{K: "k", E: ents.E[1]}, plainWrite{K: "k", E: plainEnts.E[1]}},
		{Write{}, plainWrite{}},
	} {
		cb, err := marshal(c.custom)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := marshal(c.plain)
		if err != nil {
			t.Fatal(err)
		}
		if string(cb) != string(pb) {
			t.Errorf("%T: encodes as %x, reflection as %x", c.custom, cb, pb)
		}
		if got := roundTrip(t, c.plain, c.custom); !reflect.DeepEqual(got, c.custom) {
			t.Errorf("%T: reflection's bytes decode as %+v, want %+v", c.custom, got, c.custom)
		}
		if got := roundTrip(t, c.custom, c.plain); !reflect.DeepEqual(got, c.plain) {
			t.Errorf("%T: decoded by reflection as %+v, want %+v", c.plain, got, c.plain)
		}
	}
}

// A GetMany or an Entries of more than MaxGetMany elements is refused
// before its elements are allocated.
func TestCodecBounds(t *testing.T) {
	big := plainGetMany{Gets: make([]plainGet, MaxGetMany+1)}
	b, err := marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	var m GetMany
	if err := msgpack.Unmarshal(b, &m); !errors.Is(err, ErrTooMany) {
		t.Errorf("GetMany of %d: %v, want ErrTooMany", len(big.Gets), err)
	}
	bigE := plainEntries{E: make([]plainEntry, MaxGetMany+1)}
	if b, err = marshal(bigE); err != nil {
		t.Fatal(err)
	}
	var es Entries
	if err := msgpack.Unmarshal(b, &es); !errors.Is(err, ErrTooMany) {
		t.Errorf("Entries of %d: %v, want ErrTooMany", len(bigE.E), err)
	}
}
