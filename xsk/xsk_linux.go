package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ring{}
	return err
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

// busyWait is how long Open retries a bind that fails with EBUSY.
const busyWait = 2 * time.Second

// Open creates an AF_XDP socket with its UMEM and binds it to queue of the
// interface ifindex (in the calling thread's network namespace). It raises
// RLIMIT_MEMLOCK if needed and fills the fill ring with
// Options.InitialFill frames. The kernel releases the queue of a closed
// socket asynchronously, so Open retries a bind that fails with EBUSY for up
// to two seconds before giving up. Redirecting traffic to it is the XDP
// program's job (bpf.Program.Register with s.FD()).
func Open(ifindex, queue int, o Options) (*Socket, error) {
	o, err := o.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("open xsk: %w", err)
	}
	if ifindex <= 0 || queue < 0 {
		return nil, fmt.Errorf("open xsk: bad interface index %d or queue %d", ifindex, queue)
	}
	size := o.NumFrames * o.FrameSize
	if err := raiseMemlock(uint64(size) + 1<<20); err != nil {
		return nil, fmt.Errorf("open xsk: %w", err)
	}
	umem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("open xsk: map umem of %d bytes: %w", size, err)
	}
	s := &Socket{
		fd:      -1,
		ifindex: ifindex,
		queue:   queue,
		opts:    o,
		umem:    umem,
		shift:   uint(bits.TrailingZeros(uint(o.FrameSize))),
		free:    make([]uint64, 0, o.NumFrames),
		state:   make([]uint8, o.NumFrames),
	}
	for i := o.NumFrames - 1; i >= 0; i-- {
		s.free = append(s.free, uint64(i)<<s.shift)
	}

	type attempt struct {
		flags uint16
		nw    bool // need_wakeup requested
	}
	var attempts []attempt
	nws := []bool{true, false}
	if o.NoNeedWakeup {
		nws = []bool{false}
	}
	for _, nw := range nws {
		var f uint16
		if nw {
			f = unix.XDP_USE_NEED_WAKEUP
		}
		if o.Bind != BindCopy {
			attempts = append(attempts, attempt{f | unix.XDP_ZEROCOPY, nw})
		}
		if o.Bind != BindZeroCopy {
			attempts = append(attempts, attempt{f | unix.XDP_COPY, nw})
		}
	}
	var errs []error
	busyUntil := time.Now().Add(busyWait)
	for _, a := range attempts {
		err := s.setup(a.flags)
		for errors.Is(err, unix.EBUSY) && time.Now().Before(busyUntil) {
			// A socket closed a moment ago releases its queue from a
			// kernel work item (xp_release_deferred): wait for it.
			time.Sleep(5 * time.Millisecond)
			err = s.setup(a.flags)
		}
		if err == nil {
			s.needWakeup = a.nw
			break
		}
		errs = append(errs, err)
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
			break // no other flags will help
		}
	}
	if s.fd < 0 {
		unix.Munmap(umem)
		return nil, fmt.Errorf("open xsk on ifindex %d queue %d: %w", ifindex, queue, errors.Join(errs...))
	}
	zc, err := s.queryZeroCopy()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open xsk on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	s.zeroCopy = zc
	s.Fill(o.InitialFill)
	return s, nil
}

// setup creates the socket, registers the UMEM, maps the rings and binds
// with flags. On failure everything but the UMEM is released.
func (s *Socket) setup(flags uint16) (err error) {
	o := s.opts
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create socket: %w", err)
	}
	s.fd = fd
	defer func() {
		if err != nil {
			s.teardown()
		}
	}()
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))),
		Len:  uint64(len(s.umem)),
		Size: uint32(o.FrameSize),
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("register umem: %w (raise RLIMIT_MEMLOCK: run as root, `ulimit -l unlimited`, or grant CAP_IPC_LOCK)", err)
		}
		return fmt.Errorf("register umem: %w", err)
	}
	sizes := []struct {
		opt int
		n   int
		nm  string
	}{{unix.XDP_UMEM_FILL_RING, o.FillSize, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, o.CompletionSize, "completion"}, {unix.XDP_RX_RING, o.RxSize, "rx"}, {unix.XDP_TX_RING, o.TxSize, "tx"}}
	for _, r := range sizes {
		if r.n < 0 {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, r.n); err != nil {
			return fmt.Errorf("set %s ring size %d: %w", r.nm, r.n, err)
		}
	}
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return fmt.Errorf("get mmap offsets: %w", e)
	}
	var p unsafe.Pointer
	if p, err = s.mapRing(&s.fill, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, o.FillSize, 8); err != nil {
		return fmt.Errorf("map fill ring: %w", err)
	}
	s.fillDescs = unsafe.Slice((*uint64)(p), o.FillSize)
	if p, err = s.mapRing(&s.comp, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, o.CompletionSize, 8); err != nil {
		return fmt.Errorf("map completion ring: %w", err)
	}
	s.compQ = unsafe.Slice((*uint64)(p), o.CompletionSize)
	if o.RxSize > 0 {
		if p, err = s.mapRing(&s.rx, off.Rx, unix.XDP_PGOFF_RX_RING, o.RxSize, unsafe.Sizeof(Desc{})); err != nil {
			return fmt.Errorf("map rx ring: %w", err)
		}
		s.rxDescs = unsafe.Slice((*Desc)(p), o.RxSize)
	}
	if o.TxSize > 0 {
		if p, err = s.mapRing(&s.tx, off.Tx, unix.XDP_PGOFF_TX_RING, o.TxSize, unsafe.Sizeof(Desc{})); err != nil {
			return fmt.Errorf("map tx ring: %w", err)
		}
		s.txDescs = unsafe.Slice((*Desc)(p), o.TxSize)
	}
	sa := unix.SockaddrXDP{Flags: flags, Ifindex: uint32(s.ifindex), QueueID: uint32(s.queue)}
	if err := unix.Bind(fd, &sa); err != nil {
		return fmt.Errorf("bind (flags %#x): %w", flags, err)
	}
	return nil
}

func (s *Socket) mapRing(r *ring, off unix.XDPRingOffset, pgoff int64, n int, descSize uintptr) (unsafe.Pointer, error) {
	mem, err := unix.Mmap(s.fd, pgoff, int(off.Desc)+n*int(descSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	base := unsafe.Pointer(&mem[0])
	*r = ring{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, off.Flags)),
		mask:     uint32(n - 1),
		size:     uint32(n),
		mem:      mem,
	}
	return unsafe.Add(base, off.Desc), nil
}

// teardown unmaps the rings and closes the socket. The rings must be
// unmapped before the kernel releases the socket (and its queue binding):
// asavie/xdp's Close misses this.
func (s *Socket) teardown() error {
	var errs []error
	for _, r := range []*ring{&s.fill, &s.comp, &s.rx, &s.tx} {
		if err := r.unmap(); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring: %w", err))
		}
	}
	s.fillDescs, s.compQ, s.rxDescs, s.txDescs = nil, nil, nil, nil
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close socket: %w", err))
		}
		s.fd = -1
	}
	return errors.Join(errs...)
}

func setsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0); e != 0 {
		return e
	}
	return nil
}

func (s *Socket) queryZeroCopy() (bool, error) {
	var opts uint32
	optlen := uint32(unsafe.Sizeof(opts))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&opts)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return false, fmt.Errorf("get xdp options: %w", e)
	}
	return opts&unix.XDP_OPTIONS_ZEROCOPY != 0, nil
}

// raiseMemlock makes sure RLIMIT_MEMLOCK allows need more bytes, raising
// the soft limit (to infinity, else to the hard limit) when it is lower. If
// it cannot, registering the UMEM may still succeed (root and CAP_IPC_LOCK
// are exempt); setup names the fix when it fails.
func raiseMemlock(need uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("get RLIMIT_MEMLOCK: %w", err)
	}
	if lim.Cur == unix.RLIM_INFINITY || lim.Cur >= need {
		return nil
	}
	if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}) == nil {
		return nil
	}
	if lim.Max > lim.Cur {
		unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: lim.Max, Max: lim.Max})
	}
	return nil
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
		kick = s.needWakeup && atomic.LoadUint32(s.fill.flags)&unix.XDP_RING_NEED_WAKEUP != 0
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
		kick = s.needWakeup && atomic.LoadUint32(s.fill.flags)&unix.XDP_RING_NEED_WAKEUP != 0
	}
	s.mu.Unlock()
	if kick {
		s.wakeRx()
	}
	return n
}

func (s *Socket) wakeRx() {
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	s.mu.Lock()
	s.stats.Wakeups++
	s.mu.Unlock()
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
	kick := sent > 0 && (!s.needWakeup || atomic.LoadUint32(s.tx.flags)&unix.XDP_RING_NEED_WAKEUP != 0)
	s.mu.Unlock()
	if kick {
		if err := s.wakeTx(); err != nil {
			return n, fmt.Errorf("transmit: %w", err)
		}
	}
	return n, nil
}

// wakeTx asks the kernel to send what is on the tx ring. In copy mode each
// sendto sends a bounded batch (and returns EAGAIN when more is left), so
// it repeats while the kernel makes progress.
func (s *Socket) wakeTx() error {
	for i := 0; i < 64; i++ {
		before := atomic.LoadUint32(s.tx.consumer)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		s.mu.Lock()
		s.stats.Wakeups++
		s.mu.Unlock()
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
		default:
			return fmt.Errorf("wake tx: %w", e)
		}
		after := atomic.LoadUint32(s.tx.consumer)
		if after == atomic.LoadUint32(s.tx.producer) || after == before && e != unix.EINTR {
			return nil
		}
	}
	return nil
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
func (s *Socket) Poll(timeout time.Duration) (bool, error) { return s.poll(timeout, false) }

// PollRx is Poll for a receiver that shares the socket with a sender: it
// waits only for received frames and ignores the tx side (a socket whose tx
// ring has room is always writable, so waiting for that would return at
// once and make the receiver spin).
func (s *Socket) PollRx(timeout time.Duration) (bool, error) { return s.poll(timeout, true) }

func (s *Socket) poll(timeout time.Duration, rxOnly bool) (bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	if s.ready(rxOnly) {
		s.mu.Unlock()
		return true, nil
	}
	// Wait for rx whenever the socket has an rx ring, even with no frame
	// in the fill ring right now: another goroutine may Release frames
	// while we sleep, and then the kernel fills the rx ring.
	var events int16
	if s.rxDescs != nil {
		events |= unix.POLLIN
	}
	if s.nTx > 0 && !rxOnly {
		events |= unix.POLLOUT
	}
	pfd := [1]unix.PollFd{{Fd: int32(s.fd), Events: events}}
	s.mu.Unlock()
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := unix.Poll(pfd[:], ms)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return false, fmt.Errorf("poll xsk: %w", err)
		}
		if timeout >= 0 {
			if ms = int(time.Until(deadline) / time.Millisecond); ms < 0 {
				ms = 0
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	return s.ready(rxOnly), nil
}

func (s *Socket) ready(rxOnly bool) bool {
	if s.rxDescs != nil && atomic.LoadUint32(s.rx.producer) != atomic.LoadUint32(s.rx.consumer) {
		return true
	}
	return !rxOnly && atomic.LoadUint32(s.comp.producer) != atomic.LoadUint32(s.comp.consumer)
}

// Stats returns our counters and the kernel's XDP_STATISTICS.
func (s *Socket) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.closed {
		return st, ErrClosed
	}
	var ks unix.XDPStatistics
	optlen := uint32(unsafe.Sizeof(ks))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&ks)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return st, fmt.Errorf("get xdp statistics: %w", e)
	}
	st.Kernel = KernelStats{
		RxDropped:        ks.Rx_dropped,
		RxInvalidDescs:   ks.Rx_invalid_descs,
		TxInvalidDescs:   ks.Tx_invalid_descs,
		RxRingFull:       ks.Rx_ring_full,
		RxFillRingEmpty:  ks.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs: ks.Tx_ring_empty_descs,
	}
	return st, nil
}

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

// Close unmaps the rings, closes the socket and unmaps the UMEM. The queue
// can be bound again as soon as Close returns. Close is idempotent.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.teardown()
	if s.umem != nil {
		if e := unix.Munmap(s.umem); e != nil {
			err = errors.Join(err, fmt.Errorf("unmap umem: %w", e))
		}
		s.umem = nil
	}
	if err != nil {
		return fmt.Errorf("close xsk: %w", err)
	}
	return nil
}

var _ Queue = (*Socket)(nil)
