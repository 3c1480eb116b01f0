// Package vxlan is mflow's wire format: zero-allocation views of the outer
// headers of a VxLAN frame, the decapsulation verdict, encapsulation into
// headroom, the flow hashes used for steering and for the UDP source port,
// and the forwarding database (FDB) that maps an inner MAC to a remote VTEP.
//
// A VxLAN frame on the underlay (RFC 7348 §5) is
//
//	outer Ethernet (14, or 18 with one 802.1Q tag)
//	outer IPv4     (20..60, DF set by us, never a fragment)
//	outer UDP      (8, destination port 4789 by default)
//	VxLAN          (8, below)
//	inner Ethernet frame (14 or more; no FCS)
//
// and the VxLAN header, as drawn in RFC 7348 §5, is
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The I flag must be 1 for a valid VNI; every R bit is reserved, sent as zero
// and, by the RFC, ignored on receipt. The kernel's vxlan driver instead
// drops a frame whose reserved bits are set (unless an extension such as GBP
// claims them); [ReservedPolicy] offers both behaviours.
//
// Data flow: the AF_XDP receive path hands each frame to [Decoder.Decap],
// which validates every outer header once and returns the inner frame as a
// sub-slice of the input together with the VNI, the outer source address (the
// remote VTEP) and a [Reason]: [Deliver], or the reason for a drop. Nothing is
// copied and nothing is allocated. The transmit path reserves [Overhead] bytes
// of headroom in front of each inner frame and [Encoder.Encap] writes the
// outer headers there.
//
// The header views ([Ethernet], [IPv4], [UDP], [Header]) are byte slices with
// accessors in the style of gVisor's header package: they do no bounds
// checking beyond Go's own, so call them only on slices already known to be
// long enough (Decap does that once, up front).
package vxlan
