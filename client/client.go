package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/remote"
)

// Errors. Test for them with errors.Is; they are package gateway's, which
// the daemon's gateway answers with, so they match on both sides.
var (
	// ErrBadCapability: the capability string could not be parsed.
	ErrBadCapability = gateway.ErrBadCapability
	// ErrNoSuchMember: Spawn named a member the dialed daemon does not see.
	ErrNoSuchMember = gateway.ErrNoSuchMember
	// ErrNoGateway: the member is there but the dialed daemon does not
	// know its gateway yet (the gateways meet shortly after it joins).
	ErrNoGateway = gateway.ErrNoGateway
	// ErrUnknownKind: the kind is not registered on the chosen daemon.
	ErrUnknownKind = remote.ErrUnknownKind
	// ErrSpawn: the kind refused its arguments or the actor failed to start.
	ErrSpawn = gateway.ErrSpawn
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
)

// Capability is a daemon's gateway capability; see gateway.Capability for
// the text form.
type Capability = gateway.Capability

// ParseCapability parses the text form of a capability. Errors match
// ErrBadCapability.
func ParseCapability(s string) (Capability, error) { return gateway.ParseCapability(s) }

// ReadCapabilityFile reads a capability file (a daemon's
// <data dir>/actord.cap) and returns its text.
func ReadCapabilityFile(path string) (string, error) {
	c, err := gateway.ReadCapability(path)
	if err != nil {
		return "", fmt.Errorf("client: capability file: %w", err)
	}
	return c.String(), nil
}

// Options set up a Client. Zero fields take the defaults.
type Options struct {
	// Name is the client node's name, as daemons see it. Default
	// "client-<random>".
	Name string
	// Listen is where the client node accepts the daemons' connections
	// (they carry the replies). Default "127.0.0.1:0"; a client on another
	// machine than the daemons must name an address they can reach.
	Listen string
	// Timeout bounds calls whose context has no deadline. Default 10 s.
	Timeout time.Duration
	// ClusterKeyFile is the daemons' cluster key file (their
	// --cluster-key-file), read by Dial with remote.ReadClusterKey: it must
	// be readable by its owner only and hold at least 16 bytes. Daemons
	// that have a cluster key accept only nodes holding the same key, the
	// client's included. Alternatively set Remote.ClusterKey (not both).
	// Default: no key, which reaches only daemons without one.
	ClusterKeyFile string
	// Remote is the base configuration of the client node; Name, Listen
	// and Logger are set from the fields above, ClusterKey from
	// ClusterKeyFile.
	Remote remote.Config
	// Logger receives the client's logs. Default: discarded.
	Logger *slog.Logger
}

// Client is a connection to a daemon's gateway. Its methods are safe for
// concurrent use.
type Client struct {
	sys     *actor.System
	node    *remote.Node
	gw      actor.Ref
	cap     Capability
	timeout time.Duration

	mu     sync.Mutex
	stop   func()
	closed bool
}

// Dial makes a client of the daemon whose gateway capability is
// capability. It starts the client's own actor system and node but does
// not contact the daemon: a wrong capability shows on the first call, as
// an error matching actor.ErrDead, and a missing or wrong cluster key
// (Options.ClusterKeyFile) as one matching remote.ErrNodeDown and
// remote.ErrClusterKey. An unusable
// cluster key file fails Dial with an error matching remote.ErrKeyFile.
func Dial(ctx context.Context, capability string, opts Options) (*Client, error) {
	cp, err := ParseCapability(capability)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Name == "" {
		opts.Name = "client-" + rand.Text()[:10]
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	rcfg := opts.Remote
	rcfg.Name, rcfg.Listen, rcfg.Logger = opts.Name, opts.Listen, opts.Logger
	if opts.ClusterKeyFile != "" {
		if rcfg.ClusterKey != nil {
			return nil, errors.New("client: dial: both Options.ClusterKeyFile and Options.Remote.ClusterKey are set")
		}
		k, err := remote.ReadClusterKey(opts.ClusterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("client: dial: %w", err)
		}
		rcfg.ClusterKey = k
	}
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: opts.Logger})
	node := remote.New(sys, rcfg)
	fail := func(err error) (*Client, error) {
		_ = sys.Shutdown(context.Background())
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	if err := gateway.RegisterTypes(node); err != nil {
		return fail(err)
	}
	stop, err := node.Start(ctx)
	if err != nil {
		return fail(err)
	}
	gw, err := cp.Ref(node)
	if err != nil {
		stop()
		return fail(err)
	}
	return &Client{sys: sys, node: node, gw: gw, cap: cp, timeout: opts.Timeout, stop: stop}, nil
}

// Capability returns the capability the client was dialed with.
func (c *Client) Capability() Capability { return c.cap }

// Node returns the client's remote node: register message types on it
// (remote.Register) under the names the daemons use.
func (c *Client) Node() *remote.Node { return c.node }

// System returns the client's own actor system (spawn local actors on it,
// e.g. to receive messages or monitor remote actors).
func (c *Client) System() *actor.System { return c.sys }

// Member is one member of the cluster as the dialed daemon sees it.
type Member struct {
	Name string
	Addr string // its remote (gnet) address
	// Self marks the dialed daemon.
	Self bool
	// Capability is the text form of the member's gateway capability
	// (dial it to talk to that daemon directly), "" while the dialed
	// daemon does not know it.
	Capability string
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Members lists the cluster's members, sorted by name.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	v, err := c.Ask(ctx, c.gw, gateway.ListMembers{})
	if err != nil {
		return nil, fmt.Errorf("client: members: %w", err)
	}
	ml, ok := v.(gateway.MemberList)
	if !ok {
		return nil, fmt.Errorf("client: members: unexpected reply %T", v)
	}
	out := make([]Member, len(ml.Members))
	for i, m := range ml.Members {
		out[i] = Member{Name: m.Name, Addr: m.Addr, Self: m.Self}
		if !m.Gateway.IsZero() {
			if cp, ok := gateway.CapabilityOf(c.node, m.Gateway); ok {
				out[i].Capability = cp.String()
			}
		}
	}
	return out, nil
}

// Spawn creates an actor of a registered kind on member ("" for the dialed
// daemon) with args, and returns its ref. args reach the kind's function
// as msgpack decodes them into an any (see gateway.SpawnKind). Errors match
// ErrNoSuchMember, ErrNoGateway, ErrUnknownKind, ErrSpawn, or, for a wrong
// capability, actor.ErrDead.
func (c *Client) Spawn(ctx context.Context, member, kind string, args any) (actor.Ref, error) {
	v, err := c.Ask(ctx, c.gw, gateway.SpawnKind{Member: member, Kind: kind, Args: args})
	if err != nil {
		return actor.Ref{}, fmt.Errorf("client: spawn %s on %q: %w", kind, member, err)
	}
	res, ok := v.(gateway.SpawnResult)
	if !ok {
		return actor.Ref{}, fmt.Errorf("client: spawn %s on %q: unexpected reply %T", kind, member, v)
	}
	if err := res.Err(); err != nil {
		return actor.Ref{}, fmt.Errorf("client: spawn %s on %q: %w", kind, member, err)
	}
	return res.Ref, nil
}

// Ask sends msg to ref and waits for the reply, within ctx (or the
// client's Timeout when ctx has no deadline).
func (c *Client) Ask(ctx context.Context, ref actor.Ref, msg any) (any, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.sys.Ask(ctx, ref, msg)
}

// Send sends msg to ref one way.
func (c *Client) Send(ref actor.Ref, msg any) error {
	if c.isClosed() {
		return ErrClosed
	}
	return c.sys.Send(ref, msg)
}

// Close stops the client's node (its connections close, asks pending on
// daemons fail) and its actor system. Calls after Close fail with
// ErrClosed. Actors the client spawned on daemons keep running.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	stop := c.stop
	c.mu.Unlock()
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.sys.Shutdown(ctx)
}

// Applications (docs/supervision.md, "Applications"): named supervision
// trees the daemons keep running, one instance at a time. The calls go to
// the dialed daemon's gateway, which needs the capability as for Spawn; a
// daemon that runs no registry replica passes them to one that does.

// AppSpec describes an application (see gateway.AppSpec).
type AppSpec = gateway.AppSpec

// AppChild is a child of an application's root (see gateway.AppChild).
type AppChild = gateway.AppChild

// AppInfo is an application as the registry knows it: its spec, desired
// state, state, and the daemon it is assigned to (see gateway.AppInfo).
type AppInfo = gateway.AppInfo

// Errors of the application calls (see package gateway).
var (
	ErrAppsOff    = gateway.ErrAppsOff
	ErrBadAppSpec = gateway.ErrBadAppSpec
	ErrUnknownApp = gateway.ErrUnknownApp
	ErrAppRetry   = gateway.ErrAppRetry
)

// ParseAppSpec decodes an application spec from JSON (see
// gateway.ParseAppSpec).
func ParseAppSpec(b []byte) (AppSpec, error) { return gateway.ParseAppSpec(b) }

// DeployApp creates or updates an application and makes it desired
// running. It returns once the registry has applied it (the start on the
// daemon it is assigned to follows). A running application keeps its
// spec until it next starts. Errors match ErrBadAppSpec (the daemon
// refused the spec, naming the field), ErrAppRetry, ErrAppsOff, or, for a
// wrong capability, actor.ErrDead.
func (c *Client) DeployApp(ctx context.Context, spec AppSpec) error {
	return c.appResult(ctx, "deploy "+spec.Name, gateway.DeployApp{Spec: spec})
}

// StartApp makes a stopped application desired running again.
func (c *Client) StartApp(ctx context.Context, name string) error {
	return c.appResult(ctx, "start "+name, gateway.AppOp{App: name, Op: "start"})
}

// StopApp stops an application (its instance ends within the registry's
// margin) and keeps its record.
func (c *Client) StopApp(ctx context.Context, name string) error {
	return c.appResult(ctx, "stop "+name, gateway.AppOp{App: name, Op: "stop"})
}

// RemoveApp stops an application and drops its record.
func (c *Client) RemoveApp(ctx context.Context, name string) error {
	return c.appResult(ctx, "remove "+name, gateway.AppOp{App: name, Op: "remove"})
}

// Apps lists the applications (not removed), by name, as the answering
// registry replica has applied them.
func (c *Client) Apps(ctx context.Context) ([]AppInfo, error) {
	v, err := c.Ask(ctx, c.gw, gateway.ListApps{})
	if err != nil {
		return nil, fmt.Errorf("client: apps: %w", err)
	}
	l, ok := v.(gateway.AppList)
	if !ok {
		return nil, fmt.Errorf("client: apps: unexpected reply %T", v)
	}
	if err := l.Result.Err(); err != nil {
		return nil, fmt.Errorf("client: apps: %w", err)
	}
	return l.Apps, nil
}

func (c *Client) appResult(ctx context.Context, what string, msg any) error {
	v, err := c.Ask(ctx, c.gw, msg)
	if err != nil {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	r, ok := v.(gateway.AppResult)
	if !ok {
		return fmt.Errorf("client: %s: unexpected reply %T", what, v)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	return nil
}

// MoveChild moves the running child of the application app to the daemon
// named to (empty: another live member) with its state (see
// gateway.MoveChild). The result says where from and to; its error (also
// returned) matches gateway.ErrNoHandoff, ErrExport, ErrImport,
// ErrTargetDown or ErrMoveFailed, and its message says what became of the
// child (on most failures it runs on where it was). Give ctx more than the
// gateway's 2m15s bound (gateway.MoveChild): a ctx that ends first may
// drop the answer of a move that happened.
func (c *Client) MoveChild(ctx context.Context, app, child, to string) (gateway.MoveResult, error) {
	v, err := c.Ask(ctx, c.gw, gateway.MoveChild{App: app, Child: child, To: to})
	if err != nil {
		return gateway.MoveResult{}, fmt.Errorf("client: move %s/%s: %w", app, child, err)
	}
	r, ok := v.(gateway.MoveResult)
	if !ok {
		return gateway.MoveResult{}, fmt.Errorf("client: move %s/%s: unexpected reply %T", app, child, v)
	}
	if err := r.Err(); err != nil {
		return r, fmt.Errorf("client: move %s/%s: %w", app, child, err)
	}
	return r, nil
}

// Drain drains the daemon whose gateway the client reached (see
// daemon.Daemon.Drain): its application children move elsewhere with
// their state, one at a time. The result lists each child's outcome; the
// error is the drain's own (the registry unavailable), not a child's.
func (c *Client) Drain(ctx context.Context) (gateway.DrainResult, error) {
	v, err := c.Ask(ctx, c.gw, gateway.Drain{})
	if err != nil {
		return gateway.DrainResult{}, fmt.Errorf("client: drain: %w", err)
	}
	r, ok := v.(gateway.DrainResult)
	if !ok {
		return gateway.DrainResult{}, fmt.Errorf("client: drain: unexpected reply %T", v)
	}
	if err := r.Result.Err(); err != nil {
		return r, fmt.Errorf("client: drain: %w", err)
	}
	return r, nil
}
