package daemon

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"mflow/tap"
	"mflow/vxlan"
)

// The tunnel transmit path (vtep.transmit: tunnel). A TCP super-frame the
// container's stack handed the TAP (up to 64 KB, one virtio header) is
// read whole, gets its outer Ethernet, IPv4, UDP and VxLAN headers
// written in the headroom in front of it, and goes into the transmit TAP
// behind a virtio header that says "TCP segmentation inside a UDP/IPv4
// tunnel": the kernel builds one socket buffer, the program at the
// transmit TAP's ingress redirects it to the uplink, and the uplink's
// driver (tunnel TSO) or the kernel's GSO in front of it cuts it, as for
// the kernel's own VxLAN device. On a veth wire it stays whole up to the
// peer's VxLAN, which decapsulates it once. No byte of a super-frame's
// payload is copied in user space: one copy out of the container's TAP,
// one into the transmit TAP (a merged run of UDP datagrams, and a packet
// that has to be cut here, are copied once more).

// encapLoopTunnel is encapLoop for the tunnel path: it reads one queue t
// of network i's TAP and writes to queue txq of the transmit TAP until
// the device is closed.
func (d *daemon) encapLoopTunnel(i int, t *tap.Device, txq int) {
	n := d.nets[i]
	lo, hi, _ := d.cfg.VTEP.SourcePortRange() // validated
	enc := vxlan.Encoder{SrcMAC: d.uplinkMAC, SrcIP: d.vtep, Port: uint16(d.cfg.VTEP.Port), Seed: flowSeed,
		SrcPortMin: lo, SrcPortMax: hi, TTL: uint8(d.cfg.VTEP.TTL), UDPChecksum: d.cfg.VTEP.OuterUDPChecksum(), InheritTOS: true}
	off := tunHead - tap.VirtioNetHdrLen // where a read puts the TAP's virtio header
	bufs := make([][]byte, tunBatch)
	for k := range bufs {
		bufs[k] = make([]byte, off+tap.MaxPacket)
	}
	sizes := make([]int, tunBatch)
	layouts := make([]tap.Layout, tunBatch)
	frames := make([][]byte, tunBatch)
	run := make([]byte, tunHead+vxlan.EthernetLen+0xFFFF) // a merged run of UDP datagrams
	w := tunWriter{d: d, q: txq, udpQ: txq, enc: &enc}
	if d.txUDP > 0 {
		w.udpQ = d.txUDP + txq
	}
	// The TAP's read counters are published after the frames are counted
	// in flight (and the window raised to cover them), so that a snapshot
	// never sees more read than in flight can explain.
	t.HoldReadStats()
	for {
		m, err := t.ReadPackets(bufs, sizes, layouts, off)
		if err != nil && m == 0 {
			t.ReleaseReadStats() // packets it dropped, if any: none is in flight
			if d.readFailed(t, err, &w.lastWarn) {
				return
			}
			continue
		}
		// Owned until written or dropped: the snapshot's encap in
		// flight, in wire frames as the TAP counted them.
		var busy int64
		for k := range m {
			frames[k] = bufs[k][tunHead : off+sizes[k]]
			busy += int64(layouts[k].Frames)
		}
		for cur := d.txBatchMax.Load(); busy > cur && !d.txBatchMax.CompareAndSwap(cur, busy); cur = d.txBatchMax.Load() {
		}
		d.txBusy.Add(busy)
		t.ReleaseReadStats()
		for k := 0; k < m; k++ {
			b := bufs[k][:off+sizes[k]]
			l := &layouts[k]
			dst := vxlan.Ethernet(frames[k]).Dst()
			if dst[0]&1 == 0 {
				if vtep, ok := n.lookup(&d.fdb, dst); ok {
					// A run of datagrams of one flow (one Ethernet
					// header, so one VTEP) goes as one super-frame.
					if r, rl, size := udpRun(frames[k:m], layouts[k:m], run); r > 1 {
						w.send(run[:tunHead+size], &rl, n.vni, vtep)
						k += r - 1
						continue
					}
					w.send(b, l, n.vni, vtep)
					continue
				}
			}
			peers := d.fdb.Flood(n.vni)
			if len(peers) == 0 {
				d.tx.drops[txNoPeer].Add(uint64(l.Frames))
				continue
			}
			extra := int64(len(peers)-1) * int64(l.Frames)
			d.tx.copies.Add(uint64(extra))
			d.txBusy.Add(extra)
			busy += extra
			for _, vtep := range peers {
				w.send(b, l, n.vni, vtep)
			}
		}
		d.txBusy.Add(-busy)
	}
}

// tunWriter sends one encap loop's packets into its queues of the
// transmit TAP (queue).
type tunWriter struct {
	d        *daemon
	q        int // the loop's own queue: the kernel's work runs inside the write
	udpQ     int // UDP flows' queue, with RPS where vtep.transmit_rps is on (else q)
	enc      *vxlan.Encoder
	th       tap.TunnelHdr
	lastWarn time.Time
	// Scratch for a packet cut in user space (segmented): allocated the
	// first time one comes.
	segBufs  [][]byte
	segSizes []int
}

// send encapsulates the packet in b (tunHead bytes of room, then the
// frame) for vtep and writes it, or counts why not, in wire frames.
func (w *tunWriter) send(b []byte, l *tap.Layout, vni uint32, vtep [4]byte) {
	d := w.d
	mac, ok := d.hops.lookup(vtep)
	if !ok {
		d.tx.drops[txNoNeighbour].Add(uint64(l.Frames))
		d.hops.want(vtep)
		return
	}
	to := vxlan.Remote{IP: vtep, MAC: mac}
	pkt := b[tap.TunnelHdrLen:]
	frame := pkt[vxlan.Overhead:]
	// A plain frame's partial checksum is finished here: the kernel
	// marks only a GSO packet as encapsulated, so a NIC would take a plain
	// one's checksum offsets for the outer UDP's (and the outer sum, when
	// asked for, covers the inner one). At most an MTU's bytes.
	completeCsum(frame, l)
	if len(pkt)-vxlan.EthernetLen > 0xFFFF || !tunnelHdr(l, w.enc.UDPChecksum, &w.th) {
		// Too long for one outer IPv4 packet (a TAP's super-frame is
		// not, for Linux's TCP), or nothing the kernel takes in a
		// tunnel: cut it here.
		w.sendSegmented(b, l, vni, &to)
		return
	}
	if l.Hdr.GSOType != tap.GSONone {
		w.enc.EncapPartial(pkt, vni, &to)
	} else {
		w.enc.Encap(pkt, vni, &to)
	}
	w.th.Encode(b)
	w.write(w.queue(frame), b, l.Frames, l.WireBytes(len(frame))+l.Frames*vxlan.Overhead)
}

// queue picks the transmit TAP queue of an inner frame. UDP flows go to
// the queue with RPS, where the kernel's work behind the write (the
// redirect, the segmentation of a merged run, the uplink's side, per
// datagram) moves to the CPU of the flow's hash and the loop reads on;
// everything else (TCP: data super-frames and the ACKs of flows the
// other way; ICMP, ARP) is written inline, where the hand-off would cost
// more than it saves (BENCHMARKS.md, "RPS on the transmit TAP"). A flow's
// protocol never changes, so a flow keeps one queue and its order (every
// fragment of a UDP datagram reads UDP too; but fragments carry no ports,
// so their outer source port, and with it their CPU, can differ from
// the flow's whole datagrams', as on the TAP's queues and on ECMP paths:
// a flow that mixes the two can see them reordered against each other).
func (w *tunWriter) queue(frame []byte) int {
	if p, ok := vxlan.Protocol(frame); ok && p == vxlan.ProtoUDP {
		return w.udpQ
	}
	return w.q
}

// sendSegmented cuts the packet's super-frame into frames with complete
// checksums and writes each with its outer headers.
func (w *tunWriter) sendSegmented(b []byte, l *tap.Layout, vni uint32, to *vxlan.Remote) {
	d := w.d
	if w.segBufs == nil {
		const most = 1024 // a 64 KB super-frame cut at an MSS of 64
		w.segBufs, w.segSizes = make([][]byte, most), make([]int, most)
		for k := range w.segBufs {
			w.segBufs[k] = make([]byte, tunHead+2048)
		}
	}
	// The virtio header was read in front of the frame; an earlier copy
	// of a flooded frame may have written outer headers over it.
	l.Hdr.Encode(b[tunHead-tap.VirtioNetHdrLen:])
	n, r := tap.Segment(b[tunHead-tap.VirtioNetHdrLen:], w.segBufs, w.segSizes, tunHead)
	if r != tap.OK {
		d.tx.drops[txTooBig].Add(uint64(l.Frames))
		return
	}
	var plain tap.TunnelHdr
	for k := range n {
		s := w.segBufs[k][:tunHead+w.segSizes[k]]
		if !w.enc.Encap(s[tap.TunnelHdrLen:], vni, to) {
			d.tx.drops[txTooBig].Add(1)
			continue
		}
		plain.Encode(s)
		w.write(w.queue(s[tunHead:]), s, 1, len(s)-tap.TunnelHdrLen)
	}
	if n < l.Frames {
		d.tx.drops[txTooBig].Add(uint64(l.Frames - n))
	}
}

// write writes one packet that makes frames wire frames of bytes bytes
// into queue q.
func (w *tunWriter) write(q int, pkt []byte, frames, bytes int) {
	d := w.d
	err := d.tunTx.Write(q, pkt)
	if err == nil && q != w.q {
		d.tx.udpQueued.Add(1)
	}
	if err == nil {
		d.tx.frames.Add(uint64(frames))
		d.tx.bytes.Add(uint64(bytes))
		return
	}
	d.tx.drops[txSendError].Add(uint64(frames))
	if time.Since(w.lastWarn) > 10*time.Second {
		msg := "writing to the transmit TAP"
		if errors.Is(err, unix.EINVAL) {
			msg = "the kernel refused an encapsulated packet on the transmit TAP"
		}
		d.log.Warn(msg, "device", d.tunTx.Name(), "err", err)
		w.lastWarn = time.Now()
	}
}
