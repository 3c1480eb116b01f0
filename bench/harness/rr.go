package harness

import (
	"encoding/binary"
	"slices"
)

// rrResult is the outcome of a request/response run.
type rrResult struct {
	Transactions int
	Lost         int
	Seconds      float64
	RTTs         []float64 // µs, unsorted
}

// rrMetrics returns a request/response run's figures: transactions per
// second and the round-trip percentiles over every kept transaction.
func rrMetrics(res rrResult) map[string]float64 {
	m := map[string]float64{MRRLost: float64(res.Lost)}
	if res.Seconds > 0 {
		m[MTPS] = float64(res.Transactions) / res.Seconds
	}
	if len(res.RTTs) > 0 {
		rtts := slices.Sorted(slices.Values(res.RTTs))
		m[MRTTP50], m[MRTTP99], m[MRTTP999] = Percentile(rtts, .5), Percentile(rtts, .99), Percentile(rtts, .999)
	}
	return m
}

// putSeq writes the request number into req: 8 bytes big-endian when it
// has room, else its low bytes.
func putSeq(req []byte, seq uint64) {
	if len(req) >= 8 {
		binary.BigEndian.PutUint64(req, seq)
		return
	}
	for i := range req {
		req[i] = byte(seq >> (8 * i))
	}
}

// seqMatches reports whether resp carries the request number seq as
// putSeq wrote it.
func seqMatches(resp []byte, seq uint64) bool {
	if len(resp) >= 8 {
		return binary.BigEndian.Uint64(resp) == seq
	}
	for i := range resp {
		if resp[i] != byte(seq>>(8*i)) {
			return false
		}
	}
	return true
}
