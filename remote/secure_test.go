package remote

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/flynn/noise"
)

// secureRaw is a raw connection to or from a node that speaks the secure
// transport as docs/remote.md specifies it, written against the Noise
// library directly rather than through the node's own session code, so the
// tests check the documented protocol. It writes and reads plaintext frames.
type secureRaw struct {
	net.Conn
	tx, rx *noise.CipherState
	plain  []byte
	peer   []byte // the node's static public key
}

// pskOf derives the Noise pre-shared key from a cluster key, as documented.
func pskOf(clusterKey []byte) []byte {
	if clusterKey == nil {
		return nil
	}
	h := sha256.Sum256(append([]byte("actord cluster key\x00"), clusterKey...))
	return h[:]
}

func rawHandshakeState(t testing.TB, initiator bool, clusterKey []byte) *noise.HandshakeState {
	t.Helper()
	suite := noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)
	static, err := suite.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := noise.Config{CipherSuite: suite, Random: rand.Reader, Pattern: noise.HandshakeXX,
		Initiator: initiator, Prologue: []byte("actord remote transport 1"), StaticKeypair: static}
	if clusterKey != nil {
		cfg.PresharedKey, cfg.PresharedKeyPlacement = pskOf(clusterKey), 3
	}
	hs, err := noise.NewHandshakeState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func writeRecord(c net.Conn, msg []byte) error {
	_, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
	return err
}

func readRecord(c net.Conn, d time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(h[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

// secureDialKey dials a node and completes the handshake as a dialing node
// would, with clusterKey (nil: none).
func secureDialKey(t testing.TB, addr string, clusterKey []byte) (*secureRaw, error) {
	t.Helper()
	c := rawDial(t, addr)
	hs := rawHandshakeState(t, true, clusterKey)
	m1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(c, m1); err != nil {
		return nil, err
	}
	m2, err := readRecord(c, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := hs.ReadMessage(nil, m2); err != nil {
		return nil, err
	}
	m3, c1, c2, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, err
	}
	if err := writeRecord(c, m3); err != nil {
		return nil, err
	}
	return &secureRaw{Conn: c, tx: c1, rx: c2, peer: hs.PeerStatic()}, nil
}

// secureDial is secureDialKey without a cluster key, failing the test on error.
func secureDial(t testing.TB, addr string) *secureRaw {
	t.Helper()
	s, err := secureDialKey(t, addr, nil)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	return s
}

// secureAccept completes the handshake on a connection a node dialed, as an
// accepting node would.
func secureAccept(t testing.TB, c net.Conn, clusterKey []byte) (*secureRaw, error) {
	hs := rawHandshakeState(t, false, clusterKey)
	m1, err := readRecord(c, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := hs.ReadMessage(nil, m1); err != nil {
		return nil, err
	}
	m2, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, err
	}
	if err := writeRecord(c, m2); err != nil {
		return nil, err
	}
	m3, err := readRecord(c, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_, c1, c2, err := hs.ReadMessage(nil, m3)
	if err != nil {
		return nil, err
	}
	return &secureRaw{Conn: c, tx: c2, rx: c1, peer: hs.PeerStatic()}, nil
}

// Write seals b (plaintext frames, or any bytes) as one record.
func (s *secureRaw) Write(b []byte) (int, error) {
	rec, err := s.tx.Encrypt(nil, nil, b)
	if err != nil {
		return 0, err
	}
	if err := writeRecord(s.Conn, rec); err != nil {
		return 0, err
	}
	return len(b), nil
}

// readFrame returns the next plaintext frame body, skipping acknowledgements.
func (s *secureRaw) readFrame(d time.Duration) ([]byte, error) {
	for {
		if len(s.plain) >= 4 {
			n := int(binary.BigEndian.Uint32(s.plain))
			if len(s.plain) >= 4+n {
				b := append([]byte(nil), s.plain[4:4+n]...)
				s.plain = s.plain[4+n:]
				if len(b) >= 2 && b[1] == fAck {
					continue // acknowledgements of what the test sent
				}
				return b, nil
			}
		}
		rec, err := readRecord(s.Conn, d)
		if err != nil {
			return nil, err
		}
		if s.plain, err = s.rx.Decrypt(s.plain, nil, rec); err != nil {
			return nil, err
		}
	}
}

// The handshake as documented: both sides learn each other's static key,
// and frames flow both ways once it is done.
func TestSecureHandshakeInterop(t *testing.T) {
	b := newTestNode(t, "b", Config{})
	c := secureDial(t, b.node.Addr())
	if !bytes.Equal(c.peer, b.node.PublicKey()) {
		t.Fatalf("node's static key %x, want %x", c.peer, b.node.PublicKey())
	}
	if _, err := c.Write(helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1)); err != nil {
		t.Fatal(err)
	}
	wb, err := c.readFrame(5 * time.Second)
	if err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	if f := parseOne(t, b.node, wb); f.kind != fWelcome || f.name != "b" {
		t.Fatalf("welcome = %+v", f)
	}
}

// What the transport refuses: plaintext frames, garbage handshakes, a
// tampered record, and, with a cluster key, nodes without it. Each
// connection is closed and counted; the node keeps serving.
func TestSecureTransportRefuses(t *testing.T) {
	key := []byte("0123456789abcdef-cluster")
	b := newTestNode(t, "b", Config{ClusterKey: key})
	a := newTestNode(t, "a", Config{ClusterKey: key})
	r := remoteActor(t, a, b, echo)
	addr := b.node.Addr()
	stillServes := func(t *testing.T) {
		t.Helper()
		if v, err := a.sys.Ask(ctxT(t), r, "up"); err != nil || v != "up" {
			t.Fatalf("legitimate ask = %v, %v", v, err)
		}
	}
	cases := map[string]func(t *testing.T){
		"plaintext hello": func(t *testing.T) {
			c := rawDial(t, addr)
			_, _ = c.Write(helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1))
			expectClosed(t, c)
		},
		"garbage handshake": func(t *testing.T) {
			c := rawDial(t, addr)
			_ = writeRecord(c, bytes.Repeat([]byte{0xaa}, 20))
			expectClosed(t, c)
		},
		"no cluster key": func(t *testing.T) {
			s, err := secureDialKey(t, addr, nil)
			if err == nil {
				// The initiator completes its side; the node refuses msg 3.
				_, _ = s.Write(helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1))
				expectClosed(t, s.Conn)
			}
		},
		"wrong cluster key": func(t *testing.T) {
			s, err := secureDialKey(t, addr, []byte("not the cluster key at all"))
			if err == nil {
				_, _ = s.Write(helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1))
				expectClosed(t, s.Conn)
			}
		},
		"tampered record": func(t *testing.T) {
			s, err := secureDialKey(t, addr, key)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := s.tx.Encrypt(nil, nil, helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1))
			rec[3] ^= 1
			_ = writeRecord(s.Conn, rec)
			expectClosed(t, s.Conn)
		},
		"replayed record": func(t *testing.T) {
			s, err := secureDialKey(t, addr, key)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := s.tx.Encrypt(nil, nil, helloFrame(protocolVersion, "raw", "127.0.0.1:1", 1))
			_ = writeRecord(s.Conn, rec)
			if _, err := s.readFrame(5 * time.Second); err != nil {
				t.Fatalf("no welcome: %v", err)
			}
			_ = writeRecord(s.Conn, rec) // the same nonce again
			expectClosed(t, s.Conn)
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			bad := b.node.Stats().BadFrames
			run(t)
			waitFor(t, 5*time.Second, "BadFrames to count it", func() bool { return b.node.Stats().BadFrames > bad })
			stillServes(t)
		})
	}
}

// A node with a cluster key cannot reach one without it (or with another):
// asks fail with ErrNodeDown, and the handshake failure is counted.
func TestSecureClusterKeyMismatch(t *testing.T) {
	b := newTestNode(t, "b", Config{ClusterKey: []byte("cluster key number one")})
	for name, key := range map[string][]byte{"none": nil, "other": []byte("cluster key number two")} {
		t.Run(name, func(t *testing.T) {
			a := newTestNode(t, "a-"+name, Config{ClusterKey: key, HeartbeatTimeout: time.Second})
			id, _ := wireOf(b.sys).LocalID(spawn(t, b.sys, echo))
			r := wireOf(a.sys).RemoteRef(a.node.peerFor(b.node.Addr(), "b"), id)
			bad := b.node.Stats().BadFrames + a.node.Stats().BadFrames
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := a.sys.Ask(ctx, r, "x"); !errors.Is(err, ErrNodeDown) {
				t.Fatalf("ask across mismatched cluster keys: %v, want ErrNodeDown", err)
			}
			waitFor(t, 5*time.Second, "the failed handshake to be counted", func() bool {
				return b.node.Stats().BadFrames+a.node.Stats().BadFrames > bad
			})
		})
	}
}

// Authorize sees each peer's name and public key, on both sides, and can
// refuse it.
func TestSecureAuthorize(t *testing.T) {
	var refuse atomic.Bool
	seen := make(chan string, 16)
	var bKey atomic.Value
	auth := func(name string, key []byte) error {
		select {
		case seen <- name:
		default: // reconnection attempts: not needed
		}
		if want, _ := bKey.Load().([]byte); name == "b" && !bytes.Equal(key, want) {
			return errors.New("key of b changed")
		}
		if refuse.Load() {
			return errors.New("not on the list")
		}
		return nil
	}
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	bKey.Store(pub)
	b := newTestNode(t, "b", Config{PrivateKey: priv, Authorize: auth})
	if !bytes.Equal(b.node.PublicKey(), pub) {
		t.Fatal("PublicKey does not match the configured private key")
	}
	a := newTestNode(t, "a", Config{Authorize: auth, HeartbeatTimeout: time.Second})
	r := remoteActor(t, a, b, echo)
	names := map[string]bool{}
	for len(names) < 2 {
		names[recv(t, seen, 5*time.Second, "Authorize calls")] = true
	}
	if !names["a"] || !names["b"] {
		t.Fatalf("Authorize saw %v, want a (at b) and b (at a)", names)
	}
	// Refused: a new connection (after b drops the current one) fails.
	refuse.Store(true)
	c := newTestNode(t, "c", Config{})
	id, _ := wireOf(b.sys).LocalID(localOf(t, a, b, r))
	rc := wireOf(c.sys).RemoteRef(c.node.peerFor(b.node.Addr(), "b"), id)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.sys.Ask(ctx, rc, "x"); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("ask from a refused node: %v, want ErrNodeDown", err)
	}
}

// A malformed key in Config makes Serve fail rather than run insecurely.
func TestSecureBadKeys(t *testing.T) {
	for name, cfg := range map[string]Config{
		"short cluster key": {ClusterKey: []byte("short")},
		"bad private key":   {PrivateKey: []byte{1, 2, 3}},
	} {
		t.Run(name, func(t *testing.T) {
			sys := actor.NewSystem(actor.Config{Loops: 1, Watchdog: -1})
			defer sys.Shutdown(context.Background())
			n := New(sys, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Serve(ctx); err == nil {
				t.Fatal("Serve accepted a bad key")
			}
		})
	}
}

func TestReadClusterKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  0123456789abcdefXYZ\n", 0o600)
	k, err := ReadClusterKey(good)
	if err != nil || string(k) != "0123456789abcdefXYZ" {
		t.Fatalf("ReadClusterKey = %q, %v", k, err)
	}
	for name, p := range map[string]string{
		"missing":        filepath.Join(dir, "missing"),
		"short":          write("short", "0123456789\n", 0o600),
		"group readable": write("group", "0123456789abcdefXYZ", 0o640),
		"world readable": write("world", "0123456789abcdefXYZ", 0o644),
	} {
		if _, err := ReadClusterKey(p); !errors.Is(err, ErrKeyFile) {
			t.Errorf("%s: %v, want ErrKeyFile", name, err)
		}
	}
}

// TestTransportCipherMatchesNoise: the transport cipher seals and opens
// exactly what a flynn/noise CipherState with the same key and nonce does,
// in both directions, and, like it, advances the decrypting nonce only on
// success. It allocates nothing per record.
func TestTransportCipherMatchesNoise(t *testing.T) {
	var key [32]byte
	for i := range key {
		key[i] = byte(i * 7)
	}
	ours := newTransportCipher(noise.UnsafeNewCipherState(cipherSuite, key, 5))
	theirs := noise.UnsafeNewCipherState(cipherSuite, key, 5)
	for i, msg := range []string{"", "a", "frames of a batch", strings.Repeat("x", 70000)} {
		rec, err := ours.Encrypt(nil, nil, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := theirs.Decrypt(nil, nil, rec); err != nil || string(got) != msg {
			t.Fatalf("record %d sealed by ours: flynn/noise opened %d bytes, %v", i, len(got), err)
		}
	}
	// The other way, with a tampered record first: refused, nonce unchanged.
	ours = newTransportCipher(noise.UnsafeNewCipherState(cipherSuite, key, 9))
	theirs = noise.UnsafeNewCipherState(cipherSuite, key, 9)
	rec, _ := theirs.Encrypt(nil, nil, []byte("reply"))
	bad := append([]byte(nil), rec...)
	bad[0] ^= 1
	if _, err := ours.Decrypt(nil, nil, bad); err == nil {
		t.Fatal("a tampered record opened")
	}
	if got, err := ours.Decrypt(nil, nil, rec); err != nil || string(got) != "reply" {
		t.Fatalf("the genuine record after a tampered one: %q, %v", got, err)
	}
	if _, err := ours.Decrypt(nil, nil, rec); err == nil {
		t.Fatal("a replayed record opened")
	}

	buf := make([]byte, 0, 256)
	plain := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		out, _ := ours.Encrypt(buf[:0], nil, plain)
		_ = out
	}); n != 0 {
		t.Errorf("Encrypt allocates %v times per record", n)
	}
}

// handshakeDH computes what noise.DH25519 computes: the same key pairs from
// the same randomness, the same shared secrets with the node's static key,
// a handshake's ephemeral key, or any other, and the same refusal of a
// low-order point.
func TestHandshakeDHMatchesNoise(t *testing.T) {
	rnd := mrand.NewChaCha8([32]byte{7})
	static, err := noise.DH25519.GenerateKeypair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdh.X25519().NewPrivateKey(static.Private)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ours := &handshakeDH{static: key, staticRaw: static.Private}
		seed := [32]byte{byte(i), 1}
		e1, err1 := ours.GenerateKeypair(mrand.NewChaCha8(seed))
		e2, err2 := noise.DH25519.GenerateKeypair(mrand.NewChaCha8(seed))
		if err1 != nil || err2 != nil || !bytes.Equal(e1.Private, e2.Private) || !bytes.Equal(e1.Public, e2.Public) {
			t.Fatalf("key pair %d: %x/%x, %v; noise %x/%x, %v", i, e1.Private, e1.Public, err1, e2.Private, e2.Public, err2)
		}
		other, _ := noise.DH25519.GenerateKeypair(rnd)
		for _, priv := range [][]byte{static.Private, e1.Private, other.Private} {
			got, err1 := ours.DH(priv, other.Public)
			want, err2 := noise.DH25519.DH(priv, other.Public)
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Fatalf("DH %d: %x, %v; noise %x, %v", i, got, err1, want, err2)
			}
		}
		low := make([]byte, 32) // the point of order 1: an all-zero secret
		if _, err := ours.DH(e1.Private, low); err == nil {
			t.Fatal("a low-order point accepted")
		}
		if _, err := noise.DH25519.DH(e1.Private, low); err == nil {
			t.Fatal("noise accepts a low-order point")
		}
	}
	if ours := handshakeSuite(key, static.Private); string(ours.Name()) != string(cipherSuite.Name()) {
		t.Fatalf("suite %q, want %q", ours.Name(), cipherSuite.Name())
	}
}

// BenchmarkHandshake: one XX handshake with a cluster key, both sides,
// with flynn/noise's X25519 and with handshakeDH.
func BenchmarkHandshake(b *testing.B) {
	a, err1 := newSecurity(Config{ClusterKey: []byte("0123456789abcdef")})
	z, err2 := newSecurity(Config{ClusterKey: []byte("0123456789abcdef")})
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	for _, bc := range []struct {
		name  string
		suite func(s *security) noise.CipherSuite
	}{
		{"noise", func(*security) noise.CipherSuite { return cipherSuite }},
		{"handshakeDH", func(s *security) noise.CipherSuite { return handshakeSuite(s.key, s.static.Private) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				hs := func(s *security, initiator bool) *noise.HandshakeState {
					h, err := noise.NewHandshakeState(noise.Config{CipherSuite: bc.suite(s), Random: s.random, Pattern: noise.HandshakeXX,
						Initiator: initiator, Prologue: []byte(noisePrologue), StaticKeypair: s.static,
						PresharedKey: s.psk, PresharedKeyPlacement: 3})
					if err != nil {
						b.Fatal(err)
					}
					return h
				}
				hi, hr := hs(a, true), hs(z, false)
				m1, _, _, _ := hi.WriteMessage(nil, nil)
				if _, _, _, err := hr.ReadMessage(nil, m1); err != nil {
					b.Fatal(err)
				}
				m2, _, _, _ := hr.WriteMessage(nil, nil)
				if _, _, _, err := hi.ReadMessage(nil, m2); err != nil {
					b.Fatal(err)
				}
				m3, _, _, _ := hi.WriteMessage(nil, nil)
				if _, c1, _, err := hr.ReadMessage(nil, m3); err != nil || c1 == nil {
					b.Fatal(err)
				}
			}
		})
	}
}
