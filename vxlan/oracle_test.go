package vxlan

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestOracleDecodesEncap has gopacket/layers, an independent implementation,
// decode every field of frames we encapsulate.
func TestOracleDecodesEncap(t *testing.T) {
	for _, csum := range []bool{false, true} {
		enc := testEncoder()
		enc.UDPChecksum = csum
		enc.TTL = 17
		pkt, in := encapFrame(t, enc, 200, 0xABCDE)
		p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(eth.DstMAC, testRemote.MAC[:]) || !bytes.Equal(eth.SrcMAC, testSrcMAC[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
			t.Fatalf("outer Ethernet: %+v", eth)
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip.Version != 4 || ip.IHL != 5 || ip.TTL != 17 || ip.Protocol != layers.IPProtocolUDP ||
			ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 || int(ip.Length) != len(pkt)-14 ||
			!ip.SrcIP.Equal(net.IP(testLocal[:])) || !ip.DstIP.Equal(net.IP(testRemote.IP[:])) {
			t.Fatalf("outer IPv4: %+v", ip)
		}
		// Recompute the header checksum with gopacket and compare.
		want := ip.Checksum
		buf := gopacket.NewSerializeBuffer()
		if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		var got layers.IPv4
		if err := got.DecodeFromBytes(buf.Bytes(), gopacket.NilDecodeFeedback); err != nil || got.Checksum != want {
			t.Fatalf("IPv4 checksum %#x, gopacket computes %#x", want, got.Checksum)
		}
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp.DstPort != 4789 || udp.SrcPort < 49152 || int(udp.Length) != len(pkt)-34 {
			t.Fatalf("outer UDP: %+v", udp)
		}
		if csum {
			if udp.Checksum == 0 {
				t.Fatal("UDP checksum not set")
			}
			if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
			b := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload)); err != nil {
				t.Fatal(err)
			}
			var again layers.UDP
			if err := again.DecodeFromBytes(b.Bytes(), gopacket.NilDecodeFeedback); err != nil || again.Checksum != udp.Checksum {
				t.Fatalf("UDP checksum %#x, gopacket computes %#x", udp.Checksum, again.Checksum)
			}
		} else if udp.Checksum != 0 {
			t.Fatalf("UDP checksum %#x, want 0", udp.Checksum)
		}
		vx := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if !vx.ValidIDFlag || vx.VNI != 0xABCDE || vx.GBPExtension {
			t.Fatalf("VxLAN: %+v", vx)
		}
		if !bytes.Equal(vx.Payload, in) {
			t.Fatal("inner frame differs")
		}
		innerEth, ok := p.Layers()[4].(*layers.Ethernet)
		if !ok || innerEth.EthernetType != layers.EthernetTypeIPv4 {
			t.Fatalf("inner Ethernet not decoded: %v", p.Layers())
		}
	}
}

// TestDecapOracleFrames decapsulates frames built by gopacket/layers.
func TestDecapOracleFrames(t *testing.T) {
	innerPayload := bytes.Repeat([]byte("mflow"), 30)
	for _, csum := range []bool{false, true} {
		for _, vni := range []uint32{1, 42, MaxVNI} {
			ie := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 8}, EthernetType: layers.EthernetTypeIPv4}
			iip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 42, 0, 1}, DstIP: net.IP{10, 42, 0, 2}}
			iudp := &layers.UDP{SrcPort: 1234, DstPort: 5678}
			if err := iudp.SetNetworkLayerForChecksum(iip); err != nil {
				t.Fatal(err)
			}
			ib := gopacket.NewSerializeBuffer()
			opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
			if err := gopacket.SerializeLayers(ib, opts, ie, iip, iudp, gopacket.Payload(innerPayload)); err != nil {
				t.Fatal(err)
			}
			inner := append([]byte(nil), ib.Bytes()...)

			oe := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
			oip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 0, 2, 2}, DstIP: net.IP{192, 0, 2, 1}}
			oudp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
			if err := oudp.SetNetworkLayerForChecksum(oip); err != nil {
				t.Fatal(err)
			}
			vx := &layers.VXLAN{ValidIDFlag: true, VNI: vni}
			ob := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(ob, opts, oe, oip, oudp, vx, gopacket.Payload(inner)); err != nil {
				t.Fatal(err)
			}
			frame := ob.Bytes()
			if !csum {
				// gopacket always computes the UDP checksum along
				// with the IPv4 one; clear it ("not computed"), as
				// most VTEPs send it.
				frame[40], frame[41] = 0, 0
			}
			got, gotVNI, src, r := (&Decoder{Reserved: ReservedStrict}).Decap(frame)
			if r != Deliver || gotVNI != vni || src != [4]byte{192, 0, 2, 2} || !bytes.Equal(got, inner) {
				t.Fatalf("csum %v vni %d: verdict %v vni %d src %v inner equal %v", csum, vni, r, gotVNI, src, bytes.Equal(got, inner))
			}
			// The inner frame hashes as the same flow as gopacket's
			// own view of it says it is.
			if InnerHash(got, 9) != InnerHash(inner, 9) {
				t.Fatal("hash differs for equal frames")
			}
		}
	}
}
