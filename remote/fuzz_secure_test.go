package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// Fuzz tests of the secure transport: the record layer (records split from
// the stream, handshake messages before the handshake is done, decryption
// and the plaintext buffer after) and each handshake step. The sessions use
// fixed static keys and repeatable ephemeral ones, so a handshake gives the
// same transport keys in every run and records sealed for the seeds
// decrypt.

var (
	fuzzInitiatorKey = bytes.Repeat([]byte{1}, 32)
	fuzzResponderKey = bytes.Repeat([]byte{2}, 32)
	fuzzClusterKey   = []byte("fuzz cluster key, 26 bytes")
)

// fuzzMaxFrame and fuzzBudget are small, so that seeds reach the limits.
const (
	fuzzMaxFrame = 256 << 10
	fuzzBudget   = 200 << 10
)

// fuzzSession starts a session with repeatable keys.
func fuzzSession(t testing.TB, initiator, psk bool) *session {
	t.Helper()
	cfg := Config{PrivateKey: fuzzResponderKey}
	seed := [32]byte{2}
	if initiator {
		cfg.PrivateKey, seed[0] = fuzzInitiatorKey, 1
	}
	if psk {
		cfg.ClusterKey = fuzzClusterKey
	}
	sec, err := newSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sec.random = rand.NewChaCha8(seed)
	hs, err := sec.handshake(initiator)
	if err != nil {
		t.Fatal(err)
	}
	return newSession(hs, fuzzMaxFrame)
}

// fuzzTranscript runs a handshake between repeatable sessions as far as it
// goes and returns its records (nil from the first that fails) and the
// sessions.
func fuzzTranscript(t testing.TB, ipsk, rpsk bool) (ini, resp *session, m1, m2, m3 []byte) {
	t.Helper()
	ini, resp = fuzzSession(t, true, ipsk), fuzzSession(t, false, rpsk)
	m1, err := ini.hello()
	if err != nil {
		t.Fatal(err)
	}
	if m2, err = resp.handshakeStep(false, m1[2:]); err != nil {
		return ini, resp, m1, nil, nil
	}
	if m3, err = ini.handshakeStep(true, m2[2:]); err != nil {
		return ini, resp, m1, m2, nil
	}
	if _, err := resp.handshakeStep(false, m3[2:]); err != nil {
		return ini, resp, m1, m2, m3
	}
	return ini, resp, m1, m2, m3
}

// sealFrames seals frames (with their length prefixes) as the initiator.
func sealFrames(ini *session, frames ...[]byte) []byte {
	return seal(nil, ini.tx, bytes.Join(frames, nil))
}

func FuzzRecordLayer(f *testing.F) {
	n := fuzzNode(f)
	ini, _, m1, m2, m3 := fuzzTranscript(f, true, true)
	if m3 == nil {
		f.Fatal("the repeatable handshake failed")
	}
	hello := helloFrame(protocolVersion, "fuzz", "127.0.0.1:1", 1)
	ping := appendFrame(nil, fPing, uint64(7))
	big := append(binary.BigEndian.AppendUint32(nil, 150<<10), make([]byte, 150<<10)...)  // a frame of 150 KiB: the buffer grows
	over := append(binary.BigEndian.AppendUint32(nil, 250<<10), make([]byte, 210<<10)...) // past the budget
	sealed := sealFrames(ini, hello, ping)
	// Each seed is a mode (0: responder before the handshake; 1: initiator
	// after its first message; 2: responder after the handshake) and a
	// stream. The records sealed after the handshake follow one another, so
	// each stream seals its own from a fresh transcript.
	f.Add(byte(0), m1)
	f.Add(byte(0), bytes.Join([][]byte{m1, m3, sealed}, nil))
	f.Add(byte(0), appendRecord(nil, keyAlert))
	f.Add(byte(0), appendRecord(nil, bytes.Repeat([]byte{0xaa}, maxHandshakeMsg+1)))
	f.Add(byte(1), m2)
	f.Add(byte(1), appendRecord(nil, keyAlert))
	f.Add(byte(2), sealed)
	for _, frames := range [][][]byte{{big, ping}, {over}, {ping, ping, ping}} {
		ini, _, _, _, _ := fuzzTranscript(f, true, true)
		f.Add(byte(2), sealFrames(ini, frames...))
	}
	_, _, _, m2none, _ := fuzzTranscript(f, true, false)
	f.Add(byte(1), m2none) // from a responder without the cluster key
	fr := newFrameReader(n, nil)
	f.Cleanup(fr.release)
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		var s *session
		initiator := false
		switch mode % 3 {
		case 0:
			s = fuzzSession(t, false, true)
		case 1:
			s, initiator = fuzzSession(t, true, true), true
			if _, err := s.hello(); err != nil {
				t.Fatal(err)
			}
		case 2:
			_, s, _, _, _ = fuzzTranscript(t, true, true)
		}
		b := &budget{max: fuzzBudget}
		s.budget = b
		handshake := func(msg []byte) ([]byte, error) { return s.handshakeStep(initiator, msg) }
		check := func(what string) {
			if got := b.used.Load(); got != int64(s.charged) || got > b.max {
				t.Fatalf("%s: budget used %d, session charged %d (max %d)", what, got, s.charged, b.max)
			}
			if s.charged != 0 && s.charged != cap(s.plain) {
				t.Fatalf("%s: charged %d for a buffer of %d", what, s.charged, cap(s.plain))
			}
			if s.InboundBuffered() > s.limit {
				t.Fatalf("%s: %d bytes unparsed, limit %d", what, s.InboundBuffered(), s.limit)
			}
		}
		// As the network loop does: records up to the limit, frames, again.
		c := &fakeConn{}
		feed := func(part []byte) error {
			c.buf = append(c.buf, part...)
			for {
				_, more, err := s.records(c, handshake, true)
				check("records")
				if err != nil || !s.ready() {
					return err
				}
				err = readFrames(s, fuzzMaxFrame, func(body []byte) error {
					var fm frame
					if err := fr.parse(body, &fm); err != nil && strings.Contains(err.Error(), "decoder panic") {
						t.Fatalf("decoder panicked on % x: %v", body, err)
					}
					return nil
				})
				check("frames")
				if err != nil || !more {
					return err
				}
			}
		}
		cut := 0
		if len(data) > 0 {
			cut = int(data[0]) % (len(data) + 1)
		}
		err := feed(data[:cut])
		if err == nil {
			err = feed(data[cut:])
		}
		if err != nil && !errors.Is(err, ErrHandshake) && !errors.Is(err, ErrBadFrame) &&
			!errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrBufferLimit) {
			t.Fatalf("unexpected error: %v", err)
		}
		s.compact()
		check("compact")
		s.release()
		if got := b.used.Load(); got != 0 {
			t.Fatalf("%d bytes still charged after release", got)
		}
	})
}

func FuzzHandshakeMessages(f *testing.F) {
	// Seeds: each step's real message, with and without cluster keys on
	// either side (flags bit 0: the initiator has one; bit 1: the
	// responder), the alert, and junk.
	for flags := range byte(4) {
		_, _, m1, m2, m3 := fuzzTranscript(f, flags&1 != 0, flags&2 != 0)
		for step, m := range [][]byte{m1, m2, m3} {
			if m != nil {
				f.Add(byte(step), flags, m[2:])
			}
		}
	}
	for step := range byte(3) {
		f.Add(step, byte(3), keyAlert)
		f.Add(step, byte(3), bytes.Repeat([]byte{0xaa}, 32))
		f.Add(step, byte(3), []byte{})
	}
	f.Fuzz(func(t *testing.T, step, flags byte, msg []byte) {
		ipsk, rpsk := flags&1 != 0, flags&2 != 0
		var s *session
		initiator := false
		switch step % 3 {
		case 0: // the responder reads e
			s = fuzzSession(t, false, rpsk)
		case 1: // the initiator reads e, ee, s, es
			s, initiator = fuzzSession(t, true, ipsk), true
			if _, err := s.hello(); err != nil {
				t.Fatal(err)
			}
		case 2: // the responder reads s, se
			ini := fuzzSession(t, true, ipsk)
			m1, err := ini.hello()
			if err != nil {
				t.Fatal(err)
			}
			s = fuzzSession(t, false, rpsk)
			if _, err := s.handshakeStep(false, m1[2:]); err != nil {
				return // a mismatch caught at the first message
			}
		}
		reply, err := s.handshakeStep(initiator, msg)
		switch {
		case err == nil:
			if step%3 == 0 && (len(reply) == 0 || s.ready()) {
				t.Fatalf("the responder's first step: reply %d bytes, ready %v", len(reply), s.ready())
			}
			if step%3 != 0 && !s.ready() {
				t.Fatal("the handshake's last step succeeded but the session is not ready")
			}
			if s.ready() && len(s.peerKey) != 32 {
				t.Fatalf("peer key of %d bytes", len(s.peerKey))
			}
		case !errors.Is(err, ErrHandshake):
			t.Fatalf("error not matching ErrHandshake: %v", err)
		case errors.Is(err, ErrClusterKey) && !bytes.Equal(msg, keyAlert):
			if !bytes.Equal(reply, appendRecord(nil, keyAlert)) {
				t.Fatalf("a mismatch found here answers % x, want the alert", reply)
			}
		case s.ready():
			t.Fatalf("failed step left the session ready: %v", err)
		}
	})
}
