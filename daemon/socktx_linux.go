package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"mflow/vxlan"
)

// The socket transmit path (vtep.transmit: socket): encapsulated frames
// leave through the kernel's UDP stack instead of AF_XDP. mflow writes the
// VxLAN header in front of each inner frame; the kernel adds the outer
// UDP, IPv4 and Ethernet headers, routes, resolves the next hop and, for a
// run of equal-sized datagrams of one flow (the segments of a TSO
// super-frame), takes them in one sendmsg with UDP_SEGMENT and cuts them
// itself (UDP GSO: one skb down to the device, or to software GSO).
//
// Source ports: RFC 7348 wants the outer source port to carry the inner
// flow's entropy. A socket has one source port, so there is a small pool
// of sockets bound to ports spread over the vtep.source_ports range
// (sockPool), and the inner flow hash picks one; a flow always uses the
// same socket, so its order is kept.
//
// Outer UDP checksum: the kernel refuses UDP GSO on a socket without
// checksums (SO_NO_CHECK), so this path always sends them (the kernel
// computes them, in hardware where the NIC offers it). RFC 7348 allows
// either; the receiving VTEP verifies it.
//
// DSCP/ECN are inherited from an inner IPv4 header (as `ip link add type
// vxlan tos inherit` does, ECN per RFC 6040: CE becomes ECT(0)); DF is set
// (IP_PMTUDISC_DO); TTL and the source port range are vtep.ttl and
// vtep.source_ports.

// sockPoolSize is the number of source ports (sockets) per VTEP.
const sockPoolSize = 16

// maxGSOSegs is the kernel's limit of segments in one UDP GSO send
// (UDP_MAX_SEGMENTS).
const maxGSOSegs = 64

// maxUDPPayload bounds one send: an IPv4 datagram of 65535 bytes.
const maxUDPPayload = 65535 - vxlan.IPv4MinLen - vxlan.UDPLen

// sockPool is the encap loop's UDP sockets: blocking, bound to the VTEP
// address and one source port each, DF set, with a send timeout.
type sockPool struct {
	fds   []int
	ports []uint16
	seed  uint32
	port  uint16 // VxLAN destination port

	// sendmsg's arguments, reused: no allocation per send.
	iov  []unix.Iovec
	oobw [(unix.SizeofCmsghdr + 8) * 2 / 8]uint64 // two control messages, 8-byte aligned
	to   unix.RawSockaddrInet4
	msg  unix.Msghdr
}

// sendTimeout bounds a blocked sendmsg (the socket's buffer full for that
// long): the datagrams are then dropped under send_error.
const sendTimeout = 100 * time.Millisecond

// newSockPool opens the pool's sockets in the calling thread's namespace,
// bound to source ports spread over lo..hi, with outer TTL ttl (0: the
// kernel's default, 64).
func newSockPool(vtep [4]byte, dstPort, lo, hi uint16, ttl int, seed uint32) (p *sockPool, err error) {
	p = &sockPool{seed: seed, port: dstPort, iov: make([]unix.Iovec, maxGSOSegs)}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	span := int(hi-lo) + 1
	n := min(sockPoolSize, span)
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return p, fmt.Errorf("open UDP socket: %w", err)
		}
		p.fds = append(p.fds, fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
			return p, fmt.Errorf("set DF on the UDP socket: %w", err)
		}
		tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			return p, fmt.Errorf("set the UDP socket's send timeout: %w", err)
		}
		if ttl > 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl); err != nil {
				return p, fmt.Errorf("set the UDP socket's TTL: %w", err)
			}
		}
		// The encap loops of several networks bind the same ports.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return p, fmt.Errorf("set SO_REUSEPORT on the UDP socket: %w", err)
		}
		// Port i*span/n of the range, or the next free one of its share
		// (another program may hold it).
		first, last := lo+uint16(i*span/n), lo+uint16((i+1)*span/n-1)
		var berr error
		for port := first; ; port++ {
			if berr = unix.Bind(fd, &unix.SockaddrInet4{Addr: vtep, Port: int(port)}); berr == nil {
				p.ports = append(p.ports, port)
				break
			}
			if !errors.Is(berr, unix.EADDRINUSE) || port == last {
				return p, fmt.Errorf("bind a UDP socket to %d.%d.%d.%d, ports %d-%d: %w", vtep[0], vtep[1], vtep[2], vtep[3], first, last, berr)
			}
		}
	}
	p.to.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&p.to.Port))[:], dstPort)
	p.msg.Name = (*byte)(unsafe.Pointer(&p.to))
	p.msg.Namelen = unix.SizeofSockaddrInet4
	p.msg.Iov = &p.iov[0]
	return p, nil
}

func (p *sockPool) close() {
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
}

// pick returns the socket index for an inner frame: by its flow hash.
func (p *sockPool) pick(inner []byte) int {
	return int(uint64(vxlan.InnerHash(inner, p.seed)) * uint64(len(p.fds)) >> 32)
}

// send sends the datagrams dgrams (each a VxLAN header plus an inner
// frame) from socket i to vtep with the given TOS, in one sendmsg: with
// UDP_SEGMENT set to the first's length when there are several (all but
// the last must then be of that length, and the last not longer).
func (p *sockPool) send(i int, vtep [4]byte, tos byte, dgrams [][]byte) error {
	if len(dgrams) == 0 || len(dgrams) > len(p.iov) {
		return errors.New("send: bad datagram count")
	}
	for k, d := range dgrams {
		p.iov[k].Base = &d[0]
		p.iov[k].SetLen(len(d))
	}
	p.msg.SetIovlen(len(dgrams))
	p.to.Addr = vtep
	// Control messages: IP_TOS, and UDP_SEGMENT for several datagrams.
	oob := unsafe.Slice((*byte)(unsafe.Pointer(&p.oobw[0])), len(p.oobw)*8)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TOS
	h.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = int32(tos)
	n := unix.CmsgSpace(4)
	if len(dgrams) > 1 {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[n+unix.CmsgLen(0)])) = uint16(len(dgrams[0]))
		n += unix.CmsgSpace(2)
	}
	p.msg.Control = &oob[0]
	p.msg.SetControllen(n)
	for {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(p.fds[i]), uintptr(unsafe.Pointer(&p.msg)), 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// sockSlot is the room for one datagram in the socket path's read arena:
// the VxLAN header and an inner frame as large as a UMEM frame allows
// (the daemon's MTU check keeps inner frames below it).
const sockSlot = 2048

// run is a run of datagrams for one sendmsg: the same socket, VTEP and
// TOS, all as long as the first but the last.
type run struct {
	sock  int
	vtep  [4]byte
	tos   byte
	bytes int
	dg    [][]byte
}

// encapLoopSocket is encapLoop for the socket transmit path: it reads
// network i's device into an arena of txBatch slots, writes the VxLAN
// header before each inner frame and sends runs of datagrams through p
// until the device is closed.
func (d *daemon) encapLoopSocket(i int, p *sockPool) {
	t := d.devs[i]
	n := d.nets[i]
	arena := make([]byte, txBatch*sockSlot)
	bufs := make([][]byte, txBatch)
	for k := range bufs {
		bufs[k] = arena[k*sockSlot : (k+1)*sockSlot]
	}
	sizes := make([]int, txBatch)
	r := run{dg: make([][]byte, 0, maxGSOSegs)}
	var lastWarn time.Time
	flush := func() {
		if len(r.dg) == 0 {
			return
		}
		if err := p.send(r.sock, r.vtep, r.tos, r.dg); err != nil {
			d.tx.drops[txSendError].Add(uint64(len(r.dg)))
			if time.Since(lastWarn) > 10*time.Second {
				d.log.Warn("sending encapsulated frames", "device", t.Name(), "err", err)
				lastWarn = time.Now()
			}
		} else {
			d.tx.frames.Add(uint64(len(r.dg)))
			d.tx.bytes.Add(uint64(r.bytes + len(r.dg)*(vxlan.Overhead-vxlan.HeaderLen)))
		}
		clear(r.dg)
		r.dg, r.bytes = r.dg[:0], 0
	}
	// add queues datagram dg for socket sock, vtep and tos, extending the
	// current run when it can take it.
	add := func(sock int, vtep [4]byte, tos byte, dg []byte) {
		if c := len(r.dg); c > 0 && (r.sock != sock || r.vtep != vtep || r.tos != tos || len(dg) > len(r.dg[0]) ||
			len(r.dg[c-1]) != len(r.dg[0]) || c == maxGSOSegs || r.bytes+len(dg) > maxUDPPayload) {
			flush()
		}
		r.sock, r.vtep, r.tos = sock, vtep, tos
		r.dg = append(r.dg, dg)
		r.bytes += len(dg)
	}
	for {
		m, err := t.Read(bufs, sizes, vxlan.HeaderLen)
		if err != nil && m == 0 {
			if d.readFailed(t, err, &lastWarn) {
				return
			}
			continue
		}
		// Owned until the iteration's last flush: the snapshot's encap
		// in flight.
		busy := int64(m)
		d.txBusy.Add(busy)
		for k := range m {
			dg := bufs[k][:vxlan.HeaderLen+sizes[k]]
			vxlan.PutHeader(dg, n.vni)
			inner := dg[vxlan.HeaderLen:]
			sock, tos := p.pick(inner), vxlan.InheritedTOS(inner)
			dst := vxlan.Ethernet(inner).Dst()
			if dst[0]&1 == 0 {
				// Static entries first; not behind a removed peer.
				if vtep, ok := n.lookup(&d.fdb, dst); ok {
					add(sock, vtep, tos, dg)
					continue
				}
			}
			// Broadcast, multicast or unknown unicast: one datagram per
			// peer, each sent on its own (after what is queued).
			peers := d.fdb.Flood(n.vni)
			if len(peers) == 0 {
				d.tx.drops[txNoPeer].Add(1)
				continue
			}
			flush()
			d.tx.copies.Add(uint64(len(peers) - 1))
			d.txBusy.Add(int64(len(peers) - 1))
			busy += int64(len(peers) - 1)
			for _, vtep := range peers {
				r.sock, r.vtep, r.tos, r.dg, r.bytes = sock, vtep, tos, append(r.dg, dg), len(dg)
				flush()
			}
		}
		flush()
		d.txBusy.Add(-busy)
	}
}
