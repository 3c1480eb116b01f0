package testbed

import (
	"fmt"
	"net"
)

// Names and addresses of the docs/ARCHITECTURE.md §8 topology built by [Build].
//
//	ns Peer (remote host)                 ns Host (local host)                     ns Ctr (container)
//	vxlan42 VNI 42, local 192.0.2.2 ─wire─ uplink0 192.0.2.1 ── (mflow or vxlan42) ── br42 ── vethctr0 ══ ctr0 10.42.0.2
//	10.42.0.1/24 on vxlan42         wire0
const (
	PeerWire      = "wire0"    // peer's end of the wire veth
	HostUplink    = "uplink0"  // host's end of the wire veth (mflow's uplink)
	VxLANDev      = "vxlan42"  // kernel VxLAN device (peer; host in HostVxLAN mode)
	Bridge        = "br42"     // bridge in host
	HostCtrVeth   = "vethctr0" // host's end of the container veth, on Bridge
	CtrDev        = "ctr0"     // container's interface
	MflowVeth     = "mflow42"  // mflow's device (its TAP, or its end of a veth pair)
	MflowVethPeer = "mflow42p" // the other end of that veth pair, on Bridge
	VNI           = 42
	VxLANPort     = 4789
	WireMTU       = 1500
	OverlayMTU    = 1450
	UnderlayBits  = 24
	OverlayBits   = 24
)

// Addresses of the topology.
var (
	PeerUnderlayIP = net.IPv4(192, 0, 2, 2).To4()
	HostUnderlayIP = net.IPv4(192, 0, 2, 1).To4()
	PeerOverlayIP  = net.IPv4(10, 42, 0, 1).To4()
	CtrOverlayIP   = net.IPv4(10, 42, 0, 2).To4()
)

// Options configures Build. The zero value builds the mflow topology (no
// VxLAN device in host) with one queue per wire end.
type Options struct {
	// Prefix starts the namespace names, "<Prefix>-peer-<random6>" and so
	// on; empty means "mflow".
	Prefix string
	// HostVxLAN creates the kernel's vxlan42 in host, attached to br42: the
	// kernel baseline. Otherwise host has no VxLAN device and mflow's TAP
	// goes on br42 (see Topology.AttachToBridge).
	HostVxLAN bool
	// WireQueues is the number of rx and tx queues of both wire ends (one
	// AF_XDP socket per queue); 0 means 1.
	WireQueues int
	// WireDefaultQueues creates the wire as `ip link add … type veth` does,
	// without queue counts (WireQueues is ignored): the kernel then
	// allocates one rx and one tx queue per possible CPU but uses only one
	// of each, so a netlink query reports more rx queues than can be bound.
	WireDefaultQueues bool
	// KeepIPv6 leaves IPv6 on in the namespaces; by default it is turned off
	// so that no neighbour discovery or MLD traffic disturbs packet counts.
	KeepIPv6 bool
	// PeerTxChecksum leaves transmit checksum offload on at the peer's
	// end of the wire, as a veth made with iproute2 has it: the peer's
	// VxLAN then sends frames whose outer UDP checksum holds only the
	// pseudo-header sum (docs/ARCHITECTURE.md §5). Otherwise both wire
	// ends have every offload off.
	PeerTxChecksum bool
	// WireOffloads leaves the wire's offloads as `ip link add … type
	// veth` makes them (TSO, GSO, transmit checksum on; GRO off), so that
	// super-frames can cross it whole, as on a host whose overlay an
	// operator built with iproute2. Otherwise both ends have every
	// offload off (PeerTxChecksum aside) and the wire carries MTU-sized
	// frames.
	WireOffloads bool
}

// Topology is a built testbed. Close removes it; Close is idempotent and
// safe to call from another goroutine (a signal handler) while the
// topology is in use, after which the namespaces' methods fail with
// ErrClosed.
type Topology struct {
	Peer, Host, Ctr *NS
	// Options as given to Build, with defaults filled in.
	Options Options
	// PeerWireMAC and HostUplinkMAC are the wire ends' MAC addresses (each
	// side has the other in its neighbour table as a permanent entry).
	PeerWireMAC, HostUplinkMAC net.HardwareAddr
}

// MflowConfig returns the YAML configuration of an mflow daemon that
// serves the Host namespace of this topology in place of the kernel's
// vxlan42: uplink HostUplink, VTEP HostUnderlayIP, VNI 42 on a TAP named
// mflow42 on Bridge, Peer as the only peer, no metrics endpoint. steering
// is the body of the steering mapping, e.g. "policy: microflow, workers: 2,
// batch: 256".
func MflowConfig(steering string) []byte { return MflowConfigDevice("tap", steering) }

// MflowConfigDevice is MflowConfig with the network's device of the given
// type: "tap", or "veth" for the pair MflowVeth / MflowVethPeer that
// Topology.AddMflowVeth creates (the peer goes on Bridge).
func MflowConfigDevice(device, steering string) []byte {
	return MflowConfigVTEP(device, "", steering)
}

// MflowConfigVTEP is MflowConfigDevice with more keys in the vtep mapping:
// vtep is their body, e.g. `transmit_rps: "off"` ("" for none).
func MflowConfigVTEP(device, vtep, steering string) []byte {
	return MflowConfigKeys(device, "", vtep, steering)
}

// MflowConfigKeys is MflowConfigVTEP with more keys in the uplink mapping
// too: uplink is their body, e.g. `rx_ring: 2048` ("" for none).
func MflowConfigKeys(device, uplink, vtep, steering string) []byte {
	if uplink != "" {
		uplink = ", " + uplink
	}
	if vtep != "" {
		vtep = ", " + vtep
	}
	return []byte(fmt.Sprintf(`
uplink: {interface: %s%s}
vtep: {address: %s, port: %d%s}
networks:
  - vni: %d
    device: {type: %s, name: %s, bridge: %s, mtu: %d}
    peers: [%s]
steering: {%s}
metrics: {listen: ""}
`, HostUplink, uplink, HostUnderlayIP, VxLANPort, vtep, VNI, device, MflowVeth, Bridge, OverlayMTU, PeerUnderlayIP, steering))
}
