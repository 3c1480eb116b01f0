package daemon

import (
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

// maxUDPRunIP bounds a merged run's inner IPv4 length so that the outer
// IPv4 packet stays within 65535 bytes.
const maxUDPRunIP = 0xFFFF - (vxlan.Overhead - vxlan.EthernetLen) - vxlan.EthernetLen

// udpRun merges the run of datagrams that starts at frames[0], if any
// (tap.MergeDatagrams), into dst[tunHead:] (dst holds
// tunHead+14+65535 bytes), behind the tunnel path's headroom.
func udpRun(frames [][]byte, layouts []tap.Layout, dst []byte) (int, tap.Layout, int) {
	return tap.MergeDatagrams(frames, layouts, dst[tunHead:], maxUDPRunIP)
}
