package remote

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written coders of the shapes of planGetMany and planEntries, as an
// application would write them for msgpack's fast path (the example
// key-value store had these): the third way to code such payloads, to
// compare plans with.
type (
	handGet struct {
		K       string
		NoValue bool
	}
	handEntry struct {
		TS      planStamp
		V       []byte
		Deleted bool
	}
	handGetMany struct{ Gets []handGet }
	handEntries struct{ E []handEntry }
)

func (g *handGet) encode(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(g.K); err != nil {
		return err
	}
	return e.EncodeBool(g.NoValue)
}

func (g *handGet) decode(d *msgpack.Decoder) (err error) {
	if n, err := d.DecodeArrayLen(); err != nil || n != 2 {
		return errBadHand
	}
	if g.K, err = d.DecodeString(); err != nil {
		return err
	}
	g.NoValue, err = d.DecodeBool()
	return err
}

func (en *handEntry) encode(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(3); err != nil {
		return err
	}
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeUint(en.TS.N); err != nil {
		return err
	}
	if err := e.EncodeUint(en.TS.W); err != nil {
		return err
	}
	if err := e.EncodeBytes(en.V); err != nil {
		return err
	}
	return e.EncodeBool(en.Deleted)
}

func (en *handEntry) decode(d *msgpack.Decoder) (err error) {
	if n, err := d.DecodeArrayLen(); err != nil || n != 3 {
		return errBadHand
	}
	if n, err := d.DecodeArrayLen(); err != nil || n != 2 {
		return errBadHand
	}
	if en.TS.N, err = d.DecodeUint64(); err != nil {
		return err
	}
	if en.TS.W, err = d.DecodeUint64(); err != nil {
		return err
	}
	if en.V, err = d.DecodeBytes(); err != nil {
		return err
	}
	en.Deleted, err = d.DecodeBool()
	return err
}

var errBadHand = errorString("bad hand-coded value")

type errorString string

func (e errorString) Error() string { return string(e) }

func (m handGetMany) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(1); err != nil {
		return err
	}
	if err := e.EncodeArrayLen(len(m.Gets)); err != nil {
		return err
	}
	for i := range m.Gets {
		if err := m.Gets[i].encode(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *handGetMany) DecodeMsgpack(d *msgpack.Decoder) error {
	if n, err := d.DecodeArrayLen(); err != nil || n != 1 {
		return errBadHand
	}
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 || n > 256 {
		return errBadHand
	}
	m.Gets = make([]handGet, n)
	for i := range m.Gets {
		if err := m.Gets[i].decode(d); err != nil {
			return err
		}
	}
	return nil
}

func (es handEntries) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(1); err != nil {
		return err
	}
	if err := e.EncodeArrayLen(len(es.E)); err != nil {
		return err
	}
	for i := range es.E {
		if err := es.E[i].encode(e); err != nil {
			return err
		}
	}
	return nil
}

func (es *handEntries) DecodeMsgpack(d *msgpack.Decoder) error {
	if n, err := d.DecodeArrayLen(); err != nil || n != 1 {
		return errBadHand
	}
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 || n > 256 {
		return errBadHand
	}
	es.E = make([]handEntry, n)
	for i := range es.E {
		if err := es.E[i].decode(d); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkPayloadArrays encodes and decodes, as the frame writer and
// reader do, a GetMany of 16 keys and its Entries of 16 values of 100
// bytes (the key-value store's batched read), by plan, by reflection and
// by hand-written coders. The three write the same bytes.
func BenchmarkPayloadArrays(b *testing.B) {
	var gm planGetMany
	var es planEntries
	var hgm handGetMany
	var hes handEntries
	for i := range 16 {
		k := "key-" + strconv.Itoa(i*7919)
		gm.Gets = append(gm.Gets, planGet{K: k})
		hgm.Gets = append(hgm.Gets, handGet{K: k})
		ts := planStamp{N: uint64(i + 1), W: 1<<40 + uint64(i)}
		v := make([]byte, 100)
		es.E = append(es.E, planEntry{TS: ts, V: v})
		hes.E = append(hes.E, handEntry{TS: ts, V: v})
	}
	for _, c := range []struct {
		name        string
		plain, hand any
	}{{"GetMany", gm, hgm}, {"Entries", es, hes}} {
		for _, way := range []string{"plan", "reflection", "hand"} {
			b.Run(c.name+"/"+way, func(b *testing.B) {
				v := c.plain
				if way == "hand" {
					v = c.hand
				}
				ti := newTypeInfo(1, "x", reflect.TypeOf(v))
				if way == "reflection" {
					ti.plan = nil
				}
				if (ti.plan != nil) != (way == "plan") {
					b.Fatalf("%s: plan %v", way, ti.plan != nil)
				}
				rt := newPayloadRound()
				if err := rt.fw.enc.Encode(c.plain); err != nil {
					b.Fatal(err)
				}
				want := string(rt.fw.w.b)
				b.ReportAllocs()
				for b.Loop() {
					rt.run(b, ti, v)
				}
				if string(rt.fw.w.b) != want {
					b.Fatalf("%s wrote % x, msgpack % x", way, rt.fw.w.b, want)
				}
			})
		}
	}
}

// payloadRound encodes and decodes a payload as a frame writer and reader
// do: by its plan if it has one, else by msgpack.
type payloadRound struct {
	fw  *frameWriter
	r   *ctxReader
	dec *msgpack.Decoder
}

func newPayloadRound() *payloadRound {
	fw := &frameWriter{}
	fw.enc = msgpack.NewEncoder(&fw.w)
	fw.enc.UseCompactInts(true)
	r := &ctxReader{}
	return &payloadRound{fw: fw, r: r, dec: msgpack.NewDecoder(r)}
}

func (p *payloadRound) run(b *testing.B, ti *typeInfo, v any) {
	fw := p.fw
	fw.w.b = fw.w.b[:0]
	if ti.plan != nil {
		fw.w.b = ti.plan.append(fw.w.b, dataOf(&v))
	} else if err := fw.enc.Encode(v); err != nil {
		b.Fatal(err)
	}
	p.r.Reset(fw.w.b)
	if _, err := decodeValue(p.dec, p.r, fw.w.b, 0, len(fw.w.b), ti); err != nil {
		b.Fatal(err)
	}
}
