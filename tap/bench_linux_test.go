package tap

import (
	"testing"

	"mflow/bench/testbed/testbedtest"
)

// benchTAP opens a TAP in a fresh namespace for a benchmark.
func benchTAP(b *testing.B) *Device {
	b.Helper()
	ns := testbedtest.NewNS(b, "tapb")
	var d *Device
	if err := ns.Do(func() (err error) { d, err = Open(Options{Name: "tap0", MTU: 1500}); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkTAPWrite measures the decap sink's cost per 1454-byte TCP
// segment written to a TAP, one write(2) each (the frames are for another
// MAC, so the host's stack drops them early: this is the TAP's own cost).
func BenchmarkTAPWrite(b *testing.B) { benchTAPWrite(b, false) }

// BenchmarkTAPWriteCoalesced is BenchmarkTAPWrite with the segments of
// each 64-frame batch merged into super-frames.
func BenchmarkTAPWriteCoalesced(b *testing.B) { benchTAPWrite(b, true) }

func benchTAPWrite(b *testing.B, coalesce bool) {
	d := benchTAP(b)
	bufs := flowSegs(b, repeat(64, 1400), 1, 40000)
	b.ReportAllocs()
	b.SetBytes(64 * 1454)
	for b.Loop() {
		var err error
		if coalesce {
			_, err = d.WriteCoalesced(bufs, coOffset)
		} else {
			_, err = d.Write(bufs, coOffset)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	st := d.Stats()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(st.WritePackets), "ns/frame")
	b.ReportMetric(float64(st.WritePackets)/float64(st.WriteSyscalls), "frames/write")
}
