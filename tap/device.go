package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"mflow/internal/spin"
)

// Device is an open TAP device. Read must be called from one goroutine at
// a time and Write from one goroutine at a time (a reader and a writer may
// run concurrently); Stats, Name, Index, Offloads, Adopted and Close are
// safe for concurrent use. The zero value is not usable: call Open.
type Device struct {
	file    *os.File
	rc      syscall.RawConn
	name    string
	index   int
	adopted bool
	offl    Offloads

	// Reader state, owned by the goroutine in Read.
	rbuf      []byte // one packet from the kernel: virtio header + frame
	pending   int    // length of a packet in rbuf not yet delivered, 0 if none
	segFrom   int    // first segment of the pending packet not yet delivered
	rdBufs    [][]byte
	rdSizes   []int
	rdLayouts []Layout // ReadPackets'
	rdOffset  int
	rdN       int
	rdErr     error
	rdStats   Stats // counted during one Read, added to stats at its end
	readFn    func(fd uintptr) bool
	rawFn     func(fd uintptr) bool // ReadPackets' callback
	holdRd    bool                  // HoldReadStats: ReadPackets leaves its counts to ReleaseReadStats
	spin      spin.Spinner          // SetReadSpin

	dropMu   sync.Mutex      // guards nl, drops and dropBase
	nl       *netlink.Handle // in the device's namespace, for KernelDrops; nil once closed
	drops    uint64          // the last KernelDrops count
	dropBase uint64          // tx_dropped at Open (an adopted device counted before)

	rps *rpsCtl // SetRPS

	// Writer state, owned by the goroutine in Write.
	group    []keyedFrame // WriteFrames' scratch
	co       coalescer
	wrPkts   []wpkt
	wrI      int
	wrFrames int
	wrErr    error
	wrStats  Stats
	writeFn  func(fd uintptr) bool

	stats struct {
		readPackets, readBytes, frames, frameBytes, superFrames atomic.Uint64
		writePackets, writeBytes, writeErrors                   atomic.Uint64
		writeSyscalls, writeSuperFrames                         atomic.Uint64
		drops                                                   [NumReasons]atomic.Uint64
	}
}

// Open creates the TAP device o.Name in the calling thread's network
// namespace, or adopts an existing TAP of that name (unless o.MustCreate),
// enables the virtio header and offloads, sets the MTU and the queue
// length, attaches it to o.Bridge and brings it up. A device that Open
// created disappears when it is closed; an adopted one stays (with the
// MTU, queue length, bridge and up state Open gave it). The caller must run Open on a locked OS thread if it switched
// that thread's namespace.
func Open(o Options) (*Device, error) { return open(o) }

// ErrNoHeadroom is returned by Write when offset leaves no room for the
// virtio header before the frames.
var ErrNoHeadroom = errors.New("tap: offset leaves no room for the virtio header")

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// Index returns the interface index.
func (d *Device) Index() int { return d.index }

// Adopted reports whether the device existed before Open.
func (d *Device) Adopted() bool { return d.adopted }

// Offloads returns the offloads the kernel accepted.
func (d *Device) Offloads() Offloads { return d.offl }

// Close closes the device's file descriptor, which ends a blocked Read or
// Write with an error. A device that Open created is removed by the kernel.
func (d *Device) Close() error {
	d.KernelDrops() // the last count, kept for after
	d.dropMu.Lock()
	if d.nl != nil {
		d.nl.Close()
		d.nl = nil
	}
	d.dropMu.Unlock()
	return errors.Join(d.closeRPS(), d.file.Close())
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() Stats {
	s := Stats{
		ReadPackets:  d.stats.readPackets.Load(),
		ReadBytes:    d.stats.readBytes.Load(),
		Frames:       d.stats.frames.Load(),
		FrameBytes:   d.stats.frameBytes.Load(),
		SuperFrames:  d.stats.superFrames.Load(),
		WritePackets: d.stats.writePackets.Load(),
		WriteBytes:   d.stats.writeBytes.Load(),
		WriteErrors:  d.stats.writeErrors.Load(),

		WriteSyscalls:    d.stats.writeSyscalls.Load(),
		WriteSuperFrames: d.stats.writeSuperFrames.Load(),
	}
	for i := range s.Drops {
		s.Drops[i] = d.stats.drops[i].Load()
	}
	return s
}

// SetReadSpin makes Read, when the device has nothing for it, retry for up
// to d (yielding to other goroutines and threads between tries)
// before it parks in the runtime's poller: a packet that comes within d
// is read without a wake-up, at the price of a CPU kept busy (but not
// held) meanwhile. 0, the default, parks at once. Call it from the
// reading goroutine, or before Read is first called.
func (d *Device) SetReadSpin(spin time.Duration) { d.spin.For = spin }

// Read blocks until the kernel has at least one packet for the device,
// then reads packets while more are ready and the buffers last. Each
// packet is segmented (see Segment): frame i goes to bufs[i][offset:] with
// its length in sizes[i]. Read returns the number of frames. The segments
// of a super-frame that do not fit in the buffers left are kept for the
// next call, so any number of buffers works (fewer only cost more calls; a
// 64 KiB super-frame at an MSS of 1410 makes 46 frames). Dropped packets
// are counted in Stats, not returned as errors. Read does not allocate.
// Each buffer must hold offset plus the device MTU plus 14 (18 with VLAN)
// bytes, or the packets that do not fit are dropped (DropBufferTooSmall).
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	bufs = bufs[:min(len(bufs), len(sizes))]
	if len(bufs) == 0 {
		return 0, nil
	}
	d.rdBufs, d.rdSizes, d.rdOffset, d.rdN, d.rdErr = bufs, sizes, offset, 0, nil
	err := d.rc.Read(d.readFn)
	n, rerr := d.rdN, d.rdErr
	d.rdBufs, d.rdSizes = nil, nil
	d.flushReadStats()
	if err != nil {
		return n, fmt.Errorf("reading tap %s: %w", d.name, err)
	}
	if rerr != nil {
		return n, fmt.Errorf("reading tap %s: %w", d.name, rerr)
	}
	return n, nil
}

// ReadPackets is Read without segmentation, for a transmit path that
// hands super-frames on whole (the kernel cuts them): it blocks until the
// kernel has a packet, then reads packets while more are ready and the
// buffers last, each whole (virtio header, then the frame) into
// bufs[i][offset:], its length in sizes[i] and its layout (ParsePacket's)
// in layouts[i]. Each buffer must hold offset
// plus MaxPacket bytes. A packet Segment would drop is dropped here
// (counted in Stats.Drops); Stats count the others as Read does, in the
// frames they will make on the wire (ParsePacket). Mixing Read and
// ReadPackets on one device is not supported. ReadPackets does not
// allocate.
func (d *Device) ReadPackets(bufs [][]byte, sizes []int, layouts []Layout, offset int) (int, error) {
	bufs = bufs[:min(len(bufs), len(sizes), len(layouts))]
	if len(bufs) == 0 {
		return 0, nil
	}
	for _, b := range bufs {
		if offset < 0 || len(b) < offset+MaxPacket {
			return 0, fmt.Errorf("reading tap %s: a buffer holds less than offset plus MaxPacket", d.name)
		}
	}
	d.rdBufs, d.rdSizes, d.rdLayouts, d.rdOffset, d.rdN, d.rdErr = bufs, sizes, layouts, offset, 0, nil
	err := d.rc.Read(d.rawFn)
	n, rerr := d.rdN, d.rdErr
	d.rdBufs, d.rdSizes, d.rdLayouts = nil, nil, nil
	if !d.holdRd {
		d.flushReadStats()
	}
	if err != nil {
		return n, fmt.Errorf("reading tap %s: %w", d.name, err)
	}
	if rerr != nil {
		return n, fmt.Errorf("reading tap %s: %w", d.name, rerr)
	}
	return n, nil
}

// HoldReadStats makes ReadPackets keep what it counted until
// ReleaseReadStats, for a caller that must account for the packets
// elsewhere before Stats shows them read. Call both from the reading
// goroutine.
func (d *Device) HoldReadStats() { d.holdRd = true }

// ReleaseReadStats publishes what ReadPackets counted since the last
// release.
func (d *Device) ReleaseReadStats() { d.flushReadStats() }

func (d *Device) flushReadStats() {
	s := &d.rdStats
	add := func(c *atomic.Uint64, v *uint64) {
		if *v != 0 {
			c.Add(*v)
			*v = 0
		}
	}
	add(&d.stats.readPackets, &s.ReadPackets)
	add(&d.stats.readBytes, &s.ReadBytes)
	add(&d.stats.frames, &s.Frames)
	add(&d.stats.frameBytes, &s.FrameBytes)
	add(&d.stats.superFrames, &s.SuperFrames)
	for i := range s.Drops {
		add(&d.stats.drops[i], &s.Drops[i])
	}
}

// Write writes each frame bufs[i][offset:] to the device (the host
// receives it as if from the wire), one write(2) per frame. The
// VirtioNetHdrLen bytes before each frame are overwritten with a zero
// virtio header (no offload: the frame's checksums must be complete), so
// that nothing is copied: offset must be at least VirtioNetHdrLen. A frame
// the kernel refuses (EINVAL, EIO, EMSGSIZE, ENOBUFS, ENOMEM) is dropped
// and counted in Stats.WriteErrors. Write returns the number of frames
// consumed (written or dropped) and an error only if the device failed.
// The cost is one system call per frame (about 2 µs on current kernels);
// WriteCoalesced reduces it for runs of TCP segments and of UDP
// datagrams. Write does not allocate once its internal list has grown to
// the largest batch.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	if offset < VirtioNetHdrLen {
		return 0, ErrNoHeadroom
	}
	d.co.out = d.co.out[:0]
	for _, b := range bufs {
		d.co.single(b, offset, len(b)-offset)
	}
	return d.write(d.co.out)
}

// WriteCoalesced is Write with TCP and UDP coalescing: runs of
// consecutive segments of one TCP/IPv4 flow, or of equal-sized datagrams of
// one UDP/IPv4 flow (see coalesce.go for the exact rules), are copied into
// one GSO super-frame (virtio GSO type TCPv4 or UDP_L4, NEEDS_CSUM) and
// written with one write(2); every other frame is written as by Write,
// without a copy. Order is kept. The counters count frames, not writes:
// Stats.WritePackets grows by len(bufs) minus refused frames, and
// Stats.WriteSyscalls and Stats.WriteSuperFrames tell what it saved. The
// checksum check and the copy into the super-frame cost about 150 ns per
// 1400-byte segment (BenchmarkCoalesce64x1400), far less than the ~2 µs
// write each merged segment saves.
func (d *Device) WriteCoalesced(bufs [][]byte, offset int) (int, error) {
	if offset < VirtioNetHdrLen {
		return 0, ErrNoHeadroom
	}
	if d.co.arena == nil {
		d.co.arena = make([]byte, coalesceArena)
	}
	done := 0
	for done < len(bufs) {
		k := d.co.plan(bufs[done:], offset)
		n, err := d.write(d.co.out)
		if err != nil {
			return done + n, err
		}
		done += k
	}
	return done, nil
}

// WriteVirtio writes packets that already start with a virtio header at
// bufs[i][offset:] (for instance a super-frame built by the caller). It
// counts one frame per packet; otherwise it behaves like Write.
func (d *Device) WriteVirtio(bufs [][]byte, offset int) (int, error) {
	d.co.out = d.co.out[:0]
	for _, b := range bufs {
		d.co.out = append(d.co.out, wpkt{pkt: b[offset:], frames: 1, bytes: max(len(b)-offset-VirtioNetHdrLen, 0)})
	}
	return d.write(d.co.out)
}

// write writes pkts and returns the number of frames they carried that
// were consumed.
func (d *Device) write(pkts []wpkt) (int, error) {
	d.wrPkts, d.wrI, d.wrFrames, d.wrErr = pkts, 0, 0, nil
	err := d.rc.Write(d.writeFn)
	n, werr := d.wrFrames, d.wrErr
	d.wrPkts = nil
	s := &d.wrStats
	d.stats.writePackets.Add(s.WritePackets)
	d.stats.writeBytes.Add(s.WriteBytes)
	d.stats.writeErrors.Add(s.WriteErrors)
	d.stats.writeSyscalls.Add(s.WriteSyscalls)
	d.stats.writeSuperFrames.Add(s.WriteSuperFrames)
	*s = Stats{}
	if err != nil {
		return n, fmt.Errorf("writing tap %s: %w", d.name, err)
	}
	if werr != nil {
		return n, fmt.Errorf("writing tap %s: %w", d.name, werr)
	}
	return n, nil
}

// WriteFrames writes a batch of frames towards the containers: the
// frames (at bufs[i][offset:], with room for the virtio header before
// them) are first grouped by inner flow, keeping the order within every
// flow (GroupByFlow), then written with WriteCoalesced, so that
// interleaved flows still make super-frames. Frames of different flows
// may change places; a flow's receiver cannot tell. It reorders bufs in
// place and allocates nothing once its scratch has grown to the largest
// batch.
func (d *Device) WriteFrames(bufs [][]byte, offset int) (int, error) {
	if len(d.group) < len(bufs) {
		d.group = make([]keyedFrame, len(bufs))
	}
	groupByFlow(bufs, offset, d.group)
	return d.WriteCoalesced(bufs, offset)
}

// KernelDrops counts frames the kernel dropped on their way to mflow since
// Open: the TAP's tx_dropped (frames the bridge sent while the device's
// queue to user space was full), less what an adopted device had counted
// before. After Close it returns the last count read before closing; while
// the count cannot be read (the device is gone) it returns the last one
// read.
func (d *Device) KernelDrops() uint64 {
	d.dropMu.Lock()
	defer d.dropMu.Unlock()
	if d.nl != nil {
		if l, err := d.nl.LinkByIndex(d.index); err == nil && l.Attrs().Statistics != nil {
			d.drops = l.Attrs().Statistics.TxDropped - min(d.dropBase, l.Attrs().Statistics.TxDropped)
		}
	}
	return d.drops
}

// WriteErrorReason is the drop reason under which frames the kernel
// refused on a write are counted (Stats.WriteErrors).
func (d *Device) WriteErrorReason() string { return "tap_write_error" }
