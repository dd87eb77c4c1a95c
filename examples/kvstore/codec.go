package kvstore

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs for the messages of every read (remote uses
// them instead of reflection, which took a quarter of a daemon's CPU once
// reads were batched). They write exactly what the as_array struct tags
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
func (m GetMany) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(1); err != nil {
		return err
	}
	if m.Gets == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(m.Gets)); err != nil {
		return err
	}
	for _, g := range m.Gets {
		if err := g.EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany Gets before allocating them.
func (m *GetMany) DecodeMsgpack(d *msgpack.Decoder) error {
	*m = GetMany{}
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return err
	}
	k, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if k > MaxGetMany {
		return fmt.Errorf("%w: %d gets, at most %d", ErrTooMany, k, MaxGetMany)
	}
	if k >= 0 {
		m.Gets = make([]Get, k)
		for i := range m.Gets {
			if err := m.Gets[i].DecodeMsgpack(d); err != nil {
				return err
			}
		}
	}
	return skip(d, n-1)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (es Entries) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(1); err != nil {
		return err
	}
	if es.E == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(es.E)); err != nil {
		return err
	}
	for _, en := range es.E {
		if err := en.EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder. It refuses more than
// MaxGetMany entries (no client asks for more) before allocating them.
func (es *Entries) DecodeMsgpack(d *msgpack.Decoder) error {
	*es = Entries{}
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return err
	}
	k, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if k > MaxGetMany {
		return fmt.Errorf("%w: %d entries, at most %d", ErrTooMany, k, MaxGetMany)
	}
	if k >= 0 {
		es.E = make([]Entry, k)
		for i := range es.E {
			if err := es.E[i].DecodeMsgpack(d); err != nil {
				return err
			}
		}
	}
	return skip(d, n-1)
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
