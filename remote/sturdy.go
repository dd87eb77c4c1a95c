package remote

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/actord/actord/actor"
	"github.com/flynn/noise"
)

// Sturdy refs, after the E language's SturdyRef: a capability written down
// as a string (in a config file, a database, a message to a person), which
// stays valid across restarts of the node that issued it and is turned back
// into a live ref with Node.Resolve.
//
// A sturdy ref names the issuing node by its address and public key, and an
// exported name by a 128-bit swiss number: HMAC-SHA256 of the name and a
// generation, keyed with a key derived from the node's private key. So the
// node keeps no table of what it issued: the same key, name and generation
// give the same string after a restart (give the node a stable identity
// with Config.PrivateKey), and exporting the name with a higher generation
// revokes every copy of the old strings. The swiss number never travels in
// the clear and never reaches a node without the named key: Resolve seals
// it to that key (the Noise N pattern), and the answer comes back sealed by
// the same exchange, so only the named node can read the request or make
// the answer; and Resolve accepts the answer only if its connection to the
// address is authenticated with that key, so a node there that merely
// relays both never gets the live ref either.

// ErrBadSturdyRef means a string is not a sturdy ref.
var ErrBadSturdyRef = errors.New("remote: malformed sturdy ref")

const (
	sturdyScheme   = "actord://"
	sturdyPrologue = "actord sturdy ref 1"
	// maxResolving bounds the resolve requests a node answers at once (each
	// costs a Diffie-Hellman on a goroutine of its own); beyond it a
	// request is refused with actor.ErrQueueFull.
	maxResolving = 256
)

// exports is a node's exported names and the swiss numbers they answer to.
type exports struct {
	mu      sync.Mutex
	key     []byte                 // HMAC key, derived from the node's private key
	bySwiss map[[16]byte]actor.Ref // current generation of each name only
	byName  map[string][16]byte
}

func (e *exports) swiss(name string, gen uint64) [16]byte {
	m := hmac.New(sha256.New, e.key)
	m.Write([]byte(name))
	var g [9]byte
	binary.BigEndian.PutUint64(g[1:], gen) // g[0] = 0 separates the name
	m.Write(g[:])
	var s [16]byte
	copy(s[:], m.Sum(nil))
	return s
}

func (n *Node) sturdyKey() []byte {
	h := sha256.New()
	h.Write([]byte("actord sturdy ref key\x00"))
	h.Write(n.sec.static.Private)
	return h.Sum(nil)
}

// Export makes the local actor r reachable through a sturdy ref, which it
// returns: "actord://" + this node's address + "/" + its public key + "/" +
// the swiss number of name at generation gen (both base64url). Exporting a
// name again re-points it to r (after a restart, say: the string does not
// change as long as the node's key, the name and gen do not), and with
// another gen it revokes the strings of the previous one, which then
// resolve like a dead actor, as do those of a name that was never exported
// or was unexported. It fails for an empty name, a node with a secure
// configuration error, or a ref that is not a local actor.
func (n *Node) Export(name string, gen uint64, r actor.Ref) (string, error) {
	if n.secErr != nil {
		return "", n.secErr
	}
	if name == "" {
		return "", fmt.Errorf("remote: Export: empty name")
	}
	if _, ok := n.wire.LocalID(r); !ok {
		return "", fmt.Errorf("remote: Export %q: %v is not a local actor", name, r)
	}
	e := &n.exports
	e.mu.Lock()
	if e.key == nil {
		e.key = n.sturdyKey()
		e.bySwiss, e.byName = map[[16]byte]actor.Ref{}, map[string][16]byte{}
	}
	s := e.swiss(name, gen)
	if old, ok := e.byName[name]; ok {
		delete(e.bySwiss, old)
	}
	e.byName[name], e.bySwiss[s] = s, r
	e.mu.Unlock()
	enc := base64.RawURLEncoding
	return sturdyScheme + n.Addr() + "/" + enc.EncodeToString(n.sec.static.Public) + "/" + enc.EncodeToString(s[:]), nil
}

// Unexport withdraws name: its sturdy refs resolve like a dead actor until
// it is exported again. Refs already resolved stay valid (they are the
// actor's own refs: stop the actor, or give out a capability.Facet and
// revoke it, to cut them off).
func (n *Node) Unexport(name string) {
	e := &n.exports
	e.mu.Lock()
	if s, ok := e.byName[name]; ok {
		delete(e.bySwiss, s)
		delete(e.byName, name)
	}
	e.mu.Unlock()
}

func (n *Node) lookupExport(s [16]byte) (actor.Ref, bool) {
	e := &n.exports
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.bySwiss[s]
	return r, ok
}

// parseSturdy splits a sturdy ref into address, public key and swiss number.
func parseSturdy(s string) (addr string, pub []byte, swiss [16]byte, err error) {
	rest, ok := strings.CutPrefix(s, sturdyScheme)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" {
		return "", nil, swiss, fmt.Errorf("%w: %q", ErrBadSturdyRef, s)
	}
	enc := base64.RawURLEncoding
	pub, err1 := enc.DecodeString(parts[1])
	sw, err2 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(pub) != 32 || len(sw) != 16 {
		return "", nil, swiss, fmt.Errorf("%w: %q", ErrBadSturdyRef, s)
	}
	copy(swiss[:], sw)
	return parts[0], pub, swiss, nil
}

func sturdyHandshake(random io.Reader, initiator bool, static noise.DHKey, peer []byte) (*noise.HandshakeState, error) {
	if random == nil {
		random = rand.Reader
	}
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Random:        random,
		Pattern:       noise.HandshakeN,
		Initiator:     initiator,
		Prologue:      []byte(sturdyPrologue),
		StaticKeypair: static,
		PeerStatic:    peer,
	})
}

// Resolve turns a sturdy ref into a live ref of the actor its name is
// exported to now. For another node's sturdy ref it asks that node (dialing
// it if need be) and waits for the answer or ctx. It fails with
// ErrBadSturdyRef for a string that is not one, and with an error matching
// actor.ErrDead for a name not exported (any more) at that generation, a
// revoked or forged swiss number, or an answer from a node without the key
// the string names; with the transport's errors (ErrNodeDown, ...) when the
// node cannot be reached.
func (n *Node) Resolve(ctx context.Context, sturdy string) (actor.Ref, error) {
	addr, pub, swiss, err := parseSturdy(sturdy)
	if err != nil {
		return actor.Ref{}, err
	}
	if n.secErr != nil {
		return actor.Ref{}, n.secErr
	}
	if bytes.Equal(pub, n.sec.static.Public) {
		if r, ok := n.lookupExport(swiss); ok {
			return r, nil
		}
		return actor.Ref{}, fmt.Errorf("%w: sturdy ref not exported on node %s", actor.ErrDead, n.name)
	}
	hs, err := sturdyHandshake(n.sturdyRandom, true, noise.DHKey{}, pub)
	if err != nil {
		return actor.Ref{}, fmt.Errorf("%w: %v", ErrBadSturdyRef, err)
	}
	req, _, back, err := hs.WriteMessage(nil, swiss[:])
	if err != nil {
		return actor.Ref{}, fmt.Errorf("%w: %v", ErrBadSturdyRef, err)
	}
	p, err := n.peer(addr)
	if err != nil {
		return actor.Ref{}, err
	}
	v, err := p.call(ctx, fResolve, func(f *frame) { f.payload = req })
	if err != nil {
		return actor.Ref{}, err
	}
	sealed, ok := v.([]byte)
	if !ok {
		return actor.Ref{}, fmt.Errorf("%w: bad answer from %s", actor.ErrDead, addr)
	}
	plain, err := back.Decrypt(nil, nil, sealed)
	if err != nil || len(plain) != 2+4+4+16 {
		// not sealed by the key the string names: an impostor at that address
		return actor.Ref{}, fmt.Errorf("%w: the answer from %s is not from the node the sturdy ref names", actor.ErrDead, addr)
	}
	// The answer proves that the named key made it, but the ref will be
	// used through the connection to addr: a node there without that key
	// could have relayed the request and the answer, and would then see
	// every message, secret included. The connection must be to the key,
	// and stay so (pin).
	if err := p.pin(pub); err != nil {
		return actor.Ref{}, fmt.Errorf("%w: %v", actor.ErrDead, err)
	}
	id := actor.WireID{Loop: binary.BigEndian.Uint16(plain), Slot: binary.BigEndian.Uint32(plain[2:]), Gen: binary.BigEndian.Uint32(plain[6:])}
	copy(id.Secret[:], plain[10:])
	return n.wire.RemoteRef(p, id), nil
}

// answerResolve opens a resolve request sealed to this node's key and
// returns the answer sealed for the asker, or false if the request cannot
// be opened or names nothing exported: the asker gets ErrDead, whichever.
func (n *Node) answerResolve(req []byte) ([]byte, bool) {
	hs, err := sturdyHandshake(n.sturdyRandom, false, n.sec.static, nil)
	if err != nil {
		return nil, false
	}
	sw, _, back, err := hs.ReadMessage(nil, req)
	if err != nil || len(sw) != 16 {
		return nil, false
	}
	r, ok := n.lookupExport([16]byte(sw))
	if !ok {
		return nil, false
	}
	id, ok := n.wire.LocalID(r)
	if !ok {
		return nil, false
	}
	plain := make([]byte, 10, 2+4+4+16)
	binary.BigEndian.PutUint16(plain, id.Loop)
	binary.BigEndian.PutUint32(plain[2:], id.Slot)
	binary.BigEndian.PutUint32(plain[6:], id.Gen)
	plain = append(plain, id.Secret[:]...)
	sealed, err := back.Encrypt(nil, nil, plain)
	if err != nil {
		return nil, false
	}
	return sealed, true
}
