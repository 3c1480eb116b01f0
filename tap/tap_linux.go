package tap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// open is Open on Linux.
func open(o Options) (*Device, error) {
	if o.Name == "" || len(o.Name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("opening tap %q: invalid interface name", o.Name)
	}
	adopted := false
	if l, err := netlink.LinkByName(o.Name); err == nil {
		if t, ok := l.(*netlink.Tuntap); !ok || t.Mode != netlink.TUNTAP_MODE_TAP {
			return nil, fmt.Errorf("opening tap %s: %w (type %s)", o.Name, ErrNotTAP, l.Type())
		}
		if o.MustCreate {
			return nil, fmt.Errorf("opening tap %s: %w", o.Name, ErrExists)
		}
		adopted = true
	} else if !errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, fmt.Errorf("opening tap %s: looking up link: %w", o.Name, err)
	}

	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening tap %s: opening /dev/net/tun: %w", o.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(o.Name)
	if err != nil {
		return nil, fmt.Errorf("opening tap %s: %w", o.Name, err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if o.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return nil, fmt.Errorf("opening tap %s: TUNSETIFF: %w", o.Name, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, VirtioNetHdrLen); err != nil {
		return nil, fmt.Errorf("opening tap %s: TUNSETVNETHDRSZ: %w", o.Name, err)
	}
	want := o.Offloads
	if want == 0 {
		want = OffloadsAll
	}
	if o.NoOffloads {
		want = 0
	}
	if want&(OffloadTSO4|OffloadTSO6|OffloadUSO4|OffloadUSO6) != 0 {
		want |= OffloadCsum // the kernel refuses segmentation offloads without it
	}
	err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(want))
	if errors.Is(err, unix.EINVAL) && want&(OffloadUSO4|OffloadUSO6) != 0 {
		want &^= OffloadUSO4 | OffloadUSO6 // kernels before 6.2 know no USO
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(want))
	}
	if err != nil {
		return nil, fmt.Errorf("opening tap %s: TUNSETOFFLOAD %s: %w", o.Name, want, err)
	}

	link, err := netlink.LinkByName(o.Name)
	if err != nil {
		return nil, fmt.Errorf("opening tap %s: looking up link: %w", o.Name, err)
	}
	if o.MTU != 0 && link.Attrs().MTU != o.MTU {
		if err := netlink.LinkSetMTU(link, o.MTU); err != nil {
			return nil, fmt.Errorf("opening tap %s: setting MTU %d: %w", o.Name, o.MTU, err)
		}
	}
	if o.QueueLen != 0 && link.Attrs().TxQLen != o.QueueLen {
		// The kernel resizes every attached queue's ring to it, and
		// sizes queues attached later by it.
		if err := netlink.LinkSetTxQLen(link, o.QueueLen); err != nil {
			return nil, fmt.Errorf("opening tap %s: setting txqueuelen %d: %w", o.Name, o.QueueLen, err)
		}
	}
	if !o.Down {
		if err := attachUp(link, o.Name, o.Bridge); err != nil {
			return nil, err
		}
	}

	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening tap %s: netlink handle: %w", o.Name, err)
	}
	rps, err := newRPSCtl(o.Name, link.Attrs().Index, adopted)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("opening tap %s: %w", o.Name, err)
	}
	file := os.NewFile(uintptr(fd), "/dev/net/tun:"+o.Name)
	ok = true
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		nl.Close()
		rps.close()
		return nil, fmt.Errorf("opening tap %s: %w", o.Name, err)
	}
	d := &Device{
		file:    file,
		nl:      nl,
		rc:      rc,
		name:    o.Name,
		index:   link.Attrs().Index,
		adopted: adopted,
		offl:    want,
		rbuf:    make([]byte, MaxPacket),
		rps:     rps,
	}
	if st := link.Attrs().Statistics; st != nil {
		d.dropBase = st.TxDropped
	}
	d.readFn = d.readLoop
	d.rawFn = d.readRawLoop
	d.writeFn = d.writeLoop
	return d, nil
}

// attachUp puts the device on bridge (when not empty) and brings it up.
func attachUp(link netlink.Link, name, bridge string) error {
	if bridge != "" {
		br, err := netlink.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("opening tap %s: looking up bridge %s: %w", name, bridge, err)
		}
		if _, isBridge := br.(*netlink.Bridge); !isBridge {
			return fmt.Errorf("opening tap %s: %s is a %s, not a bridge", name, bridge, br.Type())
		}
		if link.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
				return fmt.Errorf("opening tap %s: attaching to bridge %s: %w", name, bridge, err)
			}
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("opening tap %s: setting link up: %w", name, err)
	}
	return nil
}

// Up puts a device opened with Options.Down on bridge (when not empty)
// and brings it up.
func (d *Device) Up(bridge string) error {
	link, err := netlink.LinkByIndex(d.index)
	if err != nil {
		return fmt.Errorf("tap %s: looking up link: %w", d.name, err)
	}
	return attachUp(link, d.name, bridge)
}

// readPacket reads one packet into b for a RawConn read callback (Read's
// and ReadPackets'), retrying on EINTR and, while spinning, on EAGAIN. It
// returns the packet's length, counted; or stop set, when the callback is
// to return result (false: nothing read yet, wait for the device; true: a
// batch is ready, or rdErr is set).
func (d *Device) readPacket(fd uintptr, b []byte) (n int, stop, result bool) {
	for {
		n, err := unix.Read(int(fd), b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if d.rdN > 0 {
				return 0, true, true
			}
			if d.spin.Again() {
				continue
			}
			return 0, true, false
		case err != nil:
			d.rdErr = err
			return 0, true, true
		case n == 0:
			d.rdErr = io.EOF
			return 0, true, true
		}
		d.spin.Reset()
		d.rdStats.ReadPackets++
		d.rdStats.ReadBytes += uint64(max(n-VirtioNetHdrLen, 0))
		return n, false, false
	}
}

// readLoop is the RawConn callback of Read: it returns false (wait) only
// while it has nothing to return.
func (d *Device) readLoop(fd uintptr) bool {
	for {
		if d.pending == 0 {
			n, stop, result := d.readPacket(fd, d.rbuf)
			if stop {
				return result
			}
			d.pending = n
		}
		pkt := d.rbuf[:d.pending]
		k, total, r := segment(pkt, d.rdBufs[d.rdN:], d.rdSizes[d.rdN:], d.rdOffset, d.segFrom, true)
		if r != OK {
			d.pending, d.segFrom = 0, 0
			d.rdStats.Drops[r]++
			continue
		}
		for _, s := range d.rdSizes[d.rdN : d.rdN+k] {
			d.rdStats.FrameBytes += uint64(s)
		}
		d.rdStats.Frames += uint64(k)
		d.rdN += k
		d.segFrom += k
		if d.segFrom >= total { // the whole packet is delivered
			if pkt[1] != GSONone {
				d.rdStats.SuperFrames++
			}
			d.pending, d.segFrom = 0, 0
		}
		if d.rdN == len(d.rdBufs) {
			return true
		}
	}
}

// readRawLoop is the RawConn callback of ReadPackets.
func (d *Device) readRawLoop(fd uintptr) bool {
	for d.rdN < len(d.rdBufs) {
		b := d.rdBufs[d.rdN][d.rdOffset : d.rdOffset+MaxPacket]
		n, stop, result := d.readPacket(fd, b)
		if stop {
			return result
		}
		l, r := ParsePacket(b[:n])
		if r != OK {
			d.rdStats.Drops[r]++
			continue
		}
		d.rdStats.Frames += uint64(l.Frames)
		d.rdStats.FrameBytes += uint64(l.WireBytes(n - VirtioNetHdrLen))
		if l.Hdr.GSOType != GSONone {
			d.rdStats.SuperFrames++
		}
		d.rdSizes[d.rdN] = n
		d.rdLayouts[d.rdN] = l
		d.rdN++
	}
	return true
}

// writeLoop is the RawConn callback of write.
func (d *Device) writeLoop(fd uintptr) bool {
	for d.wrI < len(d.wrPkts) {
		p := &d.wrPkts[d.wrI]
		_, err := unix.Write(int(fd), p.pkt)
		switch err {
		case nil:
			d.wrStats.WritePackets += uint64(p.frames)
			d.wrStats.WriteBytes += uint64(p.bytes)
			d.wrStats.WriteSyscalls++
			if p.frames > 1 {
				d.wrStats.WriteSuperFrames++
			}
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case unix.EINVAL, unix.EIO, unix.EMSGSIZE, unix.ENOBUFS, unix.ENOMEM:
			d.wrStats.WriteErrors += uint64(p.frames)
			d.wrStats.WriteSyscalls++
		default:
			d.wrErr = err
			return true
		}
		d.wrFrames += p.frames
		d.wrI++
	}
	return true
}

// tunSetSteeringEBPF is TUNSETSTEERINGEBPF, _IOR('T', 224, int).
const tunSetSteeringEBPF = 0x800454e0

// SetSteering makes the kernel pick the queue of every frame it sends into
// the (multi-queue) device by running the socket-filter program progFD
// (its result modulo the number of queues) instead of its own flow table;
// it applies to the whole device.
func (d *Device) SetSteering(progFD int) error {
	var err error
	cerr := d.rc.Control(func(fd uintptr) {
		v := int32(progFD)
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, tunSetSteeringEBPF, uintptr(unsafe.Pointer(&v)))
		if e != 0 {
			err = e
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tap %s: TUNSETSTEERINGEBPF: %w", d.name, err)
	}
	return nil
}
