package harness

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRRMetrics: transactions per second and the percentiles come from
// the per-transaction round trips, in whatever order they were kept.
func TestRRMetrics(t *testing.T) {
	res := rrResult{Transactions: 1000, Lost: 3, Seconds: 0.5}
	for i := 1; i <= 1000; i++ {
		res.RTTs = append(res.RTTs, float64(i))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(res.RTTs), func(i, j int) { res.RTTs[i], res.RTTs[j] = res.RTTs[j], res.RTTs[i] })
	m := rrMetrics(res)
	for name, want := range map[string]float64{MTPS: 2000, MRRLost: 3, MRTTP50: 500, MRTTP99: 990, MRTTP999: 999} {
		if got := m[name]; math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if m := rrMetrics(rrResult{}); len(m) != 1 {
		t.Errorf("empty run: %v (want only the lost count)", m)
	}
}

// TestRRSeq: UDP requests carry their number (its low bytes in short
// requests) and a response with another number does not match.
func TestRRSeq(t *testing.T) {
	for _, size := range []int{1, 3, 8, 1024} {
		b := make([]byte, size)
		for _, seq := range []uint64{0, 1, 255, 256, 1 << 40} {
			putSeq(b, seq)
			if !seqMatches(b, seq) {
				t.Errorf("size %d: %d does not match itself", size, seq)
			}
			if seqMatches(b, seq+1) {
				t.Errorf("size %d: %d matches %d", size, seq, seq+1)
			}
		}
	}
}

func TestParseIperf3(t *testing.T) {
	good := []byte(`{"start": {}, "end": {"sum_sent": {"bytes": 10, "bits_per_second": 9e9},
		"sum_received": {"bytes": 3250000000, "bits_per_second": 5.2e9}}}`)
	if g, err := parseIperf3(good); err != nil || g != 5.2 {
		t.Errorf("good report: %v, %v", g, err)
	}
	for _, bad := range []string{`{"error": "unable to connect to server: Connection refused"}`, `{"end": {}}`, `not json`} {
		if _, err := parseIperf3([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
