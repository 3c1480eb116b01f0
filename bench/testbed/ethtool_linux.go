package testbed

import (
	"fmt"

	"golang.org/x/sys/unix"

	"mflow/internal/ethtool"
)

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
			if _, err := ethtool.Do(fd, name, c.cmd, b(c.on)); err != nil {
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
			v, err := ethtool.Do(fd, name, c.cmd, 0)
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
