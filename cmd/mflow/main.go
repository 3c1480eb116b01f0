// Command mflow is the user-space VxLAN dataplane: one binary with the
// daemon (run), its checks (check), a metrics reader (stats) and the
// self-contained demonstration against the kernel's VxLAN (demo).
//
// Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error;
// 3 setup failure (the host lacks a feature or a permission, or a kernel
// object could not be created).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"mflow/bench/harness"
	"mflow/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitSetup   = 3
)

const usage = `usage: mflow <command> [flags]

commands:
  run   -config FILE   run the dataplane in the foreground until SIGINT/SIGTERM; SIGHUP reloads peers and fdb
  check -config FILE   validate the config and the host, print the effective config
  stats [-addr ADDR]   print the counters of a running daemon as a table
  demo                 build a testbed in namespaces and compare mflow with kernel VxLAN
  bench [--quick]      measure mflow against the kernel on the testbed; --out DIR for JSON/CSV/PNG

exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 setup failure
`

func main() {
	// `mflow bench` runs each mflow mode's daemon as a child process of
	// this same binary; in such a child this runs the daemon and exits.
	harness.RunDaemonChild()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, the default action is back: a second
	// Ctrl-C ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "stats":
		return cmdStats(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "bench":
		return cmdBench(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "mflow: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// hangups returns ctx, cancelled also when the terminal hangs up (SIGHUP,
// unless the process started with it ignored, as under nohup) or when a
// write to stdout or stderr finds the reader gone (EPIPE, as in `mflow
// bench 2>&1 | head`), and the writers to use for them. The commands that
// build a testbed use it, so that they remove it and exit as after Ctrl-C
// instead of dying with their namespaces left behind. SIGPIPE is caught
// (and otherwise ignored) so that such a write fails instead of killing
// the process; a broken pipe elsewhere (a socket, a child's stdin) stays
// an error of its own and ends nothing. stop restores the defaults.
func hangups(ctx context.Context, stdout, stderr io.Writer) (_ context.Context, out, errOut io.Writer, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	hup := make(chan os.Signal, 1)
	if !signal.Ignored(syscall.SIGHUP) {
		signal.Notify(hup, syscall.SIGHUP)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-pipe: // the failing write says which stream it was
			case <-hup:
				// As with Ctrl-C, a second one ends a shutdown that hangs.
				signal.Stop(hup)
				cancel()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			signal.Stop(pipe)
			signal.Stop(hup)
			close(done)
			cancel()
		})
	}
	return ctx, cancelOnEPIPE{stdout, cancel}, cancelOnEPIPE{stderr, cancel}, stop
}

// cancelOnEPIPE is a writer that cancels when a write fails with EPIPE.
type cancelOnEPIPE struct {
	w      io.Writer
	cancel context.CancelFunc
}

func (c cancelOnEPIPE) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		c.cancel()
	}
	return n, err
}

// newFlags returns a flag set that reports errors to stderr and does not
// exit the process.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and maps flag errors to exit codes; ok is false when
// the command must return code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// newLogger returns the daemon's logger for a level and format from the
// config.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadConfig loads the configuration file after checking that nobody but
// root or mflow's own user can change it (config.CheckAccess).
func loadConfig(path string) (*config.Config, error) {
	if err := config.CheckAccess(path); err != nil {
		return nil, err
	}
	return config.Load(path)
}
