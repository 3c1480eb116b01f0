// Package daemon is the running VTEP: it turns a configuration into the
// kernel objects and goroutines of mflow and runs them until told to stop.
//
// Setup (New), in the caller's network namespace or the one Options.Enter
// switches to:
//
//	uplink (netlink) ─► XDP program loaded and attached (bpf) ─► one AF_XDP
//	socket per queue (xsk), registered in the program's XSKMAP ─► one device
//	per network: a TAP (tap) on its bridge, or mflow's end of a veth pair
//	with its own redirect-everything XDP program and AF_XDP sockets
//	(vethDevice) ─► neighbour entries of the peers resolved
//
// Run, per uplink queue, one receive engine (dataplane.Engine):
//
//	xsk socket ─► dispatcher ─► workers: vxlan.Decap, VNI and peer check,
//	FDB learning ─► merger ─► sink: the VNI's device (TAP super-frames, or
//	AF_XDP transmit into the veth)
//
// and, per network, one transmit loop:
//
//	device read (TAP: super-frames segmented by tap; veth: AF_XDP receive
//	and copy) into UMEM frames with headroom
//	─► FDB lookup (unicast) or the VNI's flood list ─► vxlan.Encoder ─►
//	AF_XDP transmit on queue 0's socket
//
// Beside them, one goroutine follows the kernel's neighbour table (netlink
// notifications, and a re-read every 10 s) into the next-hop map the
// transmit loops read without locks; because mflow's frames bypass the
// kernel, it marks STALE entries of the next hops in use as used
// (NTF_USE) so that the kernel re-probes them as for its own traffic.
//
// Shutdown (cancelling Run's context): the engines stop reading and drain,
// the transmit loops stop, the XDP programs are detached, the sockets are
// closed and the TAP devices mflow created removed (a veth stays, without
// mflow's program). Every frame received ends delivered, dropped with a
// reason, or back in its socket.
//
// The package is dataplane's wiring with the kernel; it holds no packet
// logic of its own beyond the per-network checks of its stage.
package daemon
