package remote

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Limits on what a connection may make a node hold before and just after
// authentication (docs/deploy.md, "Hardening"). A connection is
// unauthenticated until its secure handshake is done and its Hello accepted.

const (
	// maxHandshakeMsg bounds one handshake message: the longest the XX
	// pattern sends is 96 bytes. A larger record is refused on its length
	// alone, so an unauthenticated connection holds a few hundred bytes.
	maxHandshakeMsg = 256
	// maxHelloFrame bounds every frame before the Hello is accepted, and
	// every frame on a dialed connection (Welcome, Pong, Goodbye): a Hello
	// is a few hundred bytes (maxRefField bounds its strings).
	maxHelloFrame = 4 << 10
	// maxControlFrame is maxHelloFrame for the frames a dialed connection
	// carries back.
	maxControlFrame = maxHelloFrame
)

// ErrBufferLimit means a connection was closed because the bytes of
// incomplete frames the node holds across all its connections reached
// Config.MaxBuffered.
var ErrBufferLimit = errors.New("remote: node's buffer limit reached")

// budget is a node-wide allowance of bytes, shared by its connections.
type budget struct {
	used atomic.Int64
	max  int64
}

// take reserves n bytes, or reports false (reserving nothing) if that
// would go past the maximum.
func (b *budget) take(n int) bool {
	if b.used.Add(int64(n)) > b.max {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// give returns n bytes taken before.
func (b *budget) give(n int) { b.used.Add(-int64(n)) }

// plainPool holds plaintext buffers of one record's size, so a connection
// with nothing left to parse holds no buffer (and no share of the budget)
// without allocating one per read.
var plainPool = sync.Pool{New: func() any { b := make([]byte, 0, plainChunk); return &b }}

// plainChunk is the capacity of a pooled plaintext buffer: one record's
// plaintext and a few frames' worth of leftovers.
const plainChunk = 80 << 10

// pendingConns counts the accepted connections that are not yet
// authenticated, in all and per source address, against
// Config.MaxPending and Config.MaxPendingPerIP.
type pendingConns struct {
	mu    sync.Mutex
	total int
	byIP  map[string]int
}

// admit takes a place for a connection from ip, or says which cap refuses
// it ("" when admitted).
func (p *pendingConns) admit(ip string, max, maxPerIP int) (refused string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.total >= max:
		return "too many unauthenticated connections"
	case p.byIP[ip] >= maxPerIP:
		return "too many unauthenticated connections from this address"
	}
	if p.byIP == nil {
		p.byIP = map[string]int{}
	}
	p.total++
	p.byIP[ip]++
	return ""
}

// releaseLocked gives back a place taken by admit; p.mu held.
func (p *pendingConns) releaseLocked(ip string) {
	p.total--
	if p.byIP[ip]--; p.byIP[ip] <= 0 {
		delete(p.byIP, ip)
	}
}

// count returns the connections holding a place.
func (p *pendingConns) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
