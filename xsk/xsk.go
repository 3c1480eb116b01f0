// Package xsk implements AF_XDP sockets: a UMEM of fixed-size frames shared
// with the kernel, the four rings (fill, rx, tx, completion) and our own
// record of who owns each frame.
//
// Data flow of one socket (one NIC queue):
//
//	free stack ──Fill──► fill ring ──kernel rx──► rx ring ──Receive──► caller (in flight)
//	caller ──Release──► fill ring (or free stack when the fill ring is full)
//	free stack ──Alloc──► caller ──Transmit──► tx ring ──kernel tx──► completion ring ──Complete──► free stack
//
// A frame is always in exactly one of four places, and the package counts
// them (Accounting): free (our stack), rx (handed to the kernel for
// receiving: fill ring, kernel, rx ring), in flight (owned by the caller)
// and tx (handed to the kernel for sending: tx ring, kernel, completion
// ring). Free + Rx + InFlight + Tx == Frames at all times. A per-frame state
// byte catches a caller that releases or transmits a frame it does not own:
// the descriptor is ignored and counted as Invalid instead of corrupting the
// rings.
//
// All calls are batched: one lock, one atomic producer/consumer update per
// batch and no allocation in steady state. The kernel is woken only when
// the ring's need_wakeup flag asks for it (XDP_USE_NEED_WAKEUP, used when
// the kernel accepts it); in copy mode the kernel sends at most 32 frames
// per sendto, so Transmit repeats the kick while the kernel makes progress.
// Waiting uses poll(2). Received frames start XDP_PACKET_HEADROOM (256)
// bytes into their UMEM frame.
//
// The socket and its rings are implemented here directly on
// golang.org/x/sys/unix; github.com/asavie/xdp is used only by the
// comparison benchmarks in the tests. Why, with the ring-cost measurements
// and the commands that reproduce them: docs/DECISIONS.md.
//
// Linux only; on other systems Open returns ErrUnsupported. The package
// xsktest provides an in-memory Queue for tests without root.
package xsk

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnsupported is returned on systems without AF_XDP.
var ErrUnsupported = errors.New("af_xdp not supported on this system")

// ErrClosed is returned by operations on a closed socket.
var ErrClosed = errors.New("socket closed")

// Desc describes one frame in UMEM: Addr is the offset of the first byte
// and Len the number of bytes. Its layout matches struct xdp_desc.
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// BindMode selects zero-copy or copy mode.
// The zero value is BindAuto.
type BindMode uint8

const (
	// BindAuto tries zero-copy and falls back to copy mode.
	BindAuto BindMode = iota
	// BindCopy forces copy mode.
	BindCopy
	// BindZeroCopy requires zero-copy; Open fails on drivers without it.
	BindZeroCopy
)

// String returns "auto", "copy" or "zerocopy".
func (m BindMode) String() string {
	switch m {
	case BindAuto:
		return "auto"
	case BindCopy:
		return "copy"
	case BindZeroCopy:
		return "zerocopy"
	}
	return fmt.Sprintf("bindmode(%d)", uint8(m))
}

// RxHeadroom is XDP_PACKET_HEADROOM: in copy mode the kernel puts a
// received frame this many bytes into its UMEM frame, so a frame receives
// at most FrameSize - RxHeadroom bytes (longer ones are dropped by the
// kernel and counted in Stats).
const RxHeadroom = 256

// Default option values.
const (
	DefaultNumFrames = 4096
	DefaultFrameSize = 2048
	DefaultRingSize  = 2048
)

// Options configure a socket. The zero value selects the defaults: 4096
// frames of 2048 bytes, rings of 2048 descriptors, BindAuto, need_wakeup on.
type Options struct {
	// NumFrames is the number of UMEM frames (at least 2*max ring size is
	// sensible; must be a power of two).
	NumFrames int
	// FrameSize is 2048 or 4096.
	FrameSize int
	// FillSize, CompletionSize, RxSize and TxSize are ring sizes in
	// descriptors (powers of two). A negative RxSize or TxSize disables
	// that ring (a transmit-only or receive-only socket).
	FillSize, CompletionSize, RxSize, TxSize int
	// Bind selects zero-copy or copy mode.
	Bind BindMode
	// NoNeedWakeup disables the need_wakeup optimisation (then every
	// Transmit makes a sendto syscall).
	NoNeedWakeup bool
	// InitialFill is how many frames Open puts into the fill ring; 0 means
	// min(FillSize, NumFrames/2) when a tx ring exists, else
	// min(FillSize, NumFrames). Use a negative value for none.
	InitialFill int
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// WithDefaults returns o with zero fields replaced by defaults, or an error
// naming the first invalid field. Open calls it.
func (o Options) WithDefaults() (Options, error) {
	if o.NumFrames == 0 {
		o.NumFrames = DefaultNumFrames
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	for _, p := range []*int{&o.FillSize, &o.CompletionSize, &o.RxSize, &o.TxSize} {
		if *p == 0 {
			*p = DefaultRingSize
		}
	}
	if o.FrameSize != 2048 && o.FrameSize != 4096 {
		return o, fmt.Errorf("validate options: frame size %d: want 2048 or 4096", o.FrameSize)
	}
	if !isPow2(o.NumFrames) || o.NumFrames > 1<<20 {
		return o, fmt.Errorf("validate options: frame count %d: want a power of two up to %d", o.NumFrames, 1<<20)
	}
	rings := []struct {
		name     string
		n        int
		optional bool
	}{{"fill", o.FillSize, false}, {"completion", o.CompletionSize, false}, {"rx", o.RxSize, true}, {"tx", o.TxSize, true}}
	for _, r := range rings {
		if r.optional && r.n < 0 {
			continue
		}
		if !isPow2(r.n) || r.n > 1<<20 {
			return o, fmt.Errorf("validate options: %s ring size %d: want a power of two up to %d", r.name, r.n, 1<<20)
		}
	}
	if o.RxSize < 0 && o.TxSize < 0 {
		return o, errors.New("validate options: rx and tx rings both disabled")
	}
	if o.Bind > BindZeroCopy {
		return o, fmt.Errorf("validate options: unknown bind mode %v", o.Bind)
	}
	if o.InitialFill == 0 {
		n := o.NumFrames
		if o.TxSize > 0 {
			n /= 2
		}
		o.InitialFill = min(o.FillSize, n)
	}
	if o.InitialFill < 0 || o.RxSize < 0 {
		o.InitialFill = 0
	}
	if o.InitialFill > o.FillSize || o.InitialFill > o.NumFrames {
		return o, fmt.Errorf("validate options: initial fill %d exceeds the fill ring (%d) or the frames (%d)", o.InitialFill, o.FillSize, o.NumFrames)
	}
	return o, nil
}

// KernelStats are the socket's XDP_STATISTICS counters.
type KernelStats struct {
	RxDropped        uint64 // frames dropped for reasons other than invalid descriptors
	RxInvalidDescs   uint64 // invalid descriptors on the fill ring
	TxInvalidDescs   uint64 // invalid descriptors on the tx ring
	RxRingFull       uint64 // frames dropped because the rx ring was full
	RxFillRingEmpty  uint64 // times the fill ring was empty when a frame arrived
	TxRingEmptyDescs uint64 // times the tx ring was empty when the kernel looked
}

// Stats are the socket's counters: ours and the kernel's.
type Stats struct {
	Received    uint64 // descriptors taken from the rx ring
	RxBytes     uint64
	Transmitted uint64 // descriptors put on the tx ring
	TxBytes     uint64
	Completed   uint64 // descriptors taken from the completion ring
	Wakeups     uint64 // need_wakeup kicks (syscalls) made
	Kernel      KernelStats
}

// Accounting tells where the socket's frames are. Free, Rx, InFlight and
// Tx partition the UMEM; the ring occupancies are snapshots, informative
// only (the kernel moves frames concurrently).
type Accounting struct {
	Frames   int // UMEM frames
	Free     int // on our free stack
	Rx       int // handed to the kernel for receiving (fill ring, kernel, rx ring)
	InFlight int // owned by the caller (received or allocated, not yet released or transmitted)
	Tx       int // handed to the kernel for sending (tx ring, kernel, completion ring)

	FillRing, RxRing, TxRing, CompletionRing int // ring occupancies

	// Invalid counts descriptors passed to Release, Free or Transmit that
	// did not refer to a frame owned by the caller; they were ignored.
	Invalid uint64
}

// Check verifies the invariant Free + Rx + InFlight + Tx == Frames with all
// parts non-negative.
func (a Accounting) Check() error {
	if a.Free < 0 || a.Rx < 0 || a.InFlight < 0 || a.Tx < 0 {
		return fmt.Errorf("check accounting: negative part in %+v", a)
	}
	if s := a.Free + a.Rx + a.InFlight + a.Tx; s != a.Frames {
		return fmt.Errorf("check accounting: free %d + rx %d + in flight %d + tx %d = %d, want %d frames",
			a.Free, a.Rx, a.InFlight, a.Tx, s, a.Frames)
	}
	return nil
}

// Queue is the batched interface of one AF_XDP socket. *Socket implements
// it, and so does the in-memory fake in package xsktest.
type Queue interface {
	// Receive moves up to len(descs) received frames into descs and
	// returns how many; the caller owns them until Release.
	Receive(descs []Desc) int
	// Frame returns the bytes of d, aliasing UMEM (no copy).
	Frame(d Desc) []byte
	// Release gives received (or allocated) frames back for receiving.
	Release(descs []Desc)
	// Fill moves up to limit free frames into the fill ring.
	Fill(limit int) int
	// Alloc takes up to len(descs) free frames for transmitting, each
	// with Len set to the frame size, and returns how many.
	Alloc(descs []Desc) int
	// Free gives owned frames back without transmitting them.
	Free(descs []Desc)
	// Transmit queues frames for sending and returns how many were
	// accepted; the caller keeps ownership of descs[n:].
	Transmit(descs []Desc) (int, error)
	// Complete reaps sent frames onto the free stack and returns how many.
	Complete() int
	// Poll waits up to timeout (negative: forever) until frames were
	// received or sent, and reports whether any were.
	Poll(timeout time.Duration) (bool, error)
	// PollRx is Poll for a receiver that shares the socket with a
	// sender: it waits for received frames only.
	PollRx(timeout time.Duration) (bool, error)
	// PollTx is Poll for a sender that shares the socket with a
	// receiver: it waits until completions are pending or the tx ring
	// has room, and reports whether either holds.
	PollTx(timeout time.Duration) (bool, error)
	// Stats returns the counters.
	Stats() (Stats, error)
	// Accounting returns where the frames are.
	Accounting() Accounting
	// Options returns the options in use (defaults filled in).
	Options() Options
	// Close releases the socket and its UMEM.
	Close() error
}
