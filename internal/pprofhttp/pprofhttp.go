// Package pprofhttp serves the runtime's profiles over HTTP on a mux of the
// caller's choosing, in the formats `go tool pprof` and `go tool trace`
// read. It exists because importing net/http/pprof registers its handlers
// on http.DefaultServeMux as a side effect: a program that links the
// debugger and serves the default mux anywhere would expose profiling
// without meaning to. Here nothing is registered until Register is called.
package pprofhttp

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxSeconds bounds how long a CPU profile or an execution trace may run.
const MaxSeconds = 60

// Register mounts the handlers under prefix (such as "/debug/pprof/") on
// mux: the index, every named profile (heap, goroutine, allocs, block,
// mutex, threadcreate and any the program defines), profile (CPU, for
// ?seconds=N, default 30), trace (?seconds=N, default 1), cmdline and
// symbol. extend, if not nil, is called before a CPU profile or a trace
// with how long it will run, so that the server can push back its write
// deadline.
func Register(mux *http.ServeMux, prefix string, extend func(w http.ResponseWriter, d time.Duration)) {
	if extend == nil {
		extend = func(http.ResponseWriter, time.Duration) {}
	}
	mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, prefix)
		if name == "" {
			index(w, prefix)
			return
		}
		named(w, r, name)
	})
	mux.HandleFunc(prefix+"cmdline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(os.Args, "\x00"))
	})
	mux.HandleFunc(prefix+"profile", func(w http.ResponseWriter, r *http.Request) {
		d, ok := seconds(w, r, 30)
		if !ok {
			return
		}
		extend(w, d+10*time.Second)
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			http.Error(w, "cpu profile: "+err.Error(), http.StatusConflict)
			return
		}
		sleep(r, d)
		pprof.StopCPUProfile()
		attachment(w, "profile")
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc(prefix+"trace", func(w http.ResponseWriter, r *http.Request) {
		d, ok := seconds(w, r, 1)
		if !ok {
			return
		}
		extend(w, d+10*time.Second)
		var buf bytes.Buffer
		if err := trace.Start(&buf); err != nil {
			http.Error(w, "trace: "+err.Error(), http.StatusConflict)
			return
		}
		sleep(r, d)
		trace.Stop()
		attachment(w, "trace")
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc(prefix+"symbol", symbol)
}

// seconds reads ?seconds= (def when absent), within 1..MaxSeconds.
func seconds(w http.ResponseWriter, r *http.Request, def int) (time.Duration, bool) {
	s := r.URL.Query().Get("seconds")
	if s == "" {
		return time.Duration(def) * time.Second, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxSeconds {
		http.Error(w, fmt.Sprintf("seconds must be an integer from 1 to %d", MaxSeconds), http.StatusBadRequest)
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// sleep waits d, or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func attachment(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
}

// named writes the profile name: binary (gzipped protocol buffer) unless
// ?debug=N asks for text.
func named(w http.ResponseWriter, r *http.Request, name string) {
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	debug := 0
	if s := r.URL.Query().Get("debug"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 2 {
			http.Error(w, "debug must be 0, 1 or 2", http.StatusBadRequest)
			return
		}
		debug = n
	}
	if name == "heap" && r.URL.Query().Get("gc") != "" {
		runtime.GC()
	}
	if debug == 0 {
		attachment(w, name)
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	var buf bytes.Buffer // a profile that fails half way is an error, not a torn body
	if err := p.WriteTo(&buf, debug); err != nil {
		http.Error(w, "profile "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(buf.Bytes())
}

func index(w http.ResponseWriter, prefix string) {
	ps := pprof.Profiles()
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name() < ps[j].Name() })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<html><head><title>profiles</title></head><body><p>Profiles:</p><table>\n")
	for _, p := range ps {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href='%s%s?debug=1'>%s</a></td></tr>\n", p.Count(), prefix, n, n)
	}
	fmt.Fprintf(&b, "</table><p><a href='%sprofile'>profile</a> (CPU, ?seconds=30), <a href='%strace?seconds=1'>trace</a>, <a href='%scmdline'>cmdline</a></p></body></html>\n", prefix, prefix, prefix)
	_, _ = io.WriteString(w, b.String())
}

// symbol answers `go tool pprof`'s symbol lookups: hexadecimal program
// counters separated by '+' (in the query or the body), each answered with
// its function's name.
func symbol(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	b.WriteString("num_symbols: 1\n")
	var in io.Reader = strings.NewReader(r.URL.RawQuery)
	if r.Method == http.MethodPost {
		in = r.Body // bounded by the server's body limit
	}
	sc := bufio.NewScanner(in)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '+'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		word := sc.Text()
		pc, err := strconv.ParseUint(word, 0, 64)
		if err != nil {
			continue
		}
		if f := runtime.FuncForPC(uintptr(pc)); f != nil {
			fmt.Fprintf(&b, "%#x %s\n", pc, f.Name())
		}
	}
	_, _ = io.WriteString(w, b.String())
}
