package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actord/actord/debug"
)

// busyPort holds a TCP port on 127.0.0.1 for the test's duration.
func busyPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestDaemonPortInUseFailsFast: a port in use fails Start at once, with
// the address and the cause in the error, instead of after StartTimeout
// of restarts. (StartTimeout is an hour here, the context a minute: the
// error must come from neither.)
func TestDaemonPortInUseFailsFast(t *testing.T) {
	for _, tc := range []struct {
		what string
		set  func(c *Config, addr string)
	}{
		{"listen", func(c *Config, a string) { c.Listen = a }},
		{"gossip", func(c *Config, a string) { c.Gossip = a }},
		{"debug", func(c *Config, a string) { c.DebugAddr = a }},
		{"metrics", func(c *Config, a string) { c.MetricsAddr = a }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			addr := busyPort(t)
			cfg := testConfig(t, "busy")
			cfg.StartTimeout = time.Hour
			tc.set(&cfg, addr)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d, err := Start(ctx, cfg)
			if err == nil {
				_ = d.Shutdown(context.Background())
				t.Fatalf("started on a port in use")
			}
			if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) ||
				!errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("error %q: want the address %s and 'address already in use'", err, addr)
			}
		})
	}
}

// TestDaemonReadyAndHealth: /healthz and /readyz answer without the token
// on the debug and the metrics listener; Ready follows Start and Shutdown;
// /metrics has the go_ and process_ families.
func TestDaemonReadyAndHealth(t *testing.T) {
	cfg := testConfig(t, "h")
	cfg.MetricsAddr = "127.0.0.1:0"
	d := start(t, cfg)
	if !d.Ready() {
		t.Fatal("not ready after Start")
	}
	info := d.Info()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, addr := range []string{info.DebugAddr, info.MetricsAddr} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := get("http://" + addr + p); code != 200 || body != "ok\n" {
				t.Fatalf("%s%s: %d %q", addr, p, code, body)
			}
		}
	}
	_, body := get("http://" + info.MetricsAddr + "/metrics")
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_cpu_seconds_total ", "\nactord_cluster_members 1\n"} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.Ready() {
		t.Fatal("ready after Shutdown")
	}
}

// TestMetricsServerReadiness: the metrics listener's /readyz says 503
// until the daemon is ready; other paths are 404 without saying more.
func TestMetricsServerReadiness(t *testing.T) {
	ready := false
	rec := debug.New(debug.Config{Loops: 1})
	m := newMetricsService("127.0.0.1:0", rec, nil, func() bool { return ready }, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ctx) }()
	defer func() { cancel(); <-errc }()
	<-m.ready
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + m.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before ready: %d", resp.StatusCode)
	}
	resp, err = hc.Get("http://" + m.Addr() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof on the metrics listener: %d", resp.StatusCode)
	}
}

// TestMetricsServerBounded: the metrics listener closes idle connections
// and refuses huge headers, as the debug server does.
func TestMetricsServerBounded(t *testing.T) {
	rec := debug.New(debug.Config{Loops: 1})
	m := newMetricsService("127.0.0.1:0", rec, nil, nil, testLogger())
	m.limits = debug.HTTPLimits{IdleTimeout: 50 * time.Millisecond, ReadHeaderTimeout: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ctx) }()
	defer func() { cancel(); <-errc }()
	<-m.ready
	for _, first := range []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "} {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, first)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(io.Discard, c)
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%q: connection not closed by the server", first)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 64<<10))
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %d", resp.StatusCode)
	}
}
