package vxlan

import (
	"encoding/binary"
	"math/bits"
)

// The flow hashes are a murmur3-style mix of 32-bit words: cheap, seedable
// and good enough to spread flows over workers and UDP source ports. They
// are not meant to resist an adversary who knows the seed.

func mix(h, w uint32) uint32 {
	w *= 0xcc9e2d51
	w = bits.RotateLeft32(w, 15)
	w *= 0x1b873593
	h ^= w
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

func finish(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// InnerHash hashes the flow of an inner Ethernet frame, for the outer UDP
// source port (RFC 7348 §5: the source port carries the inner flow's
// entropy). For IPv4 and IPv6 it takes the addresses, the protocol and, for
// TCP and UDP that are not IPv4 fragments, the ports; for anything else the
// MAC addresses and the EtherType. One 802.1Q or 802.1ad tag is skipped.
// Packets of one flow always hash alike; the seed changes the whole mapping.
// It never allocates and accepts any input, however short.
func InnerHash(frame []byte, seed uint32) uint32 { return flowHash(frame, seed) }

// OuterHash hashes the outer 5-tuple (addresses, protocol, ports) of an
// underlay frame, for steering with the `flow` policy. It is the same
// function as InnerHash applied to the outer headers: since a sender puts
// the inner flow's hash into the UDP source port, different inner flows
// between the same two VTEPs spread too. A frame whose headers cannot be
// read hashes by its first bytes, so malformed frames still go to some
// worker and are dropped there with a reason.
func OuterHash(frame []byte, seed uint32) uint32 { return flowHash(frame, seed) }

func flowHash(frame []byte, seed uint32) uint32 {
	if len(frame) < EthernetLen {
		h := seed
		for _, c := range frame {
			h = mix(h, uint32(c))
		}
		return finish(h ^ uint32(len(frame)))
	}
	et, l3 := network(frame)
	switch {
	case et == EtherTypeIPv4 && len(l3) >= IPv4MinLen && l3[0]>>4 == 4:
		ip := IPv4(l3)
		h := mix(seed, be32(l3[12:16]))
		h = mix(h, be32(l3[16:20]))
		proto := ip.Protocol()
		ihl := ip.HeaderLen()
		var ports uint32
		if (proto == ProtoTCP || proto == ProtoUDP) && !ip.IsFragment() && ihl >= IPv4MinLen && len(l3) >= ihl+4 {
			ports = be32(l3[ihl : ihl+4])
		}
		h = mix(h, ports)
		return finish(h ^ uint32(proto))
	case et == EtherTypeIPv6 && len(l3) >= 40:
		h := seed
		for i := 8; i < 40; i += 4 {
			h = mix(h, be32(l3[i:i+4]))
		}
		proto := l3[6]
		var ports uint32
		if (proto == ProtoTCP || proto == ProtoUDP) && len(l3) >= 44 {
			ports = be32(l3[40:44])
		}
		h = mix(h, ports)
		return finish(h ^ uint32(proto))
	default:
		h := mix(seed, be32(frame[0:4]))
		h = mix(h, be32(frame[4:8]))
		h = mix(h, be32(frame[8:12]))
		return finish(h ^ uint32(et))
	}
}

// Protocol returns the IP protocol of an Ethernet frame behind at most
// one VLAN tag: IPv4's protocol field (in every fragment), IPv6's first
// next header, or, behind a fragment header, the one it names (so that
// every fragment of a UDP datagram reads UDP, as in IPv4); ok is false
// for a frame that is not IP or too short.
func Protocol(frame []byte) (proto uint8, ok bool) {
	if len(frame) < EthernetLen {
		return 0, false
	}
	et, l3 := network(frame)
	switch {
	case et == EtherTypeIPv4 && len(l3) >= IPv4MinLen && l3[0]>>4 == 4:
		return IPv4(l3).Protocol(), true
	case et == EtherTypeIPv6 && len(l3) >= 40:
		if l3[6] == ipv6Fragment {
			if len(l3) < 48 {
				return 0, false
			}
			return l3[40], true
		}
		return l3[6], true
	}
	return 0, false
}

// ipv6Fragment is the next-header value of IPv6's fragment header.
const ipv6Fragment = 44

// network returns the EtherType of a frame of at least EthernetLen bytes
// and what follows its Ethernet header, behind at most one VLAN tag.
func network(frame []byte) (et uint16, l3 []byte) {
	et = binary.BigEndian.Uint16(frame[12:14])
	if (et == EtherTypeVLAN || et == EtherTypeQinQ) && len(frame) >= EthernetLen+VLANTagLen {
		return binary.BigEndian.Uint16(frame[16:18]), frame[EthernetLen+VLANTagLen:]
	}
	return et, frame[EthernetLen:]
}
