package tap

import (
	"encoding/binary"

	"mflow/internal/csum"
	"mflow/vxlan"
)

// VirtioNetHdrLen is the length of the virtio_net_hdr that precedes every
// frame on a TAP opened with IFF_VNET_HDR (set with TUNSETVNETHDRSZ).
const VirtioNetHdrLen = 10

// Virtio header flags (linux/virtio_net.h).
const (
	// FlagNeedsCsum: the L4 checksum is partial; the full checksum over
	// the bytes from CsumStart to the end, seeded with the pseudo-header
	// sum already in the field, goes at CsumStart+CsumOffset.
	FlagNeedsCsum = 1
	// FlagDataValid: the checksum has been verified (receive side).
	FlagDataValid = 2
)

// Virtio GSO types (linux/virtio_net.h).
const (
	GSONone  = 0    // not a super-frame
	GSOTCPv4 = 1    // TCP over IPv4, cut at GSOSize payload bytes
	GSOUDP   = 3    // UFO: IP fragmentation (never enabled by this package)
	GSOTCPv6 = 4    // TCP over IPv6
	GSOUDPL4 = 5    // USO: UDP datagrams of GSOSize payload bytes
	GSOECN   = 0x80 // flag: the TCP flow uses ECN (CWR on the first segment only)
)

// VirtioNetHdr is struct virtio_net_hdr. On a TAP its fields are in the
// host's byte order (legacy virtio); this package supports little-endian
// hosts (amd64, arm64), the only ones the dataplane targets. The zero value
// is the header of a plain frame that needs nothing done.
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // on TAP output: the linear head length, not the header length; unused here
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // offset of the L4 header from the start of the frame
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

// Decode reads the header from b, which must hold VirtioNetHdrLen bytes.
func (h *VirtioNetHdr) Decode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:])
}

// Encode writes the header into b, which must hold VirtioNetHdrLen bytes.
func (h *VirtioNetHdr) Encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// Reason says why a frame read from the TAP was dropped; OK (0) means it
// was not.
type Reason uint8

// Drop reasons of the read path.
const (
	OK                  Reason = iota
	DropShort                  // shorter than the virtio header plus an Ethernet header
	DropBadCsumOffsets         // NEEDS_CSUM with a checksum field outside the frame
	DropGSONotIP               // super-frame whose Ethernet payload is not IPv4/IPv6
	DropGSOBadHeaders          // super-frame with inconsistent IP/TCP/UDP headers
	DropGSOUnsupported         // GSO type this package does not segment (UFO, unknown)
	DropTooManySegments        // more segments than the caller's buffers
	DropBufferTooSmall         // a segment does not fit the caller's buffer
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:                  "ok",
	DropShort:           "short_frame",
	DropBadCsumOffsets:  "bad_csum_offsets",
	DropGSONotIP:        "gso_not_ip",
	DropGSOBadHeaders:   "gso_bad_headers",
	DropGSOUnsupported:  "gso_unsupported",
	DropTooManySegments: "too_many_segments",
	DropBufferTooSmall:  "buffer_too_small",
}

// String returns a stable snake_case label, usable as a metrics label
// (without a "tap_" prefix: callers that mix reasons of several packages
// add one).
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

const (
	protoTCP = 6
	protoUDP = 17

	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)

// Segment turns one packet read from a TAP (a virtio_net_hdr followed by an
// Ethernet frame) into ready-to-send Ethernet frames: a GSO super-frame
// (TCP over IPv4/IPv6, or UDP L4 GSO) is cut into frames of at most
// GSOSize payload bytes each with its own IPv4 total length, ID and header
// checksum (or IPv6 payload length), TCP sequence number, flags (FIN and PSH
// on the last segment only, CWR on the first only) and checksum (or UDP
// length and checksum); a frame with NEEDS_CSUM gets its checksum filled in;
// any other frame is copied as is.
//
// Frame i is written to bufs[i][offset:] and its length to sizes[i]; pkt is
// not modified. Segment returns the number of frames, or 0 and the reason
// the packet was dropped. It does not allocate and is safe for concurrent
// use on distinct buffers.
func Segment(pkt []byte, bufs [][]byte, sizes []int, offset int) (int, Reason) {
	n, _, r := segment(pkt, bufs, sizes, offset, 0, false)
	return n, r
}

// segment is Segment with a cursor, for a reader with fewer buffers than
// segments: it writes segments from, from+1, ... of pkt into bufs; when
// partial is set it writes as many as bufs hold (at least one) instead of
// dropping with DropTooManySegments. It returns the number written and the
// packet's total number of frames.
func segment(pkt []byte, bufs [][]byte, sizes []int, offset, from int, partial bool) (n, total int, r Reason) {
	if len(pkt) < VirtioNetHdrLen+14 {
		return 0, 0, DropShort
	}
	var h VirtioNetHdr
	h.Decode(pkt)
	frame := pkt[VirtioNetHdrLen:]
	if len(bufs) == 0 || len(sizes) == 0 {
		return 0, 0, DropTooManySegments
	}
	switch h.GSOType &^ GSOECN {
	case GSONone:
		if from != 0 {
			return 0, 1, DropTooManySegments
		}
		if h.Flags&FlagNeedsCsum != 0 {
			start, field := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
			if start >= len(frame) || field+2 > len(frame) || field < start {
				return 0, 0, DropBadCsumOffsets
			}
		}
		if offset < 0 || offset > len(bufs[0]) || len(bufs[0])-offset < len(frame) {
			return 0, 0, DropBufferTooSmall
		}
		out := bufs[0][offset : offset+len(frame)]
		copy(out, frame)
		if h.Flags&FlagNeedsCsum != 0 {
			start, field := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
			c := ^csum.Fold(csum.Sum(out[start:], 0))
			if c == 0 && h.CsumOffset == 6 { // UDP: 0 means "no checksum"
				c = 0xffff
			}
			out[field] = byte(c >> 8)
			out[field+1] = byte(c)
		}
		sizes[0] = len(frame)
		return 1, 1, OK
	case GSOTCPv4, GSOTCPv6, GSOUDPL4:
		return segmentGSO(&h, frame, bufs, sizes, offset, from, partial)
	default:
		return 0, 0, DropGSOUnsupported
	}
}

// gso is the layout of a super-frame's headers.
type gso struct {
	l3, l4, l4len, hdrLen int // offsets of the IP and L4 headers, L4 header length, all headers' length
	isV4, isTCP           bool
	mss, nseg             int // payload bytes per segment, number of segments
}

// parseGSO checks a TCP or UDP super-frame's headers against its virtio
// header and returns their layout.
func parseGSO(h *VirtioNetHdr, frame []byte) (g gso, r Reason) {
	// Layer 2: Ethernet, optionally one VLAN tag.
	l3 := vxlan.EthernetLen
	eth := vxlan.Ethernet(frame)
	et := eth.EtherType()
	if et == vxlan.EtherTypeVLAN {
		if len(frame) < vxlan.EthernetLen+vxlan.VLANTagLen {
			return g, DropGSOBadHeaders
		}
		l3 += vxlan.VLANTagLen
		et = eth.InnerType()
	}
	// Layer 3: the L4 header starts at CsumStart (the kernel sets it for
	// every super-frame, and it covers IPv6 extension headers).
	l4 := int(h.CsumStart)
	isV4 := et == vxlan.EtherTypeIPv4
	var proto byte
	switch {
	case isV4:
		if len(frame) < l3+20 || frame[l3]>>4 != 4 {
			return g, DropGSOBadHeaders
		}
		if ihl := int(frame[l3]&0xf) * 4; ihl < 20 || l3+ihl != l4 {
			return g, DropGSOBadHeaders
		}
		proto = frame[l3+9]
	case et == vxlan.EtherTypeIPv6:
		if len(frame) < l3+40 || frame[l3]>>4 != 6 || l4 < l3+40 {
			return g, DropGSOBadHeaders
		}
		proto = frame[l3+6] // a TCP/UDP next header right after the fixed header
		if l4 != l3+40 {
			proto = 0 // extension headers: the L4 protocol is checked below
		}
	default:
		return g, DropGSONotIP
	}
	if (h.GSOType&^GSOECN == GSOTCPv4) != isV4 && h.GSOType&^GSOECN != GSOUDPL4 {
		return g, DropGSOBadHeaders
	}
	isTCP := h.GSOType&^GSOECN != GSOUDPL4
	wantProto := byte(protoUDP)
	if isTCP {
		wantProto = protoTCP
	}
	if proto != 0 && proto != wantProto {
		return g, DropGSOBadHeaders
	}
	// Layer 4 header length.
	var l4len int
	if isTCP {
		if len(frame) < l4+20 {
			return g, DropGSOBadHeaders
		}
		l4len = int(frame[l4+12]>>4) * 4
		if l4len < 20 || len(frame) < l4+l4len || h.CsumOffset != 16 {
			return g, DropGSOBadHeaders
		}
	} else {
		l4len = 8
		if len(frame) < l4+8 || h.CsumOffset != 6 {
			return g, DropGSOBadHeaders
		}
	}
	g = gso{l3: l3, l4: l4, l4len: l4len, hdrLen: l4 + l4len, isV4: isV4, isTCP: isTCP, mss: int(h.GSOSize)}
	if g.mss == 0 {
		return g, DropGSOBadHeaders
	}
	g.nseg = (len(frame) - g.hdrLen + g.mss - 1) / g.mss
	if g.nseg == 0 {
		g.nseg = 1 // a header-only super-frame still goes out once
	}
	return g, OK
}

// segmentGSO cuts a TCP or UDP super-frame; see segment.
func segmentGSO(h *VirtioNetHdr, frame []byte, bufs [][]byte, sizes []int, offset, from int, partial bool) (int, int, Reason) {
	g, r := parseGSO(h, frame)
	if r != OK {
		return 0, 0, r
	}
	l3, l4, l4len, hdrLen, isV4, isTCP, mss, nseg := g.l3, g.l4, g.l4len, g.hdrLen, g.isV4, g.isTCP, g.mss, g.nseg
	payload := frame[hdrLen:]
	if from < 0 || from >= nseg {
		return 0, nseg, DropTooManySegments
	}
	count := nseg - from
	if room := min(len(bufs), len(sizes)); count > room {
		if !partial {
			return 0, nseg, DropTooManySegments
		}
		count = room
	}
	if offset < 0 {
		return 0, 0, DropBufferTooSmall
	}
	for i := from; i < from+count; i++ {
		n := min(mss, len(payload)-i*mss)
		if b := bufs[i-from]; len(b) < offset || len(b)-offset < hdrLen+n {
			return 0, 0, DropBufferTooSmall
		}
	}

	var ipID uint16
	var seq uint32
	var tcpFlags byte
	if isV4 {
		ipID = uint16(frame[l3+4])<<8 | uint16(frame[l3+5])
	}
	if isTCP {
		seq = uint32(frame[l4+4])<<24 | uint32(frame[l4+5])<<16 | uint32(frame[l4+6])<<8 | uint32(frame[l4+7])
		tcpFlags = frame[l4+13]
	}
	// The pseudo-header's address part is the same for every segment.
	var addrSum uint64
	if isV4 {
		addrSum = csum.Sum(frame[l3+12:l3+20], 0)
	} else {
		addrSum = csum.Sum(frame[l3+8:l3+40], 0)
	}

	for i := from; i < from+count; i++ {
		n := min(mss, len(payload)-i*mss)
		out := bufs[i-from][offset : offset+hdrLen+n]
		copy(out, frame[:hdrLen])
		copy(out[hdrLen:], payload[i*mss:i*mss+n])
		l4total := l4len + n
		if isV4 {
			tot := l4 - l3 + l4total
			out[l3+2], out[l3+3] = byte(tot>>8), byte(tot)
			id := ipID + uint16(i)
			out[l3+4], out[l3+5] = byte(id>>8), byte(id)
			out[l3+10], out[l3+11] = 0, 0
			c := ^csum.Fold(csum.Sum(out[l3:l4], 0))
			out[l3+10], out[l3+11] = byte(c>>8), byte(c)
		} else {
			pl := l4 - l3 - 40 + l4total
			out[l3+4], out[l3+5] = byte(pl>>8), byte(pl)
		}
		var csumField int
		if isTCP {
			s := seq + uint32(i*mss)
			out[l4+4], out[l4+5], out[l4+6], out[l4+7] = byte(s>>24), byte(s>>16), byte(s>>8), byte(s)
			f := tcpFlags
			if i != nseg-1 {
				f &^= tcpFlagFIN | tcpFlagPSH
			}
			if i != 0 {
				f &^= tcpFlagCWR
			}
			out[l4+13] = f
			csumField = l4 + 16
		} else {
			out[l4+4], out[l4+5] = byte(l4total>>8), byte(l4total)
			csumField = l4 + 6
		}
		out[csumField], out[csumField+1] = 0, 0
		// Pseudo-header: addresses, protocol, L4 length.
		ps := addrSum + uint64(protoOf(isTCP)) + uint64(l4total)
		c := ^csum.Fold(csum.Sum(out[l4:], ps))
		if c == 0 && !isTCP {
			c = 0xffff
		}
		out[csumField], out[csumField+1] = byte(c>>8), byte(c)
		sizes[i-from] = len(out)
	}
	return count, nseg, OK
}

func protoOf(tcp bool) byte {
	if tcp {
		return protoTCP
	}
	return protoUDP
}
