// Package tap opens the TAP devices through which mflow hands decapsulated
// frames to the host (the sink) and takes frames to encapsulate (the
// source), and turns the kernel's offloaded super-frames into wire frames.
//
// Data flow:
//
//	Open: /dev/net/tun, TUNSETIFF(IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) creates the
//	      device (or adopts an existing TAP of that name), TUNSETVNETHDRSZ,
//	      TUNSETOFFLOAD(CSUM|TSO4|TSO6|USO4|USO6, USO dropped if refused);
//	      netlink sets the MTU, the bridge (master) and brings it up.
//	Read (encap source): one read(2) per packet = virtio_net_hdr + frame,
//	      into a private 64 KiB buffer; Segment cuts a GSO super-frame into
//	      MTU-sized frames (or fills a NEEDS_CSUM checksum) and copies them
//	      into the caller's buffers (e.g. UMEM frames with headroom for the
//	      outer headers). Several packets per call while the fd has data.
//	Write (decap sink): one write(2) per frame, the zero virtio_net_hdr
//	      written into headroom the caller leaves before each frame, so the
//	      frame is not copied. WriteCoalesced first merges runs of
//	      consecutive TCP/IPv4 segments, or of equal-sized UDP/IPv4
//	      datagrams, of one flow into GSO super-frames (TCPv4 or UDP_L4;
//	      one copy, one write(2) per run; rules in coalesce.go).
//
// Malformed packets are counted drops with a Reason (Stats), never errors.
// Segment is pure Go and usable on every platform; the device is Linux only.
package tap

import "errors"

// Offloads is a set of TUN_F_* offload flags (linux/if_tun.h) that the
// kernel may use on a TAP's packets.
type Offloads uint32

// TUN_F_* flags.
const (
	OffloadCsum Offloads = 0x01 // TUN_F_CSUM: partial checksums (NEEDS_CSUM)
	OffloadTSO4 Offloads = 0x02 // TUN_F_TSO4: TCP/IPv4 super-frames
	OffloadTSO6 Offloads = 0x04 // TUN_F_TSO6: TCP/IPv6 super-frames
	OffloadUSO4 Offloads = 0x20 // TUN_F_USO4: UDP/IPv4 L4 super-frames (Linux 6.2+)
	OffloadUSO6 Offloads = 0x40 // TUN_F_USO6: UDP/IPv6 L4 super-frames (Linux 6.2+)

	// OffloadsAll is what Open asks for by default.
	OffloadsAll = OffloadCsum | OffloadTSO4 | OffloadTSO6 | OffloadUSO4 | OffloadUSO6
)

// String lists the flags, e.g. "csum,tso4,tso6".
func (o Offloads) String() string {
	if o == 0 {
		return "none"
	}
	names := []struct {
		f Offloads
		n string
	}{{OffloadCsum, "csum"}, {OffloadTSO4, "tso4"}, {OffloadTSO6, "tso6"}, {OffloadUSO4, "uso4"}, {OffloadUSO6, "uso6"}}
	s := ""
	for _, x := range names {
		if o&x.f != 0 {
			if s != "" {
				s += ","
			}
			s += x.n
		}
	}
	return s
}

// Options configure Open. The zero value (plus a Name) opens a TAP with
// every offload, leaving the MTU as it is and attaching it to no bridge.
type Options struct {
	// Name is the interface name (required, at most 15 bytes).
	Name string
	// MTU, when non-zero, is set on the device.
	MTU int
	// QueueLen, when non-zero, is set as the device's txqueuelen: the
	// frames the kernel holds on each queue for the reader before it drops
	// (counted in tx_dropped, Device.KernelDrops). A new TAP gets 1000.
	QueueLen int
	// Bridge, when non-empty, is the existing bridge the device is attached
	// to (its master).
	Bridge string
	// Offloads to request; 0 means OffloadsAll. USO is dropped silently
	// when the kernel refuses it; Device.Offloads says what is on.
	Offloads Offloads
	// NoOffloads requests no offloads at all (every read is one plain
	// frame with complete checksums).
	NoOffloads bool
	// MultiQueue opens the device with IFF_MULTI_QUEUE. An existing device
	// must have been created with the same setting.
	MultiQueue bool
	// MustCreate fails with ErrExists instead of adopting an existing TAP.
	MustCreate bool
	// Down leaves the device off its bridge and down (as created, or as
	// adopted) until Device.Up: for a caller that must configure it (more
	// queues, a steering program) before frames come.
	Down bool
}

// Stats are the counters of a Device. Drops[r] counts packets dropped for
// Reason r.
type Stats struct {
	ReadPackets  uint64 // packets read from the kernel (super-frames count once)
	ReadBytes    uint64 // bytes read, virtio header excluded
	Frames       uint64 // frames handed to the caller after segmentation
	FrameBytes   uint64
	SuperFrames  uint64 // GSO super-frames segmented
	WritePackets uint64 // frames written to the kernel (segments of a coalesced super-frame count one each)
	WriteBytes   uint64 // bytes of those frames, virtio headers excluded
	WriteErrors  uint64 // frames the kernel refused (dropped)
	// WriteSyscalls counts write(2) calls, WriteSuperFrames the coalesced
	// super-frames among them (WriteCoalesced).
	WriteSyscalls    uint64
	WriteSuperFrames uint64
	Drops            [NumReasons]uint64
}

// MaxPacket is the largest packet a TAP read returns: a 64 KiB super-frame
// plus its Ethernet and virtio headers.
const MaxPacket = VirtioNetHdrLen + 14 + 4 + 65535

// Errors returned by Open.
var (
	// ErrUnsupported is returned on platforms without TAP support.
	ErrUnsupported = errors.New("tap: not supported on this platform")
	// ErrExists is returned by Open with MustCreate when the name is taken.
	ErrExists = errors.New("tap: device exists")
	// ErrNotTAP is returned when the name belongs to a device that is not a
	// TAP.
	ErrNotTAP = errors.New("tap: device exists and is not a TAP")
)
