package daemon

import (
	"errors"
	"log/slog"
)

// Options are the parts of a daemon that do not come from the config file.
// The zero value runs in the caller's network namespace and logs to
// slog.Default().
type Options struct {
	// Enter, when set, runs fn in the network namespace the daemon serves
	// (on a locked thread) and returns its error. Every kernel object the
	// daemon creates (XDP link, sockets, TAPs, netlink handles) is made
	// inside it. `mflow demo` and the tests use it to run the daemon
	// in-process for a namespace of the testbed.
	Enter func(fn func() error) error
	// Logger receives the daemon's structured log.
	Logger *slog.Logger
	// Frames is the UMEM size of each socket in frames; 0 means
	// xsk.DefaultNumFrames.
	Frames int
	// Unordered bypasses the merger of the microflow policy: frames reach
	// the devices in the order the workers finish their micro-flows, so
	// flows arrive reordered. It exists for the benchmark harness, which
	// measures that reordering on real traffic (the paper's Fig. 7); it
	// has no key in the config file and must not be used in production.
	// New logs a warning when it is set, and that it is ignored under a
	// policy other than microflow (the only one with a merger).
	Unordered bool
}

// Exit codes of `mflow run`, documented in the README: errors from New
// wrap ErrConfig or ErrSetup so that the command can tell them apart.
var (
	// ErrConfig: the configuration does not fit the host (MTU, queues,
	// CPUs).
	ErrConfig = errors.New("configuration does not fit the host")
	// ErrSetup: a kernel object could not be created.
	ErrSetup = errors.New("setup failed")
)

// Check is the outcome of one host check of `mflow check`.
type Check struct {
	Name   string // what was checked
	OK     bool
	Detail string // what was found, or what to do about it
}
