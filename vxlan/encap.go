package vxlan

import (
	"encoding/binary"

	"mflow/internal/csum"
)

// Remote is where an encapsulated frame goes: the remote VTEP's underlay
// address and the Ethernet address of the underlay next hop towards it.
type Remote struct {
	IP  [4]byte
	MAC [6]byte
}

// Encoder writes outer headers in front of inner frames. Configure the
// exported fields, then call Encap. The zero value is usable but sends from
// 0.0.0.0 and the zero MAC, so real senders set SrcMAC and SrcIP. An Encoder
// keeps an IPv4 identification counter, so it must not be used by two
// goroutines at once: give each worker its own copy.
type Encoder struct {
	// SrcMAC and SrcIP identify this VTEP on the underlay.
	SrcMAC [6]byte
	SrcIP  [4]byte
	// Port is the UDP destination port; 0 means DefaultPort.
	Port uint16
	// TTL of the outer IPv4 header; 0 means 64.
	TTL uint8
	// SrcPortMin and SrcPortMax bound the UDP source port chosen by
	// hashing the inner flow (RFC 7348 §5 recommends the dynamic range);
	// zero for both means 49152–65535. Equal values fix the port.
	SrcPortMin, SrcPortMax uint16
	// UDPChecksum makes Encap compute the UDP checksum over the whole
	// datagram; by default it is zero, which RFC 7348 allows over IPv4.
	UDPChecksum bool
	// Seed seeds the inner flow hash.
	Seed uint32
	// InheritTOS copies DSCP and ECN from an inner IPv4 header into the
	// outer one (InheritedTOS), as `ip link add type vxlan tos inherit`
	// does; otherwise the outer TOS is 0.
	InheritTOS bool

	id uint16 // next IPv4 identification
}

// Encap encapsulates the inner frame pkt[Overhead:] in place: it writes the
// outer Ethernet, IPv4 (DF set, TTL, identification, header checksum), UDP
// and VxLAN (I flag, vni) headers into pkt[:Overhead], the headroom the
// caller left in front of the inner frame, without moving the inner frame.
// It returns false, writing nothing, when the inner frame is shorter than an
// Ethernet header or the datagram would exceed 65535 bytes. Encap never
// allocates. The vni is truncated to 24 bits.
func (e *Encoder) Encap(pkt []byte, vni uint32, to *Remote) bool {
	if len(pkt) < Overhead+EthernetLen || len(pkt)-EthernetLen > 0xFFFF {
		return false
	}
	e.headers(pkt, vni, to)
	if e.UDPChecksum {
		udpLen := len(pkt) - EthernetLen - IPv4MinLen
		acc := csum.Sum(pkt[EthernetLen+IPv4MinLen:], csum.PseudoIPv4(e.SrcIP, to.IP, ProtoUDP, udpLen))
		c := ^csum.Fold(acc)
		if c == 0 {
			c = 0xFFFF // zero means "no checksum" (RFC 768)
		}
		binary.BigEndian.PutUint16(pkt[EthernetLen+IPv4MinLen+6:], c)
	}
	return true
}

// EncapPartial is Encap for a datagram whose UDP checksum the kernel is
// to finish (a UDP-tunnel GSO super-frame handed over with a partial
// outer checksum): with UDPChecksum set, the checksum field gets the
// folded pseudo-header sum instead of the full checksum; otherwise it is
// zero as in Encap.
func (e *Encoder) EncapPartial(pkt []byte, vni uint32, to *Remote) bool {
	if len(pkt) < Overhead+EthernetLen || len(pkt)-EthernetLen > 0xFFFF {
		return false
	}
	e.headers(pkt, vni, to)
	if e.UDPChecksum {
		udpLen := len(pkt) - EthernetLen - IPv4MinLen
		binary.BigEndian.PutUint16(pkt[EthernetLen+IPv4MinLen+6:], csum.Fold(csum.PseudoIPv4(e.SrcIP, to.IP, ProtoUDP, udpLen)))
	}
	return true
}

// headers writes the outer headers for Encap and EncapPartial, with a
// zero UDP checksum.
func (e *Encoder) headers(pkt []byte, vni uint32, to *Remote) {
	inner := pkt[Overhead:]

	eth := pkt[:EthernetLen]
	copy(eth[0:6], to.MAC[:])
	copy(eth[6:12], e.SrcMAC[:])
	binary.BigEndian.PutUint16(eth[12:14], EtherTypeIPv4)

	ipLen := len(pkt) - EthernetLen
	ip := IPv4(pkt[EthernetLen : EthernetLen+IPv4MinLen])
	ip[0] = 0x45 // version 4, IHL 5
	ip[1] = 0    // DSCP/ECN
	if e.InheritTOS {
		ip[1] = InheritedTOS(inner)
	}
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[4:6], e.id)
	e.id++
	binary.BigEndian.PutUint16(ip[6:8], ipv4DF)
	ttl := e.TTL
	if ttl == 0 {
		ttl = 64
	}
	ip[8] = ttl
	ip[9] = ProtoUDP
	copy(ip[12:16], e.SrcIP[:])
	copy(ip[16:20], to.IP[:])
	ip.SetChecksum()

	udpLen := ipLen - IPv4MinLen
	udp := pkt[EthernetLen+IPv4MinLen : EthernetLen+IPv4MinLen+UDPLen]
	binary.BigEndian.PutUint16(udp[0:2], e.srcPort(inner))
	port := e.Port
	if port == 0 {
		port = DefaultPort
	}
	binary.BigEndian.PutUint16(udp[2:4], port)
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpLen))
	udp[6], udp[7] = 0, 0

	PutHeader(pkt[EthernetLen+IPv4MinLen+UDPLen:Overhead], vni)
}

// InheritedTOS is the outer DSCP/ECN for an inner frame: the inner IPv4
// header's, CE turned into ECT(0) (RFC 6040 normal mode); 0 for anything
// else.
func InheritedTOS(inner []byte) byte {
	if len(inner) < EthernetLen+IPv4MinLen || Ethernet(inner).EtherType() != EtherTypeIPv4 {
		return 0
	}
	tos := inner[EthernetLen+1]
	if tos&3 == 3 {
		tos = tos&^3 | 2
	}
	return tos
}

// srcPort maps the inner flow's hash into [SrcPortMin, SrcPortMax].
func (e *Encoder) srcPort(inner []byte) uint16 {
	lo, hi := e.SrcPortMin, e.SrcPortMax
	if lo == 0 && hi == 0 {
		lo, hi = 49152, 65535
	}
	if hi <= lo {
		return lo
	}
	span := uint32(hi-lo) + 1
	// Multiply-shift instead of a modulo: same spread, no division.
	return lo + uint16(uint64(InnerHash(inner, e.Seed))*uint64(span)>>32)
}

// PutHeader writes a VxLAN header for vni (I flag set, reserved bits
// zero) into b[:HeaderLen]. The vni is truncated to 24 bits.
func PutHeader(b []byte, vni uint32) {
	vx := b[:HeaderLen]
	vx[0], vx[1], vx[2], vx[3] = FlagI, 0, 0, 0
	vx[4], vx[5], vx[6], vx[7] = byte(vni>>16), byte(vni>>8), byte(vni), 0
}
