package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/actord/actord/debug"
	"github.com/actord/actord/internal/httpserve"
)

// debugService runs a debug.Server as a suture service. A restart makes a
// new server (and a new token, as at every start) on the address the first
// one got, so a port chosen by the system (":0") stays the same. Its
// /readyz follows the daemon's readiness (cfg.Ready).
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
// address of its own (Config.MetricsAddr), with /healthz and /readyz
// beside it (for a kubelet's probes), within the same bounds as the debug
// server (debug.HTTPLimits).
type metricsService struct {
	want    string
	rec     *debug.Recorder
	extra   debug.MetricsSource
	isReady func() bool
	log     *slog.Logger
	limits  debug.HTTPLimits
	ready   chan struct{} // closed once it listens

	mu   sync.Mutex
	addr string
	once sync.Once
}

func newMetricsService(addr string, rec *debug.Recorder, extra debug.MetricsSource, isReady func() bool, log *slog.Logger) *metricsService {
	return &metricsService{want: addr, rec: rec, extra: extra, isReady: isReady, log: log, ready: make(chan struct{})}
}

// Addr returns the address the server listens on, once it does.
func (s *metricsService) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// handler serves /metrics, /healthz and /readyz; anything else is 404.
func (s *metricsService) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fams := s.rec.Families()
		if s.extra != nil {
			fams = append(fams, s.extra()...)
		}
		fams = append(fams, debug.RuntimeFamilies()...)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = debug.WriteMetrics(w, fams)
	})
	return httpserve.Health(s.isReady, mux)
}

// Serve runs the metrics server until ctx is done.
func (s *metricsService) Serve(ctx context.Context) error {
	addr := s.Addr()
	if addr == "" {
		addr = s.want
	}
	srv, err := httpserve.Listen(addr, s.handler(), s.limits, s.log)
	if err != nil {
		return fmt.Errorf("metrics server: listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.addr = srv.Addr()
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })
	select {
	case <-ctx.Done():
		_ = srv.Close()
		return ctx.Err()
	case <-srv.Done():
		err := srv.Err()
		if err == nil {
			err = errors.New("closed")
		}
		return fmt.Errorf("metrics server stopped: %w", err)
	}
}

func (s *metricsService) String() string { return "metrics-http" }
