package remote

import (
	"fmt"

	"github.com/actord/actord/internal/seam"
	"github.com/vmihailenco/msgpack/v5"
)

// Payloads decoded on the target's loop.
//
// The network goroutine of an accepted connection parses each frame's
// envelope (kind, ids, correlation), checks the payload's value
// (checkValue: extent, declared lengths, nesting) and looks up its type,
// but leaves the value of a Send or an Ask encoded when its type is decoded
// by reflection (typeInfo.lazy: not []byte, string, int64, uint64, which
// cost no more to decode than to copy): the frame's payload is a
// *seam.Lazy that the wire queues like any message, and the target's loop
// decodes it (codecCtx.DecodeLazy) just before the handler runs. So the
// network goroutine, which every message of the connection crosses, does
// not pay for reflection, and the actor loops (one per core) do.
//
// What a payload that fails to decode gets is unchanged: an unknown type
// and a value that checkValue refuses are found on the network goroutine
// (the frame is answered or dropped there, as before); a value that fails
// only when decoded (a field of the wrong type) is found on the loop, where
// an ask is answered with the error (ErrBadFrame) and a one-way message is
// dropped, counted in Stats.Dropped and reported to the System's hooks
// (actor.EventDropped). Either way the connection stays open.

// Sizes of the blocks lazyAlloc carves: a queued message keeps its block
// of bytes and its slab of Lazy values reachable until it is decoded, so
// both are small (at most about 8 KiB held per queued message, whatever
// the rest of its read was). A payload above lazyOwn gets an allocation
// of its own.
const (
	lazySlab  = 64
	lazyChunk = 4 << 10
	lazyOwn   = 512
)

// lazyAlloc hands out the Lazy values and copies of the payload bytes of
// one connection (the bytes it reads from are reused once the frame is
// handled): a Lazy from a slab and its bytes from a shared chunk, so that
// a message costs no allocation of its own on the network goroutine. Only
// that goroutine uses it; what it has handed out is never written again,
// so the loops read it without a lock.
type lazyAlloc struct {
	slab  []seam.Lazy
	bytes []byte
}

// take returns a Lazy for the encoded value raw of type ti, read on the
// connection whose codec context is ctx.
func (a *lazyAlloc) take(raw []byte, ti *typeInfo, ctx *codecCtx) *seam.Lazy {
	if len(a.slab) == 0 {
		a.slab = make([]seam.Lazy, lazySlab)
	}
	lz := &a.slab[0]
	a.slab = a.slab[1:]
	var b []byte
	switch {
	case len(raw) > lazyOwn:
		b = append([]byte(nil), raw...)
	default:
		if cap(a.bytes)-len(a.bytes) < len(raw) {
			a.bytes = make([]byte, 0, lazyChunk)
		}
		i := len(a.bytes)
		a.bytes = append(a.bytes, raw...)
		b = a.bytes[i:len(a.bytes):len(a.bytes)]
	}
	*lz = seam.Lazy{Raw: b, Type: ti, Dec: ctx}
	return lz
}

// lazyReader is a loop's decoder of Lazy payloads, kept in the loop's
// scratch slot (seam.LazyDecoder).
type lazyReader struct {
	r   ctxReader
	dec *msgpack.Decoder
}

// DecodeLazy implements seam.LazyDecoder: it decodes a payload that c's
// connection read, on the target's loop.
func (c *codecCtx) DecodeLazy(l *seam.Lazy, scratch *any, count bool) (v any, err error) {
	ti := l.Type.(*typeInfo)
	lr, _ := (*scratch).(*lazyReader)
	if lr == nil {
		lr = &lazyReader{}
		lr.dec = msgpack.NewDecoder(&lr.r)
		*scratch = lr
	}
	lr.r.ctx = c
	lr.r.Reset(l.Raw)
	defer func() {
		if r := recover(); r != nil { // the decoder must never take the loop down
			v, err = nil, fmt.Errorf("decoder panic: %v", r)
			*scratch = nil // nor leave it a decoder in an unknown state
		}
		lr.r.Reset(nil) // hold neither the bytes nor the connection
		lr.r.ctx = nil
		if err != nil {
			err = bad("payload "+ti.name, err)
			if count {
				c.n.stats.dropped.Add(1)
			}
		}
	}()
	return decodeValue(lr.dec, &lr.r, l.Raw, 0, len(l.Raw), ti)
}
