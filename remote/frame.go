package remote

import "github.com/actord/actord/actor"

// Frames: their kinds and the fields of each, described once. The table
// drives the writer (frame_write.go), the parser (frame_read.go), the
// array lengths on the wire, and the tests' samples and fuzz seeds.

// Protocol version spoken by this implementation (docs/remote.md).
const protocolVersion = 7

// Frame kinds. A frame is a 4-byte big-endian length followed by that many
// bytes: a msgpack array whose first element is the kind.
const (
	fHello     = 1  // [1, version, name, incarnation, listenAddr, epoch, cutIncarnation, cutEpoch]
	fWelcome   = 2  // [2, version, name, incarnation]
	fSend      = 3  // [3, to, from|nil, typeID, payload]: to and from interned (intern.go)
	fAsk       = 4  // [4, to, from, pidx, pgen, typeID, payload]: to and from interned
	fReply     = 5  // [5, loop, pidx, pgen, code, message, typeID, payload]
	fPing      = 6  // [6, seq]
	fPong      = 7  // [7, seq]
	fMonitor   = 8  // [8, target, watcher]
	fDemonitor = 9  // [9, target, watcher]
	fStop      = 10 // [10, target, code, message]
	fSpawn     = 11 // [11, pidx, pgen, owner|nil, kind, typeID, payload]: owner, if set, is linked to the new actor (inSpawn)
	fGoodbye   = 12 // [12, code, message]
	fDown      = 13 // [13, target, watcher, code, message]
	fLink      = 14 // [14, target, from]
	fUnlink    = 15 // [15, target, from]
	fExit      = 16 // [16, to, from, link, code, message]
	fResolve   = 17 // [17, pidx, pgen, typeID, payload]: a sealed sturdy-ref request (sturdy.go)
	fAck       = 18 // [18, bytes]: frame bytes received so far on the connection (sent back on it)
	fLifecycle = 19 // [19, to, from, pidx, pgen, op, timeout, code, message]: an acknowledged lifecycle request, answered by fReply
)

// field is one field of a frame, as the table lists it: which member of
// frame holds it and how it is encoded.
type field uint8

const (
	fldVersion     field = iota + 1 // version: unsigned
	fldName                         // name: string, at most maxRefField bytes
	fldIncarnation                  // incarnation: unsigned
	fldAddr                         // addr: string, at most maxRefField bytes
	fldEpoch                        // epoch: unsigned
	fldSeq                          // seq: unsigned
	fldTo                           // to: actor id
	fldFrom                         // from: actor id
	fldFromOpt                      // from: actor id, or nil (hasFrom says which)
	fldLoop                         // loop: unsigned, at most 0xFFFF
	fldPidx                         // pidx: unsigned, 32 bits
	fldPgen                         // pgen: unsigned, 32 bits
	fldCode                         // code: unsigned (an error code)
	fldMsg                          // msg: string (an error message)
	fldKindName                     // kindName: string
	fldLink                         // link: 0 or 1
	fldOp                           // op: unsigned, a lifecycle op (1–4), plus 0x80 for "at once, without Terminate"
	fldTimeout                      // timeout: unsigned nanoseconds, at most MaxInt64
	fldPayload                      // typeID and payload: two array elements
	fldCutInc                       // cutInc: unsigned, an incarnation of the receiving node (0: none)
	fldCutEpoch                     // cutEpoch: unsigned, a connection epoch of that incarnation
	fldToIn                         // to: an interned actor id (intern.go)
	fldFromIn                       // from: an interned actor id
	fldFromInOpt                    // from: an interned actor id, or nil (hasFrom says which)
)

// frameFields lists the fields of each frame kind, in order.
var frameFields = [...][]field{
	fHello:     {fldVersion, fldName, fldIncarnation, fldAddr, fldEpoch, fldCutInc, fldCutEpoch},
	fWelcome:   {fldVersion, fldName, fldIncarnation},
	fSend:      {fldToIn, fldFromInOpt, fldPayload},
	fAsk:       {fldToIn, fldFromIn, fldPidx, fldPgen, fldPayload},
	fReply:     {fldLoop, fldPidx, fldPgen, fldCode, fldMsg, fldPayload},
	fPing:      {fldSeq},
	fPong:      {fldSeq},
	fMonitor:   {fldTo, fldFrom},
	fDemonitor: {fldTo, fldFrom},
	fStop:      {fldTo, fldCode, fldMsg},
	fSpawn:     {fldPidx, fldPgen, fldFromOpt, fldKindName, fldPayload},
	fGoodbye:   {fldCode, fldMsg},
	fDown:      {fldTo, fldFrom, fldCode, fldMsg},
	fLink:      {fldTo, fldFrom},
	fUnlink:    {fldTo, fldFrom},
	fExit:      {fldTo, fldFrom, fldLink, fldCode, fldMsg},
	fResolve:   {fldPidx, fldPgen, fldPayload},
	fAck:       {fldSeq},
	fLifecycle: {fldTo, fldFrom, fldPidx, fldPgen, fldOp, fldTimeout, fldCode, fldMsg},
}

// fieldCount is the array length of each frame kind on the wire: the kind,
// then one element per field (two for a payload). Zero for no kind.
var fieldCount = func() (n [len(frameFields)]int) {
	for k, fs := range frameFields {
		if len(fs) == 0 {
			continue
		}
		n[k] = 1
		for _, f := range fs {
			n[k]++
			if f == fldPayload {
				n[k]++
			}
		}
	}
	return n
}()

// frame is one frame, decoded or to encode. Which members a kind uses is
// in frameFields.
type frame struct {
	kind        uint64
	version     uint64
	name, addr  string
	incarnation uint64
	epoch       uint64
	// fHello: the newest connection of the receiving node that the sender
	// cut when it lost its own connection (peer.cut); 0, 0 for none
	cutInc, cutEpoch uint64
	seq              uint64
	link             uint64 // fExit: 1 for the exit signal of a link
	op               uint64 // fLifecycle: the op, with opBrutal
	timeout          uint64 // fLifecycle: nanoseconds
	to, from         actor.WireID
	hasFrom          bool // fSend, fSpawn: from is set (fldFromOpt, fldFromInOpt)
	// an interned to or from (fldToIn, fldFromIn): the index of the
	// connection's table it came as (toIn, fromIn false: a full id); read
	// only, a writer assigns its own
	toIdx, fromIdx uint16
	toIn, fromIn   bool
	loop           uint16
	pidx, pgen     uint32
	code           uint64
	msg            string
	kindName       string
	typeID         uint64
	payload        any
	payloadErr     error // the payload could not be decoded (unknown type, bad value)
}

// setError fills the error fields (code and message) of f from err.
func (f *frame) setError(err error) {
	f.code = errorCode(err)
	if err != nil {
		f.msg = err.Error()
	}
}
