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

// hangups returns ctx, cancelled also when the terminal hangs up (SIGHUP)
// or the reader of stdout or stderr goes away (SIGPIPE, as in `mflow bench
// 2>&1 | head`). The commands that build a testbed use it, so that they
// remove it and exit as after Ctrl-C instead of dying with their
// namespaces left behind. Writes to a closed pipe fail with EPIPE from then
// on; stop restores the default actions.
func hangups(ctx context.Context) (_ context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGHUP, syscall.SIGPIPE)
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
