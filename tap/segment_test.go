package tap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"mflow/internal/csum"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	ip4A = net.IP{10, 42, 0, 1}
	ip4B = net.IP{10, 42, 0, 2}
	ip6A = net.ParseIP("fd00:42::1")
	ip6B = net.ParseIP("fd00:42::2")
)

// pktSpec describes a packet that the oracle (gopacket) builds.
type pktSpec struct {
	v6, udp, vlan bool
	seq           uint32
	id            uint16
	fin, psh, cwr bool
	tsOption      bool
	payload       []byte
}

// build serializes spec with gopacket, with complete checksums and lengths.
func build(t testing.TB, s pktSpec) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	if s.v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
	}
	ls = append(ls, eth)
	if s.vlan {
		eth2 := eth.EthernetType
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 42, Type: eth2})
	}
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolTCP
	if s.udp {
		proto = layers.IPProtocolUDP
	}
	if s.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: ip6A, DstIP: ip6B}
		ls, nl = append(ls, ip), ip
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: s.id, Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: ip4A, DstIP: ip4B}
		ls, nl = append(ls, ip), ip
	}
	if s.udp {
		u := &layers.UDP{SrcPort: 40000, DstPort: 5201}
		u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: s.seq, Ack: 777, ACK: true, FIN: s.fin, PSH: s.psh, CWR: s.cwr, Window: 512}
		if s.tsOption {
			tcp.Options = []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}},
			}
		}
		tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp)
	}
	ls = append(ls, gopacket.Payload(s.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serializing: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// offsets returns the L3 and L4 offsets and the L4 header length of a
// frame built by build.
func offsets(s pktSpec, frame []byte) (l3, l4, l4len int) {
	l3 = 14
	if s.vlan {
		l3 = 18
	}
	l4 = l3 + 20
	if s.v6 {
		l4 = l3 + 40
	}
	l4len = 8
	if !s.udp {
		l4len = int(frame[l4+12]>>4) * 4
	}
	return
}

// superFrame turns a complete frame into what a TAP with offloads hands
// over: a virtio header with GSO type and size, NEEDS_CSUM, and the L4
// checksum field holding the folded pseudo-header sum, as the kernel leaves
// it.
func superFrame(s pktSpec, frame []byte, gsoSize int) []byte {
	l3, l4, _ := offsets(s, frame)
	h := VirtioNetHdr{Flags: FlagNeedsCsum, HdrLen: uint16(len(frame)), CsumStart: uint16(l4)}
	switch {
	case s.udp:
		h.GSOType, h.CsumOffset = GSOUDPL4, 6
	case s.v6:
		h.GSOType, h.CsumOffset = GSOTCPv6, 16
	default:
		h.GSOType, h.CsumOffset = GSOTCPv4, 16
	}
	if gsoSize == 0 {
		h.GSOType = GSONone
	}
	h.GSOSize = uint16(gsoSize)
	out := make([]byte, VirtioNetHdrLen+len(frame))
	h.Encode(out)
	f := out[VirtioNetHdrLen:]
	copy(f, frame)
	// Partial checksum: the pseudo-header sum, not complemented.
	var ps uint64
	if s.v6 {
		ps = csum.Sum(f[l3+8:l3+40], 0)
	} else {
		ps = csum.Sum(f[l3+12:l3+20], 0)
	}
	proto := uint32(protoTCP)
	if s.udp {
		proto = protoUDP
	}
	ps += uint64(proto) + uint64(len(f)-l4)
	c := csum.Fold(ps)
	binary.BigEndian.PutUint16(f[l4+int(h.CsumOffset):], c)
	return out
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

func newBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// TestSegmentOracle cuts super-frames and compares every segment byte for
// byte with the segment that gopacket builds independently.
func TestSegmentOracle(t *testing.T) {
	const offset = 64
	for _, tc := range []struct {
		name    string
		spec    pktSpec
		n, mss  int
		wantSeg int
	}{
		{"tcp4 remainder", pktSpec{seq: 1000, id: 7, psh: true, fin: true, cwr: true}, 10000, 1400, 8},
		{"tcp4 exact", pktSpec{seq: 0xfffff000, id: 0xfffe, psh: true}, 4 * 1448, 1448, 4},
		{"tcp4 options", pktSpec{seq: 5, tsOption: true, psh: true}, 65000, 1398, 47},
		{"tcp4 one segment", pktSpec{seq: 5, psh: true}, 100, 1400, 1},
		{"tcp4 vlan", pktSpec{vlan: true, seq: 9, psh: true}, 3000, 1400, 3},
		{"tcp6", pktSpec{v6: true, seq: 77, psh: true, fin: true}, 9000, 1380, 7},
		{"udp4 uso", pktSpec{udp: true, id: 100}, 5000, 1200, 5},
		{"udp6 uso", pktSpec{udp: true, v6: true}, 2400, 1200, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			pl := payload(tc.n)
			s.payload = pl
			frame := build(t, s)
			pkt := superFrame(s, frame, tc.mss)
			orig := append([]byte(nil), pkt...)
			bufs, sizes := newBufs(64, offset+1600)
			n, r := Segment(pkt, bufs, sizes, offset)
			if r != OK || n != tc.wantSeg {
				t.Fatalf("Segment = %d, %v; want %d, ok", n, r, tc.wantSeg)
			}
			if !bytes.Equal(pkt, orig) {
				t.Errorf("Segment modified its input")
			}
			for i := 0; i < n; i++ {
				e := s
				lo, hi := i*tc.mss, min((i+1)*tc.mss, tc.n)
				e.payload = pl[lo:hi]
				e.id = s.id + uint16(i)
				e.seq = s.seq + uint32(lo)
				last := i == n-1
				e.fin, e.psh = s.fin && last, s.psh && last
				e.cwr = s.cwr && i == 0
				want := build(t, e)
				got := bufs[i][offset : offset+sizes[i]]
				if !bytes.Equal(got, want) {
					t.Errorf("segment %d differs from the oracle:\ngot  %s\nwant %s", i, describe(got), describe(want))
				}
			}
		})
	}
}

// describe decodes a frame with gopacket for failure messages.
func describe(b []byte) string {
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	var s string
	for _, l := range p.Layers() {
		if l.LayerType() == gopacket.LayerTypePayload {
			s += fmt.Sprintf("[payload %d bytes]", len(l.LayerContents()))
			continue
		}
		s += fmt.Sprintf("%v ", gopacket.LayerString(l))
	}
	return s
}

// TestSegmentNeedsCsum checks that a plain frame with a partial checksum
// comes out with the complete checksum that gopacket computes.
func TestSegmentNeedsCsum(t *testing.T) {
	for _, s := range []pktSpec{
		{seq: 1, psh: true, payload: payload(1000)},
		{udp: true, payload: payload(333)},
		{udp: true, v6: true, payload: payload(1)},
		{v6: true, payload: payload(0)},
	} {
		frame := build(t, s)
		pkt := superFrame(s, frame, 0)
		bufs, sizes := newBufs(1, 2000)
		n, r := Segment(pkt, bufs, sizes, 10)
		if r != OK || n != 1 {
			t.Fatalf("Segment = %d, %v; want 1, ok", n, r)
		}
		if got := bufs[0][10 : 10+sizes[0]]; !bytes.Equal(got, frame) {
			t.Errorf("checksum not filled:\ngot  %s\nwant %s", describe(got), describe(frame))
		}
	}
	// A frame without NEEDS_CSUM is copied untouched.
	frame := build(t, pktSpec{udp: true, payload: payload(10)})
	frame[len(frame)-1] ^= 0xff // wrong checksum now; must stay wrong
	pkt := append(make([]byte, VirtioNetHdrLen), frame...)
	bufs, sizes := newBufs(1, 2000)
	if n, r := Segment(pkt, bufs, sizes, 0); n != 1 || r != OK || !bytes.Equal(bufs[0][:sizes[0]], frame) {
		t.Errorf("plain frame: Segment = %d, %v, frame changed: %v", n, r, !bytes.Equal(bufs[0][:sizes[0]], frame))
	}
}

func TestSegmentDrops(t *testing.T) {
	s := pktSpec{seq: 1, payload: payload(5000)}
	good := superFrame(s, build(t, s), 1000)
	mod := func(f func(p []byte)) []byte {
		p := append([]byte(nil), good...)
		f(p)
		return p
	}
	bufs, sizes := newBufs(16, 1200)
	for _, tc := range []struct {
		name string
		pkt  []byte
		bufs [][]byte
		want Reason
	}{
		{"short", good[:20], bufs, DropShort},
		{"no buffers", good, nil, DropTooManySegments},
		{"too many segments", good, bufs[:4], DropTooManySegments},
		{"buffer too small", good, [][]byte{make([]byte, 500)}, DropTooManySegments},
		{"segment too big", mod(func(p []byte) { binary.LittleEndian.PutUint16(p[4:], 1400) }), bufs, DropBufferTooSmall},
		{"ufo", mod(func(p []byte) { p[1] = GSOUDP }), bufs, DropGSOUnsupported},
		{"unknown gso", mod(func(p []byte) { p[1] = 9 }), bufs, DropGSOUnsupported},
		{"not ip", mod(func(p []byte) { p[VirtioNetHdrLen+12] = 0x08; p[VirtioNetHdrLen+13] = 0x06 }), bufs, DropGSONotIP},
		{"tcp6 type on ipv4", mod(func(p []byte) { p[1] = GSOTCPv6 }), bufs, DropGSOBadHeaders},
		{"udp type on tcp", mod(func(p []byte) { p[1] = GSOUDPL4; p[8] = 6 }), bufs, DropGSOBadHeaders},
		{"csum start off", mod(func(p []byte) { binary.LittleEndian.PutUint16(p[6:], 30) }), bufs, DropGSOBadHeaders},
		{"gso size zero", mod(func(p []byte) { binary.LittleEndian.PutUint16(p[4:], 0) }), bufs, DropGSOBadHeaders},
		{"bad csum offsets", mod(func(p []byte) { p[1] = GSONone; binary.LittleEndian.PutUint16(p[6:], 9000) }), bufs, DropBadCsumOffsets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sz := sizes
			if tc.bufs == nil {
				sz = nil
			}
			n, r := Segment(tc.pkt, tc.bufs, sz, 0)
			if n != 0 || r != tc.want {
				t.Errorf("Segment = %d, %v; want 0, %v", n, r, tc.want)
			}
		})
	}
}

// TestSegmentAllocs checks that segmenting a 64 KiB super-frame does not
// allocate.
func TestSegmentAllocs(t *testing.T) {
	s := pktSpec{seq: 1, psh: true, payload: payload(64000)}
	pkt := superFrame(s, build(t, s), 1448)
	bufs, sizes := newBufs(64, 1600)
	allocs := testing.AllocsPerRun(100, func() {
		if n, r := Segment(pkt, bufs, sizes, 50); r != OK || n != 45 {
			t.Fatalf("Segment = %d, %v", n, r)
		}
	})
	if allocs != 0 {
		t.Errorf("Segment allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkSegmentTCP64K(b *testing.B) {
	s := pktSpec{seq: 1, psh: true, payload: payload(64000)}
	pkt := superFrame(s, build(b, s), 1448)
	bufs, sizes := newBufs(64, 1600)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var segs int
	for b.Loop() {
		n, _ := Segment(pkt, bufs, sizes, 50)
		segs += n
	}
	b.ReportMetric(float64(segs)/b.Elapsed().Seconds()/1e6, "Mframes/s")
}

func BenchmarkSegmentCsum1500(b *testing.B) {
	s := pktSpec{udp: true, payload: payload(1400)}
	pkt := superFrame(s, build(b, s), 0)
	bufs, sizes := newBufs(1, 1600)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		Segment(pkt, bufs, sizes, 50)
	}
}

// TestSegmentCursor cuts a super-frame a few buffers at a time, as Read
// does with few buffers, and compares with cutting it at once.
func TestSegmentCursor(t *testing.T) {
	s := pktSpec{seq: 9, psh: true, fin: true, payload: payload(20000)}
	pkt := superFrame(s, build(t, s), 1448)
	all, allSizes := newBufs(64, 1600)
	want, r := Segment(pkt, all, allSizes, 0)
	if r != OK || want != 14 {
		t.Fatalf("Segment = %d, %v", want, r)
	}
	if n, r := Segment(pkt, all[:5], allSizes[:5], 0); n != 0 || r != DropTooManySegments {
		t.Errorf("Segment with 5 buffers = %d, %v; want 0, %v", n, r, DropTooManySegments)
	}
	for _, step := range []int{1, 3, 5, 13} {
		bufs, sizes := newBufs(step, 1600)
		from := 0
		for from < want {
			n, total, r := segment(pkt, bufs, sizes, 0, from, true)
			if r != OK || total != want || n != min(step, want-from) {
				t.Fatalf("step %d from %d: segment = %d, %d, %v", step, from, n, total, r)
			}
			for i := 0; i < n; i++ {
				if !bytes.Equal(bufs[i][:sizes[i]], all[from+i][:allSizes[from+i]]) {
					t.Fatalf("step %d: frame %d differs", step, from+i)
				}
			}
			from += n
		}
	}
}
