package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/actord/actord/debug"
)

// benchProfile records CPU profiles of one bench cell: the demo's client
// process (this one) and every daemon, through its debug server's
// /debug/pprof/profile with the daemon's debug token. It writes
// DIR/NAME-client.pprof and DIR/NAME-DAEMON.pprof.
type benchProfile struct {
	dir  string
	name string
	f    *os.File
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// startProfile starts the profiles of a cell that runs for d (the daemons'
// for d rounded down to whole seconds, at least 1).
func startProfile(dc *demoCluster, dir, name string, d time.Duration) (*benchProfile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	bp := &benchProfile{dir: dir, name: name}
	f, err := os.Create(filepath.Join(dir, name+"-client.pprof"))
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile: %w", err)
	}
	bp.f = f
	secs := max(int(d/time.Second), 1)
	for _, c := range dc.children {
		bp.wg.Go(func() {
			if err := bp.fetch(c, secs); err != nil {
				bp.mu.Lock()
				bp.errs = append(bp.errs, fmt.Errorf("profile of %s: %w", c.name, err))
				bp.mu.Unlock()
			}
		})
	}
	return bp, nil
}

// fetch gets a daemon's CPU profile of secs seconds.
func (bp *benchProfile) fetch(c *child, secs int) error {
	tok, err := debug.ReadTokenFile(c.info.TokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.info.DebugAddr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	out, err := os.Create(filepath.Join(bp.dir, bp.name+"-"+c.name+".pprof"))
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(resp.Body, 256<<20))
	return errors.Join(err, out.Close())
}

// stop ends the client's profile and waits for the daemons'.
func (bp *benchProfile) stop() error {
	pprof.StopCPUProfile()
	err := bp.f.Close()
	bp.wg.Wait()
	return errors.Join(append(bp.errs, err)...)
}
