package pprofhttp

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	Register(mux, "/debug/pprof/", nil)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// Registering mounts nothing on the default mux (net/http/pprof's import
// does, on every program that links it).
func TestNothingOnTheDefaultMux(t *testing.T) {
	serve(t)
	req := httptest.NewRequest("GET", "/debug/pprof/heap", nil)
	if _, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
		t.Fatalf("the default mux serves %q", pattern)
	}
}

func TestProfiles(t *testing.T) {
	s := serve(t)
	code, b := get(t, s.URL+"/debug/pprof/")
	if code != 200 || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("index: %d %q", code, b)
	}
	// Binary profiles are gzipped protocol buffers, as go tool pprof reads.
	for _, name := range []string{"heap", "goroutine", "allocs", "threadcreate"} {
		code, b := get(t, s.URL+"/debug/pprof/"+name)
		if code != 200 {
			t.Fatalf("%s: %d %q", name, code, b)
		}
		if _, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
			t.Fatalf("%s is not gzipped: %v", name, err)
		}
	}
	if code, b := get(t, s.URL+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("goroutine?debug=1: %d %.80q", code, b)
	}
	if code, _ := get(t, s.URL+"/debug/pprof/nothing"); code != http.StatusNotFound {
		t.Fatalf("an unknown profile: %d, want 404", code)
	}
	for _, q := range []string{"profile?seconds=0", "profile?seconds=61", "trace?seconds=x", "heap?debug=7"} {
		if code, _ := get(t, s.URL+"/debug/pprof/"+q); code != http.StatusBadRequest {
			t.Fatalf("%s: %d, want 400", q, code)
		}
	}
	if code, b := get(t, s.URL+"/debug/pprof/profile?seconds=1"); code != 200 || len(b) == 0 {
		t.Fatalf("cpu profile: %d, %d bytes", code, len(b))
	}
	if code, b := get(t, s.URL+"/debug/pprof/trace?seconds=1"); code != 200 || len(b) == 0 {
		t.Fatalf("trace: %d, %d bytes", code, len(b))
	}
	if code, b := get(t, s.URL+"/debug/pprof/cmdline"); code != 200 || len(b) == 0 {
		t.Fatalf("cmdline: %d %q", code, b)
	}
	pc, _, _, _ := runtime.Caller(0)
	if code, b := get(t, s.URL+"/debug/pprof/symbol?"+fmt.Sprintf("%#x", pc)); code != 200 || !strings.Contains(string(b), "TestProfiles") {
		t.Fatalf("symbol: %d %q", code, b)
	}
}

// A CPU profile while another runs is refused, not queued.
func TestOneCPUProfileAtATime(t *testing.T) {
	s := serve(t)
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Skipf("cannot profile here: %v", err)
	}
	code, _ := get(t, s.URL+"/debug/pprof/profile?seconds=1")
	pprof.StopCPUProfile()
	if code != http.StatusConflict {
		t.Fatalf("a CPU profile while another ran: %d, want 409", code)
	}
}
