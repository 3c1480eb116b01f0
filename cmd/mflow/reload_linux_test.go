package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mflow/bench/testbed"
	"mflow/bench/testbed/testbedtest"
	"mflow/bench/traffic"
)

// child is `mflow run` running as a separate process, with its log.
type child struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	lines chan string
	// exited is closed when the process has ended; err is Wait's error.
	exited chan struct{}
	err    error
}

// startChild starts this test binary as `mflow <args>` and follows its
// standard error. The process is killed at the end of the test.
func startChild(t *testing.T, args string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), lines: make(chan string, 1000), exited: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "MFLOW_TEST_MAIN="+args)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.log.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	return c
}

// Log returns everything the process wrote to stderr so far.
func (c *child) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// waitLine waits for a log line containing every one of want and returns
// it; it fails the test when the process exits first or after timeout.
func (c *child) waitLine(t *testing.T, timeout time.Duration, want ...string) string {
	t.Helper()
	match := func(l string) bool {
		for _, w := range want {
			if !strings.Contains(l, w) {
				return false
			}
		}
		return true
	}
	deadline := time.After(timeout)
	for {
		select {
		case l := <-c.lines:
			if match(l) {
				return l
			}
		case <-c.exited:
			// Every line was queued before exited closed.
			for {
				select {
				case l := <-c.lines:
					if match(l) {
						return l
					}
					continue
				default:
				}
				break
			}
			t.Fatalf("mflow exited (%v) before logging %q:\n%s", c.err, want, c.Log())
		case <-deadline:
			t.Fatalf("no log line with %q after %v:\n%s", want, timeout, c.Log())
		}
	}
}

// TestRunSIGHUP: SIGHUP makes `mflow run` re-read its configuration: a
// change of peers is applied and logged, a change that needs a restart is
// refused with a log line naming the field, and the daemon keeps
// forwarding through both; SIGTERM still ends it cleanly.
func TestRunSIGHUP(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	topo, err := testbed.Build(ctx, testbed.Options{Prefix: "mft-hup"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	path := filepath.Join(t.TempDir(), "mflow.yaml")
	write := func(peers, steering string) {
		t.Helper()
		cfg := fmt.Sprintf(`
uplink: {interface: %s}
vtep: {address: %s}
networks:
  - vni: %d
    device: {type: tap, name: mflow42, bridge: %s, mtu: %d}
    peers: [%s]
steering: {%s}
metrics: {listen: ""}
`, testbed.HostUplink, testbed.HostUnderlayIP, testbed.VNI, testbed.Bridge, testbed.OverlayMTU, peers, steering)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	peer := testbed.PeerUnderlayIP.String()
	write(peer, "workers: 2")
	c := startChild(t, "run -config "+path+" -netns "+topo.Host.Name)
	c.waitLine(t, 30*time.Second, "mflow running")
	ping := func(what string) {
		t.Helper()
		p, err := traffic.Ping(ctx, topo.Ctr, netip.MustParseAddr("10.42.0.1"), 3, 20*time.Millisecond, 2*time.Second)
		if err != nil || p.Received != p.Sent {
			t.Fatalf("ping %s: %+v %v\n%s", what, p, err, c.Log())
		}
	}
	ping("before SIGHUP")

	write(peer+", 192.0.2.7", "workers: 2")
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLine(t, 10*time.Second, "peers changed", "added=192.0.2.7")
	c.waitLine(t, 10*time.Second, "configuration reloaded", "networks[0].peers")
	ping("after a reload of the peers")

	write(peer, "workers: 3")
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLine(t, 10*time.Second, "reload refused", "steering.workers")
	ping("after a refused reload")

	if err := os.WriteFile(path, []byte("bogus: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLine(t, 10*time.Second, "reload failed", "line")
	ping("after a reload of a broken file")

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
		if c.err != nil {
			t.Fatalf("mflow run after SIGTERM: %v\n%s", c.err, c.Log())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("mflow run still running 20s after SIGTERM:\n%s", c.Log())
	}
}
