package daemon

import (
	"encoding/binary"

	"mflow/internal/csum"
	"mflow/tap"
	"mflow/vxlan"
)

// The tunnel transmit path's header work, kept apart from the loop for
// tests: a packet read from a TAP (virtio header + frame) becomes one
// outer frame behind a tunnel virtio header, the inner bytes untouched.

// tunBatch is how many packets (super-frames) one read of the tunnel
// path takes at most.
const tunBatch = 16

// tunHead is the room before a frame: the transmit TAP's header and the
// outer headers.
const tunHead = tap.TunnelHdrLen + vxlan.Overhead

// tunnelHdr fills th, the header of the outer frame for a packet of
// layout l behind the vxlan.Overhead bytes of outer headers: a
// super-frame becomes GSO over a UDP/IPv4 tunnel (the kernel cuts it and
// writes each segment's inner and outer headers, as for its own VxLAN
// device); a plain frame, whose checksums the caller completed
// (completeCsum), needs nothing. outerCsum asks the kernel to compute
// each segment's outer UDP checksum. It returns false for a super-frame
// the kernel would refuse in a tunnel (no partial checksum), and for a
// plain frame with a partial checksum: the caller cuts or completes it.
func tunnelHdr(l *tap.Layout, outerCsum bool, th *tap.TunnelHdr) bool {
	h := &l.Hdr
	*th = tap.TunnelHdr{}
	if h.GSOType == tap.GSONone {
		return h.Flags&tap.FlagNeedsCsum == 0
	}
	if h.Flags&tap.FlagNeedsCsum == 0 {
		return false
	}
	th.Flags = tap.FlagNeedsCsum
	if outerCsum {
		th.Flags |= tap.FlagUDPTunnelCsum
	}
	th.GSOType = h.GSOType | tap.GSOUDPTunnelIPv4
	th.HdrLen = uint16(vxlan.Overhead + l.HdrLen)
	th.GSOSize = h.GSOSize
	th.CsumStart = h.CsumStart + vxlan.Overhead
	th.CsumOffset = h.CsumOffset
	th.OuterTH = vxlan.EthernetLen + vxlan.IPv4MinLen
	th.InnerNH = uint16(vxlan.Overhead + l.L3)
	return true
}

// completeCsum finishes a plain frame's partial checksum (NEEDS_CSUM) in
// place and clears the flag in l. The kernel marks only GSO packets
// written to a TAP as encapsulated, so a NIC would apply a plain frame's
// checksum offload to the outer headers; and an outer UDP checksum
// computed here covers the inner one. The offsets were checked by
// tap.ParsePacket.
func completeCsum(frame []byte, l *tap.Layout) {
	h := &l.Hdr
	if h.GSOType != tap.GSONone || h.Flags&tap.FlagNeedsCsum == 0 {
		return
	}
	start, field := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	c := ^csum.Fold(csum.Sum(frame[start:], 0))
	if c == 0 && h.CsumOffset == 6 { // UDP: 0 means "no checksum"
		c = 0xffff
	}
	frame[field], frame[field+1] = byte(c>>8), byte(c)
	h.Flags &^= tap.FlagNeedsCsum
}

// Runs of UDP datagrams. A UDP sender hands the TAP one frame per
// datagram; written one by one they cost a system call each. A run of
// datagrams of one flow (the same Ethernet header, IPv4 addresses, TOS,
// TTL, DF and ports; no IP options, no fragments) with equal payloads
// (the last may be shorter) is copied into one UDP_L4 super-frame that
// the kernel cuts back into the same datagrams (payloads and boundaries
// kept; each gets its own UDP length and checksum, and IPv4
// identifications numbered upwards from the first's), inside the tunnel
// like a TCP super-frame. The frames come from the host's own stack, so
// their checksums (often left partial) are not verified: the kernel
// computes every datagram's afresh.

// maxUDPRun is the most datagrams merged into one super-frame.
const maxUDPRun = 64

// maxUDPRunIP bounds a run's inner IPv4 length so that the outer IPv4
// packet stays within 65535 bytes.
const maxUDPRunIP = 0xFFFF - (vxlan.Overhead - vxlan.EthernetLen) - vxlan.EthernetLen

// udpPayload returns the payload length of a plain UDP/IPv4 datagram of
// layout l that may join a run, or false.
func udpPayload(frame []byte, l *tap.Layout) (int, bool) {
	h := &l.Hdr
	if h.GSOType != tap.GSONone || len(frame) < vxlan.EthernetLen+vxlan.IPv4MinLen+vxlan.UDPLen ||
		vxlan.Ethernet(frame).EtherType() != vxlan.EtherTypeIPv4 {
		return 0, false
	}
	ip := vxlan.IPv4(frame[vxlan.EthernetLen:])
	if ip[0] != 0x45 || ip.Protocol() != vxlan.ProtoUDP || ip.IsFragment() {
		return 0, false
	}
	tot := ip.TotalLen()
	if tot <= vxlan.IPv4MinLen+vxlan.UDPLen || tot > len(ip) || vxlan.UDP(ip[vxlan.IPv4MinLen:]).Length() != tot-vxlan.IPv4MinLen {
		return 0, false
	}
	if h.Flags&tap.FlagNeedsCsum != 0 && (h.CsumStart != vxlan.EthernetLen+vxlan.IPv4MinLen || h.CsumOffset != 6) {
		return 0, false
	}
	return tot - vxlan.IPv4MinLen - vxlan.UDPLen, true
}

// sameUDPFlow reports whether datagram b may follow the run's first, a.
func sameUDPFlow(a, b []byte) bool {
	return string(a[:14]) == string(b[:14]) && // Ethernet header
		a[15] == b[15] && a[20] == b[20] && a[22] == b[22] && // TOS, flags (DF), TTL
		string(a[26:38]) == string(b[26:38]) // addresses, ports
}

// udpRun looks for a run of datagrams that starts at frames[0] and merges
// it into dst (which must hold tunHead+14+65535 bytes), the super-frame
// going to dst[tunHead:]. It returns the number of frames merged (0 when
// frames[0] starts no run of two or more), the super-frame's layout and
// its length.
func udpRun(frames [][]byte, layouts []tap.Layout, dst []byte) (int, tap.Layout, int) {
	const hdr = vxlan.EthernetLen + vxlan.IPv4MinLen + vxlan.UDPLen
	first := frames[0]
	mss, ok := udpPayload(first, &layouts[0])
	if !ok {
		return 0, tap.Layout{}, 0
	}
	ipTot := vxlan.IPv4MinLen + vxlan.UDPLen + mss
	n := 1
	for last := false; n < len(frames) && n < maxUDPRun && !last; n++ {
		pl, ok := udpPayload(frames[n], &layouts[n])
		if !ok || pl > mss || ipTot+pl > maxUDPRunIP || !sameUDPFlow(first, frames[n]) {
			break
		}
		ipTot += pl
		last = pl < mss
	}
	if n < 2 {
		return 0, tap.Layout{}, 0
	}
	f := dst[tunHead : tunHead+vxlan.EthernetLen+ipTot]
	w := copy(f, first[:hdr])
	for _, d := range frames[:n] {
		tot := vxlan.EthernetLen + vxlan.IPv4(d[vxlan.EthernetLen:]).TotalLen()
		w += copy(f[w:], d[hdr:tot])
	}
	ip := f[vxlan.EthernetLen:]
	binary.BigEndian.PutUint16(ip[2:], uint16(ipTot))
	vxlan.IPv4(ip).SetChecksum()
	udp := ip[vxlan.IPv4MinLen:]
	binary.BigEndian.PutUint16(udp[4:], uint16(ipTot-vxlan.IPv4MinLen))
	// NEEDS_CSUM: the pseudo-header sum, for the kernel to complete per
	// datagram when it cuts the super-frame.
	binary.BigEndian.PutUint16(udp[6:], csum.Fold(csum.PseudoIPv4([4]byte(ip[12:16]), [4]byte(ip[16:20]), vxlan.ProtoUDP, ipTot-vxlan.IPv4MinLen)))
	l := tap.Layout{
		Hdr: tap.VirtioNetHdr{Flags: tap.FlagNeedsCsum, GSOType: tap.GSOUDPL4, HdrLen: hdr, GSOSize: uint16(mss),
			CsumStart: vxlan.EthernetLen + vxlan.IPv4MinLen, CsumOffset: 6},
		Frames: n, L3: vxlan.EthernetLen, HdrLen: hdr,
	}
	return n, l, len(f)
}
