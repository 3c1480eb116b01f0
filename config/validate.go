package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem with one field of the configuration.
type FieldError struct {
	// Path names the field, e.g. "networks[1].vni".
	Path string
	// Line is the line of the field's value in the YAML file (or of its
	// nearest present parent when the key is missing); 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

// Error implements error: "line 12: networks[1].vni: ...".
func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every problem that a check found. It wraps
// ErrInvalid.
type ValidationError struct {
	Errors []*FieldError
}

// Error implements error, one problem per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration: ")
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// collector gathers field errors and finds their lines.
type collector struct {
	root *yaml.Node
	errs []*FieldError
}

func (cl *collector) add(path, format string, args ...any) {
	cl.errs = append(cl.errs, &FieldError{Path: path, Line: lineOf(cl.root, path), Msg: fmt.Sprintf(format, args...)})
}

func (cl *collector) err() error {
	if len(cl.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: cl.errs}
}

// Validate runs the static checks: required fields, ranges, enums,
// addresses, duplicates and cross-field rules. It returns nil or a
// *ValidationError listing every problem. Validate expects the defaults to be
// applied (Parse and Default do); it does not modify c.
func (c *Config) Validate() error {
	cl := &collector{root: c.root}

	// uplink
	if c.Uplink.Interface == "" {
		cl.add("uplink.interface", "required")
	} else if msg := ifaceNameProblem(c.Uplink.Interface); msg != "" {
		cl.add("uplink.interface", "%s", msg)
	}
	if !c.Uplink.Queues.All {
		if len(c.Uplink.Queues.List) == 0 {
			cl.add("uplink.queues", "want \"all\" or a non-empty list of queue numbers")
		}
		seen := map[int]bool{}
		for i, q := range c.Uplink.Queues.List {
			p := fmt.Sprintf("uplink.queues[%d]", i)
			switch {
			case q < 0:
				cl.add(p, "queue %d is negative", q)
			case seen[q]:
				cl.add(p, "queue %d listed twice", q)
			}
			seen[q] = true
		}
	}
	switch c.Uplink.XDPMode {
	case XDPAuto, XDPNative, XDPGeneric:
	default:
		cl.add("uplink.xdp_mode", "%q is not one of auto, native, generic", c.Uplink.XDPMode)
	}
	if r := c.Uplink.RxRing; !ValidRxRing(r) {
		cl.add("uplink.rx_ring", "%d is not a power of two from %d to %d", r, MinRxRing, MaxRxRing)
	}

	// vtep
	vtep, vtepOK := netip.Addr{}, false
	if c.VTEP.Address == "" {
		cl.add("vtep.address", "required")
	} else if a, msg := parseUnicast4(c.VTEP.Address); msg != "" {
		cl.add("vtep.address", "%s", msg)
	} else {
		vtep, vtepOK = a, true
	}
	if c.VTEP.Port < 1 || c.VTEP.Port > 65535 {
		cl.add("vtep.port", "%d is not a UDP port (1..65535)", c.VTEP.Port)
	}
	switch c.VTEP.ReservedBits {
	case ReservedIgnore, ReservedDrop:
	default:
		cl.add("vtep.reserved_bits", "%q is not one of ignore, drop", c.VTEP.ReservedBits)
	}
	switch c.VTEP.PartialChecksum {
	case PartialAccept, PartialDrop:
	default:
		cl.add("vtep.partial_checksum", "%q is not one of accept, drop", c.VTEP.PartialChecksum)
	}
	if _, _, ok := c.VTEP.SourcePortRange(); !ok {
		cl.add("vtep.source_ports", "%q is not a port range LOW-HIGH with 1 <= LOW <= HIGH <= 65535", c.VTEP.SourcePorts)
	}
	if c.VTEP.TTL < 0 || c.VTEP.TTL > 255 {
		cl.add("vtep.ttl", "%d is not a TTL (1..255, or 0 for the default 64)", c.VTEP.TTL)
	}
	switch c.VTEP.Transmit {
	case TransmitSocket, TransmitAFXDP, TransmitTunnel, TransmitAuto:
	default:
		cl.add("vtep.transmit", "%q is not one of auto, socket, af_xdp, tunnel", c.VTEP.Transmit)
	}
	if c.VTEP.UDPChecksum != nil && !*c.VTEP.UDPChecksum && c.VTEP.Transmit == TransmitSocket {
		cl.add("vtep.udp_checksum", "false needs vtep.transmit: af_xdp or tunnel (the kernel's UDP segmentation offload, which the socket path uses, always sends a checksum)")
	}

	// networks
	if len(c.Networks) == 0 {
		cl.add("networks", "at least one network is required")
	}
	vnis := map[int64]int{}
	names := map[string]int{}
	for i, n := range c.Networks {
		p := fmt.Sprintf("networks[%d]", i)
		if n.VNI < 0 || n.VNI > MaxVNI {
			cl.add(p+".vni", "%d is outside 0..%d", n.VNI, MaxVNI)
		} else if j, dup := vnis[n.VNI]; dup {
			cl.add(p+".vni", "VNI %d is also used by networks[%d]", n.VNI, j)
		} else {
			vnis[n.VNI] = i
		}
		d := n.Device
		switch d.Type {
		case DeviceTAP, DeviceVeth:
		default:
			cl.add(p+".device.type", "%q is not one of tap, veth", d.Type)
		}
		if d.Type == DeviceVeth && c.VTEP.Transmit == TransmitTunnel {
			cl.add(p+".device.type", "veth needs vtep.transmit socket or af_xdp (the tunnel path reads super-frames from a TAP)")
		}
		if d.Type == DeviceVeth && c.VTEP.Transmit == TransmitAuto && c.VTEP.UDPChecksum != nil && !*c.VTEP.UDPChecksum {
			cl.add("vtep.udp_checksum", "false needs vtep.transmit: af_xdp with a veth network (auto takes the socket path there, which always sends a checksum)")
		}
		if d.Name == "" {
			cl.add(p+".device.name", "required")
		} else if msg := ifaceNameProblem(d.Name); msg != "" {
			cl.add(p+".device.name", "%s", msg)
		} else if j, dup := names[d.Name]; dup {
			cl.add(p+".device.name", "device %q is also used by networks[%d]", d.Name, j)
		} else if d.Name == c.Uplink.Interface {
			cl.add(p+".device.name", "device %q is the uplink", d.Name)
		} else {
			names[d.Name] = i
		}
		if d.Bridge != "" {
			if msg := ifaceNameProblem(d.Bridge); msg != "" {
				cl.add(p+".device.bridge", "%s", msg)
			} else if d.Bridge == d.Name || d.Bridge == c.Uplink.Interface {
				cl.add(p+".device.bridge", "bridge %q is the device itself or the uplink", d.Bridge)
			}
		}
		if d.MTU < MinMTU || d.MTU > MaxMTU {
			cl.add(p+".device.mtu", "%d is outside %d..%d", d.MTU, MinMTU, MaxMTU)
		}
		switch {
		case d.QueueLen != 0 && d.Type == DeviceVeth:
			cl.add(p+".device.queue_len", "applies to a tap device only")
		case d.QueueLen != 0 && (d.QueueLen < MinDeviceQueueLen || d.QueueLen > MaxDeviceQueueLen):
			cl.add(p+".device.queue_len", "%d is outside %d..%d", d.QueueLen, MinDeviceQueueLen, MaxDeviceQueueLen)
		}
		if len(n.Peers) == 0 {
			cl.add(p+".peers", "at least one peer VTEP is required")
		}
		peers := map[netip.Addr]int{}
		for k, s := range n.Peers {
			pp := fmt.Sprintf("%s.peers[%d]", p, k)
			a, msg := parseUnicast4(s)
			switch {
			case msg != "":
				cl.add(pp, "%s", msg)
			case vtepOK && a == vtep:
				cl.add(pp, "peer %s is the local VTEP address", a)
			default:
				if j, dup := peers[a]; dup {
					cl.add(pp, "peer %s is also listed as %s.peers[%d]", a, p, j)
				}
				peers[a] = k
			}
		}
		macs := map[[6]byte]int{}
		for k, e := range n.FDB {
			pp := fmt.Sprintf("%s.fdb[%d]", p, k)
			m, err := net.ParseMAC(e.MAC)
			switch {
			case err != nil || len(m) != 6:
				cl.add(pp+".mac", "%q is not a 6-byte MAC address", e.MAC)
			case m[0]&1 != 0:
				cl.add(pp+".mac", "%s is a multicast address (those are flooded to the peers)", m)
			default:
				key := [6]byte(m)
				if j, dup := macs[key]; dup {
					cl.add(pp+".mac", "%s is also listed as %s.fdb[%d]", m, p, j)
				}
				macs[key] = k
			}
			a, msg := parseUnicast4(e.VTEP)
			if msg != "" {
				cl.add(pp+".vtep", "%s", msg)
			} else if _, ok := peers[a]; !ok {
				cl.add(pp+".vtep", "%s is not one of %s.peers", a, p)
			}
		}
	}

	// steering
	switch c.Steering.Policy {
	case PolicySingle, PolicyFlow, PolicyPipeline, PolicyMicroflow:
	default:
		cl.add("steering.policy", "%q is not one of single, flow, pipeline, microflow", c.Steering.Policy)
	}
	if c.Steering.Batch < 1 || c.Steering.Batch > MaxBatch {
		cl.add("steering.batch", "%d is outside 1..%d", c.Steering.Batch, MaxBatch)
	}
	if c.Steering.Workers < 1 {
		cl.add("steering.workers", "%d is below 1", c.Steering.Workers)
	}
	if in := c.Steering.Inline; in != nil && (*in < 0 || *in > c.Steering.Batch) {
		cl.add("steering.inline", "%d is outside 0..%d (steering.batch)", *in, c.Steering.Batch)
	}
	if c.Steering.TapQueues < 0 || c.Steering.TapQueues > MaxTapQueues {
		cl.add("steering.tap_queues", "%d is outside 0..%d (0: the number of CPUs, at most 4)", c.Steering.TapQueues, MaxTapQueues)
	}
	if _, err := c.Steering.TapRPSCPUs(nil); err != nil {
		cl.add("steering.tap_rps", "%v (or off, auto)", err)
	}
	if _, err := c.TransmitRPSCPUs(nil); err != nil {
		cl.add("vtep.transmit_rps", "%v (or off, auto)", err)
	}
	if c.Steering.SpinMicros < 0 || c.Steering.SpinMicros > MaxSpinMicros {
		cl.add("steering.spin_us", "%d is outside 0..%d (microseconds)", c.Steering.SpinMicros, MaxSpinMicros)
	}
	if cp := c.Steering.CPUs; cp != nil {
		if cp.Dispatcher != nil && *cp.Dispatcher < 0 {
			cl.add("steering.cpus.dispatcher", "CPU %d is negative", *cp.Dispatcher)
		}
		if len(cp.Workers) > 0 && len(cp.Workers) != c.Steering.Workers && c.Steering.Workers >= 1 {
			cl.add("steering.cpus.workers", "%d CPUs listed for %d workers", len(cp.Workers), c.Steering.Workers)
		}
		for i, cpu := range cp.Workers {
			if cpu < 0 {
				cl.add(fmt.Sprintf("steering.cpus.workers[%d]", i), "CPU %d is negative", cpu)
			}
		}
		for i, cpu := range cp.Encap {
			if cpu < 0 {
				cl.add(fmt.Sprintf("steering.cpus.encap[%d]", i), "CPU %d is negative", cpu)
			}
		}
	}

	// fdb
	if c.FDB.MaxLearned < 0 || c.FDB.MaxLearned > 1<<24 {
		cl.add("fdb.max_learned", "%d is out of range (0..16777216; 0: no limit)", c.FDB.MaxLearned)
	}
	if c.FDB.LearnRate < 0 || c.FDB.LearnRate > 1<<24 {
		cl.add("fdb.learn_rate", "%d is out of range (0..16777216; 0: no limit)", c.FDB.LearnRate)
	}

	// metrics
	if c.Metrics.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Listen); err != nil {
			cl.add("metrics.listen", "%q is not an ip:port address", c.Metrics.Listen)
		}
	}

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		cl.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		cl.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return cl.err()
}

// Host holds the facts about the host that CheckHost compares the
// configuration with. A zero field means "unknown" and skips its check.
type Host struct {
	// UplinkMTU is the uplink interface's MTU.
	UplinkMTU int
	// UplinkQueues is the uplink's number of receive (or combined) queues.
	UplinkQueues int
	// NumCPU is the number of CPUs the process may run on.
	NumCPU int
	// PossibleCPUs is the number of CPUs the kernel knows (one more than
	// the highest CPU number), which RPS lists may name even where the
	// process itself may not run.
	PossibleCPUs int
}

// CheckHost checks the configuration against facts of the host: every
// device MTU must be at most UplinkMTU minus Overhead, listed queues must
// exist, pinned CPUs must be usable and RPS lists must name CPUs that
// exist. It returns nil or a
// *ValidationError (wrapping ErrInvalid) naming the fields and lines.
func (c *Config) CheckHost(h Host) error {
	cl := &collector{root: c.root}
	if h.UplinkMTU > 0 {
		for i, n := range c.Networks {
			mtu := n.Device.MTU
			if mtu == 0 {
				mtu = DefaultDeviceMTU
			}
			if mtu > h.UplinkMTU-Overhead {
				cl.add(fmt.Sprintf("networks[%d].device.mtu", i),
					"inner MTU %d exceeds uplink %s MTU %d minus %d bytes of VxLAN overhead (max %d)",
					mtu, c.Uplink.Interface, h.UplinkMTU, Overhead, h.UplinkMTU-Overhead)
			}
		}
	}
	if h.UplinkQueues > 0 && !c.Uplink.Queues.All {
		for i, q := range c.Uplink.Queues.List {
			if q >= h.UplinkQueues {
				cl.add(fmt.Sprintf("uplink.queues[%d]", i), "queue %d does not exist (%s has %d queues)", q, c.Uplink.Interface, h.UplinkQueues)
			}
		}
	}
	if h.PossibleCPUs > 0 {
		for _, r := range []struct {
			path string
			cpus func([]int) ([]int, error)
		}{{"steering.tap_rps", c.Steering.TapRPSCPUs}, {"vtep.transmit_rps", c.TransmitRPSCPUs}} {
			if cpus, err := r.cpus(nil); err == nil && len(cpus) > 0 && cpus[len(cpus)-1] >= h.PossibleCPUs {
				cl.add(r.path, "CPU %d does not exist (the kernel has CPUs 0-%d)", cpus[len(cpus)-1], h.PossibleCPUs-1)
			}
		}
	}
	if h.NumCPU > 0 && c.Steering.CPUs != nil {
		if d := c.Steering.CPUs.Dispatcher; d != nil && *d >= h.NumCPU {
			cl.add("steering.cpus.dispatcher", "CPU %d does not exist (%d CPUs)", *d, h.NumCPU)
		}
		for i, cpu := range c.Steering.CPUs.Workers {
			if cpu >= h.NumCPU {
				cl.add(fmt.Sprintf("steering.cpus.workers[%d]", i), "CPU %d does not exist (%d CPUs)", cpu, h.NumCPU)
			}
		}
		for i, cpu := range c.Steering.CPUs.Encap {
			if cpu >= h.NumCPU {
				cl.add(fmt.Sprintf("steering.cpus.encap[%d]", i), "CPU %d does not exist (%d CPUs)", cpu, h.NumCPU)
			}
		}
	}
	return cl.err()
}

// CheckUplinkMTU is CheckHost with only the uplink MTU known.
func (c *Config) CheckUplinkMTU(mtu int) error { return c.CheckHost(Host{UplinkMTU: mtu}) }

// parseUnicast4 parses an IPv4 unicast address; msg is non-empty on error.
func parseUnicast4(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, fmt.Sprintf("%q is not an IP address", s)
	case !a.Is4():
		return a, fmt.Sprintf("%s is not an IPv4 address (IPv6 underlays are not supported yet)", s)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, fmt.Sprintf("%s is not a unicast address", s)
	}
	return a, ""
}

// ifaceNameProblem applies the kernel's rules for interface names
// (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or space.
func ifaceNameProblem(s string) string {
	switch {
	case len(s) > 15:
		return fmt.Sprintf("interface name %q is longer than 15 bytes", s)
	case s == "." || s == "..":
		return fmt.Sprintf("interface name %q is reserved", s)
	case strings.ContainsAny(s, "/: \t\n\v\f\r"):
		return fmt.Sprintf("interface name %q contains '/', ':' or white space", s)
	}
	return ""
}

// lineOf returns the line of the value at path ("a.b[2].c") in the YAML
// document root, or of the deepest node on the path that exists; 0 if root
// is nil.
func lineOf(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range splitPath(path) {
		next := step(n, seg)
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return line
}

// splitPath turns "a.b[2].c" into ["a", "b", "[2]", "c"].
func splitPath(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			switch {
			case i < 0:
				out = append(out, part)
				part = ""
			case i > 0:
				out = append(out, part[:i])
				part = part[i:]
			default:
				j := strings.IndexByte(part, ']')
				if j < 0 {
					return append(out, part)
				}
				out = append(out, part[:j+1])
				part = part[j+1:]
			}
		}
	}
	return out
}

// step follows one path segment (a mapping key or "[i]") from n.
func step(n *yaml.Node, seg string) *yaml.Node {
	if strings.HasPrefix(seg, "[") {
		i, err := strconv.Atoi(strings.Trim(seg, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == seg {
			return n.Content[i+1]
		}
	}
	return nil
}
