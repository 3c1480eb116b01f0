package vxlan

import (
	"encoding/binary"

	"mflow/internal/csum"
)

// Lengths of the fixed headers, in bytes.
const (
	EthernetLen = 14 // destination, source, EtherType
	VLANTagLen  = 4  // one 802.1Q tag
	IPv4MinLen  = 20 // IPv4 header without options
	UDPLen      = 8  // UDP header
	HeaderLen   = 8  // VxLAN header
	// Overhead is what encapsulation adds in front of the inner frame:
	// outer Ethernet, IPv4 without options, UDP and VxLAN. It is also the
	// headroom Encap needs.
	Overhead = EthernetLen + IPv4MinLen + UDPLen + HeaderLen
)

// EtherTypes and protocol numbers used by the package.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86DD
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100 // 802.1Q
	EtherTypeQinQ = 0x88A8 // 802.1ad service tag
	ProtoTCP      = 6
	ProtoUDP      = 17
	// DefaultPort is the IANA-assigned VxLAN UDP port (RFC 7348 §5).
	DefaultPort = 4789
)

// Ethernet is a view of an Ethernet II header (no FCS). The slice must be at
// least EthernetLen bytes long (EthernetLen+VLANTagLen to read a tag).
type Ethernet []byte

// Dst returns the destination MAC address.
func (e Ethernet) Dst() [6]byte { return [6]byte(e[0:6]) }

// Src returns the source MAC address.
func (e Ethernet) Src() [6]byte { return [6]byte(e[6:12]) }

// EtherType returns the EtherType field right after the addresses; for a
// tagged frame that is the tag protocol identifier (0x8100 or 0x88A8).
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// Tagged reports whether the frame carries an 802.1Q or 802.1ad tag.
func (e Ethernet) Tagged() bool {
	t := e.EtherType()
	return t == EtherTypeVLAN || t == EtherTypeQinQ
}

// VLANID returns the 12-bit VLAN identifier of a tagged frame.
func (e Ethernet) VLANID() uint16 { return binary.BigEndian.Uint16(e[14:16]) & 0x0FFF }

// InnerType returns the EtherType that follows one tag of a tagged frame.
func (e Ethernet) InnerType() uint16 { return binary.BigEndian.Uint16(e[16:18]) }

// IPv4 is a view of an IPv4 header. Call accessors only once the slice is
// known to hold IHL()*4 bytes (and at least IPv4MinLen for IHL itself).
type IPv4 []byte

// IPv4 flag bits in the flags/fragment-offset field.
const (
	ipv4DF         = 0x4000
	ipv4MF         = 0x2000
	ipv4OffsetMask = 0x1FFF
)

// Version returns the IP version field (4 for IPv4).
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen returns the header length in bytes (IHL × 4).
func (h IPv4) HeaderLen() int { return int(h[0]&0x0F) * 4 }

// TotalLen returns the total length field: header plus payload.
func (h IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(h[2:4])) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// DF reports whether the don't-fragment bit is set.
func (h IPv4) DF() bool { return binary.BigEndian.Uint16(h[6:8])&ipv4DF != 0 }

// MF reports whether the more-fragments bit is set.
func (h IPv4) MF() bool { return binary.BigEndian.Uint16(h[6:8])&ipv4MF != 0 }

// FragOffset returns the fragment offset in 8-byte units.
func (h IPv4) FragOffset() uint16 { return binary.BigEndian.Uint16(h[6:8]) & ipv4OffsetMask }

// IsFragment reports whether the datagram is a fragment (MF set or a
// non-zero offset).
func (h IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(h[6:8])&(ipv4MF|ipv4OffsetMask) != 0
}

// TTL returns the time-to-live field.
func (h IPv4) TTL() uint8 { return h[8] }

// Protocol returns the payload's protocol number.
func (h IPv4) Protocol() uint8 { return h[9] }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[10:12]) }

// Src returns the source address.
func (h IPv4) Src() [4]byte { return [4]byte(h[12:16]) }

// Dst returns the destination address.
func (h IPv4) Dst() [4]byte { return [4]byte(h[16:20]) }

// ChecksumValid reports whether the header checksum verifies over the
// HeaderLen() bytes of the header.
func (h IPv4) ChecksumValid() bool {
	if len(h) >= IPv4MinLen && h.HeaderLen() == IPv4MinLen {
		// The common header without options: five 32-bit words add up
		// in 64 bits without overflow (2^32 ≡ 1 mod 0xFFFF, so Fold
		// gives the 16-bit one's-complement sum).
		b := h[:IPv4MinLen]
		acc := uint64(binary.BigEndian.Uint32(b[0:])) + uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) + uint64(binary.BigEndian.Uint32(b[12:])) +
			uint64(binary.BigEndian.Uint32(b[16:]))
		return csum.Fold(acc) == 0xFFFF
	}
	return csum.Fold(csum.Sum(h[:h.HeaderLen()], 0)) == 0xFFFF
}

// SetChecksum computes and stores the header checksum.
func (h IPv4) SetChecksum() {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^csum.Fold(csum.Sum(h[:h.HeaderLen()], 0)))
}

// UDP is a view of a UDP header; the slice must hold UDPLen bytes.
type UDP []byte

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:2]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:4]) }

// Length returns the length field: header plus payload.
func (u UDP) Length() int { return int(binary.BigEndian.Uint16(u[4:6])) }

// Checksum returns the checksum field; zero means "not computed" over IPv4.
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:8]) }

// Header is a view of the 8-byte VxLAN header.
type Header []byte

// FlagI is the "valid VNI" flag in the first byte of the VxLAN header.
const FlagI = 0x08

// Flags returns the flags byte.
func (v Header) Flags() uint8 { return v[0] }

// HasI reports whether the I flag is set.
func (v Header) HasI() bool { return v[0]&FlagI != 0 }

// VNI returns the 24-bit VxLAN network identifier.
func (v Header) VNI() uint32 { return uint32(v[4])<<16 | uint32(v[5])<<8 | uint32(v[6]) }

// ReservedSet reports whether any reserved bit is set: a flag bit other than
// I, the 24 bits after the flags, or the last byte.
func (v Header) ReservedSet() bool {
	return v[0]&^FlagI != 0 || v[1]|v[2]|v[3]|v[7] != 0
}

// MaxVNI is the largest VNI that fits the 24-bit field.
const MaxVNI = 1<<24 - 1
