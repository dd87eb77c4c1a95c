package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/actord/actord/remote"
)

// The daemon's keys (see docs/deploy.md, "Security"):
//
//   - The cluster key (Config.ClusterKeyFile, or Config.Remote.ClusterKey)
//     admits nodes to the remote transport, and a key derived from it
//     (GossipKey) encrypts and authenticates the gossip, so one secret
//     secures both.
//   - The node key (DataDir/node.key, unless Config.Remote.PrivateKey is
//     set) is the daemon's X25519 identity on the wire, made on the first
//     start and kept across restarts.

// NodeKeyFile is the name, in the data dir, of the file holding the
// daemon's node private key: 64 hex digits (the 32-byte X25519 private key
// of remote.GenerateKey) and a newline, mode 0600. The daemon creates it on
// its first start unless Config.Remote.PrivateKey is set; delete it to give
// the daemon a new identity.
const NodeKeyFile = "node.key"

// gossipKeyLabel separates the gossip key from every other use of the
// cluster key (the remote transport derives its own with another label).
const gossipKeyLabel = "actord gossip key\x00"

// GossipKey derives the memberlist key (cluster.Config.SecretKey, 32 bytes:
// AES-256-GCM) from a cluster key: SHA-256("actord gossip key" ‖ 0x00 ‖
// clusterKey). A daemon with a cluster key uses it unless
// Config.Cluster.SecretKey is set.
func GossipKey(clusterKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte(gossipKeyLabel))
	h.Write(clusterKey)
	return h.Sum(nil)
}

// loadNodeKey returns the node private key kept in path, creating the file
// (mode 0600) with a new key if it does not exist. created tells which.
func loadNodeKey(path string, log *slog.Logger) (key []byte, created bool, err error) {
	key, err = readNodeKey(path, log)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if key, err = remote.GenerateKey(); err != nil {
		return nil, false, fmt.Errorf("node key: %w", err)
	}
	// Written to a temporary file, then linked into place: the key file
	// appears whole or not at all, and a file that appeared meanwhile (a
	// second daemon on the same data dir) is not overwritten.
	f, err := os.CreateTemp(filepath.Dir(path), ".node-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("node key: %w", err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("node key: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err = readNodeKey(path, log)
			return key, false, err
		}
		// No hard links on this file system: rename instead.
		if err := os.Rename(f.Name(), path); err != nil {
			return nil, false, fmt.Errorf("node key: %w", err)
		}
	}
	return key, true, nil
}

// readNodeKey reads a node key file. A file that does not hold a key is a
// configuration error (ErrConfig); one readable by others than its owner
// is used, with a warning.
func readNodeKey(path string, log *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("node key: %w", err)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: node key file %s %s (delete it to give the daemon a new identity)", ErrConfig, path, why)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, bad("does not hold 64 hex digits")
	}
	if _, err := remote.PublicKey(key); err != nil {
		return nil, bad(fmt.Sprintf("holds no X25519 private key: %v", err))
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("daemon: the node key file is readable by others than its owner (chmod 600 it)",
			"node_key_file", path, "mode", st.Mode().Perm().String())
	}
	return key, nil
}
