//go:build !linux

package testbed

import (
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NewNS is unsupported outside Linux.
func NewNS(prefix string) (*NS, error) { return nil, ErrUnsupported }

// Do is unsupported outside Linux.
func (ns *NS) Do(fn func() error) error { return ErrUnsupported }

// Handle is unsupported outside Linux.
func (ns *NS) Handle() netns.NsHandle { return netns.None() }

// Path returns the namespace's bind-mount path.
func (ns *NS) Path() string { return NetnsDir + "/" + ns.Name }

// Close is unsupported outside Linux; it returns nil.
func (ns *NS) Close() error { return nil }

// Veth is unsupported outside Linux.
func Veth(a *NS, aName string, b *NS, bName string, o VethOpts) error { return ErrUnsupported }

// Link is unsupported outside Linux.
func (ns *NS) Link(name string) (netlink.Link, error) { return nil, ErrUnsupported }

// AddAddr is unsupported outside Linux.
func (ns *NS) AddAddr(link string, cidr string) error { return ErrUnsupported }

// LinkIndex is unsupported outside Linux.
func (ns *NS) LinkIndex(name string) (int, error) { return 0, ErrUnsupported }

// HWAddr is unsupported outside Linux.
func (ns *NS) HWAddr(name string) (net.HardwareAddr, error) { return nil, ErrUnsupported }

// SetUp is unsupported outside Linux.
func (ns *NS) SetUp(name string) error { return ErrUnsupported }

// SetMTU is unsupported outside Linux.
func (ns *NS) SetMTU(name string, mtu int) error { return ErrUnsupported }

// DeleteLink is unsupported outside Linux.
func (ns *NS) DeleteLink(name string) error { return ErrUnsupported }

// AddNeigh is unsupported outside Linux.
func (ns *NS) AddNeigh(link string, ip net.IP, mac net.HardwareAddr) error { return ErrUnsupported }

// SetOffloads is unsupported outside Linux.
func (ns *NS) SetOffloads(name string, o Offloads) error { return ErrUnsupported }

// GetOffloads is unsupported outside Linux.
func (ns *NS) GetOffloads(name string) (Offloads, error) { return Offloads{}, ErrUnsupported }

// SetRPS is unsupported outside Linux.
func (ns *NS) SetRPS(link string, queue int, mask string) error { return ErrUnsupported }

// RPS is unsupported outside Linux.
func (ns *NS) RPS(link string, queue int) (string, error) { return "", ErrUnsupported }

// AddBridge is unsupported outside Linux.
func (ns *NS) AddBridge(name string, mtu int) error { return ErrUnsupported }

// SetMaster is unsupported outside Linux.
func (ns *NS) SetMaster(link, master string) error { return ErrUnsupported }

// Master is unsupported outside Linux.
func (ns *NS) Master(link string) (string, error) { return "", ErrUnsupported }

// AddVxLAN is unsupported outside Linux.
func (ns *NS) AddVxLAN(o VxLANOpts) error { return ErrUnsupported }

// AppendFDB is unsupported outside Linux.
func (ns *NS) AppendFDB(link string, mac net.HardwareAddr, dst net.IP) error { return ErrUnsupported }

// FDB is unsupported outside Linux.
func (ns *NS) FDB(link string) ([]netlink.Neigh, error) { return nil, ErrUnsupported }

// ListNamed is unsupported outside Linux.
func ListNamed(prefix string) ([]string, error) { return nil, ErrUnsupported }

// RemoveNamed is unsupported outside Linux.
func RemoveNamed(name string) error { return ErrUnsupported }
