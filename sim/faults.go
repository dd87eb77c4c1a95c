package sim

import "time"

// Partition drops everything between nodes a and b, both ways, until
// Heal: segments in flight or sent meanwhile wait (as TCP retransmits
// them) and dials time out. Connections stay open: the nodes learn of the
// partition only from their heartbeat timeout.
func (w *World) Partition(a, b *Node) { w.nw.Partition(a.host, b.host) }

// Heal ends a partition between a and b; what waited is delivered in
// order.
func (w *World) Heal(a, b *Node) { w.nw.Heal(a.host, b.host) }

// Block drops what from sends to to, one way, until Unblock: to still
// reaches from.
func (w *World) Block(from, to *Node) { w.nw.Block(from.host, to.host) }

// Unblock ends Block(from, to).
func (w *World) Unblock(from, to *Node) { w.nw.Unblock(from.host, to.host) }

// Cut resets every connection between a and b at once, as a middlebox
// that drops them: both ends learn now, and may reconnect.
func (w *World) Cut(a, b *Node) { w.nw.Cut(a.host, b.host) }

// SetLatency sets the one-way latency from from to to, drawn uniformly
// from [lo, hi], until ClearLatency (a slow link, or a delay spike).
// Segments of one connection stay in order.
func (w *World) SetLatency(from, to *Node, lo, hi time.Duration) {
	w.nw.SetLinkLatency(from.host, to.host, lo, hi)
}

// ClearLatency returns from->to to the world's latency.
func (w *World) ClearLatency(from, to *Node) { w.nw.ClearLinkLatency(from.host, to.host) }
