package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/actord/actord/gateway"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/supervisor"
	"github.com/vmihailenco/msgpack/v5"
)

// Application specs: checked against the daemon's kinds at deploy, kept
// in the registry as msgpack.

// checkName checks a name from a config file or a client: 1 to
// MaxAppNameLen bytes of valid UTF-8 without control characters.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxAppNameLen:
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxAppNameLen)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("control characters")
	}
	return nil
}

// encodeAppSpec checks a spec against the daemon's kinds and returns it
// as the registry keeps it: msgpack, map keys sorted so that the same spec
// always gives the same bytes. Every error matches gateway.ErrBadAppSpec
// and names the field.
func encodeAppSpec(s AppSpec, kinds Kinds) ([]byte, error) {
	bad := func(field, format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: %s: %s", gateway.ErrBadAppSpec, field, fmt.Sprintf(format, args...))
	}
	// The size first: the kinds' argument checks below are the kinds'
	// code, not to be run on a spec that is refused anyway.
	b, err := sortedMsgpack(s)
	if err != nil {
		return bad("args", "%v", err)
	}
	if len(b) > MaxAppSpecSize {
		return bad("spec", "%d bytes encoded, at most %d", len(b), MaxAppSpecSize)
	}
	if err := checkName(s.Name); err != nil {
		return bad("name", "%q: %v", truncate(s.Name, 64), err)
	}
	if _, err := strategyOf(s.Strategy); err != nil {
		return bad("strategy", "%v", err)
	}
	if s.Intensity < 0 || s.Intensity > MaxAppIntensity {
		return bad("intensity", "%d: want 0 to %d", s.Intensity, MaxAppIntensity)
	}
	if s.Period < 0 || time.Duration(s.Period) > 24*time.Hour {
		return bad("period", "%v: want 0 to 24h", time.Duration(s.Period))
	}
	if len(s.Prefer) > appreg.MaxPrefer {
		return bad("prefer", "%d daemons, at most %d", len(s.Prefer), appreg.MaxPrefer)
	}
	for _, p := range s.Prefer {
		if err := checkName(p); err != nil {
			return bad("prefer", "%q: %v", truncate(p, 64), err)
		}
	}
	if len(s.Children) == 0 || len(s.Children) > MaxAppChildren {
		return bad("children", "%d children: want 1 to %d", len(s.Children), MaxAppChildren)
	}
	ids := map[string]bool{}
	for i, ch := range s.Children {
		f := fmt.Sprintf("children[%d]", i)
		if err := checkName(ch.Name); err != nil {
			return bad(f+".name", "%q: %v", truncate(ch.Name, 64), err)
		}
		if ids[ch.Name] {
			return bad(f+".name", "%q: duplicate child name", ch.Name)
		}
		ids[ch.Name] = true
		if _, err := restartOf(ch.Restart); err != nil {
			return bad(f+".restart", "%v", err)
		}
		if _, err := shutdownOf(ch.Shutdown); err != nil {
			return bad(f+".shutdown", "%v", err)
		}
		if ch.Node != "" {
			if err := checkName(ch.Node); err != nil {
				return bad(f+".node", "%q: %v", truncate(ch.Node, 64), err)
			}
		}
		k, ok := kinds[ch.Kind]
		if !ok {
			return bad(f+".kind", "%q is not a kind of this daemon", truncate(ch.Kind, 64))
		}
		// The kind checks its arguments when it makes the factory, which
		// starts nothing.
		args, err := plainArgs(ch.Args)
		if err != nil {
			return bad(f+".args", "%v", err)
		}
		if _, err := callKind(k, args); err != nil {
			return bad(f+".args", "kind %q refused them: %v", ch.Kind, err)
		}
	}
	return b, nil
}

// sortedMsgpack encodes v as msgpack with map keys sorted: the same value
// always gives the same bytes.
func sortedMsgpack(v any) ([]byte, error) {
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf bytes.Buffer
	enc.Reset(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeAppSpec decodes a spec from the registry, strictly.
func decodeAppSpec(b []byte) (AppSpec, error) {
	var s AppSpec
	if len(b) > MaxAppSpecSize {
		return s, fmt.Errorf("%w: %d bytes", gateway.ErrBadAppSpec, len(b))
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: %w", gateway.ErrBadAppSpec, err)
	}
	return s, nil
}

// plainArgs copies a child's arguments (a JSON object, or the msgpack
// values it decodes to) into fresh plain values, integers as int64: each
// start gets its own, which the kind may keep.
func plainArgs(a map[string]any) (any, error) {
	if a == nil {
		return nil, nil
	}
	b, err := msgpack.Marshal(a)
	if err != nil {
		return nil, err
	}
	var v any
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return normalise(v), nil
}

func strategyOf(s string) (supervisor.Strategy, error) {
	switch s {
	case "", "one_for_one":
		return supervisor.OneForOne, nil
	case "one_for_all":
		return supervisor.OneForAll, nil
	case "rest_for_one":
		return supervisor.RestForOne, nil
	}
	return 0, fmt.Errorf("%q: want one_for_one, one_for_all or rest_for_one", truncate(s, 64))
}

func restartOf(s string) (supervisor.RestartType, error) {
	switch s {
	case "", "permanent":
		return supervisor.Permanent, nil
	case "transient":
		return supervisor.Transient, nil
	case "temporary":
		return supervisor.Temporary, nil
	}
	return 0, fmt.Errorf("%q: want permanent, transient or temporary", truncate(s, 64))
}

func shutdownOf(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil // supervisor.DefaultShutdown
	case "brutal_kill":
		return supervisor.BrutalKill, nil
	case "infinity":
		return supervisor.Infinity, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > time.Hour {
		return 0, fmt.Errorf("%q: want a duration from 1ns to 1h, brutal_kill or infinity", truncate(s, 64))
	}
	return d, nil
}
