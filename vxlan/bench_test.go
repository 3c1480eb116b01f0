package vxlan

import "testing"

func BenchmarkDecap(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		csum bool
		dec  Decoder
	}{
		{"128B", 128 - Overhead, false, Decoder{Reserved: ReservedStrict}},
		{"1500B", 1500 - Overhead + 14, false, Decoder{Reserved: ReservedStrict}},
		{"128B-udpcsum", 128 - Overhead, true, Decoder{Reserved: ReservedStrict}},
		{"1500B-udpcsum", 1500 - Overhead + 14, true, Decoder{Reserved: ReservedStrict}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			enc := testEncoder()
			enc.UDPChecksum = bc.csum
			pkt, _ := encapFrame(b, enc, bc.size, 42)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, r := bc.dec.Decap(pkt); r != Deliver {
					b.Fatal(r)
				}
			}
		})
	}
}

func BenchmarkEncap(b *testing.B) {
	for _, csum := range []bool{false, true} {
		name := "nocsum"
		if csum {
			name = "udpcsum"
		}
		b.Run(name, func(b *testing.B) {
			enc := testEncoder()
			enc.UDPChecksum = csum
			pkt, _ := encapFrame(b, enc, 128-Overhead, 42)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				enc.Encap(pkt, 42, &testRemote)
			}
		})
	}
}

func BenchmarkInnerHash(b *testing.B) {
	f := innerFrame(100, 1)
	b.ReportAllocs()
	for b.Loop() {
		InnerHash(f, 1)
	}
}

func BenchmarkOuterHash(b *testing.B) {
	pkt, _ := encapFrame(b, testEncoder(), 100, 1)
	b.ReportAllocs()
	for b.Loop() {
		OuterHash(pkt, 1)
	}
}

func BenchmarkFDBLookup(b *testing.B) {
	var f FDB
	for i := 0; i < 256; i++ {
		f.Learn(42, [6]byte{2, 0, 0, 0, 1, byte(i)}, [4]byte{192, 0, 2, byte(i)}, 0)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Lookup(42, [6]byte{2, 0, 0, 0, 1, 77})
	}
}
