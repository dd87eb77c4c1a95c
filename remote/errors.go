package remote

import (
	"errors"
	"fmt"
	"sync"

	"github.com/actord/actord/actor"
)

// Errors of the remote layer. Test for them with errors.Is.
var (
	// ErrNodeDown means the node an ask or monitor depended on stopped
	// answering heartbeats or lost its connection. An ask that fails with it
	// may or may not have been delivered.
	ErrNodeDown = errors.New("remote: node down")
	// ErrUnknownType means a message's type is not registered (on this node
	// when sending, on the receiving node when it arrives).
	ErrUnknownType = errors.New("remote: unknown message type")
	// ErrBadFrame means a frame could not be decoded; the connection that
	// carried it is closed.
	ErrBadFrame = errors.New("remote: malformed frame")
	// ErrFrameTooLarge means a frame exceeds Config.MaxFrame.
	ErrFrameTooLarge = errors.New("remote: frame too large")
	// ErrVersion means the peer speaks another protocol version.
	ErrVersion = errors.New("remote: protocol version mismatch")
	// ErrUnknownKind means a remote spawn named a kind the node does not have.
	ErrUnknownKind = errors.New("remote: unknown actor kind")
	// ErrTooManyPeers means a ref or a handshake named a new node while the
	// node already keeps Config.MaxPeers others.
	ErrTooManyPeers = errors.New("remote: too many peers")
	// ErrClosed means the node is closed.
	ErrClosed = errors.New("remote: node closed")
	// ErrNotSent means a request was refused before anything of it was
	// sent, because its node was known down: it certainly was not
	// delivered, so it is safe to retry (after the node is back). Such an
	// error also matches ErrNodeDown and the reason of the loss.
	ErrNotSent = errors.New("remote: not sent")
)

// notSent is the refusal of a peer known down: its loss's reason (matching
// ErrNodeDown), and ErrNotSent.
type notSent struct{ reason error }

func (e *notSent) Error() string   { return e.reason.Error() + " (not sent: the node is known down)" }
func (e *notSent) Unwrap() []error { return []error{e.reason, ErrNotSent} }

// Error codes on the wire (docs/remote.md). A code names the sentinel the
// receiving side's error matches, so errors.Is works across nodes.
const (
	codeNone       = 0
	codeDead       = 1
	codeTimeout    = 2
	codeCrashed    = 3
	codeQueueFull  = 4
	codeShutdown   = 5
	codeUnknownMsg = 6
	codeNodeDown   = 7
	codePoolFull   = 8
	codeNotLocal   = 9
	codeUnknownTyp = 10
	codeUnknownKnd = 11
	codeBadFrame   = 12
	codeVersion    = 13
	codeKilled     = 14
	codeOther      = 100
)

var codeSentinels = map[uint64]error{
	codeDead:       actor.ErrDead,
	codeTimeout:    actor.ErrTimeout,
	codeCrashed:    actor.ErrCrashed,
	codeQueueFull:  actor.ErrQueueFull,
	codeShutdown:   actor.ErrShutdown,
	codeUnknownMsg: actor.ErrUnknownMessage,
	codeNodeDown:   ErrNodeDown,
	codePoolFull:   actor.ErrPoolFull,
	codeNotLocal:   actor.ErrNotLocal,
	codeUnknownTyp: ErrUnknownType,
	codeUnknownKnd: ErrUnknownKind,
	codeBadFrame:   ErrBadFrame,
	codeVersion:    ErrVersion,
	codeKilled:     actor.ErrKilled,
}

// errorCode picks the wire code of err: the first runtime sentinel it
// matches, else the first registered error (RegisterError) it matches.
func errorCode(err error) uint64 {
	if err == nil {
		return codeNone
	}
	for _, c := range []uint64{codeDead, codeTimeout, codeCrashed, codeQueueFull, codeShutdown,
		codeUnknownMsg, codeNodeDown, codePoolFull, codeNotLocal, codeUnknownTyp, codeUnknownKnd,
		codeBadFrame, codeVersion, codeKilled} {
		if errors.Is(err, codeSentinels[c]) {
			return c
		}
	}
	userErrs.RLock()
	defer userErrs.RUnlock()
	for _, u := range userErrs.list {
		if errors.Is(err, u.sentinel) {
			return u.code
		}
	}
	return codeOther
}

// codeUser marks the wire codes of registered errors: the top bit, over the
// FNV-1a hash of "error:" and the name.
const codeUser = 1 << 63

// userErrs holds the errors registered with RegisterError.
var userErrs struct {
	sync.RWMutex
	list   []userErr // in registration order: the first match wins
	byCode map[uint64]userErr
}

type userErr struct {
	name     string
	code     uint64
	sentinel error
}

// RegisterError makes errors matching sentinel (errors.Is) keep their
// identity across nodes: an error that matches it travels with the code of
// name, and on a node where the same name is registered it matches the
// sentinel there (errors.Is on the *Error the asker gets). Register the
// same name and sentinel on every node, at init time, for example
// remote.RegisterError("capability.ErrNotPermitted", capability.ErrNotPermitted).
// The runtime's own sentinels (actor.ErrDead, ...) need no registration
// and win over registered ones; an error matching none travels as its
// text only. The registry is process-wide, like the sentinels. Registering
// a name again with the same sentinel does nothing; with another one, or
// a name whose code collides with another's, it fails.
func RegisterError(name string, sentinel error) error {
	if name == "" || sentinel == nil {
		return fmt.Errorf("remote: RegisterError: empty name or nil sentinel")
	}
	code := codeUser | typeID("error:"+name)
	userErrs.Lock()
	defer userErrs.Unlock()
	if old, ok := userErrs.byCode[code]; ok {
		if old.name == name && old.sentinel == sentinel {
			return nil
		}
		return fmt.Errorf("remote: RegisterError %q: code taken by %q", name, old.name)
	}
	if userErrs.byCode == nil {
		userErrs.byCode = map[uint64]userErr{}
	}
	u := userErr{name: name, code: code, sentinel: sentinel}
	userErrs.byCode[code] = u
	userErrs.list = append(userErrs.list, u)
	return nil
}

// sentinelOf returns the sentinel error a wire code names, if any.
func sentinelOf(code uint64) (error, bool) {
	if s, ok := codeSentinels[code]; ok {
		return s, true
	}
	if code&codeUser == 0 {
		return nil, false
	}
	userErrs.RLock()
	defer userErrs.RUnlock()
	u, ok := userErrs.byCode[code]
	return u.sentinel, ok
}

// Error is an error that came from another node. It matches, with errors.Is,
// the sentinel its code names (actor.ErrDead, actor.ErrCrashed, ..., or one
// registered with RegisterError), and carries the remote error's text.
type Error struct {
	Node string // the node that reported it
	Code uint64
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (from node %s)", e.Msg, e.Node) }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinelOf(e.Code)
	return ok && s == target
}

func decodeError(node string, code uint64, msg string) error {
	if code == codeNone {
		return nil
	}
	return &Error{Node: node, Code: code, Msg: msg}
}
