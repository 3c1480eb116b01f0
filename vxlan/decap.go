package vxlan

import (
	"encoding/binary"

	"mflow/internal/csum"
)

// Reason is the verdict on a received frame: Deliver, or why it is dropped.
// The set is closed: every value below NumReasons has a stable metric label from
// String, so counters can be kept in an array indexed by Reason.
type Reason uint8

// The verdicts of Decap, in the order the checks run.
const (
	// Deliver means the frame passed every check; it is not a drop.
	Deliver Reason = iota
	// DropShort: the frame, or the IPv4 payload, ends before the outer
	// Ethernet, IPv4 or UDP header it must carry.
	DropShort
	// DropNotIPv4: the outer EtherType (after at most one 802.1Q tag) is
	// not IPv4, or the IP version field is not 4.
	DropNotIPv4
	// DropBadIPv4: IHL below 5, total length shorter than the header or
	// beyond the frame, or a header checksum that does not verify.
	DropBadIPv4
	// DropFragment: the outer datagram is an IPv4 fragment; VTEPs must not
	// fragment and receivers drop fragments (RFC 7348 §4.3).
	DropFragment
	// DropNotUDP: the outer protocol is not UDP.
	DropNotUDP
	// DropPort: the UDP destination port is not the configured VxLAN port.
	DropPort
	// DropBadUDPLen: the UDP length is below the UDP header, runs past the
	// IPv4 payload, or leaves no room for the VxLAN header.
	DropBadUDPLen
	// DropUDPChecksum: a non-zero UDP checksum that does not verify (a
	// zero checksum means "not computed" and is accepted, RFC 7348 §5)
	// and is not a partial checksum either (see DropPartialCsum).
	DropUDPChecksum
	// DropPartialCsum: the UDP checksum field holds only the folded
	// pseudo-header sum, as a sender with transmit checksum offload leaves
	// it when the frame crosses a virtual wire before any hardware fills
	// it in, and the policy is PartialDrop. Under PartialAccept (the
	// default) such a frame is delivered and Decap reports
	// InfoPartialChecksum instead.
	DropPartialCsum
	// DropNoIFlag: the VxLAN I flag is clear, so the VNI is not valid.
	DropNoIFlag
	// DropReserved: a reserved VxLAN bit is set and the policy is
	// ReservedStrict.
	DropReserved
	// DropInnerShort: the inner frame is shorter than an Ethernet header.
	DropInnerShort
	// DropInnerVLAN: the inner frame carries an 802.1Q/802.1ad tag and the
	// decoder does not allow it (RFC 7348 §6.1: decapsulated frames with an
	// inner VLAN tag should be discarded unless configured otherwise).
	DropInnerVLAN
	// DropInnerSrcMAC: the inner source MAC is a multicast or broadcast
	// address, or all zeros; no station can send from it.
	DropInnerSrcMAC

	// The two reasons below are policy, not wire format: Decap never
	// returns them; the VTEP's per-network check (which VNIs exist, which
	// remote VTEPs may send to them) does.

	// DropUnknownVNI: the VNI is not one of the configured networks.
	DropUnknownVNI
	// DropPeer: the outer source is not a configured peer of the VNI.
	DropPeer

	// NumReasons is the number of verdicts, for arrays indexed by Reason.
	NumReasons
)

var reasonNames = [NumReasons]string{
	Deliver:         "deliver",
	DropShort:       "short_frame",
	DropNotIPv4:     "not_ipv4",
	DropBadIPv4:     "bad_ipv4_header",
	DropFragment:    "ipv4_fragment",
	DropNotUDP:      "not_udp",
	DropPort:        "wrong_port",
	DropBadUDPLen:   "bad_udp_length",
	DropUDPChecksum: "bad_udp_checksum",
	DropPartialCsum: "partial_udp_checksum",
	DropNoIFlag:     "no_i_flag",
	DropReserved:    "reserved_bits",
	DropInnerShort:  "short_inner_frame",
	DropInnerVLAN:   "inner_vlan_tag",
	DropInnerSrcMAC: "bad_inner_source_mac",
	DropUnknownVNI:  "unknown_vni",
	DropPeer:        "peer_not_allowed",
}

// String returns the reason's metric label, e.g. "short_frame".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// ReservedPolicy says what Decap does with reserved VxLAN header bits.
type ReservedPolicy uint8

const (
	// ReservedIgnore ignores reserved bits, as RFC 7348 §5 asks of
	// receivers. It is the zero value.
	ReservedIgnore ReservedPolicy = iota
	// ReservedStrict drops frames with any reserved bit set, as the Linux
	// vxlan driver does when no extension is enabled.
	ReservedStrict
)

// String returns "ignore" or "strict".
func (p ReservedPolicy) String() string {
	if p == ReservedStrict {
		return "strict"
	}
	return "ignore"
}

// PartialPolicy says what Decap does with a partial UDP checksum: a
// checksum field that equals the folded sum of the IPv4 pseudo-header
// alone. A sender whose kernel leaves the checksum to the device
// (CHECKSUM_PARTIAL) puts that value there, and on a virtual wire (a veth
// with transmit checksum offload, the default) nothing completes it; the
// receiving kernel trusts such a frame because the offload state travels
// with it, but AF_XDP sees only the raw field.
type PartialPolicy uint8

const (
	// PartialAccept delivers frames with a partial checksum, as the
	// kernel does on such a wire, and reports them with
	// InfoPartialChecksum. It is the zero value. A corrupted frame whose
	// checksum field happens to equal its pseudo-header sum is accepted
	// too (one value in 65536).
	PartialAccept PartialPolicy = iota
	// PartialDrop drops them as DropPartialCsum.
	PartialDrop
)

// String returns "accept" or "drop".
func (p PartialPolicy) String() string {
	if p == PartialDrop {
		return "drop"
	}
	return "accept"
}

// Info holds facts Decap reports about a frame that are not a verdict, as
// bits.
type Info uint8

const (
	// InfoPartialChecksum: the frame was delivered although its UDP
	// checksum field held only the pseudo-header sum (PartialAccept).
	InfoPartialChecksum Info = 1 << iota
	// InfoInnerPartial: the frame was delivered although the checksum of
	// the inner TCP or UDP segment is partial (only its pseudo-header
	// sum), and the outer UDP checksum verifies only once the inner one is
	// complete. A sender's kernel does this when the inner segment is
	// itself left to the device (local checksum offload, RFC 7348 has no
	// say). The caller must complete the inner checksum with
	// CompleteInnerChecksum before delivering the frame to a stack that
	// verifies it (PartialAccept).
	InfoInnerPartial
)

// Decoder validates and decapsulates VxLAN frames. The zero value is ready
// to use: port 4789, reserved bits ignored, partial UDP checksums
// accepted, inner VLAN tags dropped. A
// Decoder is never modified by Decap, so one value may be shared by any
// number of goroutines as long as nobody changes its fields meanwhile.
type Decoder struct {
	// Port is the UDP destination port of VxLAN; 0 means DefaultPort.
	Port uint16
	// Reserved is the policy for reserved header bits.
	Reserved ReservedPolicy
	// AllowInnerVLAN delivers inner frames that carry an 802.1Q tag.
	AllowInnerVLAN bool
	// Partial is the policy for partial UDP checksums.
	Partial PartialPolicy
}

// Decap validates the outer Ethernet, IPv4, UDP and VxLAN headers of frame
// and returns the inner Ethernet frame, its VNI, the outer IPv4 source (the
// sending VTEP) and the verdict. On Deliver, inner is a sub-slice of frame
// (its capacity clipped to its length) that ends where the UDP datagram ends,
// so Ethernet padding after it is not part of the inner frame. On a drop,
// inner is nil and vni and src are whatever was parsed so far.
//
// Decap never allocates, never panics on any input and does not modify frame.
func (d *Decoder) Decap(frame []byte) (inner []byte, vni uint32, src [4]byte, r Reason) {
	inner, vni, src, r, _ = d.DecapInfo(frame)
	return inner, vni, src, r
}

// DecapInfo is Decap that also returns what it noticed about a delivered
// frame (InfoPartialChecksum, InfoInnerPartial); info is zero for a
// dropped frame. A caller of plain Decap cannot tell an inner frame whose
// checksum still needs completing from any other.
func (d *Decoder) DecapInfo(frame []byte) (inner []byte, vni uint32, src [4]byte, r Reason, info Info) {
	if len(frame) < EthernetLen {
		return nil, 0, src, DropShort, 0
	}
	off := EthernetLen
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == EtherTypeVLAN {
		// One outer 802.1Q tag, as an uplink without VLAN offload
		// delivers it.
		if len(frame) < EthernetLen+VLANTagLen {
			return nil, 0, src, DropShort, 0
		}
		et = binary.BigEndian.Uint16(frame[16:18])
		off += VLANTagLen
	}
	if et != EtherTypeIPv4 {
		return nil, 0, src, DropNotIPv4, 0
	}
	if len(frame)-off < IPv4MinLen {
		return nil, 0, src, DropShort, 0
	}
	ip := IPv4(frame[off:])
	if ip.Version() != 4 {
		return nil, 0, src, DropNotIPv4, 0
	}
	ihl := ip.HeaderLen()
	total := ip.TotalLen()
	if ihl < IPv4MinLen || total < ihl || total > len(ip) {
		return nil, 0, src, DropBadIPv4, 0
	}
	if !ip.ChecksumValid() {
		return nil, 0, src, DropBadIPv4, 0
	}
	src = ip.Src()
	if ip.IsFragment() {
		return nil, 0, src, DropFragment, 0
	}
	if ip.Protocol() != ProtoUDP {
		return nil, 0, src, DropNotUDP, 0
	}
	if total-ihl < UDPLen {
		return nil, 0, src, DropShort, 0
	}
	udp := UDP(ip[ihl:total])
	port := d.Port
	if port == 0 {
		port = DefaultPort
	}
	if udp.DstPort() != port {
		return nil, 0, src, DropPort, 0
	}
	ulen := udp.Length()
	if ulen < UDPLen+HeaderLen || ulen > len(udp) {
		return nil, 0, src, DropBadUDPLen, 0
	}
	udp = udp[:ulen]
	if c := udp.Checksum(); c != 0 {
		ph := csum.PseudoIPv4(src, ip.Dst(), ProtoUDP, ulen)
		if csum.Fold(csum.Sum(udp, ph)) != 0xFFFF {
			// Not a complete checksum. A partial one is exactly the
			// folded pseudo-header sum (the kernel stores
			// ~csum_tcpudp_magic(…, 0) and leaves the rest to the
			// device); or the outer one is complete but was computed
			// for an inner checksum still to be filled in.
			switch {
			case c == csum.Fold(ph):
				info = InfoPartialChecksum
			case innerPartial(udp, ph):
				info = InfoInnerPartial
			default:
				return nil, 0, src, DropUDPChecksum, 0
			}
			if d.Partial == PartialDrop {
				return nil, 0, src, DropPartialCsum, 0
			}
		}
	}
	vx := Header(udp[UDPLen : UDPLen+HeaderLen])
	vni = vx.VNI()
	if !vx.HasI() {
		return nil, vni, src, DropNoIFlag, 0
	}
	if d.Reserved == ReservedStrict && vx.ReservedSet() {
		return nil, vni, src, DropReserved, 0
	}
	in := udp[UDPLen+HeaderLen:]
	if len(in) < EthernetLen {
		return nil, vni, src, DropInnerShort, 0
	}
	ie := Ethernet(in)
	if ie.Tagged() && !d.AllowInnerVLAN {
		return nil, vni, src, DropInnerVLAN, 0
	}
	// Multicast (including broadcast) has the I/G bit, the low bit of the
	// first octet, set.
	if in[6]&1 != 0 || in[6]|in[7]|in[8]|in[9]|in[10]|in[11] == 0 {
		return nil, vni, src, DropInnerSrcMAC, 0
	}
	return in[:len(in):len(in)], vni, src, Deliver, info
}

// InnerOffset returns where the inner frame starts in a frame that Decap
// delivered (after the outer Ethernet header with its optional VLAN tag,
// the IPv4 header with its options, UDP and VxLAN): the inner frame is
// frame[InnerOffset(frame):][:len(inner)]. For any other frame the result
// means nothing.
func InnerOffset(frame []byte) int {
	off := EthernetLen
	if Ethernet(frame).EtherType() == EtherTypeVLAN {
		off += VLANTagLen
	}
	return off + IPv4(frame[off:]).HeaderLen() + UDPLen + HeaderLen
}
