package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tunUDPTunnelGSO is TUN_F_UDP_TUNNEL_GSO (linux/if_tun.h, 6.17+).
const tunUDPTunnelGSO = 0x080

// Tx is a transmit-only TAP: packets written to it enter the kernel as if
// received on the device, where a program at its ingress (the daemon
// attaches one) sends them on to the uplink. Each write carries one
// complete outer frame, a UDP-tunnel GSO super-frame among them, behind a
// TunnelHdr; nothing is read from it. It has one queue per writer (one
// file descriptor each, IFF_MULTI_QUEUE), so writers do not share a lock.
// The device carries no addresses (IPv6 off, ARP off), so the kernel
// sends nothing into it; it disappears when the Tx is closed.
type Tx struct {
	name  string
	index int
	fds   []int
	rps   *rpsCtl // SetRPS, KernelDrops

	dropMu sync.Mutex
	drops  uint64 // the last KernelDrops count
}

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h): no
// IPv6 link-local address for the device.
const in6AddrGenModeNone = 1

// OpenTx creates the transmit TAP name with the given number of queues in
// the calling thread's network namespace and brings it up. A device of
// that name must not exist. It fails with ErrNoTunnelGSO on kernels whose
// TAP takes no UDP-tunnel GSO header.
func OpenTx(name string, queues int) (t *Tx, err error) {
	if name == "" || len(name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("opening transmit tap %q: invalid interface name", name)
	}
	if queues < 1 {
		queues = 1
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return nil, fmt.Errorf("opening transmit tap %s: %w", name, ErrExists)
	}
	t = &Tx{name: name}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	for q := range queues {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return t, fmt.Errorf("opening transmit tap %s: opening /dev/net/tun: %w", name, err)
		}
		t.fds = append(t.fds, fd)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return t, fmt.Errorf("opening transmit tap %s: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return t, fmt.Errorf("opening transmit tap %s queue %d: TUNSETIFF: %w", name, q, err)
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, TunnelHdrLen); err != nil {
			return t, fmt.Errorf("opening transmit tap %s: TUNSETVNETHDRSZ: %w", name, err)
		}
		// The kernel parses the tunnel fields of written headers when the
		// header is this long; the offload flag is the probe that it
		// knows them (older kernels refuse an unknown flag).
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(OffloadCsum|OffloadTSO4|OffloadTSO6)|tunUDPTunnelGSO)
		if errors.Is(err, unix.EINVAL) {
			return t, fmt.Errorf("opening transmit tap %s: %w", name, ErrNoTunnelGSO)
		}
		if err != nil {
			return t, fmt.Errorf("opening transmit tap %s: TUNSETOFFLOAD: %w", name, err)
		}
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return t, fmt.Errorf("opening transmit tap %s: looking up link: %w", name, err)
	}
	t.index = link.Attrs().Index
	if t.rps, err = newRPSCtl(name, t.index, false); err != nil {
		return t, fmt.Errorf("opening transmit tap %s: %w", name, err)
	}
	// Nothing of the host's own is to go out of it: no ARP, and no IPv6
	// (router solicitations, MLD). Without a link-local address the
	// kernel sends no router solicitations; that is set over netlink, so
	// it also holds where /proc/sys is read-only (a systemd unit's
	// ProtectKernelTunables=yes, as examples/mflow.service has it). Where
	// /proc/sys can be written, IPv6 is also turned off on the device,
	// which silences MLD as well. A host without IPv6 has no such file and
	// refuses the address mode.
	if err := netlink.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		return t, fmt.Errorf("opening transmit tap %s: IPv6 address generation off: %w", name, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0); err != nil &&
		!errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EROFS) {
		return t, fmt.Errorf("opening transmit tap %s: disabling IPv6: %w", name, err)
	}
	if err := netlink.LinkSetARPOff(link); err != nil {
		return t, fmt.Errorf("opening transmit tap %s: ARP off: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return t, fmt.Errorf("opening transmit tap %s: setting link up: %w", name, err)
	}
	return t, nil
}

// Name returns the interface name.
func (t *Tx) Name() string { return t.name }

// Index returns the interface index.
func (t *Tx) Index() int { return t.index }

// Queues returns the number of queues.
func (t *Tx) Queues() int { return len(t.fds) }

// Write writes one packet, a TunnelHdr then an Ethernet frame, to queue
// q. The kernel builds its socket buffer inside the call and runs the
// device's ingress (and whatever that leads to) before it returns, unless
// the queue has RPS (SetRPS): then it queues the packet to a CPU's
// backlog and returns. An
// error is the kernel's refusal of that packet (EINVAL for a header it
// does not accept) or a closed device.
func (t *Tx) Write(q int, pkt []byte) error {
	for {
		_, err := unix.Write(t.fds[q], pkt)
		if err != unix.EINTR {
			return err
		}
	}
}

// KernelDrops returns how many packets written into the device the kernel
// dropped on their way on (its rx_dropped: a CPU's backlog full, for a
// queue with RPS). After Close it returns the last count.
func (t *Tx) KernelDrops() uint64 {
	t.dropMu.Lock()
	defer t.dropMu.Unlock()
	if n, err := t.rps.rxDropped(); err == nil {
		t.drops = n
	}
	return t.drops
}

// Close closes every queue; the device disappears with the last one.
// Close must not run while a Write is in progress.
func (t *Tx) Close() error {
	t.KernelDrops() // the last count, kept for after
	t.dropMu.Lock()
	err := t.rps.close()
	t.rps = nil
	t.dropMu.Unlock()
	for _, fd := range t.fds {
		err = errors.Join(err, unix.Close(fd))
	}
	t.fds = nil
	return err
}
