// Package gateway is the protocol between a Go program and an actord
// daemon's gateway: the capability that names a gateway (written down in
// the daemon's data dir as CapabilityFile), the messages a client asks it
// (ListMembers, SpawnKind) and their replies, and the errors both sides
// match. Package client speaks it; package daemon implements the gateway.
// It depends on neither, so a client program links neither the daemon nor
// its debugger and membership.
package gateway

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

// CapabilityFile is the name, in the data dir, of the file holding the
// daemon's gateway capability (one line, see Capability).
const CapabilityFile = "actord.cap"

// capScheme prefixes the text form of a Capability.
const capScheme = "actord://"

// Errors of the gateway. They match (errors.Is) on the client side too.
var (
	// ErrBadCapability: a capability string could not be parsed.
	ErrBadCapability = errors.New("actord: bad capability")
	// ErrNoSuchMember: a request named a member the gateway's daemon does
	// not see in the cluster.
	ErrNoSuchMember = errors.New("actord: no such member")
	// ErrNoGateway: the member exists but its gateway is not known (yet)
	// to the daemon asked.
	ErrNoGateway = errors.New("actord: member's gateway not known")
	// ErrSpawn: the kind refused its arguments or the actor failed to start.
	ErrSpawn = errors.New("actord: spawn failed")
)

// Capability is a remote ref written down: the name and remote (gnet)
// address of the node hosting the actor, and its wire identity with the
// secret. Its text form (String, ParseCapability) is
//
//	actord://<node>@<host:port>/<loop>.<slot>.<gen>#<secret: 32 hex digits>
//
// with <node> query-escaped (url.QueryEscape), e.g.
// actord://a@127.0.0.1:7700/1.0.1#00112233445566778899aabbccddeeff.
// It is a secret: whoever reads it has the authority it names.
type Capability struct {
	Node string
	Addr string
	ID   actor.WireID
}

// String returns the capability's text form.
func (c Capability) String() string {
	return fmt.Sprintf("%s%s@%s/%d.%d.%d#%s", capScheme, url.QueryEscape(c.Node), c.Addr,
		c.ID.Loop, c.ID.Slot, c.ID.Gen, hex.EncodeToString(c.ID.Secret[:]))
}

// ParseCapability parses the text form of a capability (surrounding white
// space is ignored). Errors match ErrBadCapability.
func ParseCapability(s string) (Capability, error) {
	bad := func(why string) (Capability, error) {
		return Capability{}, fmt.Errorf("%w: %s", ErrBadCapability, why)
	}
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, capScheme)
	if !ok {
		return bad("does not start with " + capScheme)
	}
	rest, secret, ok := strings.Cut(rest, "#")
	if !ok {
		return bad("no #secret")
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return bad("no /loop.slot.gen")
	}
	authority, ids := rest[:slash], rest[slash+1:]
	esc, addr, ok := strings.Cut(authority, "@")
	if !ok || esc == "" {
		return bad("no node@address")
	}
	node, err := url.QueryUnescape(esc)
	if err != nil || node == "" {
		return bad("bad node name")
	}
	if err := checkAddr(addr); err != nil {
		return bad(fmt.Sprintf("address: %v", err))
	}
	parts := strings.Split(ids, ".")
	if len(parts) != 3 {
		return bad("want loop.slot.gen")
	}
	loop, err1 := strconv.ParseUint(parts[0], 10, 16)
	slot, err2 := strconv.ParseUint(parts[1], 10, 32)
	gen, err3 := strconv.ParseUint(parts[2], 10, 32)
	if err := errors.Join(err1, err2, err3); err != nil {
		return bad("loop.slot.gen: " + err.Error())
	}
	sec, err := hex.DecodeString(secret)
	if err != nil || len(sec) != 16 {
		return bad("secret: want 32 hex digits")
	}
	c := Capability{Node: node, Addr: addr, ID: actor.WireID{Loop: uint16(loop), Slot: uint32(slot), Gen: uint32(gen)}}
	copy(c.ID.Secret[:], sec)
	return c, nil
}

// ReadCapability reads a capability file (as the daemon writes it).
func ReadCapability(path string) (Capability, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Capability{}, err
	}
	return ParseCapability(string(b))
}

// Ref makes a Ref from the capability on node n (see remote.Node.ImportRef).
func (c Capability) Ref(n *remote.Node) (actor.Ref, error) {
	return n.ImportRef(c.Node, c.Addr, c.ID)
}

// CapabilityOf writes down the ref r as n sees it (local or remote).
func CapabilityOf(n *remote.Node, r actor.Ref) (Capability, bool) {
	node, addr, id, ok := n.ExportRef(r)
	return Capability{Node: node, Addr: addr, ID: id}, ok
}

// The gateway's protocol. Register it with RegisterTypes on every node
// that talks to a gateway.

// ListMembers asks a gateway for the cluster's members; the reply is a
// MemberList.
type ListMembers struct{}

// MemberList is the reply to ListMembers, sorted by name.
type MemberList struct {
	Members []MemberInfo
}

// MemberInfo is one member of the cluster as a gateway sees it.
type MemberInfo struct {
	Name string
	Addr string // remote (gnet) address
	Self bool   // the gateway's own daemon
	// Gateway is the member's gateway, the zero Ref while it is not known.
	Gateway actor.Ref
}

// SpawnKind asks a gateway to spawn an actor of a registered kind on the
// member named Member ("" or its own name: on its own daemon; another
// member: forwarded to that member's gateway). Args go to the kind's
// function as msgpack decodes them into an `any`, integers made int64
// (uint64 above math.MaxInt64): string, int64, uint64, float64, bool,
// []byte, []any, map[string]any or nil. The reply is a SpawnResult.
//
// Owner, if set, ties the new actor to that actor: the new one is killed
// when Owner ends or the member loses its connection to Owner's node,
// unless it has ended first. A supervisor that starts its children through
// gateways sets itself, so that a child whose start's answer never reached
// it (its connection lost, the supervisor gone meanwhile) does not run on
// with nobody to stop it. A daemon refuses a tie beyond its bound of tied
// actors (SpawnFailed).
type SpawnKind struct {
	Member string
	Kind   string
	Args   any
	Owner  actor.Ref
}

// SpawnResult is the reply to SpawnKind: the new actor's ref, or a failure
// Code (one of the Spawn* constants) with a message.
type SpawnResult struct {
	Ref  actor.Ref
	Code int
	Msg  string
}

// Codes of SpawnResult.
const (
	SpawnOK          = 0
	SpawnNoMember    = 1 // ErrNoSuchMember
	SpawnNoGateway   = 2 // ErrNoGateway
	SpawnUnknownKind = 3 // remote.ErrUnknownKind
	SpawnFailed      = 4 // ErrSpawn
)

// Err returns the result's error (nil on success), matching the sentinel of
// its code.
func (r SpawnResult) Err() error {
	var base error
	switch r.Code {
	case SpawnOK:
		return nil
	case SpawnNoMember:
		base = ErrNoSuchMember
	case SpawnNoGateway:
		base = ErrNoGateway
	case SpawnUnknownKind:
		base = remote.ErrUnknownKind
	default:
		base = ErrSpawn
	}
	return fmt.Errorf("%w: %s", base, r.Msg)
}

// RegisterTypes registers the messages a client exchanges with a gateway
// on n, under the names daemons use.
func RegisterTypes(n *remote.Node) error {
	return errors.Join(
		remote.Register[ListMembers](n, "actord.gateway.ListMembers"),
		remote.Register[MemberList](n, "actord.gateway.MemberList"),
		remote.Register[SpawnKind](n, "actord.gateway.SpawnKind"),
		remote.Register[SpawnResult](n, "actord.gateway.SpawnResult"),
		registerAppTypes(n),
	)
}

// checkAddr checks that s is host:port with a host that peers can reach.
func checkAddr(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if port, err := strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("%q: bad port %q", s, p)
	}
	if h == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is an unspecified address", s)
	}
	return nil
}
