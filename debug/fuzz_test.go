package debug_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/debug"
)

// FuzzHandler feeds arbitrary requests (method, path, query, auth, a
// header, body) to the debug server's handler: it must not panic, must
// answer without the token only 401 with nothing (or the health probes'
// ok / not ready), must never answer 500 (bad input is the client's
// fault: 4xx), and must keep its answers bounded.
func FuzzHandler(f *testing.F) {
	d := startDaemon(f, debug.Config{})
	h := d.srv.Handler()
	for _, seed := range []struct {
		method, path, query string
		auth                uint8
		body                string
	}{
		{"GET", "/debug/v1/loops", "", 1, ""},
		{"GET", "/debug/v1/actors", "", 1, ""},
		{"GET", "/debug/v1/tree", "", 2, ""},
		{"GET", "/debug/v1/state", "actor=app/gate", 1, ""},
		{"GET", "/debug/v1/state", "actor=<0.1.0>", 1, ""},
		{"GET", "/debug/v1/state", "actor=<4294967295.1.0>", 1, ""},
		{"GET", "/debug/v1/events", "kind=send,ask&loop=1&last=3&actor=app/counter", 1, ""},
		{"GET", "/debug/v1/events", "kind=bogus", 1, ""},
		{"GET", "/debug/v1/crashes", "", 1, ""},
		{"GET", "/debug/v1/follow", "last=2&loop=0", 1, ""},
		{"GET", "/debug/v1/dump", "last=5", 1, ""},
		{"POST", "/debug/v1/patch", "actor=app/gate", 1, `{"stuck":false,"done":1}`},
		{"POST", "/debug/v1/patch", "actor=app/gate", 1, `{"stuck":"no"}`},
		{"POST", "/debug/v1/trace", "actor=app/counter&on=true", 1, "{}"},
		{"POST", "/debug/v1/trace", "loop=1&on=false", 1, ""},
		{"GET", "/metrics", "", 1, ""},
		{"GET", "/healthz", "", 0, ""},
		{"GET", "/readyz", "", 0, ""},
		{"GET", "/debug/v1/dump", "", 0, ""},
		{"DELETE", "/debug/v1/loops", "", 1, ""},
	} {
		f.Add(seed.method, seed.path, seed.query, seed.auth, "X-Any", "v", []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query string, auth uint8, hname, hvalue string, body []byte) {
		if strings.Contains(path, "pprof") {
			t.Skip("net/http/pprof's profile and trace run for seconds by design")
		}
		req, err := http.NewRequest(method, "http://127.0.0.1"+path+"?"+query, bytes.NewReader(body))
		if err != nil || req.URL.Host != "127.0.0.1" {
			t.Skip("not a request a server would parse")
		}
		if hname != "" && validHeader(hname, hvalue) {
			req.Header.Set(hname, hvalue)
		}
		authorized := false
		switch auth % 4 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+d.client.Token)
			authorized = true
		case 2:
			req.Header.Set("Authorization", "bearer "+d.client.Token)
			authorized = true
		case 3:
			req.Header.Set("Authorization", "Bearer "+hvalue)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond) // ends follow streams
		defer cancel()
		req = req.WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		health := (req.Method == "GET" || req.Method == "HEAD") && (req.URL.Path == "/healthz" || req.URL.Path == "/readyz")
		switch {
		case health:
			if w.Code != 200 && w.Code != 503 {
				t.Fatalf("%s %s: %d", req.Method, req.URL.Path, w.Code)
			}
		case !authorized && hvalue != d.client.Token:
			if w.Code != http.StatusUnauthorized || w.Body.Len() != 0 {
				t.Fatalf("%s %s without the token: %d %q", req.Method, req.URL, w.Code, w.Body.String())
			}
		case w.Code >= 500 && w.Code != http.StatusGatewayTimeout:
			t.Fatalf("%s %s?%s %q: %d %s", req.Method, req.URL.Path, req.URL.RawQuery, body, w.Code, w.Body.String())
		}
		if w.Body.Len() > 16<<20 {
			t.Fatalf("%s %s: a %d-byte answer", req.Method, req.URL, w.Body.Len())
		}
	})
}

// validHeader reports whether net/http would send this header (a server
// never sees one it could not parse).
func validHeader(name, value string) bool {
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return !strings.ContainsAny(value, "\r\n\x00") && !strings.EqualFold(name, "Authorization") && !strings.EqualFold(name, "Host")
}
