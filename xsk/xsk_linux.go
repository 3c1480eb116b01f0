package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ring{}
	return err
}

// busyWait is how long Open retries a bind that fails with EBUSY.
// ringNeedWakeup must be the kernel's flag.
var _ [0]struct{} = [ringNeedWakeup ^ unix.XDP_RING_NEED_WAKEUP]struct{}{}

const busyWait = 2 * time.Second

// open is Open on Linux.
func open(ifindex, queue int, o Options) (*Socket, error) {
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

func (s *Socket) wakeRx() {
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	s.mu.Lock()
	s.stats.Wakeups++
	s.mu.Unlock()
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

func (s *Socket) poll(timeout time.Duration, want pollWant) (bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	if s.ready(want) {
		s.mu.Unlock()
		return true, nil
	}
	// Wait for rx whenever the socket has an rx ring, even with no frame
	// in the fill ring right now: another goroutine may Release frames
	// while we sleep, and then the kernel fills the rx ring.
	var events int16
	if s.rxDescs != nil && want != pollTx {
		events |= unix.POLLIN
	}
	if s.nTx > 0 && want != pollRx {
		// Writable: the tx ring is at most half full. In copy mode the
		// poll itself sends what is queued.
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
	return s.ready(want), nil
}

// ready reports whether what a poller of kind want waits for is there:
// received frames, completions, or (pollTx) completions or room on the tx
// ring.
func (s *Socket) ready(want pollWant) bool {
	if want != pollTx && s.rxDescs != nil && atomic.LoadUint32(s.rx.producer) != atomic.LoadUint32(s.rx.consumer) {
		return true
	}
	if want == pollRx {
		return false
	}
	if atomic.LoadUint32(s.comp.producer) != atomic.LoadUint32(s.comp.consumer) {
		return true
	}
	return want == pollTx && s.txDescs != nil && atomic.LoadUint32(s.tx.producer)-atomic.LoadUint32(s.tx.consumer) < s.tx.size
}

func (s *Socket) readStats() (Stats, error) {
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

// close is Close on Linux.
func (s *Socket) close() error {
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
