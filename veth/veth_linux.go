package veth

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mflow/bpf"
	"mflow/tap"
	"mflow/xsk"
)

// txBatch is how many frames a write hands to the tx ring at once, and
// how many a read takes off the rx rings.
const txBatch = 64

// Device is a network's device when the config says `type: veth`: an
// existing veth pair whose one end (the configured name) mflow serves with
// AF_XDP sockets, one per receive queue, and an XDP program that redirects
// every frame arriving there to them; the other end is the containers'
// side (put on the configured bridge, or inside a container).
//
// Towards the containers, WriteFrames copies each frame into the
// socket's UMEM and transmits the batch: one sendto per 32 frames or so
// instead of one write(2) per frame into a TAP. From the containers, Read
// takes received frames and copies them into the caller's buffers (the
// uplink socket's UMEM). AF_XDP on a veth is copy mode, so both directions
// copy anyway; there is no segmentation to do (with an XDP program on one
// end, the kernel turns off GSO on the other).
//
// Concurrency: one writer at a time (the caller's per-device mutex, which
// also keeps writers out of Close), one reader goroutine (Close waits for
// it to leave Read).
type Device struct {
	name  string
	index int
	nl    *netlink.Handle // in the daemon's namespace, to tell whether the veth still exists
	prog  *bpf.Program
	att   *bpf.Attachment
	socks []*xsk.Socket // one per receive queue; socks[0] also transmits

	txd []xsk.Desc // writer's scratch

	rxMu   sync.Mutex // held by Read while it uses the sockets
	rxd    []xsk.Desc
	next   int // socket Read looks at first
	pfds   []unix.PollFd
	closed atomic.Bool
	gone   atomic.Bool // a transmit failed: the device went away

	frames, frameBytes      atomic.Uint64 // read from the containers
	written, writtenBytes   atomic.Uint64 // transmitted to the containers
	writeErrors             atomic.Uint64 // could not be transmitted
	dropShort, dropTooLarge atomic.Uint64 // received frames not handed on

	statMu           sync.Mutex // keeps KernelDrops and Close apart
	statsFinal       bool       // the sockets are closing: use finalKernelDrops
	finalKernelDrops uint64
}

// errGone is what Read returns once a transmit found the device gone; it
// wraps os.ErrClosed.
var errGone = fmt.Errorf("veth gone: %w", os.ErrClosed)

// ConfigError is an error of the device's configuration (the named device
// is not a veth, the bridge does not fit), as opposed to a kernel object
// that could not be set up. Field is the configuration field at fault
// below the device ("" for the device itself, "bridge").
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Open sets up the veth name in the calling thread's network namespace:
// the end must exist and be a veth; with a bridge, its peer must be in the
// same namespace, gets TX checksum offload turned off (see txChecksumOff)
// and is put on the bridge. Both ends get the MTU and are brought up. An
// error of the configuration is a *ConfigError.
func Open(name string, mtu int, bridge string) (v *Device, err error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("veth %s: %w (type veth expects an existing veth pair)", name, err)}
	}
	if link.Type() != "veth" {
		return nil, &ConfigError{Err: fmt.Errorf("%s is a %s device, not a veth", name, link.Type())}
	}
	a := link.Attrs()
	v = &Device{name: name, index: a.Index, txd: make([]xsk.Desc, txBatch), rxd: make([]xsk.Desc, txBatch)}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	if v.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return v, fmt.Errorf("open netlink handle: %w", err)
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return v, fmt.Errorf("set MTU %d on %s: %w", mtu, name, err)
	}
	if bridge != "" {
		// The peer's ifindex is in IFLA_LINK; make sure the device with
		// that index here is really our peer and not a namesake of an
		// index in another namespace.
		peer, perr := netlink.LinkByIndex(a.ParentIndex)
		if perr != nil || peer.Type() != "veth" || peer.Attrs().ParentIndex != a.Index {
			return v, &ConfigError{Field: "bridge", Err: fmt.Errorf("the peer of veth %s is not in this network namespace; leave bridge out and attach the peer yourself", name)}
		}
		br, berr := netlink.LinkByName(bridge)
		if berr != nil {
			return v, &ConfigError{Field: "bridge", Err: fmt.Errorf("%s: %w", bridge, berr)}
		}
		if _, ok := br.(*netlink.Bridge); !ok {
			return v, &ConfigError{Field: "bridge", Err: fmt.Errorf("%s is a %s device, not a bridge", bridge, br.Type())}
		}
		if err := netlink.LinkSetMTU(peer, mtu); err != nil {
			return v, fmt.Errorf("set MTU %d on %s: %w", mtu, peer.Attrs().Name, err)
		}
		if err := txChecksumOff(peer.Attrs().Name); err != nil {
			return v, fmt.Errorf("%w", err)
		}
		if err := netlink.LinkSetMaster(peer, br); err != nil {
			return v, fmt.Errorf("attach %s to bridge %s: %w", peer.Attrs().Name, bridge, err)
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return v, fmt.Errorf("bring %s up: %w", peer.Attrs().Name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return v, fmt.Errorf("bring %s up: %w", name, err)
	}
	nq := max(a.NumRxQueues, 1)
	if v.prog, err = bpf.Load(bpf.Config{All: true, Queues: nq}); err != nil {
		return v, fmt.Errorf("load XDP program for %s: %w", name, err)
	}
	// A veth allocates more receive queues than it uses (one, unless
	// created with numrxqueues), and the number in use is not in its
	// netlink attributes: bind queue after queue until one does not exist.
	for q := range nq {
		s, err := xsk.Open(v.index, q, xsk.Options{})
		if err != nil && q > 0 && errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return v, fmt.Errorf("open AF_XDP socket on %s queue %d: %w", name, q, err)
		}
		v.socks = append(v.socks, s)
		if err := v.prog.Register(q, s.FD()); err != nil {
			return v, fmt.Errorf("register socket of %s queue %d: %w", name, q, err)
		}
	}
	for _, s := range v.socks {
		v.pfds = append(v.pfds, unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLIN})
	}
	// Native mode only: in generic mode the peer keeps GSO and hands over
	// frames larger than a UMEM frame can receive.
	if v.att, err = v.prog.Attach(v.index, bpf.ModeNative); err != nil {
		return v, fmt.Errorf("attach XDP program to %s in native mode (a veth whose peer has more tx queues than it has rx queues refuses it): %w", name, err)
	}
	return v, nil
}

// Queues is the number of receive queues served (one socket each).
func (v *Device) Queues() int { return len(v.socks) }

// WriteErrorReason is the drop reason under which frames WriteFrames could
// not transmit are counted (Stats.WriteErrors).
func (v *Device) WriteErrorReason() string { return "veth_tx_error" }

// Name returns the configured end's name.
func (v *Device) Name() string { return v.name }

// Mode is the XDP attach mode in use.
func (v *Device) Mode() bpf.Mode { return v.att.Mode() }

// WriteFrames transmits frames[k][off:] to the containers' side, in order. A frame
// that cannot be sent (larger than a UMEM frame, no free frame, tx ring
// full for 10 ms, the device gone) is dropped and counted in WriteErrors,
// as a TAP counts frames its kernel refuses; the error is never returned,
// so that the engine does not count the batch a second time. It returns
// the number sent.
func (v *Device) WriteFrames(frames [][]byte, off int) (int, error) {
	if v.closed.Load() || v.gone.Load() {
		v.writeErrors.Add(uint64(len(frames)))
		return 0, nil
	}
	s := v.socks[0]
	frameSize := s.Options().FrameSize
	sent := 0
	for len(frames) > 0 {
		s.Complete()
		want := min(len(frames), len(v.txd))
		k := s.Alloc(v.txd[:want])
		for deadline := time.Now().Add(10 * time.Millisecond); k == 0 && time.Now().Before(deadline); {
			// Every frame is on its way out: wait for completions.
			time.Sleep(20 * time.Microsecond)
			s.Complete()
			k = s.Alloc(v.txd[:want])
		}
		if k == 0 {
			// Every frame stayed on the tx ring for 10 ms: the kernel
			// does not send (the device is down or was deleted; a
			// deleted one unbinds the socket, and without a wakeup
			// Transmit does not learn it).
			if _, err := v.nl.LinkByIndex(v.index); err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					v.gone.Store(true)
				}
			}
			v.writeErrors.Add(uint64(len(frames)))
			return sent, nil
		}
		n := 0
		var bytes uint64
		for _, f := range frames[:k] {
			f = f[off:]
			if len(f) > frameSize {
				v.writeErrors.Add(1)
				continue
			}
			d := v.txd[n] // Alloc set Len to the frame size
			d.Len = uint32(copy(s.Frame(d), f))
			v.txd[n] = d
			bytes += uint64(d.Len)
			n++
		}
		if n < k {
			s.Free(v.txd[n:k])
		}
		frames = frames[k:]
		m, err := xsk.TransmitRetry(s, v.txd[:n], nil)
		if err != nil {
			// The kernel refused the wakeup: the device is gone
			// (unregistered) or down. The frames on the ring stay
			// there until Close; count the whole chunk as lost.
			v.gone.Store(true)
			s.Free(v.txd[m:n])
			v.writeErrors.Add(uint64(n + len(frames)))
			return sent, nil
		}
		if out := v.txd[m:n]; len(out) > 0 {
			for _, d := range out {
				bytes -= uint64(d.Len)
			}
			v.writeErrors.Add(uint64(len(out)))
			s.Free(out)
		}
		sent += m
		v.written.Add(uint64(m))
		v.writtenBytes.Add(bytes)
	}
	return sent, nil
}

// Read waits for frames from the containers' side and copies up to
// len(bufs) of them into bufs[k][off:], setting sizes[k]. It returns
// os.ErrClosed once the device is closed.
func (v *Device) Read(bufs [][]byte, sizes []int, off int) (int, error) {
	v.rxMu.Lock()
	defer v.rxMu.Unlock()
	for {
		if v.closed.Load() {
			return 0, os.ErrClosed
		}
		if v.gone.Load() {
			return 0, errGone
		}
		m := 0
		for j := range v.socks {
			if m == len(bufs) {
				break
			}
			s := v.socks[(v.next+j)%len(v.socks)]
			n := s.Receive(v.rxd[:min(len(v.rxd), len(bufs)-m)])
			for _, d := range v.rxd[:n] {
				f := s.Frame(d)
				switch {
				case len(f) < 14:
					v.dropShort.Add(1)
				case len(f) > len(bufs[m])-off:
					v.dropTooLarge.Add(1)
				default:
					sizes[m] = copy(bufs[m][off:], f)
					v.frames.Add(1)
					v.frameBytes.Add(uint64(sizes[m]))
					m++
				}
			}
			if n > 0 {
				s.Release(v.rxd[:n])
			}
		}
		v.next = (v.next + 1) % len(v.socks)
		if m > 0 {
			return m, nil
		}
		// Nothing waiting: sleep in poll(2) until a socket has frames
		// (100 ms at most, to notice Close).
		if len(v.socks) == 1 {
			if _, err := v.socks[0].PollRx(100 * time.Millisecond); err != nil && !errors.Is(err, xsk.ErrClosed) {
				return 0, fmt.Errorf("poll %s: %w", v.name, err)
			}
			continue
		}
		for k := range v.pfds {
			v.pfds[k].Revents = 0
		}
		if _, err := unix.Poll(v.pfds, 100); err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("poll %s: %w", v.name, err)
		}
	}
}

// Stats returns the device's counters in the TAP's terms: Frames are read
// from the containers, WritePackets written to them, WriteErrors dropped
// on the way there; received frames too short for Ethernet or too large
// for the caller's buffer count as tap.DropShort and tap.DropBufferTooSmall
// (and in ReadPackets, which counts every frame taken off the rx rings).
func (v *Device) Stats() tap.Stats {
	var s tap.Stats
	s.Frames, s.FrameBytes = v.frames.Load(), v.frameBytes.Load()
	s.ReadPackets, s.ReadBytes = s.Frames+v.dropShort.Load()+v.dropTooLarge.Load(), s.FrameBytes
	s.WritePackets, s.WriteBytes = v.written.Load(), v.writtenBytes.Load()
	s.WriteErrors = v.writeErrors.Load()
	s.Drops[tap.DropShort] = v.dropShort.Load()
	s.Drops[tap.DropBufferTooSmall] = v.dropTooLarge.Load()
	return s
}

// KernelDrops counts frames from the containers that the kernel dropped
// before mflow saw them: at the sockets, for no fill frame or a frame too
// large (rx_dropped) or a full rx ring (rx_ring_full), and frames of a
// queue without a socket (passed to the stack of mflow's end, which has
// no use for them). In copy mode, the only mode AF_XDP has on a veth, the
// kernel counts a frame dropped for an empty fill ring in both
// rx_dropped and rx_fill_ring_empty_descs, so only the first is added.
func (v *Device) KernelDrops() uint64 {
	v.statMu.Lock()
	defer v.statMu.Unlock()
	if v.statsFinal {
		return v.finalKernelDrops
	}
	var n uint64
	for _, s := range v.socks {
		if st, err := s.Stats(); err == nil {
			n += st.Kernel.RxDropped + st.Kernel.RxRingFull + st.Kernel.RxInvalidDescs
		}
	}
	if v.prog == nil {
		return n
	}
	if c, err := v.prog.Counters(); err == nil {
		n += c.Packets[bpf.VerdictNoSocket]
	}
	return n
}

// Close detaches the program and closes the sockets once the reader is
// out of Read (at most one poll interval); the caller keeps writers out.
// The veth itself stays: it is not mflow's.
func (v *Device) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	v.rxMu.Lock()
	defer v.rxMu.Unlock()
	if v.prog != nil {
		v.finalKernelDrops = v.KernelDrops()
	}
	v.statMu.Lock()
	v.statsFinal = true
	v.statMu.Unlock()
	var errs []error
	if v.att != nil {
		errs = append(errs, v.att.Close())
	}
	for _, s := range v.socks {
		errs = append(errs, s.Close())
	}
	if v.prog != nil {
		errs = append(errs, v.prog.Close())
	}
	if v.nl != nil {
		v.nl.Close()
	}
	return errors.Join(errs...)
}
