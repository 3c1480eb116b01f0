package tap

import (
	"math/rand/v2"
	"testing"
)

// refSum is the textbook RFC 1071 sum over 16-bit words, folded.
func refSum(b []byte, acc uint32) uint16 {
	s := uint64(acc)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		b := make([]byte, r.IntN(200))
		for j := range b {
			b[j] = byte(r.Uint32())
			if i%3 == 0 {
				b[j] = 0xff // carries everywhere
			}
		}
		acc := r.Uint32()
		if got, want := fold(sum(b, acc)), refSum(b, acc); got != want {
			t.Fatalf("len %d acc %#x: sum %#x, reference %#x", len(b), acc, got, want)
		}
	}
}

func BenchmarkSum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	for b.Loop() {
		sum(buf, 0)
	}
}
