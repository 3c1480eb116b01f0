package vxlan

import "encoding/binary"

// sum adds b to the running one's-complement sum acc (RFC 1071), eight bytes
// at a time. The result is not folded; an odd trailing byte is padded with a
// zero, so only the last chunk of a message may have an odd length.
func sum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		acc += v
		if acc < v {
			carry++
		}
		b = b[8:]
	}
	// Fold the 64-bit accumulator to 33 bits before adding the tail so the
	// additions below cannot overflow.
	acc = (acc >> 32) + (acc & 0xFFFFFFFF) + carry
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces a running sum to 16 bits with end-around carry.
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = (acc >> 16) + (acc & 0xFFFF)
	}
	return uint16(acc)
}

// pseudoIPv4 returns the sum of the IPv4 pseudo-header for a transport
// segment of the given length and protocol.
func pseudoIPv4(src, dst [4]byte, proto uint8, length int) uint64 {
	return uint64(binary.BigEndian.Uint16(src[0:2])) + uint64(binary.BigEndian.Uint16(src[2:4])) +
		uint64(binary.BigEndian.Uint16(dst[0:2])) + uint64(binary.BigEndian.Uint16(dst[2:4])) +
		uint64(proto) + uint64(length)
}

// Checksum returns the Internet checksum (RFC 1071) of b: the complement of
// the one's-complement sum of its 16-bit words.
func Checksum(b []byte) uint16 { return ^fold(sum(b, 0)) }
