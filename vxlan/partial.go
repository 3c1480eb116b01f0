package vxlan

import (
	"encoding/binary"

	"mflow/internal/csum"
)

// Partial checksums. A Linux sender leaves a checksum to the device when
// the device says it can compute it (CHECKSUM_PARTIAL): the field then holds
// the folded sum of the pseudo-header alone. A veth (and any virtual wire)
// passes such frames on with the offload state beside them, so the
// receiving kernel trusts them; AF_XDP receives only the bytes. Two shapes
// reach the uplink:
//
//   - The outer UDP checksum is partial and the inner frame complete (the
//     inner frame had no checksum to offload, e.g. ICMP or ARP): the field
//     equals Fold(pseudo-header).
//   - The inner TCP or UDP checksum is partial (it came from a socket on the
//     sender's VxLAN device): the sender computed the outer checksum in
//     software over the frame as it will be once the device fills the inner
//     one in (local checksum offload), so the outer checksum verifies only
//     after CompleteInnerChecksum.

// innerL4 finds the TCP or UDP segment of an untagged inner Ethernet/IPv4
// frame: where it starts in in, the checksum field's offset in it, and its
// pseudo-header sum. ok is false for anything else (other protocols,
// fragments, lengths that do not fit).
func innerL4(in []byte) (start, field int, ph uint64, ok bool) {
	if len(in) < EthernetLen+IPv4MinLen || Ethernet(in).EtherType() != EtherTypeIPv4 {
		return 0, 0, 0, false
	}
	ip := IPv4(in[EthernetLen:])
	ihl, total := ip.HeaderLen(), ip.TotalLen()
	if ip.Version() != 4 || ihl < IPv4MinLen || total < ihl || total > len(ip) || ip.IsFragment() {
		return 0, 0, 0, false
	}
	switch ip.Protocol() {
	case ProtoTCP:
		field = 16
	case ProtoUDP:
		field = 6
	default:
		return 0, 0, 0, false
	}
	l4 := total - ihl
	if l4 < field+2 {
		return 0, 0, 0, false
	}
	return EthernetLen + ihl, field, csum.PseudoIPv4(ip.Src(), ip.Dst(), ip.Protocol(), l4), true
}

// innerPartial reports whether the VxLAN datagram udp (outer UDP header
// onwards, clipped to the UDP length), whose outer pseudo-header sum is ph,
// carries an inner TCP or UDP segment with a partial checksum and an outer
// checksum that verifies over the frame with the inner checksum complete.
// It sums only the headers: the completed inner segment sums to the
// complement of its pseudo-header sum, whatever its payload.
func innerPartial(udp []byte, ph uint64) bool {
	in := udp[UDPLen+HeaderLen:]
	start, field, iph, ok := innerL4(in)
	if !ok {
		return false
	}
	if binary.BigEndian.Uint16(in[start+field:]) != csum.Fold(iph) {
		return false
	}
	// Both prefixes (8 + 8 + 14 + IHL bytes) have even lengths.
	acc := csum.Sum(udp[:UDPLen+HeaderLen+start], ph) + uint64(^csum.Fold(iph))
	return csum.Fold(acc) == 0xFFFF
}

// CompleteInnerChecksum fills in the TCP or UDP checksum of inner, an
// untagged Ethernet/IPv4 frame, over its pseudo-header and segment, and
// reports whether inner had such a segment (otherwise it leaves inner
// unchanged). It is what a device does to a frame with a partial checksum
// and what a caller of DecapInfo does to an inner frame reported with
// InfoInnerPartial. It does not allocate.
func CompleteInnerChecksum(inner []byte) bool {
	start, field, ph, ok := innerL4(inner)
	if !ok {
		return false
	}
	ip := IPv4(inner[EthernetLen:])
	seg := inner[start : EthernetLen+ip.TotalLen()]
	seg[field], seg[field+1] = 0, 0
	c := ^csum.Fold(csum.Sum(seg, ph))
	if c == 0 && field == 6 {
		c = 0xFFFF // UDP: a computed zero is sent as all ones (RFC 768)
	}
	binary.BigEndian.PutUint16(seg[field:], c)
	return true
}
