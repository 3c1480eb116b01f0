package daemon

import (
	"context"
	"errors"
	"log/slog"

	"mflow/bpf"
	"mflow/config"
	"mflow/metrics"
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
	// Frames is the UMEM size of each socket in frames, with the xsk
	// package's default rings; 0 means the config's uplink.rx_ring
	// (rings of that size, twice as many frames).
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
	// ErrNotReloadable: a reload asked for a change that only a restart
	// can make; nothing was applied.
	ErrNotReloadable = errors.New("needs a restart")
	// ErrDeviceLost: Run stopped because a network's TAP was deleted from
	// outside; a restart creates it again.
	ErrDeviceLost = errors.New("network device lost")
)

// Check is the outcome of one host check of `mflow check`.
type Check struct {
	Name   string // what was checked
	OK     bool
	Detail string // what was found, or what to do about it
}

// Daemon is a configured VTEP. Create it with New, then call Run once; Run
// tears everything down when it returns. Snapshot is safe for concurrent
// use at any time; the other methods are not.
type Daemon struct{ d *daemon }

// New sets up everything the configuration asks for. On error, whatever
// it had created is removed again.
func New(cfg *config.Config, o Options) (*Daemon, error) {
	d, err := newDaemon(cfg, o)
	if err != nil {
		return nil, err
	}
	return &Daemon{d: d}, nil
}

// Run serves until ctx is cancelled, then drains and tears everything
// down. It returns nil after a clean shutdown.
func (d *Daemon) Run(ctx context.Context) error { return d.d.run(ctx) }

// Close releases everything New set up, for a daemon whose Run is never
// called. Run does this itself.
func (d *Daemon) Close() { d.d.teardown() }

// Reload applies the difference between the running configuration and cfg
// where it can change without rebinding anything: a network's peers (the
// VTEPs accepted from and flooded to; FDB entries learned behind a removed
// peer are no longer used, its stations are flooded to the remaining
// peers). Networks whose settings did not change are not touched. It
// returns the paths of the fields it changed (config.Changes), none when
// cfg equals the running configuration. If cfg changes anything else, it
// applies nothing and returns an error wrapping ErrNotReloadable that names
// those fields; an invalid cfg is an error wrapping ErrConfig. Either way
// the running configuration stays as it was. Reload is safe for concurrent
// use with Run and Snapshot; after Run has returned it fails.
func (d *Daemon) Reload(cfg *config.Config) ([]string, error) { return d.d.reload(cfg) }

// Live returns nil while the daemon has not shut down (the answer of
// /healthz).
func (d *Daemon) Live() error { return d.d.alive() }

// Ready returns nil when the daemon serves everything it was configured
// for: Run is running, every AF_XDP socket is bound, the XDP program is
// attached to the uplink and every network's device exists and is up;
// otherwise an error naming what is not (the answer of /readyz). It
// queries the kernel (netlink) and is safe for concurrent use.
func (d *Daemon) Ready() error { return d.d.ready() }

// XDPMode returns the mode the XDP program was attached in.
func (d *Daemon) XDPMode() bpf.Mode { return d.d.xdpMode }

// XDPCounters returns the uplink XDP program's verdict counters (frames
// redirected to mflow's sockets, passed to the kernel, passed for lack of
// a socket on their queue), counted in the program itself: a check of the
// daemon's own receive counters that does not come from them.
func (d *Daemon) XDPCounters() (bpf.Counters, error) { return d.d.xdpCounters() }

// Snapshot returns the daemon's counters in the form the metrics package
// exports. Conservation holds in each direction of every snapshot:
// received = delivered + dropped + in flight.
//
// Decap: received counts frames taken from the AF_XDP rx rings; delivered
// those the devices accepted; a frame the kernel refused on a TAP write is
// dropped as "tap_write_error", one a veth's AF_XDP transmit could not take
// (no free UMEM frame, tx ring full, too large) as "veth_tx_error".
//
// Encap: received counts frames read from the devices (after segmentation;
// a packet that failed segmentation counts once, under its tap reason, as
// does a frame from a veth that is too short or too large) plus the extra
// copies flooding makes; delivered counts frames handed to the kernel for
// the uplink (the AF_XDP tx ring; a UDP socket's sendmsg; a write to the
// transmit TAP, counted in the wire frames it becomes). What the kernel
// drops after that (the uplink's queue) it counts itself.
//
// After Run has returned, Snapshot returns the last one taken before
// teardown. It is safe for concurrent use.
func (d *Daemon) Snapshot() metrics.Snapshot { return d.d.snapshot() }

// CheckHost verifies that this host can run cfg: capabilities, memlock,
// AF_XDP and TUN support, the uplink (present, MTU, queues), no kernel
// VxLAN device up on the VTEP's port, the networks' bridges and veths, that
// the XDP program loads, and what is attached to the uplink (nothing,
// mflow's program, or another program, which fails). It changes nothing:
// it attaches no program and binds no socket, so it also runs next to a
// live daemon (whose attached program it reports), as a health check. Run
// it in the namespace the daemon will serve.
func CheckHost(cfg *config.Config) []Check { return checkHost(cfg) }

// InNamedNetns returns an Options.Enter function that runs its argument on
// a locked OS thread switched into the named network namespace (as made by
// `ip netns add`, under /run/netns), so that one daemon can serve a
// namespace other than its own. The thread is switched back afterwards; if
// that fails it stays locked, and Go discards it when the goroutine ends.
func InNamedNetns(name string) (func(func() error) error, error) { return inNamedNetns(name) }
