package remote

import (
	"fmt"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// encodeRef writes a ref inside a payload: [node, addr, loop, slot, gen,
// secret], or nil for the zero Ref.
func (n *Node) encodeRef(e *msgpack.Encoder, r actor.Ref) error {
	if r.IsZero() {
		return e.EncodeNil()
	}
	var name, addr string
	id, ok := n.wire.LocalID(r)
	if ok {
		name, addr = n.name, n.Addr()
	} else {
		p, rid, ok := n.wire.Remote(r)
		if !ok {
			return fmt.Errorf("remote: ref %v belongs to another system", r)
		}
		pp, ok := p.(*peer)
		if !ok {
			return fmt.Errorf("remote: ref %v belongs to another transport", r)
		}
		name, addr, id = pp.name(), pp.addr, rid
	}
	_ = e.EncodeArrayLen(6)
	_ = e.EncodeString(name)
	_ = e.EncodeString(addr)
	_ = e.EncodeUint(uint64(id.Loop))
	_ = e.EncodeUint(uint64(id.Slot))
	_ = e.EncodeUint(uint64(id.Gen))
	return e.EncodeBytes(id.Secret[:])
}

// maxRefField bounds the node name and the address in a ref on the wire (a
// DNS name is at most 253 bytes).
const maxRefField = 512

func (n *Node) decodeRef(d *msgpack.Decoder) (actor.Ref, error) {
	c, err := d.PeekCode()
	if err != nil {
		return actor.Ref{}, err
	}
	if c == 0xc0 {
		return actor.Ref{}, d.DecodeNil()
	}
	if l, err := d.DecodeArrayLen(); err != nil || l != 6 {
		return actor.Ref{}, fmt.Errorf("%w: ref of %d fields", ErrBadFrame, l)
	}
	name, err := d.DecodeString()
	if err != nil {
		return actor.Ref{}, err
	}
	addr, err := d.DecodeString()
	if err != nil {
		return actor.Ref{}, err
	}
	if len(name) > maxRefField || len(addr) > maxRefField {
		// Every ref to a new node costs a peer (MaxPeers bounds how many):
		// bound what each keeps too.
		return actor.Ref{}, fmt.Errorf("%w: ref with a %d-byte node name and a %d-byte address (max %d)", ErrBadFrame, len(name), len(addr), maxRefField)
	}
	// Stop at the first bad field: a read past one that failed is out of step
	// with the value checkValue walked, and could take any bytes for a
	// length. The secret is read in place, as DecodeBytes would first
	// allocate whatever length is declared.
	var id actor.WireID
	if id.Loop, err = d.DecodeUint16(); err == nil {
		if id.Slot, err = d.DecodeUint32(); err == nil {
			id.Gen, err = d.DecodeUint32()
		}
	}
	if err == nil {
		var l int
		if l, err = d.DecodeBytesLen(); err == nil && l != len(id.Secret) {
			err = fmt.Errorf("secret of %d bytes", l)
		}
	}
	if err == nil {
		err = d.ReadFull(id.Secret[:])
	}
	if err != nil {
		return actor.Ref{}, fmt.Errorf("%w: ref fields: %v", ErrBadFrame, err)
	}
	if addr == n.Addr() {
		r, _ := n.wire.Resolve(id) // a forged one comes back dead
		return r, nil
	}
	if addr == "" {
		return actor.Ref{}, fmt.Errorf("%w: ref without address", ErrBadFrame)
	}
	p, err := n.boundedPeer(addr, name)
	if err != nil {
		return actor.Ref{}, err
	}
	return n.wire.RemoteRef(p, id), nil
}
