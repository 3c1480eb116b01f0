package testbed

import (
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Constants of Linux's netlink interface that the portable code uses.
const (
	afInet            = unix.AF_INET
	afInet6           = unix.AF_INET6
	afBridge          = unix.AF_BRIDGE
	nudPermanent      = netlink.NUD_PERMANENT
	nudPermanentNoARP = netlink.NUD_PERMANENT | netlink.NUD_NOARP
	ntfSelf           = netlink.NTF_SELF
)

func dupFD(fd int) (int, error) { return unix.Dup(fd) }

func closeFD(fd int) error { return unix.Close(fd) }
