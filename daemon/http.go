package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/actord/actord/debug"
)

// debugService runs a debug.Server as a suture service. A restart makes a
// new server (and a new token, as at every start) on the address the first
// one got, so a port chosen by the system (":0") stays the same.
type debugService struct {
	rec   *debug.Recorder
	cfg   debug.ServerConfig
	extra debug.MetricsSource
	ready chan struct{}

	mu   sync.Mutex
	addr string
	once sync.Once
}

func newDebugService(rec *debug.Recorder, cfg debug.ServerConfig, extra debug.MetricsSource) *debugService {
	return &debugService{rec: rec, cfg: cfg, extra: extra, ready: make(chan struct{})}
}

// Addr returns the address the server listens on, once it does.
func (s *debugService) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve runs the debug server until ctx is done.
func (s *debugService) Serve(ctx context.Context) error {
	cfg := s.cfg
	if a := s.Addr(); a != "" {
		cfg.Addr = a
	}
	srv, err := debug.NewServer(s.rec, cfg)
	if err != nil {
		return fmt.Errorf("debug server on %s: %w", cfg.Addr, err)
	}
	if s.extra != nil {
		srv.AddMetrics(s.extra)
	}
	s.mu.Lock()
	s.addr = srv.Addr()
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })
	<-ctx.Done()
	_ = srv.Close()
	return ctx.Err()
}

func (s *debugService) String() string { return "debug-http" }

// metricsService serves /metrics alone, without the debug token, on an
// address of its own (Config.MetricsAddr).
type metricsService struct {
	want  string
	rec   *debug.Recorder
	extra debug.MetricsSource
	log   *slog.Logger
	ready chan struct{}

	mu   sync.Mutex
	addr string
	once sync.Once
}

func newMetricsService(addr string, rec *debug.Recorder, extra debug.MetricsSource, log *slog.Logger) *metricsService {
	return &metricsService{want: addr, rec: rec, extra: extra, log: log, ready: make(chan struct{})}
}

// Addr returns the address the server listens on, once it does.
func (s *metricsService) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve runs the metrics server until ctx is done.
func (s *metricsService) Serve(ctx context.Context) error {
	addr := s.Addr()
	if addr == "" {
		addr = s.want
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics server: listen: %w", err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fams := s.rec.Families()
		if s.extra != nil {
			fams = append(fams, s.extra()...)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = debug.WriteMetrics(w, fams)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.once.Do(func() { close(s.ready) })
	select {
	case <-ctx.Done():
		_ = srv.Close()
		<-errc
		return ctx.Err()
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = errors.New("closed")
		}
		return fmt.Errorf("metrics server stopped: %w", err)
	}
}

func (s *metricsService) String() string { return "metrics-http" }
