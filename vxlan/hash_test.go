package vxlan

import (
	"encoding/binary"
	"testing"
)

func TestInnerHashFlowStable(t *testing.T) {
	a := innerFrame(100, 1000)
	b := innerFrame(1400, 1000) // same flow, other size and payload
	if InnerHash(a, 1) != InnerHash(b, 1) {
		t.Fatal("packets of one flow hash differently")
	}
	if InnerHash(a, 1) == InnerHash(a, 2) {
		t.Fatal("seed does not change the hash")
	}
	c := innerFrame(100, 1001)
	if InnerHash(a, 1) == InnerHash(c, 1) {
		t.Fatal("source port does not change the hash")
	}
	// A fragment hashes without ports: all fragments of a datagram stay
	// together.
	f1, f2 := innerFrame(100, 1000), innerFrame(100, 2000)
	for _, f := range [][]byte{f1, f2} {
		binary.BigEndian.PutUint16(f[20:22], 0x2000) // MF
	}
	if InnerHash(f1, 1) != InnerHash(f2, 1) {
		t.Fatal("fragments hashed by their (absent) ports")
	}
}

func TestHashSpread(t *testing.T) {
	// 10k flows over 8 buckets: each bucket within 20% of the mean.
	const flows, buckets = 10000, 8
	var n [buckets]int
	for i := 0; i < flows; i++ {
		f := innerFrame(64, uint16(i))
		binary.BigEndian.PutUint16(f[36:38], uint16(i>>16)+9000)
		n[OuterHash(f, 0x5eed)%buckets]++
	}
	for i, c := range n {
		if c < flows/buckets*8/10 || c > flows/buckets*12/10 {
			t.Fatalf("bucket %d has %d of %d flows: %v", i, c, flows, n)
		}
	}
}

func TestHashShortInputs(t *testing.T) {
	f := innerFrame(100, 1)
	for n := 0; n <= len(f); n++ {
		InnerHash(f[:n], 3)
		OuterHash(f[:n], 3)
	}
	for _, et := range []uint16{EtherTypeIPv6, EtherTypeVLAN, EtherTypeARP} {
		g := innerFrame(100, 1)
		binary.BigEndian.PutUint16(g[12:14], et)
		for n := 0; n <= len(g); n++ {
			InnerHash(g[:n], 3)
		}
	}
}

func FuzzHash(f *testing.F) {
	f.Add(innerFrame(64, 1), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, seed uint32) {
		if InnerHash(b, seed) != InnerHash(b, seed) || OuterHash(b, seed) != InnerHash(b, seed) {
			t.Fatal("hash not deterministic")
		}
		// Protocol reads the same header as the hash: an IP frame's
		// protocol is a byte of the frame, at the place the hash mixes in.
		if p, ok := Protocol(b); ok {
			l3, et := EthernetLen, binary.BigEndian.Uint16(b[12:14])
			if et == EtherTypeVLAN || et == EtherTypeQinQ {
				l3, et = l3+VLANTagLen, binary.BigEndian.Uint16(b[16:18])
			}
			switch {
			case et == EtherTypeIPv4 && b[l3+9] == p:
			case et == EtherTypeIPv6 && b[l3+6] != ipv6Fragment && b[l3+6] == p:
			case et == EtherTypeIPv6 && b[l3+6] == ipv6Fragment && b[l3+40] == p:
			default:
				t.Fatalf("protocol %d of EtherType %#x is not the header's at %d", p, et, l3)
			}
		}
	})
}
