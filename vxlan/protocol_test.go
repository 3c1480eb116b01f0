package vxlan

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestProtocol: the IP protocol of frames built by gopacket (IPv4 and IPv6,
// with and without a VLAN tag), none for ARP and for truncated frames.
func TestProtocol(t *testing.T) {
	eth := func(et layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: et}
	}
	v4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	}
	v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	build := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, append(ls, gopacket.Payload(make([]byte, 8)))...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	// gopacket decodes IPv6 fragment headers but does not write them: put
	// one (next header UDP, offset 100) between the IPv6 header and the
	// rest, and check that gopacket reads it back.
	v6Frag := func(f []byte) []byte {
		out := append(append([]byte(nil), f[:EthernetLen+40]...), 17, 0, 0x03, 0x20, 0, 0, 0, 7)
		out = append(out, f[EthernetLen+40:]...)
		out[EthernetLen+6] = 44
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		if fr, ok := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); !ok || fr.NextHeader != layers.IPProtocolUDP || fr.FragmentOffset != 100 {
			t.Fatalf("the fragment header built by hand does not decode: %v", p)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		frame []byte
		proto uint8
		ok    bool
	}{
		{"ipv4 udp", build(eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolUDP), udp), ProtoUDP, true},
		{"ipv4 tcp", build(eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2}), ProtoTCP, true},
		{"vlan ipv4 udp", build(eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, v4(layers.IPProtocolUDP), udp), ProtoUDP, true},
		{"ipv6 udp", build(eth(layers.EthernetTypeIPv6), v6, udp), ProtoUDP, true},
		{"ipv6 udp fragment", v6Frag(build(eth(layers.EthernetTypeIPv6), v6, udp)), ProtoUDP, true},
		{"arp", build(eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			SourceHwAddress: make([]byte, 6), SourceProtAddress: make([]byte, 4), DstHwAddress: make([]byte, 6), DstProtAddress: make([]byte, 4)}), 0, false},
	} {
		p, ok := Protocol(c.frame)
		if p != c.proto || ok != c.ok {
			t.Errorf("%s: Protocol = %d, %v; want %d, %v", c.name, p, ok, c.proto, c.ok)
		}
		// Cut inside the IP header: no protocol.
		if p, ok := Protocol(c.frame[:EthernetLen+8]); ok && c.ok {
			t.Errorf("%s cut to 22 bytes: Protocol = %d, true", c.name, p)
		}
	}
}
