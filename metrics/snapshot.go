// Package metrics exports mflow's counters (docs/ARCHITECTURE.md §7) in
// the Prometheus text format and reads them back for `mflow stats`.
//
// Data flow:
//
//	dataplane counters ──SnapshotFunc──► Collector (one Snapshot per scrape)
//	   ──► prometheus.Registry ──► Server: GET /metrics on metrics.listen
//	   ──► Scrape (HTTP + expfmt text parser) ──► Families ──► Snapshot again
//	   ──► WriteTable (the `mflow stats` table, with the conservation check)
//
// The dataplane fills a Snapshot; this package knows nothing of its
// internals. Every metric of one scrape comes from one Snapshot, so the
// conservation property (received = delivered + dropped + in flight, per
// direction) holds in every scrape as long as the SnapshotFunc returns a
// consistent Snapshot; Snapshot.Check tests it.
package metrics

import (
	"fmt"
	"slices"
)

// Directions of the dataplane, used as the "direction" label.
const (
	// Decap: frames received on the uplink (AF_XDP rx), decapsulated and
	// delivered to the networks' devices.
	Decap = "decap"
	// Encap: frames read from the networks' devices, encapsulated and
	// transmitted on the uplink (AF_XDP tx).
	Encap = "encap"
)

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Drop counts the packets dropped in one direction for one reason.
type Drop struct {
	// Direction is Decap or Encap.
	Direction string
	// Reason is a stable snake_case label, e.g. "unknown_vni".
	Reason  string
	Packets uint64
}

// Flow is the packet accounting of one direction. Conservation:
// Received.Packets == Delivered.Packets + dropped + InFlight, where
// dropped sums the Snapshot's Drops of this direction.
type Flow struct {
	// Received counts the packets that entered the direction: taken from
	// the uplink's rx ring (decap) or read from a device (encap, after
	// segmentation of super-frames).
	Received Counter
	// Delivered counts the packets that left it: written to a device
	// (decap) or handed to the uplink's tx ring (encap).
	Delivered Counter
	// InFlight is the number of packets inside the stages (dispatcher,
	// workers, merger, sink queues) at the snapshot. For decap it is
	// measured, not derived: the uplink UMEM frames the stages own (less
	// those the AF_XDP encap path holds); for encap, the frames the encap
	// loops hold in their current iteration. Both are measured, not
	// derived, so that a frame mflow loses without counting shows as a
	// mismatch in Check.
	InFlight uint64
	// Window bounds how far Received and Delivered + dropped + InFlight
	// may disagree in a snapshot taken while packets move (frames
	// between being counted and changing owner: a read not yet counted,
	// a write counted before its frames are released); 0 in the final
	// snapshot, which must balance exactly.
	Window uint64
}

// Imbalance is Received − (Delivered + dropped + InFlight): 0 when
// conserved exactly, within ±Window while packets move.
func (f Flow) Imbalance(dropped uint64) int64 {
	return int64(f.Received.Packets) - int64(f.Delivered.Packets+dropped+f.InFlight)
}

// Conserved reports whether the flow balances within its Window.
func (f Flow) Conserved(dropped uint64) bool {
	d := f.Imbalance(dropped)
	return d <= int64(f.Window) && -d <= int64(f.Window)
}

// Network is the per-VNI accounting.
type Network struct {
	VNI    uint32
	Device string
	// Delivered counts decapsulated frames written to Device.
	Delivered Counter
	// Transmitted counts frames of Device encapsulated and sent.
	Transmitted Counter
	// KernelDrops counts frames from Device that the kernel dropped before
	// mflow read them: a TAP's tx_dropped (its queue to mflow was full), a
	// veth device's AF_XDP sockets' drops (rx ring full, no fill frame, a
	// queue without socket).
	KernelDrops uint64
}

// UMEM is the ownership of one AF_XDP socket's UMEM frames
// (docs/ARCHITECTURE.md §3): Free + Fill + RX + Stages + TX + Completion ==
// Size.
type UMEM struct {
	Queue      int
	Size       uint64 // frames in the UMEM
	Free       uint64 // on the dataplane's free list
	Fill       uint64 // in the fill ring
	RX         uint64 // in the rx ring
	Stages     uint64 // in flight in the stages
	TX         uint64 // in the tx ring
	Completion uint64 // in the completion ring
}

// Sum returns the frames accounted for in all states.
func (u UMEM) Sum() uint64 { return u.Free + u.Fill + u.RX + u.Stages + u.TX + u.Completion }

// XDPVerdict counts the frames the uplink's XDP program gave one verdict:
// "redirected" (to mflow's AF_XDP sockets), "not_ours" (passed to the
// kernel), "no_socket" (VxLAN for us on a queue mflow does not serve:
// passed to the kernel), "fragment" and "ip_options" (for us, but passed
// to the kernel), "peer_not_allowed" (dropped in the kernel).
type XDPVerdict struct {
	Verdict string
	Packets uint64
}

// FDB describes the forwarding database (inner MAC → remote VTEP).
type FDB struct {
	// Entries is the number of stations in it (learned and static).
	Entries uint64
	// TableFull and RateLimited count inner source MACs that were not
	// learned because their network had fdb.max_learned learned stations,
	// or their VTEP had used up fdb.learn_rate for the second. Their
	// frames were delivered; these are not drops.
	TableFull, RateLimited uint64
}

// XSK holds the kernel's statistics of one AF_XDP socket
// (XDP_STATISTICS). These packets never reached the dataplane, so they are
// not part of the conservation property.
type XSK struct {
	Queue         int
	RxDropped     uint64
	RxInvalid     uint64
	TxInvalid     uint64
	RxRingFull    uint64
	FillRingEmpty uint64
	TxRingEmpty   uint64
}

// Snapshot is a consistent copy of the dataplane's counters at one
// instant. The zero value is an idle dataplane. A Snapshot is a plain value
// and may be copied; the collector does not keep it.
type Snapshot struct {
	// Decap and Encap are the two directions' accounting.
	Decap, Encap Flow
	// Drops lists the drop counters; the pair (Direction, Reason) is
	// unique. Reasons with zero drops may be listed (so that they appear
	// in the exposition from the start) or left out.
	Drops []Drop
	// Workers[i] counts the packets processed by worker i.
	Workers []uint64
	// MicroflowsDispatched counts the batches (micro-flows) the dispatcher
	// handed to workers, empty ones included.
	MicroflowsDispatched uint64
	// InlineBatches counts the batches of those that were processed on
	// the receiving goroutine without a hand-off (steering.inline).
	InlineBatches uint64
	// MergerWaits counts the times the merger waited for the next sequence
	// number.
	MergerWaits uint64
	// PartialChecksums counts the decapsulated frames accepted although
	// their outer UDP checksum held only the pseudo-header sum (a sender's
	// transmit checksum offload; vtep.partial_checksum: accept). They are
	// not drops: each is also counted as received and delivered or
	// dropped for another reason.
	PartialChecksums uint64
	// FDB is the forwarding database's size and learning refusals.
	FDB FDB
	// XDP holds the uplink XDP program's verdict counters, counted in
	// the kernel before mflow sees a frame (optional).
	XDP []XDPVerdict
	// NeighbourOverruns counts the times the kernel dropped neighbour
	// notifications for the daemon (its socket's buffer was full); each
	// time the daemon resubscribed and re-read the neighbour table.
	NeighbourOverruns uint64
	// TransmitKernelDrops counts the packets mflow wrote into the
	// transmit TAP (tunnel path) that the kernel dropped on their way to
	// the uplink: the device's rx_dropped, for instance a CPU's backlog
	// full (net.core.netdev_max_backlog) with vtep.transmit_rps. One per
	// packet, a super-frame once. Not part of conservation: mflow counted
	// their frames as delivered when the write succeeded.
	TransmitKernelDrops uint64
	// Networks is the per-VNI accounting (optional).
	Networks []Network
	// UMEM is the frame ownership per AF_XDP socket.
	UMEM []UMEM
	// XSK is the kernel's per-socket statistics (optional).
	XSK []XSK
	// Interface and XDPMode name the uplink and the XDP attach mode in use
	// ("native", "generic"); XDPMode "" leaves mflow_xdp_mode_info out.
	Interface string
	XDPMode   string
	// Transmit is the encap transmit path in use ("tunnel", "socket",
	// "af_xdp"); "" leaves mflow_transmit_path_info out.
	Transmit string
}

// Drop reasons of frames the kernel dropped before mflow took them
// (KernelDrops). They are exported under mflow_dropped_packets_total like
// mflow's own reasons, but are not part of the conservation property: the
// frames were never received.
const (
	// ReasonXSKRxDropped: frames redirected to an uplink AF_XDP socket that
	// the kernel dropped for want of a fill frame or because they do not
	// fit one (XDP_STATISTICS rx_dropped).
	ReasonXSKRxDropped = "xsk_rx_dropped"
	// ReasonXSKRxRingFull: frames dropped because an uplink socket's rx
	// ring was full (rx_ring_full): mflow does not keep up.
	ReasonXSKRxRingFull = "xsk_rx_ring_full"
	// ReasonDeviceKernel: frames from the containers that the kernel
	// dropped in a network device's queue to mflow (Network.KernelDrops).
	ReasonDeviceKernel = "device_kernel_dropped"
)

// IsKernelDrop reports whether reason is one of KernelDrops' reasons.
func IsKernelDrop(reason string) bool {
	return reason == ReasonXSKRxDropped || reason == ReasonXSKRxRingFull || reason == ReasonDeviceKernel
}

// KernelDrops returns the drops the kernel counted before mflow received
// the frames, summed from XSK (decap: ReasonXSKRxDropped,
// ReasonXSKRxRingFull) and Networks (encap: ReasonDeviceKernel).
func (s *Snapshot) KernelDrops() []Drop {
	var rxDropped, rxFull, dev uint64
	for _, x := range s.XSK {
		rxDropped += x.RxDropped
		rxFull += x.RxRingFull
	}
	for _, n := range s.Networks {
		dev += n.KernelDrops
	}
	return []Drop{
		{Direction: Decap, Reason: ReasonXSKRxDropped, Packets: rxDropped},
		{Direction: Decap, Reason: ReasonXSKRxRingFull, Packets: rxFull},
		{Direction: Encap, Reason: ReasonDeviceKernel, Packets: dev},
	}
}

// Dropped returns the sum of the drops of direction dir (Drops, not
// KernelDrops).
func (s *Snapshot) Dropped(dir string) uint64 {
	var n uint64
	for _, d := range s.Drops {
		if d.Direction == dir {
			n += d.Packets
		}
	}
	return n
}

// Flow returns the accounting of direction dir (Decap or Encap).
func (s *Snapshot) Flow(dir string) Flow {
	if dir == Encap {
		return s.Encap
	}
	return s.Decap
}

// Check verifies the invariants of the snapshot: conservation in both
// directions (received = delivered + dropped + in flight), the UMEM
// ownership sums, and unique drop labels. It returns nil or an error naming
// the first violation.
func (s *Snapshot) Check() error {
	for _, dir := range []string{Decap, Encap} {
		f := s.Flow(dir)
		if d := s.Dropped(dir); !f.Conserved(d) {
			return fmt.Errorf("checking conservation: %s: received %d != delivered %d + dropped %d + in flight %d (off by %d, allowed ±%d while packets move)",
				dir, f.Received.Packets, f.Delivered.Packets, d, f.InFlight, f.Imbalance(d), f.Window)
		}
	}
	for _, u := range s.UMEM {
		if u.Sum() != u.Size {
			return fmt.Errorf("checking UMEM of queue %d: free %d + fill %d + rx %d + stages %d + tx %d + completion %d = %d, size %d",
				u.Queue, u.Free, u.Fill, u.RX, u.Stages, u.TX, u.Completion, u.Sum(), u.Size)
		}
	}
	seen := map[[2]string]bool{}
	for _, d := range s.Drops {
		k := [2]string{d.Direction, d.Reason}
		if seen[k] {
			return fmt.Errorf("checking drops: %s/%s listed twice", d.Direction, d.Reason)
		}
		seen[k] = true
	}
	return nil
}

// sortDrops orders drops by direction then reason (for stable output).
func sortDrops(d []Drop) {
	slices.SortFunc(d, func(a, b Drop) int {
		if a.Direction != b.Direction {
			if a.Direction < b.Direction {
				return -1
			}
			return 1
		}
		switch {
		case a.Reason < b.Reason:
			return -1
		case a.Reason > b.Reason:
			return 1
		}
		return 0
	})
}
