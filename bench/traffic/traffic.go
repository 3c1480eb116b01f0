// Package traffic generates and measures overlay traffic between network
// namespaces of the testbed: ping (ICMP echo), a TCP bulk transfer whose
// content is checked against a byte pattern (Bulk, and TCPStream, its
// one-stream, every-byte-checked form), a UDP stream with sequence
// numbers (loss, reordering, duplicates) and UDP request/response for
// latency. It is shared by the end-to-end tests, `mflow demo` and the
// benchmark harness.
//
// Every socket is created inside its namespace (through testbed's NS.Do)
// and keeps that namespace afterwards, so the measuring goroutines run
// anywhere. Ping and the UDP generators use Go's net package; the TCP
// transfer uses raw sockets polled from locked OS threads (Sock, see
// sock_linux.go), so that it does not limit the goodput it measures.
// Every function is bounded in time by its arguments and ctx.
package traffic

import (
	"slices"
	"time"
)

// Latency summarises round-trip times.
type Latency struct {
	Samples       int
	P50, P99, Max time.Duration
	P999          time.Duration
}

// summarise sorts rtts in place and returns their percentiles.
func summarise(rtts []time.Duration) Latency {
	if len(rtts) == 0 {
		return Latency{}
	}
	slices.Sort(rtts)
	at := func(q float64) time.Duration {
		i := int(q * float64(len(rtts)-1))
		return rtts[i]
	}
	return Latency{Samples: len(rtts), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: rtts[len(rtts)-1]}
}

// Seq tracks a stream of sequence numbers (counting from 0): how many
// arrived, how many arrived after a higher number (out of order), how
// often the stream jumped backwards (a number below the one just before
// it: one jump per late run of packets, however long), and how many
// arrived twice. It keeps one bit per number up to the highest seen.
// The zero value is ready; it is not safe for concurrent use.
type Seq struct {
	Received   uint64
	OutOfOrder uint64
	Duplicates uint64
	Jumps      uint64
	// Bogus counts numbers at or above MaxSeq: not from our sender.
	Bogus uint64
	max   uint64 // highest number seen, valid when Received > 0
	last  uint64 // the number before, valid when Received > 0
	bits  []uint64
}

// MaxSeq bounds the sequence numbers Seq tracks (its bitmap is at most
// MaxSeq/8 bytes).
const MaxSeq = 1 << 30

// Add records sequence number n.
func (s *Seq) Add(n uint64) {
	if n >= MaxSeq {
		s.Bogus++
		return
	}
	w, b := n/64, uint64(1)<<(n%64)
	if w >= uint64(len(s.bits)) {
		s.bits = slices.Grow(s.bits, int(w+1)-len(s.bits))[:w+1]
	}
	if s.bits[w]&b != 0 {
		s.Duplicates++
		return
	}
	s.bits[w] |= b
	if s.Received > 0 && n < s.last {
		s.Jumps++
	}
	s.last = n
	if s.Received > 0 && n < s.max {
		s.OutOfOrder++
	} else {
		s.max = n
	}
	s.Received++
}

// Lost returns how many of the first sent numbers never arrived.
func (s *Seq) Lost(sent uint64) uint64 {
	if s.Received >= sent {
		return 0
	}
	return sent - s.Received
}
