package testbed

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the package's only unsafe code: the SIOCETHTOOL ioctl
// with the legacy one-value commands (ETHTOOL_[GS]{TSO,GSO,GRO}), which every
// kernel still maps onto the feature bits, without the string-set dance of
// ETHTOOL_SFEATURES.

// ethtoolValue is struct ethtool_value from linux/ethtool.h.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// ethtool performs one legacy ethtool command on link name through socket fd
// and returns the value the kernel left in ethtool_value.data.
func ethtool(fd int, name string, cmd, data uint32) (uint32, error) {
	if len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", name)
	}
	v := &ethtoolValue{cmd: cmd, data: data}
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

// SetOffloads sets TSO, GSO, GRO and TX checksumming of link name as o says. It talks to the
// kernel through an ioctl on a socket opened inside the namespace.
func (ns *NS) SetOffloads(name string, o Offloads) error {
	b := func(on bool) uint32 {
		if on {
			return 1
		}
		return 0
	}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening ioctl socket: %w", err)
		}
		defer unix.Close(fd)
		for _, c := range []struct {
			what string
			cmd  uint32
			on   bool
		}{
			{"TSO", unix.ETHTOOL_STSO, o.TSO},
			{"GSO", unix.ETHTOOL_SGSO, o.GSO},
			{"GRO", unix.ETHTOOL_SGRO, o.GRO},
			{"TX checksumming", unix.ETHTOOL_STXCSUM, o.TxCsum},
		} {
			if _, err := ethtool(fd, name, c.cmd, b(c.on)); err != nil {
				return fmt.Errorf("setting %s: %w", c.what, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("setting offloads of %s in %s: %w", name, ns.Name, err)
	}
	return nil
}

// GetOffloads reports whether TSO, GSO, GRO and TX checksumming are on for link name.
func (ns *NS) GetOffloads(name string) (Offloads, error) {
	var o Offloads
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening ioctl socket: %w", err)
		}
		defer unix.Close(fd)
		for _, c := range []struct {
			cmd uint32
			on  *bool
		}{
			{unix.ETHTOOL_GTSO, &o.TSO},
			{unix.ETHTOOL_GGSO, &o.GSO},
			{unix.ETHTOOL_GGRO, &o.GRO},
			{unix.ETHTOOL_GTXCSUM, &o.TxCsum},
		} {
			v, err := ethtool(fd, name, c.cmd, 0)
			if err != nil {
				return err
			}
			*c.on = v != 0
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("reading offloads of %s in %s: %w", name, ns.Name, err)
	}
	return o, nil
}
