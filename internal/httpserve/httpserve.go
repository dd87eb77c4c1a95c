// Package httpserve serves HTTP to untrusted clients within fixed bounds:
// connections served at once, time to send the headers and the body, time
// idle between requests, header and body size. The debug server and the
// daemon's metrics server both use it, so an attacker who reaches their
// port holds at most Limits.MaxConns connections for at most a timeout
// each, whatever it sends, before any token is checked.
package httpserve

import (
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/actord/actord/internal/ratelog"
)

// Limits bound what one server accepts. Zero fields take the defaults.
type Limits struct {
	// MaxConns bounds the connections served at once; further ones wait
	// in the kernel's listen backlog until one closes. Default 64.
	MaxConns int
	// ReadHeaderTimeout bounds the time to send a request's headers.
	// Default 5 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to send a whole request, body included.
	// Default 30 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time to write a response; streaming handlers
	// extend it per write (see ExtendWrite). Default 60 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long between
	// requests. Default 60 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. A request over
	// it gets 431. Default 8 KiB (net/http allows itself 4 KiB of slack
	// beyond it).
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; reading past it fails with an
	// *http.MaxBytesError (see BodyTooLarge) and the reply should be 413.
	// Default 1 MiB.
	MaxBodyBytes int64
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = 64
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 5 * time.Second
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 30 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 60 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 60 * time.Second
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 8 << 10
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	return l
}

// Server is an http.Server on a listener that holds at most MaxConns
// connections.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	limits Limits
	served chan struct{}
	err    error
	conns  sync.WaitGroup // connections not yet closed
}

// Listen listens on addr and serves h within the limits in a goroutine of
// its own until Close. Every request body is wrapped in
// http.MaxBytesReader. The server's own error lines (a handler's panic,
// say) go to log as warnings, at most a few per interval: they embed the
// client's address, so a client could otherwise make one line per
// connection.
func Listen(addr string, h http.Handler, l Limits, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(ln, h, l, log), nil
}

// Serve serves h on ln as Listen does.
func Serve(ln net.Listener, h http.Handler, l Limits, log *slog.Logger) *Server {
	l = l.WithDefaults()
	if log == nil {
		log = slog.Default()
	}
	elog := stdlog.New(errorWriter{ratelog.Wrap(log, ratelog.Config{})}, "", 0)
	s := &Server{ln: netutil.LimitListener(ln, l.MaxConns), limits: l, served: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           http.MaxBytesHandler(h, l.MaxBodyBytes),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          elog,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Done()
			}
		},
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done is closed once the server has stopped serving (Close, or the
// listener failing: see Err).
func (s *Server) Done() <-chan struct{} { return s.served }

// Err returns why the server stopped by itself, once Done is closed; nil
// after Close.
func (s *Server) Err() error {
	<-s.served
	return s.err
}

// Close closes the listener and every connection, and waits for the
// serving goroutines to return (net/http may linger up to half a second on
// a connection it refused, to let the client read the refusal).
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.served
	s.waitConns()
	return err
}

// waitConns waits, for a bounded time, until every connection's goroutine
// has finished.
func (s *Server) waitConns() {
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// ExtendWrite moves w's write deadline to d from now, for a handler that
// streams for longer than Limits.WriteTimeout: each write it makes must then
// finish within d, so a client that stops reading is still cut off.
func ExtendWrite(w http.ResponseWriter, d time.Duration) error {
	return http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// BodyTooLarge reports whether err comes from reading past MaxBodyBytes.
func BodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// Health answers GET or HEAD /healthz with 200 "ok" while the server runs,
// and /readyz with 200 "ok" when ready() is true and 503 "not ready"
// otherwise; for any other request it calls next. It needs no credentials
// and tells nothing else: probes from a kubelet or a load balancer can use
// it.
func Health(ready func() bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (r.URL.Path != "/healthz" && r.URL.Path != "/readyz") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		status, body := http.StatusOK, "ok\n"
		if r.URL.Path == "/readyz" && ready != nil && !ready() {
			status, body = http.StatusServiceUnavailable, "not ready\n"
		}
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, body)
		}
	})
}

// errorWriter turns net/http's error lines into one log message, so the
// rate limiter keys them together whatever client address they embed.
type errorWriter struct{ log *slog.Logger }

func (e errorWriter) Write(p []byte) (int, error) {
	e.log.Warn("http server error", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}
