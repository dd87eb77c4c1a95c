package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/vmihailenco/msgpack/v5"
)

// counterActor counts the messages it gets.
func counterActor(n *atomic.Int64) fnActor {
	return func(c *actor.Context, msg any) (any, error) {
		n.Add(1)
		return msg, nil
	}
}

// welcomed reports whether p's connection is up: its handshake done and
// the peer's Welcome read (from then on it is no longer known down).
func welcomed(p *peer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link.phase == linkUp && p.link.down == nil
}

// waitDown waits until a's peer at addr is known down.
func waitDown(t testing.TB, a *testNode, addr string) *peer {
	t.Helper()
	p, err := a.node.peer(addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the peer to be known down", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.link.down != nil
	})
	return p
}

// Everything sent to a node known down fails at once with ErrNodeDown:
// one-way sends (which used to be queued and lost), asks from goroutines
// and actors (which used to wait for the redial), spawns and links; a
// monitor gets its Down at once.
func TestPeerKnownDownFailsAtOnce(t *testing.T) {
	// No retry within the test: what fails, fails because the peer is known
	// down, not because a redial failed.
	a := newTestNode(t, "a", Config{ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	b := newTestNode(t, "b", Config{})
	var got atomic.Int64
	r := remoteActor(t, a, b, counterActor(&got))
	if err := a.sys.Send(r, "before"); err != nil {
		t.Fatal(err)
	}
	ask(t, a, r, "sync")
	addr := b.node.Addr()
	b.close()
	waitDown(t, a, addr)

	if err := a.sys.Send(r, "lost?"); !errors.Is(err, ErrNodeDown) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("Send to a node known down: %v, want ErrNodeDown and ErrNotSent", err)
	}
	// A deadline shorter than any redial: an ask that waited for one would
	// end with the context's error, not ErrNodeDown.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := a.sys.Ask(ctx, r, "x"); !errors.Is(err, ErrNodeDown) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("goroutine ask to a node known down: %v, want ErrNodeDown and ErrNotSent", err)
	}
	res := make(chan askRes, 1)
	ak := asker(t, a, res)
	if err := a.sys.Send(ak, askReq{r, "y", time.Minute}); err != nil {
		t.Fatal(err)
	}
	if x := recv(t, res, 2*time.Second, "an actor's ask to a node known down"); !errors.Is(x.err, ErrNodeDown) {
		t.Fatalf("actor ask to a node known down: %v, want ErrNodeDown", x.err)
	}
	if _, err := a.node.Spawn(ctx, addr, "anything", nil); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("spawn on a node known down: %v, want ErrNodeDown", err)
	}
	dn := make(chan actor.Down, 1)
	w := watcher(t, a, dn)
	monitorVia(t, a, w, r)
	if d := recv(t, dn, 2*time.Second, "the Down of a monitor of a node known down"); d.Ref != r || !errors.Is(d.Reason, ErrNodeDown) {
		t.Fatalf("Down = %+v", d)
	}
	linker := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) { return nil, c.Link(r) })
	if _, err := a.sys.Ask(ctxT(t), linker, "link"); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("link to a node known down: %v, want ErrNodeDown", err)
	}
	if st := a.node.Stats(); st.NodeDownRefused < 4 {
		t.Fatalf("NodeDownRefused = %d, want every refusal counted", st.NodeDownRefused)
	}
}

// ackingPeer is a fake node that acknowledges the first ackFirst frames it
// reads (the hello included) and then only reads; it reports every frame
// it reads on frames and closes the connection when close is closed.
func ackingPeer(t testing.TB, ackFirst int, frames chan<- []byte, closeConn <-chan struct{}) string {
	return fakePeer(t, 0, func(c net.Conn, done <-chan struct{}) {
		sc, err := secureAccept(t, c, nil)
		if err != nil {
			return
		}
		go func() {
			select {
			case <-done:
			case <-closeConn:
			}
			_ = c.Close()
		}()
		var rx uint64
		for i := 0; ; i++ {
			b, err := sc.readFrame(time.Minute)
			if err != nil {
				return
			}
			rx += uint64(4 + len(b))
			if i < ackFirst {
				if _, err := sc.Write(appendFrame(nil, fAck, rx)); err != nil {
					return
				}
			}
			if i > 0 { // not the hello
				frames <- b
			}
		}
	})
}

// One-way messages that the peer did not acknowledge when its connection
// broke are reported as dead letters, exactly: counted in Stats and in
// events grouped by sender, target and type. A peer that read them all
// but acknowledged only some stands for one that stopped (or was stopped)
// with messages in its socket buffers. Messages that queue behind a write
// travel in batch frames, so the peer counts what its frames carry.
func TestDeadLettersReportedWhenConnectionBreaks(t *testing.T) {
	const acked, total = 5, 40 // frames after the hello; messages
	frames := make(chan []byte, total)
	closeConn := make(chan struct{})
	addr := ackingPeer(t, 1+acked, frames, closeConn)
	bus := event.New(event.Config{})
	t.Cleanup(bus.Close)
	sub, err := event.Subscribe[event.DeadLetter](bus, event.Buffer(64))
	if err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, "a", Config{Events: bus, ReconnectMin: time.Hour, ReconnectMax: time.Hour,
		HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, p := fakeRef(a, addr)
	r2 := wireOf(a.sys).RemoteRef(p, wid(0, 2, 1, 0x66))
	sender := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		for i := range total / 2 {
			if err := c.Send(r, int64(i)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	// Half from an actor (ints), a quarter from a goroutine (strings) to r,
	// a quarter from the goroutine to r2.
	if _, err := a.sys.Ask(ctxT(t), sender, "go"); err != nil {
		t.Fatal(err)
	}
	for i := range total / 2 {
		to := r
		if i%2 == 1 {
			to = r2
		}
		if err := a.sys.Send(to, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	type key struct {
		from, to actor.Ref
		typ      string
	}
	want := map[key]int{
		{sender, r, "int64"}:        total / 2,
		{actor.Ref{}, r, "string"}:  total / 4,
		{actor.Ref{}, r2, "string"}: total / 4,
	}
	// The messages of the acknowledged frames are not dead letters.
	fr := newFrameReader(a.node, nil)
	lost := total
	for i, read := 0, 0; read < total; i++ {
		b := recv(t, frames, 10*time.Second, "the fake peer to read every message")
		var f frame
		if err := fr.parse(b, &f); err != nil {
			t.Fatal(err)
		}
		k := key{to: r, typ: "int64"}
		if f.hasFrom {
			k.from = sender
		}
		if f.to != wid(0, 1, 1, 0x55) {
			k.to = r2
		}
		if f.typeID == typeID("string") {
			k.typ = "string"
		}
		count := 1
		if f.kind == fBatch {
			count = len(f.batch)
		}
		read += count
		if i < acked {
			want[k] -= count
			lost -= count
		}
	}
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	close(closeConn)
	waitDown(t, a, addr)

	if st := a.node.Stats(); st.DeadLetters != uint64(lost) {
		t.Fatalf("Stats.DeadLetters = %d, want %d (sent %d, acknowledged %d frames)", st.DeadLetters, lost, total, acked)
	}
	got := map[key]int{}
	for sum := 0; sum < lost; {
		ev := recv(t, sub.Out(), 10*time.Second, fmt.Sprintf("dead-letter events (got %v)", got))
		if !errors.Is(ev.Reason, ErrNodeDown) || ev.Addr != addr {
			t.Fatalf("dead letter %+v: want a reason matching ErrNodeDown and addr %s", ev, addr)
		}
		got[key{ev.From, ev.To, ev.Type}] += ev.Count
		sum += ev.Count
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters by sender, target and type:\n got  %v\n want %v", got, want)
	}
}

// Under a steady one-way load, a node that goes away loses nothing without
// a signal: every message Send accepted was delivered or reported as a dead
// letter, and what was not accepted was refused with an error.
func TestNothingLostWithoutASignal(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	b := newTestNode(t, "b", Config{})
	var delivered atomic.Int64
	r := remoteActor(t, a, b, counterActor(&delivered))
	var accepted, refused, queueFull int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch err := a.sys.Send(r, i); {
			case err == nil:
				accepted++
			case errors.Is(err, actor.ErrQueueFull):
				queueFull++
				runtime.Gosched()
			case errors.Is(err, ErrNodeDown):
				refused++
				if refused > 100 {
					return // known down for good
				}
			default:
				t.Errorf("send: %v", err)
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "some traffic", func() bool { return delivered.Load() > 1000 })
	// b's node goes away; its actors go on, so that what its node read and
	// queued (and acknowledged) is handled: the guarantee ends where the
	// receiving node has queued a message for its actor.
	local := localOf(t, a, b, r)
	b.stop()
	b.stop = nil
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("sends did not start failing with ErrNodeDown")
	}
	close(stop)
	// An ask from b's own goroutine queues behind every message b's node
	// queued for the actor: once answered, they have all been handled.
	if _, err := b.sys.Ask(ctxT(t), local, "sync"); err != nil {
		t.Fatal(err)
	}
	delivered.Add(-1) // the sync itself
	st := a.node.Stats()
	t.Logf("accepted %d, delivered %d, dead letters %d, refused: node down %d, queue full %d",
		accepted, delivered.Load(), st.DeadLetters, refused, queueFull)
	if lost := accepted - delivered.Load(); lost > int64(st.DeadLetters) {
		t.Fatalf("%d messages accepted and not delivered, only %d reported as dead letters", lost, st.DeadLetters)
	}
}

// serveEcho gives s an echo actor and returns its wire id.
func serveEcho(t testing.TB, s *testNode) actor.WireID {
	r := spawn(t, s.sys, echo)
	id, _ := wireOf(s.sys).LocalID(r)
	return id
}

// remoteRefTo makes, on from, a ref to the actor id on node to.
func remoteRefTo(t testing.TB, from, to *testNode, id actor.WireID) actor.Ref {
	p, err := from.node.peer(to.node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return wireOf(from.sys).RemoteRef(p, id)
}

// A server that answers many short-lived clients forgets each once it has
// gone: it does not redial it, its peer table empties, and MaxPeers does not
// fill up with the departed.
func TestDepartedClientsAreForgotten(t *testing.T) {
	s := newTestNode(t, "server", Config{MaxPeers: 4, ForgetAfter: 100 * time.Millisecond,
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	id := serveEcho(t, s)
	peers := func() (int, int) {
		s.node.mu.Lock()
		defer s.node.mu.Unlock()
		return len(s.node.peers), len(s.node.remotes)
	}
	for i := range 8 {
		c := newTestNode(t, fmt.Sprintf("client-%d", i), Config{})
		if v, err := c.sys.Ask(ctxT(t), remoteRefTo(t, c, s, id), "hi"); err != nil || v != "hi" {
			t.Fatalf("client %d (of MaxPeers 4 at a time): %v, %v", i, v, err)
		}
		c.close()
		if i%4 == 3 {
			// A full table: the departed must go to make room.
			waitFor(t, 20*time.Second, "departed clients to be forgotten", func() bool {
				runtime.GC() // the refs the server held to the clients' actors go
				np, _ := peers()
				return np == 0
			})
		}
	}
	waitFor(t, 20*time.Second, "every departed client and incarnation to be forgotten", func() bool {
		runtime.GC()
		np, nr := peers()
		return np == 0 && nr == 0
	})
	if st := s.node.Stats(); st.PeersForgotten < 8 {
		t.Fatalf("PeersForgotten = %d, want 8", st.PeersForgotten)
	}
	// Nothing dials the departed any more: watch for many retry periods.
	dials := s.node.Stats().Dials
	deadline := time.Now().Add(300 * time.Millisecond) // 30 retry periods
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // an observation window, not synchronisation
		if d := s.node.Stats().Dials; d != dials {
			t.Fatalf("the server dialed %d more times after its clients left", d-dials)
		}
	}
}

// A Hello that names someone else's address (a port that is no node, or
// another node) does not make a node dial there again and again: the
// answer's dial must reach a node holding the key that said hello, it is
// not retried once it did not, and such dials are bounded node-wide.
func TestHelloCannotMakeANodeDialElsewhere(t *testing.T) {
	var baitConns atomic.Int64
	bait := fakePeer(t, 0, func(c net.Conn, done <-chan struct{}) {
		baitConns.Add(1)
		<-done // accepts, says nothing
	})
	other := newTestNode(t, "other", Config{})
	s := newTestNode(t, "server", Config{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond,
		HeartbeatTimeout: 200 * time.Millisecond})
	from := msgpack.RawMessage(defID(0, 0, 1, 1, make([]byte, 16)))
	// claimAt returns a claim on s (a hello naming addr, then asks to an
	// echo actor there) and the echo actor's id.
	claimAt := func(s *testNode) (func(addr string, asks int) *secureRaw, msgpack.RawMessage) {
		id := serveEcho(t, s)
		to := msgpack.RawMessage(defID(0, uint64(id.Loop), uint64(id.Slot), uint64(id.Gen), id.Secret[:]))
		return func(addr string, asks int) *secureRaw {
			c := secureDial(t, s.node.Addr())
			if _, err := c.Write(helloFrame(protocolVersion, "liar", addr, 1)); err != nil {
				t.Fatal(err)
			}
			for i := range asks {
				if _, err := c.Write(appendFrame(nil, fAsk, to, from, uint64(i+1), uint64(1), typeID("string"), "answer me")); err != nil {
					t.Fatal(err)
				}
			}
			return c
		}, to
	}
	claim, to := claimAt(s)
	c1 := claim(bait, 3)
	waitFor(t, 10*time.Second, "the dial to answer", func() bool { return baitConns.Load() >= 1 })
	c2 := claim(other.node.Addr(), 3)
	sp, _ := s.node.peer(other.node.Addr())
	waitFor(t, 10*time.Second, "the answer's dial to the other node to fail", func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.link.claimFailed
	})
	// Many retry periods: neither address is dialed again, while the
	// connections that named them stay open and keep asking.
	dials := s.node.Stats().Dials
	for i := range 30 {
		time.Sleep(10 * time.Millisecond) // an observation window
		_, _ = c1.Write(appendFrame(nil, fAsk, to, from, uint64(100+i), uint64(1), typeID("string"), "again"))
		_, _ = c2.Write(appendFrame(nil, fAsk, to, from, uint64(100+i), uint64(1), typeID("string"), "again"))
	}
	if d := s.node.Stats().Dials - dials; d != 0 || baitConns.Load() != 1 {
		t.Fatalf("%d more dials (bait accepted %d connections), want none more", d, baitConns.Load())
	}
	if st := other.node.Stats(); st.FramesIn != 0 {
		t.Fatalf("the other node got %d frames meant for the node that claimed its address", st.FramesIn)
	}
	// Many claims: the dials they cause are bounded node-wide. On a
	// server of its own, with the default heartbeat timeout: each claim
	// goes silent after its ask, and one that 200 ms of a loaded machine
	// kept from saying hello would be closed before it is read.
	s2 := newTestNode(t, "server2", Config{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	claim2, _ := claimAt(s2)
	start := time.Now()
	for _, addr := range deadAddrs(t, 3*answerDialBurst) {
		claim2(addr, 1) // the connection stays open until the test ends (rawDial's cleanup)
	}
	waitFor(t, 10*time.Second, "the claims to be read", func() bool {
		s2.node.mu.Lock()
		defer s2.node.mu.Unlock()
		return len(s2.node.peers) >= 3*answerDialBurst
	})
	// The budget's refill while the claims came (measured after them:
	// the bound can only be looser than the true one).
	limit := answerDialBurst + int(answerDialRate*time.Since(start).Seconds()) + 1
	if d := s2.node.Stats().Dials; d > uint64(limit) {
		t.Fatalf("%d dials for %d claims, want at most %d (the budget)", d, 3*answerDialBurst, limit)
	}
	t.Logf("%d dials for %d claims in %v", s2.node.Stats().Dials, 3*answerDialBurst, time.Since(start))
}

// A node that the membership layer reports alive again is redialed at
// once, not after the backoff; so is one that dials this node.
func TestPeerUpRedialsAtOnce(t *testing.T) {
	// a never redials by itself: a false loss (no heartbeat for a while on
	// a loaded machine) would fail the test, so heartbeats are lenient;
	// the losses here are closes, seen at once.
	const hb = 10 * time.Second
	a := newTestNode(t, "a", Config{ReconnectMin: time.Hour, ReconnectMax: time.Hour, HeartbeatTimeout: hb})
	b := newTestNode(t, "b", Config{HeartbeatTimeout: hb})
	addr := b.node.Addr()
	id := serveEcho(t, b)
	r := remoteRefTo(t, a, b, id)
	ask(t, a, r, "up")
	b.close()
	p := waitDown(t, a, addr)
	b2 := newTestNode(t, "b", Config{Listen: addr, HeartbeatTimeout: hb})
	if !a.node.PeerUp(addr) {
		t.Fatal("PeerUp: no peer")
	}
	waitFor(t, 10*time.Second, "the redial", func() bool { return welcomed(p) })
	if _, err := a.sys.Ask(ctxT(t), remoteRefTo(t, a, b2, serveEcho(t, b2)), "again"); err != nil {
		t.Fatal(err)
	}

	// A connection from the node: a redials too.
	b2.close()
	waitDown(t, a, addr)
	b3 := newTestNode(t, "b", Config{Listen: addr, HeartbeatTimeout: hb})
	_ = b3.sys.Send(remoteRefTo(t, b3, a, serveEcho(t, a)), "hello")
	waitFor(t, 10*time.Second, "the redial after a connection from the node", func() bool { return welcomed(p) })
}

// BenchmarkRecoveryAfterRestart measures how long after a restarted node
// listens again a client that keeps asking it (every 5 ms, each failing at
// once with ErrNodeDown while the node is down) gets its first answer. The
// client learns of the new listener at its next redial: after refused
// connects, within 100 ms (±50%). One iteration is one restart, after
// 500 ms down; report with -benchtime 10x.
func BenchmarkRecoveryAfterRestart(b *testing.B) {
	a := newTestNode(b, "client", Config{})
	s := newTestNode(b, "server", Config{})
	addr := s.node.Addr()
	var total time.Duration
	for b.Loop() {
		r := remoteRefTo(b, a, s, serveEcho(b, s))
		if _, err := a.sys.Ask(ctxT(b), r, "up"); err != nil {
			b.Fatal(err)
		}
		var ok atomic.Int64 // unix ns of the first answer after the restart
		var target atomic.Pointer[actor.Ref]
		target.Store(&r)
		stop := make(chan struct{})
		done := make(chan struct{})
		restarted := make(chan struct{})
		go func() { // the load: an ask every 5 ms
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if _, err := a.sys.Ask(context.Background(), *target.Load(), "x"); err == nil {
					select {
					case <-restarted:
						ok.CompareAndSwap(0, time.Now().UnixNano())
					default:
					}
				}
			}
		}()
		s.close()
		time.Sleep(500 * time.Millisecond) // down: the asks fail meanwhile
		s = newTestNode(b, "server", Config{Listen: addr})
		ready := time.Now()
		r2 := remoteRefTo(b, a, s, serveEcho(b, s))
		target.Store(&r2)
		close(restarted)
		waitFor(b, 15*time.Second, "an answer after the restart", func() bool { return ok.Load() != 0 })
		close(stop)
		<-done
		total += time.Unix(0, ok.Load()).Sub(ready)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-recover")
	b.ReportMetric(0, "ns/op")
}

// A node that claims another node's address in its Hello cannot answer the
// asks this node sent to that node: a goroutine ask's correlation is a
// counter, easy to guess.
func TestReplyOnlyFromTheNodeAsked(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	got := make(chan any, 1)
	r := remoteActor(t, a, b, deferForever(got))
	res := make(chan askRes, 1)
	go func() {
		v, err := a.sys.Ask(ctxT(t), r, "never answered")
		res <- askRes{v, err}
	}()
	recv(t, got, 10*time.Second, "the ask to reach b")
	p, _ := a.node.peer(b.node.Addr())
	p.mu.Lock()
	last := p.nextCall
	p.mu.Unlock()
	c := secureDial(t, a.node.Addr())
	if _, err := c.Write(helloFrame(protocolVersion, "b", b.node.Addr(), 1)); err != nil {
		t.Fatal(err)
	}
	for corr := uint64(0); corr <= last+1; corr++ {
		if _, err := c.Write(appendFrame(nil, fReply, uint64(goroutineLoop), corr, uint64(0), uint64(0), "", typeID("string"), "forged")); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Write(appendFrame(nil, fPing, uint64(1)))
	if _, err := c.readFrame(10 * time.Second); err != nil { // the pong: the replies were read
		t.Fatal(err)
	}
	select {
	case x := <-res:
		t.Fatalf("the ask was settled by another node: %v, %v", x.v, x.err)
	default:
	}
}

// A node this node dials that trickles bytes and never completes the
// handshake is let go at HandshakeTimeout: bytes keep a connection from
// looking silent, not from having to finish its handshake.
func TestDialedHandshakeDeadline(t *testing.T) {
	addr := fakePeer(t, 0, func(c net.Conn, done <-chan struct{}) {
		if _, err := c.Write([]byte{0, 200}); err != nil { // a record of 200 bytes, trickled
			return
		}
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	})
	a := newTestNode(t, "a", Config{HandshakeTimeout: 200 * time.Millisecond, HeartbeatTimeout: time.Hour,
		ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	r, _ := fakeRef(a, addr)
	if err := a.sys.Send(r, "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dialed connection to be let go", func() bool { return a.node.Stats().PeersDown > 0 })
	if st := a.node.Stats(); st.HandshakeTimeouts == 0 || st.DeadLetters != 1 {
		t.Fatalf("stats %+v: want a handshake timeout and the message reported", st)
	}
}
