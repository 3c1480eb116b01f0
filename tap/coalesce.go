package tap

import (
	"encoding/binary"

	"mflow/internal/csum"
	"mflow/vxlan"
)

// Coalescing (the decap sink's side of TSO): consecutive TCP/IPv4 segments
// of one flow, as they come out of the VxLAN decapsulation, are merged into
// one super-frame with a virtio header of GSO type TCPv4, so that the
// kernel takes many segments with one write(2). The kernel accepts the
// super-frame as if a NIC had done GRO: delivered locally it is one skb;
// forwarded (bridge, veth) it is kept as GSO or re-segmented by the kernel.
//
// A segment joins the run in progress when it carries the same Ethernet
// header, IPv4 addresses, TOS, TTL and DF flag, TCP ports, acknowledgement
// number and options as the run's first segment, starts at the run's next
// sequence number, carries at most the first segment's payload length
// (all but the last segment carry exactly that), has only ACK (and PSH on
// the last segment) among its flags, and has valid IPv4 and TCP checksums:
// the inner checksum is VxLAN's only end-to-end integrity check, so a
// corrupted segment is written on its own for the kernel to drop, never
// folded into a super-frame whose checksum the kernel would trust.
//
// UDP (the decap sink's side of USO): consecutive datagrams of one UDP/IPv4
// flow (same Ethernet header, addresses, ports, TOS, TTL and DF flag; not
// fragments) with the same payload length (the last of a run may be
// shorter) and valid checksums are merged into one super-frame of GSO type
// UDP_L4, which the kernel cuts back into the same datagrams. Payloads and
// their boundaries are kept exactly; the only header field that may differ
// is the IPv4 identification, which the kernel numbers upwards from the
// first datagram's (a receiving application never sees it).

const (
	maxCoalesceIP = 65535 // largest IPv4 total length of a super-frame
	maxCoalesce   = 64    // most segments in one super-frame
	// coalesceArena is the size of the buffer super-frames are built in:
	// room for several 64 KiB super-frames per batch.
	coalesceArena = 256 << 10
)

// segInfo is what the coalescer needs of one TCP/IPv4 segment.
type segInfo struct {
	thl     int    // TCP header length
	payload int    // TCP payload length
	seq     uint32 // sequence number
	flags   byte
}

// parseSegment returns the segment's info, its length without Ethernet
// padding, and whether it may be coalesced at all (TCP/IPv4 without IP
// options or fragmentation, DF set, ACK and optionally PSH, non-empty
// payload, valid checksums).
func parseSegment(frame []byte) (s segInfo, tot int, ok bool) {
	if len(frame) < vxlan.EthernetLen+vxlan.IPv4MinLen+20 || vxlan.Ethernet(frame).EtherType() != vxlan.EtherTypeIPv4 {
		return s, 0, false
	}
	ip := vxlan.IPv4(frame[vxlan.EthernetLen:])
	if ip[0] != 0x45 || ip.Protocol() != vxlan.ProtoTCP { // IPv4 without options
		return s, 0, false
	}
	if !ip.DF() || ip.IsFragment() {
		return s, 0, false
	}
	tot = ip.TotalLen()
	if tot < vxlan.IPv4MinLen+20 || tot > len(ip) {
		return s, 0, false
	}
	tcp := ip[20:tot]
	s.thl = int(tcp[12]>>4) * 4
	if s.thl < 20 || s.thl > len(tcp) {
		return s, 0, false
	}
	s.payload = len(tcp) - s.thl
	s.flags = tcp[13]
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	if s.payload == 0 || s.flags&^tcpFlagPSH != 0x10 { // ACK, optionally PSH; nothing else
		return s, 0, false
	}
	if !ip.ChecksumValid() {
		return s, 0, false
	}
	ps := csum.Sum(ip[12:20], 0) + vxlan.ProtoTCP + uint64(len(tcp))
	if csum.Fold(csum.Sum(tcp, ps)) != 0xffff {
		return s, 0, false
	}
	return s, vxlan.EthernetLen + tot, true
}

// sameFlow reports whether segment b (with header length thl) may follow
// run head a: equal Ethernet header, IPv4 TOS, DF, TTL and addresses, TCP
// ports, ack and options. Both are TCP/IPv4 frames without IP options
// that parseSegment accepted.
func sameFlow(a, b []byte, thl int) bool {
	const (
		ip  = vxlan.EthernetLen     // IPv4 header
		tcp = ip + vxlan.IPv4MinLen // TCP header
	)
	if int(a[tcp+12]>>4)*4 != thl { // data offset
		return false
	}
	return string(a[:ip]) == string(b[:ip]) && // Ethernet
		a[ip+1] == b[ip+1] && // TOS (DSCP+ECN)
		a[ip+6] == b[ip+6] && // DF (checked set) and reserved bit
		a[ip+8] == b[ip+8] && // TTL
		string(a[ip+12:ip+20]) == string(b[ip+12:ip+20]) && // addresses
		string(a[tcp:tcp+4]) == string(b[tcp:tcp+4]) && // ports
		string(a[tcp+8:tcp+12]) == string(b[tcp+8:tcp+12]) && // ack
		string(a[tcp+20:tcp+thl]) == string(b[tcp+20:tcp+thl]) // options
}

// parseDatagram returns the UDP payload length of a UDP/IPv4 frame and
// its length without Ethernet padding, and whether it may be coalesced:
// no IP options, not a fragment, a UDP length that matches the IPv4 one,
// a non-empty payload and valid checksums (a zero UDP checksum means none).
func parseDatagram(frame []byte) (payload, tot int, ok bool) {
	if len(frame) < vxlan.EthernetLen+vxlan.IPv4MinLen+vxlan.UDPLen || vxlan.Ethernet(frame).EtherType() != vxlan.EtherTypeIPv4 {
		return 0, 0, false
	}
	ip := vxlan.IPv4(frame[vxlan.EthernetLen:])
	if ip[0] != 0x45 || ip.Protocol() != vxlan.ProtoUDP { // IPv4 without options
		return 0, 0, false
	}
	if ip.IsFragment() {
		return 0, 0, false
	}
	tot = ip.TotalLen()
	if tot <= vxlan.IPv4MinLen+vxlan.UDPLen || tot > len(ip) || vxlan.UDP(ip[vxlan.IPv4MinLen:]).Length() != tot-vxlan.IPv4MinLen {
		return 0, 0, false
	}
	if !ip.ChecksumValid() {
		return 0, 0, false
	}
	udp := ip[20:tot]
	if binary.BigEndian.Uint16(udp[6:]) != 0 {
		ps := csum.Sum(ip[12:20], 0) + protoUDP + uint64(len(udp))
		if csum.Fold(csum.Sum(udp, ps)) != 0xffff {
			return 0, 0, false
		}
	}
	return tot - 28, 14 + tot, true
}

// sameDatagramFlow reports whether datagram b may follow run head a: equal
// Ethernet header, TOS, flags (DF), TTL, addresses and ports.
func sameDatagramFlow(a, b []byte) bool {
	return string(a[:14]) == string(b[:14]) &&
		a[15] == b[15] && a[20] == b[20] && a[22] == b[22] &&
		string(a[26:38]) == string(b[26:38])
}

// coalescer plans the writes of one batch: it appends to out the packets
// to write, each with its virtio header, copying runs of two or more
// segments into arena and pointing at the caller's buffers otherwise. It is
// owned by one writer and reused across batches; it allocates only while
// its slices grow to the largest batch seen.
type coalescer struct {
	arena []byte
	used  int
	out   []wpkt
}

// wpkt is one packet to write: virtio header + frame, and the number and
// bytes of the frames it carries (for the counters).
type wpkt struct {
	pkt    []byte
	frames int
	bytes  int
}

// plan fills c.out for frames bufs[i][offset:] (offset >= VirtioNetHdrLen;
// the header room before each frame is overwritten). It stops early, with
// the number of frames planned, when the arena is full; the caller writes
// c.out and calls plan again for the rest.
func (c *coalescer) plan(bufs [][]byte, offset int) int {
	c.out = c.out[:0]
	c.used = 0
	i := 0
	for i < len(bufs) {
		f := bufs[i][offset:]
		s, _, ok := parseSegment(f)
		if !ok {
			if k, done := c.planUDP(bufs, i, offset); done {
				if k < 0 {
					return i // arena full: write what is planned first
				}
				i = k
				continue
			}
		}
		if !ok || s.flags&tcpFlagPSH != 0 {
			c.single(bufs[i], offset, len(f))
			i++
			continue
		}
		// Gather the run that starts at i.
		mss := s.payload
		ipTot := 20 + s.thl + s.payload
		next := s.seq + uint32(s.payload)
		j := i + 1
		last := false
		for ; j < len(bufs) && !last && j-i < maxCoalesce; j++ {
			g := bufs[j][offset:]
			t, _, ok := parseSegment(g)
			if !ok || t.seq != next || t.payload > mss || t.thl != s.thl || ipTot+t.payload > maxCoalesceIP || !sameFlow(f, g, s.thl) {
				break
			}
			ipTot += t.payload
			next += uint32(t.payload)
			last = t.payload < mss || t.flags&tcpFlagPSH != 0
		}
		if j-i == 1 {
			c.single(bufs[i], offset, len(f))
			i++
			continue
		}
		need := VirtioNetHdrLen + 14 + ipTot
		if len(c.arena)-c.used < need {
			if len(c.out) > 0 {
				return i // write what is planned, then come back
			}
			c.arena = make([]byte, max(need, 2*len(c.arena)))
		}
		c.run(bufs[i:j], offset, s.thl, ipTot, mss)
		i = j
	}
	return i
}

// planUDP plans the UDP run that starts at bufs[i], if there is one. It
// returns done false when bufs[i] is not a coalescible datagram (the caller
// plans it otherwise); else the index after what it planned, or -1 when the
// arena is full and the planned packets must be written first.
func (c *coalescer) planUDP(bufs [][]byte, i, offset int) (next int, done bool) {
	f := bufs[i][offset:]
	mss, _, ok := parseDatagram(f)
	if !ok {
		return 0, false
	}
	ipTot := 28 + mss
	j := i + 1
	for last := false; j < len(bufs) && !last && j-i < maxCoalesce; j++ {
		g := bufs[j][offset:]
		pl, _, ok := parseDatagram(g)
		if !ok || pl > mss || ipTot+pl > maxCoalesceIP || !sameDatagramFlow(f, g) {
			break
		}
		ipTot += pl
		last = pl < mss
	}
	if j-i == 1 {
		c.single(bufs[i], offset, len(f))
		return i + 1, true
	}
	need := VirtioNetHdrLen + 14 + ipTot
	if len(c.arena)-c.used < need {
		if len(c.out) > 0 {
			return -1, true
		}
		c.arena = make([]byte, max(need, 2*len(c.arena)))
	}
	c.runUDP(bufs[i:j], offset, ipTot, mss)
	return j, true
}

// runUDP copies the datagrams into the arena as one UDP_L4 super-frame.
func (c *coalescer) runUDP(dgrams [][]byte, offset, ipTot, mss int) {
	const hdr = 14 + 20 + 8
	p := c.arena[c.used : c.used+VirtioNetHdrLen+14+ipTot]
	h := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, HdrLen: hdr, GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 6}
	h.Encode(p)
	f := p[VirtioNetHdrLen:]
	copy(f, dgrams[0][offset:offset+hdr])
	w := hdr
	var bytes int
	for _, b := range dgrams {
		d := b[offset:]
		tot := 14 + int(binary.BigEndian.Uint16(d[16:]))
		w += copy(f[w:], d[hdr:tot])
		bytes += tot
	}
	ip := f[14:]
	binary.BigEndian.PutUint16(ip[2:], uint16(ipTot))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^csum.Fold(csum.Sum(ip[:20], 0)))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[4:], uint16(ipTot-20))
	// NEEDS_CSUM: the pseudo-header sum, for the kernel to complete per
	// datagram when it cuts the super-frame.
	binary.BigEndian.PutUint16(udp[6:], csum.Fold(csum.Sum(ip[12:20], 0)+protoUDP+uint64(ipTot-20)))
	c.out = append(c.out, wpkt{pkt: p, frames: len(dgrams), bytes: bytes})
	c.used += len(p)
}

// single plans frame bufs[i][offset:offset+n] as is, with a zero header.
func (c *coalescer) single(b []byte, offset, n int) {
	clear(b[offset-VirtioNetHdrLen : offset])
	c.out = append(c.out, wpkt{pkt: b[offset-VirtioNetHdrLen : offset+n], frames: 1, bytes: n})
}

// run copies the segments into the arena as one super-frame.
func (c *coalescer) run(segs [][]byte, offset, thl, ipTot, mss int) {
	hdr := 14 + 20 + thl
	p := c.arena[c.used : c.used+VirtioNetHdrLen+14+ipTot]
	h := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: uint16(hdr), GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}
	h.Encode(p)
	f := p[VirtioNetHdrLen:]
	first := segs[0][offset:]
	copy(f, first[:hdr])
	w := hdr
	var bytes int
	var flags byte
	for _, b := range segs {
		s := b[offset:]
		tot := 14 + int(binary.BigEndian.Uint16(s[16:]))
		w += copy(f[w:], s[hdr:tot])
		bytes += tot
		flags |= s[14+20+13]
	}
	ip := f[14:]
	binary.BigEndian.PutUint16(ip[2:], uint16(ipTot))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^csum.Fold(csum.Sum(ip[:20], 0)))
	tcp := ip[20:]
	tcp[13] |= flags & tcpFlagPSH
	// NEEDS_CSUM: the field holds the pseudo-header sum for the kernel (or
	// a NIC) to complete.
	binary.BigEndian.PutUint16(tcp[16:], csum.Fold(csum.Sum(ip[12:20], 0)+protoTCP+uint64(ipTot-20)))
	c.out = append(c.out, wpkt{pkt: p, frames: len(segs), bytes: bytes})
	c.used += len(p)
}
