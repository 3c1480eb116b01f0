// Package config decodes and validates mflow's YAML configuration
// (docs/ARCHITECTURE.md §6).
//
// Data flow: Load reads a file and hands its bytes to Parse. Parse decodes
// the YAML strictly (go.yaml.in/yaml/v3 with KnownFields: an unknown key, a
// duplicate key or a value of the wrong type is an error naming its line)
// into a Config that already holds the defaults, so that absent keys keep
// them; then it runs Validate, the static checks (ranges, enums, addresses,
// duplicates, cross-field rules). Every validation error names the field by
// its path (for example "networks[1].vni") and, when the Config came from
// YAML, the line it is on. Facts that only the host knows (the uplink MTU,
// its queue count, the CPUs) are checked separately by CheckHost, which
// `mflow check` and `mflow run` call once they have looked them up.
// Effective prints the configuration with every default filled in, as YAML.
//
// All errors from Parse, Validate and CheckHost wrap ErrInvalid, so a caller
// can map them to one exit code with errors.Is.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults applied to keys that the file leaves out.
const (
	DefaultPort         = 4789
	DefaultXDPMode      = XDPAuto
	DefaultPolicy       = PolicyMicroflow
	DefaultBatch        = 256
	DefaultWorkers      = 2
	DefaultSpinMicros   = 500
	DefaultInline       = 16
	MaxSpinMicros       = 10000
	DefaultMetricsAddr  = "127.0.0.1:9469"
	DefaultReservedBits = ReservedIgnore
	DefaultDeviceType   = DeviceTAP
	DefaultDeviceMTU    = 1450
	DefaultLogLevel     = "info"
	DefaultLogFormat    = "text"

	// Overhead is the VxLAN encapsulation overhead in bytes (outer Ethernet
	// 14 + IPv4 20 + UDP 8 + VxLAN 8): an inner MTU may be at most the uplink
	// MTU minus Overhead.
	Overhead = 50
	// MaxVNI is the largest 24-bit VxLAN network identifier.
	MaxVNI = 1<<24 - 1
	// MaxBatch bounds steering.batch; larger micro-flows only cost memory.
	MaxBatch = 1 << 16
	// MinMTU is the smallest device MTU accepted (the IPv4 minimum).
	MinMTU = 68
	// MaxMTU is the largest device MTU accepted.
	MaxMTU = 65535 - Overhead
)

// ErrInvalid is wrapped by every error that reports a problem with the
// configuration itself (syntax, schema, value, or a mismatch with the host),
// as opposed to an error reading the file.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole configuration. The zero value is not valid; build one
// with Default, Parse or Load. A Config is not modified by its methods and
// may be read concurrently.
type Config struct {
	Uplink   Uplink    `yaml:"uplink"`
	VTEP     VTEP      `yaml:"vtep"`
	Networks []Network `yaml:"networks"`
	Steering Steering  `yaml:"steering"`
	FDB      FDB       `yaml:"fdb"`
	Metrics  Metrics   `yaml:"metrics"`
	Log      Log       `yaml:"log"`

	// root is the parsed YAML document, kept to find the line of a field
	// path in validation errors; nil for a Config built in Go.
	root *yaml.Node
}

// Uplink is the NIC that carries the underlay traffic.
type Uplink struct {
	// Interface is the uplink's name, e.g. "eth1". Required.
	Interface string `yaml:"interface"`
	// Queues are the receive queues to attach AF_XDP sockets to.
	Queues Queues `yaml:"queues"`
	// XDPMode chooses how the XDP program is attached.
	XDPMode XDPMode `yaml:"xdp_mode"`
	// RxRing is the size, in frames, of the AF_XDP receive ring and of
	// the fill ring of each queue: a power of two from 512 to 65536
	// (default DefaultRxRing). It is the burst a queue absorbs when
	// frames arrive faster than mflow reads them (as they do after the
	// receiving CPU was busy elsewhere); what arrives beyond it is dropped
	// (counted as xsk_rx_dropped). A reload cannot change it. Each queue's packet memory
	// (UMEM) holds twice as many frames of 2 KiB, pinned and charged to
	// RLIMIT_MEMLOCK: 32 MiB a queue at the default.
	RxRing int `yaml:"rx_ring"`
}

// DefaultRxRing is uplink.rx_ring when the config names none. On the
// 2-CPU test VM it took a paced 150 kpps flow from 7-15 % loss (at the
// earlier 2 048) to none (BENCHMARKS.md, "Sixth session").
const DefaultRxRing = 8192

// Bounds of uplink.rx_ring.
const (
	MinRxRing = 512
	MaxRxRing = 65536
)

// ValidRxRing reports whether r is a valid uplink.rx_ring: a power of
// two from MinRxRing to MaxRxRing.
func ValidRxRing(r int) bool { return r >= MinRxRing && r <= MaxRxRing && r&(r-1) == 0 }

// UMEMBytes is the packet memory one uplink queue pins under this
// config: 2 × RxRing frames of 2 KiB.
func (u Uplink) UMEMBytes() uint64 { return 2 * uint64(u.RxRing) * 2048 }

// VTEP is the local VxLAN tunnel endpoint.
type VTEP struct {
	// Address is the local VTEP's IPv4 address (on the uplink). Required.
	Address string `yaml:"address"`
	// Port is the UDP destination port of VxLAN (default 4789).
	Port int `yaml:"port"`
	// ReservedBits says what to do with a VxLAN header whose reserved bits
	// are set: "ignore" (RFC 7348: receivers ignore them) or "drop".
	ReservedBits ReservedPolicy `yaml:"reserved_bits"`
	// PartialChecksum says what to do with a frame whose outer UDP
	// checksum field holds only the pseudo-header sum (a sender's
	// transmit checksum offload that nothing on a virtual wire
	// completed): "accept" (default, as the kernel does; counted) or
	// "drop" (counted as a drop).
	PartialChecksum PartialPolicy `yaml:"partial_checksum"`
	// SourcePorts is the range of outer UDP source ports, "LOW-HIGH"; the
	// inner flow's hash picks one (RFC 7348 §5). Default 49152-65535.
	SourcePorts string `yaml:"source_ports"`
	// TTL of the outer IPv4 header, 1..255; 0 (the default) means 64.
	TTL int `yaml:"ttl"`
	// Transmit is the encap transmit path: "socket" (kernel UDP sockets,
	// one sendmsg with UDP segmentation offload per run of a flow's
	// frames), "af_xdp" (AF_XDP transmit on the uplink's first queue),
	// "tunnel" (each frame or TSO super-frame read from the device is
	// written, behind its outer headers, as one UDP-tunnel GSO packet
	// into a transmit TAP whose ingress redirects to the uplink; Linux
	// 6.17+, networks with a TAP device only) or "auto" (the default:
	// tunnel where the kernel supports it and every network is a TAP,
	// otherwise socket; the daemon logs which).
	Transmit Transmit `yaml:"transmit"`
	// TransmitRPS (tunnel path) is receive packet steering for the UDP
	// flows mflow writes into the transmit TAP: each of their packets
	// (a datagram or a merged run of them, with its redirect to the
	// uplink, its segmentation and whatever the kernel runs behind the
	// uplink) goes to the backlog of a CPU picked by its outer flow hash,
	// and the write returns; a flow keeps one CPU and its order. Other
	// flows (TCP among them) are written inline, as without it. "auto"
	// (the default) takes every CPU that steering.cpus does not give to
	// mflow's threads, and logs a warning and goes on where the kernel's
	// sysfs is not writable; "off"; or a CPU list such as "2-7,10" (then
	// a failure to set it stops the start). See docs/OPERATIONS.md §13.
	TransmitRPS string `yaml:"transmit_rps"`
	// UDPChecksum says whether encapsulated frames carry an outer UDP
	// checksum. Unset: none on the af_xdp and tunnel paths (as the kernel's VxLAN
	// device with its default noudpcsum), and one on the socket path,
	// where the kernel's UDP segmentation offload requires it (it is
	// then left to the NIC's checksum offload). false with transmit:
	// socket is refused for that reason; true makes the af_xdp path
	// compute it in software and the tunnel path have the kernel
	// compute it per segment.
	UDPChecksum *bool `yaml:"udp_checksum"`
}

// OuterUDPChecksum reports whether encapsulated frames get an outer UDP
// checksum under this VTEP's settings (see UDPChecksum); with transmit
// auto it answers for the tunnel path (the socket path always sends one).
func (v VTEP) OuterUDPChecksum() bool {
	if v.UDPChecksum != nil {
		return *v.UDPChecksum
	}
	return v.Transmit == TransmitSocket
}

// DefaultSourcePorts is the outer UDP source port range when the config
// names none: the dynamic ports (RFC 6335), as RFC 7348 recommends.
const DefaultSourcePorts = "49152-65535"

// SourcePortRange returns the bounds of SourcePorts; ok is false when it
// does not parse as "LOW-HIGH" with 1 <= LOW <= HIGH <= 65535.
func (v VTEP) SourcePortRange() (lo, hi uint16, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(v.SourcePorts), "-")
	if !found {
		return 0, 0, false
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(a))
	h, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return 0, 0, false
	}
	return uint16(l), uint16(h), true
}

// Transmit is a VTEP's encap transmit path.
type Transmit string

// Encap transmit paths.
const (
	TransmitSocket Transmit = "socket"
	TransmitAFXDP  Transmit = "af_xdp"
	TransmitTunnel Transmit = "tunnel"
	TransmitAuto   Transmit = "auto"
	// DefaultTransmit is the transmit path when the config names none.
	DefaultTransmit = TransmitAuto
)

// Network is one VNI and the local device its frames are delivered to.
type Network struct {
	// VNI is the 24-bit VxLAN network identifier.
	VNI int64 `yaml:"vni"`
	// Device is the local sink/source of the network's inner frames.
	Device Device `yaml:"device"`
	// Peers are the remote VTEPs accepted from and flooded to (IPv4).
	Peers []string `yaml:"peers"`
	// FDB are static forwarding entries: frames to MAC go to VTEP (one of
	// Peers) without flooding, whatever learning hears (like `bridge fdb
	// append … dst … static` on a kernel VxLAN device). Optional.
	FDB []FDBEntry `yaml:"fdb,omitempty"`
}

// FDBEntry is a static forwarding entry of a network.
type FDBEntry struct {
	// MAC is a unicast inner MAC address, e.g. "02:42:0a:2a:00:05".
	MAC string `yaml:"mac"`
	// VTEP is the remote VTEP behind MAC; it must be one of the network's
	// peers.
	VTEP string `yaml:"vtep"`
}

// HardwareAddr returns the entry's MAC; it is valid after Validate
// succeeded.
func (e FDBEntry) HardwareAddr() [6]byte {
	var a [6]byte
	if m, err := net.ParseMAC(e.MAC); err == nil && len(m) == 6 {
		copy(a[:], m)
	}
	return a
}

// Addr returns the entry's VTEP; it is valid after Validate succeeded.
func (e FDBEntry) Addr() netip.Addr {
	a, _ := netip.ParseAddr(e.VTEP)
	return a.Unmap()
}

// Device is a network's local device.
type Device struct {
	// Type is the device kind: "tap" (created or adopted by mflow) or "veth"
	// (one end of an existing veth pair, served with AF_XDP: frames for
	// the containers are transmitted into it, frames from them are
	// redirected to mflow by an XDP program on it).
	Type DeviceType `yaml:"type"`
	// Name is the interface name (at most 15 bytes). Required.
	Name string `yaml:"name"`
	// Bridge, when set, is the bridge the device is attached to; for a
	// veth, the bridge its peer end is attached to (the peer must then be
	// in the same namespace).
	Bridge string `yaml:"bridge,omitempty"`
	// MTU is the device (inner) MTU; 0 or absent means 1450. It must not
	// exceed the uplink MTU minus Overhead (checked by CheckHost).
	MTU int `yaml:"mtu"`
	// QueueLen (tap only) is the TAP's txqueuelen: how many frames from
	// the containers the kernel holds on each queue until mflow reads
	// them; beyond it the kernel drops them (mflow_device_kernel_drops).
	// 0 or absent means 8192 (the kernel's default is 1000, which a
	// sender's burst overflows while the encap loop waits for a CPU:
	// docs/OPERATIONS.md). Range 64..65536.
	QueueLen int `yaml:"queue_len,omitempty"`
}

// Device queue lengths (Device.QueueLen).
const (
	DefaultDeviceQueueLen = 8192
	MinDeviceQueueLen     = 64
	MaxDeviceQueueLen     = 65536
)

// TAPQueueLen is QueueLen with its default.
func (d Device) TAPQueueLen() int {
	if d.QueueLen == 0 {
		return DefaultDeviceQueueLen
	}
	return d.QueueLen
}

// Steering chooses how received packets are spread over workers.
type Steering struct {
	// Policy is one of single, flow, pipeline, microflow
	// (docs/ARCHITECTURE.md §4).
	Policy Policy `yaml:"policy"`
	// Batch is the micro-flow length in packets (microflow) and the
	// largest batch any stage handles.
	Batch int `yaml:"batch"`
	// Workers is the number of worker goroutines. The default is a fixed 2
	// (not derived from the CPU count, so that the same file behaves the
	// same on every host); policy single always uses one worker.
	Workers int `yaml:"workers"`
	// CPUs optionally pins the dispatcher and the workers of the first
	// uplink queue's engine to CPUs (the other queues' engines stay
	// unpinned).
	CPUs *CPUs `yaml:"cpus,omitempty"`
	// SpinMicros is how long, in microseconds, a thread that receives
	// (from an uplink queue's AF_XDP socket, from a TAP) keeps retrying,
	// yielding the CPU between tries, after it found nothing, before it
	// sleeps in the kernel: a packet that comes within that time is taken
	// without a wake-up. 0 turns it off (always off on a 1-CPU host).
	// Default 500; up to 10000. See docs/OPERATIONS.md §10 for its CPU
	// cost.
	SpinMicros int `yaml:"spin_us"`
	// Inline (policy microflow): a batch of at most this many frames,
	// read while nothing is in flight, is processed and written on the
	// receiving goroutine, with no hand-off to a worker and the merger
	// (order is kept: nothing else is in flight). 0 always hands off.
	// Default 16; at most batch.
	Inline *int `yaml:"inline"`
	// TapQueues is the number of queues of each TAP mflow creates, each
	// read by its own encap loop (the kernel picks a frame's queue by a
	// hash of its inner IPv4 addresses and ports, so a flow stays on one
	// queue and in order): flows from the containers are encapsulated in
	// parallel. Used on the tunnel transmit path (the others have one loop
	// per network);
	// 0, the default, means the number of CPUs, at most 4; up to 16.
	TapQueues int `yaml:"tap_queues"`
	// TapRPS is receive packet steering on mflow's TAPs: the CPUs whose
	// backlogs take the frames mflow writes, picked per frame by its flow
	// hash (so a flow keeps one CPU and its order). The bridge, the veth
	// and the container's stack then run on those CPUs instead of inside
	// mflow's write, which returns after an enqueue. "off" (the default)
	// leaves RPS as it is (the kernel's default: off); "auto" takes every
	// CPU that steering.cpus does not give to mflow's threads; or a CPU
	// list such as "2-7,10". See docs/OPERATIONS.md for its cost.
	TapRPS string `yaml:"tap_rps"`
}

// TapRPSCPUs returns the CPUs of steering.tap_rps (nil: off); avail are
// the CPUs mflow may run on (rpsCPUs).
func (s Steering) TapRPSCPUs(avail []int) ([]int, error) {
	return rpsCPUs(s.TapRPS, RPSOff, avail, s.CPUs)
}

// TransmitRPSCPUs returns the CPUs of vtep.transmit_rps (nil: off); avail
// are the CPUs mflow may run on (rpsCPUs).
func (c *Config) TransmitRPSCPUs(avail []int) ([]int, error) {
	return rpsCPUs(c.VTEP.TransmitRPS, RPSAuto, avail, c.Steering.CPUs)
}

// rpsCPUs returns the CPUs of an RPS setting v (def when empty; nil:
// off). auto takes the CPUs of avail that pinned does not give to mflow's
// dispatcher and workers; auto with fewer than two CPUs available, or
// with none left, is off. avail nil only checks the syntax.
func rpsCPUs(v, def string, avail []int, pinned *CPUs) ([]int, error) {
	if v == "" {
		v = def
	}
	switch v {
	case RPSOff:
		return nil, nil
	case RPSAuto:
		if len(avail) < 2 {
			return nil, nil
		}
		taken := map[int]bool{}
		if pinned != nil {
			if pinned.Dispatcher != nil {
				taken[*pinned.Dispatcher] = true
			}
			for _, c := range pinned.Workers {
				taken[c] = true
			}
			for _, c := range pinned.Encap {
				taken[c] = true
			}
		}
		var out []int
		for _, c := range avail {
			if !taken[c] {
				out = append(out, c)
			}
		}
		return out, nil
	}
	return ParseCPUList(v)
}

// Values of steering.tap_rps and vtep.transmit_rps besides a CPU list.
const (
	RPSOff  = "off"
	RPSAuto = "auto"
)

// MaxCPU bounds the CPU numbers of a CPU list.
const MaxCPU = 4095

// ParseCPUList parses a CPU list in the kernel's form ("0-3,8,10-11"):
// ascending, without repeats. It returns the CPUs in order.
func ParseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b > MaxCPU {
			return nil, fmt.Errorf("%q is not a CPU list (such as 0-3,8; CPUs 0..%d)", s, MaxCPU)
		}
		if len(out) > 0 && a <= out[len(out)-1] {
			return nil, fmt.Errorf("%q lists CPU %d out of order or twice", s, a)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// CPUMask formats cpus as the kernel's hexadecimal CPU mask (rps_cpus):
// 32-bit words, most significant first, separated by commas ("1,00000003"
// for CPUs 0, 1 and 32); "0" for none.
func CPUMask(cpus []int) string {
	if len(cpus) == 0 {
		return "0"
	}
	words := make([]uint32, slices.Max(cpus)/32+1)
	for _, c := range cpus {
		words[c/32] |= 1 << (c % 32)
	}
	var b strings.Builder
	for i := len(words) - 1; i >= 0; i-- {
		if i == len(words)-1 {
			fmt.Fprintf(&b, "%x", words[i])
		} else {
			fmt.Fprintf(&b, ",%08x", words[i])
		}
	}
	return b.String()
}

// MaxTapQueues bounds steering.tap_queues.
const MaxTapQueues = 16

// TapQueueCount is TapQueues with its default.
func (s Steering) TapQueueCount() int {
	if s.TapQueues > 0 {
		return s.TapQueues
	}
	return min(runtime.NumCPU(), 4)
}

// InlineFrames is Inline with its default (DefaultInline, or batch when
// that is smaller).
func (s Steering) InlineFrames() int {
	if s.Inline != nil {
		return *s.Inline
	}
	return min(DefaultInline, s.Batch)
}

// Spin is SpinMicros as a duration, 0 on a host with one CPU.
func (s Steering) Spin() time.Duration {
	if runtime.NumCPU() < 2 {
		return 0
	}
	return time.Duration(s.SpinMicros) * time.Microsecond
}

// CPUs pins goroutines to CPUs (optional; nil fields mean "not pinned").
type CPUs struct {
	// Dispatcher is the CPU of the dispatcher goroutine, if pinned.
	Dispatcher *int `yaml:"dispatcher,omitempty"`
	// Workers lists one CPU per worker, if pinned; its length must equal
	// steering.workers.
	Workers []int `yaml:"workers,omitempty"`
	// Encap lists the CPUs of the encap loops, if pinned: loop k (one
	// per TAP queue on the tunnel transmit path, else one per network)
	// runs on Encap[k mod len]. A loop that is not pinned is woken by
	// the sending container's CPU, and Linux often runs it there, behind
	// the sender (docs/OPERATIONS.md §11).
	Encap []int `yaml:"encap,omitempty"`
}

// FDB limits learning in the forwarding database (inner MAC → remote
// VTEP), so that a flood of new source MACs from a peer costs bounded
// memory and time. A station that is not learned still has its frames
// delivered; frames to it are flooded to the network's peers.
type FDB struct {
	// MaxLearned is the most learned stations per network (VNI), like a
	// bridge's maxaddress (default 4096; 0: no limit).
	MaxLearned int `yaml:"max_learned"`
	// LearnRate is the most new or moved stations learned per second from
	// one remote VTEP (default 1000; 0: no limit).
	LearnRate int `yaml:"learn_rate"`
}

// Defaults of the FDB section.
const (
	DefaultFDBMaxLearned = 4096
	DefaultFDBLearnRate  = 1000
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is the ip:port of the /metrics endpoint (default
	// 127.0.0.1:9469, loopback). An explicit empty string disables it.
	Listen string `yaml:"listen"`
}

// Log configures the daemon's structured log (log/slog).
type Log struct {
	// Level is one of debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// XDPMode is how the XDP program is attached to the uplink.
type XDPMode string

// XDP attach modes.
const (
	XDPAuto    XDPMode = "auto"    // native if the driver supports it, else generic
	XDPNative  XDPMode = "native"  // driver mode; fail if unsupported
	XDPGeneric XDPMode = "generic" // skb mode; always available, slow
)

// Policy is a steering policy (docs/ARCHITECTURE.md §4).
type Policy string

// Steering policies.
const (
	PolicySingle    Policy = "single"
	PolicyFlow      Policy = "flow"
	PolicyPipeline  Policy = "pipeline"
	PolicyMicroflow Policy = "microflow"
)

// ReservedPolicy is the treatment of VxLAN headers with reserved bits set.
type ReservedPolicy string

// Reserved-bits policies.
const (
	ReservedIgnore ReservedPolicy = "ignore"
	ReservedDrop   ReservedPolicy = "drop"
)

// PartialPolicy is the treatment of partial outer UDP checksums.
type PartialPolicy string

// Partial-checksum policies.
const (
	PartialAccept PartialPolicy = "accept"
	PartialDrop   PartialPolicy = "drop"
	// DefaultPartialChecksum is the policy when the config names none.
	DefaultPartialChecksum = PartialAccept
)

// DeviceType is the kind of a network's local device.
type DeviceType string

// Device types.
const (
	DeviceTAP  DeviceType = "tap"
	DeviceVeth DeviceType = "veth"
)

// Queues is the set of uplink receive queues: all of them (All) or the
// listed ones. In YAML it is the word "all" or a list of queue numbers.
// The zero value (neither All nor a list) does not validate; Default sets
// All.
type Queues struct {
	All  bool
	List []int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (q *Queues) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" && n.Value == "all" {
			*q = Queues{All: true}
			return nil
		}
		return fmt.Errorf("line %d: uplink.queues: want \"all\" or a list of queue numbers, got %q", n.Line, n.Value)
	case yaml.SequenceNode:
		list := make([]int, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := strconv.Atoi(c.Value)
			if c.Kind != yaml.ScalarNode || c.Tag != "!!int" || err != nil {
				return fmt.Errorf("line %d: uplink.queues: queue number %q is not an integer", c.Line, c.Value)
			}
			list = append(list, v)
		}
		*q = Queues{List: list}
		return nil
	}
	return fmt.Errorf("line %d: uplink.queues: want \"all\" or a list of queue numbers", n.Line)
}

// MarshalYAML implements yaml.Marshaler.
func (q Queues) MarshalYAML() (any, error) {
	if q.All || len(q.List) == 0 {
		return "all", nil
	}
	return q.List, nil
}

// Default returns a configuration with every default set and no uplink,
// VTEP address or networks (so it does not validate until those are set).
func Default() *Config {
	return &Config{
		Uplink:   Uplink{Queues: Queues{All: true}, XDPMode: DefaultXDPMode, RxRing: DefaultRxRing},
		VTEP:     VTEP{Port: DefaultPort, ReservedBits: DefaultReservedBits, PartialChecksum: DefaultPartialChecksum, Transmit: DefaultTransmit, SourcePorts: DefaultSourcePorts, TransmitRPS: RPSAuto},
		Steering: Steering{Policy: DefaultPolicy, Batch: DefaultBatch, Workers: DefaultWorkers, SpinMicros: DefaultSpinMicros, TapRPS: RPSOff},
		FDB:      FDB{MaxLearned: DefaultFDBMaxLearned, LearnRate: DefaultFDBLearnRate},
		Metrics:  Metrics{Listen: DefaultMetricsAddr},
		Log:      Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
	}
}

// Load reads and parses the configuration file at path (see Parse).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes one YAML document strictly, applies the defaults and runs
// Validate. Errors name the line and the field path (for a syntax error,
// the line only); they wrap ErrInvalid.
func Parse(data []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, cleanYAMLError(err, data))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: line %d: more than one YAML document", ErrInvalid, extra.Line)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil { // cannot fail after Decode succeeded
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.root = &root
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Messages of the YAML decoder that name a line: an unknown key, and a
// value of the wrong type (the value is cut to 7 bytes and "..." when long).
var (
	lineMsg      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	wrongType    = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into ")
)

// cleanYAMLError drops the "yaml: " prefixes of the decoder's messages,
// rewords unknown keys, and adds the field path after the line number when
// the node the message is about can be found.
func cleanYAMLError(err error, data []byte) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var root yaml.Node
	haveRoot := yaml.Unmarshal(data, &root) == nil
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		sub := lineMsg.FindStringSubmatch(m)
		if sub == nil {
			msgs[i] = m
			continue
		}
		line, _ := strconv.Atoi(sub[1])
		rest := sub[2]
		var path string
		if u := unknownField.FindStringSubmatch(rest); u != nil {
			rest = fmt.Sprintf("unknown key %q", u[1])
			if haveRoot {
				path = findPath(&root, line, u[1], "", "")
			}
		} else if w := wrongType.FindStringSubmatch(rest); w != nil && haveRoot {
			path = findPath(&root, line, "", w[1], w[2])
		}
		if path != "" {
			msgs[i] = fmt.Sprintf("line %d: %s: %s", line, path, rest)
		} else {
			msgs[i] = fmt.Sprintf("line %d: %s", line, rest)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// findPath returns the path ("a.b[2].c") of the node on line that is
// either the mapping key named key, or a value with the given tag whose
// value starts with value (value may end in "..."); "" if none is found.
func findPath(root *yaml.Node, line int, key, tag, value string) string {
	value = strings.TrimSuffix(value, "...")
	match := func(n *yaml.Node) bool {
		return n.Line == line && key == "" && n.Tag == tag && strings.HasPrefix(n.Value, value)
	}
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if key != "" && k.Line == line && k.Value == key {
					return p
				}
				if q := walk(v, p); q != "" { // the deepest match wins
					return q
				}
				if match(v) {
					return p
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if q := walk(c, p); q != "" {
					return q
				}
				if match(c) {
					return p
				}
			}
		}
		return ""
	}
	return walk(root, "")
}

// applyDefaults fills the per-element defaults that cannot be preset before
// decoding (list elements are created by the decoder).
func (c *Config) applyDefaults() {
	for i := range c.Networks {
		d := &c.Networks[i].Device
		if d.Type == "" {
			d.Type = DefaultDeviceType
		}
		if d.MTU == 0 {
			d.MTU = DefaultDeviceMTU
		}
		if d.Type == DeviceTAP && d.QueueLen == 0 {
			d.QueueLen = DefaultDeviceQueueLen
		}
	}
}

// Effective returns the configuration with every default filled in, as YAML.
func (c *Config) Effective() string {
	cc := *c
	cc.Networks = append([]Network(nil), c.Networks...)
	cc.applyDefaults()
	// Keys whose default depends on others print their effective value.
	cc.VTEP.UDPChecksum, cc.Steering.Inline = ptr(cc.VTEP.OuterUDPChecksum()), ptr(cc.Steering.InlineFrames())
	if c.VTEP.UDPChecksum == nil && cc.VTEP.Transmit == TransmitAuto {
		cc.VTEP.UDPChecksum = nil // as the path the daemon picks
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&cc); err != nil { // only plain types: cannot happen
		return "# marshalling config: " + err.Error() + "\n"
	}
	enc.Close()
	return b.String()
}

func ptr[T any](v T) *T { return &v }

// String returns Effective().
func (c *Config) String() string { return c.Effective() }

// Addr returns the VTEP address; it is valid after Validate succeeded.
func (v VTEP) Addr() netip.Addr {
	a, _ := netip.ParseAddr(v.Address)
	return a
}

// PeerAddrs returns the parsed peer addresses; they are valid after
// Validate succeeded.
func (n Network) PeerAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(n.Peers))
	for _, p := range n.Peers {
		a, err := netip.ParseAddr(p)
		if err == nil {
			out = append(out, a)
		}
	}
	return out
}

// VNI24 returns the VNI as a uint32; it is in range after Validate
// succeeded.
func (n Network) VNI24() uint32 { return uint32(n.VNI) & MaxVNI }

// Enabled reports whether the metrics endpoint is to be served.
func (m Metrics) Enabled() bool { return m.Listen != "" }
