package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Build creates the docs/ARCHITECTURE.md §8 topology: namespaces peer, host and ctr; the
// wire veth peer/wire0 (192.0.2.2/24) <-> host/uplink0 (192.0.2.1/24), MTU
// 1500, TSO/GSO/GRO off, with permanent neighbour entries both ways; in
// peer the kernel VxLAN device vxlan42 (VNI 42, port 4789, local 192.0.2.2,
// flooding to 192.0.2.1 through an all-zero FDB entry, learning on, MTU
// 1450) carrying 10.42.0.1/24; in host the bridge br42 (MTU 1450) with the
// veth vethctr0 <-> ctr/ctr0 (10.42.0.2/24, MTU 1450); and, with
// o.HostVxLAN, the host's own vxlan42 (local 192.0.2.1, flooding to
// 192.0.2.2) on br42. On error everything created so far is removed.
// ctx is checked between steps.
func Build(ctx context.Context, o Options) (*Topology, error) {
	if o.Prefix == "" {
		o.Prefix = "mflow"
	}
	if o.WireQueues <= 0 {
		o.WireQueues = 1
	}
	t := &Topology{Options: o}
	built := false
	defer func() {
		if !built {
			t.Close()
		}
	}()
	steps := []struct {
		what string
		do   func() error
	}{
		{"creating namespaces", t.createNamespaces},
		{"wiring underlay", t.wire},
		{"creating peer VxLAN", func() error {
			return t.addVxLAN(t.Peer, PeerUnderlayIP, HostUnderlayIP, PeerWire)
		}},
		{"addressing peer overlay", func() error {
			return t.Peer.AddAddr(VxLANDev, fmt.Sprintf("%s/%d", PeerOverlayIP, OverlayBits))
		}},
		{"creating bridge", func() error { return t.Host.AddBridge(Bridge, OverlayMTU) }},
		{"wiring container", t.container},
	}
	if o.HostVxLAN {
		steps = append(steps, struct {
			what string
			do   func() error
		}{"creating host VxLAN", func() error {
			if err := t.addVxLAN(t.Host, HostUnderlayIP, PeerUnderlayIP, HostUplink); err != nil {
				return err
			}
			return t.Host.SetMaster(VxLANDev, Bridge)
		}})
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("building testbed: %w", err)
		}
		if err := s.do(); err != nil {
			return nil, fmt.Errorf("building testbed: %s: %w", s.what, err)
		}
	}
	built = true
	return t, nil
}

func (t *Topology) createNamespaces() error {
	for _, p := range []struct {
		role string
		ns   **NS
	}{{"peer", &t.Peer}, {"host", &t.Host}, {"ctr", &t.Ctr}} {
		ns, err := NewNS(t.Options.Prefix + "-" + p.role)
		if err != nil {
			return err
		}
		*p.ns = ns
		if !t.Options.KeepIPv6 {
			if err := ns.DisableIPv6(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Topology) wire() error {
	q := t.Options.WireQueues
	if t.Options.WireDefaultQueues {
		q = 0 // no IFLA_NUM_{RX,TX}_QUEUES: the kernel's defaults
	}
	if err := Veth(t.Peer, PeerWire, t.Host, HostUplink, VethOpts{MTU: WireMTU, RxQueues: q, TxQueues: q, NoOffloads: !t.Options.WireOffloads}); err != nil {
		return err
	}
	if t.Options.PeerTxChecksum {
		if err := t.Peer.SetOffloads(PeerWire, Offloads{TxCsum: true}); err != nil {
			return err
		}
	}
	if err := t.Peer.AddAddr(PeerWire, fmt.Sprintf("%s/%d", PeerUnderlayIP, UnderlayBits)); err != nil {
		return err
	}
	if err := t.Host.AddAddr(HostUplink, fmt.Sprintf("%s/%d", HostUnderlayIP, UnderlayBits)); err != nil {
		return err
	}
	var err error
	if t.PeerWireMAC, err = t.Peer.HWAddr(PeerWire); err != nil {
		return err
	}
	if t.HostUplinkMAC, err = t.Host.HWAddr(HostUplink); err != nil {
		return err
	}
	if err := t.Peer.AddNeigh(PeerWire, HostUnderlayIP, t.HostUplinkMAC); err != nil {
		return err
	}
	return t.Host.AddNeigh(HostUplink, PeerUnderlayIP, t.PeerWireMAC)
}

func (t *Topology) addVxLAN(ns *NS, local, remote net.IP, dev string) error {
	return ns.AddVxLAN(VxLANOpts{
		Name: VxLANDev, VNI: VNI, Port: VxLANPort, Local: local, Dev: dev,
		Remotes: []net.IP{remote}, MTU: OverlayMTU, Learning: true,
	})
}

func (t *Topology) container() error {
	if err := Veth(t.Host, HostCtrVeth, t.Ctr, CtrDev, VethOpts{MTU: OverlayMTU}); err != nil {
		return err
	}
	if err := t.Host.SetMaster(HostCtrVeth, Bridge); err != nil {
		return err
	}
	return t.Ctr.AddAddr(CtrDev, fmt.Sprintf("%s/%d", CtrOverlayIP, OverlayBits))
}

// AttachToBridge puts an existing link of the host namespace (mflow's TAP)
// on br42, with the overlay MTU, and sets it up.
func (t *Topology) AttachToBridge(link string) error {
	if err := t.Host.SetMTU(link, OverlayMTU); err != nil {
		return err
	}
	return t.Host.SetMaster(link, Bridge)
}

// AddMflowVeth creates, in the host namespace, the veth pair MflowVeth /
// MflowVethPeer for an mflow network device of type veth (the daemon puts
// the peer on the bridge). It goes away with the namespace.
func (t *Topology) AddMflowVeth() error {
	return t.Host.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: MflowVeth}, PeerName: MflowVethPeer}); err != nil {
			return fmt.Errorf("create veth %s/%s: %w", MflowVeth, MflowVethPeer, err)
		}
		return nil
	})
}

// Namespaces returns the topology's namespaces (those created so far).
func (t *Topology) Namespaces() []*NS {
	var list []*NS
	for _, ns := range []*NS{t.Peer, t.Host, t.Ctr} {
		if ns != nil {
			list = append(list, ns)
		}
	}
	return list
}

// Close deletes the three namespaces and with them every link, address,
// bridge and VxLAN device of the topology (XDP programs attached to its
// links go with the links). It is idempotent and safe for concurrent use.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range t.Namespaces() {
		if err := ns.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing testbed: %w", errors.Join(errs...))
	}
	return nil
}
