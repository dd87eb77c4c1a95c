// Package ratelog bounds the log lines that other machines can cause. It
// wraps a slog.Handler so that records with the same level, message and
// source (the values of a few attributes naming where they came from, such
// as "remote_addr") pass at most Burst times per Interval; the rest are
// counted, and the next record of that key that passes carries
// "suppressed" with how many were dropped. A peer that sends junk in a
// loop therefore costs one line per interval, not one per packet, while
// distinct problems from distinct sources still show.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config sets up a Handler. Zero fields take the defaults.
type Config struct {
	// Interval is the window over which Burst records of one key pass.
	// Default 10 s.
	Interval time.Duration
	// Burst is how many records of one key pass per Interval. Default 5.
	Burst int
	// SourceKeys are the attribute keys whose values, with the level and
	// the message, make a record's key. Default: "peer", "remote_addr",
	// "addr", "from", "source".
	SourceKeys []string
	// MinLevel is the lowest level limited; lower levels (debug output a
	// user asked for) pass untouched. Default slog.LevelInfo.
	MinLevel slog.Level
	// MaxKeys bounds the keys remembered. Past it, windows that have ended
	// are forgotten; if none has, records of new keys share one overflow
	// key per message, so memory stays bounded whatever the sources.
	// Default 4096.
	MaxKeys int
	// Now reads the clock (tests inject one). Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Burst <= 0 {
		c.Burst = 5
	}
	if c.SourceKeys == nil {
		c.SourceKeys = []string{"peer", "remote_addr", "addr", "from", "source"}
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Handler is a slog.Handler that rate-limits repeated records (see the
// package doc). Handlers derived with WithAttrs and WithGroup share its
// limits.
type Handler struct {
	next  slog.Handler
	state *state
	// source values bound with WithAttrs, part of every record's key
	bound string
}

type state struct {
	cfg Config
	mu  sync.Mutex
	win map[string]*window
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

// New wraps next.
func New(next slog.Handler, cfg Config) *Handler {
	cfg = cfg.withDefaults()
	return &Handler{next: next, state: &state{cfg: cfg, win: map[string]*window{}}}
}

// Wrap returns a logger whose records pass through a Handler with cfg.
func Wrap(l *slog.Logger, cfg Config) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l // limited already
	}
	return slog.New(New(l.Handler(), cfg))
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler: it passes r on unless its key is over
// its limit.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	if r.Level < s.cfg.MinLevel {
		return h.next.Handle(ctx, r)
	}
	key := h.key(r)
	s.mu.Lock()
	now := s.cfg.Now()
	w := s.win[key]
	if w == nil {
		if len(s.win) >= s.cfg.MaxKeys {
			s.evict(now)
			if len(s.win) >= s.cfg.MaxKeys {
				key = "\x00overflow\x00" + r.Level.String() + "\x00" + r.Message
				w = s.win[key]
			}
		}
		if w == nil {
			w = &window{start: now}
			s.win[key] = w
		}
	}
	if now.Sub(w.start) >= s.cfg.Interval {
		w.start, w.passed = now, 0
	}
	if w.passed >= s.cfg.Burst {
		w.suppressed++
		s.mu.Unlock()
		return nil
	}
	w.passed++
	dropped := w.suppressed
	w.suppressed = 0
	s.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

// evict forgets windows that have ended and dropped nothing. s.mu held.
func (s *state) evict(now time.Time) {
	for k, w := range s.win {
		if now.Sub(w.start) >= s.cfg.Interval && w.suppressed == 0 {
			delete(s.win, k)
		}
	}
}

func (h *Handler) key(r slog.Record) string {
	b := make([]byte, 0, 64)
	b = append(b, r.Level.String()...)
	b = append(b, 0)
	b = append(b, r.Message...)
	b = append(b, 0)
	b = append(b, h.bound...)
	r.Attrs(func(a slog.Attr) bool {
		if h.isSource(a.Key) {
			b = append(b, a.Key...)
			b = append(b, '=')
			b = append(b, a.Value.String()...)
			b = append(b, 0)
		}
		return true
	})
	return string(b)
}

func (h *Handler) isSource(k string) bool {
	for _, s := range h.state.cfg.SourceKeys {
		if s == k {
			return true
		}
	}
	return false
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	bound := h.bound
	for _, a := range as {
		if h.isSource(a.Key) {
			bound += a.Key + "=" + a.Value.String() + "\x00"
		}
	}
	return &Handler{next: h.next.WithAttrs(as), state: h.state, bound: bound}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state, bound: h.bound}
}
