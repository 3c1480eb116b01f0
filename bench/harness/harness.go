package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"mflow/bench/traffic"
	"mflow/config"
)

// Mode kinds.
const (
	ModeNative    = "native"     // peer → the host itself, no overlay and no container
	ModeKernel    = "kernel"     // the kernel's VxLAN device on the host
	ModeKernelRPS = "kernel-rps" // kernel plus RPS on the wire's receive queue
	ModeCeiling   = "ceiling"    // AF_XDP receive-and-drop on the host's uplink
)

// Policies are the mflow steering policies, which are also mode names.
var Policies = []string{"single", "flow", "pipeline", "microflow"}

// Options configures Run. Zero fields take the defaults of DefaultOptions,
// except the booleans (ReorderWire, Pin), which are off when zero: start
// from DefaultOptions or QuickOptions.
type Options struct {
	// Modes to compare: native, kernel, kernel-rps, ceiling and the
	// steering policies single, flow, pipeline, microflow. nil means the
	// default modes; an empty list none (only the Fig. 7 sweeps run).
	Modes []string `json:"modes"`
	// Workers lists worker counts for flow and microflow: one mode per
	// value ("microflow-w4").
	Workers []int `json:"workers"`
	// Batch is mflow's micro-flow size.
	Batch int `json:"batch"`
	// Devices are mflow's network device types to measure, "tap" and/or
	// "veth" (AF_XDP transmit into a veth pair instead of TAP writes);
	// every mflow mode runs once per type, with "-veth" appended to the
	// names of the veth ones. Empty means tap only.
	Devices []string `json:"devices,omitempty"`
	// Transmits are mflow's encap transmit paths to measure ("socket",
	// "af_xdp", as vtep.transmit); every mflow mode runs once per path,
	// with "-" and the path appended to the names of all but the first.
	// Empty means the config's default only.
	Transmits []string `json:"transmits,omitempty"`
	// Spins are values of mflow's steering.spin_us to measure (µs; -1:
	// the config's default); every mflow mode runs once per value,
	// named with a -spinN suffix when there are several.
	Spins []int `json:"spins,omitempty"`
	// Inlines are values of mflow's steering.inline to measure (frames;
	// -1: the config's default); every mflow mode runs once per value,
	// named with an -inlN suffix when there are several. Only microflow
	// uses it.
	Inlines []int `json:"inlines,omitempty"`
	// TapQueues are values of mflow's steering.tap_queues to measure
	// (0: the default), each mflow mode once per value, named with a -qN
	// suffix when there are several.
	TapQueues []int `json:"tap_queues,omitempty"`
	// TapRPS are values of mflow's steering.tap_rps to measure (off,
	// auto or a CPU list; "": the default), each mflow mode once per
	// value, named with a -rps<value> suffix when there are several.
	TapRPS []string `json:"tap_rps,omitempty"`
	// TransmitRPS are values of mflow's vtep.transmit_rps to measure (as
	// TapRPS), named with a -txrps<value> suffix when there are several.
	TransmitRPS []string `json:"transmit_rps,omitempty"`
	// RxRings are values of mflow's uplink.rx_ring to measure (0: the
	// default), named with a -ringN suffix when there are several.
	RxRings []int `json:"rx_rings,omitempty"`
	// EncapCPUs are values of mflow's steering.cpus.encap to measure,
	// each a comma-separated CPU list ("": not pinned, the default),
	// named with an -ecpu<list> suffix (commas as dots) when there are
	// several.
	EncapCPUs []string `json:"encap_cpus,omitempty"`
	// Sizes are UDP payload sizes in bytes (16 to 1422); the first is the
	// size of the flows sweep and of the latency steps.
	Sizes []int `json:"sizes"`
	// Flows are flow counts; the first is used in the size sweep.
	Flows []int `json:"flows"`
	// Dirs are the directions measured: DirDecap (peer → container) and
	// DirEncap (container → peer); nil means both.
	Dirs []string `json:"dirs"`
	// TCPSizes are TCP write sizes; empty means no TCP steps.
	TCPSizes []int `json:"tcp_sizes,omitempty"`
	// TCPStreams are the numbers of parallel TCP streams of a TCP step
	// (one step per value); empty means 1.
	TCPStreams []int `json:"tcp_streams,omitempty"`
	// TCPClients are the TCP clients, ClientBuiltin and/or ClientIperf3
	// (one step per client; iperf3 must be on the PATH); empty means the
	// built-in one.
	TCPClients []string `json:"tcp_clients,omitempty"`
	// RRSizes are the request (and response) sizes of the
	// request/response steps, at idle; the first is also measured under
	// load. Empty means no rr steps.
	RRSizes []int `json:"rr_sizes,omitempty"`
	// RRProtos are the rr protocols, "tcp" and/or "udp"; empty means both.
	RRProtos []string `json:"rr_protos,omitempty"`
	// RRLoads are the directions of the background TCP stream of the
	// loaded rr steps (DirDecap, DirEncap); empty means no loaded steps.
	RRLoads []string `json:"rr_loads,omitempty"`
	// Rates are offered loads in packets per second for the latency
	// steps; empty means none.
	Rates []float64 `json:"rates,omitempty"`
	// UDPRates are offered loads in packets per second at which every
	// UDP step of the size sweep is measured once more, paced, in each
	// direction: loss at the same offered rate in every mode, where the
	// unpaced steps let each path's generator offer what its CPU
	// leaves it. The generator keeps its GenBatch bursts (Rate/GenBatch
	// flushes a second). Not in ceiling, whose encap transmit is not
	// paced. Empty means unpaced steps only.
	UDPRates []float64 `json:"udp_rates,omitempty"`
	// ReorderBatches are the batch sizes of the Fig. 7 experiments (in
	// memory, and on the testbed with ReorderWire); empty means none.
	// ReorderWorkers sizes both, ReorderPackets the in-memory one.
	ReorderBatches []int  `json:"reorder_batches,omitempty"`
	ReorderWorkers int    `json:"reorder_workers,omitempty"`
	ReorderPackets uint64 `json:"reorder_packets,omitempty"`
	// ReorderWire runs the Fig. 7 batch sizes also through the daemon on
	// the testbed: one UDP flow of the first size, microflow with
	// ReorderWorkers workers, merger off and on, one testbed per batch
	// size; the container's socket counts what arrives out of order.
	ReorderWire bool `json:"reorder_wire,omitempty"`
	// Duration of one repetition's traffic; Reps repetitions per step.
	Duration time.Duration `json:"duration_ns"`
	Reps     int           `json:"reps"`
	// Rounds, when above 1, measures the whole sequence of modes that
	// many times in turn (kernel, single, …, kernel, single, …), each
	// time on a testbed built anew and with Reps repetitions per step.
	// A step's samples from every round are summarised together, so a
	// machine that drifts during the run (a shared VM does, by minutes)
	// shifts every mode alike instead of the ones measured last.
	Rounds int `json:"rounds,omitempty"`
	// GenCPUs are the CPUs of the generator threads (one each).
	GenCPUs []int `json:"gen_cpus"`
	// GenBatch is the live-frames batch (frames per flush).
	GenBatch uint32 `json:"gen_batch"`
	// Receivers is the number of SO_REUSEPORT sockets in the container
	// (each read by its own goroutine with recvmmsg); 0 means
	// min(max flows, NumCPU).
	Receivers int `json:"receivers"`
	// Pin pins mflow's dispatcher and workers (and the ceiling's receive
	// loop) to CPUs other than the generator's, when there are enough.
	Pin bool `json:"pin"`
	// Prefix of the namespace names.
	Prefix string `json:"prefix"`
	// Log receives the daemon's warnings; nil discards them.
	Log io.Writer `json:"-"`
	// InProcess runs mflow inside the harness's process instead of as a
	// process of its own (how it runs on a host). For comparison only: it
	// shares the Go runtime with the load generators and clients.
	InProcess bool `json:"in_process,omitempty"`
	// WireOffloads builds the wire with iproute2's default offloads
	// (testbed.Options.WireOffloads) instead of all off.
	WireOffloads bool `json:"wire_offloads,omitempty"`
	// DaemonCPUProfile, when set, makes each mflow mode's daemon process
	// write a CPU profile to DaemonCPUProfile.<mode>.
	DaemonCPUProfile string `json:"-"`
}

// DefaultOptions is the full run: every mode, the paper's sweeps.
func DefaultOptions() Options {
	return Options{
		Modes:          []string{ModeNative, ModeKernel, ModeKernelRPS, "single", "flow", "pipeline", "microflow", ModeCeiling},
		Workers:        []int{2},
		Batch:          256,
		Dirs:           []string{DirDecap, DirEncap},
		Sizes:          []int{64, 1422},
		Flows:          []int{1, 4},
		TCPSizes:       []int{128 << 10},
		TCPStreams:     []int{1, 4},
		TCPClients:     []string{ClientBuiltin},
		RRSizes:        []int{1, 1024},
		RRProtos:       []string{"tcp", "udp"},
		RRLoads:        []string{DirDecap, DirEncap},
		Rates:          []float64{200e3},
		ReorderBatches: []int{1, 4, 16, 64, 256, 1024},
		ReorderWorkers: 2,
		ReorderPackets: 1 << 20,
		ReorderWire:    true,
		Duration:       time.Second,
		Reps:           3,
		GenCPUs:        []int{0},
		GenBatch:       64,
		Pin:            true,
		Prefix:         "mfbench",
	}
}

// QuickOptions is `mflow bench --quick`: kernel vs. single vs. microflow,
// both directions of one UDP size and one TCP stream, TCP_RR and UDP_RR at
// idle and TCP_RR under load, short repetitions; under a minute on two
// cores.
func QuickOptions() Options {
	o := DefaultOptions()
	o.Modes = []string{ModeKernel, "single", "microflow"}
	o.Sizes = []int{64}
	o.Flows = []int{1}
	o.TCPStreams = []int{1}
	o.RRSizes = []int{1}
	o.RRLoads = []string{DirDecap}
	o.Rates = nil
	o.ReorderBatches = []int{1, 256}
	o.ReorderPackets = 1 << 16
	o.ReorderWire = false
	o.Duration = 500 * time.Millisecond
	o.Reps = 3
	return o
}

// Mode is one configuration of the host's receive path.
type Mode struct {
	Name    string // as reported: "kernel", "microflow-w4"
	Kind    string // native, kernel, kernel-rps, ceiling or "mflow"
	Policy  string // mflow only
	Workers int    // mflow only
	// Batch, when not 0, is mflow's micro-flow size instead of
	// Options.Batch, and the mode is a point of the wire Fig. 7 sweep
	// (Options.ReorderWire): its only step is KindWireReorder.
	Batch int
	// Unordered bypasses mflow's merger (daemon.Options.Unordered).
	Unordered bool
	// Device is mflow's network device type, "tap" or "veth" (mflow
	// only; "" is tap).
	Device string
	// Transmit is mflow's encap transmit path (vtep.transmit; "" is the
	// config's default).
	Transmit string
	// Spin is mflow's steering.spin_us in µs ("" is the config's
	// default).
	Spin string
	// Inline is mflow's steering.inline in frames ("" is the config's
	// default).
	Inline string
	// TapQueues is mflow's steering.tap_queues (0: the config's default).
	TapQueues int
	// TapRPS is mflow's steering.tap_rps ("": the config's default).
	TapRPS string
	// TransmitRPS is mflow's vtep.transmit_rps ("": the config's default).
	TransmitRPS string
	// RxRing is mflow's uplink.rx_ring (0: the config's default).
	RxRing int
	// EncapCPUs is mflow's steering.cpus.encap (nil: not pinned).
	EncapCPUs []int
}

// label names m in progress lines and warnings: the name, plus the batch
// size for a point of the wire Fig. 7 sweep (whose modes share names).
func (m Mode) label() string {
	if m.Batch != 0 {
		return fmt.Sprintf("%s (batch %d)", m.Name, m.Batch)
	}
	return m.Name
}

// Mode names of the Fig. 7 experiments, in memory and on the testbed.
const (
	ModeUnordered = "microflow-unordered" // merger bypassed
	ModeMerger    = "microflow-merger"    // merger on, for comparison
)

// reorderWireModes returns the modes of the wire Fig. 7 sweep: merger off
// then on, for each batch size.
func (o *Options) reorderWireModes() []Mode {
	if !o.ReorderWire {
		return nil
	}
	var out []Mode
	for _, unordered := range []bool{true, false} {
		name := ModeMerger
		if unordered {
			name = ModeUnordered
		}
		for _, b := range o.ReorderBatches {
			out = append(out, Mode{Name: name, Kind: "mflow", Policy: "microflow", Workers: o.ReorderWorkers, Batch: b, Unordered: unordered})
		}
	}
	return out
}

// Expand turns Options.Modes, Workers and Devices into the modes to run,
// in order.
func (o *Options) Expand() ([]Mode, error) {
	devices := o.Devices
	if len(devices) == 0 {
		devices = []string{"tap"}
	}
	for _, d := range devices {
		if d != "tap" && d != "veth" {
			return nil, fmt.Errorf("expanding modes: unknown device %q (want tap, veth)", d)
		}
	}
	transmits := o.Transmits
	if len(transmits) == 0 {
		transmits = []string{""}
	}
	for _, t := range transmits {
		switch config.Transmit(t) {
		case "", config.TransmitAuto, config.TransmitSocket, config.TransmitAFXDP, config.TransmitTunnel:
		default:
			return nil, fmt.Errorf("expanding modes: unknown transmit path %q (want %s, %s, %s, %s)", t, config.TransmitAuto, config.TransmitSocket, config.TransmitAFXDP, config.TransmitTunnel)
		}
	}
	spins, err := optionalInts(o.Spins, config.MaxSpinMicros, "spin %d µs")
	if err != nil {
		return nil, err
	}
	inlines, err := optionalInts(o.Inlines, o.Batch, "inline %d frames (the batch is the most)")
	if err != nil {
		return nil, err
	}
	queues := o.TapQueues
	if len(queues) == 0 {
		queues = []int{0}
	}
	for _, q := range queues {
		if q < 0 || q > config.MaxTapQueues {
			return nil, fmt.Errorf("expanding modes: tap queues %d outside 0..%d", q, config.MaxTapQueues)
		}
	}
	rpss := o.TapRPS
	if len(rpss) == 0 {
		rpss = []string{""}
	}
	for _, r := range rpss {
		if _, err := (config.Steering{TapRPS: r}).TapRPSCPUs(nil); err != nil {
			return nil, fmt.Errorf("expanding modes: tap RPS: %w", err)
		}
	}
	txrpss := o.TransmitRPS
	if len(txrpss) == 0 {
		txrpss = []string{""}
	}
	for _, r := range txrpss {
		if _, err := (&config.Config{VTEP: config.VTEP{TransmitRPS: r}}).TransmitRPSCPUs(nil); err != nil {
			return nil, fmt.Errorf("expanding modes: transmit RPS: %w", err)
		}
	}
	rings := o.RxRings
	if len(rings) == 0 {
		rings = []int{0}
	}
	for _, r := range rings {
		if r != 0 && !config.ValidRxRing(r) {
			return nil, fmt.Errorf("expanding modes: rx ring %d is not 0 or a power of two from %d to %d", r, config.MinRxRing, config.MaxRxRing)
		}
	}
	encaps := [][]int{nil}
	if len(o.EncapCPUs) > 0 {
		encaps = encaps[:0]
		for _, v := range o.EncapCPUs {
			var cpus []int
			if v != "" {
				for _, f := range strings.Split(v, ",") {
					c, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil || c < 0 || c >= runtime.NumCPU() {
						return nil, fmt.Errorf("expanding modes: encap CPUs %q: %q is not a CPU of this machine (0..%d)", v, f, runtime.NumCPU()-1)
					}
					cpus = append(cpus, c)
				}
			}
			encaps = append(encaps, cpus)
		}
	}
	var out []Mode
	// Each list of values multiplies the mflow modes; a value names its
	// modes with a suffix unless it is the only one and the default.
	mflow := func(m Mode) {
		ms := []Mode{m}
		each := func(n int, apply func(mm *Mode, i int)) {
			var next []Mode
			for _, mm := range ms {
				for i := range n {
					x := mm
					apply(&x, i)
					next = append(next, x)
				}
			}
			ms = next
		}
		each(len(devices), func(mm *Mode, i int) {
			if mm.Device = devices[i]; mm.Device == "veth" {
				mm.Name += "-veth"
			}
		})
		each(len(transmits), func(mm *Mode, i int) {
			if mm.Transmit = transmits[i]; i > 0 {
				mm.Name += "-" + strings.ReplaceAll(mm.Transmit, "_", "")
			}
		})
		// An optional integer key: its value in the mode's config ("" is
		// the default, -1) and a name suffix.
		optional := func(vals []int, suffix string, key func(*Mode) *string) {
			each(len(vals), func(mm *Mode, i int) {
				v := vals[i]
				if v >= 0 {
					*key(mm) = fmt.Sprint(v)
				}
				if i > 0 || len(vals) > 1 && v >= 0 {
					mm.Name += fmt.Sprintf("-%s%d", suffix, v)
				}
			})
		}
		optional(spins, "spin", func(mm *Mode) *string { return &mm.Spin })
		optional(inlines, "inl", func(mm *Mode) *string { return &mm.Inline })
		each(len(queues), func(mm *Mode, i int) {
			if mm.TapQueues = queues[i]; i > 0 || len(queues) > 1 && mm.TapQueues > 0 {
				mm.Name += fmt.Sprintf("-q%d", mm.TapQueues)
			}
		})
		each(len(rpss), func(mm *Mode, i int) {
			if mm.TapRPS = rpss[i]; i > 0 || len(rpss) > 1 && mm.TapRPS != "" {
				mm.Name += "-rps" + mm.TapRPS
			}
		})
		each(len(txrpss), func(mm *Mode, i int) {
			if mm.TransmitRPS = txrpss[i]; i > 0 || len(txrpss) > 1 && mm.TransmitRPS != "" {
				mm.Name += "-txrps" + mm.TransmitRPS
			}
		})
		each(len(rings), func(mm *Mode, i int) {
			if mm.RxRing = rings[i]; i > 0 || len(rings) > 1 && mm.RxRing > 0 {
				mm.Name += fmt.Sprintf("-ring%d", mm.RxRing)
			}
		})
		each(len(encaps), func(mm *Mode, i int) {
			if mm.EncapCPUs = encaps[i]; len(encaps) > 1 || len(mm.EncapCPUs) > 0 {
				mm.Name += "-ecpu" + cpuList(mm.EncapCPUs, ".")
			}
		})
		out = append(out, ms...)
	}
	for _, m := range o.Modes {
		switch {
		case m == ModeNative || m == ModeKernel || m == ModeKernelRPS || m == ModeCeiling:
			out = append(out, Mode{Name: m, Kind: m})
		case m == "single":
			mflow(Mode{Name: m, Kind: "mflow", Policy: m, Workers: 1})
		case m == "pipeline":
			mflow(Mode{Name: m, Kind: "mflow", Policy: m, Workers: 2})
		case m == "flow" || m == "microflow":
			for _, w := range o.Workers {
				if w < 1 {
					return nil, fmt.Errorf("expanding modes: %d workers", w)
				}
				name := m
				if len(o.Workers) > 1 || w != 2 {
					name = fmt.Sprintf("%s-w%d", m, w)
				}
				mflow(Mode{Name: name, Kind: "mflow", Policy: m, Workers: w})
			}
		default:
			return nil, fmt.Errorf("expanding modes: unknown mode %q (want native, kernel, kernel-rps, ceiling, %s)", m, strings.Join(Policies, ", "))
		}
	}
	return out, nil
}

// StepsFor returns the steps measured in mode m, per direction: the size
// sweep at the first flow count (unpaced, then at each of UDPRates except
// in ceiling), the flows sweep at the first size, the TCP sizes × streams
// × clients; then the request/response steps and the
// latency rates (ceiling has only UDP steps: nothing reaches a container
// there).
func (o *Options) StepsFor(m Mode) []Step {
	if m.Batch != 0 {
		return []Step{{Kind: KindWireReorder, Dir: DirDecap, Size: o.Sizes[0], Flows: 1, Batch: m.Batch, Workers: m.Workers}}
	}
	var steps []Step
	for _, dir := range o.Dirs {
		for _, s := range o.Sizes {
			steps = append(steps, Step{Kind: KindUDP, Dir: dir, Size: s, Flows: o.Flows[0]})
		}
		for _, r := range o.UDPRates {
			if m.Kind == ModeCeiling {
				break // its encap transmit is not paced: a ceiling, not a load
			}
			for _, s := range o.Sizes {
				steps = append(steps, Step{Kind: KindUDP, Dir: dir, Size: s, Flows: o.Flows[0], Rate: r})
			}
		}
		for _, f := range o.Flows[1:] {
			steps = append(steps, Step{Kind: KindUDP, Dir: dir, Size: o.Sizes[0], Flows: f})
		}
	}
	if m.Kind == ModeCeiling {
		return steps
	}
	for _, dir := range o.Dirs {
		for _, s := range o.TCPSizes {
			for _, n := range o.TCPStreams {
				for _, c := range o.TCPClients {
					steps = append(steps, Step{Kind: KindTCP, Dir: dir, Size: s, Flows: n, Client: c})
				}
			}
		}
	}
	for i, size := range o.RRSizes {
		loads := []string{""}
		if i == 0 {
			loads = append(loads, o.RRLoads...)
		}
		for _, load := range loads {
			for _, p := range o.RRProtos {
				steps = append(steps, Step{Kind: KindRR, Proto: p, Size: size, Load: load})
			}
		}
	}
	for _, r := range o.Rates {
		steps = append(steps, Step{Kind: KindLatency, Dir: DirDecap, Size: o.Sizes[0], Flows: 1, Rate: r})
	}
	return steps
}

// MaxPayload is the largest UDP payload that fits the overlay MTU (1450)
// without fragmentation.
const MaxPayload = 1450 - 20 - 8

// MinPayload holds the sequence number and the send timestamp.
const MinPayload = 16

func (o *Options) fill() error {
	d := DefaultOptions()
	if o.Modes == nil { // an empty, non-nil list: only the Fig. 7 sweeps
		o.Modes = d.Modes
	}
	if len(o.Workers) == 0 {
		o.Workers = d.Workers
	}
	if o.Batch == 0 {
		o.Batch = d.Batch
	}
	if len(o.Sizes) == 0 {
		o.Sizes = d.Sizes
	}
	if len(o.Flows) == 0 {
		o.Flows = []int{1}
	}
	if o.Dirs == nil {
		o.Dirs = d.Dirs
	}
	for _, dir := range o.Dirs {
		if dir != DirDecap && dir != DirEncap {
			return fmt.Errorf("checking options: unknown direction %q (want %s, %s)", dir, DirDecap, DirEncap)
		}
	}
	if len(o.TCPStreams) == 0 {
		o.TCPStreams = []int{1}
	}
	for _, n := range o.TCPStreams {
		if n < 1 || n > 64 {
			return fmt.Errorf("checking options: %d TCP streams outside [1, 64]", n)
		}
	}
	if len(o.TCPClients) == 0 {
		o.TCPClients = []string{ClientBuiltin}
	}
	for _, c := range o.TCPClients {
		switch c {
		case ClientBuiltin:
		case ClientIperf3:
			if _, err := exec.LookPath("iperf3"); err != nil && len(o.TCPSizes) > 0 {
				return fmt.Errorf("checking options: TCP client iperf3: %w (install iperf3, e.g. apt-get install iperf3)", err)
			}
		default:
			return fmt.Errorf("checking options: unknown TCP client %q (want %s, %s)", c, ClientBuiltin, ClientIperf3)
		}
	}
	if len(o.RRProtos) == 0 {
		o.RRProtos = d.RRProtos
	}
	for _, p := range o.RRProtos {
		if p != "tcp" && p != "udp" {
			return fmt.Errorf("checking options: unknown request/response protocol %q (want tcp, udp)", p)
		}
	}
	for _, s := range o.RRSizes {
		if s < 1 || s > MaxPayload {
			return fmt.Errorf("checking options: request/response size %d outside [1, %d]", s, MaxPayload)
		}
	}
	for _, l := range o.RRLoads {
		if l != DirDecap && l != DirEncap {
			return fmt.Errorf("checking options: unknown background stream direction %q (want %s, %s)", l, DirDecap, DirEncap)
		}
	}
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Reps <= 0 {
		o.Reps = d.Reps
	}
	if o.Rounds < 0 || o.Rounds > 100 {
		return fmt.Errorf("checking options: %d rounds outside [1, 100]", o.Rounds)
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.GenCPUs == nil {
		o.GenCPUs = d.GenCPUs
	}
	if o.GenBatch == 0 {
		o.GenBatch = d.GenBatch
	}
	if o.ReorderWorkers == 0 {
		o.ReorderWorkers = d.ReorderWorkers
	}
	if o.ReorderPackets == 0 {
		o.ReorderPackets = d.ReorderPackets
	}
	for _, b := range o.ReorderBatches {
		if b < 1 || b > config.MaxBatch {
			return fmt.Errorf("checking options: Fig. 7 batch size %d outside [1, %d]", b, config.MaxBatch)
		}
	}
	if len(o.ReorderBatches) > 0 && o.ReorderWorkers < 1 {
		return fmt.Errorf("checking options: %d Fig. 7 workers", o.ReorderWorkers)
	}
	if o.Batch < 1 || o.Batch > config.MaxBatch {
		return fmt.Errorf("checking options: batch %d outside [1, %d]", o.Batch, config.MaxBatch)
	}
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	for _, s := range o.Sizes {
		if s < MinPayload || s > MaxPayload {
			return fmt.Errorf("checking options: UDP payload %d outside [%d, %d]", s, MinPayload, MaxPayload)
		}
	}
	for _, f := range o.Flows {
		if f < 1 || f > 4096 {
			return fmt.Errorf("checking options: %d flows outside [1, 4096]", f)
		}
	}
	for _, s := range o.TCPSizes {
		if s < 1 || s > traffic.MaxWrite {
			return fmt.Errorf("checking options: TCP message size %d outside [1, 16 MiB]", s)
		}
	}
	for _, rates := range [][]float64{o.Rates, o.UDPRates} {
		for _, r := range rates {
			if !(r >= 1 && r <= 100e6) { // also NaN
				return fmt.Errorf("checking options: offered load %g packets/s outside [1, 1e8]", r)
			}
		}
	}
	for _, c := range o.GenCPUs {
		if c < 0 || c >= runtime.NumCPU() {
			return fmt.Errorf("checking options: generator CPU %d does not exist (%d CPUs)", c, runtime.NumCPU())
		}
	}
	if o.Receivers == 0 {
		o.Receivers = min(slices.Max(o.Flows), runtime.NumCPU())
	}
	modes, err := o.Expand()
	if err == nil && len(modes) == 0 && len(o.ReorderBatches) == 0 {
		err = errors.New("checking options: no mode and no Fig. 7 batch size: nothing to measure")
	}
	return err
}

// Estimate returns how long Run should take with these options.
func (o Options) Estimate() time.Duration {
	if err := o.fill(); err != nil {
		return 0
	}
	modes, _ := o.Expand()
	modes = append(modes, o.reorderWireModes()...)
	var d time.Duration
	for _, m := range modes {
		d += 1500 * time.Millisecond // testbed and mode setup
		d += time.Duration(len(o.StepsFor(m))*o.Reps) * (o.Duration + 150*time.Millisecond)
	}
	d *= time.Duration(o.Rounds)
	if len(o.ReorderBatches) > 0 {
		d += time.Duration(len(o.ReorderBatches)*2*o.Reps) * 150 * time.Millisecond
	}
	return d
}

// ErrUnsupported is returned by Run on platforms other than Linux.
var ErrUnsupported = errors.New("harness: unsupported platform (needs Linux)")

// progress prints one line per repetition with the time elapsed and an
// estimate of the time left; the lines are plain (no carriage returns), so
// that a log that is not a terminal stays readable.
type progress struct {
	w        io.Writer
	start    time.Time
	total    int           // repetitions planned
	done     int           // repetitions finished
	estimate time.Duration // of the whole run, from Options.Estimate
}

func (p *progress) line(format string, args ...any) {
	if p.w == nil {
		return
	}
	el := time.Since(p.start)
	left := p.estimate - el
	if p.done > 0 && p.total > 0 {
		left = time.Duration(float64(el) / float64(p.done) * float64(p.total-p.done))
	}
	fmt.Fprintf(p.w, "[%6.1fs] (%d/%d, ~%s left) %s\n", el.Seconds(), p.done, p.total,
		max(left, 0).Round(time.Second), fmt.Sprintf(format, args...))
}

// Run measures every mode and step of o, writes progress lines to
// progressW (nil: none) and returns the report. A failing step is recorded
// in its Result and the run goes on; a failing mode setup is recorded as
// one Result with its error. Run returns an error only when ctx ends (with
// the report so far) or the options are invalid. Everything Run creates
// is removed when it returns.
func Run(ctx context.Context, o Options, progressW io.Writer) (*Report, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	modes, _ := o.Expand()
	rep := &Report{Started: time.Now(), Options: o, Machine: machine(o.GenCPUs), Build: readBuild()}
	p := &progress{w: progressW, start: rep.Started, estimate: o.Estimate()}
	for _, m := range modes {
		rep.Modes = append(rep.Modes, m.Name)
	}
	modes = append(modes, o.reorderWireModes()...)
	for _, m := range modes {
		p.total += len(o.StepsFor(m)) * o.Reps * o.Rounds
	}
	if len(o.ReorderBatches) > 0 {
		p.total += len(o.ReorderBatches) * 2 * o.Reps
	}
	fig7 := "no Fig. 7"
	if n := len(o.ReorderBatches); n > 0 {
		fig7 = fmt.Sprintf("Fig. 7 at %d batch sizes in memory", n)
		if o.ReorderWire {
			fig7 += " and on the testbed"
		}
	}
	p.line("starting: %d modes (%s), %s; %v per repetition, %d repetitions, %d round(s)", len(rep.Modes), strings.Join(rep.Modes, ", "), fig7, o.Duration, o.Reps, o.Rounds)
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		for _, m := range modes {
			if err := ctx.Err(); err != nil {
				break
			}
			res, err := runMode(ctx, &o, m, p)
			if o.Rounds > 1 {
				for i := range res {
					for j := range res[i].Samples {
						res[i].Samples[j].Round = round
					}
					if res[i].Error != "" {
						res[i].Error = fmt.Sprintf("round %d: %s", round, res[i].Error)
					}
				}
				rep.Results = mergeResults(rep.Results, res)
			} else {
				rep.Results = append(rep.Results, res...)
			}
			if err != nil {
				label := m.label()
				if o.Rounds > 1 {
					label = fmt.Sprintf("round %d: %s", round, label)
				}
				p.line("%s: %v", label, err)
				if ctx.Err() == nil {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %v", label, err))
				}
			}
		}
	}
	if len(o.ReorderBatches) > 0 && ctx.Err() == nil {
		rep.Results = append(rep.Results, reorder(ctx, o, p)...)
	}
	for _, w := range clientWarnings(rep.Results) {
		p.line("%s", w)
		rep.Warnings = append(rep.Warnings, w)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	p.line("done in %.1fs", rep.Seconds)
	return rep, ctx.Err()
}

// mergeResults adds the results of a mode's round to all: a step already
// there (same mode and step) gets the new samples and is summarised
// again, and keeps the first error it had (a step with an error is left
// out of the comparisons with the kernel, whichever round failed); a new
// one is appended.
func mergeResults(all, round []Result) []Result {
	for _, r := range round {
		i := slices.IndexFunc(all, func(a Result) bool { return a.Mode == r.Mode && a.Step == r.Step })
		if i < 0 {
			all = append(all, r)
			continue
		}
		a := &all[i]
		a.Samples = append(a.Samples, r.Samples...)
		if a.Error == "" {
			a.Error = r.Error
		}
		a.summarise()
	}
	return all
}

// machine describes the running machine.
func machine(gen []int) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), GenCPUs: gen}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// optionalInts returns the values of a sweep over an optional integer key,
// [-1] (the config's default) when there are none, after checking that each
// is -1 or within 0..max; what formats one value for the error.
func optionalInts(vals []int, max int, what string) ([]int, error) {
	if len(vals) == 0 {
		return []int{-1}, nil
	}
	for _, v := range vals {
		if v < -1 || v > max {
			return nil, fmt.Errorf("expanding modes: "+what+" outside 0..%d", v, max)
		}
	}
	return vals, nil
}

// cpuList writes cpus separated by sep; "off" for no CPU.
func cpuList(cpus []int, sep string) string {
	if len(cpus) == 0 {
		return "off"
	}
	var b strings.Builder
	for i, c := range cpus {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}
