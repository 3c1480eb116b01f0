package vxlan

import (
	"fmt"
	"testing"
)

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

// BenchmarkFDBLearn1M learns one million random stations into an empty
// VNI without limits; ns/station is the amortised cost of learning (the
// table grows as it fills).
func BenchmarkFDBLearn1M(b *testing.B) {
	const n = 1 << 20
	macs := randomMACs(n, 42)
	b.ReportAllocs()
	for b.Loop() {
		var f FDB
		for i, m := range macs {
			f.Learn(42, m, [4]byte{192, 0, 2, byte(i)}, 0)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/station")
}

// BenchmarkFDBLookupWhileLearning looks up known stations from parallel
// goroutines (ns/op is one lookup) while one goroutine learns random new
// stations as fast as it can, with the daemon's default limit (4096 per
// VNI) and without one; learns/s is the learner's rate meanwhile.
func BenchmarkFDBLookupWhileLearning(b *testing.B) {
	known := randomMACs(256, 7)
	flood := randomMACs(1<<20, 8)
	for _, limit := range []int{4096, 0} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			var f FDB
			f.SetLimits(limit, 0)
			for i, m := range known {
				f.Learn(42, m, [4]byte{192, 0, 2, byte(i)}, 0)
			}
			stop := make(chan struct{})
			done := make(chan int)
			go func() {
				i := 0
				for {
					select {
					case <-stop:
						done <- i
						return
					default:
					}
					f.Learn(42, flood[i%len(flood)], [4]byte{198, 51, 100, 1}, int64(i>>16))
					i++
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, ok := f.Lookup(42, known[i&255]); !ok {
						b.Error("known station not found")
						return
					}
					i++
				}
			})
			b.StopTimer()
			close(stop)
			learned := <-done
			b.ReportMetric(float64(learned)/b.Elapsed().Seconds(), "learns/s")
		})
	}
}
