package xsk

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ringNeedWakeup is XDP_RING_NEED_WAKEUP of linux/if_xdp.h, the ring flag
// by which the kernel asks to be woken (xsk_linux.go checks the value).
const ringNeedWakeup = 1 << 0

// Frame states, one byte per UMEM frame.
const (
	stateFree uint8 = iota // on s.free
	stateRx                // fill ring, kernel or rx ring
	stateApp               // owned by the caller
	stateTx                // tx ring, kernel or completion ring
)

// ring is the shared part of one of the four rings. The kernel writes the
// producer of rx and completion and the consumer of fill and tx; we write
// the others. Shared indices are accessed atomically.
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32
	mem      []byte // the mapping, for munmap
}

// Socket is one AF_XDP socket bound to one queue of one interface, with its
// own UMEM. Methods are safe for concurrent use (one mutex, taken once per
// batch), so a dispatcher may Receive while a sink goroutine Releases; Poll
// does not hold the mutex while it waits. The zero value is not usable (use
// Open). Frames (Frame's slices) must not be used after Close.
type Socket struct {
	mu sync.Mutex

	fd             int
	ifindex, queue int
	opts           Options
	zeroCopy       bool
	needWakeup     bool
	closed         bool

	umem  []byte
	shift uint // log2(FrameSize)

	// Rings: fill and tx are produced by us, rx and completion by the
	// kernel. The descriptor slices alias the ring mappings.
	fill, comp       ring
	fillDescs, compQ []uint64
	rx, tx           ring
	rxDescs, txDescs []Desc

	// Ownership, guarded by mu: the free stack, one state byte per frame,
	// and the counts of frames in each other state.
	free                []uint64 // stack of frame base addresses
	state               []uint8
	nRx, nInFlight, nTx int
	invalid             uint64
	stats               Stats
}

// FD is the socket's file descriptor, for bpf.Program.Register.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the socket is bound in zero-copy mode (false:
// copy mode, e.g. on veth).
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// NeedWakeup reports whether the kernel accepted XDP_USE_NEED_WAKEUP.
func (s *Socket) NeedWakeup() bool { return s.needWakeup }

// Queue is the queue id the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// Options returns the options in use (defaults filled in).
func (s *Socket) Options() Options { return s.opts }

// Frame returns the bytes of d; they alias UMEM. It does not lock and does
// not check ownership; d must come from Receive or Alloc of this socket.
func (s *Socket) Frame(d Desc) []byte {
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(d.Len)]
}

// Receive moves up to len(descs) descriptors from the rx ring into descs
// and returns how many. The caller owns those frames until it releases,
// frees or transmits them.
func (s *Socket) Receive(descs []Desc) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.rxDescs == nil {
		return 0
	}
	cons := atomic.LoadUint32(s.rx.consumer)
	avail := atomic.LoadUint32(s.rx.producer) - cons
	n := uint32(len(descs))
	if avail < n {
		n = avail
	}
	k := 0
	var bytes uint64
	frames := uint64(len(s.state))
	for i := uint32(0); i < n; i++ {
		d := s.rxDescs[(cons+i)&s.rx.mask]
		idx := d.Addr >> s.shift
		if idx >= frames || s.state[idx] != stateRx || (d.Addr&uint64(s.opts.FrameSize-1))+uint64(d.Len) > uint64(s.opts.FrameSize) {
			s.invalid++ // the kernel returned a frame we did not give it
			continue
		}
		s.state[idx] = stateApp
		descs[k] = d
		k++
		bytes += uint64(d.Len)
	}
	atomic.StoreUint32(s.rx.consumer, cons+n)
	s.nRx -= k
	s.nInFlight += k
	s.stats.Received += uint64(k)
	s.stats.RxBytes += bytes
	return k
}

// take marks an owned frame as no longer owned by the caller; it reports
// false (and counts) when d is not a frame the caller owns.
func (s *Socket) take(d Desc) (idx uint64, ok bool) {
	idx = d.Addr >> s.shift
	if idx >= uint64(len(s.state)) || s.state[idx] != stateApp {
		s.invalid++
		return idx, false
	}
	s.nInFlight--
	return idx, true
}

// Release gives frames owned by the caller back for receiving: onto the
// fill ring, or onto the free stack when the fill ring is full (or the
// socket has no rx ring). Descriptors of frames the caller does not own are
// ignored and counted in Accounting.Invalid.
func (s *Socket) Release(descs []Desc) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var space uint32
	prod := uint32(0)
	if s.rxDescs != nil {
		prod = atomic.LoadUint32(s.fill.producer)
		space = s.fill.size - (prod - atomic.LoadUint32(s.fill.consumer))
	}
	start := prod
	for _, d := range descs {
		idx, ok := s.take(d)
		if !ok {
			continue
		}
		if space > 0 {
			s.fillDescs[prod&s.fill.mask] = idx << s.shift
			prod++
			space--
			s.state[idx] = stateRx
			s.nRx++
		} else {
			s.state[idx] = stateFree
			s.free = append(s.free, idx<<s.shift)
		}
	}
	kick := false
	if prod != start {
		atomic.StoreUint32(s.fill.producer, prod)
		kick = s.needWakeup && atomic.LoadUint32(s.fill.flags)&ringNeedWakeup != 0
	}
	s.mu.Unlock()
	if kick {
		s.wakeRx()
	}
}

// Fill moves up to limit frames from the free stack to the fill ring and
// returns how many.
func (s *Socket) Fill(limit int) int {
	s.mu.Lock()
	if s.closed || s.rxDescs == nil || limit <= 0 {
		s.mu.Unlock()
		return 0
	}
	prod := atomic.LoadUint32(s.fill.producer)
	space := int(s.fill.size - (prod - atomic.LoadUint32(s.fill.consumer)))
	n := min(limit, space, len(s.free))
	for i := 0; i < n; i++ {
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.state[addr>>s.shift] = stateRx
		s.fillDescs[prod&s.fill.mask] = addr
		prod++
	}
	s.nRx += n
	kick := false
	if n > 0 {
		atomic.StoreUint32(s.fill.producer, prod)
		kick = s.needWakeup && atomic.LoadUint32(s.fill.flags)&ringNeedWakeup != 0
	}
	s.mu.Unlock()
	if kick {
		s.wakeRx()
	}
	return n
}

// Alloc takes up to len(descs) frames from the free stack for transmitting
// and returns how many. Each has Addr at the start of its frame and Len the
// frame size; the caller may move Addr forward within the frame and must
// set Len before Transmit.
func (s *Socket) Alloc(descs []Desc) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	n := min(len(descs), len(s.free))
	for i := 0; i < n; i++ {
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.state[addr>>s.shift] = stateApp
		descs[i] = Desc{Addr: addr, Len: uint32(s.opts.FrameSize)}
	}
	s.nInFlight += n
	return n
}

// Free gives frames owned by the caller back to the free stack without
// transmitting or receiving into them.
func (s *Socket) Free(descs []Desc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, d := range descs {
		if idx, ok := s.take(d); ok {
			s.state[idx] = stateFree
			s.free = append(s.free, idx<<s.shift)
		}
	}
}

// Transmit puts frames owned by the caller on the tx ring, in order, until
// the ring is full, and wakes the kernel. It returns how many descriptors
// it consumed; the caller keeps ownership of descs[n:]. A descriptor that
// is not an owned frame is consumed but ignored, and one whose bytes are
// empty or cross the end of its frame is consumed and freed; both are
// counted in Accounting.Invalid. The caller never owns descs[:n] afterwards. An error means the
// kernel refused the wakeup (e.g. the interface went down); the consumed
// frames are then still owned by the socket and come back via Complete or
// Close.
func (s *Socket) Transmit(descs []Desc) (int, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if s.txDescs == nil {
		s.mu.Unlock()
		return 0, errors.New("transmit: socket has no tx ring")
	}
	prod := atomic.LoadUint32(s.tx.producer)
	space := s.tx.size - (prod - atomic.LoadUint32(s.tx.consumer))
	fs := uint64(s.opts.FrameSize)
	n := 0
	var bytes uint64
	sent := 0
	for ; n < len(descs) && space > 0; n++ {
		d := descs[n]
		idx, ok := s.take(d)
		if !ok {
			continue
		}
		if d.Len == 0 || (d.Addr&(fs-1))+uint64(d.Len) > fs {
			s.invalid++ // bad length: the frame goes back to the free stack
			s.state[idx] = stateFree
			s.free = append(s.free, idx<<s.shift)
			continue
		}
		s.state[idx] = stateTx
		s.txDescs[prod&s.tx.mask] = Desc{Addr: d.Addr, Len: d.Len}
		prod++
		space--
		sent++
		bytes += uint64(d.Len)
	}
	if sent > 0 {
		atomic.StoreUint32(s.tx.producer, prod)
	}
	s.nTx += sent
	s.stats.Transmitted += uint64(sent)
	s.stats.TxBytes += bytes
	kick := sent > 0 && (!s.needWakeup || atomic.LoadUint32(s.tx.flags)&ringNeedWakeup != 0)
	s.mu.Unlock()
	if kick {
		if err := s.wakeTx(); err != nil {
			return n, fmt.Errorf("transmit: %w", err)
		}
	}
	return n, nil
}

// Complete moves sent frames from the completion ring to the free stack and
// returns how many.
func (s *Socket) Complete() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	cons := atomic.LoadUint32(s.comp.consumer)
	n := atomic.LoadUint32(s.comp.producer) - cons
	k := 0
	for i := uint32(0); i < n; i++ {
		addr := s.compQ[(cons+i)&s.comp.mask]
		idx := addr >> s.shift
		if idx >= uint64(len(s.state)) || s.state[idx] != stateTx {
			s.invalid++
			continue
		}
		s.state[idx] = stateFree
		s.free = append(s.free, idx<<s.shift)
		k++
	}
	atomic.StoreUint32(s.comp.consumer, cons+n)
	s.nTx -= k
	s.stats.Completed += uint64(k)
	return k
}

// Poll waits up to timeout (negative: forever) for received frames, or for
// completions when frames are being sent and none are expected on rx. It
// reports whether the rx or completion ring holds descriptors. Poll also
// wakes the kernel (rx and, in copy mode, tx).
func (s *Socket) Poll(timeout time.Duration) (bool, error) { return s.poll(timeout, pollAny) }

// PollRx is Poll for a receiver that shares the socket with a sender: it
// waits only for received frames and ignores the tx side (a socket whose tx
// ring has room is always writable, so waiting for that would return at
// once and make the receiver spin).
func (s *Socket) PollRx(timeout time.Duration) (bool, error) { return s.poll(timeout, pollRx) }

// PollTx is Poll for a sender that shares the socket with a receiver: it
// waits only for the tx side, until completions are pending or the tx
// ring has room (the kernel wakes it when the ring is at most half full),
// and reports whether either holds. In copy mode it also makes the kernel
// send what is queued.
func (s *Socket) PollTx(timeout time.Duration) (bool, error) { return s.poll(timeout, pollTx) }

// pollWant is what a poller waits for.
type pollWant uint8

const (
	pollAny pollWant = iota // received frames or completions
	pollRx                  // received frames
	pollTx                  // completions or tx ring room
)

// Accounting returns where the frames are.
func (s *Socket) Accounting() Accounting {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := Accounting{
		Frames:   len(s.state),
		Free:     len(s.free),
		Rx:       s.nRx,
		InFlight: s.nInFlight,
		Tx:       s.nTx,
		Invalid:  s.invalid,
	}
	if s.closed {
		return a
	}
	occ := func(r *ring) int {
		if r.producer == nil {
			return 0
		}
		return int(atomic.LoadUint32(r.producer) - atomic.LoadUint32(r.consumer))
	}
	a.FillRing, a.RxRing, a.TxRing, a.CompletionRing = occ(&s.fill), occ(&s.rx), occ(&s.tx), occ(&s.comp)
	return a
}

// Verify checks the accounting against the per-frame states and the free
// stack (each free frame exactly once). It walks every frame: for tests and
// debugging, not for the hot path.
func (s *Socket) Verify() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var count [4]int
	for _, st := range s.state {
		count[st]++
	}
	seen := make([]bool, len(s.state))
	for _, addr := range s.free {
		idx := addr >> s.shift
		if idx >= uint64(len(s.state)) || s.state[idx] != stateFree || seen[idx] {
			return fmt.Errorf("verify accounting: bad free stack entry %#x", addr)
		}
		seen[idx] = true
	}
	if count[stateFree] != len(s.free) || count[stateRx] != s.nRx || count[stateApp] != s.nInFlight || count[stateTx] != s.nTx {
		return fmt.Errorf("verify accounting: states free %d rx %d app %d tx %d, counters free %d rx %d app %d tx %d",
			count[stateFree], count[stateRx], count[stateApp], count[stateTx], len(s.free), s.nRx, s.nInFlight, s.nTx)
	}
	return nil
}

// Open creates an AF_XDP socket with its UMEM and binds it to queue of the
// interface ifindex (in the calling thread's network namespace). It raises
// RLIMIT_MEMLOCK if needed and fills the fill ring with
// Options.InitialFill frames. The kernel releases the queue of a closed
// socket asynchronously, so Open retries a bind that fails with EBUSY for up
// to two seconds before giving up. Redirecting traffic to it is the XDP
// program's job (bpf.Program.Register with s.FD()).
func Open(ifindex, queue int, o Options) (*Socket, error) { return open(ifindex, queue, o) }

// Stats returns our counters and the kernel's XDP_STATISTICS.
func (s *Socket) Stats() (Stats, error) { return s.readStats() }

// Close unmaps the rings, closes the socket and unmaps the UMEM. The queue
// can be bound again as soon as Close returns. Close is idempotent.
func (s *Socket) Close() error { return s.close() }

var _ Queue = (*Socket)(nil)
