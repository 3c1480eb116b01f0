package gen

import (
	"errors"
	"time"
)

// Namespace runs a function inside a network namespace; *testbed.NS
// implements it. A nil Namespace means the caller's own namespace.
type Namespace interface {
	Do(fn func() error) error
}

// Limits of Options.
const (
	// MaxFlowFields is the most 16-bit fields a flow may rewrite.
	MaxFlowFields = 4
	// MaxFlows is the most flows one Run cycles through.
	MaxFlows = 4096
	// MaxBatch is the kernel's limit on the live-frames batch size.
	MaxBatch = 256
)

// Options configures one Run. The zero value sends one unpinned stream
// without sequence numbers until the context is done.
type Options struct {
	// Count is the number of packets to send; 0 sends until ctx is done.
	Count uint64
	// BatchSize is the live-frames batch: frames the kernel prepares and
	// flushes to the driver at once. 0 means the kernel default (64), or
	// Rate/100000 clamped to [1, 64] with Rate; at most MaxBatch. Keep it
	// below the receiving veth's ring (256).
	BatchSize uint32
	// SeqOffset is where the 8-byte big-endian sequence number (0, 1, 2, …
	// in sending order) is written; 0 means no sequence number (offset 0 is
	// the Ethernet destination, never a payload).
	SeqOffset int
	// TimeOffset is where the 8-byte big-endian send time (CLOCK_MONOTONIC
	// nanoseconds, bpf_ktime_get_ns) is written; 0 means none. Receivers on
	// the same machine subtract it from their own monotonic clock for
	// one-way latency.
	TimeOffset int
	// Rate, if positive, paces the run to Rate packets per second (summed
	// over threads): packet s is due at start + s/Rate and the program
	// waits for its due time (a bounded spin of up to about a millisecond;
	// threads further ahead sleep), so packets leave evenly spaced, in
	// live-frames batches of about 10 µs worth unless BatchSize says
	// otherwise. A rate above what the machine can generate is simply not
	// reached. 0 sends as fast as possible.
	Rate float64
	// FlowOffsets are offsets of 16-bit fields (UDP ports, say) that each
	// flow sets, at most MaxFlowFields.
	FlowOffsets []int
	// Flows lists the flows to cycle through: packet with sequence number s
	// carries Flows[s%len(Flows)], whose j-th value is written big-endian at
	// FlowOffsets[j]. Each entry must have len(FlowOffsets) values. Empty
	// means the frame's own fields, unchanged.
	Flows [][]uint16
	// CPUs runs one generator thread per entry, pinned to that CPU; empty
	// runs a single unpinned thread. On veth, the CPU picks the receiving
	// queue (CPU modulo the peer's queue count).
	CPUs []int
	// Chunk is the number of packets each thread sends per system call,
	// which is how often Run looks at ctx; 0 means 65536 (about 50 ms worth
	// with Rate).
	Chunk uint32
	// RxQueue is the rx_queue_index the program's context claims; it must
	// be below the interface's queue count.
	RxQueue uint32
}

// Stats is what a Run did.
type Stats struct {
	// Sent is the number of packets the program returned XDP_TX for, which
	// is also the number of sequence numbers used.
	Sent uint64
	// Duration is the wall time spent sending.
	Duration time.Duration
	// LinkTxPackets and LinkTxDropped are the increase of the sending
	// interface's tx_packets and tx_dropped counters during the run (what
	// the driver accepted and refused); on veth a frame refused for lack of
	// ring space counts as tx_dropped, one refused because the other end
	// runs no NAPI counts nowhere (then Sent > LinkTxPackets+LinkTxDropped).
	LinkTxPackets, LinkTxDropped uint64
}

// Mpps returns the generator's own rate, Sent per Duration, in millions of
// packets per second.
func (s Stats) Mpps() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Duration.Seconds() / 1e6
}

// ErrUnsupported is returned on platforms other than Linux.
var ErrUnsupported = errors.New("gen: unsupported platform (needs Linux)")

// ErrNothingTransmitted is returned (with the Stats) when the program sent
// packets but the interface transmitted and counted none of them: on veth,
// the other end runs no NAPI (attach an XDP program to it, see AttachPass)
// or the frame is longer than the other end's MTU plus Ethernet header.
var ErrNothingTransmitted = errors.New("interface transmitted none of the generated frames (veth peer without XDP program or GRO, or frame longer than its MTU?)")

// ErrBadOptions is wrapped by errors about invalid Options.
var ErrBadOptions = errors.New("invalid generator options")
