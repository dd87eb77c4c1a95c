package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/actord/actord/cluster"
	"github.com/actord/actord/remote"
)

// ErrConfig is matched (errors.Is) by every error about an unusable
// configuration; `actord run` exits with code 2 on it.
var ErrConfig = errors.New("daemon: bad config")

// Off disables the debug server when given as Config.DebugAddr.
const Off = "off"

// Config sets up a Daemon. Zero fields take the defaults.
type Config struct {
	// Name is the node's name, unique in the cluster. Default: the host name.
	Name string
	// Listen is the remote (gnet) address other daemons reach this one's
	// actors at. Refs carry it, so its host must be one that peers can dial:
	// not 0.0.0.0 or ::. Port 0 picks a free port. Default "127.0.0.1:7700".
	Listen string
	// Gossip is the cluster membership (memberlist) address, UDP and TCP.
	// Port 0 picks a free port. Default "127.0.0.1:7946".
	Gossip string
	// Advertise is the gossip address others should use when it differs
	// from Gossip (say Gossip is 0.0.0.0:7946). Default: Gossip.
	Advertise string
	// Seeds are gossip addresses of daemons to join through (host:port).
	Seeds []string
	// Loops is the number of event loops. Default: one per core
	// (runtime.GOMAXPROCS).
	Loops int
	// DataDir holds the daemon's files (its debug token, node key and
	// capability). Created with mode 0700. Default DefaultDataDir(). Made
	// absolute by WithDefaults, so the ready line and the logs name it
	// whatever the working directory.
	DataDir string
	// DebugAddr is the debug server's address (the dump protocol,
	// /metrics, pprof, all behind the token). Off ("off") disables it.
	// Default "127.0.0.1:6060". Port 0 picks a free port.
	DebugAddr string
	// MetricsAddr, if set and different from DebugAddr, serves /metrics
	// alone on its own listener, without the token (for a Prometheus that
	// scrapes a private interface). Default: /metrics on the debug server.
	MetricsAddr string
	// TokenFile is where the debug server writes its access token (mode
	// 0600). Default DataDir/debug.token, which is where `actord debug`
	// looks by default when DataDir is the default too. Made absolute.
	TokenFile string
	// ShutdownTimeout bounds a graceful shutdown. Default 10 s.
	ShutdownTimeout time.Duration
	// StartTimeout bounds Start. Default 30 s.
	StartTimeout time.Duration
	// ClusterKeyFile, if set, is a file holding the cluster key, read by
	// Start with remote.ReadClusterKey (readable by its owner only, at
	// least 16 bytes after trimming white space). Only nodes holding the
	// same key can connect to this daemon's actors (Remote.ClusterKey is
	// set from it), and gossip is encrypted and authenticated with a key
	// derived from it (GossipKey, unless Cluster.SecretKey is set). An
	// unusable file fails Start with an error matching ErrConfig and
	// remote.ErrKeyFile. Default: no cluster key; the transport is still
	// encrypted, but anyone who reaches the listen address can connect
	// (the node logs a warning). See docs/deploy.md, "Security".
	ClusterKeyFile string
	// Remote is the base configuration of the remote node; Name, Listen
	// and Logger are set from the fields above, Events to the daemon's
	// bus (Daemon.Bus), ClusterKey from
	// ClusterKeyFile (set one or the other), and PrivateKey, when nil, from
	// the data dir's NodeKeyFile (created on the first start).
	Remote remote.Config
	// Cluster is the base configuration of the cluster agent (Profile and
	// timings); Name, RemoteAddr, Bind, Advertise, Seeds, Peers and Logger
	// are set from the fields above, and SecretKey, when nil, is derived
	// from the cluster key (GossipKey).
	Cluster cluster.Config
	// Logger receives every log of the daemon. Default slog.Default().
	Logger *slog.Logger

	// Kinds are registered on the gateway (Gateway.RegisterKind) before
	// the daemon is ready, so a client that read its ready line or its
	// capability file can spawn them at once. See Kinds and Kind.
	Kinds Kinds
	// Upgrades are the upgrades from one kind to another that an
	// application's rolling upgrade may use on this daemon (`actord app
	// upgrade`, docs/upgrades.md). Make them with Upgrade; both kinds must
	// be in Kinds.
	Upgrades []KindUpgrade
	// Handoffs are the kinds whose running actors can move to another
	// daemon with their state (`actord app move`, `actord drain`,
	// docs/upgrades.md). Make them with Handoff; each kind must be in
	// Kinds, once.
	Handoffs []KindHandoff
	// DrainOnStop makes Stop drain the daemon first (Drain, bounded by
	// DrainTimeout): `actord run` stops on SIGTERM, so a service
	// manager's stop moves the application children elsewhere with their
	// state before the daemon goes.
	DrainOnStop bool
	// DrainTimeout bounds the drain of DrainOnStop. Default 2 minutes.
	DrainTimeout time.Duration
	// RegisterTypes, if set, registers the message types of the daemon's
	// own actors on its remote node (remote.Register), before the daemon
	// is ready: a package's RegisterTypes function, which its clients call
	// too. An error fails Start with ErrConfig.
	RegisterTypes func(n *remote.Node) error

	// Apps configures the application registry and the applications
	// deployed at boot (docs/supervision.md, "Applications"). Its Members
	// empty (the default) turns applications off.
	Apps AppsConfig

	// noAppRelease (tests) leaves capAppRelease out of the member's
	// capabilities, as a daemon of an older binary does.
	noAppRelease bool
}

// TokenFileName is the debug token's file name in the data dir.
const TokenFileName = "debug.token"

// DefaultDataDir is the data dir of a daemon not told one: ~/.actord (of
// the user running it), or ./actord-data when there is no home directory.
// `actord run` and `actord debug` share it, so the debugger finds the
// token of a daemon started with the defaults.
func DefaultDataDir() string {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".actord")
	}
	return absPath("actord-data")
}

// absPath makes p absolute, or leaves it as it is if the working directory
// cannot be read.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "actord"
		}
		c.Name = h
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7700"
	}
	if c.Gossip == "" {
		c.Gossip = "127.0.0.1:7946"
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	c.DataDir = absPath(c.DataDir)
	if c.DebugAddr == "" {
		c.DebugAddr = "127.0.0.1:6060"
	}
	if c.TokenFile == "" && c.DebugAddr != Off {
		c.TokenFile = filepath.Join(c.DataDir, TokenFileName)
	}
	if c.TokenFile != "" {
		c.TokenFile = absPath(c.TokenFile)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Apps = c.Apps.withDefaults()
	return c
}

// Validate reports the first problem of a configuration (after
// WithDefaults) as an error matching ErrConfig.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if c.Loops < 0 {
		return bad("loops %d: must be 0 (one per core) or more", c.Loops)
	}
	if err := checkAddr(c.Listen, true); err != nil {
		return bad("listen address: %v", err)
	}
	if err := checkAddr(c.Gossip, false); err != nil {
		return bad("gossip address: %v", err)
	}
	if c.Advertise != "" {
		if err := checkAddr(c.Advertise, true); err != nil {
			return bad("advertise address: %v", err)
		}
	}
	for _, s := range c.Seeds {
		if err := checkAddr(s, true); err != nil {
			return bad("seed %q: %v", s, err)
		}
	}
	if c.DebugAddr != Off {
		if err := checkAddr(c.DebugAddr, false); err != nil {
			return bad("debug address: %v", err)
		}
	}
	if c.MetricsAddr != "" {
		if err := checkAddr(c.MetricsAddr, false); err != nil {
			return bad("metrics address: %v", err)
		}
	}
	switch c.Cluster.Profile {
	case "", cluster.ProfileLAN, cluster.ProfileLocal, cluster.ProfileFast:
	default:
		return bad("cluster profile %q: want lan, local or fast", c.Cluster.Profile)
	}
	if c.DataDir == "" {
		return bad("empty data dir")
	}
	if c.ClusterKeyFile != "" && c.Remote.ClusterKey != nil {
		return bad("both a cluster key file and Remote.ClusterKey: set one")
	}
	if k := c.Remote.ClusterKey; k != nil && len(k) < 16 {
		return bad("cluster key of %d bytes: want at least 16", len(k))
	}
	if c.Remote.PrivateKey != nil {
		if _, err := remote.PublicKey(c.Remote.PrivateKey); err != nil {
			return bad("node private key: %v", err)
		}
	}
	switch len(c.Cluster.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return bad("gossip secret key of %d bytes: want 16, 24 or 32", len(c.Cluster.SecretKey))
	}
	for name, k := range c.Kinds {
		if name == "" {
			return bad("a kind with an empty name")
		}
		if k == nil {
			return bad("kind %q: nil function", name)
		}
	}
	if err := checkUpgrades(c.Upgrades, c.Kinds); err != nil {
		return bad("%v", err)
	}
	if err := checkHandoffs(c.Handoffs, c.Kinds); err != nil {
		return bad("%v", err)
	}
	if c.DrainTimeout < 0 {
		return bad("drain timeout %v is negative", c.DrainTimeout)
	}
	return c.Apps.validate(c.Kinds)
}

// checkAddr checks a host:port; reachable also refuses an unspecified host
// (0.0.0.0, ::, empty), which other machines cannot dial.
func checkAddr(s string, reachable bool) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("%q: bad port %q", s, p)
	}
	if reachable {
		if h == "" {
			return fmt.Errorf("%q has no host: peers could not reach it", s)
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("%q is an unspecified address: peers could not reach it; name an interface's address", s)
		}
	}
	return nil
}
