package debug

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrUnauthorized means the server refused the client's token.
var ErrUnauthorized = errors.New("unauthorized: wrong or missing token")

// ErrBadRequest is matched (errors.Is) by a *StatusError for a request the
// server refused as malformed: a bad parameter (400), a body too large
// (413) or headers too large (431).
var ErrBadRequest = errors.New("bad request")

// StatusError is a reply of the server other than 200.
type StatusError struct {
	Code    int    // the HTTP status
	Message string // the server's error text, or the status text
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Code)
}

// Is makes errors.Is(err, ErrBadRequest) and errors.Is(err,
// ErrUnauthorized) true for the statuses they stand for.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Code == http.StatusBadRequest || e.Code == http.StatusRequestEntityTooLarge ||
			e.Code == http.StatusRequestHeaderFieldsTooLarge
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	}
	return false
}

// Client talks to a debug server (what `actord debug` uses).
type Client struct {
	// Base is the server's base URL, e.g. "http://127.0.0.1:6060".
	Base string
	// Token is the access token (see ReadTokenFile).
	Token string
	// HTTP is the HTTP client. Default http.DefaultClient.
	HTTP *http.Client
}

// NewClient returns a client for the server at addr ("host:port" or a
// URL), with the token read from tokenFile.
func NewClient(addr, tokenFile string) (*Client, error) {
	tok, err := ReadTokenFile(tokenFile)
	if err != nil {
		return nil, err
	}
	return &Client{Base: baseURL(addr), Token: tok}, nil
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := c.Base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, ErrUnauthorized
	}
	se := &StatusError{Code: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	var eb ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		se.Message = eb.Error
	}
	return nil, se
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Loops returns every loop's numbers.
func (c *Client) Loops(ctx context.Context) ([]Loop, error) {
	var r LoopsReply
	err := c.getJSON(ctx, "/debug/v1/loops", nil, &r)
	return r.Loops, err
}

// Actors lists the actors, and the loops that did not answer.
func (c *Client) Actors(ctx context.Context) (*ActorsReply, error) {
	var r ActorsReply
	err := c.getJSON(ctx, "/debug/v1/actors", nil, &r)
	return &r, err
}

// Tree returns the supervision tree.
func (c *Client) Tree(ctx context.Context) (*TreeReply, error) {
	var r TreeReply
	err := c.getJSON(ctx, "/debug/v1/tree", nil, &r)
	return &r, err
}

// State returns an actor's state (by id or unique name) and its recent
// states.
func (c *Client) State(ctx context.Context, actorName string) (*State, error) {
	var r State
	err := c.getJSON(ctx, "/debug/v1/state", url.Values{"actor": {actorName}}, &r)
	return &r, err
}

// EventQuery selects events for Events and Follow.
type EventQuery struct {
	Actor string   // id or unique name; empty for all
	Loop  int      // -1 for all loops
	Kinds []string // empty for all
	Last  int      // Events: 0 means the server's default (100); Follow: events to replay first
}

func (q EventQuery) values() url.Values {
	v := url.Values{}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Loop >= 0 {
		v.Set("loop", strconv.Itoa(q.Loop))
	}
	if len(q.Kinds) > 0 {
		v.Set("kind", strings.Join(q.Kinds, ","))
	}
	if q.Last > 0 {
		v.Set("last", strconv.Itoa(q.Last))
	}
	return v
}

// Events returns recorded events.
func (c *Client) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	var r EventsReply
	err := c.getJSON(ctx, "/debug/v1/events", q.values(), &r)
	return r.Events, err
}

// Crashes returns the crash log and the supervisor reports.
func (c *Client) Crashes(ctx context.Context) (*CrashesReply, error) {
	var r CrashesReply
	err := c.getJSON(ctx, "/debug/v1/crashes", nil, &r)
	return &r, err
}

// Dump returns everything, with at most last events per loop (0: the
// server's default, 1000).
func (c *Client) Dump(ctx context.Context, last int) (*Dump, error) {
	var d Dump
	q := url.Values{}
	if last > 0 {
		q.Set("last", strconv.Itoa(last))
	}
	err := c.getJSON(ctx, "/debug/v1/dump", q, &d)
	return &d, err
}

// DumpRaw returns the dump as the server sent it.
func (c *Client) DumpRaw(ctx context.Context, last int) ([]byte, error) {
	q := url.Values{}
	if last > 0 {
		q.Set("last", strconv.Itoa(last))
	}
	resp, err := c.do(ctx, http.MethodGet, "/debug/v1/dump", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Patch replaces an actor's state with doc and returns its new state.
func (c *Client) Patch(ctx context.Context, actorName string, doc json.RawMessage) (*PatchReply, error) {
	resp, err := c.do(ctx, http.MethodPost, "/debug/v1/patch", url.Values{"actor": {actorName}}, doc)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r PatchReply
	return &r, json.NewDecoder(resp.Body).Decode(&r)
}

// TraceActor switches state tracing of one actor.
func (c *Client) TraceActor(ctx context.Context, actorName string, on bool) (*TraceReply, error) {
	return c.postTrace(ctx, url.Values{"actor": {actorName}, "on": {strconv.FormatBool(on)}})
}

// TraceLoop switches state tracing of every actor of a loop.
func (c *Client) TraceLoop(ctx context.Context, loop int, on bool) (*TraceReply, error) {
	return c.postTrace(ctx, url.Values{"loop": {strconv.Itoa(loop)}, "on": {strconv.FormatBool(on)}})
}

func (c *Client) postTrace(ctx context.Context, q url.Values) (*TraceReply, error) {
	resp, err := c.do(ctx, http.MethodPost, "/debug/v1/trace", q, []byte("{}"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r TraceReply
	return &r, json.NewDecoder(resp.Body).Decode(&r)
}

// Follow streams events to fn until fn returns false, ctx is done or the
// server ends the stream.
func (c *Client) Follow(ctx context.Context, q EventQuery, fn func(Event) bool) error {
	resp, err := c.do(ctx, http.MethodGet, "/debug/v1/follow", q.values(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("follow: a line that is not an event: %w", err)
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

// Metrics returns the Prometheus text of /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
