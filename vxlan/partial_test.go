package vxlan

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// pseudoSum returns the folded one's-complement sum of an IPv4
// pseudo-header, word by word: what a Linux sender leaves in a checksum
// field it hands to the device (~csum_tcpudp_magic(src, dst, len, proto, 0)).
// It is written independently of internal/csum on purpose.
func pseudoSum(src, dst net.IP, proto uint8, length int) uint16 {
	s, d := src.To4(), dst.To4()
	words := []uint32{
		uint32(s[0])<<8 | uint32(s[1]), uint32(s[2])<<8 | uint32(s[3]),
		uint32(d[0])<<8 | uint32(d[1]), uint32(d[2])<<8 | uint32(d[3]),
		uint32(proto), uint32(length),
	}
	var sum uint32
	for _, w := range words {
		sum += w
	}
	for sum > 0xFFFF {
		sum = sum&0xFFFF + sum>>16
	}
	return uint16(sum)
}

var (
	oracleOuterSrc = net.IP{192, 0, 2, 2}
	oracleOuterDst = net.IP{192, 0, 2, 1}
	oracleInnerSrc = net.IP{10, 42, 0, 1}
	oracleInnerDst = net.IP{10, 42, 0, 2}
)

// oracleFrame builds with gopacket a VxLAN frame whose inner frame carries
// an ICMP echo, a UDP datagram or a TCP segment ("icmp", "udp", "tcp"),
// with every checksum complete. It returns the frame and the offset of
// the inner L4 header in it.
func oracleFrame(t *testing.T, inner string) (frame []byte, l4 int) {
	t.Helper()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	ie := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8}, EthernetType: layers.EthernetTypeIPv4}
	iip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, SrcIP: oracleInnerSrc, DstIP: oracleInnerDst}
	payload := gopacket.Payload(bytes.Repeat([]byte("partial"), 41)) // odd length
	ib := gopacket.NewSerializeBuffer()
	var err error
	switch inner {
	case "icmp":
		iip.Protocol = layers.IPProtocolICMPv4
		err = gopacket.SerializeLayers(ib, opts, ie, iip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}, payload)
	case "udp":
		iip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: 40000, DstPort: 5201}
		u.SetNetworkLayerForChecksum(iip)
		err = gopacket.SerializeLayers(ib, opts, ie, iip, u, payload)
	case "tcp":
		iip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 500}
		tc.SetNetworkLayerForChecksum(iip)
		err = gopacket.SerializeLayers(ib, opts, ie, iip, tc, payload)
	}
	if err != nil {
		t.Fatal(err)
	}
	oe := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	oip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: oracleOuterSrc, DstIP: oracleOuterDst}
	oudp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
	oudp.SetNetworkLayerForChecksum(oip)
	ob := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(ob, opts, oe, oip, oudp, &layers.VXLAN{ValidIDFlag: true, VNI: 42}, gopacket.Payload(ib.Bytes())); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(ob.Bytes()), Overhead + 14 + 20
}

// outerPartial turns frame's outer UDP checksum into a partial one.
func outerPartial(frame []byte) {
	ulen := int(binary.BigEndian.Uint16(frame[38:]))
	binary.BigEndian.PutUint16(frame[40:], pseudoSum(oracleOuterSrc, oracleOuterDst, ProtoUDP, ulen))
}

// innerPartial turns the inner TCP or UDP checksum into a partial one,
// keeping the outer checksum as the sender's local checksum offload
// computes it: over the frame with the inner checksum complete.
func innerPartialize(frame []byte, l4 int, proto uint8) {
	field := map[uint8]int{ProtoTCP: 16, ProtoUDP: 6}[proto]
	binary.BigEndian.PutUint16(frame[l4+field:], pseudoSum(oracleInnerSrc, oracleInnerDst, proto, len(frame)-l4))
}

func TestDecapPartialChecksum(t *testing.T) {
	cases := []struct {
		name     string
		inner    string
		mutate   func(f []byte, l4 int)
		policy   PartialPolicy
		want     Reason
		wantInfo Info
	}{
		{"complete", "icmp", func(f []byte, l4 int) {}, PartialAccept, Deliver, 0},
		{"outer partial", "icmp", func(f []byte, l4 int) { outerPartial(f) }, PartialAccept, Deliver, InfoPartialChecksum},
		{"outer partial, TCP inside", "tcp", func(f []byte, l4 int) { outerPartial(f) }, PartialAccept, Deliver, InfoPartialChecksum},
		{"outer partial, dropped", "icmp", func(f []byte, l4 int) { outerPartial(f) }, PartialDrop, DropPartialCsum, 0},
		{"outer partial off by one", "icmp", func(f []byte, l4 int) { outerPartial(f); f[41]++ }, PartialAccept, DropUDPChecksum, 0},
		{"outer partial, payload corrupted", "icmp", func(f []byte, l4 int) { outerPartial(f); f[len(f)-1] ^= 1 }, PartialAccept, Deliver, InfoPartialChecksum},
		{"inner UDP partial", "udp", func(f []byte, l4 int) { innerPartialize(f, l4, ProtoUDP) }, PartialAccept, Deliver, InfoInnerPartial},
		{"inner TCP partial", "tcp", func(f []byte, l4 int) { innerPartialize(f, l4, ProtoTCP) }, PartialAccept, Deliver, InfoInnerPartial},
		{"inner TCP partial, dropped", "tcp", func(f []byte, l4 int) { innerPartialize(f, l4, ProtoTCP) }, PartialDrop, DropPartialCsum, 0},
		{"inner partial off by one", "tcp", func(f []byte, l4 int) { innerPartialize(f, l4, ProtoTCP); f[l4+17]++ }, PartialAccept, DropUDPChecksum, 0},
		{"inner partial, VNI corrupted", "udp", func(f []byte, l4 int) { innerPartialize(f, l4, ProtoUDP); f[46] ^= 1 }, PartialAccept, DropUDPChecksum, 0},
		{"inner partial, inner address corrupted", "udp", func(f []byte, l4 int) {
			innerPartialize(f, l4, ProtoUDP)
			f[l4-1] ^= 1 // inner destination address: its IPv4 checksum now fails too, but the outer check comes first
		}, PartialAccept, DropUDPChecksum, 0},
		{"inner ICMP with a bad outer checksum", "icmp", func(f []byte, l4 int) { f[l4+2] ^= 1 }, PartialAccept, DropUDPChecksum, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame, l4 := oracleFrame(t, tc.inner)
			orig := bytes.Clone(frame)
			tc.mutate(frame, l4)
			d := Decoder{Partial: tc.policy}
			in, _, _, r, info := d.DecapInfo(frame)
			if r != tc.want || info != tc.wantInfo {
				t.Fatalf("DecapInfo = %v, info %b; want %v, info %b", r, info, tc.want, tc.wantInfo)
			}
			if _, _, _, r2 := d.Decap(frame); r2 != r {
				t.Fatalf("Decap = %v, DecapInfo %v", r2, r)
			}
			if info&InfoInnerPartial == 0 {
				return
			}
			// Completing the inner checksum restores the frame gopacket
			// built, so the outer checksum now verifies as it is.
			if !CompleteInnerChecksum(in) {
				t.Fatal("CompleteInnerChecksum found no TCP or UDP segment")
			}
			if !bytes.Equal(frame, orig) {
				t.Fatalf("completed frame differs from gopacket's:\ngot  %x\nwant %x", frame, orig)
			}
			if _, _, _, r, info := d.DecapInfo(frame); r != Deliver || info != 0 {
				t.Fatalf("after completion: %v, info %b; want a complete frame", r, info)
			}
			p := gopacket.NewPacket(in, layers.LayerTypeEthernet, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
		})
	}
}

// TestCompleteInnerChecksum: gopacket agrees with the checksums it fills
// in, and frames it cannot handle stay untouched.
func TestCompleteInnerChecksum(t *testing.T) {
	for _, inner := range []string{"udp", "tcp"} {
		frame, l4 := oracleFrame(t, inner)
		in := frame[Overhead:]
		want := bytes.Clone(in)
		binary.BigEndian.PutUint16(frame[l4+map[string]int{"udp": 6, "tcp": 16}[inner]:], 0xBEEF)
		if !CompleteInnerChecksum(in) || !bytes.Equal(in, want) {
			t.Errorf("%s: completed %x, want %x", inner, in, want)
		}
	}
	frame, _ := oracleFrame(t, "icmp")
	in := frame[Overhead:]
	want := bytes.Clone(in)
	if CompleteInnerChecksum(in) || !bytes.Equal(in, want) {
		t.Error("ICMP frame changed")
	}
	if CompleteInnerChecksum(in[:20]) {
		t.Error("short frame completed")
	}
	if a := testing.AllocsPerRun(100, func() { CompleteInnerChecksum(in) }); a != 0 {
		t.Errorf("CompleteInnerChecksum: %v allocs", a)
	}
}
