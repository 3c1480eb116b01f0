package testbed

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// AddBridge creates a Linux bridge name with the given MTU (0: default)
// and sets it up.
func (ns *NS) AddBridge(name string, mtu int) error {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	h, unlock, err := ns.netlink()
	if err != nil {
		return err
	}
	err = h.LinkAdd(&netlink.Bridge{LinkAttrs: la})
	unlock()
	if err != nil {
		return fmt.Errorf("creating bridge %s in %s: %w", name, ns.Name, err)
	}
	return ns.SetUp(name)
}

// SetMaster enslaves link to master (a bridge) and sets link up.
func (ns *NS) SetMaster(link, master string) error {
	h, unlock, err := ns.netlink()
	if err != nil {
		return err
	}
	l, err := h.LinkByName(link)
	if err != nil {
		unlock()
		return fmt.Errorf("finding link %s in %s: %w", link, ns.Name, err)
	}
	m, err := h.LinkByName(master)
	if err != nil {
		unlock()
		return fmt.Errorf("finding link %s in %s: %w", master, ns.Name, err)
	}
	err = h.LinkSetMaster(l, m)
	unlock()
	if err != nil {
		return fmt.Errorf("attaching %s to %s in %s: %w", link, master, ns.Name, err)
	}
	return ns.SetUp(link)
}

// Master returns the name of link's master device, or "" if it has none.
func (ns *NS) Master(link string) (string, error) {
	h, l, unlock, err := ns.link(link)
	if err != nil {
		return "", err
	}
	defer unlock()
	idx := l.Attrs().MasterIndex
	if idx == 0 {
		return "", nil
	}
	m, err := h.LinkByIndex(idx)
	if err != nil {
		return "", fmt.Errorf("finding master of %s in %s: %w", link, ns.Name, err)
	}
	return m.Attrs().Name, nil
}

// AddVxLAN creates the kernel VxLAN device o describes, with its flood
// entries, and sets it up.
func (ns *NS) AddVxLAN(o VxLANOpts) error {
	if o.Name == "" || o.Local.To4() == nil {
		return fmt.Errorf("creating vxlan %q in %s: need a name and an IPv4 local address", o.Name, ns.Name)
	}
	port := o.Port
	if port == 0 {
		port = 4789
	}
	la := netlink.NewLinkAttrs()
	la.Name = o.Name
	la.MTU = o.MTU
	v := &netlink.Vxlan{
		LinkAttrs: la,
		VxlanId:   o.VNI,
		SrcAddr:   o.Local,
		Port:      port,
		Learning:  o.Learning,
		TTL:       64,
	}
	if o.Dev != "" {
		idx, err := ns.LinkIndex(o.Dev)
		if err != nil {
			return fmt.Errorf("creating vxlan %s: %w", o.Name, err)
		}
		v.VtepDevIndex = idx
	}
	h, unlock, err := ns.netlink()
	if err != nil {
		return err
	}
	err = h.LinkAdd(v)
	unlock()
	if err != nil {
		return fmt.Errorf("creating vxlan %s in %s: %w", o.Name, ns.Name, err)
	}
	for _, r := range o.Remotes {
		if err := ns.AppendFDB(o.Name, make(net.HardwareAddr, 6), r); err != nil {
			return err
		}
	}
	return ns.SetUp(o.Name)
}

// AppendFDB adds a forwarding entry mac -> remote VTEP dst to the VxLAN
// device link (like `bridge fdb append`); the all-zero MAC makes dst a
// flood destination.
func (ns *NS) AppendFDB(link string, mac net.HardwareAddr, dst net.IP) error {
	h, l, unlock, err := ns.link(link)
	if err != nil {
		return err
	}
	defer unlock()
	n := &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       afBridge,
		State:        nudPermanentNoARP,
		Flags:        ntfSelf,
		IP:           dst,
		HardwareAddr: mac,
	}
	if err := h.NeighAppend(n); err != nil {
		return fmt.Errorf("appending FDB entry %s -> %s on %s in %s: %w", mac, dst, link, ns.Name, err)
	}
	return nil
}

// FDB lists the forwarding entries (MAC, remote VTEP) of VxLAN device link.
func (ns *NS) FDB(link string) ([]netlink.Neigh, error) {
	h, l, unlock, err := ns.link(link)
	if err != nil {
		return nil, err
	}
	defer unlock()
	list, err := h.NeighList(l.Attrs().Index, afBridge)
	if err != nil {
		return nil, fmt.Errorf("listing FDB of %s in %s: %w", link, ns.Name, err)
	}
	return list, nil
}
