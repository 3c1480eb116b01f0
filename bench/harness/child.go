package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"mflow/bpf"
	"mflow/config"
	"mflow/daemon"
	"mflow/metrics"
)

// mflow runs as its own process in the benchmark, as it does on a host:
// sharing the harness's Go runtime would have its goroutines wait for the
// processors the harness's load generators and request/response threads
// hold in blocking system calls (on 2 CPUs that added hundreds of
// microseconds to a round trip; see BENCHMARKS.md). The harness re-executes
// its own binary with childEnv set, from a thread inside the host
// namespace, so the child starts there; RunDaemonChild, called first thing
// by the binary's main (and by the harness's TestMain), then runs the
// daemon and answers the harness on its stdin and stdout:
//
//	harness → child: "snap\n"           child → harness: one JSON childReply
//	harness closes stdin                child stops the daemon, replies once more, exits
//
// The child's first reply says whether the daemon started.

// Environment of the child.
const (
	childEnv        = "MFLOW_HARNESS_DAEMON"            // the config YAML
	childTransmit   = "MFLOW_HARNESS_DAEMON_TRANSMIT"   // vtep.transmit override
	childUnordered  = "MFLOW_HARNESS_DAEMON_UNORDERED"  // "1": Options.Unordered
	childCPUProfile = "MFLOW_HARNESS_DAEMON_CPUPROFILE" // write a CPU profile here
)

// childStopTimeout bounds how long stop waits for the child to stop its
// daemon before it kills it.
const childStopTimeout = 30 * time.Second

// childReply is one answer of the child.
type childReply struct {
	Err     string           `json:"err,omitempty"`
	Snap    metrics.Snapshot `json:"snap"`
	XDP     bpf.Counters     `json:"xdp"`
	XDPErr  string           `json:"xdp_err,omitempty"`
	Stopped bool             `json:"stopped,omitempty"`
}

// RunDaemonChild runs the benchmark's mflow daemon and exits when this
// process was started as one by the harness; otherwise it returns at once.
// A binary that runs the harness calls it first thing in main (or
// TestMain).
func RunDaemonChild() {
	yaml, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	// A log write to a parent that has stopped reading fails with EPIPE
	// instead of killing the daemon before it tears down; the parent
	// still stops it through stdin.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	os.Exit(runChild(yaml, os.Stdin, os.Stdout, os.Stderr))
}

func runChild(yaml string, in io.Reader, out, logw io.Writer) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		enc.Encode(childReply{Err: err.Error(), Stopped: true})
		return 1
	}
	if path := os.Getenv(childCPUProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return fail(fmt.Errorf("configuring mflow: %w", err))
	}
	if t := os.Getenv(childTransmit); t != "" {
		cfg.VTEP.Transmit = config.Transmit(t)
	}
	d, err := daemon.New(cfg, daemon.Options{Unordered: os.Getenv(childUnordered) == "1",
		Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return fail(fmt.Errorf("starting mflow: %w", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	reply := func(stopped bool, err error) {
		r := childReply{Snap: d.Snapshot(), Stopped: stopped}
		if err != nil {
			r.Err = err.Error()
		}
		var xerr error
		if r.XDP, xerr = d.XDPCounters(); xerr != nil {
			r.XDPErr = xerr.Error()
		}
		enc.Encode(r)
	}
	reply(false, nil)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "snap" {
			reply(false, nil)
		}
	}
	// The final counters (Run has stopped the engines and torn down, so
	// the XDP counters are gone by now: XDPErr says so).
	cancel()
	err = <-done
	reply(true, err)
	if err != nil {
		return 1
	}
	return 0
}

// mflowDaemon is what the harness needs of a running mflow: its counters.
type mflowDaemon interface {
	Snapshot() metrics.Snapshot
	XDPCounters() (bpf.Counters, error)
}

// childDaemon is mflow running as a child process.
type childDaemon struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
	// last is the last reply, kept for when the child is gone.
	last childReply
}

// startChild starts mflow with config yaml as a child process inside the
// namespace that enter runs its function in. Its log goes to logw.
func startChild(enter func(func() error) error, yaml, transmit string, unordered bool, cpuProfile string, logw io.Writer) (*childDaemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting mflow: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+yaml, childTransmit+"="+transmit, childCPUProfile+"="+cpuProfile)
	if unordered {
		cmd.Env = append(cmd.Env, childUnordered+"=1")
	}
	cmd.Stderr = logw
	// Its own process group: a Ctrl-C to the harness reaches the harness
	// only, which then stops the child through its stdin (and gets its
	// final counters).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The child inherits the namespace of the thread that forks it.
	if err := enter(cmd.Start); err != nil {
		return nil, fmt.Errorf("starting mflow: %w", err)
	}
	c := &childDaemon{cmd: cmd, in: in, out: bufio.NewReaderSize(outp, 1<<20)}
	r, err := c.read()
	if err == nil && r.Err != "" {
		err = errors.New(r.Err)
	}
	if err != nil {
		in.Close()
		cmd.Wait()
		return nil, err
	}
	return c, nil
}

func (c *childDaemon) read() (childReply, error) {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return c.last, fmt.Errorf("mflow process: %w", err)
	}
	var r childReply
	if err := json.Unmarshal(line, &r); err != nil {
		return c.last, fmt.Errorf("mflow process: bad reply: %w", err)
	}
	c.last = r
	return r, nil
}

func (c *childDaemon) ask() childReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in == nil {
		return c.last
	}
	if _, err := io.WriteString(c.in, "snap\n"); err != nil {
		return c.last
	}
	r, _ := c.read()
	return r
}

// Snapshot implements mflowDaemon.
func (c *childDaemon) Snapshot() metrics.Snapshot { return c.ask().Snap }

// XDPCounters implements mflowDaemon.
func (c *childDaemon) XDPCounters() (bpf.Counters, error) {
	r := c.ask()
	if r.XDPErr != "" {
		return r.XDP, errors.New(r.XDPErr)
	}
	return r.XDP, nil
}

// stop stops the daemon and waits for the process; the last counters stay
// readable.
func (c *childDaemon) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in == nil {
		return nil
	}
	c.in.Close()
	c.in = nil
	// A child that does not stop in time is killed (its error says so).
	kill := time.AfterFunc(childStopTimeout, func() { c.cmd.Process.Kill() })
	defer kill.Stop()
	r, rerr := c.read()
	werr := c.cmd.Wait()
	switch {
	case rerr != nil:
		return rerr
	case r.Err != "":
		return fmt.Errorf("mflow: %s", r.Err)
	case werr != nil:
		return fmt.Errorf("mflow process: %w", werr)
	}
	return nil
}
