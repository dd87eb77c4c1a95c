package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// Tests of what an unauthenticated connection can make a node do: the
// handshake deadline, the caps on unauthenticated connections, the bounds
// on Hello fields and on buffered frames, accept errors, and how a cluster
// key mismatch is reported. Each runs the attack on 127.0.0.1 with bounded
// counts and checks the bound.

// logBuf collects a node's log output.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// trickle writes one byte of b to c every interval until b is sent or c
// fails, and closes done then. It is load, not synchronisation.
func trickle(c net.Conn, b []byte, interval time.Duration) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
	return done
}

// An accepted connection must send its Hello within HandshakeTimeout of
// being accepted, whatever it sends meanwhile: bytes trickled in do not
// extend it (they did: any byte refreshed the silence timer; these
// trickle for longer than expectClosed waits). Connections
// that said hello in time are not affected.
func TestHandshakeDeadline(t *testing.T) {
	b := newTestNode(t, "b", Config{HandshakeTimeout: time.Second, HeartbeatTimeout: time.Minute})
	a := newTestNode(t, "a", Config{})
	r := remoteActor(t, a, b, echo)

	// Before the handshake: a handshake message announced, trickled in.
	c1 := rawDial(t, b.node.Addr())
	d1 := trickle(c1, append([]byte{0, 200}, make([]byte, 200)...), 60*time.Millisecond)
	// After the handshake: no Hello, but pings trickled in as a record.
	s2 := secureDial(t, b.node.Addr())
	rec, _ := s2.tx.Encrypt(nil, nil, bytes.Repeat(appendFrame(nil, fPing, uint64(1)), 40))
	d2 := trickle(s2.Conn, append(binary.BigEndian.AppendUint16(nil, uint16(len(rec))), rec...), 60*time.Millisecond)

	expectClosed(t, c1)
	expectClosed(t, s2.Conn)
	<-d1
	<-d2
	waitFor(t, 5*time.Second, "both timeouts to be counted", func() bool { return b.node.Stats().HandshakeTimeouts == 2 })
	if n := b.node.pending.count(); n != 0 {
		t.Fatalf("%d unauthenticated connections still counted", n)
	}
	// The connections from a, older than the deadline, are up.
	if v, err := a.sys.Ask(ctxT(t), r, "up"); err != nil || v != "up" {
		t.Fatalf("ask over an authenticated connection = %v, %v", v, err)
	}
	if st := b.node.Stats(); st.HandshakeTimeouts != 2 || st.PeersDown != 0 || a.node.Stats().PeersDown != 0 {
		t.Fatalf("stats after the deadline: %+v", st)
	}
}

// dialFrom connects to addr from the loopback address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// expectOpen checks that the node has not closed c (a read times out).
func expectOpen(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var buf [1]byte
	_, err := c.Read(buf[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection not open: %v", err)
	}
}

// Unauthenticated connections are capped per node and per source address;
// one beyond a cap is closed at once and counted. Authenticated
// connections do not count, and places come back as connections close.
func TestPendingCaps(t *testing.T) {
	// No failure detection here: a loaded machine can delay a heartbeat
	// past the test nodes' 500 ms, and the asks below must not meet a
	// node declared down.
	b := newTestNode(t, "b", Config{MaxPending: 5, MaxPendingPerIP: 3, HeartbeatTimeout: time.Minute})
	a := newTestNode(t, "a", Config{HeartbeatTimeout: time.Minute})
	r := remoteActor(t, a, b, echo)
	addr := b.node.Addr()
	var held []net.Conn
	hold := func(ip string) {
		t.Helper()
		held = append(held, dialFrom(t, ip, addr))
		waitFor(t, 5*time.Second, "the connection to be admitted", func() bool { return b.node.pending.count() == len(held) })
	}
	refused := func(ip string, want uint64) {
		t.Helper()
		expectClosed(t, dialFrom(t, ip, addr))
		if got := b.node.Stats().ConnsRefused; got != want {
			t.Fatalf("ConnsRefused = %d, want %d", got, want)
		}
	}
	for range 3 {
		hold("127.0.0.1")
	}
	refused("127.0.0.1", 1) // fourth from one address
	hold("127.0.0.2")
	hold("127.0.0.2")
	refused("127.0.0.3", 2) // sixth in all
	for _, c := range held {
		expectOpen(t, c)
	}
	if v, err := a.sys.Ask(ctxT(t), r, "up"); err != nil || v != "up" {
		t.Fatalf("ask while the caps are reached = %v, %v", v, err)
	}
	for _, c := range held {
		_ = c.Close()
	}
	waitFor(t, 5*time.Second, "the places to come back", func() bool { return b.node.pending.count() == 0 })
	c := newTestNode(t, "c", Config{HeartbeatTimeout: time.Minute})
	if v, err := c.sys.Ask(ctxT(t), wireOf(c.sys).RemoteRef(c.node.peerFor(b.node.Addr(), "b"), localID(t, a, b, r)), "again"); err != nil || v != "again" {
		t.Fatalf("a new node's ask after the places came back = %v, %v", v, err)
	}
}

// localID returns the wire id of the actor that from's remote ref r names.
func localID(t *testing.T, from, on *testNode, r actor.Ref) actor.WireID {
	t.Helper()
	id, ok := wireOf(on.sys).LocalID(localOf(t, from, on, r))
	if !ok {
		t.Fatal("no local id")
	}
	return id
}

// A Hello's node name and address are bounded like a ref's (maxRefField),
// on the declared length: 100 Hellos with 1 MiB names kept 100 MB.
func TestHelloFieldBounds(t *testing.T) {
	b := newTestNode(t, "b", Config{})
	addr := b.node.Addr()
	long := strings.Repeat("n", maxRefField+1)
	for name, hello := range map[string][]byte{
		"long name":    appendFrame(nil, fHello, uint64(protocolVersion), long, uint64(1), "127.0.0.1:1", uint64(1), uint64(0), uint64(0)),
		"long address": appendFrame(nil, fHello, uint64(protocolVersion), "raw", uint64(2), "127.0.0.1:"+long, uint64(1), uint64(0), uint64(0)),
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			bad := b.node.Stats().BadFrames
			s := secureDial(t, addr)
			_, _ = s.Write(hello)
			expectClosed(t, s.Conn)
			waitFor(t, 5*time.Second, "BadFrames to count it", func() bool { return b.node.Stats().BadFrames > bad })
		})
	}
	// At the bound it is accepted.
	s := secureDial(t, addr)
	_, _ = s.Write(appendFrame(nil, fHello, uint64(protocolVersion), long[1:], uint64(3), "127.0.0.1:1", uint64(1), uint64(0), uint64(0)))
	if _, err := s.readFrame(5 * time.Second); err != nil {
		t.Fatalf("no welcome for a %d-byte name: %v", maxRefField, err)
	}
	// The parser checks the declared length before decoding: a name
	// declaring 1 MiB with 3 bytes present is refused for its length.
	n := codecNode(t, Config{})
	fr := newFrameReader(n, nil)
	defer fr.release()
	body := appendFrame(nil, fHello, uint64(protocolVersion), "x", uint64(1), "a", uint64(1), uint64(0), uint64(0))[4:]
	i := bytes.IndexByte(body, 0xa1) // the name "x": fixstr 1
	forged := append(append(append([]byte(nil), body[:i]...), 0xdb, 0, 0x10, 0, 0), "abc"...)
	var f frame
	if err := fr.parse(forged, &f); err == nil || !strings.Contains(err.Error(), "node name of 1048576 bytes") {
		t.Fatalf("parse of a hello declaring a 1 MiB name: %v", err)
	}
}

// Before its Hello, a connection may send frames of maxHelloFrame at most:
// one announcing 16 MiB is closed on its header, without waiting for the
// bytes (20 such connections trickling held ~45 MB each).
func TestFrameLimitBeforeHello(t *testing.T) {
	b := newTestNode(t, "b", Config{HeartbeatTimeout: time.Minute})
	for i := range 20 {
		bad := b.node.Stats().BadFrames
		s := secureDial(t, b.node.Addr())
		_, _ = s.Write(binary.BigEndian.AppendUint32(nil, 16<<20))
		_, _ = s.Write(make([]byte, 1000))
		expectClosed(t, s.Conn)
		waitFor(t, 5*time.Second, fmt.Sprintf("BadFrames to count connection %d", i), func() bool { return b.node.Stats().BadFrames > bad })
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// After a Hello (anyone can send one to a node without a cluster key),
// frames may be as large as MaxFrame, but what all connections hold of
// incomplete frames is bounded by MaxBuffered, and a frame announced holds
// what arrived of it, not what it announced. 20 connections each announcing
// a 16 MiB frame and sending 4 MiB of it (80 MiB) must not take the heap
// past MaxBuffered (32 MiB) and a little; the connections over it are
// closed and counted.
func TestBufferedFramesBounded(t *testing.T) {
	const maxBuffered = 32 << 20
	b := newTestNode(t, "b", Config{MaxBuffered: maxBuffered, HeartbeatTimeout: time.Minute, HandshakeTimeout: time.Minute})
	addr := b.node.Addr()
	chunk := make([]byte, maxSealed)
	before := heapInUse()

	// One frame announced, little sent: the node holds about what arrived.
	s := secureDial(t, addr)
	_, _ = s.Write(helloFrame(protocolVersion, "trickler", "127.0.0.1:1", 1))
	if _, err := s.readFrame(5 * time.Second); err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	in := b.node.Stats().BytesIn
	_, _ = s.Write(binary.BigEndian.AppendUint32(nil, 16<<20))
	_, _ = s.Write(chunk[:1000])
	waitFor(t, 5*time.Second, "the bytes to be read", func() bool { return b.node.Stats().BytesIn >= in+2*(2+16)+4+1000 })
	if used := b.node.buffered.used.Load(); used > plainChunk {
		t.Fatalf("a frame announcing 16 MiB with 1004 bytes sent holds %d bytes", used)
	}

	var conns []*secureRaw
	for i := range 20 {
		s := secureDial(t, addr)
		conns = append(conns, s)
		_, _ = s.Write(helloFrame(protocolVersion, fmt.Sprintf("hog-%d", i), "127.0.0.1:1", 1))
		if _, err := s.readFrame(5 * time.Second); err != nil {
			t.Fatalf("no welcome for connection %d: %v", i, err)
		}
		closed := make(chan struct{})
		go func() { // the node's close ends the read
			defer close(closed)
			_ = s.Conn.SetReadDeadline(time.Time{})
			_, _ = io.Copy(io.Discard, s.Conn)
		}()
		in := b.node.Stats().BytesIn
		sent := 0
		_, _ = s.Write(binary.BigEndian.AppendUint32(nil, 16<<20))
		sent += 2 + 16 + 4
		for sent < 4<<20 {
			if _, err := s.Write(chunk); err != nil {
				break
			}
			sent += 2 + 16 + len(chunk)
		}
		waitFor(t, 10*time.Second, "the node to read it all or close it", func() bool {
			select {
			case <-closed:
				return true
			default:
				return b.node.Stats().BytesIn-in == uint64(sent)
			}
		})
	}
	grown := int64(heapInUse()) - int64(before)
	st := b.node.Stats()
	t.Logf("heap grew by %d MiB; %d connections closed at the limit; %d bytes charged", grown>>20, st.BufferLimited, b.node.buffered.used.Load())
	if st.BufferLimited == 0 {
		t.Fatal("no connection was closed at the buffer limit")
	}
	if used := b.node.buffered.used.Load(); used > maxBuffered {
		t.Fatalf("%d bytes charged, over MaxBuffered", used)
	}
	if grown > maxBuffered+8<<20 {
		t.Fatalf("heap grew by %d MiB holding incomplete frames, MaxBuffered is %d MiB", grown>>20, maxBuffered>>20)
	}
	for _, s := range conns {
		_ = s.Close()
	}
	_ = s.Close()
	waitFor(t, 5*time.Second, "the charges to come back", func() bool { return b.node.buffered.used.Load() == 0 })
}

// failingListener is a listener whose Accept fails with EMFILE while fail
// is set, as one does when the process is out of file descriptors.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	fail  bool
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fail {
		l.fails++
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("accept4: %w", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *failingListener) set(fail bool) {
	l.mu.Lock()
	l.fail = fail
	l.mu.Unlock()
}

// An accept error (out of file descriptors) must not stop the node: its
// established connections stay up, an ask in flight completes, and it
// accepts again once the condition clears. (gnet's own acceptor shut its
// whole engine down on EMFILE, dropping every peer.)
func TestAcceptErrorKeepsConnections(t *testing.T) {
	var fl *failingListener
	orig := listen
	listen = func(addr string) (net.Listener, error) {
		ln, err := orig(addr)
		if err != nil {
			return nil, err
		}
		fl = &failingListener{Listener: ln}
		return fl, nil
	}
	b := newTestNode(t, "b", Config{})
	listen = orig
	a := newTestNode(t, "a", Config{})
	held := make(chan *actor.Reply, 1)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		if msg == "wait" {
			held <- c.Defer() // answered by the test, later
			return nil, nil
		}
		return msg, nil
	})
	if v, err := a.sys.Ask(ctxT(t), r, "up"); err != nil || v != "up" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	pending := make(chan error, 1)
	go func() {
		_, err := a.sys.Ask(ctxT(t), r, "wait")
		pending <- err
	}()

	fl.set(true)
	rawDial(t, b.node.Addr()) // ends the accept under way; the next ones fail
	waitFor(t, 10*time.Second, "accept errors", func() bool { return b.node.Stats().AcceptErrors >= 3 })
	recv(t, held, 10*time.Second, "the ask to arrive").Reply("wait", nil)
	if err := recv(t, pending, 10*time.Second, "the pending ask"); err != nil {
		t.Fatalf("ask in flight during accept errors: %v", err)
	}
	if v, err := a.sys.Ask(ctxT(t), r, "still"); err != nil || v != "still" {
		t.Fatalf("ask during accept errors = %v, %v", v, err)
	}
	fl.set(false)
	c := newTestNode(t, "c", Config{})
	if v, err := c.sys.Ask(ctxT(t), wireOf(c.sys).RemoteRef(c.node.peerFor(b.node.Addr(), "b"), localID(t, a, b, r)), "new"); err != nil || v != "new" {
		t.Fatalf("a new node's ask after the errors cleared = %v, %v", v, err)
	}
	if st := a.node.Stats(); st.PeersDown != 0 {
		t.Fatalf("a saw its peer go down %d times", st.PeersDown)
	}
	if st := b.node.Stats(); st.PeersDown != 0 {
		t.Fatalf("b saw its peer go down %d times", st.PeersDown)
	}
}

// A node that learns a cluster key mismatch says so, to its callers and in
// its logs, on both sides: the dialing node's callers get an error
// matching ErrClusterKey (it was "node down: b: read: EOF").
func TestClusterKeyMismatchNamed(t *testing.T) {
	one, two := []byte("cluster key number one"), []byte("cluster key number two")
	for name, keys := range map[string][2][]byte{
		"dialer has none":   {nil, one},
		"dialer has other":  {two, one},
		"accepter has none": {one, nil},
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var alog, blog logBuf
			b := newTestNode(t, "b", Config{ClusterKey: keys[1], Logger: blog.logger()})
			a := newTestNode(t, "a", Config{ClusterKey: keys[0], Logger: alog.logger()})
			id, _ := wireOf(b.sys).LocalID(spawn(t, b.sys, echo))
			r := wireOf(a.sys).RemoteRef(a.node.peerFor(b.node.Addr(), "b"), id)
			_, err := a.sys.Ask(ctxT(t), r, "x")
			if !errors.Is(err, ErrNodeDown) || !errors.Is(err, ErrClusterKey) || !strings.Contains(err.Error(), "cluster key mismatch") {
				t.Fatalf("ask across mismatched cluster keys: %v, want ErrNodeDown and ErrClusterKey", err)
			}
			t.Logf("the caller sees: %v", err)
			for who, l := range map[string]*logBuf{"dialer": &alog, "accepter": &blog} {
				waitFor(t, 5*time.Second, "the "+who+" to log the mismatch", func() bool {
					return strings.Contains(l.String(), "cluster key mismatch")
				})
			}
		})
	}
}

// Every log line an unauthenticated peer can cause is rate-limited: 40
// refused connections from one address log a handful of lines.
func TestPreAuthLogsRateLimited(t *testing.T) {
	var blog logBuf
	b := newTestNode(t, "b", Config{MaxPending: 1, Logger: blog.logger(), HeartbeatTimeout: time.Minute})
	held := rawDial(t, b.node.Addr())
	waitFor(t, 5*time.Second, "the connection to be admitted", func() bool { return b.node.pending.count() == 1 })
	for range 40 {
		expectClosed(t, rawDial(t, b.node.Addr()))
	}
	_ = held
	if got := b.node.Stats().ConnsRefused; got != 40 {
		t.Fatalf("ConnsRefused = %d, want 40", got)
	}
	if n := strings.Count(blog.String(), "refusing connection"); n > 5 {
		t.Fatalf("%d log lines for 40 refusals from one address", n)
	}
}

// The same with the process really out of file descriptors: the soft
// RLIMIT_NOFILE is lowered a little above those open, files are opened
// until none is left but one, and a client takes that one: the node's
// accept fails with EMFILE. It sheds the waiting connection (with its
// spare descriptor) so the client learns it at once, keeps its peers, and
// accepts again once descriptors are free.
func TestAcceptOutOfFiles(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd")
	}
	b := newTestNode(t, "b", Config{})
	a := newTestNode(t, "a", Config{})
	r := remoteActor(t, a, b, echo)
	if v, err := a.sys.Ask(ctxT(t), r, "up"); err != nil || v != "up" {
		t.Fatalf("ask = %v, %v", v, err)
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range fds {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
			highest = max(highest, fd)
		}
	}
	low := orig
	low.Cur = uint64(highest + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var files []*os.File
	restored := false
	restore := func() {
		for _, f := range files {
			_ = f.Close()
		}
		files = nil
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
				t.Errorf("restoring RLIMIT_NOFILE: %v", err)
			}
		}
	}
	defer restore()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no descriptor was free")
	}
	var c net.Conn
	for c == nil {
		if len(files) == 0 {
			t.Fatal("cannot dial with descriptors left")
		}
		_ = files[len(files)-1].Close() // one left, for the client
		files = files[:len(files)-1]
		if c, err = net.Dial("tcp", b.node.Addr()); err != nil && !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("dial with one descriptor left: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "an accept to fail", func() bool { return b.node.Stats().AcceptErrors > 0 })
	expectClosed(t, c) // shed at once: without the spare it would wait in the backlog
	_ = c.Close()
	if got := b.node.Stats().ConnsRefused; got == 0 {
		t.Fatal("the connection waiting was not refused")
	}
	if v, err := a.sys.Ask(ctxT(t), r, "still"); err != nil || v != "still" {
		t.Fatalf("ask while out of descriptors = %v, %v", v, err)
	}
	restore()
	cn := newTestNode(t, "c", Config{})
	if v, err := cn.sys.Ask(ctxT(t), wireOf(cn.sys).RemoteRef(cn.node.peerFor(b.node.Addr(), "b"), localID(t, a, b, r)), "new"); err != nil || v != "new" {
		t.Fatalf("a new node's ask after descriptors came back = %v, %v", v, err)
	}
	st := b.node.Stats()
	t.Logf("b: %d accept errors, %d connections refused", st.AcceptErrors, st.ConnsRefused)
	if a.node.Stats().PeersDown != 0 || st.PeersDown != 0 {
		t.Fatalf("peers went down: a %d, b %d times", a.node.Stats().PeersDown, st.PeersDown)
	}
}

// The per-address cap counts an IPv4 address, or an IPv6 /64.
func TestHostOf(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:4000":              "192.0.2.7",
		"[::ffff:192.0.2.7]:1":        "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:4000": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:4001": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:4000":      "2001:db8:1:3::/64",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostOf(a); got != want {
			t.Errorf("hostOf(%s) = %q, want %q", addr, got, want)
		}
	}
}
