package connmgr

import (
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/event"
)

// Config configures a Manager. The zero value of every field means its
// default; New checks the result.
type Config struct {
	// HighWater and LowWater are the watermarks, counted in connected
	// peers (managed and stable alike): when more than HighWater peers are
	// connected, Trim closes the lowest-scoring candidates until LowWater
	// remain (or no candidate is left). Defaults 1024 and three quarters of
	// HighWater; LowWater must be below HighWater.
	HighWater, LowWater int
	// GracePeriod protects a new connection from trimming for this long
	// after Connected, so that a peer is not closed before it had a chance
	// to earn a score. Default 30 s; negative: none.
	GracePeriod time.Duration
	// SilencePeriod is the least time between two trim passes, so a
	// connection storm costs one pass per period, not one per connection.
	// Default 10 s; negative: none.
	SilencePeriod time.Duration
	// ForgetAfter is how long a managed peer may stay disconnected,
	// without traffic, tags, locks, usage (Usage) or a Holder that holds
	// it, before Forget drops it: the caller then stops redialing it and
	// frees its state. Default 30 s.
	ForgetAfter time.Duration
	// MaxLock caps the window of one Lock (and of each extension). Default
	// 5 min.
	MaxLock time.Duration
	// TrafficHalfLife is how fast the traffic-recency score decays: it
	// halves every TrafficHalfLife since the peer's last traffic. Default
	// 30 s.
	TrafficHalfLife time.Duration
	// MaxPeers bounds the peers tracked: Add refuses a new one beyond it
	// with ErrTooManyPeers. Default 4096.
	MaxPeers int
	// MaxTags, MaxLocks and MaxScorers bound, per peer, the protection
	// tags, the locks and the scorers attached (ErrTooManyTags,
	// ErrTooManyLocks, ErrTooManyScorers beyond). Defaults 32, 16, 16.
	MaxTags, MaxLocks, MaxScorers int
	// Veto, if set, is asked "may I close this peer?" for each peer a trim
	// pass is about to close, lowest score first, without the Manager's
	// lock held (it may call the Manager, and must not block). True keeps
	// the peer (a veto): the pass moves on to the next candidate. At most
	// MaxVetoes vetoes are honoured per pass; after that the pass no longer
	// asks, so a veto cannot keep the node above its watermark for good.
	Veto func(Candidate) bool
	// MaxVetoes bounds the vetoes honoured per trim pass. Default 8.
	MaxVetoes int
	// Events, if set, receives PeerTrimmed and LockElapsed events.
	Events *event.Bus
}

// Defaults of Config.
const (
	DefaultHighWater       = 1024
	DefaultGracePeriod     = 30 * time.Second
	DefaultSilencePeriod   = 10 * time.Second
	DefaultForgetAfter     = 30 * time.Second
	DefaultMaxLock         = 5 * time.Minute
	DefaultTrafficHalfLife = 30 * time.Second
	DefaultMaxPeers        = 4096
	DefaultMaxTags         = 32
	DefaultMaxLocks        = 16
	DefaultMaxScorers      = 16
	DefaultMaxVetoes       = 8
)

// MaxNameLen bounds the length of a peer id, a tag, a lock name and a
// scorer name, in bytes (longer ones are refused with ErrInvalid).
const MaxNameLen = 512

func (c *Config) setDefaults() error {
	if c.HighWater == 0 {
		c.HighWater = DefaultHighWater
	}
	if c.LowWater == 0 {
		c.LowWater = c.HighWater * 3 / 4
	}
	if c.HighWater < 1 || c.LowWater < 0 || c.LowWater >= c.HighWater {
		return fmt.Errorf("%w: watermarks low %d, high %d: need 0 <= low < high", ErrInvalid, c.LowWater, c.HighWater)
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.SilencePeriod == 0 {
		c.SilencePeriod = DefaultSilencePeriod
	}
	c.ForgetAfter = orDefault(c.ForgetAfter, DefaultForgetAfter)
	c.MaxLock = orDefault(c.MaxLock, DefaultMaxLock)
	c.TrafficHalfLife = orDefault(c.TrafficHalfLife, DefaultTrafficHalfLife)
	c.MaxPeers = orDefault(c.MaxPeers, DefaultMaxPeers)
	c.MaxTags = orDefault(c.MaxTags, DefaultMaxTags)
	c.MaxLocks = orDefault(c.MaxLocks, DefaultMaxLocks)
	c.MaxScorers = orDefault(c.MaxScorers, DefaultMaxScorers)
	c.MaxVetoes = orDefault(c.MaxVetoes, DefaultMaxVetoes)
	return nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Errors. Each error a Manager returns wraps one of these (errors.Is).
var (
	// ErrInvalid: a bad argument or configuration (empty or over-long
	// name, nil scorer, non-positive lock window, watermarks out of order).
	ErrInvalid = errors.New("connmgr: invalid argument")
	// ErrUnknownPeer: the peer is not tracked (never added, removed, or
	// forgotten).
	ErrUnknownPeer = errors.New("connmgr: unknown peer")
	// ErrTooManyPeers: Config.MaxPeers peers are tracked already.
	ErrTooManyPeers = errors.New("connmgr: too many peers")
	// ErrTooManyTags: the peer holds Config.MaxTags tags already.
	ErrTooManyTags = errors.New("connmgr: too many tags on the peer")
	// ErrTooManyLocks: the peer holds Config.MaxLocks locks already.
	ErrTooManyLocks = errors.New("connmgr: too many locks on the peer")
	// ErrTooManyScorers: the peer has Config.MaxScorers scorers already.
	ErrTooManyScorers = errors.New("connmgr: too many scorers on the peer")
	// ErrTrimmed is the reason of every Closure: the peer was closed by the
	// connection manager to get back under its watermark.
	ErrTrimmed = errors.New("connmgr: trimmed by the connection manager")
)

func checkName(what, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s of %d bytes (1 to %d)", ErrInvalid, what, len(s), MaxNameLen)
	}
	return nil
}
