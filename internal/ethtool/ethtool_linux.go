// Package ethtool runs the legacy one-value ethtool commands
// (ETHTOOL_[GS]{TSO,GSO,GRO,TXCSUM}), and reads the channel counts
// (ETHTOOL_GCHANNELS), through the SIOCETHTOOL ioctl, which
// every kernel still maps onto the feature bits, without the string-set
// dance of ETHTOOL_SFEATURES or the ethtool netlink family. The daemon
// uses it on a veth peer, the testbed on its links. Linux only.
package ethtool

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// value is struct ethtool_value from linux/ethtool.h.
type value struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// Do performs one legacy command cmd (unix.ETHTOOL_*) with data on link
// name through socket fd (any AF_INET datagram socket of the link's
// network namespace) and returns the value the kernel left in data.
func Do(fd int, name string, cmd, data uint32) (uint32, error) {
	if len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("ethtool %s: name too long", name)
	}
	v := &value{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// Socket is an ioctl socket for the commands of this package, in the
// network namespace of the thread that opened it; it serves any number of
// commands on any link of that namespace. Close it when done.
type Socket struct{ fd int }

// Open opens a Socket in the calling thread's network namespace.
func Open() (*Socket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open ioctl socket: %w", err)
	}
	return &Socket{fd: fd}, nil
}

// Close closes the socket.
func (s *Socket) Close() error { return unix.Close(s.fd) }

// Set performs the set command cmd (unix.ETHTOOL_S*) with on as its value
// on link name.
func (s *Socket) Set(name string, cmd uint32, on bool) error {
	var d uint32
	if on {
		d = 1
	}
	_, err := Do(s.fd, name, cmd, d)
	return err
}

// Get performs the get command cmd (unix.ETHTOOL_G*) on link name and
// reports whether the feature is on.
func (s *Socket) Get(name string, cmd uint32) (bool, error) {
	v, err := Do(s.fd, name, cmd, 0)
	return v != 0, err
}

// Set performs the set command cmd with on as its value on link name, in
// the calling thread's network namespace, through a Socket of its own.
func Set(name string, cmd uint32, on bool) error {
	s, err := Open()
	if err != nil {
		return fmt.Errorf("ethtool %s: %w", name, err)
	}
	defer s.Close()
	return s.Set(name, cmd, on)
}

// channels is struct ethtool_channels from linux/ethtool.h.
type channels struct {
	cmd                                      uint32
	maxRx, maxTx, maxOther, maxCombined      uint32
	rxCount, txCount, otherCount, comboCount uint32
}

// RxQueues returns the number of receive queues link name uses, as its
// driver reports its channels (ETHTOOL_GCHANNELS: receive-only plus
// combined channels), which can be fewer than the queues the device
// allocated (netlink's count). It fails when the driver does not report
// channels (EOPNOTSUPP).
func (s *Socket) RxQueues(name string) (int, error) {
	if len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("ethtool %s: name too long", name)
	}
	c := &channels{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(c)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(c)
	if errno != 0 {
		return 0, errno
	}
	return int(c.rxCount + c.comboCount), nil
}
