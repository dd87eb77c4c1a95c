package cluster

import (
	"bytes"
	"context"
	"errors"
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
	b := &logBridge{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
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

func TestClusterEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Join: "join", Leave: "leave", Fail: "fail", Update: "update", 9: "EventKind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}
