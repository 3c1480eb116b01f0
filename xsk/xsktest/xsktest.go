// Package xsktest provides Socket, an in-memory xsk.Queue for tests that
// run without root: frames are injected with Inject (as if the kernel had
// received them) and transmitted frames are read back with Sent. It keeps
// the same frame ownership rules and accounting as xsk.Socket, so tests of
// the stages above can check the UMEM invariant.
package xsktest

import (
	"fmt"
	"sync"
	"time"

	"mflow/xsk"
)

// Headroom is where Inject places a frame inside its UMEM frame, like the
// kernel's XDP_PACKET_HEADROOM.
const Headroom = 256

const (
	stateFree uint8 = iota
	stateRx
	stateApp
	stateTx
)

// Socket is an in-memory xsk.Queue. It is safe for concurrent use; the
// zero value is not usable (use New).
type Socket struct {
	mu      sync.Mutex
	opts    xsk.Options
	umem    []byte
	state   []uint8
	free    []uint64
	fill    []uint64 // frames handed for receiving, not yet used
	rx      []xsk.Desc
	sent    [][]byte
	comp    []uint64
	nRx     int
	nApp    int
	nTx     int
	invalid uint64
	stats   xsk.Stats
	closed  bool
	notify  chan struct{}
}

// New returns a fake socket with the given options (defaults as in xsk).
func New(o xsk.Options) (*Socket, error) {
	o, err := o.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("new fake xsk: %w", err)
	}
	s := &Socket{
		opts:   o,
		umem:   make([]byte, o.NumFrames*o.FrameSize),
		state:  make([]uint8, o.NumFrames),
		free:   make([]uint64, 0, o.NumFrames),
		notify: make(chan struct{}, 1),
	}
	for i := o.NumFrames - 1; i >= 0; i-- {
		s.free = append(s.free, uint64(i*o.FrameSize))
	}
	s.Fill(o.InitialFill)
	return s, nil
}

// Inject delivers frame as if received from the wire. It reports false,
// counting a kernel drop, when no fill frame is available, the rx ring is
// full or the frame does not fit.
func (s *Socket) Inject(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(frame) > s.opts.FrameSize-Headroom {
		s.stats.Kernel.RxDropped++
		return false
	}
	if len(s.fill) == 0 {
		s.stats.Kernel.RxFillRingEmpty++
		s.stats.Kernel.RxDropped++
		return false
	}
	if len(s.rx) >= s.opts.RxSize {
		// As the kernel's XDP_STATISTICS (full size): a full rx ring is
		// counted in rx_ring_full only.
		s.stats.Kernel.RxRingFull++
		return false
	}
	base := s.fill[0]
	s.fill = s.fill[:copy(s.fill, s.fill[1:])] // FIFO; a fake need not be fast
	d := xsk.Desc{Addr: base + Headroom, Len: uint32(len(frame))}
	copy(s.umem[d.Addr:], frame)
	s.rx = append(s.rx, d)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true
}

// Sent returns and forgets copies of the frames transmitted so far.
func (s *Socket) Sent() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

// Frame returns the bytes of d, aliasing the fake UMEM.
func (s *Socket) Frame(d xsk.Desc) []byte {
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(d.Len)]
}

func (s *Socket) index(addr uint64) uint64 { return addr / uint64(s.opts.FrameSize) }

// Receive implements xsk.Queue.
func (s *Socket) Receive(descs []xsk.Desc) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := copy(descs, s.rx)
	for _, d := range descs[:n] {
		s.state[s.index(d.Addr)] = stateApp
		s.stats.RxBytes += uint64(d.Len)
	}
	s.rx = s.rx[:copy(s.rx, s.rx[n:])]
	s.nRx -= n
	s.nApp += n
	s.stats.Received += uint64(n)
	return n
}

func (s *Socket) take(d xsk.Desc) (uint64, bool) {
	idx := s.index(d.Addr)
	if idx >= uint64(len(s.state)) || s.state[idx] != stateApp {
		s.invalid++
		return 0, false
	}
	s.nApp--
	return idx, true
}

func (s *Socket) toFree(idx uint64) {
	s.state[idx] = stateFree
	s.free = append(s.free, idx*uint64(s.opts.FrameSize))
}

// Release implements xsk.Queue.
func (s *Socket) Release(descs []xsk.Desc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range descs {
		idx, ok := s.take(d)
		if !ok {
			continue
		}
		if s.opts.RxSize > 0 && len(s.fill) < s.opts.FillSize {
			s.state[idx] = stateRx
			s.fill = append(s.fill, idx*uint64(s.opts.FrameSize))
			s.nRx++
		} else {
			s.toFree(idx)
		}
	}
}

// Fill implements xsk.Queue.
func (s *Socket) Fill(limit int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.RxSize <= 0 || limit <= 0 {
		return 0
	}
	n := min(limit, s.opts.FillSize-len(s.fill), len(s.free))
	for i := 0; i < n; i++ {
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.state[s.index(addr)] = stateRx
		s.fill = append(s.fill, addr)
	}
	s.nRx += n
	return n
}

// Alloc implements xsk.Queue.
func (s *Socket) Alloc(descs []xsk.Desc) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(descs), len(s.free))
	for i := 0; i < n; i++ {
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.state[s.index(addr)] = stateApp
		descs[i] = xsk.Desc{Addr: addr, Len: uint32(s.opts.FrameSize)}
	}
	s.nApp += n
	return n
}

// Free implements xsk.Queue.
func (s *Socket) Free(descs []xsk.Desc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range descs {
		if idx, ok := s.take(d); ok {
			s.toFree(idx)
		}
	}
}

// Transmit implements xsk.Queue: the bytes are copied to Sent and the
// frames are on the completion queue at once.
func (s *Socket) Transmit(descs []xsk.Desc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, xsk.ErrClosed
	}
	fs := uint64(s.opts.FrameSize)
	n := 0
	for ; n < len(descs) && s.nTx < s.opts.TxSize; n++ {
		d := descs[n]
		idx, ok := s.take(d)
		if !ok {
			continue
		}
		if d.Len == 0 || d.Addr%fs+uint64(d.Len) > fs {
			s.invalid++
			s.toFree(idx)
			continue
		}
		s.sent = append(s.sent, append([]byte(nil), s.Frame(d)...))
		s.state[idx] = stateTx
		s.comp = append(s.comp, idx*fs)
		s.nTx++
		s.stats.Transmitted++
		s.stats.TxBytes += uint64(d.Len)
	}
	return n, nil
}

// Complete implements xsk.Queue.
func (s *Socket) Complete() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.comp)
	for _, addr := range s.comp {
		s.toFree(s.index(addr))
	}
	s.comp = s.comp[:0]
	s.nTx -= n
	s.stats.Completed += uint64(n)
	return n
}

// Poll implements xsk.Queue: it waits for Inject (or returns at once when
// frames or completions are pending).
func (s *Socket) Poll(timeout time.Duration) (bool, error) {
	return s.wait(timeout, func() bool { return len(s.rx) > 0 || len(s.comp) > 0 })
}

// PollRx implements xsk.Queue: Poll, waking only for received frames.
func (s *Socket) PollRx(timeout time.Duration) (bool, error) {
	return s.wait(timeout, func() bool { return len(s.rx) > 0 })
}

// PollTx implements xsk.Queue: Poll for a sender, waking for completions
// or tx ring room.
func (s *Socket) PollTx(timeout time.Duration) (bool, error) {
	return s.wait(timeout, func() bool { return len(s.comp) > 0 || s.nTx < s.opts.TxSize })
}

// wait waits up to timeout (negative: forever) until ready, called with
// s.mu held, reports true; it rechecks after every notification.
func (s *Socket) wait(timeout time.Duration, ready func() bool) (bool, error) {
	var tc <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	for {
		s.mu.Lock()
		ok, closed := ready(), s.closed
		s.mu.Unlock()
		if closed {
			return false, xsk.ErrClosed
		}
		if ok {
			return true, nil
		}
		select {
		case <-s.notify:
		case <-tc:
			s.mu.Lock()
			defer s.mu.Unlock()
			return ready(), nil
		}
	}
}

// Options implements xsk.Queue.
func (s *Socket) Options() xsk.Options { return s.opts }

// Stats implements xsk.Queue.
func (s *Socket) Stats() (xsk.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, nil
}

// Accounting implements xsk.Queue.
func (s *Socket) Accounting() xsk.Accounting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return xsk.Accounting{
		Frames: len(s.state), Free: len(s.free), Rx: s.nRx, InFlight: s.nApp, Tx: s.nTx,
		FillRing: len(s.fill), RxRing: len(s.rx), CompletionRing: len(s.comp), Invalid: s.invalid,
	}
}

// Close implements xsk.Queue.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

var _ xsk.Queue = (*Socket)(nil)
