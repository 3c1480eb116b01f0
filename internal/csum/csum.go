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

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to the running one's-complement sum acc, 32 bytes at a time
// with carries. The result is not folded to 16 bits but is below 2^33, so
// callers may add a few small terms (a protocol number, a length) before
// Fold. An odd trailing byte is padded with a zero, so only the last piece
// of a message may have an odd length.
func Sum(b []byte, acc uint64) uint64 {
	// 2^64 ≡ 1 (mod 2^16-1): adding 64-bit words with end-around carry
	// keeps the one's-complement sum of the 16-bit words.
	s, c := acc, uint64(0)
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		s, c = bits.Add64(s, uint64(b[0])<<8, c)
	}
	s, c = bits.Add64(s, 0, c)
	s += c // c is 1 only if s wrapped to 0
	// 2^32 ≡ 1 too: fold to 33 bits.
	return s>>32 + s&0xFFFFFFFF
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
