package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"mflow/internal/csum"
	"mflow/vxlan"
)

// The AF_PACKET transmit path (vtep.transmit: af_packet): mflow builds the
// outer Ethernet, IPv4 and UDP headers itself (its own neighbour table, as
// the AF_XDP path) and hands each run of a flow's equal-sized datagrams to
// the uplink in one sendmsg on a packet socket with PACKET_VNET_HDR: a
// virtio-net header says "UDP segmentation, segments of gso_size bytes,
// checksum from the UDP header on", so the kernel builds one GSO skb of
// the whole run and cuts it at the device (or in software GSO), giving
// each segment its own IPv4 length, identification and checksum and its
// UDP length and checksum. Compared with the socket path it skips the
// UDP/IP output stack (socket lookup, routing, neighbour) and picks the
// source port from the full vtep.source_ports range per inner flow.
//
// As with UDP_SEGMENT, the kernel segments UDP only with a partial
// checksum (CHECKSUM_PARTIAL), so these frames carry an outer UDP checksum,
// filled by the NIC where it offloads checksums.

// virtio-net header constants (linux/virtio_net.h).
const (
	vnetHdrLen       = 10
	vnetNeedsCsum    = 1
	vnetGSONone      = 0
	vnetGSOUDPL4     = 5
	outerHdrLen      = vxlan.EthernetLen + vxlan.IPv4MinLen + vxlan.UDPLen
	outerUDPOff      = vxlan.EthernetLen + vxlan.IPv4MinLen
	packetHdrBufSize = vnetHdrLen + outerHdrLen
)

// errNoNeighbour is a gsoSender's answer when the next hop towards a VTEP
// is not resolved: the run is dropped under no_neighbour and resolution
// asked for.
var errNoNeighbour = errors.New("next hop not resolved")

// packetTx sends runs of VxLAN datagrams through an AF_PACKET socket on the
// uplink. It is used by one encap loop (not safe for concurrent use).
type packetTx struct {
	fd   int
	hops nextHops
	enc  vxlan.Encoder // SrcMAC, SrcIP, Port, TTL and the source port range
	id   uint16        // next IPv4 identification

	hdr [packetHdrBufSize]byte
	iov []unix.Iovec
	to  unix.RawSockaddrLinklayer
	msg unix.Msghdr
}

// newPacketTx opens the packet socket in the calling thread's namespace
// for the uplink with index ifindex.
func newPacketTx(ifindex int, enc vxlan.Encoder, hops nextHops) (*packetTx, error) {
	// Protocol 0: the socket sends only and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set PACKET_VNET_HDR on the packet socket: %w", err)
	}
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set the packet socket's send timeout: %w", err)
	}
	p := &packetTx{fd: fd, hops: hops, enc: enc, iov: make([]unix.Iovec, 1+maxGSOSegs)}
	p.to.Family = unix.AF_PACKET
	p.to.Ifindex = int32(ifindex)
	p.to.Protocol = htons16(unix.ETH_P_IP)
	p.to.Halen = 6
	p.msg.Name = (*byte)(unsafe.Pointer(&p.to))
	p.msg.Namelen = unix.SizeofSockaddrLinklayer
	p.msg.Iov = &p.iov[0]
	p.iov[0].Base = &p.hdr[0]
	p.iov[0].SetLen(len(p.hdr))
	return p, nil
}

func htons16(v uint16) uint16 { return v<<8 | v>>8 }

// pick returns the outer UDP source port for an inner frame (the run key).
func (p *packetTx) pick(inner []byte) int { return int(p.enc.SrcPort(inner)) }

// send sends dgrams (VxLAN header plus inner frame each; all as long as
// the first but the last, which is not longer) to vtep from source port
// sport with the given TOS, in one sendmsg.
func (p *packetTx) send(sport int, vtep [4]byte, tos byte, dgrams [][]byte) error {
	if len(dgrams) == 0 || len(dgrams) > maxGSOSegs {
		return errors.New("send: bad datagram count")
	}
	mac, ok := p.hops.lookup(vtep)
	if !ok {
		return errNoNeighbour
	}
	total := 0
	for k, d := range dgrams {
		p.iov[1+k].Base = &d[0]
		p.iov[1+k].SetLen(len(d))
		total += len(d)
	}
	p.msg.SetIovlen(1 + len(dgrams))

	v := p.hdr[:vnetHdrLen] // little-endian fields (a modern virtio header)
	v[0] = vnetNeedsCsum
	v[1] = vnetGSONone
	gso := 0
	if len(dgrams) > 1 {
		v[1], gso = vnetGSOUDPL4, len(dgrams[0])
	}
	binary.LittleEndian.PutUint16(v[2:4], outerHdrLen) // hdr_len
	binary.LittleEndian.PutUint16(v[4:6], uint16(gso)) // gso_size
	binary.LittleEndian.PutUint16(v[6:8], outerUDPOff) // csum_start
	binary.LittleEndian.PutUint16(v[8:10], 6)          // csum_offset: UDP checksum

	h := p.hdr[vnetHdrLen:]
	copy(h[0:6], mac[:])
	copy(h[6:12], p.enc.SrcMAC[:])
	binary.BigEndian.PutUint16(h[12:14], vxlan.EtherTypeIPv4)
	ip := vxlan.IPv4(h[vxlan.EthernetLen:outerUDPOff])
	ip[0], ip[1] = 0x45, tos
	binary.BigEndian.PutUint16(ip[2:4], uint16(vxlan.IPv4MinLen+vxlan.UDPLen+total))
	binary.BigEndian.PutUint16(ip[4:6], p.id)
	p.id += uint16(len(dgrams))                 // the kernel numbers the segments from it
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = p.enc.TTL
	if ip[8] == 0 {
		ip[8] = 64
	}
	ip[9] = vxlan.ProtoUDP
	copy(ip[12:16], p.enc.SrcIP[:])
	copy(ip[16:20], vtep[:])
	ip[10], ip[11] = 0, 0
	ip.SetChecksum()
	udp := h[outerUDPOff:outerHdrLen]
	binary.BigEndian.PutUint16(udp[0:2], uint16(sport))
	binary.BigEndian.PutUint16(udp[2:4], p.enc.Port)
	ulen := vxlan.UDPLen + total
	binary.BigEndian.PutUint16(udp[4:6], uint16(ulen))
	// A partial checksum holds the pseudo-header's sum, not inverted; the
	// kernel (or the NIC) adds the rest, per segment.
	binary.BigEndian.PutUint16(udp[6:8], csum.Fold(csum.PseudoIPv4(p.enc.SrcIP, vtep, vxlan.ProtoUDP, ulen)))

	for {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(p.fd), uintptr(unsafe.Pointer(&p.msg)), 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

func (p *packetTx) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}
