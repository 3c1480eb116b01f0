package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Header sizes of the frames BuildFrame writes.
const (
	ethLen   = 14
	ipv4Len  = 20
	udpLen   = 8
	vxlanLen = 8
)

// Payload fields the generator writes, and the VxLAN port.
const (
	// SeqLen is the size of the sequence number written into each packet:
	// an unsigned 64-bit big-endian integer.
	SeqLen = 8
	// TimeLen is the size of the send timestamp: CLOCK_MONOTONIC
	// nanoseconds (bpf_ktime_get_ns), unsigned 64-bit big-endian.
	TimeLen = 8
	// VxLANPort is the IANA port of VxLAN (RFC 7348), the default outer
	// destination port.
	VxLANPort = 4789
)

// FrameSpec describes an Ethernet/IPv4/UDP frame, optionally carrying a
// VxLAN-encapsulated inner Ethernet/IPv4/UDP frame. The zero value is not
// valid (addresses are required).
type FrameSpec struct {
	SrcMAC, DstMAC   net.HardwareAddr
	SrcIP, DstIP     netip.Addr // IPv4 only
	SrcPort, DstPort uint16     // DstPort 0 means VxLANPort when Inner is set
	// VNI and Inner make the frame VxLAN: these fields describe the outer
	// headers and Inner the encapsulated frame (Inner.Size, Inner.Inner and
	// Inner.VNI are ignored).
	VNI   uint32
	Inner *FrameSpec
	// Size is the length of the whole frame in bytes (Ethernet header
	// included, FCS excluded). 0 means the smallest frame that holds the
	// headers, the sequence number and the timestamp.
	Size int
	// TTL of the IPv4 header(s); 0 means 64.
	TTL uint8
}

// Frame is a built frame and where the generator may write into it.
type Frame struct {
	// Data is the frame, from the destination MAC.
	Data []byte
	// SeqOffset is the offset of the first payload byte of the innermost
	// UDP datagram, where the 8-byte sequence number goes.
	SeqOffset int
	// TimeOffset is SeqOffset+SeqLen, where the 8-byte send timestamp goes,
	// or 0 if the payload is too short to hold both.
	TimeOffset int
	// SrcPortOffsets are the offsets of the UDP source ports, outer first;
	// writing a flow's ports there gives flows distinct 5-tuples.
	SrcPortOffsets []int
	// PayloadLen is the innermost UDP payload length (sequence number
	// included).
	PayloadLen int
}

// ErrBadSpec is wrapped by BuildFrame's errors for an invalid FrameSpec.
var ErrBadSpec = errors.New("invalid frame spec")

// BuildFrame builds the frame s describes. IPv4 header checksums are
// computed; UDP checksums are zero (see the package doc); the payload is
// zero except for the sequence number field, which is zero too.
func BuildFrame(s FrameSpec) (Frame, error) {
	hdr := ethLen + ipv4Len + udpLen
	if s.Inner != nil {
		hdr += vxlanLen + ethLen + ipv4Len + udpLen
	}
	if err := s.check(); err != nil {
		return Frame{}, err
	}
	if s.Inner != nil {
		if err := s.Inner.check(); err != nil {
			return Frame{}, fmt.Errorf("inner: %w", err)
		}
		if s.VNI >= 1<<24 {
			return Frame{}, fmt.Errorf("building frame: VNI %d: %w", s.VNI, ErrBadSpec)
		}
	}
	size := s.Size
	if size == 0 {
		size = hdr + SeqLen + TimeLen
	}
	if size < hdr+SeqLen || size > 65535 {
		return Frame{}, fmt.Errorf("building frame: size %d outside [%d, 65535]: %w", size, hdr+SeqLen, ErrBadSpec)
	}
	b := make([]byte, size)
	f := Frame{Data: b}
	dport := s.DstPort
	if dport == 0 && s.Inner != nil {
		dport = VxLANPort
	}
	off := writeHeaders(b, &s, dport, size)
	f.SrcPortOffsets = append(f.SrcPortOffsets, off-udpLen)
	if s.Inner != nil {
		b[off] = 0x08 // flags: VNI valid (RFC 7348)
		binary.BigEndian.PutUint32(b[off+4:], s.VNI<<8)
		off += vxlanLen
		off = writeHeaders(b[off:], s.Inner, s.Inner.DstPort, size-off) + off
		f.SrcPortOffsets = append(f.SrcPortOffsets, off-udpLen)
	}
	f.SeqOffset = off
	f.PayloadLen = size - off
	if f.PayloadLen >= SeqLen+TimeLen {
		f.TimeOffset = off + SeqLen
	}
	return f, nil
}

func (s *FrameSpec) check() error {
	if len(s.SrcMAC) != 6 || len(s.DstMAC) != 6 {
		return fmt.Errorf("building frame: MAC addresses must have 6 bytes: %w", ErrBadSpec)
	}
	if !s.SrcIP.Is4() || !s.DstIP.Is4() {
		return fmt.Errorf("building frame: addresses %v, %v are not IPv4: %w", s.SrcIP, s.DstIP, ErrBadSpec)
	}
	return nil
}

// writeHeaders writes Ethernet, IPv4 and UDP headers for a frame of n bytes
// at the start of b and returns the offset after them.
func writeHeaders(b []byte, s *FrameSpec, dport uint16, n int) int {
	copy(b[0:6], s.DstMAC)
	copy(b[6:12], s.SrcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-ethLen))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ttl := s.TTL
	if ttl == 0 {
		ttl = 64
	}
	ip[8] = ttl
	ip[9] = 17 // UDP
	src, dst := s.SrcIP.As4(), s.DstIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
	udp := b[ethLen+ipv4Len : ethLen+ipv4Len+udpLen]
	binary.BigEndian.PutUint16(udp[0:], s.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(n-ethLen-ipv4Len))
	// udp[6:8]: checksum zero.
	return ethLen + ipv4Len + udpLen
}

// ipv4Checksum returns the Internet checksum of an IPv4 header whose
// checksum field is zero.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Seq returns the sequence number the generator wrote at offset off of
// frame b, and false if b is too short.
func Seq(b []byte, off int) (uint64, bool) {
	if off < 0 || off > len(b)-SeqLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[off:]), true
}

// SentAt returns the send timestamp the generator wrote at offset off of b
// (CLOCK_MONOTONIC nanoseconds, comparable with unix.ClockGettime on the
// same machine), and false if b is too short.
func SentAt(b []byte, off int) (int64, bool) {
	if off < 0 || off > len(b)-TimeLen {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[off:])), true
}
