package debug

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/actord/actord/event"
	"github.com/actord/actord/internal/httpserve"
)

// The event bus endpoints: GET /debug/v1/bus/types lists the types of the
// daemon's event bus (ServerConfig.Bus), GET /debug/v1/bus/follow streams
// its events as they are emitted. Both are behind the token, as every
// route. A stream holds one wildcard (or typed) subscription of the bus
// with a bounded buffer: a client that reads too slowly is cut off, with a
// last line saying so, instead of making the server hold more.

// Bounds of the bus endpoints.
const (
	// DefaultBusBuffer is the events a bus stream holds for its client when
	// ServerConfig.BusBuffer is zero.
	DefaultBusBuffer = 1024
	// BusEventBytes bounds the JSON rendering of one bus event.
	BusEventBytes = 4096
	// MaxBusStreams bounds the bus streams served at once.
	MaxBusStreams = 16
	// maxBusParam bounds the type and query parameters, in bytes.
	maxBusParam = 4096
	// maxBusTypes bounds the types a stream may name.
	maxBusTypes = 64
	// busBatch is the most events written between two flushes.
	busBatch = 256
)

// BusTypesReply is the body of GET /debug/v1/bus/types.
type BusTypesReply struct {
	Version   int       `json:"version"`
	Types     []BusType `json:"types"`
	Wildcards int       `json:"wildcards"` // live subscriptions to every type
}

// BusType is an event type the bus knows (event.TypeInfo).
type BusType struct {
	Type        string `json:"type"` // its Go name, such as event.NodeUp: what the type parameter takes
	Emitters    int    `json:"emitters"`
	Subscribers int    `json:"subscribers"`
	Stateful    bool   `json:"stateful,omitempty"`
}

// BusEvent is one line of GET /debug/v1/bus/follow. The last line of a
// stream that the server ends (the client fell behind, the bus or the
// server closed) has End set to the reason and no event.
type BusEvent struct {
	Version int    `json:"version"`
	N       uint64 `json:"n,omitempty"`    // 1, 2, ... within the stream
	Time    string `json:"time,omitempty"` // when the server took it off the bus (RFC 3339, UTC)
	Type    string `json:"type,omitempty"` // its Go name
	// Event is the event as JSON: exported fields, refs as <loop.slot.gen>,
	// errors as their text, times in RFC 3339. When Truncated, it is a JSON
	// string holding the first BusEventBytes of that rendering.
	Event     json.RawMessage `json:"event,omitempty"`
	Truncated bool            `json:"truncated,omitempty"`
	End       string          `json:"end,omitempty"`
}

// errBusy is a 503: the server is at a bound it will leave.
var errBusy = errors.New("busy")

func (s *Server) busTypes(w http.ResponseWriter, r *http.Request) {
	bus := s.cfg.Bus
	if bus == nil {
		writeErr(w, fmt.Errorf("%w: this server has no event bus", errNotFound))
		return
	}
	reply := BusTypesReply{Version: ProtocolVersion, Types: []BusType{}, Wildcards: bus.Wildcards()}
	for _, t := range bus.Types() {
		reply.Types = append(reply.Types, BusType{Type: t.Type.String(), Emitters: t.Emitters, Subscribers: t.Subscribers, Stateful: t.Stateful})
	}
	writeJSON(w, http.StatusOK, reply)
}

// busSubscribe reads the type and query parameters and subscribes.
func (s *Server) busSubscribe(r *http.Request, buffer int) (*event.Stream[any], error) {
	q := r.URL.Query()
	names, query := q.Get("type"), q.Get("query")
	if len(names) > maxBusParam || len(query) > maxBusParam {
		return nil, badRequest("type and query parameters of at most %d bytes", maxBusParam)
	}
	opts := []event.Option{event.Buffer(buffer)} // slow-subscriber policy Cancel: cut off, said why
	if query != "" {
		if _, err := event.ParseQuery(query); err != nil {
			return nil, badRequest("%v", err)
		}
		opts = append(opts, event.MatchQuery(query))
	}
	var types []event.Type
	if names != "" {
		known := s.cfg.Bus.Types()
		chosen := make([]bool, len(known))
		count := 0
		for _, name := range strings.Split(names, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if count++; count > maxBusTypes {
				return nil, badRequest("more than %d types", maxBusTypes)
			}
			found := false
			for i, t := range known {
				if t.Type.String() == name {
					chosen[i], found = true, true // every type of that name (they may come from several packages)
				}
			}
			if !found {
				all := make([]string, len(known))
				for i, t := range known {
					all[i] = t.Type.String()
				}
				return nil, badRequest("unknown event type %q: the bus knows %s", name, strings.Join(all, ","))
			}
		}
		for i, c := range chosen {
			if c {
				types = append(types, known[i].Type)
			}
		}
	}
	var sub *event.Stream[any]
	var err error
	if len(types) == 0 {
		sub, err = event.SubscribeAll(s.cfg.Bus, opts...)
	} else {
		sub, err = event.SubscribeMany(s.cfg.Bus, types, opts...)
	}
	switch {
	case errors.Is(err, event.ErrInvalid):
		return nil, badRequest("%v", err)
	case errors.Is(err, event.ErrTooManySubscriptions), errors.Is(err, event.ErrBusClosed):
		return nil, fmt.Errorf("%w: %w", errBusy, err)
	}
	return sub, err
}

// busFollow streams the bus's events as JSON lines (application/x-ndjson):
// every event emitted after the request, of the types named by the type
// parameter (comma-separated Go names; all types when absent), matching
// the query parameter (the bus's query language), until the client goes
// away, the server or the bus closes, or the client falls behind by
// ServerConfig.BusBuffer events (its last line then says so).
func (s *Server) busFollow(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Bus == nil {
		writeErr(w, fmt.Errorf("%w: this server has no event bus", errNotFound))
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, errors.New("streaming unsupported"))
		return
	}
	if s.busStreams.Add(1) > MaxBusStreams {
		s.busStreams.Add(-1)
		writeErr(w, fmt.Errorf("%w: %d event bus streams are being served, the most this server serves at once", errBusy, MaxBusStreams))
		return
	}
	defer s.busStreams.Add(-1)
	buffer := s.cfg.BusBuffer
	sub, err := s.busSubscribe(r, buffer)
	if err != nil {
		writeErr(w, err)
		return
	}
	defer sub.Unsubscribe()
	// The write deadline is renewed before each batch (see follow): a
	// client that stops reading is cut off by it, and meanwhile its
	// subscription's buffer is all the server holds for it.
	writeTimeout := s.cfg.Limits.WithDefaults().WriteTimeout
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	rend := newRendererLimit(BusEventBytes)
	var n uint64
	line := func(v any) {
		n++
		e := BusEvent{Version: ProtocolVersion, N: n, Time: time.Now().UTC().Format(timeFormat), Type: fmt.Sprintf("%T", v)}
		e.Event, e.Truncated = renderEvent(&rend, v)
		_ = enc.Encode(e)
	}
	out := sub.Out()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			_ = enc.Encode(BusEvent{Version: ProtocolVersion, End: "the debug server is closing"})
			_ = bw.Flush()
			fl.Flush()
			return
		case v, ok := <-out:
			_ = httpserve.ExtendWrite(w, writeTimeout)
			if !ok {
				_ = enc.Encode(BusEvent{Version: ProtocolVersion, End: busEnd(sub.Err(), buffer)})
				_ = bw.Flush()
				fl.Flush()
				return
			}
			line(v)
		batch:
			for range busBatch - 1 {
				select {
				case v, ok := <-out:
					if !ok {
						break batch // the end line follows on the next turn
					}
					line(v)
				default:
					break batch
				}
			}
			if bw.Flush() != nil {
				return
			}
			fl.Flush()
		}
	}
}

// busEnd says why a bus stream's subscription ended.
func busEnd(err error, buffer int) string {
	switch {
	case errors.Is(err, event.ErrOutOfCapacity):
		return fmt.Sprintf("cut off: the client fell more than %d events behind", buffer)
	case errors.Is(err, event.ErrBusClosed):
		return "the event bus closed"
	}
	return fmt.Sprintf("the subscription ended: %v", err)
}

// renderEvent renders a bus event as JSON, bounded by the renderer's limit;
// a cut rendering is returned as a JSON string, so the line stays valid.
func renderEvent(rend *renderer, v any) (raw json.RawMessage, truncated bool) {
	defer func() {
		if recover() != nil { // an Error or String method of the event panicked
			raw, truncated = json.RawMessage(`"<render panicked>"`), false
		}
	}()
	var mt *msgType
	if v != nil {
		mt = rend.msgType(typeWord(v), v)
	}
	b, cut := rend.render(v, mt)
	if cut {
		return appendJSONString(nil, string(b)), true
	}
	return json.RawMessage(slices.Clone(b)), false
}

// BusQuery selects the events of a bus stream: the event types by their Go
// names (all when empty), and a query in the bus's query language (see
// event.Query; none when empty).
type BusQuery struct {
	Types []string
	Query string
}

// BusTypes lists the event types of the daemon's bus.
func (c *Client) BusTypes(ctx context.Context) (*BusTypesReply, error) {
	var r BusTypesReply
	return &r, c.getJSON(ctx, "/debug/v1/bus/types", nil, &r)
}

// ErrStreamEnded is matched (errors.Is) by the error FollowBus returns when
// the server ended the stream; the error's text says why (the client fell
// behind, the bus closed).
var ErrStreamEnded = errors.New("the server ended the stream")

// FollowBus streams the daemon's bus events to fn until fn returns false,
// ctx is done, or the server ends the stream (an error matching
// ErrStreamEnded, with the server's reason).
func (c *Client) FollowBus(ctx context.Context, q BusQuery, fn func(BusEvent) bool) error {
	v := url.Values{}
	if len(q.Types) > 0 {
		v.Set("type", strings.Join(q.Types, ","))
	}
	if q.Query != "" {
		v.Set("query", q.Query)
	}
	resp, err := c.do(ctx, http.MethodGet, "/debug/v1/bus/follow", v, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e BusEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("bus follow: a line that is not an event: %w", err)
		}
		if e.End != "" {
			return fmt.Errorf("%w: %s", ErrStreamEnded, e.End)
		}
		if !fn(e) {
			return nil
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
