package connmgr_test

import (
	"fmt"
	"time"

	"github.com/actord/actord/connmgr"
	"github.com/actord/actord/event"
)

// A node above its high watermark: the manager decides which peers to
// close, lowest score first, sparing protected and linked ones as long as
// it can, and later forgets the idle ones. The caller does the I/O.
func Example() {
	bus := event.New(event.Config{})
	defer bus.Close()
	trimmed, _ := event.Subscribe[connmgr.PeerTrimmed](bus, event.Buffer(8))

	m, err := connmgr.New(connmgr.Config{
		HighWater: 3, LowWater: 2,
		GracePeriod: 10 * time.Second, ForgetAfter: 30 * time.Second,
		Events: bus,
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	peers := map[string]*connmgr.Peer{}
	for _, id := range []string{"a:7000", "b:7000", "c:7000", "d:7000"} {
		peers[id], _ = m.Add(id, connmgr.Managed, start)
		_ = m.Connected(id, 1, start)
	}
	_ = m.Protect("a:7000", "membership")                // never closed while tagged
	peers["b:7000"].AddLinks(1)                          // a link to one of its actors
	peers["c:7000"].Traffic(start.Add(15 * time.Second)) // recent traffic
	_ = m.Attach("d:7000", "gossip", connmgr.ScorerFunc(func() int64 { return -100 }))

	now := start.Add(20 * time.Second) // past the grace period
	for _, c := range m.Tick(now).Close {
		fmt.Printf("close %s (score %d, watched %v)\n", c.Peer, c.Score, c.Usage.Watched())
		_ = m.Disconnected(c.Peer, c.Conn, now) // once the connection is closed
	}
	ev := <-trimmed.Out()
	fmt.Println("event:", ev.Peer, ev.Score)

	later := now.Add(30 * time.Second)
	fmt.Println("forget:", m.Tick(later).Forget)
	// Output:
	// close d:7000 (score -100, watched false)
	// close c:7000 (score 458, watched false)
	// event: d:7000 -100
	// forget: [c:7000 d:7000]
}
