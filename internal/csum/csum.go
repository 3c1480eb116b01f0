// Package csum computes the Internet checksum (RFC 1071) for the packages
// that build or check IPv4, UDP and TCP headers (vxlan, tap, dataplane).
//
// A checksum is computed in two steps: Sum adds bytes to a running 64-bit
// accumulator (unfolded, so several pieces such as a pseudo-header and a
// payload can be summed separately and added), and Fold reduces it to the
// 16-bit one's-complement sum. The checksum field is the complement of that.
// Everything here is a pure function: safe for concurrent use, no
// allocation.
package csum

import "encoding/binary"

// Sum adds b to the running one's-complement sum acc, eight bytes at a time.
// The result is not folded. An odd trailing byte is padded with a zero, so
// only the last piece of a message may have an odd length.
func Sum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		acc += v
		if acc < v {
			carry++
		}
		b = b[8:]
	}
	// 2^32 ≡ 1 and 2^64 ≡ 1 modulo 0xFFFF, so folding the accumulator to
	// 33 bits and adding the carries keeps the sum; the additions below
	// cannot overflow.
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

// Fold reduces a running sum to 16 bits with end-around carry.
func Fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = (acc >> 16) + (acc & 0xFFFF)
	}
	return uint16(acc)
}

// PseudoIPv4 returns the running sum of the IPv4 pseudo-header of a
// transport segment of the given protocol and length.
func PseudoIPv4(src, dst [4]byte, proto uint8, length int) uint64 {
	return uint64(binary.BigEndian.Uint16(src[0:2])) + uint64(binary.BigEndian.Uint16(src[2:4])) +
		uint64(binary.BigEndian.Uint16(dst[0:2])) + uint64(binary.BigEndian.Uint16(dst[2:4])) +
		uint64(proto) + uint64(length)
}

// Checksum returns the Internet checksum of b: the complement of the
// one's-complement sum of its 16-bit words.
func Checksum(b []byte) uint16 { return ^Fold(Sum(b, 0)) }
