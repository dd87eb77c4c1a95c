package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger {
	if os.Getenv("ACTORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// peers records PeerDown calls.
type peers struct {
	mu    sync.Mutex
	calls map[string]error
	ch    chan string
}

func newPeers() *peers { return &peers{calls: map[string]error{}, ch: make(chan string, 16)} }

func (p *peers) PeerDown(addr string, reason error) bool {
	p.mu.Lock()
	p.calls[addr] = reason
	p.mu.Unlock()
	p.ch <- addr
	return true
}

func (p *peers) reason(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[addr]
}

func agent(t *testing.T, name, bind string, p PeerNotifier, seeds ...string) (*Agent, func()) {
	t.Helper()
	a := New(Config{Name: name, RemoteAddr: "10.0.0.1:" + strconv.Itoa(len(name)*1000+int(name[0])), Bind: bind,
		Seeds: seeds, Profile: ProfileFast, JoinInterval: 50 * time.Millisecond, Peers: p, Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop, err := a.Start(ctx)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	t.Cleanup(stopOnce)
	return a, stopOnce
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func memberNames(a *Agent) []string {
	var out []string
	for _, m := range a.Members() {
		out = append(out, m.Name)
	}
	return out
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestClusterJoinFailLeave: an agent whose seed is not up yet keeps trying
// and joins once it is; views converge with each member's metadata; a
// killed member is reported as failed (event and PeerDown with
// ErrMemberFailed); a member that stops gracefully as left
// (ErrMemberLeft).
func TestClusterJoinFailLeave(t *testing.T) {
	seedAddr := freePort(t)
	pb := newPeers()
	b, stopB := agent(t, "bb", "127.0.0.1:0", pb, seedAddr) // its seed is not up yet
	pa := newPeers()
	a, _ := agent(t, "a", seedAddr, pa)
	if a.GossipAddr() != seedAddr {
		t.Fatalf("a gossips on %s, want %s", a.GossipAddr(), seedAddr)
	}
	var evMu sync.Mutex
	var evs []Event
	cancel := a.Subscribe(func(e Event) { evMu.Lock(); evs = append(evs, e); evMu.Unlock() })
	defer cancel()
	pc := newPeers()
	c, stopC := agent(t, "ccc", "127.0.0.1:0", pc, b.GossipAddr())
	for _, x := range []*Agent{a, b, c} {
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(memberNames(x), []string{"a", "bb", "ccc"}) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not see all members within 10s: a sees %v, bb %v, ccc %v",
					x.Name(), memberNames(a), memberNames(b), memberNames(c))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, m := range b.Members() {
		if m.Addr != "10.0.0.1:"+strconv.Itoa(len(m.Name)*1000+int(m.Name[0])) || m.Gossip == "" {
			t.Fatalf("member %+v", m)
		}
		if m.Self != (m.Name == "bb") {
			t.Fatalf("member %s Self=%v", m.Name, m.Self)
		}
	}

	cAddr := c.cfg.RemoteAddr
	c.Kill()
	select {
	case addr := <-pa.ch:
		if addr != cAddr {
			t.Fatalf("PeerDown(%s), want %s", addr, cAddr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a was not told that c failed")
	}
	if r := pa.reason(cAddr); !errors.Is(r, ErrMemberFailed) || !strings.Contains(r.Error(), "ccc") {
		t.Fatalf("reason %v, want ErrMemberFailed naming ccc", r)
	}
	stopC() // Serve has returned already: stop just waits
	eventually(t, 5*time.Second, "a drops c", func() bool { return slices.Equal(memberNames(a), []string{"a", "bb"}) })

	// A graceful stop is a leave.
	bAddr := b.cfg.RemoteAddr
	stopB()
	select {
	case addr := <-pa.ch:
		if addr != bAddr {
			t.Fatalf("PeerDown(%s), want %s", addr, bAddr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a was not told that b left")
	}
	if r := pa.reason(bAddr); !errors.Is(r, ErrMemberLeft) {
		t.Fatalf("reason %v, want ErrMemberLeft", r)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("b's Done is open after its stop returned")
	}
	eventually(t, 5*time.Second, "a alone", func() bool { return slices.Equal(memberNames(a), []string{"a"}) })
	if err := b.Serve(context.Background()); !errors.Is(err, suture.ErrDoNotRestart) || !errors.Is(err, ErrNotRunning) {
		t.Fatalf("second Serve: %v", err)
	}

	// Subscribers hear of a change after PeerDown (one goroutine delivers
	// both, in that order): wait for b's leave to reach them.
	kindsNow := func() []string {
		evMu.Lock()
		defer evMu.Unlock()
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind.String()+":"+e.Member.Name)
		}
		return kinds
	}
	eventually(t, 5*time.Second, "subscribers told of b's leave", func() bool {
		return slices.Contains(kindsNow(), "leave:bb") || slices.Contains(kindsNow(), "fail:bb")
	})
	kinds := kindsNow()
	for _, want := range []string{"join:ccc", "fail:ccc", "leave:bb"} {
		if !slices.Contains(kinds, want) {
			t.Fatalf("events %v lack %s", kinds, want)
		}
	}
	if slices.Contains(kinds, "fail:bb") || slices.Contains(kinds, "leave:ccc") {
		t.Fatalf("events %v confuse leave and fail", kinds)
	}
}

// TestClusterAgentConfigErrors: an unusable configuration ends Serve for good.
func TestClusterAgentConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0"},
		{Name: "x", Bind: "127.0.0.1:0"},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", Profile: "warp"},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1"},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", Advertise: "nowhere"},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", Caps: []string{"a b"}},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", Caps: []string{""}},
		{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: "127.0.0.1:0", Caps: make([]string, MaxCaps+1)},
	} {
		cfg.Logger = quiet()
		err := New(cfg).Serve(context.Background())
		if !errors.Is(err, ErrConfig) || !errors.Is(err, suture.ErrDoNotRestart) {
			t.Errorf("%+v: %v, want ErrConfig and ErrDoNotRestart", cfg, err)
		}
	}
	// A port in use is worth retrying: not ErrDoNotRestart.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = New(Config{Name: "x", RemoteAddr: "127.0.0.1:1", Bind: l.LocalAddr().String(), Logger: quiet()}).Serve(context.Background())
	if err == nil || errors.Is(err, suture.ErrDoNotRestart) {
		t.Fatalf("bind to a used port: %v", err)
	}
}

// TestClusterLogBridge: memberlist's log levels become slog levels.
func TestClusterLogBridge(t *testing.T) {
	var buf bytes.Buffer
	b := newLogBridge(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, l := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n",
		"[WARN] memberlist: Was able to connect to x over TCP but UDP probes failed\n",
		"[ERR] memberlist: Failed to send ping: write: refused\n",
		"[ERR] memberlist: Conflicting address for x\n",
		"no level at all\n",
	} {
		if _, err := b.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	got := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="memberlist: Stream connection`,
		`level=WARN msg="memberlist: Was able`,
		`level=WARN msg="memberlist: Failed to send ping`,
		`level=ERROR msg="memberlist: Conflicting address`,
		`level=INFO msg="no level at all"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// TestClusterSplitMemberlistLine: the sender's address becomes its host,
// and what a sender chooses (numbers, quoted labels and names) leaves the
// message for the detail, so that junk from one host has few keys.
func TestClusterSplitMemberlistLine(t *testing.T) {
	for _, c := range []struct{ line, msg, detail, from string }{
		{`memberlist: Failed to decode ping request: msgpack decode error [pos 1]: bad from=127.0.0.1:4567`,
			"memberlist: Failed to decode ping request", "msgpack decode error [pos 1]: bad", "127.0.0.1"},
		{`memberlist: discarding packet with unacceptable label "evil0042": from=[::1]:99`,
			"memberlist: discarding packet with unacceptable label …", `discarding packet with unacceptable label "evil0042"`, "::1"},
		{`memberlist: msg type (255) not supported from=<unknown address>`,
			"memberlist: msg type (N) not supported", "msg type (255) not supported", "<unknown address>"},
		{`memberlist: Got ping for unexpected node 'x y' from=10.0.0.1:1`,
			"memberlist: Got ping for unexpected node …", "Got ping for unexpected node 'x y'", "10.0.0.1"},
		{`memberlist: Suspect b has failed, no acks received`, "memberlist: Suspect b has failed, no acks received", "", ""},
		{`Err: Could not set the deadline: x`, "Err", "Could not set the deadline: x", ""},
		{`memberlist: Stream connection from=127.0.0.1:1`, "memberlist: Stream connection", "", "127.0.0.1"},
		{"memberlist: " + strings.Repeat("long ", 100), "memberlist: " + strings.Repeat("long ", 100)[:maxBridgeMsg-len("memberlist: ")] + "…", "", ""},
	} {
		msg, detail, from, _ := splitMemberlistLine(c.line)
		if msg != c.msg || detail != c.detail || from != c.from {
			t.Errorf("%q:\n got %q, %q, %q\nwant %q, %q, %q", c.line, msg, detail, from, c.msg, c.detail, c.from)
		}
	}
	for line, want := range map[string]bool{
		"memberlist: failed to receive: No installed keys could decrypt the message from=1.2.3.4:5":        true,
		"memberlist: failed to receive: encryption is configured but remote state is not encrypted from=x": true,
		"1 error occurred: * failed to join x: remote state is encrypted and encryption is not configured": true,
		"memberlist: Decrypt packet failed: unsupported encryption version 255 from=127.0.0.1:1":           true,
		"memberlist: Failed to decode ping request: msgpack decode error [pos 1]: bad from=127.0.0.1:4567": false,
	} {
		if isKeyMismatch(line) != want {
			t.Errorf("isKeyMismatch(%q) = %v", line, !want)
		}
	}
}

func TestClusterEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Join: "join", Leave: "leave", Fail: "fail", Update: "update", 9: "EventKind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}

// recorder is a slog.Handler that keeps the records at Info and above.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// count returns how many records there are, and how many have msg.
func (r *recorder) count(msg string) (all, with int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			with++
		}
	}
	return len(r.recs), with
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, rec := range r.recs {
		b.WriteString(rec.Level.String() + " " + rec.Message)
		rec.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		b.WriteByte('\n')
	}
	return b.String()
}

// windows is how many rate limiter windows of length w the time since
// began spans (at least one).
func windows(began time.Time, w time.Duration) int {
	return 1 + int(time.Since(began)/w)
}

// recordedAgent starts an agent whose logs go to a recorder.
func recordedAgent(t *testing.T, name string, key []byte, seeds ...string) (*Agent, *recorder) {
	t.Helper()
	rec := &recorder{}
	a := New(Config{Name: name, RemoteAddr: "10.0.0.1:1", Bind: "127.0.0.1:0", Seeds: seeds, SecretKey: key,
		Profile: ProfileFast, JoinInterval: 50 * time.Millisecond, Logger: slog.New(rec)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop, err := a.Start(ctx)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(stop)
	return a, rec
}

// TestClusterJunkBoundedLogs: junk sent to the gossip port, over UDP and
// TCP, from ever new ports and with ever new labels, costs a bounded number
// of log lines (memberlist writes one or more per packet); on an agent
// with a key, they say cluster key mismatch.
func TestClusterJunkBoundedLogs(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(map[bool]string{false: "unkeyed", true: "keyed"}[keyed], func(t *testing.T) {
			var key []byte
			if keyed {
				key = bytes.Repeat([]byte{7}, 32)
			}
			began := time.Now()
			a, rec := recordedAgent(t, "a", key)
			target := a.GossipAddr()
			const want = 400 // memberlist lines caused
			sent := 0
			deadline := time.Now().Add(30 * time.Second)
			for a.bridge.seen.Load() < want {
				if time.Now().After(deadline) {
					t.Fatalf("memberlist wrote %d lines for %d junk packets", a.bridge.seen.Load(), sent)
				}
				before := a.bridge.seen.Load()
				for range 20 {
					sent++
					var junk []byte
					switch sent % 4 {
					case 0:
						junk = []byte{0xff, 'j', 'u', 'n', 'k'} // no such message type
					case 1:
						junk = append([]byte{244, 8}, fmt.Sprintf("evil%04d", sent%10000)...) // a label of its own
					case 2:
						junk = []byte{0, 0xc1, 0xc1, byte(sent)} // a ping that does not decode
					case 3:
						junk = []byte{244} // a truncated label
					}
					c, err := net.Dial("udp", target) // a new source port each time
					if err != nil {
						t.Fatal(err)
					}
					_, _ = c.Write(junk)
					c.Close()
				}
				for range 2 {
					c, err := net.Dial("tcp", target)
					if err != nil {
						t.Fatal(err)
					}
					_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
					c.Close()
				}
				// Pace: wait for memberlist to read some of it.
				for wait := time.Now().Add(time.Second); a.bridge.seen.Load() == before && time.Now().Before(wait); {
					time.Sleep(time.Millisecond)
				}
			}
			all, mismatch := rec.count(msgKeyMismatch)
			t.Logf("%d junk packets: memberlist wrote %d lines, %d logged (%d cluster key mismatch)", sent, a.bridge.seen.Load(), all, mismatch)
			// A few kinds of junk, each a few lines per minute (bridgeLimits),
			// and the agent's own start line.
			bound := 40 * windows(began, bridgeLimits.Interval)
			if all > bound || all < 2 {
				t.Fatalf("%d lines logged for %d junk packets, want 2 to %d:\n%s", all, sent, bound, rec)
			}
			if keyed && mismatch == 0 {
				t.Fatalf("keyed agent: junk not reported as a cluster key mismatch:\n%s", rec)
			}
		})
	}
}

// TestClusterKeyMismatchLogged: agents whose gossip keys differ (one has
// none, one another) never join; both sides say cluster key mismatch, a
// bounded number of times however often the joiners retry.
func TestClusterKeyMismatchLogged(t *testing.T) {
	began := time.Now()
	a, recA := recordedAgent(t, "a", bytes.Repeat([]byte{1}, 32))
	b, recB := recordedAgent(t, "b", nil, a.GossipAddr())
	c, recC := recordedAgent(t, "c", bytes.Repeat([]byte{2}, 32), a.GossipAddr())
	// Each failed join is one of memberlist's debug lines on the joiner.
	eventually(t, 30*time.Second, "40 join attempts each", func() bool {
		return b.bridge.seen.Load() >= 40 && c.bridge.seen.Load() >= 40
	})
	for _, x := range []struct {
		a   *Agent
		rec *recorder
	}{{a, recA}, {b, recB}, {c, recC}} {
		if n := len(x.a.Members()); n != 1 {
			t.Fatalf("%s sees %d members: agents with different keys joined", x.a.Name(), n)
		}
		all, mismatch := x.rec.count(msgKeyMismatch)
		t.Logf("%s: %d lines, %d cluster key mismatch", x.a.Name(), all, mismatch)
		// a: 3 a minute per message and source (b and c share one); b and
		// c: attempts 1, 2, 3 and every 30th, at most 5 per 10 s (the
		// agent's own limiter).
		bound := 3 * windows(began, bridgeLimits.Interval)
		if x.a != a {
			bound = 5 * windows(began, 10*time.Second)
		}
		if mismatch == 0 || mismatch > bound || all > bound+4 {
			t.Fatalf("%s: %d lines, %d saying cluster key mismatch; want 1 to %d of these and at most %d in all:\n%s",
				x.a.Name(), all, mismatch, bound, bound+4, x.rec)
		}
	}
}

// upPeers is a PeerUpNotifier that records PeerUp calls.
type upPeers struct {
	*peers
	up chan string
}

func (p *upPeers) PeerUp(addr string) bool {
	select {
	case p.up <- addr:
	default:
	}
	return true
}

// TestClusterPeerUpOnJoin: a notifier that also takes PeerUp is told the
// remote address of a member that joins, so it connects at once.
func TestClusterPeerUpOnJoin(t *testing.T) {
	pa := &upPeers{peers: newPeers(), up: make(chan string, 16)}
	a, _ := agent(t, "aa", "127.0.0.1:0", pa)
	b, _ := agent(t, "bb", "127.0.0.1:0", newPeers(), a.GossipAddr())
	want := b.cfg.RemoteAddr
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-pa.up:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no PeerUp(%s) after bb joined", want)
		}
	}
}

// TestClusterCapsTravel: a member's capabilities reach the others in its
// metadata; one that announces none (an older binary) has none.
func TestClusterCapsTravel(t *testing.T) {
	a := New(Config{Name: "a", RemoteAddr: "10.0.0.1:1", Bind: "127.0.0.1:0", Profile: ProfileFast,
		JoinInterval: 50 * time.Millisecond, Logger: quiet(), Caps: []string{"x-1", "y"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	b, _ := agent(t, "b", "127.0.0.1:0", nil, a.GossipAddr())
	eventually(t, 10*time.Second, "b sees a's capabilities, a sees b's none", func() bool {
		var aHas, bNone bool
		for _, m := range b.Members() {
			if m.Name == "a" {
				aHas = m.Has("x-1") && m.Has("y") && !m.Has("z")
			}
		}
		for _, m := range a.Members() {
			if m.Name == "b" {
				bNone = len(m.Caps) == 0
			}
			if m.Name == "a" && !m.Has("x-1") {
				return false
			}
		}
		return aHas && bNone
	})
}
