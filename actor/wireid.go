package actor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// How a Ref crosses the network: its wire identity, the secret that makes
// it unforgeable, and the interning of remote refs.

// WireID is how a Ref travels on the network: the actor's loop, slot and
// generation, and a 128-bit secret derived from them with a key known only to
// the actor's node. A node delivers a message only if the secret matches, so
// a forged or guessed id looks exactly like a dead actor.
type WireID struct {
	Loop   uint16
	Slot   uint32
	Gen    uint32
	Secret [16]byte
}

type secretKey struct {
	once  sync.Once
	block cipher.Block
}

func (s *System) secrets() cipher.Block {
	s.key.once.Do(func() {
		var k [16]byte
		if s.cfg.Manual {
			// Reproducible runs: the secrets (which travel in frames)
			// come from the seed. Manual systems are for tests and the
			// simulator, where refs are not a security boundary.
			binary.LittleEndian.PutUint64(k[:8], s.cfg.Seed^0x5ec2e7)
			binary.LittleEndian.PutUint64(k[8:], ^s.cfg.Seed)
		} else if _, err := rand.Read(k[:]); err != nil {
			panic(fmt.Sprintf("actor: no randomness for ref secrets: %v", err))
		}
		b, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err)
		}
		s.key.block = b
	})
	return s.key.block
}

// secret is AES-128 under the system's random key of (loop, slot, gen): a
// pseudorandom permutation, so unpredictable without the key, and cheap to
// recompute on every incoming message instead of storing it per actor.
func (s *System) secret(loop uint16, slot, gen uint32) (out [16]byte) {
	// The block cipher is an interface, so buffers passed to it escape:
	// take them from a pool rather than allocating two per message.
	b := secretBufs.Get().(*[32]byte)
	in, enc := b[:16], b[16:]
	clear(in)
	binary.BigEndian.PutUint16(in[0:], loop)
	binary.BigEndian.PutUint32(in[2:], slot)
	binary.BigEndian.PutUint32(in[6:], gen)
	s.secrets().Encrypt(enc, in)
	copy(out[:], enc)
	secretBufs.Put(b)
	return out
}

var secretBufs = sync.Pool{New: func() any { return new([32]byte) }}

// LocalID returns the wire identity of a ref of this system's own actors
// (with its secret). It reports false for the zero Ref, remote refs and refs
// of other systems.
func (w *wire) LocalID(r Ref) (WireID, bool) {
	l := w.local(r)
	if l == nil {
		return WireID{}, false
	}
	id := WireID{Loop: uint16(l.id), Slot: r.idx, Gen: r.gen}
	id.Secret = w.s.secret(id.Loop, id.Slot, id.Gen)
	return id, true
}

// Resolve turns the wire identity of one of this system's actors back into a
// Ref, if its secret matches. It does not check that the actor is alive:
// delivery does. When the secret does not match it returns false and a dead
// Ref: a forged id and a dead actor must look the same to the sender.
func (w *wire) Resolve(id WireID) (Ref, bool) {
	dead := Ref{l: w.s.loops[0], idx: ^uint32(0)}
	if int(id.Loop) >= len(w.s.loops) {
		return dead, false
	}
	want := w.s.secret(id.Loop, id.Slot, id.Gen)
	if subtle.ConstantTimeCompare(want[:], id.Secret[:]) != 1 {
		return dead, false
	}
	return Ref{l: w.s.loops[id.Loop], idx: id.Slot, gen: id.Gen}, true
}

type remoteKey struct {
	peer nodePeer
	id   WireID
}

// RemoteRef makes a Ref for an actor on another node. The Ref carries no
// authority of its own: the other node checks id.Secret. Refs of the same
// remote actor through the same peer are interned, so they compare equal
// with == (and work as map keys) however many times they are decoded; the
// table holds them weakly and forgets refs nobody holds.
func (w *wire) RemoteRef(p nodePeer, id WireID) Ref {
	k := remoteKey{p, id}
	rt := w.refs
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if e, ok := rt.interned[k]; ok {
		if t := e.t.Value(); t != nil {
			return Ref{r: t, idx: id.Slot, gen: id.Gen}
		}
	}
	t := &remoteTarget{peer: p, id: id}
	rt.seq++
	rt.interned[k] = internedRef{weak.Make(t), rt.seq}
	rt.bySeq[rt.seq] = k
	if w.s.cfg.Manual {
		// Reproducible runs: what the collector reclaims, and when, must
		// not change what the transport sees (RemoteRefs), so a manual
		// system holds its remote refs for its lifetime.
		w.mu.Lock()
		w.pinned = append(w.pinned, t)
		w.mu.Unlock()
	}
	rt.perPeer[p]++
	// The cleanup holds the table weakly and the entry by number: nothing
	// it holds may lead back to t (see refTable).
	wt := weak.Make(rt)
	runtime.AddCleanup(t, func(seq uint64) {
		rt := wt.Value()
		if rt == nil {
			return // the system is gone
		}
		rt.mu.Lock()
		defer rt.mu.Unlock()
		k, ok := rt.bySeq[seq]
		if !ok {
			return
		}
		delete(rt.bySeq, seq)
		if e := rt.interned[k]; e.seq == seq {
			delete(rt.interned, k)
		}
		if rt.perPeer[k.peer]--; rt.perPeer[k.peer] <= 0 {
			delete(rt.perPeer, k.peer)
		}
	}, rt.seq)
	return Ref{r: t, idx: id.Slot, gen: id.Gen}
}

// RemoteRefs reports how many distinct remote actors reached through p
// have refs that may still be held: refs dropped by everyone stop counting
// once the garbage collector has reclaimed them. A transport uses it to
// tell a peer that nothing references (and that it may forget) from one
// that user code can still send to.
func (w *wire) RemoteRefs(p nodePeer) int {
	rt := w.refs
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.perPeer[p]
}

// Remote returns the peer and wire identity of a remote ref, or false for a
// local or zero Ref.
func (w *wire) Remote(r Ref) (nodePeer, WireID, bool) {
	if r.r == nil {
		return nil, WireID{}, false
	}
	return r.r.peer, r.r.id, true
}
