package vxlan

import (
	"bytes"
	"encoding/binary"
	"testing"
)

var (
	testLocal  = [4]byte{192, 0, 2, 1}
	testRemote = Remote{IP: [4]byte{192, 0, 2, 2}, MAC: [6]byte{0x02, 0, 0, 0, 0, 0x02}}
	testSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

// innerFrame returns an inner Ethernet/IPv4/UDP frame of size bytes (at
// least 42) from 10.42.0.1:sport to 10.42.0.2:9000, with a valid IPv4
// header checksum and a payload pattern.
func innerFrame(size int, sport uint16) []byte {
	f := make([]byte, size)
	copy(f[0:6], []byte{0x02, 0x42, 0, 0, 0, 0x02})
	copy(f[6:12], []byte{0x02, 0x42, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(f[12:14], EtherTypeIPv4)
	ip := IPv4(f[14:34])
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(size-14))
	ip[8] = 64
	ip[9] = ProtoUDP
	copy(ip[12:16], []byte{10, 42, 0, 1})
	copy(ip[16:20], []byte{10, 42, 0, 2})
	ip.SetChecksum()
	binary.BigEndian.PutUint16(f[34:36], sport)
	binary.BigEndian.PutUint16(f[36:38], 9000)
	binary.BigEndian.PutUint16(f[38:40], uint16(size-34))
	for i := 42; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}

// encapFrame returns a complete VxLAN frame around a fresh inner frame.
func encapFrame(t testing.TB, enc *Encoder, innerSize int, vni uint32) (pkt, inner []byte) {
	t.Helper()
	in := innerFrame(innerSize, 5000)
	pkt = make([]byte, Overhead+len(in))
	copy(pkt[Overhead:], in)
	if !enc.Encap(pkt, vni, &testRemote) {
		t.Fatalf("Encap refused a %d-byte inner frame", innerSize)
	}
	return pkt, in
}

func testEncoder() *Encoder {
	return &Encoder{SrcMAC: testSrcMAC, SrcIP: testLocal}
}

// setPartial sets the outer UDP checksum of an encapFrame to the partial
// one a sender with checksum offload leaves: the pseudo-header sum.
func setPartial(pkt []byte) {
	ulen := int(binary.BigEndian.Uint16(pkt[38:]))
	binary.BigEndian.PutUint16(pkt[40:], pseudoSum(testLocal[:], testRemote.IP[:], ProtoUDP, ulen))
}

// fixIPv4 recomputes the outer IPv4 header checksum after a mutation.
func fixIPv4(pkt []byte) { IPv4(pkt[14:]).SetChecksum() }

func TestDecapDropReasons(t *testing.T) {
	cases := []struct {
		name   string
		dec    Decoder
		mutate func(p []byte) []byte
		want   Reason
	}{
		{"valid", Decoder{}, func(p []byte) []byte { return p }, Deliver},
		{"empty", Decoder{}, func(p []byte) []byte { return p[:0] }, DropShort},
		{"shorter than Ethernet", Decoder{}, func(p []byte) []byte { return p[:13] }, DropShort},
		{"shorter than IPv4", Decoder{}, func(p []byte) []byte { return p[:14+19] }, DropShort},
		{"ARP", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[12:], EtherTypeARP); return p }, DropNotIPv4},
		{"IPv6 EtherType", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[12:], EtherTypeIPv6); return p }, DropNotIPv4},
		{"IP version 6 in IPv4 EtherType", Decoder{}, func(p []byte) []byte { p[14] = 0x65; fixIPv4(p); return p }, DropNotIPv4},
		{"IHL below 5", Decoder{}, func(p []byte) []byte { p[14] = 0x44; return p }, DropBadIPv4},
		{"total length beyond frame", Decoder{}, func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[16:], uint16(len(p)-14+1))
			fixIPv4(p)
			return p
		}, DropBadIPv4},
		{"total length below header", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[16:], 19); fixIPv4(p); return p }, DropBadIPv4},
		{"bad header checksum", Decoder{}, func(p []byte) []byte { p[24] ^= 0xFF; return p }, DropBadIPv4},
		{"options beyond frame", Decoder{}, func(p []byte) []byte { p = p[:14+24]; p[14] = 0x4F; binary.BigEndian.PutUint16(p[16:], 24); return p }, DropBadIPv4},
		{"more fragments", Decoder{}, func(p []byte) []byte { p[20] |= 0x20; fixIPv4(p); return p }, DropFragment},
		{"fragment offset", Decoder{}, func(p []byte) []byte { p[20], p[21] = 0x00, 0x10; fixIPv4(p); return p }, DropFragment},
		{"TCP", Decoder{}, func(p []byte) []byte { p[23] = ProtoTCP; fixIPv4(p); return p }, DropNotUDP},
		{"no room for UDP", Decoder{}, func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[16:], 20+7)
			fixIPv4(p)
			return p
		}, DropShort},
		{"wrong port", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[36:], 4790); return p }, DropPort},
		{"non-default port configured", Decoder{Port: 8472}, func(p []byte) []byte { return p }, DropPort},
		{"UDP length below header", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[38:], 7); return p }, DropBadUDPLen},
		{"UDP length without VxLAN header", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[38:], 15); return p }, DropBadUDPLen},
		{"UDP length beyond IPv4 payload", Decoder{}, func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[38:], uint16(len(p)-34+1))
			return p
		}, DropBadUDPLen},
		{"bad UDP checksum", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[40:], 0x1234); return p }, DropUDPChecksum},
		{"partial UDP checksum, accept", Decoder{}, func(p []byte) []byte { setPartial(p); return p }, Deliver},
		{"partial UDP checksum, drop", Decoder{Partial: PartialDrop}, func(p []byte) []byte { setPartial(p); return p }, DropPartialCsum},
		{"I flag clear", Decoder{}, func(p []byte) []byte { p[42] = 0; return p }, DropNoIFlag},
		{"reserved bit, ignore", Decoder{}, func(p []byte) []byte { p[43] = 0x80; return p }, Deliver},
		{"reserved bit, strict", Decoder{Reserved: ReservedStrict}, func(p []byte) []byte { p[43] = 0x80; return p }, DropReserved},
		{"inner too short", Decoder{}, func(p []byte) []byte {
			p = p[:Overhead+13]
			binary.BigEndian.PutUint16(p[16:], uint16(len(p)-14))
			fixIPv4(p)
			binary.BigEndian.PutUint16(p[38:], uint16(len(p)-34))
			return p
		}, DropInnerShort},
		{"inner VLAN", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[Overhead+12:], EtherTypeVLAN); return p }, DropInnerVLAN},
		{"inner QinQ", Decoder{}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[Overhead+12:], EtherTypeQinQ); return p }, DropInnerVLAN},
		{"inner VLAN allowed", Decoder{AllowInnerVLAN: true}, func(p []byte) []byte { binary.BigEndian.PutUint16(p[Overhead+12:], EtherTypeVLAN); return p }, Deliver},
		{"inner source multicast", Decoder{}, func(p []byte) []byte { p[Overhead+6] = 0x01; return p }, DropInnerSrcMAC},
		{"inner source broadcast", Decoder{}, func(p []byte) []byte { copy(p[Overhead+6:], bytes.Repeat([]byte{0xFF}, 6)); return p }, DropInnerSrcMAC},
		{"inner source zero", Decoder{}, func(p []byte) []byte { copy(p[Overhead+6:], make([]byte, 6)); return p }, DropInnerSrcMAC},
	}
	seen := map[Reason]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkt, _ := encapFrame(t, testEncoder(), 100, 42)
			pkt = tc.mutate(pkt)
			inner, _, _, got := tc.dec.Decap(pkt)
			if got != tc.want {
				t.Fatalf("Decap verdict = %v, want %v", got, tc.want)
			}
			if (got == Deliver) != (inner != nil) {
				t.Fatalf("verdict %v with inner of %d bytes (nil=%v)", got, len(inner), inner == nil)
			}
			seen[got] = true
		})
	}
	for r := Reason(0); r < DropUnknownVNI; r++ {
		if !seen[r] {
			t.Errorf("no case produces %v", r)
		}
	}
}

func TestDecapOuterVLAN(t *testing.T) {
	pkt, in := encapFrame(t, testEncoder(), 80, 7)
	tagged := make([]byte, 0, len(pkt)+4)
	tagged = append(tagged, pkt[:12]...)
	tagged = append(tagged, 0x81, 0x00, 0x00, 0x64)
	tagged = append(tagged, pkt[12:]...)
	inner, vni, _, r := (&Decoder{}).Decap(tagged)
	if r != Deliver || vni != 7 || !bytes.Equal(inner, in) {
		t.Fatalf("tagged outer frame: verdict %v vni %d, inner equal %v", r, vni, bytes.Equal(inner, in))
	}
	if Ethernet(tagged).VLANID() != 100 {
		t.Fatalf("VLANID = %d, want 100", Ethernet(tagged).VLANID())
	}
	if off := InnerOffset(tagged); !bytes.Equal(tagged[off:off+len(in)], in) {
		t.Fatalf("InnerOffset %d of a tagged frame does not give the inner frame", off)
	}
}

// TestInnerOffsetIPOptions: the inner frame's offset counts outer IPv4
// options (Decap accepts them).
func TestInnerOffsetIPOptions(t *testing.T) {
	pkt, in := encapFrame(t, testEncoder(), 80, 7)
	opt := make([]byte, 0, len(pkt)+8)
	opt = append(opt, pkt[:34]...)
	opt = append(opt, 1, 1, 1, 0, 1, 1, 1, 0) // NOP options, 8 bytes
	opt = append(opt, pkt[34:]...)
	ip := IPv4(opt[14:])
	ip[0] = 0x47 // IHL 7
	ip[2], ip[3] = byte((len(opt)-14)>>8), byte(len(opt)-14)
	fixIPv4(opt)
	inner, _, _, r := (&Decoder{}).Decap(opt)
	if r != Deliver || !bytes.Equal(inner, in) {
		t.Fatalf("frame with IP options: verdict %v, inner equal %v", r, bytes.Equal(inner, in))
	}
	if off := InnerOffset(opt); off != 14+28+8+8 || !bytes.Equal(opt[off:off+len(in)], in) {
		t.Fatalf("InnerOffset = %d, want %d", off, 14+28+8+8)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, csum := range []bool{false, true} {
		for _, size := range []int{42, 60, 64, 100, 1450, 9000} {
			for _, vni := range []uint32{0, 1, 42, MaxVNI} {
				enc := testEncoder()
				enc.UDPChecksum = csum
				pkt, in := encapFrame(t, enc, size, vni)
				// Ethernet padding after the datagram must not reach
				// the inner frame.
				padded := append(pkt[:len(pkt):len(pkt)], 0, 0, 0, 0)
				for _, frame := range [][]byte{pkt, padded} {
					inner, gotVNI, src, r := (&Decoder{Reserved: ReservedStrict}).Decap(frame)
					if r != Deliver {
						t.Fatalf("size %d vni %d csum %v: verdict %v", size, vni, csum, r)
					}
					if gotVNI != vni || src != testLocal || !bytes.Equal(inner, in) {
						t.Fatalf("size %d: got vni %d src %v, inner equal %v", size, gotVNI, src, bytes.Equal(inner, in))
					}
					if &inner[0] != &frame[Overhead] || cap(inner) != len(inner) {
						t.Fatalf("inner is not a clipped sub-slice of the frame")
					}
				}
				if csum && UDP(pkt[34:]).Checksum() == 0 {
					t.Fatalf("UDP checksum requested but zero")
				}
			}
		}
	}
}

func TestEncapRefuses(t *testing.T) {
	e := testEncoder()
	if e.Encap(make([]byte, Overhead+13), 1, &testRemote) {
		t.Fatal("Encap accepted an inner frame shorter than Ethernet")
	}
	if e.Encap(make([]byte, Overhead+65536), 1, &testRemote) {
		t.Fatal("Encap accepted a datagram over 65535 bytes")
	}
}

func TestEncapSourcePort(t *testing.T) {
	e := testEncoder()
	seen := map[uint16]bool{}
	for sport := uint16(1); sport <= 200; sport++ {
		in := innerFrame(64, sport)
		pkt := append(make([]byte, Overhead), in...)
		e.Encap(pkt, 1, &testRemote)
		p := UDP(pkt[34:]).SrcPort()
		if p < 49152 {
			t.Fatalf("source port %d outside 49152-65535", p)
		}
		seen[p] = true
		// Same flow, same port.
		pkt2 := append(make([]byte, Overhead), in...)
		e.Encap(pkt2, 1, &testRemote)
		if UDP(pkt2[34:]).SrcPort() != p {
			t.Fatal("one flow got two source ports")
		}
	}
	if len(seen) < 150 {
		t.Fatalf("200 flows used only %d source ports", len(seen))
	}
	fixed := testEncoder()
	fixed.SrcPortMin, fixed.SrcPortMax = 5555, 5555
	pkt := append(make([]byte, Overhead), innerFrame(64, 1)...)
	fixed.Encap(pkt, 1, &testRemote)
	if p := UDP(pkt[34:]).SrcPort(); p != 5555 {
		t.Fatalf("fixed source port: got %d", p)
	}
}

// TestHeaderBitFlips flips each of the 64 bits of a valid VxLAN header and
// checks the verdict against the documented policy: the I flag is required,
// VNI bits change the VNI, every other bit is reserved (delivered under
// ReservedIgnore, dropped under ReservedStrict).
func TestHeaderBitFlips(t *testing.T) {
	const vni = 0x123456
	for bit := 0; bit < 64; bit++ {
		for _, pol := range []ReservedPolicy{ReservedIgnore, ReservedStrict} {
			pkt, in := encapFrame(t, testEncoder(), 64, vni)
			hdr := pkt[42:50]
			hdr[bit/8] ^= 0x80 >> (bit % 8)
			inner, gotVNI, _, r := (&Decoder{Reserved: pol}).Decap(pkt)
			var want Reason
			wantVNI := uint32(vni)
			switch {
			case bit == 4: // the I flag
				want = DropNoIFlag
			case bit >= 32 && bit < 56:
				want = Deliver
				wantVNI ^= 1 << (55 - bit)
			case pol == ReservedStrict:
				want = DropReserved
			default:
				want = Deliver
			}
			if r != want {
				t.Fatalf("bit %d policy %v: verdict %v, want %v", bit, pol, r, want)
			}
			if r == Deliver && (gotVNI != wantVNI || !bytes.Equal(inner, in)) {
				t.Fatalf("bit %d policy %v: vni %#x want %#x", bit, pol, gotVNI, wantVNI)
			}
		}
	}
}

func TestReasonStrings(t *testing.T) {
	names := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || names[s] {
			t.Fatalf("reason %d has label %q (empty, unknown or duplicate)", r, s)
		}
		names[s] = true
	}
	if NumReasons.String() != "unknown" {
		t.Fatal("out-of-range reason must say unknown")
	}
}

func TestZeroAllocs(t *testing.T) {
	enc := testEncoder()
	enc.UDPChecksum = true
	pkt, _ := encapFrame(t, enc, 1000, 42)
	dec := &Decoder{Reserved: ReservedStrict}
	var fdb FDB
	fdb.Learn(42, testSrcMAC, testLocal, 1)
	if a := testing.AllocsPerRun(1000, func() {
		if _, _, _, r := dec.Decap(pkt); r != Deliver {
			t.Fatal(r)
		}
	}); a != 0 {
		t.Errorf("Decap: %v allocs per frame", a)
	}
	if a := testing.AllocsPerRun(1000, func() { enc.Encap(pkt, 42, &testRemote) }); a != 0 {
		t.Errorf("Encap: %v allocs per frame", a)
	}
	if a := testing.AllocsPerRun(1000, func() { InnerHash(pkt[Overhead:], 1); OuterHash(pkt, 1) }); a != 0 {
		t.Errorf("hashes: %v allocs per frame", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		fdb.Lookup(42, testSrcMAC)
		fdb.Flood(42)
		fdb.Learn(42, testSrcMAC, testLocal, 2)
	}); a != 0 {
		t.Errorf("FDB lookup/learn of a known station: %v allocs", a)
	}
}

// FuzzDecap: for any input, Decap either delivers an inner frame that lies
// inside the input, ends at the UDP datagram and is at least an Ethernet
// header long, or drops with one of the documented reasons. It never panics
// and never changes its input.
func FuzzDecap(f *testing.F) {
	pkt, _ := encapFrame(f, testEncoder(), 100, 42)
	f.Add(pkt, false, false)
	f.Add(pkt[:50], true, false)
	f.Add([]byte{}, false, true)
	csum := testEncoder()
	csum.UDPChecksum = true
	pkt2, _ := encapFrame(f, csum, 64, 1)
	f.Add(pkt2, true, true)
	pkt3 := bytes.Clone(pkt)
	setPartial(pkt3)
	f.Add(pkt3, false, false)
	f.Fuzz(func(t *testing.T, frame []byte, strict, vlan bool) {
		d := Decoder{AllowInnerVLAN: vlan}
		if strict {
			d.Reserved = ReservedStrict
		}
		orig := bytes.Clone(frame)
		inner, _, _, r, info := d.DecapInfo(frame)
		if !bytes.Equal(orig, frame) {
			t.Fatal("Decap modified its input")
		}
		if r >= NumReasons {
			t.Fatalf("unknown verdict %d", r)
		}
		if _, _, _, r2 := d.Decap(frame); r2 != r {
			t.Fatalf("Decap %v, DecapInfo %v", r2, r)
		}
		if r != Deliver {
			if inner != nil || info != 0 {
				t.Fatalf("drop %v returned an inner frame or info %b", r, info)
			}
			if r == DropPartialCsum {
				t.Fatal("DropPartialCsum under PartialAccept")
			}
			return
		}
		if info&^(InfoPartialChecksum|InfoInnerPartial) != 0 || info == InfoPartialChecksum|InfoInnerPartial {
			t.Fatalf("info %b", info)
		}
		if info != 0 {
			// The same frame is a drop under PartialDrop, with that reason.
			pd := d
			pd.Partial = PartialDrop
			if _, _, _, r := pd.Decap(frame); r != DropPartialCsum {
				t.Fatalf("info %b under PartialAccept, %v under PartialDrop", info, r)
			}
		}
		if info&InfoInnerPartial != 0 {
			// Completing the inner checksum makes the frame complete:
			// the outer checksum then verifies over its bytes.
			c := bytes.Clone(frame)
			ci, _, _, _ := d.Decap(c)
			if !CompleteInnerChecksum(ci) {
				t.Fatal("InfoInnerPartial without an inner TCP or UDP segment")
			}
			if _, _, _, r, info := d.DecapInfo(c); r != Deliver || info != 0 {
				t.Fatalf("after CompleteInnerChecksum: %v, info %b", r, info)
			}
		}
		if len(inner) < EthernetLen {
			t.Fatalf("delivered inner frame of %d bytes", len(inner))
		}
		// inner must be a sub-slice of frame that ends where the UDP
		// datagram ends.
		at := -1
		for off := 0; off+len(inner) <= len(frame); off++ {
			if &frame[off] == &inner[0] {
				at = off
				break
			}
		}
		if at < 0 {
			t.Fatal("inner frame does not point into the input")
		}
		if got := InnerOffset(frame); got != at {
			t.Fatalf("InnerOffset = %d, inner frame at %d", got, at)
		}
		l3 := EthernetLen
		if Ethernet(frame).EtherType() == EtherTypeVLAN {
			l3 += VLANTagLen
		}
		udpAt := l3 + IPv4(frame[l3:]).HeaderLen()
		if end := udpAt + UDP(frame[udpAt:]).Length(); at+len(inner) != end || at != udpAt+UDPLen+HeaderLen {
			t.Fatalf("inner frame spans [%d,%d), datagram payload is [%d,%d)", at, at+len(inner), udpAt+16, end)
		}
		if inner[6]&1 != 0 {
			t.Fatal("delivered a multicast source MAC")
		}
	})
}

// TestInheritedTOS: DSCP and ECN come from an inner IPv4 header, CE becoming
// ECT(0); anything else gets 0.
func TestInheritedTOS(t *testing.T) {
	ipv4 := func(tos byte) []byte {
		f := make([]byte, 14+20)
		f[12], f[13], f[14], f[15] = 0x08, 0x00, 0x45, tos
		return f
	}
	for _, tc := range []struct {
		frame []byte
		want  byte
	}{
		{ipv4(0xb8), 0xb8}, // EF, not ECN-capable
		{ipv4(0xb9), 0xb9}, // ECT(1)
		{ipv4(0xbb), 0xba}, // CE → ECT(0)
		{append([]byte{}, make([]byte, 14)...), 0},
		{ipv4(0x10)[:20], 0}, // truncated
	} {
		if got := InheritedTOS(tc.frame); got != tc.want {
			t.Errorf("InheritedTOS(% x) = %#x, want %#x", tc.frame[14:min(16, len(tc.frame))], got, tc.want)
		}
	}
}
