package debug_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/debug"
)

// get does a request with the daemon's token (auth "" means none; any
// other value is the whole Authorization header).
func (d *daemon) request(t *testing.T, method, path, auth string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+d.srv.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth == "token" {
		auth = "Bearer " + d.client.Token
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Transport: d.tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBearerAnyCase: the auth scheme is case-insensitive (RFC 9110).
func TestBearerAnyCase(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		if code, _ := d.request(t, "GET", "/debug/v1/loops", scheme+" "+d.client.Token, nil); code != 200 {
			t.Errorf("scheme %q: %d, want 200", scheme, code)
		}
	}
	for _, auth := range []string{"Bearer", "Bearer" + d.client.Token, "Basic " + d.client.Token, "Bearerx " + d.client.Token} {
		if code, _ := d.request(t, "GET", "/debug/v1/loops", auth, nil); code != 401 {
			t.Errorf("%q: %d, want 401", auth, code)
		}
	}
}

// TestBadInputIs4xx: nonsense parameters and bodies are the client's
// fault (4xx with a reason), never a silent 200 nor a 500.
func TestBadInputIs4xx(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	d.child(t, "gate")
	for _, tc := range []struct {
		method, path string
		body         []byte
		code         int
		reason       string
	}{
		{"GET", "/debug/v1/events?kind=bogus", nil, 400, `unknown event kind "bogus"`},
		{"GET", "/debug/v1/events?kind=send,,ask", nil, 400, `unknown event kind ""`},
		{"GET", "/debug/v1/events?loop=9", nil, 400, "loops 0 to 1"},
		{"GET", "/debug/v1/events?loop=-1", nil, 400, "bad loop"},
		{"GET", "/debug/v1/events?last=-1", nil, 400, "bad last"},
		{"GET", "/debug/v1/follow?loop=2", nil, 400, "loops 0 to 1"},
		{"GET", "/debug/v1/dump?last=x", nil, 400, "bad last"},
		{"POST", "/debug/v1/trace?loop=7&on=true", nil, 400, "loops 0 to 1"},
		{"POST", "/debug/v1/trace?actor=app/gate&on=maybe", nil, 400, "on must be"},
		{"GET", "/debug/v1/state?actor=<9.0.0>", nil, 404, "no actor <9.0.0>"},
		{"GET", "/debug/v1/state?actor=<4294967295.0.0>", nil, 404, "no actor"},
		{"GET", "/debug/v1/state?actor=nobody", nil, 404, "no actor nobody"},
		{"GET", "/debug/v1/state?actor=" + strings.Repeat("a", 2000), nil, 400, "at most 1024"},
		{"GET", "/debug/v1/state", nil, 400, "missing actor"},
		{"POST", "/debug/v1/patch?actor=app/gate", []byte(`{"stuck":"yes"}`), 400, "refused the state"},
		{"POST", "/debug/v1/patch?actor=app/gate", []byte(`{"stuck":`), 400, "not valid JSON"},
		{"POST", "/debug/v1/patch?actor=app/gate", append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 1<<20)...), 413, "too large"}, // just over: the server reads it all, no reset
		{"POST", "/debug/v1/patch?actor=app/counter", []byte(`{}`), 409, "cannot be patched"},
	} {
		code, body := d.request(t, tc.method, tc.path, "token", tc.body)
		var eb debug.ErrorBody
		_ = json.Unmarshal(body, &eb)
		if code != tc.code || !strings.Contains(eb.Error, tc.reason) {
			t.Errorf("%s %.80s: %d %q, want %d and %q", tc.method, tc.path, code, eb.Error, tc.code, tc.reason)
		}
		if strings.Contains(eb.Error, "debug: ") || strings.Contains(eb.Error, "actor: ") {
			t.Errorf("%s %.80s: package prefixes in %q", tc.method, tc.path, eb.Error)
		}
	}
	// Through the client: errors.Is(ErrBadRequest), no repeated prefixes.
	_, err := d.client.Events(context.Background(), debug.EventQuery{Loop: -1, Kinds: []string{"bogus"}})
	if !errors.Is(err, debug.ErrBadRequest) || strings.Count(err.Error(), "bad request") != 1 || strings.Contains(err.Error(), "debug:") {
		t.Fatalf("client error %v", err)
	}
	var se *debug.StatusError
	if _, err := d.client.State(context.Background(), "nobody"); !errors.As(err, &se) || se.Code != 404 || errors.Is(err, debug.ErrBadRequest) {
		t.Fatalf("state of nobody: %v", err)
	}
}

// TestJSONNotHTMLEscaped: actor ids come out as <0.1.0>, not
// \u003c0.1.0\u003e, in every body, follow streams included.
func TestJSONNotHTMLEscaped(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	d.child(t, "gate")
	for _, path := range []string{"/debug/v1/actors", "/debug/v1/tree", "/debug/v1/dump", "/debug/v1/state?actor=app/counter"} {
		code, body := d.request(t, "GET", path, "token", nil)
		if code != 200 || !bytes.Contains(body, []byte(`"<0.`)) || bytes.Contains(body, []byte(`\u003c`)) {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.srv.Addr()+"/debug/v1/follow?last=5", nil)
	req.Header.Set("Authorization", "Bearer "+d.client.Token)
	resp, err := (&http.Client{Transport: d.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"<0.`) || strings.Contains(line, `\u003c`) {
		t.Fatalf("follow line %q %v", line, err)
	}
}

// TestHealthWithoutToken: /healthz and /readyz need no token and say
// nothing but ok / not ready.
func TestHealthWithoutToken(t *testing.T) {
	var ready atomic.Bool
	d := startDaemon(t, debug.Config{})
	srv, err := debug.NewServer(d.rec, debug.ServerConfig{TokenFile: filepath.Join(t.TempDir(), "t"), Logger: quietLogger(), Ready: ready.Load})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := (&http.Client{Transport: d.tr}).Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body != "not ready\n" {
		t.Fatalf("readyz before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get("/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("readyz when ready: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 401 || body != "" {
		t.Fatalf("metrics without the token: %d %q", code, body)
	}
}

// TestServerLimits: the debug server applies its HTTPLimits: idle
// connections are closed, headers are bounded.
func TestServerLimits(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	srv, err := debug.NewServer(d.rec, debug.ServerConfig{TokenFile: filepath.Join(t.TempDir(), "t"), Logger: quietLogger(),
		Limits: debug.HTTPLimits{IdleTimeout: 50 * time.Millisecond, ReadHeaderTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, first := range []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Unfinished: "} {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, first); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(io.Discard, c) // the reply if any, then EOF when the server closes
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%q: the connection was not closed", first)
		}
		c.Close()
	}
	req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	resp, err := (&http.Client{Transport: d.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %d, want 431", resp.StatusCode)
	}
}

// TestFollowOutlivesTimeouts: a follow stream goes on past the server's
// read and write timeouts, which bound ordinary requests.
func TestFollowOutlivesTimeouts(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	srv, err := debug.NewServer(d.rec, debug.ServerConfig{TokenFile: d.tokenF + "2", Logger: quietLogger(), FollowInterval: 5 * time.Millisecond,
		Limits: debug.HTTPLimits{ReadTimeout: 50 * time.Millisecond, WriteTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl, err := debug.NewClient(srv.Addr(), d.tokenF+"2")
	if err != nil {
		t.Fatal(err)
	}
	cl.HTTP = &http.Client{Transport: d.tr}
	ref := d.child(t, "counter")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	var late atomic.Bool
	go func() {
		errc <- cl.Follow(ctx, debug.EventQuery{Actor: "app/counter", Loop: -1, Kinds: []string{"send"}}, func(e debug.Event) bool {
			// Wait for an event well past both timeouts.
			if time.Since(start) > 500*time.Millisecond {
				late.Store(true)
				return false
			}
			return true
		})
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case err := <-errc:
			if err != nil || !late.Load() {
				t.Fatalf("the stream ended after %v: %v", time.Since(start), err)
			}
			return
		case <-tick.C:
			_ = d.sys.Send(ref, Add{N: n})
		}
	}
}

var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfNa]+$`)

// TestRuntimeMetrics: /metrics has the standard go_ and process_
// families, in the text format.
func TestRuntimeMetrics(t *testing.T) {
	d := startDaemon(t, debug.Config{})
	text, err := d.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE go_goroutines gauge\ngo_goroutines ",
		"# TYPE go_gc_duration_seconds summary\n",
		`go_gc_duration_seconds{quantile="0.5"} `,
		"go_gc_duration_seconds_count ",
		`go_info{version="go`,
		"go_memstats_alloc_bytes_total ",
		"go_memstats_heap_inuse_bytes ",
		"go_threads ",
		"go_sched_gomaxprocs_threads ",
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
		"process_resident_memory_bytes ",
		"process_open_fds ",
		"process_max_fds ",
		"process_start_time_seconds ",
		"actord_loop_events_total{loop=\"0\"} ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
	typed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(l, "# HELP ") {
			continue
		}
		if !sampleLine.MatchString(l) {
			t.Errorf("not a sample line: %q", l)
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count"), "_total")
		if !typed[name] && !typed[base] && !typed[base+"_total"] {
			t.Errorf("sample %s before its TYPE line", name)
		}
	}
}
