package remote

import (
	"testing"
)

// BenchmarkFrameParse: parsing one frame body (without its length
// prefix) on an accepted connection's reader: a Send of 32 bytes with
// its sender, defining both ids (send) and naming them by index as every
// later Send on the connection does (send-indexed), an Ask by index, a
// Reply and an Ack.
func BenchmarkFrameParse(b *testing.B) {
	n := codecNode(b, Config{})
	fw := newFrameWriter(n)
	body := func(f frame) []byte {
		out, err := fw.appendFrame(nil, &f)
		if err != nil {
			b.Fatal(err)
		}
		return out[4:]
	}
	payload := make([]byte, 32)
	send := frame{kind: fSend, to: wid(0, 12, 3, 9), from: wid(1, 7, 2, 5), hasFrom: true, payload: payload}
	define := body(send) // the first frame to and from these ids defines them
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"send", define},
		{"send-indexed", body(send)},
		{"ask", body(frame{kind: fAsk, to: wid(0, 12, 3, 9), from: wid(1, 7, 2, 5), pidx: 300, pgen: 2, payload: payload})},
		{"reply", body(frame{kind: fReply, loop: 1, pidx: 300, pgen: 2, payload: payload})},
		{"ack", body(frame{kind: fAck, seq: 1 << 20})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fr := newFrameReader(n, nil)
			var f frame
			if err := fr.parse(define, &f); err != nil { // the connection's defines
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := fr.parse(bc.body, &f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
