package testbed

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Veth creates a veth pair with end aName in namespace a and end bName in
// namespace b (a and b may be the same), applies o to both ends and sets
// both up. The pair is created directly inside the namespaces: nothing ever
// appears in the caller's namespace.
func Veth(a *NS, aName string, b *NS, bName string, o VethOpts) error {
	if err := createVeth(a, aName, b, bName, o); err != nil {
		return fmt.Errorf("creating veth %s/%s-%s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	for _, end := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		if o.NoOffloads {
			if err := end.ns.SetOffloads(end.name, Offloads{}); err != nil {
				return err
			}
		}
		if err := end.ns.SetUp(end.name); err != nil {
			return err
		}
	}
	return nil
}

func createVeth(a *NS, aName string, b *NS, bName string, o VethOpts) error {
	la := netlink.NewLinkAttrs()
	la.Name = aName
	la.MTU = o.MTU
	la.NumRxQueues = o.RxQueues
	la.NumTxQueues = o.TxQueues
	v := &netlink.Veth{
		LinkAttrs:       la,
		PeerName:        bName,
		PeerMTU:         uint32(max(o.MTU, 0)),
		PeerNumRxQueues: uint32(max(o.RxQueues, 0)),
		PeerNumTxQueues: uint32(max(o.TxQueues, 0)),
	}
	if a != b {
		// A duplicate of b's handle stays valid even if b is closed meanwhile.
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return fmt.Errorf("namespace %s: %w", b.Name, ErrClosed)
		}
		bfd, err := dupFD(int(b.fd))
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("duplicating namespace handle: %w", err)
		}
		defer closeFD(bfd)
		v.PeerNamespace = netlink.NsFd(bfd)
	}
	h, unlock, err := a.netlink()
	if err != nil {
		return err
	}
	defer unlock()
	return h.LinkAdd(v)
}

// link looks up a link by name with the namespace's handle; the caller holds
// ns.mu via unlock.
func (ns *NS) link(name string) (*netlink.Handle, netlink.Link, func(), error) {
	h, unlock, err := ns.netlink()
	if err != nil {
		return nil, nil, nil, err
	}
	l, err := h.LinkByName(name)
	if err != nil {
		unlock()
		return nil, nil, nil, fmt.Errorf("finding link %s in %s: %w", name, ns.Name, err)
	}
	return h, l, unlock, nil
}

// Link returns the netlink description of link name in the namespace.
func (ns *NS) Link(name string) (netlink.Link, error) {
	_, l, unlock, err := ns.link(name)
	if err != nil {
		return nil, err
	}
	unlock()
	return l, nil
}

// AddAddr adds an address in CIDR notation, e.g. "192.0.2.1/24", to link.
func (ns *NS) AddAddr(link string, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("adding address %q to %s: %w", cidr, link, err)
	}
	h, l, unlock, err := ns.link(link)
	if err != nil {
		return err
	}
	defer unlock()
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("adding address %s to %s in %s: %w", cidr, link, ns.Name, err)
	}
	return nil
}

// LinkIndex returns the interface index of link name.
func (ns *NS) LinkIndex(name string) (int, error) {
	l, err := ns.Link(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// HWAddr returns the MAC address of link name.
func (ns *NS) HWAddr(name string) (net.HardwareAddr, error) {
	l, err := ns.Link(name)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// SetUp sets link name administratively up.
func (ns *NS) SetUp(name string) error {
	h, l, unlock, err := ns.link(name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up in %s: %w", name, ns.Name, err)
	}
	return nil
}

// SetMTU sets the MTU of link name.
func (ns *NS) SetMTU(name string, mtu int) error {
	h, l, unlock, err := ns.link(name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("setting MTU of %s in %s: %w", name, ns.Name, err)
	}
	return nil
}

// DeleteLink deletes link name.
func (ns *NS) DeleteLink(name string) error {
	h, l, unlock, err := ns.link(name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("deleting %s in %s: %w", name, ns.Name, err)
	}
	return nil
}

// AddNeigh adds a permanent neighbour entry ip -> mac on link.
func (ns *NS) AddNeigh(link string, ip net.IP, mac net.HardwareAddr) error {
	h, l, unlock, err := ns.link(link)
	if err != nil {
		return err
	}
	defer unlock()
	family := afInet6
	if ip.To4() != nil {
		family = afInet
	}
	n := &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       family,
		State:        nudPermanent,
		IP:           ip,
		HardwareAddr: mac,
	}
	if err := h.NeighSet(n); err != nil {
		return fmt.Errorf("adding neighbour %s on %s in %s: %w", ip, link, ns.Name, err)
	}
	return nil
}
