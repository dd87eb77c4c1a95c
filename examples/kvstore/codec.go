package kvstore

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs for the batched reads' messages, GetMany
// and Entries (remote used reflection for them, which took a quarter of a
// daemon's CPU once reads were batched; and their decoders bound the
// lists before allocating them). They write exactly what the as_array
// struct tags make msgpack write, and read it back the same way, so nodes
// with and without them understand each other. Arrays longer than a
// type's fields have the extra elements skipped, like msgpack's own
// decoder does.
//
// Get, Entry and Write have no codec methods: remote codes such plain
// structs from their field offsets (its struct plans), which is cheaper
// than a codec called through msgpack's decoder; a type with a codec
// method gets no plan. The functions below code them inside the lists.

// encodeGet writes g as msgpack writes it by reflection.
func encodeGet(e *msgpack.Encoder, g Get) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(g.K); err != nil {
		return err
	}
	return e.EncodeBool(g.NoValue)
}

// decodeGet reads what encodeGet writes.
func decodeGet(d *msgpack.Decoder, g *Get) error {
	*g = Get{}
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return err
	}
	if g.K, err = d.DecodeString(); err != nil {
		return err
	}
	if n > 1 {
		if g.NoValue, err = d.DecodeBool(); err != nil {
			return err
		}
	}
	return skip(d, n-2)
}

// encodeEntryMsg writes en as msgpack writes it by reflection.
func encodeEntryMsg(e *msgpack.Encoder, en Entry) error {
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

// decodeEntryMsg reads what encodeEntryMsg writes.
func decodeEntryMsg(d *msgpack.Decoder, en *Entry) error {
	*en = Entry{}
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return err
	}
	m, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if m > 0 {
		if en.TS.N, err = d.DecodeUint64(); err != nil {
			return err
		}
	}
	if m > 1 {
		if en.TS.W, err = d.DecodeUint64(); err != nil {
			return err
		}
	}
	if err := skip(d, m-2); err != nil {
		return err
	}
	if n > 1 {
		if en.V, err = d.DecodeBytes(); err != nil {
			return err
		}
	}
	if n > 2 {
		if en.Deleted, err = d.DecodeBool(); err != nil {
			return err
		}
	}
	return skip(d, n-3)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m GetMany) EncodeMsgpack(e *msgpack.Encoder) error { return encodeList(e, m.Gets, encodeGet) }

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany Gets before allocating them.
func (m *GetMany) DecodeMsgpack(d *msgpack.Decoder) error {
	*m = GetMany{}
	var err error
	m.Gets, err = decodeList(d, "gets", decodeGet)
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (es Entries) EncodeMsgpack(e *msgpack.Encoder) error { return encodeList(e, es.E, encodeEntryMsg) }

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany entries (no client asks for more) before allocating them.
func (es *Entries) DecodeMsgpack(d *msgpack.Decoder) error {
	*es = Entries{}
	var err error
	es.E, err = decodeList(d, "entries", decodeEntryMsg)
	return err
}

// encodeList writes a struct of one list field as GetMany and Entries
// have: [list], the list nil or an array of xs.
func encodeList[T any](e *msgpack.Encoder, xs []T, enc func(*msgpack.Encoder, T) error) error {
	if err := e.EncodeArrayLen(1); err != nil {
		return err
	}
	if xs == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(xs)); err != nil {
		return err
	}
	for _, x := range xs {
		if err := enc(e, x); err != nil {
			return err
		}
	}
	return nil
}

// decodeList reads what encodeList wrote (fields after the first
// skipped), refusing more than MaxGetMany elements, named what, before
// allocating them.
func decodeList[T any](d *msgpack.Decoder, what string, dec func(*msgpack.Decoder, *T) error) ([]T, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	k, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if k > MaxGetMany {
		return nil, fmt.Errorf("%w: %d %s, at most %d", ErrTooMany, k, what, MaxGetMany)
	}
	var xs []T
	if k >= 0 {
		xs = make([]T, k)
		for i := range xs {
			if err := dec(d, &xs[i]); err != nil {
				return xs, err
			}
		}
	}
	return xs, skip(d, n-1)
}

// skip skips n values (none if n <= 0).
func skip(d *msgpack.Decoder, n int) error {
	for range n {
		if err := d.Skip(); err != nil {
			return err
		}
	}
	return nil
}
