package debug

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/httpserve"
	"github.com/actord/actord/internal/pprofhttp"
)

// ServerConfig sets up a debug server.
type ServerConfig struct {
	// Addr is the listen address. Default "127.0.0.1:0" (localhost, any
	// free port: see Server.Addr).
	Addr string
	// TokenFile is where the server writes its access token (mode 0600,
	// replaced atomically). Required: without the token nobody gets
	// anything from the server.
	TokenFile string
	// LoopTimeout bounds how long a request waits for a loop to answer (to
	// list its actors or read a state). Default 2s: a stuck loop is then
	// reported as unresponsive instead of hanging the debugger.
	LoopTimeout time.Duration
	// FollowInterval is how often a follow stream looks for new events.
	// Default 100ms.
	FollowInterval time.Duration
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// Limits bound connections, request time and sizes (see HTTPLimits);
	// zero fields take the defaults.
	Limits HTTPLimits
	// Ready answers GET /readyz (200 when true, 503 when false), which
	// needs no token; nil means ready while the server runs. /healthz,
	// also without the token, answers 200 while the server runs.
	Ready func() bool
	// Bus, if set, is the event bus that GET /debug/v1/bus/types lists and
	// GET /debug/v1/bus/follow streams (see BusEvent). Without it they
	// answer 404.
	Bus *event.Bus
	// Peers, if set, is what GET /debug/v1/peers lists: the remote node's
	// peers as its connection manager sees them (remote.Node.Peers).
	// Without it the route answers 404.
	Peers PeersSource
	// BusBuffer is how many events a bus stream may hold for a client that
	// reads slower than the bus emits; past it the stream is cut off with a
	// last line saying so. Default DefaultBusBuffer.
	BusBuffer int
}

// HTTPLimits bound what the debug and metrics servers accept from a
// client, before and after its token is checked: connections served at
// once (64; more wait in the listen backlog), time to send the headers
// (5 s) and the whole request (30 s), time to write a response (60 s;
// follow streams get that much per write instead), time idle between
// requests (60 s), header bytes (8 KiB: 431 past it) and body bytes (1 MiB:
// 413 past it).
type HTTPLimits = httpserve.Limits

// Server serves a Recorder's view over HTTP: the dump protocol under
// /debug/v1/, Prometheus metrics at /metrics and net/http/pprof under
// /debug/pprof/. Every request must carry the access token (the
// capability) as "Authorization: Bearer TOKEN" (the scheme in any case);
// any other request gets 401 and an empty body, except GET /healthz and
// GET /readyz, which answer "ok" or "not ready" and nothing else.
type Server struct {
	rec    *Recorder
	cfg    ServerConfig
	digest [sha256.Size]byte
	hs     *httpserve.Server
	done   chan struct{}
	served chan struct{} // closed once the serving goroutines are done

	mu         sync.Mutex
	extra      []MetricsSource
	close      sync.Once
	busStreams atomic.Int64 // bus streams being served
}

// NewServer writes a fresh token to cfg.TokenFile and starts serving rec
// on cfg.Addr in a goroutine of its own. Stop it with Close.
func NewServer(rec *Recorder, cfg ServerConfig) (*Server, error) {
	if cfg.TokenFile == "" {
		return nil, errors.New("debug: ServerConfig.TokenFile is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.LoopTimeout <= 0 {
		cfg.LoopTimeout = 2 * time.Second
	}
	if cfg.FollowInterval <= 0 {
		cfg.FollowInterval = 100 * time.Millisecond
	}
	if cfg.BusBuffer <= 0 {
		cfg.BusBuffer = DefaultBusBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tok, err := WriteTokenFile(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	s := &Server{rec: rec, cfg: cfg, digest: sha256.Sum256([]byte(tok)), done: make(chan struct{}), served: make(chan struct{})}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("debug: listen on %s: %w", cfg.Addr, err)
	}
	s.hs = httpserve.Serve(ln, s.Handler(), cfg.Limits, cfg.Logger)
	go func() {
		defer close(s.served)
		<-s.hs.Done()
		if err := s.hs.Err(); err != nil {
			cfg.Logger.Error("debug: server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.hs.Addr() }

// AddMetrics adds a source of extra metric families to /metrics (the
// remote layer's frames, bytes and connections, say).
func (s *Server) AddMetrics(src MetricsSource) {
	s.mu.Lock()
	s.extra = append(s.extra, src)
	s.mu.Unlock()
}

// Close stops the server: follow streams end, open connections are closed,
// and it waits for the serving goroutine to return.
func (s *Server) Close() error {
	var err error
	s.close.Do(func() {
		close(s.done)
		err = s.hs.Close()
		<-s.served
	})
	return err
}

// WriteTokenFile writes a fresh random token (256 bits, hex) to path with
// mode 0600, replacing the file atomically, and returns it.
func WriteTokenFile(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("debug token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	f, err := os.CreateTemp(filepath.Dir(path), ".actord-token-*")
	if err != nil {
		return "", fmt.Errorf("debug token file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(tok + "\n")
	cerr := f.Chmod(0o600)
	if err := errors.Join(werr, cerr, f.Close()); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("debug token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("debug token file: %w", err)
	}
	return tok, nil
}

// ReadTokenFile reads a token written by WriteTokenFile. It refuses a file
// that others than its owner may read or write, as ssh does with keys.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("debug token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("debug token file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("debug token file %s has mode %v: it must be readable by its owner only (0600)", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return "", fmt.Errorf("debug token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("debug token file %s is empty", path)
	}
	return tok, nil
}

// authorized compares the request's token with the server's in constant
// time (digests, so the length of the token leaks nothing either). The
// scheme is matched in any case, as RFC 9110 has it.
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1
}

// Handler returns the server's HTTP handler: every route behind the token
// check but /healthz and /readyz, request bodies bounded by
// HTTPLimits.MaxBodyBytes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/v1/loops", s.loops)
	mux.HandleFunc("GET /debug/v1/actors", s.actors)
	mux.HandleFunc("GET /debug/v1/tree", s.tree)
	mux.HandleFunc("GET /debug/v1/state", s.state)
	mux.HandleFunc("GET /debug/v1/events", s.events)
	mux.HandleFunc("GET /debug/v1/crashes", s.crashesH)
	mux.HandleFunc("GET /debug/v1/follow", s.follow)
	mux.HandleFunc("GET /debug/v1/bus/types", s.busTypes)
	mux.HandleFunc("GET /debug/v1/bus/follow", s.busFollow)
	mux.HandleFunc("GET /debug/v1/peers", s.peers)
	mux.HandleFunc("GET /debug/v1/dump", s.dump)
	mux.HandleFunc("POST /debug/v1/patch", s.patch)
	mux.HandleFunc("POST /debug/v1/trace", s.trace)
	mux.HandleFunc("GET /metrics", s.metrics)
	// Profiling on this mux only (net/http/pprof would also register on
	// the default mux); a profile may run past the write timeout.
	pprofhttp.Register(mux, "/debug/pprof/", func(w http.ResponseWriter, d time.Duration) { _ = httpserve.ExtendWrite(w, d) })
	guarded := httpserve.Health(s.cfg.Ready, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="actord debug"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return http.MaxBytesHandler(guarded, s.cfg.Limits.WithDefaults().MaxBodyBytes)
}

// writeJSON writes v as indented JSON, with < > & as they are (the
// default HTML escaping would turn every actor id <0.1.0> into
// \u003c0.1.0\u003e).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, actor.ErrDead), errors.Is(err, actor.ErrInvalidRef), errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrNoState), errors.Is(err, ErrNotPatchable), errors.Is(err, ErrSuspended):
		status = http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, errBusy):
		status = http.StatusServiceUnavailable
	}
	// The body names the problem for a person; the Go package prefixes of
	// the error chain would only repeat themselves there.
	writeJSON(w, status, ErrorBody{Error: pkgPrefix.ReplaceAllString(err.Error(), "$1")})
}

// pkgPrefix matches the package prefixes in an error's text.
var pkgPrefix = regexp.MustCompile(`(^|: )(?:debug|actor): `)

var (
	errBadRequest = errors.New("bad request")
	errTooLarge   = errors.New("request body too large")
	errNotFound   = errors.New("not found")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.LoopTimeout)
}

// LoopsReply is the body of GET /debug/v1/loops.
type LoopsReply struct {
	Version int    `json:"version"`
	Loops   []Loop `json:"loops"`
}

func (s *Server) loops(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, LoopsReply{Version: ProtocolVersion, Loops: s.rec.Loops()})
}

// ActorsReply is the body of GET /debug/v1/actors.
type ActorsReply struct {
	Version      int     `json:"version"`
	Actors       []Actor `json:"actors"`
	Unresponsive []int   `json:"unresponsive_loops"`
}

func (s *Server) listActors(r *http.Request) ([]Actor, []int, error) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	a, u, err := s.rec.Actors(ctx)
	if a == nil {
		a = []Actor{}
	}
	if u == nil {
		u = []int{}
	}
	return a, u, err
}

func (s *Server) actors(w http.ResponseWriter, r *http.Request) {
	a, u, err := s.listActors(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ActorsReply{Version: ProtocolVersion, Actors: a, Unresponsive: u})
}

// TreeReply is the body of GET /debug/v1/tree.
type TreeReply struct {
	Version      int     `json:"version"`
	Tree         []*Node `json:"tree"`
	Unresponsive []int   `json:"unresponsive_loops"`
}

func (s *Server) tree(w http.ResponseWriter, r *http.Request) {
	a, u, err := s.listActors(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TreeReply{Version: ProtocolVersion, Tree: Tree(a), Unresponsive: u})
}

func (s *Server) resolve(r *http.Request) (actor.Ref, error) {
	name := r.URL.Query().Get("actor")
	if name == "" {
		return actor.Ref{}, badRequest("missing actor parameter")
	}
	if len(name) > maxName {
		return actor.Ref{}, badRequest("actor parameter of %d bytes: at most %d", len(name), maxName)
	}
	if id, ok := parseID(name); ok && (id.loop < 0 || int(id.loop) >= len(s.rec.loops)) {
		return actor.Ref{}, fmt.Errorf("%w: no actor %s (the daemon has %d loops)", errNotFound, name, len(s.rec.loops))
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	ref, err := s.rec.Resolve(ctx, name)
	if err != nil && !errors.Is(err, actor.ErrDead) && !errors.Is(err, ErrNotAttached) && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", errBadRequest, err) // several actors of that name
	}
	return ref, err
}

// maxName bounds an actor parameter: ids and names are short.
const maxName = 1024

// EventKinds returns the kinds of recorded events, as Event.Kind names
// them and as the kind parameter takes them: the runtime's, then the
// operator's (patch, trace).
func EventKinds() []string {
	var ks []string
	for k := actor.EventSend; k <= actor.EventReport; k++ {
		ks = append(ks, k.String())
	}
	return append(ks, kindName(KindPatch), kindName(KindTrace))
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	ref, err := s.resolve(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.rec.State(ctx, ref)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, StateReply{Version: ProtocolVersion, State: st})
}

// StateReply is the body of GET /debug/v1/state: the State's members and
// the version.
type StateReply struct {
	Version int `json:"version"`
	*State
}

// filter reads the event filter parameters: actor, loop, kind (comma
// separated), last.
func (s *Server) filter(r *http.Request) (EventFilter, error) {
	q := r.URL.Query()
	f := EventFilter{Loop: -1}
	if q.Get("actor") != "" {
		ref, err := s.resolve(r)
		if err != nil {
			return f, err
		}
		f.Actor = &ref
	}
	if v := q.Get("loop"); v != "" {
		n, err := s.loopParam(v)
		if err != nil {
			return f, err
		}
		f.Loop = n
	}
	if v := q.Get("last"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, badRequest("bad last %q: want a count, 0 or more", v)
		}
		f.Last = n
	}
	if v := q.Get("kind"); v != "" {
		known := EventKinds()
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(known, k) {
				return f, badRequest("unknown event kind %q: want some of %s", k, strings.Join(known, ","))
			}
			f.Kinds = append(f.Kinds, k)
		}
	}
	return f, nil
}

// loopParam reads a loop number, which must name one of the loops.
func (s *Server) loopParam(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n >= len(s.rec.loops) {
		return 0, badRequest("bad loop %q: the daemon has loops 0 to %d", v, len(s.rec.loops)-1)
	}
	return n, nil
}

// EventsReply is the body of GET /debug/v1/events.
type EventsReply struct {
	Version int     `json:"version"`
	Events  []Event `json:"events"`
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	f, err := s.filter(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	if r.URL.Query().Get("last") == "" {
		f.Last = 100
	}
	ev := s.rec.Events(f)
	if ev == nil {
		ev = []Event{}
	}
	writeJSON(w, http.StatusOK, EventsReply{Version: ProtocolVersion, Events: ev})
}

// CrashesReply is the body of GET /debug/v1/crashes.
type CrashesReply struct {
	Version int      `json:"version"`
	Total   uint64   `json:"total"`
	Crashes []Crash  `json:"crashes"`
	Reports []Report `json:"reports"`
}

func (s *Server) crashesH(w http.ResponseWriter, r *http.Request) {
	c, total := s.rec.Crashes()
	rep := s.rec.Reports()
	if rep == nil {
		rep = []Report{}
	}
	writeJSON(w, http.StatusOK, CrashesReply{Version: ProtocolVersion, Total: total, Crashes: c, Reports: rep})
}

func (s *Server) dump(w http.ResponseWriter, r *http.Request) {
	last := 1000
	if v := r.URL.Query().Get("last"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, badRequest("bad last %q", v))
			return
		}
		last = n
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	d, err := s.rec.Dump(ctx, last)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// PatchReply is the body of POST /debug/v1/patch.
type PatchReply struct {
	Version int             `json:"version"`
	Actor   string          `json:"actor"`
	State   json.RawMessage `json:"state"`
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	ref, err := s.resolve(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	body, err := io.ReadAll(r.Body) // bounded by HTTPLimits.MaxBodyBytes
	if err != nil {
		if httpserve.BodyTooLarge(err) {
			writeErr(w, fmt.Errorf("%w: %v", errTooLarge, err))
			return
		}
		writeErr(w, badRequest("body: %v", err))
		return
	}
	if !json.Valid(body) {
		writeErr(w, badRequest("the body is not valid JSON"))
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.rec.Patch(ctx, ref, body)
	if err != nil {
		if !errors.Is(err, ErrNotPatchable) && !errors.Is(err, ErrSuspended) && !errors.Is(err, ErrNotAttached) &&
			!errors.Is(err, actor.ErrDead) && !errors.Is(err, actor.ErrInvalidRef) && ctx.Err() == nil {
			// The actor's DebugPatch refused the document (a wrong type, a
			// value out of range): the request's fault, not the server's.
			err = fmt.Errorf("%w: the actor refused the state: %w", errBadRequest, err)
		}
		writeErr(w, err)
		return
	}
	if st == nil {
		st = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, PatchReply{Version: ProtocolVersion, Actor: idOf(ref).String(), State: st})
}

// TraceReply is the body of POST /debug/v1/trace.
type TraceReply struct {
	Version int    `json:"version"`
	Actor   string `json:"actor,omitempty"`
	Loop    *int   `json:"loop,omitempty"`
	On      bool   `json:"on"`
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	on, err := strconv.ParseBool(q.Get("on"))
	if err != nil {
		writeErr(w, badRequest("on must be true or false"))
		return
	}
	if v := q.Get("loop"); v != "" {
		n, err := s.loopParam(v)
		if err != nil {
			writeErr(w, err)
			return
		}
		if err := s.rec.SetTraceLoop(n, on); err != nil {
			writeErr(w, badRequest("%v", err))
			return
		}
		writeJSON(w, http.StatusOK, TraceReply{Version: ProtocolVersion, Loop: &n, On: on})
		return
	}
	ref, err := s.resolve(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.rec.SetTraceActor(ctx, ref, on); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TraceReply{Version: ProtocolVersion, Actor: idOf(ref).String(), On: on})
}

// follow streams events as JSON lines (application/x-ndjson), starting
// with the last `last` events (default 0) and then each new one, until the
// client goes away or the server closes. Events the ring dropped before the
// stream could read them are announced by a line of kind "lost" whose
// payload is how many were lost.
func (s *Server) follow(w http.ResponseWriter, r *http.Request) {
	f, err := s.filter(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, errors.New("streaming unsupported"))
		return
	}
	// The stream outlives HTTPLimits.WriteTimeout: the write deadline is
	// renewed before each batch of events, so only a client that stops
	// reading for that long is cut off. (net/http lifts the read deadline
	// itself once the request is read: the client's leaving ends the
	// request's context.)
	writeTimeout := s.cfg.Limits.WithDefaults().WriteTimeout
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	after := make(map[int]uint64, len(s.rec.loops))
	for i, lr := range s.rec.loops {
		lr.mu.Lock()
		after[i] = lr.n
		lr.mu.Unlock()
	}
	if f.Last > 0 {
		for _, e := range s.rec.Events(f) {
			_ = enc.Encode(e)
		}
	}
	_ = bw.Flush()
	fl.Flush()
	tick := time.NewTicker(s.cfg.FollowInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-tick.C:
		}
		_ = httpserve.ExtendWrite(w, writeTimeout)
		g := f
		g.Last = 0
		g.After = after
		sent := false
		snap := make(map[int]uint64, len(s.rec.loops))
		for i, lr := range s.rec.loops {
			lr.mu.Lock()
			n, lo := lr.n, uint64(0)
			if lr.n > uint64(len(lr.recs)) {
				lo = lr.n - uint64(len(lr.recs))
			}
			lr.mu.Unlock()
			snap[i] = n
			if lo > after[i] && (g.Loop < 0 || g.Loop == i) {
				_ = enc.Encode(Event{Loop: i, N: lo, Time: time.Now().UTC().Format(timeFormat), Kind: "lost",
					Payload: strconv.FormatUint(lo-after[i], 10), Outcome: "ok"})
				sent = true
			}
		}
		for _, e := range s.rec.Events(g) {
			_ = enc.Encode(e)
			after[e.Loop] = max(after[e.Loop], e.N)
			sent = true
		}
		for i, n := range snap { // events filtered out up to the snapshot are passed
			after[i] = max(after[i], n)
		}
		if sent {
			if bw.Flush() != nil {
				return
			}
			fl.Flush()
		}
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	fams := s.rec.Families()
	s.mu.Lock()
	extra := append([]MetricsSource(nil), s.extra...)
	s.mu.Unlock()
	for _, src := range extra {
		fams = append(fams, src()...)
	}
	fams = append(fams, RuntimeFamilies()...)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = WriteMetrics(w, fams)
}
