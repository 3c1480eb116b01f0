package csum

import (
	"math/rand/v2"
	"testing"
)

func TestChecksum(t *testing.T) {
	// RFC 1071 §3 example: the sum of these words is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Sum(b, 0)); got != 0xddf2 {
		t.Fatalf("sum = %#x, want 0xddf2", got)
	}
	// Any length and alignment: compare with a plain 16-bit loop.
	data := make([]byte, 301)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(data); n++ {
		var ref uint32
		for i := 0; i+1 < n; i += 2 {
			ref += uint32(data[i])<<8 | uint32(data[i+1])
		}
		if n%2 == 1 {
			ref += uint32(data[n-1]) << 8
		}
		for ref>>16 != 0 {
			ref = ref>>16 + ref&0xFFFF
		}
		if got := Fold(Sum(data[:n], 0)); uint32(got) != ref && !(got == 0xFFFF && ref == 0) && !(got == 0 && ref == 0xFFFF) {
			t.Fatalf("n=%d: sum %#x, reference %#x", n, got, ref)
		}
	}
}

func TestPseudoAndChecksum(t *testing.T) {
	// A UDP datagram's checksum verifies: summing the pseudo-header and
	// the datagram with the checksum in place gives 0xFFFF.
	src, dst := [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}
	d := []byte{0x13, 0x88, 0x12, 0xb5, 0x00, 0x0d, 0, 0, 'h', 'e', 'l', 'l', 'o'}
	c := ^Fold(Sum(d, PseudoIPv4(src, dst, 17, len(d))))
	d[6], d[7] = byte(c>>8), byte(c)
	if got := Fold(Sum(d, PseudoIPv4(src, dst, 17, len(d)))); got != 0xFFFF {
		t.Fatalf("verification sum %#x, want 0xffff", got)
	}
	if Checksum([]byte{0x45, 0}) != ^uint16(0x4500) {
		t.Fatal("Checksum of one word")
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, acc uint64) {
		acc &= 0xFFFFFFFF
		var ref uint64 = acc
		for i := 0; i+1 < len(b); i += 2 {
			ref += uint64(b[i])<<8 | uint64(b[i+1])
		}
		if len(b)%2 == 1 {
			ref += uint64(b[len(b)-1]) << 8
		}
		got, want := Fold(Sum(b, acc)), Fold(ref)
		if got != want && !(got == 0xFFFF && want == 0) && !(got == 0 && want == 0xFFFF) {
			t.Fatalf("Sum %#x, reference %#x", got, want)
		}
	})
}

// TestSumCarries compares Sum with a plain 16-bit loop on random inputs,
// a third of them all 0xff so that every addition carries.
func TestSumCarries(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		b := make([]byte, r.IntN(200))
		for j := range b {
			b[j] = byte(r.Uint32())
			if i%3 == 0 {
				b[j] = 0xff
			}
		}
		acc := uint64(r.Uint32())
		ref := acc
		for j := 0; j+1 < len(b); j += 2 {
			ref += uint64(b[j])<<8 | uint64(b[j+1])
		}
		if len(b)%2 == 1 {
			ref += uint64(b[len(b)-1]) << 8
		}
		if got, want := Fold(Sum(b, acc)), Fold(ref); got != want && !(got == 0xFFFF && want == 0) && !(got == 0 && want == 0xFFFF) {
			t.Fatalf("len %d acc %#x: Sum folds to %#x, reference %#x", len(b), acc, got, want)
		}
	}
}

func BenchmarkSum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	for b.Loop() {
		Sum(buf, 0)
	}
}
