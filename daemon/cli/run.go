package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/actord/actord/cluster"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/gateway" // not "daemon": debug_test.go has a func of that name
	"github.com/actord/actord/internal/fdlimit"
)

func init() {
	builtins["run"] = command{run: runMain, summary: "run the daemon: loops, remote node, cluster membership, debug server"}
}

// runConfig is what `actord run` can be told, by flags or by the JSON
// config file (--config): the file's members are the flags' names with
// underscores for dashes. Flags given on the command line win over the
// file.
type runConfig struct {
	Name            string   `json:"name"`
	Listen          string   `json:"listen"`
	Gossip          string   `json:"gossip"`
	Advertise       string   `json:"advertise"`
	Seeds           []string `json:"seeds"`
	Loops           int      `json:"loops"`
	DataDir         string   `json:"data_dir"`
	DebugAddr       string   `json:"debug_addr"`
	MetricsAddr     string   `json:"metrics_addr"`
	TokenFile       string   `json:"token_file"`
	ClusterKeyFile  string   `json:"cluster_key_file"`
	ClusterProfile  string   `json:"cluster_profile"`
	ShutdownTimeout duration `json:"shutdown_timeout"`
	// DrainOnStop drains the daemon (actord drain) when it is told to
	// stop (SIGTERM, SIGINT), within DrainTimeout, before its shutdown.
	DrainOnStop  bool     `json:"drain_on_stop"`
	DrainTimeout duration `json:"drain_timeout"`
	LogFormat    string   `json:"log_format"`
	LogLevel     string   `json:"log_level"`

	// The application registry (daemon.AppsConfig); zero values take the
	// daemon's defaults. Apps is in the file only.
	AppMembers       []string          `json:"app_members"`
	AppTick          duration          `json:"app_tick"`
	AppElectionTicks int               `json:"app_election_ticks"`
	AppLease         duration          `json:"app_lease"`
	AppRenewEvery    duration          `json:"app_renew_every"`
	AppMargin        duration          `json:"app_margin"`
	Apps             []gateway.AppSpec `json:"apps"`
}

func defaultRunConfig() runConfig {
	return runConfig{Listen: "127.0.0.1:7700", Gossip: "127.0.0.1:7946", DataDir: dmn.DefaultDataDir(),
		DebugAddr: "127.0.0.1:6060", ClusterProfile: string(cluster.ProfileLAN),
		ShutdownTimeout: duration(10 * time.Second), LogFormat: "text", LogLevel: "info"}
}

// duration is a time.Duration written as a Go duration string ("10s") in
// the config file.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// seedList is the --seeds flag: comma-separated, replacing the file's list.
type seedList struct{ s *[]string }

func (l seedList) String() string {
	if l.s == nil {
		return ""
	}
	return strings.Join(*l.s, ",")
}

func (l seedList) Set(v string) error {
	*l.s = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.s = append(*l.s, s)
		}
	}
	return nil
}

// runFlags binds the flags of `actord run` to c, with c's values as defaults.
func runFlags(c *runConfig, configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("actord run", flag.ContinueOnError)
	fs.StringVar(configPath, "config", "", "JSON config file (flags given here win over it)")
	fs.StringVar(&c.Name, "name", c.Name, "node name, unique in the cluster (default: the host name)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "remote (actor traffic) address HOST:PORT; peers dial it, so not 0.0.0.0")
	fs.StringVar(&c.Gossip, "gossip", c.Gossip, "cluster membership (memberlist, UDP+TCP) address HOST:PORT")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "gossip address other daemons should use, if not --gossip")
	fs.Var(seedList{&c.Seeds}, "seeds", "gossip addresses of daemons to join through, comma-separated")
	fs.IntVar(&c.Loops, "loops", c.Loops, "event loops (0: one per core)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the daemon's files: debug token, node key, capability (created 0700)")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, `debug server HOST:PORT (dump protocol, /metrics, pprof; token-guarded), or "off"`)
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics alone, without the token, on this HOST:PORT (default: on the debug server)")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "where to write the debug token (default: DATA-DIR/debug.token)")
	fs.StringVar(&c.ClusterKeyFile, "cluster-key-file", c.ClusterKeyFile, "file holding the cluster key (mode 0600 or 0400, at least 16 bytes): only daemons and clients with it can connect; it also encrypts gossip")
	fs.StringVar(&c.ClusterProfile, "cluster-profile", c.ClusterProfile, "failure detection timings: lan, local or fast (tests)")
	fs.Func("shutdown-timeout", fmt.Sprintf("bound on a graceful shutdown (default %v)", time.Duration(c.ShutdownTimeout)), func(s string) error {
		v, err := time.ParseDuration(s)
		c.ShutdownTimeout = duration(v)
		return err
	})
	fs.BoolVar(&c.DrainOnStop, "drain-on-stop", c.DrainOnStop, "on SIGTERM or SIGINT, move the application children elsewhere with their state (actord drain) before stopping")
	fs.Func("drain-timeout", "bound on the drain of --drain-on-stop (default 2m)", func(s string) error {
		v, err := time.ParseDuration(s)
		c.DrainTimeout = duration(v)
		return err
	})
	fs.Var(seedList{&c.AppMembers}, "app-members", "names of the daemons that run the application registry, comma-separated, the same on every daemon (empty: applications off)")
	durFlag := func(name string, d *duration, usage string) {
		fs.Func(name, usage, func(s string) error {
			v, err := time.ParseDuration(s)
			*d = duration(v)
			return err
		})
	}
	durFlag("app-tick", &c.AppTick, "application registry tick (default 100ms)")
	fs.IntVar(&c.AppElectionTicks, "app-election-ticks", c.AppElectionTicks, "application registry election timeout in ticks (default 10)")
	durFlag("app-lease", &c.AppLease, "lease of a daemon on an application it runs (default 5s; at least twice the election timeout)")
	durFlag("app-renew-every", &c.AppRenewEvery, "lease renewal period (default lease/5)")
	durFlag("app-margin", &c.AppMargin, "time an application gets to stop when its lease ends, plus a tick (default 1s)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format on stderr: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.SetOutput(io.Discard) // errors are reported in one line by parseRun
	return fs
}

// usageError is a bad flag, config file or configuration: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseRun turns the arguments of `actord run` into a daemon
// configuration. help is true for -h.
func parseRun(args []string) (cfg dmn.Config, rc runConfig, help bool, err error) {
	var path string
	first := defaultRunConfig()
	fs := runFlags(&first, &path)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, rc, true, nil
		}
		return cfg, rc, false, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, rc, false, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	rc = defaultRunConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, rc, false, usageError{fmt.Errorf("config file: %w", err)}
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		dec.UseNumber() // an application's args: integers stay integers
		if err := dec.Decode(&rc); err != nil {
			return cfg, rc, false, usageError{fmt.Errorf("config file %s: %w", path, err)}
		}
		if dec.More() {
			return cfg, rc, false, usageError{fmt.Errorf("config file %s: trailing data after the object", path)}
		}
		for i := range rc.Apps {
			for j := range rc.Apps[i].Children {
				if a := rc.Apps[i].Children[j].Args; a != nil {
					gateway.PlainNumbers(a)
				}
			}
		}
		// Flags given on the command line override the file.
		if err := runFlags(&rc, new(string)).Parse(args); err != nil {
			return cfg, rc, false, usageError{err}
		}
	} else {
		rc = first
	}
	switch rc.LogFormat {
	case "text", "json":
	default:
		return cfg, rc, false, usageError{fmt.Errorf("log format %q: want text or json", rc.LogFormat)}
	}
	if _, err := parseLevel(rc.LogLevel); err != nil {
		return cfg, rc, false, usageError{err}
	}
	cfg = dmn.Config{
		Name: rc.Name, Listen: rc.Listen, Gossip: rc.Gossip, Advertise: rc.Advertise, Seeds: rc.Seeds,
		Loops: rc.Loops, DataDir: rc.DataDir, DebugAddr: rc.DebugAddr, MetricsAddr: rc.MetricsAddr,
		TokenFile: rc.TokenFile, ClusterKeyFile: rc.ClusterKeyFile, ShutdownTimeout: time.Duration(rc.ShutdownTimeout),
		DrainOnStop: rc.DrainOnStop, DrainTimeout: time.Duration(rc.DrainTimeout),
		Cluster: cluster.Config{Profile: cluster.Profile(rc.ClusterProfile)},
		Apps: dmn.AppsConfig{Members: rc.AppMembers, Tick: time.Duration(rc.AppTick), ElectionTicks: rc.AppElectionTicks,
			Lease: time.Duration(rc.AppLease), RenewEvery: time.Duration(rc.AppRenewEvery), Margin: time.Duration(rc.AppMargin),
			Apps: rc.Apps},
	}
	// The applications name the program's kinds, which Start checks them
	// against (a bad one fails it with ErrConfig: exit code 2 too).
	early := cfg
	early.Apps.Apps = nil
	if err := early.WithDefaults().Validate(); err != nil {
		return cfg, rc, false, usageError{err}
	}
	return cfg, rc, false, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// notifySignals is where `actord run` hears SIGTERM and SIGINT (tests
// replace it).
var notifySignals = func() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return ch, func() { signal.Stop(ch) }
}

// runHooks let tests see the daemon and hold up its shutdown.
var runHooks struct {
	started        func(*dmn.Daemon)
	beforeShutdown func()
}

// startDaemon starts the daemon (tests replace it).
var startDaemon = dmn.Start

// notify tells the service manager about the daemon's state (sd_notify:
// READY=1, STOPPING=1) when it runs under systemd with Type=notify, that
// is when $NOTIFY_SOCKET is set; otherwise it does nothing.
func notify(log *slog.Logger, state string) {
	sent, err := sddaemon.SdNotify(false, state)
	switch {
	case err != nil:
		log.Warn("could not notify the service manager", "state", state, "err", err)
	case sent:
		log.Debug("service manager notified", "state", state)
	}
}

// runMain is `actord run`: a daemon hosting the program's kinds.
func runMain(p *program, args []string, stdout, stderr io.Writer) int {
	cfg, rc, help, err := parseRun(args)
	if help {
		fmt.Fprintln(stdout, "usage: actord run [flags]\n\nRuns a daemon until SIGTERM or SIGINT (a second one forces the exit).\nOnce ready it prints one JSON line on stdout (see docs/deploy.md) and,\nunder systemd (Type=notify), tells it READY=1.\n\nflags:")
		var path string
		fs := runFlags(ptr(defaultRunConfig()), &path)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord run: %v (see actord run -h)\n", err)
		return 2
	}
	level, _ := parseLevel(rc.LogLevel)
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if rc.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	cfg.Logger = log
	cfg.Kinds, cfg.RegisterTypes, cfg.Handoffs = p.kinds, p.types, p.handoffs
	// As many descriptors as allowed, before any is opened: every peer and
	// client is one. Logged once the daemon started (a bad configuration
	// prints one line only).
	fdBefore, fdAfter, fdErr := fdlimit.Raise()

	sigs, stopSignals := notifySignals()
	defer stopSignals()
	// Start in the background, so a signal during the start (a port that
	// is slow to bind, a seed that does not answer) stops it at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type started struct {
		d   *dmn.Daemon
		err error
	}
	res := make(chan started, 1)
	go func() {
		d, err := startDaemon(ctx, cfg)
		res <- started{d, err}
	}()
	var r started
	select {
	case r = <-res:
	case s := <-sigs:
		log.Info("signal received during startup: stopping (a second signal forces the exit)", "signal", s.String())
		cancel()
		select {
		case r = <-res:
		case s := <-sigs:
			log.Error("second signal: exiting without finishing the stop", "signal", s.String())
			return 1
		}
		switch {
		case r.err == nil: // it was ready just as the signal came
			if err := r.d.Shutdown(context.Background()); err != nil {
				log.Error("actord shut down with errors", "err", err)
				return 1
			}
			fallthrough
		case errors.Is(r.err, context.Canceled):
			log.Info("actord stopped before it was ready")
			return 0
		}
	}
	d, err := r.d, r.err
	if err != nil {
		if errors.Is(err, dmn.ErrConfig) {
			fmt.Fprintf(stderr, "actord run: %v\n", err)
			return 2
		}
		log.Error("actord failed to start", "err", err)
		return 1
	}
	if fdErr != nil {
		log.Warn("cannot raise the open file limit", "err", fdErr, "soft", fdBefore.Soft, "hard", fdBefore.Hard)
	} else {
		log.Info("open file limit", "soft", fdAfter.Soft, "hard", fdAfter.Hard, "soft_before", fdBefore.Soft)
	}
	if runHooks.started != nil {
		runHooks.started(d)
	}
	line, _ := json.Marshal(d.Info())
	fmt.Fprintf(stdout, "%s\n", line)
	notify(log, sddaemon.SdNotifyReady)

	select {
	case s := <-sigs:
		log.Info("signal received: shutting down (a second signal forces the exit)", "signal", s.String())
	case <-d.Done():
		log.Error("actord stopped by itself", "err", d.Err())
		return 1
	}
	notify(log, sddaemon.SdNotifyStopping)
	done := make(chan error, 1)
	go func() {
		if runHooks.beforeShutdown != nil {
			runHooks.beforeShutdown()
		}
		done <- d.Shutdown(context.Background())
	}()
	select {
	case err := <-done:
		if err != nil {
			log.Error("actord shut down with errors", "err", err)
			return 1
		}
		return 0
	case s := <-sigs:
		log.Error("second signal: exiting without finishing the shutdown", "signal", s.String())
		return 1
	}
}

func ptr[T any](v T) *T { return &v }
