package tap

import (
	"encoding/binary"

	"mflow/internal/csum"
	"mflow/vxlan"
)

// Runs of UDP datagrams. A UDP sender hands the TAP one frame per
// datagram; written one by one they cost a system call each. A run of
// datagrams of one flow (the same Ethernet header, IPv4 addresses, TOS,
// TTL, DF and ports; no IP options, no fragments) with equal payloads
// (the last may be shorter) is copied into one UDP_L4 super-frame that
// the kernel cuts back into the same datagrams (payloads and boundaries
// kept; each gets its own UDP length and checksum, and IPv4
// identifications numbered upwards from the first's), inside the tunnel
// like a TCP super-frame (the tunnel transmit path). Unlike the decap
// side's coalescer, which takes frames off the wire, this one takes
// frames from the host's own stack, so their checksums (often left
// partial) are not verified: the kernel computes every datagram's afresh.
// The flow rule is the coalescer's (sameDatagramFlow).

// localDatagram returns the payload length of a plain UDP/IPv4 datagram of
// layout l that may join a run, or false.
func localDatagram(frame []byte, l *Layout) (int, bool) {
	h := &l.Hdr
	if h.GSOType != GSONone || len(frame) < vxlan.EthernetLen+vxlan.IPv4MinLen+vxlan.UDPLen ||
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
	if h.Flags&FlagNeedsCsum != 0 && (h.CsumStart != vxlan.EthernetLen+vxlan.IPv4MinLen || h.CsumOffset != 6) {
		return 0, false
	}
	return tot - vxlan.IPv4MinLen - vxlan.UDPLen, true
}

// MergeDatagrams looks for a run of datagrams that starts at frames[0]
// (plain frames, with their layouts from ParsePacket) of at most maxIP
// bytes of IPv4 and merges it into dst, which must hold 14+maxIP bytes.
// It returns the number of frames merged (0 when frames[0] starts no run
// of two or more), the super-frame's layout and its length. It does not
// allocate.
func MergeDatagrams(frames [][]byte, layouts []Layout, dst []byte, maxIP int) (int, Layout, int) {
	const hdr = vxlan.EthernetLen + vxlan.IPv4MinLen + vxlan.UDPLen
	first := frames[0]
	mss, ok := localDatagram(first, &layouts[0])
	if !ok {
		return 0, Layout{}, 0
	}
	ipTot := vxlan.IPv4MinLen + vxlan.UDPLen + mss
	n := 1
	for last := false; n < len(frames) && n < maxCoalesce && !last; n++ {
		pl, ok := localDatagram(frames[n], &layouts[n])
		if !ok || pl > mss || ipTot+pl > maxIP || !sameDatagramFlow(first, frames[n]) {
			break
		}
		ipTot += pl
		last = pl < mss
	}
	if n < 2 {
		return 0, Layout{}, 0
	}
	f := dst[:vxlan.EthernetLen+ipTot]
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
	l := Layout{
		Hdr: VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, HdrLen: hdr, GSOSize: uint16(mss),
			CsumStart: vxlan.EthernetLen + vxlan.IPv4MinLen, CsumOffset: 6},
		Frames: n, L3: vxlan.EthernetLen, HdrLen: hdr,
	}
	return n, l, len(f)
}
