package remote

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/flynn/noise"
)

// The transport between nodes is encrypted and authenticated with the Noise
// protocol framework (github.com/flynn/noise, a small, audited-by-use
// implementation that works on byte slices, which suits gnet's event loops
// better than crypto/tls, which wants a blocking net.Conn):
// Noise_XX_25519_AESGCM_SHA256, or Noise_XXpsk3_25519_AESGCM_SHA256 when a
// cluster key is set. See docs/remote.md, "Transport security".

// ErrHandshake means the secure handshake with a peer failed: it does not
// hold the cluster key, sent something that is not a handshake, or was
// refused by Config.Authorize. The connection is closed.
var ErrHandshake = errors.New("remote: secure handshake failed")

// noisePrologue binds both sides to this protocol: a handshake with anything
// else fails.
const noisePrologue = "actord remote transport 1"

// maxRecord is the largest record body (a Noise message); maxSealed the most
// plaintext one record carries.
const (
	maxRecord = noise.MaxMsgLen
	maxSealed = maxRecord - 16 // the AES-GCM tag
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// handshakeSuite is cipherSuite for one handshake of a node whose static
// key is static: the same functions, with X25519 done by handshakeDH.
func handshakeSuite(static *ecdh.PrivateKey, raw []byte) noise.CipherSuite {
	return noise.NewCipherSuite(&handshakeDH{static: static, staticRaw: raw}, noise.CipherAESGCM, noise.HashSHA256)
}

// handshakeDH is noise.DH25519 for one handshake, with its private keys
// parsed once. crypto/ecdh computes a private key's public key when it
// parses one, and x/crypto's X25519, which noise.DH25519 calls, parses
// its scalar at every call: each DH cost two scalar multiplications, and
// a key pair two (a handshake side did 8 where 4 do). This keeps the
// parsed static key (the node's) and ephemeral key (made here), and
// computes the same values: TestHandshakeDHMatchesNoise.
type handshakeDH struct {
	static, eph       *ecdh.PrivateKey
	staticRaw, ephRaw []byte // their bytes
}

func (h *handshakeDH) GenerateKeypair(random io.Reader) (noise.DHKey, error) {
	priv := make([]byte, 32)
	if random == nil {
		random = rand.Reader
	}
	if _, err := io.ReadFull(random, priv); err != nil {
		return noise.DHKey{}, err
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return noise.DHKey{}, err
	}
	h.eph, h.ephRaw = k, priv
	return noise.DHKey{Private: priv, Public: k.PublicKey().Bytes()}, nil
}

func (h *handshakeDH) DH(priv, pub []byte) ([]byte, error) {
	var k *ecdh.PrivateKey
	switch {
	case h.eph != nil && bytes.Equal(priv, h.ephRaw):
		k = h.eph
	case h.static != nil && bytes.Equal(priv, h.staticRaw):
		k = h.static
	default:
		var err error
		if k, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, err
		}
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return k.ECDH(p) // fails on a low-order point, as X25519 does
}

func (h *handshakeDH) DHLen() int     { return 32 }
func (h *handshakeDH) DHName() string { return "25519" }

// GenerateKey returns a new node private key: 32 random bytes, an X25519
// scalar. Keep it in Config.PrivateKey to give a node a stable identity
// across restarts.
func GenerateKey() ([]byte, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return k.Bytes(), nil
}

// PublicKey returns the public key of a node private key, as peers see it in
// Config.Authorize.
func PublicKey(private []byte) ([]byte, error) {
	k, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return nil, fmt.Errorf("remote: bad private key: %w", err)
	}
	return k.PublicKey().Bytes(), nil
}

// security is a node's keys, fixed when it starts.
type security struct {
	static noise.DHKey
	key    *ecdh.PrivateKey // static's, parsed
	psk    []byte           // 32 bytes derived from Config.ClusterKey, or nil
	random io.Reader        // for ephemeral keys: crypto/rand (fuzz tests make it repeatable)
}

// minClusterKey is the shortest cluster key accepted.
const minClusterKey = 16

func newSecurity(cfg Config) (*security, error) {
	s := &security{random: rand.Reader}
	priv := cfg.PrivateKey
	if priv == nil {
		var err error
		if priv, err = GenerateKey(); err != nil {
			return nil, err
		}
	}
	key, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("remote: bad private key: %w", err)
	}
	s.key = key
	s.static = noise.DHKey{Private: append([]byte(nil), priv...), Public: key.PublicKey().Bytes()}
	if cfg.ClusterKey != nil {
		if len(cfg.ClusterKey) < minClusterKey {
			return nil, fmt.Errorf("remote: cluster key of %d bytes, want at least %d", len(cfg.ClusterKey), minClusterKey)
		}
		h := sha256.New()
		h.Write([]byte("actord cluster key\x00"))
		h.Write(cfg.ClusterKey)
		s.psk = h.Sum(nil)
	}
	return s, nil
}

// handshake starts the handshake of one connection; the dialer initiates.
func (s *security) handshake(initiator bool) (*noise.HandshakeState, error) {
	c := noise.Config{
		CipherSuite:   handshakeSuite(s.key, s.static.Private),
		Random:        s.random,
		Pattern:       noise.HandshakeXX,
		Initiator:     initiator,
		Prologue:      []byte(noisePrologue),
		StaticKeypair: s.static,
	}
	if s.psk != nil {
		c.PresharedKey, c.PresharedKeyPlacement = s.psk, 3
	}
	return noise.NewHandshakeState(c)
}

// appendRecord appends msg (a handshake message) as one record: a 2-byte
// big-endian length, then the bytes.
func appendRecord(dst, msg []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// seal appends plain to dst as records encrypted with cs, each carrying at
// most maxSealed bytes.
func seal(dst []byte, cs *transportCipher, plain []byte) []byte {
	// Room for everything first: the cipher would otherwise regrow dst to
	// the exact size at every record, copying the batch over and over.
	dst = slices.Grow(dst, len(plain)+(len(plain)/maxSealed+1)*(2+16))
	for len(plain) > 0 {
		n := min(len(plain), maxSealed)
		at := len(dst)
		dst = append(dst, 0, 0)
		var err error
		dst, err = cs.Encrypt(dst, nil, plain[:n])
		if err != nil {
			// Only ErrMaxNonce, after 2^64 records: unreachable.
			panic(fmt.Sprintf("remote: seal: %v", err))
		}
		binary.BigEndian.PutUint16(dst[at:], uint16(len(dst)-at-2))
		plain = plain[n:]
	}
	return dst
}

// transportCipher is a Noise CipherState of the transport phase without
// its allocation per record: flynn/noise builds each nonce in a fresh array
// that escapes to the heap (two allocations per request/response
// exchange). It keeps the state's key and nonce and does what its Encrypt
// and Decrypt do: AES-256-GCM with the nonce 4 zero bytes and the 64-bit
// big-endian counter, which counts only successes on the decrypting side.
// TestTransportCipherMatchesNoise checks it against flynn/noise.
type transportCipher struct {
	aead  cipher.AEAD
	n     uint64
	nonce [12]byte
}

func newTransportCipher(cs *noise.CipherState) *transportCipher {
	n := cs.Nonce()
	aead, ok := cs.Cipher().(cipher.AEAD)
	if !ok { // not the AES-GCM suite of cipherSuite: a programming error
		panic(fmt.Sprintf("remote: transport cipher %T is not an AEAD", cs.Cipher()))
	}
	return &transportCipher{aead: aead, n: n}
}

// Encrypt appends plaintext's record to out (the tag included).
func (t *transportCipher) Encrypt(out, ad, plaintext []byte) ([]byte, error) {
	if t.n > noise.MaxNonce {
		return nil, noise.ErrMaxNonce
	}
	binary.BigEndian.PutUint64(t.nonce[4:], t.n)
	t.n++
	return t.aead.Seal(out, t.nonce[:], plaintext, ad), nil
}

// Decrypt appends ciphertext's plaintext to out, if it is authentic.
func (t *transportCipher) Decrypt(out, ad, ciphertext []byte) ([]byte, error) {
	if t.n > noise.MaxNonce {
		return nil, noise.ErrMaxNonce
	}
	binary.BigEndian.PutUint64(t.nonce[4:], t.n)
	out, err := t.aead.Open(out, t.nonce[:], ciphertext, ad)
	if err != nil {
		return nil, err
	}
	t.n++
	return out, nil
}

// stream is the part of gnet.Conn that reading records and frames needs.
type stream interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	InboundBuffered() int
}

// session is one connection's side of the secure channel: the handshake
// until it completes, then a cipher each way and the decrypted bytes not yet
// parsed into frames. Used on the connection's gnet loop only (tx is used
// under the peer's lock for dialed connections).
type session struct {
	hs      *noise.HandshakeState
	step    int // handshake messages processed
	tx, rx  *transportCipher
	peerKey []byte
	plain   []byte // decrypted stream
	off     int    // bytes of plain already parsed
	limit   int    // most unparsed plaintext held: a frame and a record
	// budget, if set, is charged with plain's capacity (Config.MaxBuffered)
	budget  *budget
	charged int
	pooled  *[]byte // plain's buffer came from plainPool (nil: it did not)
}

func newSession(hs *noise.HandshakeState, maxFrame int) *session {
	s := &session{hs: hs}
	s.setMaxFrame(maxFrame)
	return s
}

// setMaxFrame sets the largest frame the session holds the plaintext of.
func (s *session) setMaxFrame(maxFrame int) { s.limit = 4 + maxFrame + maxRecord }

// ready reports whether the handshake is complete.
func (s *session) ready() bool { return s.rx != nil }

// hello returns the initiator's first handshake message, as a record.
func (s *session) hello() ([]byte, error) {
	msg, _, _, err := s.hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	s.step = 1
	return appendRecord(nil, msg), nil
}

// ErrClusterKey means the other node is not a member of this cluster: it
// holds another cluster key (Config.ClusterKey), or none while this node
// holds one, or the reverse. It matches ErrHandshake too.
var ErrClusterKey = fmt.Errorf("%w: not a member of this cluster: cluster key mismatch or none", ErrHandshake)

// keyAlert is the record a node sends, in the clear, when a handshake
// fails as a cluster key mismatch makes it fail, so that the other node
// can say why too. It is shorter than any handshake message (32 bytes at
// least), so it cannot be mistaken for one; it only ever closes the
// connection it arrives on, which anyone on the path can do anyway.
var keyAlert = []byte("actord: cluster key mismatch")

// handshakeStep processes one handshake message from the other side and
// returns the record to answer with, if any. The handshake is XX: the
// initiator sends e; the responder e, ee, s, es; the initiator s, se (and
// psk with a cluster key). A failure that a cluster key mismatch causes
// returns an error matching ErrClusterKey and keyAlert's record, to send
// before closing.
func (s *session) handshakeStep(initiator bool, msg []byte) (reply []byte, err error) {
	if bytes.Equal(msg, keyAlert) {
		return nil, fmt.Errorf("%w (said the other node)", ErrClusterKey)
	}
	fail := func(err error) ([]byte, error) { return nil, fmt.Errorf("%w: %v", ErrHandshake, err) }
	mismatch := func(err error) ([]byte, error) {
		return appendRecord(nil, keyAlert), fmt.Errorf("%w: %v", ErrClusterKey, err)
	}
	switch {
	case !initiator && s.step == 0: // <- e
		if _, _, _, err := s.hs.ReadMessage(nil, msg); err != nil {
			if len(msg) == 32 {
				// A bare e: only a node without a cluster key sends one that
				// this node, which has one, cannot read (with a key it is
				// followed by an empty payload's tag).
				return mismatch(err)
			}
			return fail(err)
		}
		out, _, _, err := s.hs.WriteMessage(nil, nil)
		if err != nil {
			return fail(err)
		}
		s.step = 2
		return appendRecord(nil, out), nil
	case initiator && s.step == 1: // <- e, ee, s, es
		// The keys differ in whether there is one at all: the protocol
		// names, hashed in, differ, and the responder's s does not decrypt.
		if _, _, _, err := s.hs.ReadMessage(nil, msg); err != nil {
			return mismatch(err)
		}
		out, c1, c2, err := s.hs.WriteMessage(nil, nil)
		if err != nil {
			return fail(err)
		}
		s.done(c1, c2)
		return appendRecord(nil, out), nil
	case !initiator && s.step == 2: // <- s, se
		_, c1, c2, err := s.hs.ReadMessage(nil, msg)
		if err != nil {
			return mismatch(err) // the psk, mixed in here, differs
		}
		s.done(c2, c1)
		return nil, nil
	}
	return fail(errors.New("unexpected handshake message"))
}

// done installs the transport ciphers: c1 carries initiator to responder.
func (s *session) done(tx, rx *noise.CipherState) {
	s.tx, s.rx = newTransportCipher(tx), newTransportCipher(rx)
	s.peerKey = s.hs.PeerStatic()
	s.hs = nil
	s.step = 3
}

// readRecords consumes every complete record buffered on c: handshake
// messages go to handshake, which may return a record to send back; once
// the handshake is done, records are decrypted onto the session's plaintext.
// It returns the replies to send, in order (also with an error: the last
// may tell the other node why).
func (s *session) readRecords(c stream, handshake func(msg []byte) ([]byte, error)) (replies []byte, err error) {
	replies, _, err = s.records(c, handshake, false)
	return replies, err
}

// records is readRecords. With yield, a record that would take the
// unparsed plaintext past the limit is left on c (more is true) rather
// than refused: the caller parses the frames buffered, which makes room,
// and calls again.
func (s *session) records(c stream, handshake func(msg []byte) ([]byte, error), yield bool) (replies []byte, more bool, err error) {
	for {
		h, perr := c.Peek(2)
		if perr != nil || len(h) < 2 {
			return replies, false, nil
		}
		size := int(binary.BigEndian.Uint16(h))
		if !s.ready() && size > maxHandshakeMsg {
			// Refused on its length: an unauthenticated connection must not
			// make the node buffer a record of 64 KiB.
			return replies, false, fmt.Errorf("%w: a handshake message of %d bytes (max %d)", ErrHandshake, size, maxHandshakeMsg)
		}
		if c.InboundBuffered() < 2+size {
			return replies, false, nil
		}
		if s.ready() && len(s.plain)-s.off+size > s.limit {
			if yield && len(s.plain) > s.off {
				return replies, true, nil
			}
			return replies, false, fmt.Errorf("%w: %d bytes of unparsed plaintext", ErrFrameTooLarge, len(s.plain)-s.off+size)
		}
		buf, perr := c.Peek(2 + size)
		if perr != nil {
			return replies, false, nil
		}
		msg := buf[2:]
		if !s.ready() {
			var r []byte
			r, err = handshake(msg)
			replies = append(replies, r...)
		} else {
			err = s.decrypt(msg)
		}
		_, _ = c.Discard(2 + size)
		if err != nil {
			return replies, false, err
		}
	}
}

// decrypt appends a record's plaintext to plain.
func (s *session) decrypt(msg []byte) error {
	if err := s.reserve(max(len(msg)-16, 0)); err != nil {
		return err
	}
	out, err := s.rx.Decrypt(s.plain, nil, msg)
	if err != nil {
		if bytes.Equal(msg, keyAlert) {
			// The responder could not complete this node's handshake.
			return fmt.Errorf("%w (said the other node)", ErrClusterKey)
		}
		return fmt.Errorf("%w: record does not authenticate: %v", ErrBadFrame, err)
	}
	s.plain = out
	return nil
}

// reserve makes room in plain for n more bytes. A buffer grows with the
// bytes that arrived, by a quarter at most beyond them, and never past the
// end of the frame being received: a frame that announces 16 MiB and
// trickles in holds what arrived, not what it announced. The growth is
// charged to the budget first (ErrBufferLimit past it).
func (s *session) reserve(n int) error {
	need := len(s.plain) + n
	if need <= cap(s.plain) {
		return nil
	}
	if s.off > 0 { // parsed bytes first make room
		s.compact()
		if need = len(s.plain) + n; need <= cap(s.plain) {
			return nil
		}
	}
	size := plainChunk
	if need > plainChunk {
		size = need + need/4
		if len(s.plain) >= 4 {
			if end := 4 + int(binary.BigEndian.Uint32(s.plain)); end >= need && end < size {
				size = end
			}
		}
	}
	if s.budget != nil && !s.budget.take(size-s.charged) {
		return fmt.Errorf("%w (%d bytes): %d more bytes of an incomplete frame refused", ErrBufferLimit, s.budget.max, need-len(s.plain))
	}
	var buf []byte
	var pooled *[]byte
	if size == plainChunk {
		pooled = plainPool.Get().(*[]byte)
		buf = (*pooled)[:0]
	} else {
		buf = make([]byte, 0, size)
	}
	s.replace(append(buf, s.plain...), pooled, size)
	return nil
}

// replace makes buf (from the pool if pooled is set) the plaintext buffer,
// charged bytes of the budget, putting the old one back in the pool if it
// came from there. The caller has adjusted the budget.
func (s *session) replace(buf []byte, pooled *[]byte, charged int) {
	if s.pooled != nil {
		*s.pooled = s.plain[:0]
		plainPool.Put(s.pooled)
	}
	s.plain, s.pooled, s.charged = buf, pooled, charged
}

// drop lets go of plain's buffer and of its charge.
func (s *session) drop() {
	if s.budget != nil && s.charged > 0 {
		s.budget.give(s.charged)
	}
	s.replace(nil, nil, 0)
	s.off = 0
}

// release lets go of what the session holds; the connection is closed.
func (s *session) release() { s.drop() }

// Peek, Discard and InboundBuffered make the decrypted stream a stream, so
// readFrames parses it like a socket.
func (s *session) Peek(n int) ([]byte, error) {
	if len(s.plain)-s.off < n {
		return nil, errShortPlain
	}
	return s.plain[s.off : s.off+n], nil
}

func (s *session) Discard(n int) (int, error) {
	s.off += n
	return n, nil
}

func (s *session) InboundBuffered() int { return len(s.plain) - s.off }

// compact drops the parsed plaintext, keeping a partial frame. A session
// with nothing left to parse holds no buffer; one left with a little of a
// large buffer moves it to a small one.
func (s *session) compact() {
	if s.off > 0 {
		n := copy(s.plain, s.plain[s.off:])
		s.plain = s.plain[:n]
		s.off = 0
	}
	switch n := len(s.plain); {
	case n == 0:
		s.drop()
	case cap(s.plain) > plainChunk && n <= plainChunk/2:
		pooled := plainPool.Get().(*[]byte)
		if s.budget != nil {
			s.budget.give(s.charged - plainChunk)
		}
		s.replace(append((*pooled)[:0], s.plain...), pooled, plainChunk)
	}
}

var errShortPlain = errors.New("remote: short plaintext")

// ErrKeyFile means a cluster key file is unusable: unreadable, too short, or
// readable by others than its owner.
var ErrKeyFile = errors.New("remote: bad cluster key file")

// ReadClusterKey reads a cluster key (for Config.ClusterKey) from a file: its
// content with surrounding white space trimmed. Like an SSH private key, the
// file must be readable by its owner only (mode 0600 or 0400), since the key
// admits nodes to the cluster; the key must be at least 16 bytes. Make one
// with, for example, `head -c 32 /dev/urandom | base64 > cluster.key; chmod
// 600 cluster.key`. Errors match ErrKeyFile.
func ReadClusterKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v: make it readable by its owner only (chmod 600)", ErrKeyFile, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minClusterKey {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want at least %d", ErrKeyFile, path, len(b), minClusterKey)
	}
	return b, nil
}
