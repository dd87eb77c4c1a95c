package debug

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/actord/actord/connmgr"
)

// PeersSource is what GET /debug/v1/peers lists: the peers of a node's
// connection manager at now, and its counters (remote.Node.Peers).
type PeersSource func(now time.Time) ([]connmgr.PeerInfo, connmgr.Stats)

// PeersReply is the body of GET /debug/v1/peers: every peer the node's
// connection manager tracks (at most its MaxPeers), sorted by id, with its
// kind, state, score, usage, tags and locks, and the manager's counters.
type PeersReply struct {
	Version int                `json:"version"`
	Peers   []connmgr.PeerInfo `json:"peers"`
	Stats   connmgr.Stats      `json:"stats"`
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	src := s.cfg.Peers
	if src == nil {
		writeErr(w, fmt.Errorf("%w: this server has no remote node", errNotFound))
		return
	}
	reply := PeersReply{Version: ProtocolVersion}
	reply.Peers, reply.Stats = src(time.Now())
	if reply.Peers == nil {
		reply.Peers = []connmgr.PeerInfo{}
	}
	writeJSON(w, http.StatusOK, reply)
}

// Peers returns the node's peers as its connection manager sees them.
func (c *Client) Peers(ctx context.Context) (*PeersReply, error) {
	var r PeersReply
	err := c.getJSON(ctx, "/debug/v1/peers", nil, &r)
	return &r, err
}
