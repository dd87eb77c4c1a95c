package kvstore

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs for the messages of every read and write
// (remote uses them instead of reflection, which took a quarter of a
// daemon's CPU once reads were batched). They write exactly what the as_array struct tags
// make msgpack write, and read it back the same way, so nodes with and
// without them understand each other. Arrays longer than a type's fields
// have the extra elements skipped, like msgpack's own decoder does.

// EncodeMsgpack implements msgpack.CustomEncoder.
func (g Get) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(g.K); err != nil {
		return err
	}
	return e.EncodeBool(g.NoValue)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (g *Get) DecodeMsgpack(d *msgpack.Decoder) error {
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

// EncodeMsgpack implements msgpack.CustomEncoder.
func (en Entry) EncodeMsgpack(e *msgpack.Encoder) error {
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

// DecodeMsgpack implements msgpack.CustomDecoder.
func (en *Entry) DecodeMsgpack(d *msgpack.Decoder) error {
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
func (w Write) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(w.K); err != nil {
		return err
	}
	return w.E.EncodeMsgpack(e)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (w *Write) DecodeMsgpack(d *msgpack.Decoder) error {
	*w = Write{}
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return err
	}
	if w.K, err = d.DecodeString(); err != nil {
		return err
	}
	if n > 1 {
		if err := w.E.DecodeMsgpack(d); err != nil {
			return err
		}
	}
	return skip(d, n-2)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m GetMany) EncodeMsgpack(e *msgpack.Encoder) error { return encodeList(e, m.Gets) }

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany Gets before allocating them.
func (m *GetMany) DecodeMsgpack(d *msgpack.Decoder) error {
	*m = GetMany{}
	var err error
	m.Gets, err = decodeList[Get](d, "gets")
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (es Entries) EncodeMsgpack(e *msgpack.Encoder) error { return encodeList(e, es.E) }

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany entries (no client asks for more) before allocating them.
func (es *Entries) DecodeMsgpack(d *msgpack.Decoder) error {
	*es = Entries{}
	var err error
	es.E, err = decodeList[Entry](d, "entries")
	return err
}

// encodeList writes a struct of one list field as GetMany and Entries
// have: [list], the list nil or an array of xs.
func encodeList[T msgpack.CustomEncoder](e *msgpack.Encoder, xs []T) error {
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
		if err := x.EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// decodeList reads what encodeList wrote (fields after the first
// skipped), refusing more than MaxGetMany elements, named what, before
// allocating them.
func decodeList[T any, P interface {
	*T
	msgpack.CustomDecoder
}](d *msgpack.Decoder, what string) ([]T, error) {
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
			if err := P(&xs[i]).DecodeMsgpack(d); err != nil {
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
