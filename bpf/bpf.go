// Package bpf holds mflow's XDP program and its loader.
//
// Data flow: every frame received on an uplink queue runs the program
// before the kernel allocates an skb. The program forwards to the AF_XDP
// socket of the receiving queue (bpf_redirect_map on an XSKMAP indexed by
// the context's rx_queue_index) exactly the frames that are
//
//	Ethernet (no VLAN tag) / IPv4 without options, not a fragment / UDP
//	to one of the configured VTEP addresses and to the configured VxLAN port
//
// and returns XDP_PASS for everything else, so ARP, ICMP, SSH, other UDP
// and IP fragments keep reaching the host's stack. When peer filtering is
// enabled, VxLAN frames from a source address that is not a configured peer
// are dropped in the kernel and counted. A matching frame on a queue that
// has no registered socket is passed to the kernel (bpf_redirect_map's
// fallback action) and counted separately, and so are IPv4 fragments of
// UDP to a VTEP address and VxLAN frames to us with IPv4 options, which
// the program also passes to the kernel. Every verdict increments a
// per-CPU counter that Counters sums.
//
// The program is written with cilium/ebpf's asm package rather than in C
// with bpf2go: it is about 120 straight-line instructions (the counter
// update is emitted once per verdict), building needs neither clang nor
// committed object files nor a regeneration step, and the VTEP addresses,
// port and peers live in maps, so Configure changes them at run time
// without reloading. Program.Run tests every verdict without a NIC.
//
// Kernel requirements: Linux 5.18 or later (bpf_link for XDP since 5.9,
// bpf_redirect_map's fallback action since 5.3, bpf_xdp_get_buff_len for
// the byte counters since 5.18).
//
// The program is attached through a bpf_link (link.AttachXDP): the kernel
// detaches it when the last reference (the process) goes away, so a crashed
// daemon never leaves a program on the interface. Modes are native, generic
// and auto (native, else generic); an explicitly requested mode never falls
// back, and Attachment.Mode reports the mode in use.
//
// The program and its maps (program.go) are built with cilium/ebpf, which
// compiles everywhere; only the XDP attach is Linux's (bpf_linux.go). On
// other systems Load fails with cilium/ebpf's "not supported" error and
// Attach with ErrUnsupported.
package bpf

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrUnsupported is returned by Attach on systems without XDP.
var ErrUnsupported = errors.New("xdp not supported on this system")

// Mode selects how the program is attached.
// The zero value is ModeAuto.
type Mode uint8

const (
	// ModeAuto tries native (driver) mode and falls back to generic mode.
	ModeAuto Mode = iota
	// ModeNative attaches in the driver's receive path, or fails.
	ModeNative
	// ModeGeneric attaches after skb allocation (works on every device).
	ModeGeneric
)

// String returns "auto", "native" or "generic".
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "auto", "native" (or "driver") and "generic" (or "skb").
// The empty string is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "native", "driver", "drv":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("parse xdp mode %q: want auto, native or generic", s)
}

// Verdict indexes the per-CPU counters of the program.
type Verdict uint32

const (
	// VerdictPass counts frames that are not ours (XDP_PASS): not UDP to
	// a VTEP address and the VxLAN port, nor one of the cases below.
	VerdictPass Verdict = iota
	// VerdictRedirect counts frames redirected to an AF_XDP socket.
	VerdictRedirect
	// VerdictNoSocket counts frames to redirect (VxLAN frames to us, or
	// every frame with Config.All) that arrived on a queue without a
	// registered socket; they are passed to the kernel.
	VerdictNoSocket
	// VerdictDropPeer counts VxLAN frames from a source that is not a
	// configured peer, dropped when peer filtering is on (XDP_DROP).
	VerdictDropPeer
	// VerdictFragment counts IPv4 fragments of UDP datagrams to one of
	// the VTEP addresses (any port: later fragments carry none); they are
	// passed to the kernel, which reassembles them (RFC 7348: VTEPs do
	// not fragment, so a peer that does is misconfigured).
	VerdictFragment
	// VerdictIPOptions counts VxLAN frames to us (VTEP address and port)
	// whose IPv4 header carries options; they are passed to the kernel.
	VerdictIPOptions
	// NumVerdicts is the number of counters.
	NumVerdicts
)

// String returns a stable snake_case label for metrics.
func (v Verdict) String() string {
	switch v {
	case VerdictPass:
		return "not_ours"
	case VerdictRedirect:
		return "redirected"
	case VerdictNoSocket:
		return "no_socket"
	case VerdictDropPeer:
		return "peer_not_allowed"
	case VerdictFragment:
		return "fragment"
	case VerdictIPOptions:
		return "ip_options"
	}
	return fmt.Sprintf("verdict(%d)", uint32(v))
}

// Counters holds the program's counters summed over all CPUs.
type Counters struct {
	Packets [NumVerdicts]uint64
	Bytes   [NumVerdicts]uint64
}

// DefaultPort is the IANA VxLAN port.
const DefaultPort = 4789

// DefaultQueues is the default size of the XSKMAP (highest queue id + 1).
const DefaultQueues = 64

// Config selects the frames that the program redirects.
// The zero value is not valid: at least one VTEP address is needed.
type Config struct {
	// VTEPs are the local IPv4 addresses that VxLAN frames are sent to.
	VTEPs []netip.Addr
	// Port is the UDP destination port; 0 means DefaultPort.
	Port uint16
	// FilterPeers enables dropping VxLAN frames whose IPv4 source is not
	// in Peers.
	FilterPeers bool
	// Peers are the remote VTEPs accepted when FilterPeers is set.
	Peers []netip.Addr
	// Queues is the XSKMAP size (highest queue id + 1); 0 means DefaultQueues.
	Queues int
	// All redirects every frame to the socket of its queue (counted as
	// VerdictRedirect, or VerdictNoSocket and passed when the queue has
	// none); VTEPs, Port and the peer filter are not used. It is the
	// program of a network's veth, whose every frame is mflow's.
	All bool
}

// Maximum numbers of VTEP and peer addresses.
const (
	MaxVTEPs = 64
	MaxPeers = 4096
)

func (c Config) validate() error {
	if len(c.VTEPs) == 0 && !c.All {
		return errors.New("validate config: no VTEP address")
	}
	if len(c.VTEPs) > MaxVTEPs {
		return fmt.Errorf("validate config: %d VTEP addresses, at most %d", len(c.VTEPs), MaxVTEPs)
	}
	if len(c.Peers) > MaxPeers {
		return fmt.Errorf("validate config: %d peers, at most %d", len(c.Peers), MaxPeers)
	}
	for _, a := range c.VTEPs {
		if !a.Unmap().Is4() {
			return fmt.Errorf("validate config: VTEP %v is not IPv4", a)
		}
	}
	for _, a := range c.Peers {
		if !a.Unmap().Is4() {
			return fmt.Errorf("validate config: peer %v is not IPv4", a)
		}
	}
	if c.Queues < 0 || c.Queues > 4096 {
		return fmt.Errorf("validate config: queues %d out of range 0..4096", c.Queues)
	}
	return nil
}
