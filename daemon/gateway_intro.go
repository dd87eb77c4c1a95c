package daemon

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flynn/noise"

	"github.com/actord/actord/actor"
)

// How gateways learn each other's refs, and why it is safe (docs/client.md,
// "Gateways"; docs/deploy.md, "Security").
//
// A daemon records member M's gateway only from an answer that M's node key
// made, bound to a question this daemon asked just now:
//
//  1. The daemon (D) asks: it seals a hello to M's node key, as M's
//     membership metadata gives it (cluster.Member.Key), with the Noise
//     one-way pattern X (Noise_X_25519_AESGCM_SHA256): D's own node key is
//     transmitted and authenticated inside it, a fresh ephemeral key makes
//     it unique, and the prologue names M's name and address as D sees
//     them. The hello carries D's name and its gateway's wire identity; it
//     goes to M's node as the argument of the remote kind helloKind.
//  2. M opens it with its private key, checks that D's name belongs to a
//     member whose metadata gives the key the hello was sealed with, and
//     sends its own gateway's wire identity, sealed with the key the hello
//     established, to D's gateway (gatewayWelcome).
//  3. D opens the welcome with the state of the hello it has outstanding
//     for M, and only then records M's gateway (and logs it).
//
// So neither where a message came from nor which connection carried it
// matters: a welcome that opens was made by the holder of M's node key in
// answer to this very hello (the key agreement mixes D's fresh ephemeral
// key with M's static one), which no other node can forge or replay,
// whether it holds the cluster key or not. Nothing is ever recorded from a
// hello: it is unauthenticated until the welcome comes back, and an old
// one could be replayed. A hello whose sender's gateway differs from the
// one recorded only makes the receiver ask again (a member that restarted
// at the same address gets its new gateway known this way, even when the
// membership reports no change).
//
// The binding of a member's name to its address and key is the gossip's,
// which the cluster key authenticates: a holder of the cluster key could
// gossip a false key for M until M refutes it; a change of a member's key
// or address drops its recorded gateway and is logged.

// helloPrologue binds a hello and its welcome to the gateway protocol and
// to the member asked, as the asking daemon sees it.
func helloPrologue(member, addr string) []byte {
	b := make([]byte, 0, 64+len(member)+len(addr))
	b = append(b, "actord gateway introduction 1\x00"...)
	b = append(b, member...)
	b = append(b, 0)
	return append(b, addr...)
}

var helloSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// Sizes on the wire.
const (
	wireIDLen = 2 + 4 + 4 + 16 // loop, slot, gen, secret
	// maxHelloName bounds the name in a hello.
	maxHelloName = 255
	// maxHello bounds a hello: an ephemeral key, a sealed static key (key
	// and tag), a sealed payload (wire identity, name and tag).
	maxHello   = 32 + (32 + 16) + (wireIDLen + maxHelloName + 16)
	welcomeLen = wireIDLen + 16
)

// errBadHello: a hello or a welcome does not open (wrong key, replayed,
// forged, truncated or junk).
var errBadHello = errors.New("actord: gateway introduction does not open")

func appendWireID(b []byte, id actor.WireID) []byte {
	b = binary.BigEndian.AppendUint16(b, id.Loop)
	b = binary.BigEndian.AppendUint32(b, id.Slot)
	b = binary.BigEndian.AppendUint32(b, id.Gen)
	return append(b, id.Secret[:]...)
}

func parseWireID(b []byte) actor.WireID {
	id := actor.WireID{Loop: binary.BigEndian.Uint16(b), Slot: binary.BigEndian.Uint32(b[2:]), Gen: binary.BigEndian.Uint32(b[6:])}
	copy(id.Secret[:], b[10:wireIDLen])
	return id
}

// newHello seals a hello from the member self (with key pair static, its
// gateway gw) to the member named member at addr with node key memberKey.
// recv opens the welcome that answers it.
func newHello(static noise.DHKey, self string, gw actor.WireID, member, addr string, memberKey []byte) (hello []byte, recv *noise.CipherState, err error) {
	if len(self) > maxHelloName {
		return nil, nil, fmt.Errorf("gateway introduction: own name of %d bytes, at most %d", len(self), maxHelloName)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: helloSuite, Random: rand.Reader, Pattern: noise.HandshakeX, Initiator: true,
		Prologue: helloPrologue(member, addr), StaticKeypair: static, PeerStatic: memberKey,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("gateway introduction: %w", err)
	}
	payload := append(appendWireID(make([]byte, 0, wireIDLen+len(self)), gw), self...)
	hello, _, recv, err = hs.WriteMessage(nil, payload)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway introduction: %w", err)
	}
	return hello, recv, nil
}

// openedHello is a hello opened by the member it was sealed to.
type openedHello struct {
	from    string       // the name the sender gives
	key     []byte       // the node key it was sealed with
	gateway actor.WireID // the sender's gateway
	reply   *noise.CipherState
}

// openHello opens a hello sealed to the member self at addr (key pair
// static). It never panics and allocates in proportion to maxHello at most:
// hellos come from anyone who can reach the node.
func openHello(static noise.DHKey, self, addr string, hello []byte) (h openedHello, err error) {
	if len(hello) > maxHello {
		return h, fmt.Errorf("%w: %d bytes, at most %d", errBadHello, len(hello), maxHello)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: helloSuite, Random: rand.Reader, Pattern: noise.HandshakeX,
		Prologue: helloPrologue(self, addr), StaticKeypair: static,
	})
	if err != nil {
		return h, fmt.Errorf("gateway introduction: %w", err)
	}
	payload, _, reply, err := hs.ReadMessage(nil, hello)
	if err != nil {
		return h, fmt.Errorf("%w: %v", errBadHello, err)
	}
	if len(payload) <= wireIDLen || reply == nil {
		return h, fmt.Errorf("%w: payload of %d bytes", errBadHello, len(payload))
	}
	return openedHello{from: string(payload[wireIDLen:]), key: hs.PeerStatic(), gateway: parseWireID(payload), reply: reply}, nil
}

// welcome seals this member's gateway gw for the sender of h.
func (h openedHello) welcome(gw actor.WireID) ([]byte, error) {
	return h.reply.Encrypt(nil, nil, appendWireID(make([]byte, 0, wireIDLen), gw))
}

// openWelcome opens a welcome with the state of the hello it answers; a
// welcome that does not open leaves recv usable for the right one.
func openWelcome(recv *noise.CipherState, welcome []byte) (actor.WireID, error) {
	if len(welcome) != welcomeLen {
		return actor.WireID{}, fmt.Errorf("%w: welcome of %d bytes, want %d", errBadHello, len(welcome), welcomeLen)
	}
	plain, err := recv.Decrypt(nil, nil, welcome)
	if err != nil || len(plain) != wireIDLen {
		return actor.WireID{}, fmt.Errorf("%w: welcome: %v", errBadHello, err)
	}
	return parseWireID(plain), nil
}
