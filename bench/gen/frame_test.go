package gen

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func testSpec(size int) FrameSpec {
	return FrameSpec{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xb},
		SrcIP: netip.MustParseAddr("192.0.2.2"), DstIP: netip.MustParseAddr("192.0.2.1"),
		SrcPort: 40000, VNI: 42,
		Inner: &FrameSpec{
			SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
			SrcIP: netip.MustParseAddr("10.42.0.1"), DstIP: netip.MustParseAddr("10.42.0.2"),
			SrcPort: 5000, DstPort: 5001,
		},
		Size: size,
	}
}

// TestBuildFrameVxLAN decodes the frame with gopacket as an independent
// oracle.
func TestBuildFrameVxLAN(t *testing.T) {
	for _, size := range []int{0, 128, 1514} {
		f, err := BuildFrame(testSpec(size))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := size
		if size == 0 {
			want = 14 + 20 + 8 + 8 + 14 + 20 + 8 + SeqLen + TimeLen
		}
		if len(f.Data) != want {
			t.Errorf("size %d: len %d, want %d", size, len(f.Data), want)
		}
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("size %d: decoding: %v", size, el.Error())
		}
		var ips []*layers.IPv4
		var udps []*layers.UDP
		for _, l := range p.Layers() {
			switch l := l.(type) {
			case *layers.IPv4:
				ips = append(ips, l)
			case *layers.UDP:
				udps = append(udps, l)
			case *layers.VXLAN:
				if !l.ValidIDFlag || l.VNI != 42 {
					t.Errorf("VxLAN flags/VNI = %v/%d, want valid/42", l.ValidIDFlag, l.VNI)
				}
			}
		}
		if len(ips) != 2 || len(udps) != 2 {
			t.Fatalf("size %d: %d IPv4 and %d UDP layers, want 2 and 2", size, len(ips), len(udps))
		}
		if udps[0].DstPort != VxLANPort || udps[0].SrcPort != 40000 || udps[1].SrcPort != 5000 || udps[1].DstPort != 5001 {
			t.Errorf("ports %v>%v, %v>%v", udps[0].SrcPort, udps[0].DstPort, udps[1].SrcPort, udps[1].DstPort)
		}
		for i, u := range udps {
			if u.Checksum != 0 {
				t.Errorf("UDP %d checksum %#x, want 0", i, u.Checksum)
			}
		}
		for i, ip := range ips {
			if ip.TTL != 64 || ip.Protocol != layers.IPProtocolUDP || ip.Flags != layers.IPv4DontFragment {
				t.Errorf("IPv4 %d: ttl %d proto %v flags %v", i, ip.TTL, ip.Protocol, ip.Flags)
			}
			if s := ipv4Checksum(ip.Contents); s != 0 {
				t.Errorf("IPv4 %d: header checksum does not verify (%#x)", i, s)
			}
		}
		if !ips[1].SrcIP.Equal(net.ParseIP("10.42.0.1")) || !ips[0].DstIP.Equal(net.ParseIP("192.0.2.1")) {
			t.Errorf("addresses %v, %v", ips[1].SrcIP, ips[0].DstIP)
		}
		payload := udps[1].Payload
		if f.SeqOffset != len(f.Data)-len(payload) || f.PayloadLen != len(payload) {
			t.Errorf("SeqOffset %d PayloadLen %d, gopacket says payload at %d, %d bytes", f.SeqOffset, f.PayloadLen, len(f.Data)-len(payload), len(payload))
		}
		if f.TimeOffset != f.SeqOffset+SeqLen {
			t.Errorf("TimeOffset %d, want %d", f.TimeOffset, f.SeqOffset+SeqLen)
		}
		for i, off := range f.SrcPortOffsets {
			if got := binary.BigEndian.Uint16(f.Data[off:]); got != uint16(udps[i].SrcPort) {
				t.Errorf("SrcPortOffsets[%d] reads %d, want %d", i, got, udps[i].SrcPort)
			}
		}
	}
}

func TestBuildFramePlain(t *testing.T) {
	s := testSpec(100)
	s.Inner = nil
	s.DstPort = 9
	f, err := BuildFrame(s)
	if err != nil {
		t.Fatal(err)
	}
	p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
	u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if u == nil || u.DstPort != 9 || int(u.Length) != 100-34 {
		t.Fatalf("UDP layer %+v", u)
	}
	if f.SeqOffset != 42 || len(f.SrcPortOffsets) != 1 {
		t.Errorf("SeqOffset %d, %d port offsets; want 42, 1", f.SeqOffset, len(f.SrcPortOffsets))
	}
}

func TestBuildFrameErrors(t *testing.T) {
	for name, mod := range map[string]func(*FrameSpec){
		"too small": func(s *FrameSpec) { s.Size = 99 },
		"too big":   func(s *FrameSpec) { s.Size = 70000 },
		"short mac": func(s *FrameSpec) { s.SrcMAC = s.SrcMAC[:5] },
		"ipv6":      func(s *FrameSpec) { s.DstIP = netip.MustParseAddr("2001:db8::1") },
		"inner bad": func(s *FrameSpec) { s.Inner.SrcIP = netip.Addr{} },
		"vni":       func(s *FrameSpec) { s.VNI = 1 << 24 },
	} {
		s := testSpec(0)
		inner := *s.Inner
		s.Inner = &inner
		mod(&s)
		if _, err := BuildFrame(s); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%s: err = %v, want ErrBadSpec", name, err)
		}
	}
}

// FuzzBuildFrame: any accepted spec yields a frame of the asked size that
// gopacket decodes as Ethernet/IPv4/UDP/VxLAN/Ethernet/IPv4/UDP, with the
// offsets inside it; any refused one wraps ErrBadSpec.
func FuzzBuildFrame(f *testing.F) {
	f.Add(0, uint16(1), uint16(2), uint32(42))
	f.Add(128, uint16(40000), uint16(5001), uint32(1<<24))
	f.Add(70000, uint16(0), uint16(0), uint32(0))
	f.Fuzz(func(t *testing.T, size int, sport, dport uint16, vni uint32) {
		s := testSpec(size)
		s.SrcPort, s.VNI, s.Inner.DstPort = sport, vni, dport
		fr, err := BuildFrame(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v does not wrap ErrBadSpec", err)
			}
			return
		}
		if size != 0 && len(fr.Data) != size {
			t.Fatalf("len %d, want %d", len(fr.Data), size)
		}
		if fr.SeqOffset+fr.PayloadLen != len(fr.Data) || fr.PayloadLen < SeqLen {
			t.Fatalf("SeqOffset %d + PayloadLen %d != len %d", fr.SeqOffset, fr.PayloadLen, len(fr.Data))
		}
		for _, off := range fr.SrcPortOffsets {
			if off < 0 || off+2 > len(fr.Data) {
				t.Fatalf("port offset %d out of bounds", off)
			}
		}
		p := gopacket.NewPacket(fr.Data, layers.LayerTypeEthernet, gopacket.Default)
		vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if vx == nil || vx.VNI != vni {
			t.Fatalf("VxLAN layer %+v, want VNI %d", vx, vni)
		}
		n := 0
		for _, l := range p.Layers() {
			if l.LayerType() == layers.LayerTypeUDP {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d UDP layers, want 2", n)
		}
	})
}

func FuzzSeq(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 7}, 0)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, off int) {
		v, ok := Seq(b, off)
		inBounds := off >= 0 && off+SeqLen <= len(b)
		if ok != inBounds {
			t.Fatalf("Seq(len %d, %d) ok = %v", len(b), off, ok)
		}
		if ok && v != binary.BigEndian.Uint64(b[off:]) {
			t.Fatalf("Seq = %d", v)
		}
		if !ok && v != 0 {
			t.Fatalf("Seq failed but returned %d", v)
		}
		ts, tok := SentAt(b, off)
		if tok != ok || (ok && uint64(ts) != v) {
			t.Fatalf("SentAt = %d, %v; Seq = %d, %v", ts, tok, v, ok)
		}
	})
}
