package main

// The processes of `actord demo`: each daemon is this binary re-executed as
// `actord demo _node ...` (demo_node.go); the demo reads its ready line on
// stdout and keeps the tail of its logs (stderr) for error reports.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	dmn "github.com/actord/actord/daemon"
)

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// child is one daemon process of the demo.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stdin  io.WriteCloser // held open while the child runs
	logs   *tailBuffer
	info   dmn.Info
	done   chan struct{} // closed when the process has exited
	err    error         // of Wait, once done is closed
}

// startChild starts exe with args (and env added to this process's
// environment); its stderr is kept in a tail buffer.
func startChild(name, exe string, args, env []string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(exe, args...), logs: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	if env != nil {
		c.cmd.Env = append(os.Environ(), env...)
	}
	c.cmd.Stderr = c.logs
	// The child's stdin is a pipe this process holds open and never writes:
	// if this process dies without stopping it, the child reads EOF and
	// shuts down (see demoNode's --watch-stdin), rather than living on.
	in, err := c.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.stdin = in
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdout = out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		_ = c.stdin.Close()
		close(c.done)
	}()
	return c, nil
}

// waitReady reads lines from r until one is a ready line (daemon.ParseReady)
// and returns it; it fails if r ends first, or after timeout, or when exited
// is closed (the process is gone). Once the ready line is found, the rest of
// r is drained in the background so that the writer never blocks.
func waitReady(r io.Reader, timeout time.Duration, exited <-chan struct{}) (dmn.Info, error) {
	type result struct {
		info dmn.Info
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if info, ok := dmn.ParseReady(bytes.TrimSpace(sc.Bytes())); ok {
				ch <- result{info: info}
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		ch <- result{err: fmt.Errorf("no ready line: %w", err)}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res.info, res.err
	case <-t.C:
		return dmn.Info{}, fmt.Errorf("no ready line within %v", timeout)
	case <-exited:
		// The process is gone; its stdout may still hold the line.
		select {
		case res := <-ch:
			return res.info, res.err
		case <-time.After(time.Second):
			return dmn.Info{}, errors.New("the process exited before its ready line")
		}
	}
}

// ready waits for the child's ready line.
func (c *child) ready(timeout time.Duration) error {
	info, err := waitReady(c.stdout, timeout, c.done)
	if err != nil {
		return fmt.Errorf("daemon %s: %w\n--- its log (tail) ---\n%s", c.name, err, c.logs.String())
	}
	c.info = info
	return nil
}

// stopResult is how a child ended.
type stopResult struct {
	name   string
	took   time.Duration
	code   int  // exit code, -1 if killed by a signal
	killed bool // SIGKILLed by us after the deadline
}

func (r stopResult) String() string {
	switch {
	case r.killed:
		return fmt.Sprintf("%s: did not exit within the deadline: SIGKILLed", r.name)
	case r.code == 0:
		return fmt.Sprintf("%s: exit 0 after %v", r.name, r.took.Round(time.Millisecond))
	default:
		return fmt.Sprintf("%s: exit %d after %v", r.name, r.code, r.took.Round(time.Millisecond))
	}
}

// stopChildren sends SIGTERM to every child still running, waits until
// deadline for them to exit, and SIGKILLs the stragglers. It returns one
// result per child, in order.
func stopChildren(children []*child, deadline time.Duration) []stopResult {
	start := time.Now()
	for _, c := range children {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	res := make([]stopResult, len(children))
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	expired := false
	for i, c := range children {
		res[i].name = c.name
		if !expired {
			select {
			case <-c.done:
			case <-timer.C:
				expired = true
			}
		}
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
			res[i].killed = true
		}
		res[i].took = time.Since(start)
		res[i].code = c.cmd.ProcessState.ExitCode()
	}
	return res
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (listened on and
// closed: another process could take one meanwhile, which makes the start
// of its daemon fail with a clear error).
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
