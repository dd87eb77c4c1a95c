package remote

import (
	"testing"

	"github.com/actord/actord/actor"
)

// BenchmarkSendPath: the work a Send costs for the ids it names, at both
// ends, without the network: the frame written as a peer writes it, parsed
// as an accepted connection parses it, its target resolved (the secret
// checked) and its sender's ref found, as inSend does. A stream to one
// target from one sender, and one round-robin over 64 targets from 8
// senders; bytes/msg is the frame's size, its length prefix included, and
// cpu-ns/op the process's CPU time per message.
func BenchmarkSendPath(b *testing.B) {
	n := codecNode(b, Config{})
	var to, from []actor.WireID
	for i := range 64 {
		id, ok := n.wire.LocalID(spawn(b, n.sys, echo))
		if !ok {
			b.Fatal("no local id")
		}
		to = append(to, id)
		from = append(from, wid(uint16(i%2), uint32(100+i), 1, byte(i)))
	}
	p := n.peerFor("127.0.0.1:9", "other")
	payload := make([]byte, 32)
	for _, bc := range []struct {
		name             string
		targets, senders int
	}{{"1-target", 1, 1}, {"64-targets", 64, 8}} {
		b.Run(bc.name, func(b *testing.B) {
			fw := newFrameWriter(n)
			ic := &inConn{fr: newFrameReader(n, nil), from: p}
			var buf []byte
			var f, g frame
			i, size := 0, 0
			b.ReportAllocs()
			cpu := cpuMeter()
			for b.Loop() {
				f = frame{kind: fSend, to: to[i%bc.targets], from: from[i%bc.senders], hasFrom: true, payload: payload}
				i++
				buf, _ = fw.appendFrame(buf[:0], &f)
				size = len(buf)
				if err := ic.fr.parse(buf[4:], &g); err != nil {
					b.Fatal(err)
				}
				if _, ok := benchResolveTo(ic, n, &g); !ok {
					b.Fatal("target not resolved")
				}
				_ = ic.remoteFrom(n, g.from)
			}
			cpu(b)
			b.ReportMetric(float64(size), "bytes/msg")
		})
	}
}

// benchResolveTo is how inSend resolves a frame's target.
func benchResolveTo(ic *inConn, n *Node, f *frame) (actor.Ref, bool) { return ic.resolveTo(n, f) }
