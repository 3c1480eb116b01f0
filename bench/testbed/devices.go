package testbed

import "net"

// VxLANOpts describes a kernel VxLAN device made by [NS.AddVxLAN]. The zero
// value is not usable: Name, VNI and Local are required.
type VxLANOpts struct {
	Name string
	VNI  int
	// Port is the UDP destination port; 0 means 4789.
	Port int
	// Local is the device's source address (the VTEP address).
	Local net.IP
	// Dev is the underlay link the device sends through; empty lets the
	// route decide.
	Dev string
	// Remotes get an all-zero-MAC FDB entry each: broadcast, multicast and
	// unknown unicast are flooded to every one of them (head-end
	// replication).
	Remotes []net.IP
	// MTU; 0 means the kernel's choice (underlay MTU - 50).
	MTU int
	// Learning lets the device learn inner source MACs -> remote VTEPs.
	Learning bool
}
