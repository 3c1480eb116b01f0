package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"mflow/bench/testbed"
)

// Bulk is a TCP client made so that the sender and the receiver are not
// what limits the measured goodput (the benchmark harness's built-in TCP
// client; TCPStream is one stream of it):
//
//   - the sender writes the byte pattern, Size bytes per write(2) straight
//     from the pattern's memory (no per-write preparation; one copy, into
//     the socket, as iperf3 does), from one thread that polls every
//     stream's socket for room;
//   - the receiver reads 128 KiB at a time, from one thread that polls
//     every stream's socket, and checks each stream against the pattern:
//     every read in full, or, with CheckEvery above 1, by sampling: the
//     first and last 64 bytes of every read (a chunk delivered at a wrong
//     offset or truncated fails there) and every CheckEvery-th read in
//     full. The byte count is exact: a stream whose receiver got a
//     different number of bytes than the sender sent fails. Every byte is
//     still covered by TCP's checksum; the check is our own, end-to-end
//     check of what the path delivered.
//
// Both run on locked OS threads. Goodput is bytes received ÷ the time from
// the first received byte to the end of the last stream.
//
// sendfile(2) from a memfd holding the pattern was tried as the sender
// (zero-copy): on the kernel testbed of a 2-core machine it read 0.77-0.80
// of iperf3 in both directions, the copying write 0.96 and 1.08 (medians
// of 3, 2 s each); see BENCHMARKS.md.

// readSize is the receiver's read buffer, and the default write size.
const readSize = 128 << 10

// BulkOptions configures Bulk.
type BulkOptions struct {
	// Streams is the number of parallel connections (0: 1).
	Streams int
	// Size is the size of each write, at most MaxWrite (0: 128 KiB).
	Size int
	// Duration bounds how long the senders write.
	Duration time.Duration
	// Limit, above 0, is how many bytes each stream sends at most: a
	// stream ends once it has sent them.
	Limit int64
	// CheckEvery is the stride of the reads the receiver compares with
	// the pattern in full; the others it compares at their first and last
	// 64 bytes. 0 or 1: every read in full, every byte checked.
	CheckEvery int
}

// BulkResult is the outcome of Bulk.
type BulkResult struct {
	Bytes   int64         // received, all streams
	Took    time.Duration // first received byte to the end of the last stream
	Streams int
}

// Gbps returns the goodput.
func (r BulkResult) Gbps() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Took.Seconds() / 1e9
}

// streamEnd is what the receiver of one stream saw.
type streamEnd struct {
	n          int64     // bytes received
	first, end time.Time // first byte, end of stream
	err        error     // the stream did not end cleanly
	differs    error     // the content differs from the pattern
}

// Bulk streams the pattern from namespace from to addr in namespace to
// over o.Streams parallel connections for o.Duration (see the note above),
// and checks what arrives: a stream that arrives altered or short is an
// error. ctx ends it early (with an error).
func Bulk(ctx context.Context, from, to *testbed.NS, addr netip.AddrPort, o BulkOptions) (BulkResult, error) {
	ends, sent, err := bulk(ctx, from, to, addr, o)
	if err != nil {
		return BulkResult{}, err
	}
	res := summariseBulk(ends)
	var rerr error
	for i, e := range ends {
		if err := e.err; err != nil || e.differs != nil {
			if err == nil {
				err = e.differs
			}
			rerr = errors.Join(rerr, fmt.Errorf("stream %d: %w", i, err))
		}
		if e.n != sent[i] {
			rerr = errors.Join(rerr, fmt.Errorf("stream %d: got %d of %d bytes", i, e.n, sent[i]))
		}
	}
	if rerr != nil {
		return res, fmt.Errorf("receiving: %w", rerr)
	}
	return res, nil
}

// summariseBulk sums what the receivers of the streams saw.
func summariseBulk(ends []streamEnd) BulkResult {
	res := BulkResult{Streams: len(ends)}
	var first, last time.Time
	for _, e := range ends {
		res.Bytes += e.n
		if !e.first.IsZero() && (first.IsZero() || e.first.Before(first)) {
			first = e.first
		}
		if e.end.After(last) {
			last = e.end
		}
	}
	if !first.IsZero() {
		res.Took = last.Sub(first)
	}
	return res
}
