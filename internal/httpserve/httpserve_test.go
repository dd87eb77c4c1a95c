package httpserve

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// countingListener counts the connections it accepted that are still
// open, and the most open at once.
type countingListener struct {
	net.Listener
	open, peak atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

func serve(t *testing.T, l Limits, h http.Handler) (*Server, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := Serve(cl, h, l, quiet)
	t.Cleanup(func() { _ = s.Close() })
	return s, cl
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })

// waitClosed reads from c until the server closes it (EOF or a reset),
// failing the test if that does not happen before the deadline.
func waitClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within %v", d)
	}
}

// TestIdleKeepAliveClosed: connections left idle after a request are
// closed by the server (IdleTimeout), and never more than MaxConns are
// served at once.
func TestIdleKeepAliveClosed(t *testing.T) {
	const n, max = 200, 16
	s, cl := serve(t, Limits{MaxConns: max, IdleTimeout: 50 * time.Millisecond}, okHandler)
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range conns {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Errorf("response: %v", err)
				return
			}
			_ = resp.Body.Close()
			waitClosed(t, c, 30*time.Second) // kept alive, then closed when idle
		}()
	}
	wg.Wait()
	if p := cl.peak.Load(); p > max {
		t.Fatalf("served %d connections at once, limit %d", p, max)
	}
}

// TestUnfinishedHeadersClosed: a client that never finishes its headers
// is cut off after ReadHeaderTimeout.
func TestUnfinishedHeadersClosed(t *testing.T) {
	const n, max = 200, 16
	s, cl := serve(t, Limits{MaxConns: max, ReadHeaderTimeout: 50 * time.Millisecond}, okHandler)
	var wg sync.WaitGroup
	for range n {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			waitClosed(t, c, 30*time.Second)
		}()
	}
	wg.Wait()
	if p := cl.peak.Load(); p > max {
		t.Fatalf("served %d connections at once, limit %d", p, max)
	}
}

// TestHeaderLimit: headers past MaxHeaderBytes (and net/http's 4 KiB of
// slack) get 431.
func TestHeaderLimit(t *testing.T) {
	s, _ := serve(t, Limits{}, okHandler)
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 4<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d for a 4 KiB header, want 200", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestBodyLimit: a body past MaxBodyBytes fails to read with an error
// BodyTooLarge recognises.
func TestBodyLimit(t *testing.T) {
	s, _ := serve(t, Limits{MaxBodyBytes: 1000}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); BodyTooLarge(err) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		}
	}))
	for _, tc := range []struct {
		size int
		want int
	}{{1000, 200}, {1001, 413}} {
		resp, err := http.Post("http://"+s.Addr()+"/", "application/json", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("body of %d bytes: status %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func heapBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestHugeHeadersMemoryBounded: 100 clients each sending 1 MiB of headers
// that never end do not make the server hold their bytes (with net/http's
// default 1 MiB header limit and no connection limit, it held about that
// much per connection).
func TestHugeHeadersMemoryBounded(t *testing.T) {
	const n = 100
	s, _ := serve(t, Limits{MaxConns: 16, ReadHeaderTimeout: 30 * time.Second}, okHandler)
	line := []byte("X-Pad: " + strings.Repeat("p", 1000) + "\r\n")
	body := append([]byte("GET / HTTP/1.1\r\nHost: x\r\n"), bytes.Repeat(line, (1<<20)/len(line))...)
	before := heapBytes()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range conns {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write(body) // cut off by a 431 and a close, or stuck in the backlog
		}()
	}
	wg.Wait()
	grown := int64(heapBytes()) - int64(before)
	for _, c := range conns {
		c.Close()
	}
	if grown > 32<<20 {
		t.Fatalf("heap grew by %d MiB with %d connections of huge headers", grown>>20, n)
	}
	t.Logf("heap grew by %d KiB", grown>>10)
}

// TestHealth: /healthz and /readyz answer without anything else; other
// paths go to the next handler.
func TestHealth(t *testing.T) {
	var ready atomic.Bool
	h := Health(ready.Load, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	s, _ := serve(t, Limits{}, h)
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+s.Addr()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path string
		ready        bool
		code         int
		body         string
	}{
		{"GET", "/healthz", false, 200, "ok\n"},
		{"GET", "/readyz", false, 503, "not ready\n"},
		{"GET", "/readyz", true, 200, "ok\n"},
		{"HEAD", "/readyz", true, 200, ""},
		{"POST", "/readyz", true, 418, ""},
		{"GET", "/healthz/x", true, 418, ""},
		{"GET", "/metrics", true, 418, ""},
	} {
		ready.Store(tc.ready)
		if code, body := get(tc.method, tc.path); code != tc.code || body != tc.body {
			t.Errorf("%s %s (ready %v): %d %q, want %d %q", tc.method, tc.path, tc.ready, code, body, tc.code, tc.body)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestErrorLogBounded: net/http's error lines (here a handler's panic,
// which a client can trigger at will) are rate-limited to a few lines.
func TestErrorLogBounded(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), Limits{}, log)
	defer s.Close()
	for range 50 {
		resp, err := http.Get("http://" + s.Addr() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(buf.String(), "http server error") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling for the first line, logged after the client saw the reset
	}
	if n := strings.Count(buf.String(), "http server error"); n == 0 || n > 5 {
		t.Fatalf("%d error lines for 50 panics, want 1 to 5:\n%s", n, buf.String())
	}
	http.DefaultClient.CloseIdleConnections()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
