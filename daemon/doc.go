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
//	(veth) ─► neighbour entries of the peers resolved
//
// Run, per uplink queue, one receive engine (dataplane.Engine):
//
//	xsk socket (frames with their UMEM addresses as batch handles)
//	─► dispatcher ─► workers: vxlan.Decap, VNI and peer check, FDB learning
//	(stage.go) ─► merger ─► sink (sink_linux.go): each network's frames to
//	its device's WriteFrames (a TAP groups them by flow and writes
//	super-frames; a veth transmits them with AF_XDP)
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
// The package is dataplane's wiring with the kernel: the devices live in
// tap and veth (behind the small device interface of device.go), the
// transmit retry loop in xsk, the neighbour resolver in neigh_linux.go
// (its decisions, tested without a kernel, in neighplan_linux.go). Its own
// packet logic is the per-network checks of its stage and the encap loop's
// FDB and flood choice; pipeline_linux_test.go tests the receive side
// without root, over xsktest and fake devices.
package daemon
