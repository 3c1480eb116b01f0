package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"

	"mflow/bench/testbed/testbedtest"
	"mflow/bench/traffic"
	"mflow/bpf"
	"mflow/config"
	"mflow/internal/csum"
	"mflow/tap"
	"mflow/vxlan"
)

var (
	tunSrcIP = [4]byte{192, 0, 2, 1}
	tunDstIP = [4]byte{192, 0, 2, 2}
)

// tapPacket serializes an inner TCP/IPv4 (or UDP/IPv4) frame with
// gopacket and lays it out as a TAP returns it in a buffer with the
// tunnel path's headroom: the virtio header right before the frame. A
// super-frame (mss > 0) or a frame with a partial checksum has the
// pseudo-header sum in its checksum field, as the kernel leaves it.
func tapPacket(t testing.TB, udp, vlan bool, payload, mss int) (b []byte, inner []byte) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	l3 := 14
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4})
		l3 = 18
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, TOS: 0xb9, SrcIP: net.IP{10, 42, 0, 2}, DstIP: net.IP{10, 42, 0, 1}}
	ls = append(ls, ip)
	var l4len, off int
	if udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: 5000, DstPort: 6000}
		u.SetNetworkLayerForChecksum(ip)
		ls = append(ls, u)
		l4len, off = 8, 6
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: 5000, DstPort: 6000, Seq: 77, ACK: true, PSH: true, Window: 512}
		tc.SetNetworkLayerForChecksum(ip)
		ls = append(ls, tc)
		l4len, off = 20, 16
	}
	p := make([]byte, payload)
	for i := range p {
		p[i] = byte(i * 7)
	}
	ls = append(ls, gopacket.Payload(p))
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	inner = append([]byte(nil), sb.Bytes()...)
	frame := append([]byte(nil), inner...)
	l4 := l3 + 20
	pseudo := csum.PseudoIPv4([4]byte{10, 42, 0, 2}, [4]byte{10, 42, 0, 1}, byte(ip.Protocol), len(frame)-l4)
	binary.BigEndian.PutUint16(frame[l4+off:], csum.Fold(pseudo))
	h := tap.VirtioNetHdr{Flags: tap.FlagNeedsCsum, CsumStart: uint16(l4), CsumOffset: uint16(off)}
	if mss > 0 {
		h.GSOType, h.GSOSize, h.HdrLen = tap.GSOTCPv4, uint16(mss), uint16(l4+l4len)
		if udp {
			h.GSOType = tap.GSOUDPL4
		}
	}
	b = make([]byte, tunHead+len(frame))
	h.Encode(b[tunHead-tap.VirtioNetHdrLen:])
	copy(b[tunHead:], frame)
	return b, inner
}

// TestTunnelHdr: a TCP super-frame read from a TAP becomes one outer
// frame (gopacket decodes outer IPv4 with a valid header checksum and the
// outer length, UDP to 4789 with its length, VxLAN VNI 42, the inner frame
// unchanged) behind a header that asks for TCP segmentation inside a
// UDP/IPv4 tunnel with offsets moved past the outer headers; with an outer
// checksum, the UDP field holds the pseudo-header sum and the header asks
// the kernel to finish it. A plain frame's partial checksum is refused
// until completeCsum finishes it (to gopacket's checksum); a super-frame
// without a partial checksum is refused (the caller cuts it).
func TestTunnelHdr(t *testing.T) {
	for _, tc := range []struct {
		name            string
		udp, vlan, outC bool
		payload, mss    int
	}{
		{"tcp", false, false, false, 20000, 1398},
		{"tcp_vlan", false, true, false, 5000, 1000},
		{"tcp_outer_csum", false, false, true, 20000, 1398},
		{"uso", true, false, false, 9000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, inner := tapPacket(t, tc.udp, tc.vlan, tc.payload, tc.mss)
			l, r := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
			if r != tap.OK || l.Frames != (tc.payload+tc.mss-1)/tc.mss {
				t.Fatalf("ParsePacket: %+v, %v", l, r)
			}
			var th tap.TunnelHdr
			if !tunnelHdr(&l, tc.outC, &th) {
				t.Fatal("tunnelHdr refused a super-frame")
			}
			l3 := 14
			if tc.vlan {
				l3 = 18
			}
			l4len, off, inType := 20, 16, uint8(tap.GSOTCPv4)
			if tc.udp {
				l4len, off, inType = 8, 6, tap.GSOUDPL4
			}
			wantFlags := uint8(tap.FlagNeedsCsum)
			if tc.outC {
				wantFlags |= tap.FlagUDPTunnelCsum
			}
			want := tap.TunnelHdr{VirtioNetHdr: tap.VirtioNetHdr{Flags: wantFlags, GSOType: inType | tap.GSOUDPTunnelIPv4,
				HdrLen: uint16(50 + l3 + 20 + l4len), GSOSize: uint16(tc.mss), CsumStart: uint16(50 + l3 + 20), CsumOffset: uint16(off)},
				OuterTH: 34, InnerNH: uint16(50 + l3)}
			if th != want {
				t.Fatalf("tunnel header %+v, want %+v", th, want)
			}
			enc := vxlan.Encoder{SrcIP: tunSrcIP, UDPChecksum: tc.outC, InheritTOS: true}
			pkt := b[tap.TunnelHdrLen:]
			if !enc.EncapPartial(pkt, 42, &vxlan.Remote{IP: tunDstIP, MAC: [6]byte{2, 0, 0, 0, 0, 9}}) {
				t.Fatal("EncapPartial refused")
			}
			th.Encode(b)
			var back tap.VirtioNetHdr
			back.Decode(b)
			if back != th.VirtioNetHdr || binary.LittleEndian.Uint16(b[20:]) != 34 || binary.LittleEndian.Uint16(b[22:]) != uint16(50+l3) || !bytes.Equal(b[10:20], make([]byte, 10)) {
				t.Fatalf("encoded header % x", b[:tap.TunnelHdrLen])
			}
			p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			if ip == nil || u == nil || vx == nil {
				t.Fatalf("outer frame does not decode: %v", p)
			}
			wantTOS := uint8(0xb9) // inherited, as `tos inherit` (CE: see TestInheritedTOS)
			if tc.vlan {
				wantTOS = 0 // no IPv4 header right behind Ethernet
			}
			if !vxlan.IPv4(pkt[14:]).ChecksumValid() || int(ip.Length) != len(pkt)-14 || ip.TOS != wantTOS || ip.Flags&layers.IPv4DontFragment == 0 {
				t.Fatalf("outer IPv4: checksum valid %v, length %d of %d, TOS %#x (want %#x), flags %v",
					vxlan.IPv4(pkt[14:]).ChecksumValid(), ip.Length, len(pkt)-14, ip.TOS, wantTOS, ip.Flags)
			}
			if u.DstPort != 4789 || int(u.Length) != len(pkt)-34 || vx.VNI != 42 || !bytes.Equal(vx.Payload, pkt[50:]) {
				t.Fatalf("outer UDP %+v, VxLAN %+v", u, vx)
			}
			wantC := uint16(0)
			if tc.outC {
				wantC = csum.Fold(csum.PseudoIPv4(tunSrcIP, tunDstIP, 17, len(pkt)-34))
			}
			if u.Checksum != wantC {
				t.Fatalf("outer UDP checksum %#x, want %#x", u.Checksum, wantC)
			}
			// The inner frame is the TAP's, byte for byte but the
			// partial checksum the kernel finishes per segment.
			l4 := l3 + 20
			got := append([]byte(nil), pkt[50:]...)
			copy(got[l4+off:l4+off+2], inner[l4+off:l4+off+2])
			if !bytes.Equal(got, inner) {
				t.Fatal("the inner frame changed")
			}
		})
	}
	t.Run("tcp6", func(t *testing.T) {
		// An IPv6 inner super-frame: TCPv6 segmentation in the IPv4 tunnel.
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("fd00::2"), DstIP: net.ParseIP("fd00::1")}
		tc := &layers.TCP{SrcPort: 5000, DstPort: 6000, Seq: 1, ACK: true, Window: 512}
		tc.SetNetworkLayerForChecksum(ip6)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip6, tc, gopacket.Payload(make([]byte, 9000))); err != nil {
			t.Fatal(err)
		}
		frame := sb.Bytes()
		h := tap.VirtioNetHdr{Flags: tap.FlagNeedsCsum, GSOType: tap.GSOTCPv6, GSOSize: 1380, HdrLen: 74, CsumStart: 54, CsumOffset: 16}
		b := make([]byte, tunHead+len(frame))
		h.Encode(b[tunHead-tap.VirtioNetHdrLen:])
		copy(b[tunHead:], frame)
		l, r := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
		if r != tap.OK || l.Frames != 7 {
			t.Fatalf("ParsePacket: %+v, %v", l, r)
		}
		var th tap.TunnelHdr
		want := tap.TunnelHdr{VirtioNetHdr: tap.VirtioNetHdr{Flags: tap.FlagNeedsCsum, GSOType: tap.GSOTCPv6 | tap.GSOUDPTunnelIPv4,
			HdrLen: 50 + 74, GSOSize: 1380, CsumStart: 50 + 54, CsumOffset: 16}, OuterTH: 34, InnerNH: 64}
		if !tunnelHdr(&l, false, &th) || th != want {
			t.Fatalf("tunnel header %+v, want %+v", th, want)
		}
	})
	t.Run("plain_partial", func(t *testing.T) {
		b, inner := tapPacket(t, true, false, 300, 0)
		l, r := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
		if r != tap.OK || l.Frames != 1 {
			t.Fatalf("ParsePacket: %+v, %v", l, r)
		}
		var th tap.TunnelHdr
		if tunnelHdr(&l, false, &th) {
			t.Fatal("tunnelHdr took a plain frame whose checksum is still partial")
		}
		completeCsum(b[tunHead:], &l)
		if !bytes.Equal(b[tunHead:], inner) || l.Hdr.Flags&tap.FlagNeedsCsum != 0 {
			t.Fatalf("completed frame differs from gopacket's (checksum %#x, want %#x)", b[tunHead+40:tunHead+42], inner[40:42])
		}
		if !tunnelHdr(&l, true, &th) || th != (tap.TunnelHdr{}) {
			t.Fatalf("completed frame's header %+v, want none", th)
		}
	})
	t.Run("gso_without_partial", func(t *testing.T) {
		b, _ := tapPacket(t, false, false, 5000, 1000)
		l, _ := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
		l.Hdr.Flags = 0
		var th tap.TunnelHdr
		if tunnelHdr(&l, false, &th) {
			t.Fatal("tunnelHdr took a super-frame without a partial checksum")
		}
	})
}

// TestTunnelSendAllocs: sending a super-frame on the tunnel path (parse,
// headers, one write into a real transmit TAP) allocates nothing, and
// counts its segments as transmitted.
func TestTunnelSendAllocs(t *testing.T) {
	ns := testbedtest.NewNS(t, "mftt")
	var tx *tap.Tx
	if err := ns.Do(func() error {
		var err error
		tx, err = tap.OpenTx("mfxtest", 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	hops := &fakeHops{macs: map[[4]byte][6]byte{tunDstIP: {2, 0, 0, 0, 0, 9}}, wanted: map[[4]byte]int{}}
	d := &daemon{log: slog.Default(), tunTx: tx, hops: hops}
	enc := vxlan.Encoder{SrcIP: tunSrcIP, InheritTOS: true}
	w := tunWriter{d: d, enc: &enc}
	b, _ := tapPacket(t, false, false, 60000, 1398)
	hdr := append([]byte(nil), b[:tunHead]...)
	var frames int
	allocs := testing.AllocsPerRun(200, func() {
		copy(b, hdr) // the virtio header back in front of the frame
		l, r := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
		if r != tap.OK {
			t.Fatal(r)
		}
		frames = l.Frames
		w.send(b, &l, 42, tunDstIP)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per super-frame, want 0", allocs)
	}
	if sent, drops := d.tx.frames.Load(), d.tx.drops[txSendError].Load(); drops != 0 || sent != uint64(201*frames) {
		t.Fatalf("transmitted %d frames, %d send errors; want %d and 0", sent, drops, 201*frames)
	}
}

// TestUDPRun: four datagrams of one flow (the last shorter) read from a
// TAP, with partial checksums, merge into one UDP_L4 super-frame that
// tap.Segment cuts back into gopacket's datagrams (complete checksums;
// only the IPv4 identification and header checksum differ, numbered up
// from the first's); a datagram of another flow, a longer one after a
// short one, or a lone datagram starts no run.
func TestUDPRun(t *testing.T) {
	var frames [][]byte
	var layouts []tap.Layout
	var want [][]byte
	add := func(payload int, port uint16) {
		b, inner := tapPacket(t, true, false, payload, 0)
		if port != 0 {
			binary.BigEndian.PutUint16(b[tunHead+36:], port) // another destination port
		}
		l, r := tap.ParsePacket(b[tunHead-tap.VirtioNetHdrLen:])
		if r != tap.OK {
			t.Fatal(r)
		}
		frames, layouts, want = append(frames, b[tunHead:]), append(layouts, l), append(want, inner)
	}
	add(1000, 0)
	add(1000, 0)
	add(1000, 0)
	add(700, 0)
	add(1000, 0) // after the short one: a new run
	add(1000, 9) // another flow
	dst := make([]byte, tunHead+14+0xFFFF)
	n, l, size := udpRun(frames, layouts, dst)
	if n != 4 || l.Frames != 4 || l.Hdr.GSOType != tap.GSOUDPL4 || l.Hdr.GSOSize != 1000 || l.HdrLen != 42 || size != 42+3700 {
		t.Fatalf("run of %d frames, layout %+v, %d bytes", n, l, size)
	}
	pkt := make([]byte, tap.VirtioNetHdrLen+size)
	l.Hdr.Encode(pkt)
	copy(pkt[tap.VirtioNetHdrLen:], dst[tunHead:tunHead+size])
	bufs, sizes := make([][]byte, 8), make([]int, 8)
	for k := range bufs {
		bufs[k] = make([]byte, 2048)
	}
	k, r := tap.Segment(pkt, bufs, sizes, 0)
	if r != tap.OK || k != 4 {
		t.Fatalf("Segment: %d frames, %v", k, r)
	}
	for i := range k {
		got := bufs[i][:sizes[i]]
		if id := binary.BigEndian.Uint16(got[18:]); id != uint16(i) {
			t.Fatalf("datagram %d: IPv4 id %d", i, id)
		}
		if !vxlan.IPv4(got[14:]).ChecksumValid() {
			t.Fatalf("datagram %d: bad IPv4 header checksum", i)
		}
		norm := append([]byte(nil), got...)
		copy(norm[18:20], want[i][18:20])
		copy(norm[24:26], want[i][24:26])
		if !bytes.Equal(norm, want[i]) {
			t.Fatalf("datagram %d differs from gopacket's", i)
		}
	}
	if n, _, _ := udpRun(frames[4:], layouts[4:], dst); n != 0 {
		t.Fatalf("datagrams of two flows merged (%d)", n)
	}
	if n, _, _ := udpRun(frames[5:], layouts[5:], dst); n != 0 {
		t.Fatalf("a lone datagram made a run of %d", n)
	}
}

// TestE2ETAPQueues: on the tunnel path with two TAP queues, sixteen TCP
// streams container → peer at once (each verified end to end) are read
// from both queues, so by both encap loops (all sixteen on one queue has
// a chance of 2^-15), and every frame is accounted for.
func TestE2ETAPQueues(t *testing.T) {
	cfg := testConfig(t, "single", 1, 64)
	cfg.VTEP.Transmit = config.TransmitTunnel
	cfg.Steering.TapQueues = 2
	r := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const streams, each = 16, 2 << 20
	res, err := traffic.Bulk(ctx, r.topo.Ctr, r.topo.Peer, netip.AddrPortFrom(peerOverlay, 5301), traffic.BulkOptions{Streams: streams, Duration: 30 * time.Second, Limit: each})
	if err != nil || res.Bytes != streams*each {
		t.Fatalf("%d streams container → peer: %+v, %v", streams, res, err)
	}
	d := r.d.d
	if len(d.extra) != 1 || len(d.extra[0]) != 1 {
		t.Fatalf("extra queues %v, want one", d.extra)
	}
	q0, q1 := d.devs[0].Stats().Frames, d.extra[0][0].Stats().Frames
	t.Logf("frames read: queue 0 %d, queue 1 %d", q0, q1)
	if q0 == 0 || q1 == 0 {
		t.Fatalf("frames read: queue 0 %d, queue 1 %d; want both queues used by sixteen flows", q0, q1)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := r.d.Snapshot(); s.Check() != nil {
		t.Fatal(s.Check())
	}
}

// TestSteeringProgram: the TAP queue program gives both directions of a
// TCP flow and all of its packets one value, ports change it, fragments
// hash their addresses only, and a non-IPv4 frame gets 0.
func TestSteeringProgram(t *testing.T) {
	testbedtest.RequirePrivileges(t)
	p, err := bpf.NewSteering()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	frame := func(src, dst [4]byte, sport, dport uint16, frag bool) []byte {
		f := make([]byte, 14+20+20)
		f[12], f[13] = 0x08, 0x00
		f[14], f[23] = 0x45, 6
		if frag {
			f[20] = 0x20 // MF
		}
		copy(f[26:], src[:])
		copy(f[30:], dst[:])
		binary.BigEndian.PutUint16(f[34:], sport)
		binary.BigEndian.PutUint16(f[36:], dport)
		return f
	}
	run := func(f []byte) uint32 {
		v, err := p.Run(f)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := [4]byte{10, 42, 0, 2}, [4]byte{10, 42, 0, 1}
	fwd, rev := run(frame(a, b, 40000, 5201, false)), run(frame(b, a, 5201, 40000, false))
	if fwd != rev {
		t.Fatalf("the two directions of a flow: %#x and %#x", fwd, rev)
	}
	// Linux gives connecting sockets source ports of one parity: even
	// ports alone must spread too (the kernel keeps the low 16 bits).
	distinct := map[uint32]bool{}
	for port := uint16(40000); port < 40032; port += 2 {
		distinct[run(frame(a, b, port, 5201, false))&0xffff%4] = true
	}
	if len(distinct) < 3 {
		t.Fatalf("16 even source ports fall on %d of 4 queues", len(distinct))
	}
	if f1, f2 := run(frame(a, b, 1, 2, true)), run(frame(a, b, 3, 4, true)); f1 != f2 {
		t.Fatalf("fragments of one pair of addresses: %#x and %#x", f1, f2)
	}
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	if v := run(arp); v != 0 {
		t.Fatalf("ARP frame: %#x, want 0", v)
	}
}

// txTAPPackets returns the packets the running daemon's transmit TAP has
// taken (its receive count: one per write).
func txTAPPackets(t *testing.T, r *running) uint64 {
	t.Helper()
	var n uint64
	if err := r.topo.Host.Do(func() error {
		l, err := netlink.LinkByName(r.d.d.tunTx.Name())
		if err == nil && l.Attrs().Statistics != nil {
			n = l.Attrs().Statistics.RxPackets
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTunnelQueue: with UDP queues on the transmit TAP, UDP frames (with
// and without a VLAN tag, plain and merged) go to the UDP queue and TCP
// frames (data, super-frames and ACKs) to the loop's own; without,
// everything to the loop's own. (IPv6 and fragments: vxlan.TestProtocol.)
func TestTunnelQueue(t *testing.T) {
	w := tunWriter{q: 1, udpQ: 5}
	for _, c := range []struct {
		name      string
		udp, vlan bool
		payload   int
		want      int
		mss       int
	}{{"udp", true, false, 100, 5, 0}, {"udp vlan", true, true, 100, 5, 0}, {"udp merged run", true, false, 4000, 5, 1000},
		{"tcp", false, false, 1000, 1, 0}, {"tcp ack", false, false, 0, 1, 0}, {"tcp vlan", false, true, 100, 1, 0}, {"tcp super-frame", false, false, 60000, 1, 1398}} {
		_, frame := tapPacket(t, c.udp, c.vlan, c.payload, c.mss)
		if q := w.queue(frame); q != c.want {
			t.Errorf("%s: queue %d, want %d", c.name, q, c.want)
		}
		if q := (&tunWriter{q: 1, udpQ: 1}).queue(frame); q != 1 {
			t.Errorf("%s without UDP queues: queue %d, want 1", c.name, q)
		}
	}
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if q := w.queue(arp); q != 1 {
		t.Errorf("ARP: queue %d, want 1", q)
	}
}
