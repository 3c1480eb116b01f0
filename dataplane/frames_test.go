package dataplane

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"mflow/vxlan"
)

// Test traffic: flows of VxLAN frames whose inner UDP payload carries the
// flow number and a per-flow sequence number, so the sink can check order.

const (
	testVNI     = 42
	payloadLen  = 18 // flow (4) + global seq (8) + flow seq (4) + pad
	innerHdrLen = 14 + 20 + 8
)

// innerTemplate builds, with gopacket as an independent encoder, the inner
// Ethernet/IPv4/UDP frame of flow f with a zero payload.
func innerTemplate(tb testing.TB, f int) []byte {
	tb.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(10, 42, 0, 1).To4(), DstIP: net.IPv4(10, 42, 0, 2).To4(),
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(10000 + f), DstPort: 5201}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(make([]byte, payloadLen))); err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var testEncoder = vxlan.Encoder{
	SrcMAC: [6]byte{0x02, 0xaa, 0, 0, 0, 1},
	SrcIP:  [4]byte{192, 0, 2, 2},
}

var testRemote = vxlan.Remote{IP: [4]byte{192, 0, 2, 1}, MAC: [6]byte{0x02, 0xbb, 0, 0, 0, 1}}

// encapFrame writes into buf the VxLAN frame of flow f's inner template
// stamped with the sequence numbers, and returns its length.
func encapFrame(tb testing.TB, enc *vxlan.Encoder, buf, inner []byte, flow uint32, seq uint64, flowSeq uint32) int {
	n := vxlan.Overhead + len(inner)
	copy(buf[vxlan.Overhead:], inner)
	p := buf[vxlan.Overhead+innerHdrLen : n]
	binary.BigEndian.PutUint32(p[0:], flow)
	binary.BigEndian.PutUint64(p[4:], seq)
	binary.BigEndian.PutUint32(p[12:], flowSeq)
	if !enc.Encap(buf[:n], testVNI, &testRemote) {
		tb.Errorf("encap frame %d failed", seq)
	}
	return n
}

// stamp reads back the sequence numbers from an inner frame.
func stamp(inner []byte) (flow uint32, seq uint64, flowSeq uint32, ok bool) {
	if len(inner) < innerHdrLen+16 {
		return 0, 0, 0, false
	}
	p := inner[innerHdrLen:]
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), binary.BigEndian.Uint32(p[12:]), true
}

// corruptions turn a good frame into one Decap must drop with a known
// reason; each returns the new frame length.
var corruptions = []struct {
	reason vxlan.Reason
	apply  func(f []byte) int
}{
	{vxlan.DropShort, func(f []byte) int { return 10 }},
	{vxlan.DropBadIPv4, func(f []byte) int { f[14+10] ^= 0xff; return len(f) }},
	{vxlan.DropPort, func(f []byte) int { binary.BigEndian.PutUint16(f[36:], 4790); return len(f) }},
	{vxlan.DropNoIFlag, func(f []byte) int { f[42] = 0; return len(f) }},
	{vxlan.DropInnerSrcMAC, func(f []byte) int { f[vxlan.Overhead+6] |= 1; return len(f) }},
}

// traffic generates frames for a memio.Source: round-robin over flows,
// with a random share of corrupted frames whose expected drop reasons it
// tallies. Gen runs on the dispatcher goroutine only; read the tallies after
// Run returns.
type traffic struct {
	tb       testing.TB
	inner    [][]byte
	flowSeq  []uint32
	enc      vxlan.Encoder
	rng      *rand.Rand
	dropRate float64
	want     [vxlan.NumReasons]uint64 // expected drops by reason
}

func newTraffic(tb testing.TB, flows int, dropRate float64, seed uint64) *traffic {
	t := &traffic{tb: tb, flowSeq: make([]uint32, flows), enc: testEncoder, dropRate: dropRate,
		rng: rand.New(rand.NewPCG(seed, 7))}
	for f := range flows {
		t.inner = append(t.inner, innerTemplate(tb, f))
	}
	return t
}

func (t *traffic) gen(seq uint64, buf []byte) int {
	f := int(seq % uint64(len(t.inner)))
	n := encapFrame(t.tb, &t.enc, buf, t.inner[f], uint32(f), seq, t.flowSeq[f])
	t.flowSeq[f]++
	if t.dropRate > 0 && t.rng.Float64() < t.dropRate {
		c := corruptions[t.rng.IntN(len(corruptions))]
		n = c.apply(buf[:n])
		t.want[c.reason]++
	}
	return n
}

// templates returns count complete, valid VxLAN frames of flows flows
// (for benchmarks: reading them costs no copy).
func templates(tb testing.TB, flows, count int) [][]byte {
	enc := testEncoder
	var out [][]byte
	inner := make([][]byte, flows)
	for f := range flows {
		inner[f] = innerTemplate(tb, f)
	}
	for i := range count {
		f := i % flows
		buf := make([]byte, vxlan.Overhead+len(inner[f]))
		encapFrame(tb, &enc, buf, inner[f], uint32(f), uint64(i), uint32(i/flows))
		out = append(out, buf)
	}
	return out
}
