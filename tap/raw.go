package tap

// Layout describes one packet as a TAP returns it (a virtio header, then
// an Ethernet frame, possibly a GSO super-frame): what it becomes on the
// wire once cut, and where its headers are.
type Layout struct {
	Hdr    VirtioNetHdr
	Frames int // wire frames: the segments of a super-frame, else 1
	// L3 is the offset of a super-frame's IP header in the frame (14, or
	// 18 behind one VLAN tag) and HdrLen the length of the headers every
	// segment repeats (Ethernet to the end of the L4 header); both 0 for a
	// plain frame.
	L3, HdrLen int
}

// WireBytes is the length of the frames the packet makes on the wire,
// given the frame's length (the packet less its virtio header).
func (l *Layout) WireBytes(frameLen int) int {
	return frameLen + (l.Frames-1)*l.HdrLen
}

// ParsePacket checks pkt (virtio header + frame) as Segment does and
// returns its layout, or the reason Segment would drop it. It reads a few
// header bytes and neither copies nor allocates.
func ParsePacket(pkt []byte) (Layout, Reason) {
	var l Layout
	if len(pkt) < VirtioNetHdrLen+14 {
		return l, DropShort
	}
	l.Hdr.Decode(pkt)
	frame := pkt[VirtioNetHdrLen:]
	switch l.Hdr.GSOType &^ GSOECN {
	case GSONone:
		if l.Hdr.Flags&FlagNeedsCsum != 0 {
			start, field := int(l.Hdr.CsumStart), int(l.Hdr.CsumStart)+int(l.Hdr.CsumOffset)
			if start >= len(frame) || field+2 > len(frame) || field < start {
				return l, DropBadCsumOffsets
			}
		}
		l.Frames = 1
		return l, OK
	case GSOTCPv4, GSOTCPv6, GSOUDPL4:
		g, r := parseGSO(&l.Hdr, frame)
		if r != OK {
			return l, r
		}
		l.Frames, l.L3, l.HdrLen = g.nseg, g.l3, g.hdrLen
		return l, OK
	default:
		return l, DropGSOUnsupported
	}
}
